import { readFileSync, statSync } from 'node:fs';
import { UserError } from '../diagnostics.js';
import { kindOf } from '../util/fs-safe.js';

/** Files larger than this are refused: a pipeline is hand-written, not generated gigabytes. */
export const MAX_PIPELINE_BYTES = 16 * 1024 * 1024;
export function readPipelineText(path: string, displayPath: string): string {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new UserError(`pipeline file not found: ${displayPath}`);
  }
  // Reading a FIFO or a device would block or never end.
  if (!st.isFile()) throw new UserError(`${displayPath} is ${kindOf(st)}, not a pipeline file`);
  const size = st.size;
  if (size > MAX_PIPELINE_BYTES) {
    throw new UserError(`${displayPath}: pipeline file is ${size} bytes; the limit is ${MAX_PIPELINE_BYTES}`);
  }
  return readFileSync(path, 'utf8');
}

