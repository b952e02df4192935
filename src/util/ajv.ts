import { createRequire } from 'node:module';
import type AjvModule from 'ajv';

let Ajv: typeof AjvModule.default | undefined;

/**
 * ajv's class, required on first use: planning a memoised pipeline (or one the build's
 * precompiled validator checks) never loads the compiler.
 */
export function ajvClass(): typeof AjvModule.default {
  if (!Ajv) {
    const m = createRequire(import.meta.url)('ajv') as typeof AjvModule;
    Ajv = m.default ?? (m as unknown as typeof AjvModule.default);
  }
  return Ajv;
}
