import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dfwe, ran, read, REPO, workspace, write } from './helpers.js';

/*
 * The README's first pipeline, run as the README shows it: its YAML and its console sessions are
 * read from the README itself, so the page cannot drift from what dfwe does.
 */
const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
const section = readme.slice(readme.indexOf('## A first pipeline'), readme.indexOf('## The quickstart'));
const yaml = /```yaml\n([\s\S]*?)```/.exec(section)![1]!;
const consoles = [...section.matchAll(/```console\n([\s\S]*?)```/g)].map((m) => m[1]!);
/** What the README shows a command printing (its nth showing): the lines after `$ COMMAND` up to the next `$`. */
function shown(command: RegExp, nth = 0): string[] {
  const lines = consoles.join('\n').split('\n');
  const at = lines.map((l, i) => (command.test(l) ? i : -1)).filter((i) => i >= 0)[nth];
  if (at === undefined) throw new Error(`the README shows ${command} fewer than ${nth + 1} times`);
  const out: string[] = [];
  for (const l of lines.slice(at + 1)) {
    if (l.startsWith('$ ')) break;
    if (l) out.push(l);
  }
  return out;
}
/** The text a README `printf '…' > book.txt` writes. */
const book = (which: number): string => [...section.matchAll(/printf '([^']*)' > book\.txt/g)][which]![1]!.replace(/\\n/g, '\n');
const counts = (line: string): string => /(\d+ ran, \d+ cached, \d+ failed, \d+ skipped)/.exec(line)![1]!;

test("the README's first pipeline runs as the README says: cached, why, one rerun, early cutoff", () => {
  const ws = workspace({ 'dfwe.yaml': yaml, 'book.txt': book(0) });
  const first = dfwe(ws, ['run']);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(counts(first.stderr), counts(shown(/^\$ npx dfwe run$/)[0]!));
  assert.deepEqual(ran(first).sort(), ['stats', 'top', 'words']);
  assert.equal(read(ws, 'out/top.txt'), '      4 the\n      2 cat\n      2 on\n');

  const again = dfwe(ws, ['run']);
  assert.deepEqual(ran(again), []);

  write(ws, 'dfwe.yaml', yaml.replace('top: 3', 'top: 4'));
  // A pipeline without a name is called by its file, once.
  assert.equal(dfwe(ws, ['status']).stdout.split('\n')[0], 'dfwe.yaml: 3 nodes: 2 cached, 1 will run');
  const why = dfwe(ws, ['why', 'top']);
  assert.equal(why.code, 0, why.stderr);
  assert.deepEqual(why.stdout.trimEnd().split('\n'), shown(/^\$ npx dfwe why top$/));
  const edited = dfwe(ws, ['run']);
  assert.deepEqual(ran(edited), ['top']);
  assert.equal(counts(edited.stderr), counts(shown(/^\$ npx dfwe run$/, 1)[0]!));

  write(ws, 'book.txt', book(1));
  const cutoff = dfwe(ws, ['run']);
  assert.deepEqual(ran(cutoff), ['words'], 'words writes the same bytes: top and stats stay cached');
  assert.equal(counts(cutoff.stderr), counts(shown(/> book\.txt && npx dfwe run$/)[0]!));
  assert.match(dfwe(ws, ['show', 'stats']).stdout, /^    words: 12$/m);
  assert.match(readme, /`dfwe show stats` prints its metrics \(`words: 12`\)/);
});
