import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dfwe, read, workspace } from './helpers.js';

/*
 * The two process starters (src/execute/executors/spawner.ts in Node, spawner-py.ts with
 * posix_spawn where a python3 is found) must start a stage the same way: its own session and
 * process group, stdin from /dev/null, no signal ignored or blocked (Python ignores SIGPIPE), the
 * engine's environment and nothing of the starter's own (Python sets LC_CTYPE in a C locale), and
 * the same exit codes, signals and start failures. (The signal masks are read by grep of its own:
 * what any program of the stage gets. The shell's own mask is all blocked for a moment around each
 * vfork, which a read of it may catch.)
 */

const PIPELINE = `version: 1
stages:
  probe:
    cmd: >-
      { cut -d' ' -f5,6 /proc/$$/stat; echo $$ $$;
        readlink /proc/$$/fd/0;
        grep -E '^Sig(Ign|Blk)' /proc/self/status;
        yes | head -n 1;
        env | grep -v -E '^(PWD|SHLVL|_|DFWE_SPAWNER|DFWE_LAUNCH)=' | sort;
        pwd; } > \${{ outs.p }}; tr '\\0' ' ' < /proc/$PPID/cmdline > starter.txt
    outs: { p: out/probe }
  three:
    cmd: exit 3
    outs: { f: out/three }
  term:
    cmd: kill -TERM $$
    outs: { f: out/term }
`;

function runWith(spawner: string): { probe: string; starter: string; stderr: string } {
  const ws = workspace({ 'dfwe.yaml': PIPELINE });
  // A C locale, where Python coerces LC_CTYPE for itself.
  const r = dfwe(ws, ['run', '-k', '-j', '1'], { DFWE_SPAWNER: spawner, LANG: undefined, LC_ALL: undefined, LC_CTYPE: undefined, SOME_USER_VAR: 'kept' });
  assert.equal(r.code, 1, r.stderr);
  return { probe: read(ws, 'out/probe').replaceAll(ws, 'WS'), starter: read(ws, 'starter.txt'), stderr: r.stderr };
}

test('both process starters start a stage alike: session, group, stdin, signals, environment, exit codes', { skip: !existsSync('/usr/bin/python3') && 'no /usr/bin/python3 here' }, () => {
  const py = runWith('python');
  const node = runWith('node');
  assert.match(py.starter, /python3 -I -S -X utf8 -c /, 'a python3 starts the stages where one is found');
  assert.match(node.starter, /spawner\.js/, 'DFWE_SPAWNER=node uses the Node starter');
  for (const r of [py, node]) {
    const [group, self, stdin, blk, ign, yes] = r.probe.split('\n');
    assert.equal(group, self, 'the stage leads its own process group and session');
    assert.equal(stdin, '/dev/null');
    // Signals 32 and 33 are glibc's own: a posix_spawn leaves them ignored, and every glibc program sets them up as it starts.
    assert.equal(BigInt(`0x${ign!.split('\t')[1]}`) & 0x7fffffffn, 0n, `no signal of 1-31 ignored (SIGPIPE included): ${ign}`);
    assert.equal(blk, 'SigBlk:\t0000000000000000', `no signal blocked (${r === py ? 'python' : 'node'})`);
    assert.equal(yes, 'y', 'a pipe whose reader ends ends its writer');
    assert.match(r.probe, /\nSOME_USER_VAR=kept\n/);
    assert.doesNotMatch(r.probe, /\nLC_CTYPE=/, "the starter's own locale does not reach the stage");
    assert.match(r.probe, /\nDFWE_NODE=probe\n/);
    assert.match(r.probe, /\nWS\n$/, 'it runs in the workspace');
    assert.match(r.stderr, /FAILED +three: command failed \(exit code 3\)/);
    assert.match(r.stderr, /FAILED +term: command failed \(killed by SIGTERM\)/);
  }
  const env = (probe: string): string => probe.split('\n').slice(6).join('\n');
  assert.equal(env(py.probe), env(node.probe), 'the same environment from either');
});

test('a python3 that cannot start stages hands its requests to the Node starter, and says so', () => {
  for (const python of ['/bin/false', '/nonexistent/python3']) {
    const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  a:\n    cmd: echo a > ${{ outs.f }}\n    outs: { f: out/a }\n  b:\n    cmd: cat ${{ stages.a.outs.f }} > ${{ outs.f }}\n    outs: { f: out/b }\n' });
    const r = dfwe(ws, ['run'], { DFWE_PYTHON: python });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(read(ws, 'out/b'), 'a\n');
    assert.match(r.stderr, new RegExp(`dfwe: ${python} could not start stages .*starting them from Node`));
    assert.equal(r.stderr.match(/could not start stages/g)!.length, 1, 'said once');
  }
});
