import { mergeMethods } from '../src/merge/methods/index.js';
import { modelCountProblem } from '../src/merge/method.js';
import { completeParams } from '../src/merge/params.js';
import { defineStage, EXPRESSION_STRING, pathInputs } from '../src/stage-type.js';

const PATH = { type: 'string', minLength: 1 } as const;
const PATTERNS = { type: 'array', items: { type: 'string', minLength: 1 } } as const;

/**
 * A method's parameter schema for editors: defaults said in the descriptions (they are filled in
 * by complete(), from the method's own schema; a default inside anyOf would not be applied).
 */
function describedDefaults(schema: object): object {
  const s = schema as { properties?: Record<string, { default?: unknown; description?: string }> };
  return {
    ...schema,
    properties: Object.fromEntries(Object.entries(s.properties ?? {}).map(([k, { default: d, ...rest }]) => [k, { ...rest, description: `${rest.description ?? k} (default ${JSON.stringify(d)})` }])),
  };
}

/** What merge takes (merge-search takes the same, less the weights it searches). */
export const MERGE_PROPERTIES = {
  models: { type: 'array', minItems: 1, items: PATH, description: 'Checkpoints to merge: .safetensors files or model directories (model.safetensors, or shards with model.safetensors.index.json). The first gives the layout of the result' },
  base: { ...PATH, description: 'The model task vectors are taken against (task_arithmetic, ties, dare)' },
  method: { enum: [...mergeMethods.keys()], default: 'linear', description: [...mergeMethods.values()].map((m) => `${m.name}: ${m.description}`).join('; ') },
  weights: { type: 'array', items: { type: 'number' }, description: 'One per model (default: the method\'s, e.g. 1/k for linear)' },
  params: { type: 'object', default: {}, description: "The method's own parameters, e.g. { density: 0.3 } for ties" },
  include: { ...PATTERNS, description: 'Merge only tensors matching one of these globs (* matches any run of characters); the others are copied from the first model' },
  exclude: { ...PATTERNS, description: 'Copy tensors matching these globs from the first model instead of merging them (a task head, say)' },
} as const;

/** For editors: each method's own parameters (an expression stands for them until it is evaluated). */
export const METHOD_PARAMS = [...mergeMethods.values()].map((m) => ({ if: { properties: { method: { const: m.name } }, required: ['method'] }, then: { properties: { params: { anyOf: [describedDefaults(m.schema), EXPRESSION_STRING] } } } }));

/**
 * Merge same-architecture checkpoints from any framework (safetensors files, or Hugging Face
 * directories with config and tokenizer) with one of the merge methods, with fixed weights.
 * The result has the first model's layout and its other files.
 */
export const merge = defineStage({
  name: 'merge',
  version: 1,
  description: 'Merge checkpoints (safetensors files or Hugging Face model directories) with a merge method and fixed weights',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['models'],
    properties: MERGE_PROPERTIES,
    allOf: METHOD_PARAMS,
  },
  inputs: (p) => pathInputs(p, ['models', 'base']),
  outputs: () => ({ model: 'dir' }),
  complete(p) {
    const method = mergeMethods.get(p.method)!;
    const problems = completeParams(method, p.params);
    const k = p.models.length;
    if (p.weights !== undefined && p.weights.length !== k) problems.push(`"weights" has ${p.weights.length} numbers for ${k} models`);
    if (method.needsBase && p.base === undefined) problems.push(`method ${method.name} needs "base": the model its task vectors are taken against`);
    const count = modelCountProblem(method, k);
    if (count) problems.push(count);
    return problems;
  },
  async run(ctx) {
    const { planMerge, writeMerge } = await import('../src/merge/engine.js');
    const p = ctx.params;
    const method = mergeMethods.get(p.method)!;
    const plan = planMerge({ models: p.models.map(ctx.resolve), base: p.base === undefined ? undefined : ctx.resolve(p.base), method, params: p.params, include: p.include, exclude: p.exclude, labels: p.models });
    const weights = p.weights ?? method.defaultWeights(p.models.length);
    const t0 = performance.now();
    await writeMerge(plan, plan.groupNames.map(() => weights), ctx.outs.model!, { threads: ctx.threads });
    const merged = plan.groupOf.size;
    const copied = plan.models[0]!.tensors.size - merged;
    ctx.log(`${method.name}: merged ${merged} tensors of ${p.models.length} models, copied ${copied} from the first, in ${((performance.now() - t0) / 1000).toFixed(2)}s`);
    return { metrics: { tensors_merged: merged, tensors_copied: copied } };
  },
});
