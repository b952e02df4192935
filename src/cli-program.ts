import { createRequire } from 'node:module';
import type { Command as CommandType } from 'commander';
// Required, not imported: importing a CommonJS package from an ES module first scans its source
// for export names (≈7 ms of every command's start, a no-op `status` included).
const { Command } = createRequire(import.meta.url)('commander') as typeof import('commander');
import { DFWE_VERSION } from './version.js';
import type { GlobalOptions } from './commands/common.js';

/**
 * The command line: every command, option and help text, built without parsing anything, so
 * that the generated reference (docs/reference/cli.md) reads the same definitions `dfwe` runs.
 * Each command's code is imported when it runs.
 */
export function buildProgram(): { program: CommandType; exitCode(): number } {
  const program = new Command();
  program
    .name('dfwe')
    .description('Declarative workflow DAG engine for weight-space ensembling experiments')
    .version(DFWE_VERSION)
    .option('-C, --workspace <dir>', 'workspace directory: paths in the pipeline are relative to it (default: current directory)')
    .option('--cache <dir>', 'cache directory (default: $DFWE_CACHE or WORKSPACE/cache)')
    .option('--backend <name>', 'ML backend: auto, tensorflow-gpu, tensorflow, wasm or cpu (default: the pipeline\'s runtime.backend, else auto)')
    .option('--only <var=value>', 'keep only the sweep members whose variable has this value, e.g. target=emotion (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--param <name=value>', "replace a pipeline param's value, as if the file said it (a YAML value: seed=1, tasks=[a, b]; repeatable)", (v: string, prev: string[] = []) => [...prev, v])
    .showSuggestionAfterError()
    .exitOverride();

  const globals = (): GlobalOptions => program.opts<GlobalOptions>();
  const collect = (v: string, prev: string[] = []): string[] => [...prev, v];
  /** How the nodes of a run are run: `run` and `watch` take the same. */
  const runOptions = (cmd: CommandType): CommandType =>
    cmd
      .option('-j, --jobs <n>', 'nodes to run at once (default: number of cores)')
      .option('-k, --keep-going', 'after a failure, keep running nodes that do not depend on it')
      .option('-r, --resource <name=n>', 'capacity of a resource token, e.g. gpu=2 (repeatable)', collect)
      .option('--executor <name>', "where nodes run: local or slurm (one sbatch job per node; default: the pipeline's executor, else local)");
  let exitCode = 0;

  runOptions(
    program
      .command('run')
      .description('run the pipeline: nodes whose inputs changed, and what depends on them; everything else comes from the cache. With targets, only what they need')
      .argument('[pipeline]', 'pipeline file (default: ./dfwe.yaml, else the embedded quickstart)')
      .argument('[targets...]', 'node ids or stage names (a stage: all its nodes): run only these and what they need'),
  )
    .option('-n, --dry-run', 'show what would run and why, in what order, on which job slots and GPUs; run nothing')
    .option('-f, --force <node>', 'run this node even if cached (repeatable)', collect)
    .option('-v, --verbose', "plain output, one line per node including cache hits, and every line the stages print, prefixed with the node's id")
    .option('--remote <url>', 'a shared cache, s3://BUCKET/PREFIX (default: $DFWE_REMOTE): nodes missing here are looked for there, and results are uploaded when $DFWE_REMOTE_KEY is set')
    .option('--remote-readonly', 'never write to the shared cache (default: $DFWE_REMOTE_READONLY=1)')
    .option('--no-push', 'do not upload this run\'s results to the shared cache')
    .action(async (first: string | undefined, rest: string[], opts) => {
      const [{ runCommand }, { pipelineAndTargets }] = await Promise.all([import('./commands/run.js'), import('./commands/common.js')]);
      const { pipeline, targets } = pipelineAndTargets(first === undefined ? rest : [first, ...rest], globals());
      exitCode = await runCommand(pipeline, opts, globals(), targets);
    });

  runOptions(
    program
      .command('watch')
      .description('run, then run again whenever the pipeline file or a dependency changes')
      .argument('[pipeline]', 'pipeline file (default: ./dfwe.yaml, else the embedded quickstart)'),
  )
    .option('-v, --verbose', 'one line per node including cache hits')
    .action(async (pipeline: string | undefined, opts) => {
      const { watchCommand } = await import('./commands/watch.js');
      exitCode = await watchCommand(pipeline, opts, globals());
    });

  program
    .command('status')
    .description('each node: cached, or will run and why (a line per stage beyond 100 nodes)')
    .argument('[pipeline]', 'pipeline file')
    .argument('[targets...]', 'node ids or stage names: only these and what they need')
    .option('--json', 'machine-readable output')
    .option('--all', 'a line for every node, however many')
    .option('--remote <url>', 'also say which nodes that would run the shared cache holds (default: $DFWE_REMOTE)')
    .action(async (first: string | undefined, rest: string[], opts) => {
      const [{ statusCommand }, { pipelineAndTargets }] = await Promise.all([import('./commands/status.js'), import('./commands/common.js')]);
      const { pipeline, targets } = pipelineAndTargets(first === undefined ? rest : [first, ...rest], globals());
      exitCode = await statusCommand(pipeline, opts, globals(), targets);
    });

  program
    .command('expand')
    .description('list the nodes a pipeline expands to, and how many sweep members share each')
    .argument('[pipeline]', 'pipeline file')
    .option('--json', 'machine-readable output')
    .action(async (pipeline: string | undefined, opts) => {
      const { expandCommand } = await import('./commands/expand.js');
      exitCode = await expandCommand(pipeline, opts, globals());
    });

  program
    .command('metrics')
    .description("the pipeline's report: per task, baseline, method (DFWE) and delta, as in the paper's Table 2; or one stage's metrics per node (--stage)")
    .argument('[pipeline]', 'pipeline file')
    .option('--json', 'machine-readable output, every pair included')
    .option('--stage <name>', "every node of this stage with the metrics it reported (e.g. a sweep's dev scores)")
    .action(async (pipeline: string | undefined, opts) => {
      const { metricsCommand } = await import('./commands/metrics.js');
      exitCode = await metricsCommand(pipeline, opts, globals());
    });

  program
    .command('runs')
    .description('the run history: each run of this workspace (of PIPELINE, if given), what changed in its params, what ran, the report\'s average delta')
    .argument('[pipeline]', 'only the runs of this pipeline file')
    .option('--all', 'every run recorded in the cache, of any workspace')
    .option('--last <n>', 'how many of the latest runs to list (default 20)')
    .option('--noops', 'also list no-op runs (everything cached, asked as the run before)')
    .option('--json', 'machine-readable output (every run, no-ops included)')
    .action(async (pipeline: string | undefined, opts) => {
      const { runsCommand } = await import('./commands/runs.js');
      exitCode = runsCommand(pipeline, opts, globals());
    });

  program
    .command('diff')
    .description('two runs side by side: params, settings and metrics that differ (default: the last two runs; one RUN: it against the last)')
    .argument('[run-a]', 'a run id (or a unique prefix of one), last or last-N')
    .argument('[run-b]', 'the run to compare it with (default: last)')
    .option('--all', 'every param and metric, not only those that differ')
    .option('--json', 'machine-readable output')
    .action(async (a: string | undefined, b: string | undefined, opts) => {
      const { diffCommand } = await import('./commands/runs.js');
      exitCode = diffCommand(a, b, opts, globals());
    });

  program
    .command('report')
    .description('one self-contained HTML page: the metrics table, each search, a sweep heatmap, the last run\'s timeline, the graph and the run history')
    .argument('[pipeline]', 'pipeline file')
    .option('-o, --output <file>', 'where to write it (default: WORKSPACE/report.html)')
    .option('--run <run>', 'a run to compare side by side with the others given (repeatable): an id, a unique prefix, last or last-N; e.g. the same pipeline at several seeds', collect)
    .action(async (pipeline: string | undefined, opts) => {
      const { reportCommand } = await import('./commands/report.js');
      exitCode = await reportCommand(pipeline, opts, globals());
    });

  program
    .command('why')
    .description('which key component of NODE changed since its cached run (param, file, upstream, stage version)')
    .argument('<node>', 'node id')
    .argument('[pipeline]', 'pipeline file')
    .action(async (node: string, pipeline: string | undefined) => {
      const { whyCommand } = await import('./commands/why.js');
      exitCode = await whyCommand(node, pipeline, globals());
    });

  program
    .command('dag')
    .description('print the graph')
    .argument('[pipeline]', 'pipeline file')
    .option('--format <format>', 'text, dot or mermaid', 'text')
    .action(async (pipeline: string | undefined, opts) => {
      const { dagCommand } = await import('./commands/dag.js');
      exitCode = await dagCommand(pipeline, opts, globals());
    });

  program
    .command('show')
    .description("a node's outputs, metrics, timings and log")
    .argument('<node>', 'node id')
    .argument('[pipeline]', 'pipeline file')
    .option('--json', 'machine-readable output')
    .option('--log', 'the whole log, not its last 20 lines')
    .action(async (node: string, pipeline: string | undefined, opts) => {
      const { showCommand } = await import('./commands/show.js');
      exitCode = await showCommand(node, pipeline, opts, globals());
    });

  program
    .command('logs')
    .description("a node's log: the one it is writing now if it is running (-f follows it to the end), else its last one")
    .argument('<node>', 'node id')
    .argument('[pipeline]', 'pipeline file')
    .option('-f, --follow', 'keep printing what a running node writes until it ends')
    .action(async (node: string, pipeline: string | undefined, opts) => {
      const { logsCommand } = await import('./commands/logs.js');
      exitCode = await logsCommand(node, pipeline, opts, globals());
    });

  program
    .command('gc')
    .description('remove cached results that no given pipeline (default: the current one), no pin and none of the last runs reaches')
    .argument('[pipelines...]', 'every pipeline that uses this cache (default: ./dfwe.yaml, else the quickstart)')
    .option('-n, --dry-run', 'say what would be removed and how many bytes it frees; remove nothing')
    .option('--keep-runs <n>', 'keep the last N runs of the history and every result they used (default 10; 0: none)')
    .option('--remote [url]', "collect the shared cache instead (default: $DFWE_REMOTE, else the pipeline's remote), by the same rule: every node must be cached here")
    .action(async (pipelines: string[], opts) => {
      const { gcCommand } = await import('./commands/maintenance.js');
      exitCode = await gcCommand(pipelines, opts, globals());
    });

  const remoteOptions = (cmd: CommandType): CommandType =>
    cmd
      .argument('[pipeline]', 'pipeline file (default: ./dfwe.yaml, else the embedded quickstart)')
      .option('--remote <url>', 'the shared cache: s3://BUCKET/PREFIX (default: $DFWE_REMOTE); records signed with $DFWE_REMOTE_KEY')
      .option('--remote-readonly', 'never write to the remote (default: $DFWE_REMOTE_READONLY=1)');
  remoteOptions(program.command('push').description("send the pipeline's cached results to the shared cache (objects first, then each record, signed)")).action(async (pipeline: string | undefined, opts) => {
    const { pushCommand } = await import('./commands/remote.js');
    exitCode = await pushCommand(pipeline, opts, globals());
  });
  remoteOptions(program.command('pull').description("fetch the results the pipeline would run from the shared cache, each checked before it is kept; a later run restores them")).action(async (pipeline: string | undefined, opts) => {
    const { pullCommand } = await import('./commands/remote.js');
    exitCode = await pullCommand(pipeline, opts, globals());
  });

  program
    .command('verify')
    .description('re-hash every cached object; quarantine corrupt ones (their nodes run again); exit 1 if any')
    .action(async () => {
      const { verifyCommand } = await import('./commands/maintenance.js');
      exitCode = await verifyCommand(globals());
    });

  program
    .command('pin')
    .description("keep a pipeline's current results through gc, under a name")
    .argument('[name]', 'the pin')
    .argument('[pipeline]', 'pipeline file')
    .option('--list', 'list the pins')
    .option('--remove', 'remove the pin NAME')
    .action(async (name: string | undefined, pipeline: string | undefined, opts) => {
      const { pinCommand } = await import('./commands/maintenance.js');
      exitCode = await pinCommand(name, pipeline, opts, globals());
    });

  program
    .command('schema')
    .description('print the JSON Schema of pipeline files (built-in stage types included)')
    .action(async () => {
      const [{ pipelineSchema }, { registry }, { executors }] = await Promise.all([import('./pipeline/schema.js'), import('../stages/index.js'), import('./execute/executors/index.js')]);
      process.stdout.write(JSON.stringify(pipelineSchema(registry, executors), null, 2) + '\n');
    });

  program
    .command('exec')
    .description('run one built-in stage from a serialised node spec (the engine and executors call this)')
    .argument('<spec>', 'path of the node spec JSON')
    .action(async (spec: string) => {
      const { execCommand } = await import('./commands/exec.js');
      exitCode = await execCommand(spec);
    });

  return { program, exitCode: () => exitCode };
}
