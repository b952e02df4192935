// First: NODE_EXTRA_CA_CERTS is put back before anything copies the environment.
import './util/handed-env.js';
import { createRequire } from 'node:module';
// Required, not imported: importing a CommonJS package from an ES module first scans its source
// for export names (≈7 ms of every command's start, a no-op `status` included).
const { CommanderError } = createRequire(import.meta.url)('commander') as typeof import('commander');
import { formatDiagnostic, UserError, EXIT_BAD_INPUT } from './diagnostics.js';
import { describeFsError, isEnvironmentError } from './util/fs-safe.js';
import { buildProgram } from './cli-program.js';

// `dfwe expand | head` closes the pipe early: that ends the output, not with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}

const { program, exitCode: commandExit } = buildProgram();
let exitCode = 0;
try {
  await program.parseAsync(process.argv);
  exitCode = commandExit();
} catch (err) {
  if (err instanceof CommanderError) {
    exitCode = err.exitCode === 0 ? 0 : EXIT_BAD_INPUT;
  } else if (err instanceof UserError) {
    for (const d of err.diagnostics) process.stderr.write(formatDiagnostic(d) + '\n');
    exitCode = err.exitCode;
  } else if (isEnvironmentError(err)) {
    // A full disk, a read-only mount, a permission: the machine's problem, said as such.
    process.stderr.write(`dfwe: cannot go on: ${describeFsError(err)}\n`);
    exitCode = 1;
  } else {
    process.stderr.write(`dfwe: internal error (a bug in dfwe, please report it):\n${(err as Error).stack ?? String(err)}\n`);
    exitCode = 70;
  }
}
process.exitCode = exitCode;
