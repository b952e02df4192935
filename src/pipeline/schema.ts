/**
 * The pipeline schema, written out to schemas/pipeline.schema.json by `npm run schema` (a test
 * keeps the two equal). Built-in stage types contribute the `uses` enum and, through if/then,
 * the schema of their `with`, so editors complete both.
 */
import { EXPRESSION_STRING, type StageType } from '../stage-type.js';
import type { ExecutorKind } from '../executor.js';

const BASE = {
  $schema: "http://json-schema.org/draft-07/schema#",
  "$id": "https://github.com/dfwe/dfwe/schemas/pipeline.schema.json",
  "title": "dfwe pipeline",
  "description": "A dfwe pipeline: named stages that become content-hashed nodes. Values may hold ${{ \u2026 }} CEL expressions over `params`, sweep and foreach variables, the stage's own `outs`, and upstream outputs (`stages.NAME.outs.OUT`); a reference to another stage creates an edge. Functions beyond CEL's own: combinations(list, k), sorted(list), unique(list), range(n), quote(value) (a value as shell words, for cmd).",
  "type": "object",
  "additionalProperties": false,
  "required": [
    "version",
    "stages"
  ],
  "properties": {
    "version": {
      "description": "Pipeline format version. Only 1 exists.",
      "const": 1
    },
    "name": {
      "description": "A short name for the pipeline, shown in reports.",
      "type": "string"
    },
    "description": {
      "description": "Free text for humans; ignored by the engine and never part of a key.",
      "type": "string"
    },
    "params": {
      "description": "Named values that stages read as ${{ params.NAME }}. Only the params a stage actually reads are part of its key, so editing one param reruns only the stages that use it.",
      "type": "object"
    },
    "runtime": {
      "description": "Where ML stages run. The runtime (backend, tfjs version, Node major) is part of ML stages' keys: numbers are bit-identical only within one.",
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "backend": {
          "description": "auto (default): tensorflow-gpu when @tensorflow/tfjs-node-gpu is installed and a GPU is visible, else tensorflow when @tensorflow/tfjs-node is installed, else wasm. `--backend` overrides it.",
          "enum": ["auto", "tensorflow-gpu", "tensorflow", "wasm", "cpu"]
        }
      }
    },
    "report": {
      "description": "What `dfwe metrics`, `runs`, `diff` and the report compare: the stage of the baseline and of the method, each an evaluate stage or a stage with a `metrics` file. Each method node is paired with the baseline node that agrees with it on their shared variables; the table reports per task the baseline, the method and the delta (per target: best and mean over a sweep's source sets). A node's score for task T is its metric T.score (`{\"T\": {\"score\": 71.2}}` in a metrics file); a bare `score` is the score of the task named by the `task` variable.",
      "type": "object",
      "additionalProperties": false,
      "required": ["baseline", "method"],
      "properties": {
        "baseline": { "type": "string", "description": "The baseline's stage: evaluate, or any stage with metrics" },
        "method": { "type": "string", "description": "The method's stage: evaluate, or any stage with metrics" },
        "score": { "type": "string", "minLength": 1, "description": "The metric compared, higher is better (default score): TASK.NAME per task, or a bare NAME" },
        "task": { "type": "string", "minLength": 1, "description": "The variable (sweep or foreach) whose value names the task of a bare score, e.g. target; without it a bare score is one row, all" }
      }
    },
    "strict": {
      "description": "When true, a file of the workspace that a command names (a stage's cmd, a search's score or score_server) but its stage does not declare (deps, or an output it reads) is an input error; by default it is a located warning, since a change to it would not rerun the stage.",
      "type": "boolean"
    },
    "remote": {
      "description": "A shared cache on an S3-compatible store, s3://BUCKET or s3://BUCKET/PREFIX: a run downloads what it holds instead of running it and uploads what it commits (with $DFWE_REMOTE_KEY), status says what it holds. `--remote` and $DFWE_REMOTE override it. Credentials and the store's address come from the AWS variables, never from the pipeline. Not part of any key.",
      "type": "string",
      "pattern": "^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"
    },
    "allow_outside": {
      "description": "Directories outside the workspace (absolute, or relative to it) that deps and outputs may really be in, through a symlink in the workspace. Without it, a dep or output that a symlink leads outside the workspace is an input error. Outputs never name `..` or an absolute path.",
      "type": "array",
      "items": { "type": "string", "minLength": 1 }
    },
    "read_only": {
      "description": "Directories outside the workspace (absolute, or relative to it) that stages read and dfwe never writes: a Hugging Face cache, a shared models folder, a dataset on another disk. A dep, a dataset path or a checkpoint to merge may name a path in one (`/models/base.safetensors`, `../shared/data`); its content is part of the key as any dep's is. A path outside the workspace in no directory listed here is an input error.",
      "type": "array",
      "items": { "type": "string", "minLength": 1 }
    },
    "sweep": {
      "description": "Sweep variables, in order: the pipeline's stages are expanded once per assignment (a sweep member). A value is a list, or an expression giving a list that may read params and earlier variables, e.g. `sources: ${{ combinations(params.tasks.filter(t, t != target), 3) }}`. Expressions see the variables by name. A list value (such as a set of tasks) is a set: sorted, without repeats. Nodes that come out identical in several members run once.",
      "type": "object",
      "propertyNames": {
        "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"
      },
      "additionalProperties": {
        "type": ["array", "string"]
      }
    },
    "stages": {
      "description": "The stages, by name. A name must be a CEL identifier (letters, digits, underscore) because expressions refer to it as `stages.NAME`. Order does not matter: edges come from references.",
      "type": "object",
      "minProperties": 1,
      "propertyNames": {
        "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"
      },
      "additionalProperties": {
        "$ref": "#/definitions/stage"
      }
    }
  },
  "definitions": {
    "stage": {
      "description": "One unit of work. Exactly one of `cmd` (a shell command) or `uses` (a built-in stage type).",
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "description": {
          "description": "Free text for humans; never part of a key.",
          "type": "string"
        },
        "cmd": {
          "description": "A shell command (/bin/sh -c), run with the workspace as working directory. It must write every path declared in `outs`. Its text after expression substitution is part of the key.",
          "type": "string",
          "minLength": 1
        },
        "uses": {
          "description": "A built-in stage type; its parameters go in `with`. Built-in stages run in their own process through `dfwe exec`.",
          "type": "string",
          "minLength": 1
        },
        "with": {
          "description": "Parameters of the built-in stage type named by `uses`, checked against that type's own schema.",
          "type": "object"
        },
        "foreach": {
          "description": "Fan-out inside a sweep member: one node per value of each variable (all combinations, in order), e.g. `tasks: ${{ [[target], [target] + sources] + sources.map(s, [s]) }}`. Another stage that binds the same variable reads the matching node; one that does not reads a list of all of them. A node's id names only the variables it actually reads, e.g. expert[tasks=emotion+qa].",
          "type": "object",
          "propertyNames": {
            "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"
          },
          "additionalProperties": {
            "type": ["array", "string"]
          }
        },
        "deps": {
          "description": "Files or directories this stage reads, relative to the workspace. Their content digests are part of the key. A path that another stage declares in `outs` (or lies inside one) makes that stage upstream.",
          "type": "array",
          "items": {
            "type": "string",
            "minLength": 1
          }
        },
        "outs": {
          "description": "What the stage writes, as NAME: PATH (relative to the workspace; NAME is a CEL identifier). Outputs are stored in the cache by content and materialised read-only at PATH. Downstream stages refer to them as ${{ stages.THIS.outs.NAME }}, the stage itself as ${{ outs.NAME }}. A null PATH (`NAME: ~`) takes the default out/STAGE/NAME (out/STAGE/VARS/NAME in a sweep). For `uses` stages the type declares the names and PATH overrides the default.",
          "type": "object",
          "propertyNames": {
            "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"
          },
          "additionalProperties": {
            "type": ["string", "null"],
            "minLength": 1
          }
        },
        "metrics": {
          "description": "Outputs that are metrics files, as NAME: PATH like outs (a null PATH takes the default): JSON objects of numbers, nested allowed (`{\"t0\": {\"score\": 81.5, \"loss\": 0.42}}` gives the metrics t0.score and t0.loss). Their numbers become the node's metrics, shown by `dfwe show` and compared by `report`. A command stage's only; a built-in stage reports its own.",
          "type": "object",
          "propertyNames": {
            "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"
          },
          "additionalProperties": {
            "type": ["string", "null"],
            "minLength": 1
          }
        },
        "env": {
          "description": "Extra environment variables for the command. Part of the key.",
          "type": "object",
          "additionalProperties": {
            "type": [
              "string",
              "number",
              "boolean"
            ]
          }
        },
        "resources": {
          "description": "Resource tokens the stage holds while it runs, e.g. {cpu: 1, gpu: 1}, or a param: {gpu: ${{ params.gpus }}}. Capacities: cpu = --jobs, gpu = detected GPUs, others set with --resource NAME=N. A stage holding gpu tokens sees its own devices in CUDA_VISIBLE_DEVICES. Under the Slurm executor, cpu becomes --cpus-per-task and gpu --gres=gpu:N. Not part of the key.",
          "type": "object",
          "additionalProperties": {
            "anyOf": [
              { "type": "integer", "minimum": 0 },
              { "type": "string", "pattern": "^\\s*\\$\\{\\{[\\s\\S]*\\}\\}\\s*$", "description": "a ${{ … }} expression giving a whole number" }
            ]
          }
        }
      }
    }
  }
} as const;


