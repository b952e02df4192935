import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';

/*
 * `NODE_OPTIONS=--import=…/register.js DFWE_IMPORT_TRACE=FILE dfwe …` writes to FILE every
 * module the process loaded: ES modules through a load hook, CommonJS ones (require, and
 * packages imported from ES modules) from the module cache when it exits.
 */
register('./hooks.js', import.meta.url);
const trace = process.env.DFWE_IMPORT_TRACE;
if (trace) {
  const cache = createRequire(import.meta.url).cache;
  process.on('exit', () => appendFileSync(trace, Object.keys(cache).map((f) => `file://${f}\n`).join('')));
}
