import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { ajvClass } from '../src/util/ajv.js';
import { executors } from '../src/execute/executors/index.js';
import { registry } from '../stages/index.js';
import { keyOf } from '../src/util/hash.js';
import { pipelineSchema } from '../src/pipeline/schema.js';
import { PIPELINE_AJV_OPTIONS, PRECOMPILED_VALIDATOR } from '../src/pipeline/validate.js';

/*
 * Run by `npm run build`: ajv's validator of the built-in registry's pipeline schema, as code
 * (ajv's standalone output), tagged with the schema's key. validate.ts uses it only for a schema
 * with that key; any other registry's schema is compiled when used. It is written beside
 * validate.js, which requires it by a relative path.
 */
const require = createRequire(import.meta.url);
const Ajv = ajvClass();
const standaloneCode = (require('ajv/dist/standalone') as { default: (ajv: unknown, v: unknown) => string }).default;

const schema = pipelineSchema(registry, executors);
const ajv = new Ajv({ ...PIPELINE_AJV_OPTIONS, code: { source: true } });
const code = standaloneCode(ajv, ajv.compile(schema));
writeFileSync(fileURLToPath(new URL(PRECOMPILED_VALIDATOR, new URL('../src/pipeline/validate.js', import.meta.url))), `${code}\nmodule.exports.schemaKey = ${JSON.stringify(keyOf(schema))};\n`);
