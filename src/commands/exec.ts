import { availableParallelism } from 'node:os';
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { registry } from '../../stages/index.js';
import { UserError } from '../diagnostics.js';
import type { NodeSpec } from '../execute/node-spec.js';

/** Run one built-in stage from its serialised spec, in this process. The engine spawns this. */
export async function execCommand(specPath: string): Promise<number> {
  let spec: NodeSpec;
  try {
    spec = JSON.parse(readFileSync(specPath, 'utf8')) as NodeSpec;
  } catch (err) {
    throw new UserError(`cannot read node spec ${specPath}: ${(err as Error).message}`);
  }
  const type = registry.get(spec.type);
  if (!type) throw new UserError(`node ${spec.nodeId}: unknown stage type "${spec.type}"`);
  if (type.version !== spec.version) {
    throw new UserError(`node ${spec.nodeId}: spec was made for ${spec.type} version ${spec.version}, this dfwe has version ${type.version}`);
  }
  // The schema's defaults, as the engine filled them in when planning (a spec written by hand may lack them).
  const { withValidator } = await import('../pipeline/validate.js');
  const validate = withValidator(type.schema);
  const problems = validate(spec.params) ? type.complete?.(spec.params) ?? [] : (validate.errors ?? []).map((e) => `${e.instancePath || 'with'} ${e.message}`);
  if (problems.length) throw new UserError(`node ${spec.nodeId}: its parameters do not fit ${spec.type}: ${problems.join('; ')}`);
  const result = await type.run({
    params: spec.params,
    outs: spec.outs,
    workspace: spec.workspace,
    resolve: (p) => resolve(spec.workspace, p),
    log: (line) => process.stdout.write(line + '\n'),
    // The stage's stderr reaches its log, not the progress display (`run -v` shows it too).
    note: (line) => process.stderr.write(line + '\n'),
    runtime: spec.runtime,
    scratch: spec.scratch,
    resume: spec.resume,
    threads: spec.cpus ?? availableParallelism(),
  });
  if (result?.metrics) writeFileSync(spec.metricsPath, JSON.stringify(result.metrics));
  return 0;
}
