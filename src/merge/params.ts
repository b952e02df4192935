import { createRequire } from 'node:module';
import type AjvModule from 'ajv';
import type { ValidateFunction } from 'ajv';
import type { MergeMethod } from './method.js';

const validators = new WeakMap<object, ValidateFunction>();
let Ajv: typeof AjvModule.default | undefined;

/** Loaded on first use: the merge descriptors import this, and a memoised plan never calls it. */
function ajv(): typeof AjvModule.default {
  if (!Ajv) {
    const m = createRequire(import.meta.url)('ajv') as typeof AjvModule;
    Ajv = m.default ?? m;
  }
  return Ajv;
}

/**
 * A method's parameters checked against its schema, with its defaults filled in (in place):
 * the one place they come from, so they are part of the node's key. Problems as messages.
 */
export function completeParams(method: MergeMethod<never, never>, params: Record<string, unknown>): string[] {
  let v = validators.get(method.schema);
  if (!v) {
    v = new (ajv())({ allErrors: true, strict: true, useDefaults: true }).compile(method.schema);
    validators.set(method.schema, v);
  }
  if (v(params)) return [];
  return (v.errors ?? []).map((e) => {
    const key = e.keyword === 'additionalProperties' ? String(e.params.additionalProperty) : e.instancePath.slice(1);
    return e.keyword === 'additionalProperties' ? `method ${method.name} has no parameter "${key}"` : `parameter "${key}" of method ${method.name} ${e.message}`;
  });
}
