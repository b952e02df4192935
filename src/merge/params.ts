import type { ValidateFunction } from 'ajv';
import { ajvClass } from '../util/ajv.js';
import type { MergeMethod } from './method.js';

const validators = new WeakMap<object, ValidateFunction>();

/**
 * A method's parameters checked against its schema, with its defaults filled in (in place):
 * the one place they come from, so they are part of the node's key. Problems as messages.
 */
export function completeParams(method: MergeMethod<never, never>, params: Record<string, unknown>): string[] {
  let v = validators.get(method.schema);
  if (!v) {
    v = new (ajvClass())({ allErrors: true, strict: true, useDefaults: true }).compile(method.schema);
    validators.set(method.schema, v);
  }
  if (v(params)) return method.check?.(params as never) ?? [];
  return (v.errors ?? []).map((e) => {
    const key = e.keyword === 'additionalProperties' ? String(e.params.additionalProperty) : e.instancePath.slice(1);
    return e.keyword === 'additionalProperties' ? `method ${method.name} has no parameter "${key}"` : `parameter "${key}" of method ${method.name} ${e.message}`;
  });
}
