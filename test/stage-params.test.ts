import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withValidator } from '../src/pipeline/validate.js';
import { defineStage } from '../src/stage-type.js';
import type { FromSchema } from '../src/util/schema-type.js';
import { registry } from '../stages/index.js';

/*
 * A stage's schema is said once: the type of its parameters is derived from it
 * (util/schema-type.ts). The type says a parameter with a default is always there, which holds
 * because the validator fills defaults in before a stage runs; both halves are checked here
 * (`tsc --noEmit` checks the first, a @ts-expect-error that stops failing fails it).
 */

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['models'],
  properties: {
    models: { type: 'array', items: { type: 'string' } },
    split: { enum: ['dev', 'test'], default: 'dev' },
    epochs: { type: 'integer', default: 5 },
    max_len: { type: 'integer' },
    counts: { type: 'object', additionalProperties: { type: 'integer' } },
    model: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
  },
} as const;

test('the parameters of a stage are typed by its schema: required or defaulted ones are there, enums are their values', () => {
  type P = FromSchema<typeof schema>;
  const p: P = { models: ['a'], split: 'test', epochs: 3 };
  const models: string[] = p.models;
  const split: 'dev' | 'test' = p.split;
  const epochs: number = p.epochs;
  const maxLen: number | undefined = p.max_len;
  const counts: Record<string, number> | undefined = p.counts;
  const model: string | string[] | undefined = p.model;
  // @ts-expect-error a parameter without a default may be absent
  const absent: number = p.max_len;
  // @ts-expect-error an enum's values only
  const wrong: P = { models: [], split: 'train', epochs: 1 };
  // @ts-expect-error a required parameter cannot be left out
  const missing: P = { split: 'dev', epochs: 1 };
  const stage = defineStage({
    name: 'typed',
    version: 1,
    description: 'a stage typed by its schema',
    schema,
    outputs: (q) => ({ out: q.split === 'dev' ? 'file' : 'dir' }),
    async run(ctx) {
      // @ts-expect-error epochs is a number
      const e: string = ctx.params.epochs;
      void e;
    },
  });
  assert.deepEqual([models, split, epochs, maxLen, counts, model, absent, wrong, missing].length, 9);
  assert.deepEqual(stage.outputs({ models: [], split: 'dev', epochs: 1 }), { out: 'file' });
});

/** The least `with` each schema accepts: its required parameters, each given a value of its type. */
function minimal(s: { required?: string[]; properties: Record<string, { type?: string; enum?: unknown[]; minimum?: number }> }): Record<string, unknown> {
  const value = (p: { type?: string; enum?: unknown[]; minimum?: number }): unknown =>
    p.enum ? p.enum[0] : p.type === 'array' ? ['m'] : p.type === 'integer' || p.type === 'number' ? (p.minimum ?? 1) : p.type === 'boolean' ? true : p.type === 'object' ? {} : 'x';
  return Object.fromEntries((s.required ?? []).map((k) => [k, value(s.properties[k]!)]));
}

test('every built-in stage is given each defaulted parameter before it runs, as its type promises', () => {
  let defaulted = 0;
  for (const type of registry.values()) {
    const s = type.schema as { required?: string[]; properties: Record<string, { default?: unknown }> };
    const params = minimal(s as Parameters<typeof minimal>[0]);
    const validate = withValidator(type.schema);
    assert.ok(validate(params), `${type.name}: ${JSON.stringify(validate.errors)}`);
    for (const [name, p] of Object.entries(s.properties)) {
      if (p.default === undefined) continue;
      defaulted++;
      assert.deepEqual(params[name], p.default, `${type.name}.${name}`);
    }
  }
  assert.ok(defaulted > 20, `${defaulted} defaulted parameters`);
});
