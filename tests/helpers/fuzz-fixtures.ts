// The valid starting point every fuzz case mutates: a small Llama-shaped F32 base with an I64 buffer,
// two fine-tunes of it (b split into two shards with an index), and recipes over them that merge
// cleanly as written.
import { join } from "node:path";
import { llamaTensors } from "../../src/example/models";
import type { RefModel } from "../reference/merge";
import { baseModel, fineTune, TINY, writeModel } from "./fixtures";

export const MODEL_NAMES = ["base", "a", "b"] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

/** Shards per model: b is sharded so indexes are fuzzed too. */
export const SHARDS: Readonly<Record<ModelName, number>> = { base: 1, a: 1, b: 2 };

export const TENSOR_NAMES: readonly string[] = [...llamaTensors(TINY).map((t) => t.name), "model.position_ids"];

export function fuzzModels(): Record<ModelName, RefModel> {
  const base = baseModel(31, "F32", TINY, { ints: true });
  return { base, a: fineTune(base, 32, 0.1), b: fineTune(base, 33, 0.1) };
}

/** Writes base, a and b under dir (as writeCase does, without a recipe). */
export async function writeFuzzModels(dir: string, models: Record<ModelName, RefModel>): Promise<void> {
  for (const name of MODEL_NAMES) await writeModel(join(dir, name), models[name], { shards: SHARDS[name] });
}

/**
 * Valid recipes over ./base, ./a and ./b, one per method and shape of recipe (models, slices, filters,
 * gradients, dtypes). Each merges cleanly and the reference implementation (tests/reference/merge.ts)
 * runs it. (No `align:` recipe: no built-in permutation spec covers the I64 buffer; recipe mutations
 * add `align` keys.)
 */
export const RECIPES: readonly { name: string; recipe: Record<string, unknown> }[] = [
  {
    name: "linear",
    recipe: { merge_method: "linear", models: [m("base", { weight: 0.5 }), m("a", { weight: 0.3 }), m("b", { weight: 0.2 })] },
  },
  {
    name: "ties",
    recipe: { merge_method: "ties", base_model: "./base", models: [m("a", { weight: 1, density: 0.5 }), m("b", { weight: 0.5, density: 0.7 })] },
  },
  {
    name: "slerp",
    recipe: {
      merge_method: "slerp", base_model: "./base", models: [m("base"), m("a")],
      parameters: { t: [{ filter: "self_attn", value: [0, 0.5, 1] }, { filter: "mlp", value: [1, 0.5, 0] }, { value: 0.4 }] },
    },
  },
  {
    name: "task_arithmetic",
    recipe: { merge_method: "task_arithmetic", base_model: "./base", parameters: { lambda: 0.8 }, models: [m("a", { weight: 0.6 }), m("b", { weight: [0.2, 0.9] })], dtype: "bfloat16" },
  },
  {
    name: "dare_ties",
    recipe: { merge_method: "dare_ties", base_model: "./base", models: [m("a", { weight: 1, density: 0.5 }), m("b", { weight: 1, density: 0.6 })], out_dtype: "float16" },
  },
  {
    name: "passthrough",
    recipe: {
      merge_method: "passthrough",
      slices: [{ sources: [{ model: "./base", layer_range: [0, 2] }] }, { sources: [{ model: "./a", layer_range: [1, 3], parameters: { scale: 0.5 } }] }],
    },
  },
  {
    name: "linear-slices",
    recipe: {
      merge_method: "linear",
      slices: [{ sources: [{ model: "./a", layer_range: [0, 3], parameters: { weight: 0.5 } }, { model: "./b", layer_range: [0, 3], parameters: { weight: 0.5 } }] }],
    },
  },
];

function m(name: string, parameters?: Record<string, unknown>) {
  return { model: `./${name}`, ...(parameters ? { parameters } : {}) };
}
