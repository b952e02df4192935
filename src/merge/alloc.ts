import { StageInputError } from '../stage-type.js';

/**
 * A scratch array a method needs over a whole tensor (ties' magnitudes): one the process cannot
 * allocate (a 16 GiB tensor) is said as what it needs, not V8's `Array buffer allocation failed`.
 */
export function allocFloat32(n: number, what: string): Float32Array {
  try {
    return new Float32Array(n);
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    throw new StageInputError(`${what} has ${n.toLocaleString('en-US')} elements, and its scratch array (${(n * 4 / 2 ** 30).toFixed(1)} GiB) cannot be allocated here: merge it on a machine with more memory, or leave it out (exclude)`);
  }
}
