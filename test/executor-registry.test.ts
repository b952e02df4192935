import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDiagnostic, type UserError } from '../src/diagnostics.js';
import { executeRun } from '../src/engine/run.js';
import type { ExecutorKind, Launch } from '../src/executor.js';
import { executors } from '../src/execute/executors/index.js';
import { openProject } from '../src/project.js';
import { PlainReporter } from '../src/report/reporter.js';
import { registry } from '../stages/index.js';
import { read, workspace } from './helpers.js';

/** A third executor, as a new file would define it: local processes, recording each launch. */
function recordingKind(launched: [string, Record<string, unknown>][]): ExecutorKind {
  const local = executors.get('local')!;
  return {
    ...local,
    name: 'recorded',
    description: 'local processes, each launch recorded',
    optionsSchema: { type: 'object', additionalProperties: false, properties: { queue: { type: 'string' } } },
    mergeOptions: (pipeline = {}, stage = {}) => ({ ...pipeline, ...stage }),
    async connect() {
      const inner = await local.connect();
      return {
        launch: (l: Launch) => {
          launched.push([l.nodeId, l.options]);
          return inner.launch(l);
        },
        close: () => inner.close(),
      };
    },
  };
}

const PIPELINE = `version: 1
executor: recorded
recorded: { queue: default }
stages:
  a:
    cmd: echo a > \${{ outs.f }}
    outs: { f: out/a }
    recorded: { queue: fast }
  b:
    cmd: cat \${{ stages.a.outs.f }} > \${{ outs.f }}
    outs: { f: out/b }
`;

test('a third executor is one kind in the registry: the pipeline names it, its schema checks its settings, its nodes run on it', async () => {
  const launched: [string, Record<string, unknown>][] = [];
  const kinds = new Map([...executors, ['recorded', recordingKind(launched)]]);
  const ws = workspace({ 'dfwe.yaml': PIPELINE });
  const project = await openProject({ workspace: ws, stageTypes: registry, executors: kinds });
  const lines: string[] = [];
  const summary = await executeRun(project, {}, new PlainReporter((l) => lines.push(l)), new AbortController().signal, false);
  assert.equal(summary.ran, 2, lines.join('\n'));
  assert.deepEqual(launched, [['a', { queue: 'fast' }], ['b', { queue: 'default' }]]);
  assert.equal(read(ws, 'out/b'), 'a\n');

  // Its settings are checked by its own schema, located.
  const bad = workspace({ 'dfwe.yaml': PIPELINE.replace('queue: default', 'qeue: default') });
  await assert.rejects(openProject({ workspace: bad, stageTypes: registry, executors: kinds }), (err: UserError) => {
    const said = err.diagnostics.map(formatDiagnostic).join('\n');
    assert.match(said, /dfwe\.yaml:3:\d+/);
    assert.match(said, /qeue/);
    return true;
  });
  // Without it in the registry, the pipeline's executor is unknown.
  await assert.rejects(openProject({ workspace: ws, stageTypes: registry, executors }));
});
