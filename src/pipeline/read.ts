import { readFileSync, statSync } from 'node:fs';
import { UserError } from '../diagnostics.js';

/** Files larger than this are refused: a pipeline is hand-written, not generated gigabytes. */
export const MAX_PIPELINE_BYTES = 16 * 1024 * 1024;
export function readPipelineText(path: string, displayPath: string): string {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    throw new UserError(`pipeline file not found: ${displayPath}`);
  }
  if (size > MAX_PIPELINE_BYTES) {
    throw new UserError(`${displayPath}: pipeline file is ${size} bytes; the limit is ${MAX_PIPELINE_BYTES}`);
  }
  return readFileSync(path, 'utf8');
}