/** Each property of a `with` schema may also be an expression (checked again once resolved). */
function allowExpressions(schema: object): object {
  const s = schema as { properties?: Record<string, object> };
  if (!s.properties) return schema;
  return { ...schema, properties: Object.fromEntries(Object.entries(s.properties).map(([k, p]) => [k, { anyOf: [p, EXPRESSION_STRING] }])) };
}

export function pipelineSchema(registry: ReadonlyMap<string, StageType>, executors: ReadonlyMap<string, ExecutorKind>): Record<string, unknown> {
  const schema = structuredClone(BASE) as unknown as {
    properties: Record<string, unknown>;
    definitions: Record<string, unknown> & { stage: Record<string, unknown> & { properties: Record<string, unknown> & { uses: Record<string, unknown> } } };
  };
  // Each executor's own settings, under its name: for every node, and for one stage's.
  const kinds = [...executors.values()];
  schema.properties.executor = {
    description: `Where nodes run: ${kinds.map((k) => `${k.name}, ${k.description}`).join('; ')}. \`--executor\` overrides it.`,
    enum: kinds.map((k) => k.name),
  };
  for (const k of kinds) {
    if (!k.optionsSchema) continue;
    schema.definitions[k.name] = k.optionsSchema;
    schema.properties[k.name] = { $ref: `#/definitions/${k.name}`, description: `Settings of the ${k.name} executor for every node; a stage's own override them. Not part of any key.` };
    schema.definitions.stage.properties[k.name] = { $ref: `#/definitions/${k.name}`, description: `This stage's settings of the ${k.name} executor, over the pipeline's. Not part of the key.` };
  }
  const types = [...registry.values()].sort((a, b) => a.name.localeCompare(b.name));
  const stage = schema.definitions.stage;
  stage.properties.uses = { ...stage.properties.uses, enum: types.map((t) => t.name) };
  stage.allOf = types.map((t) => ({
    if: { properties: { uses: { const: t.name } }, required: ['uses'] },
    then: { properties: { with: { description: t.description, ...allowExpressions(t.schema) } } },
  }));
  return schema as unknown as Record<string, unknown>;
}
