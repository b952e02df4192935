import { createRequire } from 'node:module';
import { ajvClass } from '../util/ajv.js';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { didYouMean, UserError, type Diagnostic } from '../diagnostics.js';
import { keyOf } from '../util/hash.js';
import { pipelineSchema } from './schema.js';
import type { SourceFile } from './source.js';
import type { StageType } from '../stage-type.js';
import type { ExecutorKind } from '../executor.js';

const require = createRequire(import.meta.url);

export const PIPELINE_AJV_OPTIONS = { allErrors: true, verbose: true, strict: true, allowUnionTypes: true } as const;
/** Written by the build (scripts/precompile-validator.ts): the built-in registry's validator, as ajv compiles it, and its schema's key. */
export const PRECOMPILED_VALIDATOR = './pipeline-validator.cjs';

let pipelineValidator: { stageTypes: unknown; executors: unknown; validate: ValidateFunction } | undefined;

/**
 * The pipeline schema's validator: ajv's code for it, compiled ahead by the build when the schema
 * is the built-in registry's (compiling it is ≈120 ms of every command that reads an edited
 * file), else now.
 */
function pipelineValidate(stageTypes: ReadonlyMap<string, StageType>, executors: ReadonlyMap<string, ExecutorKind>): ValidateFunction {
  const schema = pipelineSchema(stageTypes, executors);
  try {
    const pre = require(PRECOMPILED_VALIDATOR) as ValidateFunction & { schemaKey?: string };
    if (pre.schemaKey === keyOf(schema)) return pre;
  } catch {
    // not built (a checkout compiled by tsc alone): compiled here
  }
  return new (ajvClass())(PIPELINE_AJV_OPTIONS).compile(schema);
}

/** Validate against the pipeline schema (built-in stages' `with` included); all errors at once,
 * located, with did-you-mean. */
/** What a value matching each pattern of the schema is, in words (a regular expression is no help to a user). */
const PATTERN_SAYS: Record<string, string> = {
  '^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$': 's3://BUCKET or s3://BUCKET/PREFIX (a bucket name of 3-63 lowercase letters, digits, dots and hyphens)',
};

export function validatePipeline(data: unknown, source: SourceFile, stageTypes: ReadonlyMap<string, StageType>, executors: ReadonlyMap<string, ExecutorKind>): void {
  if (pipelineValidator?.stageTypes !== stageTypes || pipelineValidator.executors !== executors) {
    pipelineValidator = { stageTypes, executors, validate: pipelineValidate(stageTypes, executors) };
  }
  const validator = pipelineValidator.validate;
  if (!validator(data)) throw new UserError(schemaDiagnostics(validator.errors ?? [], source, []));
}

const resolvedValidators = new WeakMap<object, ValidateFunction>();

/**
 * A stage type's `with` validator, which fills in the schema's defaults: the one place they come
 * from. They are then part of the node's `with` and so of its key, and a default changed in
 * dfwe's code reruns what it affects.
 */
export function withValidator(schema: object): ValidateFunction {
  let validate = resolvedValidators.get(schema);
  if (!validate) {
    validate = new (ajvClass())({ ...PIPELINE_AJV_OPTIONS, useDefaults: true }).compile(schema);
    resolvedValidators.set(schema, validate);
  }
  return validate;
}

/** Check a built-in stage's `with` once its expressions are evaluated (defaults filled in); errors point at the key. */
export function validateResolved(schema: object, value: unknown, source: SourceFile, at: (string | number)[]): Diagnostic[] {
  const validate = withValidator(schema);
  if (validate(value)) return [];
  return schemaDiagnostics(validate.errors ?? [], source, at).map((d) => ({ ...d, message: `${d.message} (after evaluating its expressions)` }));
}

function pointerToPath(pointer: string): string[] {
  return pointer === '' ? [] : pointer.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function describe(path: string[]): string {
  if (path.length === 0) return 'the pipeline';
  if (path[0] === 'stages' && path.length >= 2) {
    const rest = path.slice(2);
    return rest.length === 0 ? `stage "${path[1]}"` : `"${rest.join('.')}" of stage "${path[1]}"`;
  }
  return `"${path.join('.')}"`;
}

function schemaDiagnostics(errors: ErrorObject[], source: SourceFile, at: (string | number)[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    // The expression alternative of a with-property: its failure is noise beside the type's.
    if (/\/anyOf\/1\//.test(e.schemaPath)) continue;
    const path = [...at.map(String), ...pointerToPath(e.instancePath)];
    let d: Diagnostic;
    switch (e.keyword) {
      case 'additionalProperties': {
        const key = String(e.params.additionalProperty);
        const known = Object.keys((e.parentSchema as { properties?: object } | undefined)?.properties ?? {});
        const guess = didYouMean(key, known);
        d = {
          message: `unknown key "${key}" in ${describe(path)}${guess ? `; did you mean "${guess}"?` : ''}`,
          location: source.locateKey(path, key),
          hint: guess ? undefined : known.length ? `allowed keys: ${known.join(', ')}` : undefined,
        };
        break;
      }
      case 'required':
        d = { message: `${describe(path)} is missing required key "${String(e.params.missingProperty)}"`, location: source.locate(path) };
        break;
      case 'propertyNames':
        continue; // reported by the 'pattern' error that accompanies it, located at the name
      case 'if':
        continue; // "must match then": the errors inside `then` say what is wrong
      case 'anyOf':
        continue; // a with-property that is neither its type nor an expression: its type's error says it
      case 'pattern':
        if (e.propertyName !== undefined) {
          d = {
            message: `invalid name "${e.propertyName}" in ${describe(path)}: names are letters, digits and _ (not starting with a digit) so that expressions can refer to them`,
            location: source.locateKey(path, e.propertyName),
          };
        } else d = { message: `${describe(path)} must be ${PATTERN_SAYS[String(e.params.pattern)] ?? `a string matching ${String(e.params.pattern)}`}`, location: source.locate(path) };
        break;
      case 'enum': {
        const allowed = (e.params.allowedValues as unknown[]).map(String);
        const guess = didYouMean(String(e.data), allowed);
        d = {
          message: `${describe(path)}: "${String(e.data)}" is not one of ${allowed.join(', ')}${guess ? `; did you mean "${guess}"?` : ''}`,
          location: source.locate(path),
        };
        break;
      }
      case 'const':
        d = { message: `${describe(path)} must be ${JSON.stringify(e.params.allowedValue)}`, location: source.locate(path) };
        break;
      case 'type':
        d = { message: `${describe(path)} must be ${String(e.params.type)}, not ${jsonType(e.data)}`, location: source.locate(path) };
        break;
      default:
        d = { message: `${describe(path)} ${e.message ?? 'is invalid'}`, location: source.locate(path) };
    }
    const id = `${d.location?.line}:${d.location?.col}:${d.message}`;
    if (!seen.has(id)) {
      seen.add(id);
      out.push(d);
    }
  }
  return out;
}

function jsonType(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'number' && Number.isInteger(v) ? 'integer' : typeof v;
}
