// The fixtures of the measuring commands' fuzz cases (issue 11: sweep, path, soup, diagnose,
// extract-lora): three tiny Llamas of one shape (a base and two "fine-tunes", unrelated random
// weights, which is all the commands need), token ids, and recipes over them whose keys a sweep can
// address in every way the README lists (a model's weight, a gradient anchor, a filter entry's value,
// a slice's source, a new `parameters` name), plus recipes a sweep or diagnose must refuse.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { decoderIds, decoderModel, writeDecoderModel } from "./decoder-models";

export const MEASURE_MODELS = ["base", "a", "b"] as const;
export const MEASURE_VOCAB = 160;
/** Token ids every case scores (ids.json): 24 ids in windows of 8 keep a forward pass to milliseconds. */
export const MEASURE_IDS = decoderIds(MEASURE_VOCAB, 24, 5);
export const MEASURE_CONTEXT = 8;

export interface MeasureRecipe {
  file: string;
  text: string;
  /** Keys that address a number of this recipe (valid starting points for mutated keys). */
  keys: string[];
}

/**
 * The recipes. `keys` of a recipe a sweep must refuse whatever the key (multi-stage) are still keys
 * its documents have.
 */
export const MEASURE_RECIPES: readonly MeasureRecipe[] = [
  {
    file: "ties.yml",
    text: "merge_method: ties\nbase_model: ./base\nmodels:\n  - model: ./a\n    parameters: {weight: [1.0, 0.5], density: 0.5}\n  - model: ./b\n    parameters: {weight: 0.5, density: 0.7}\nparameters: {normalize: true, int8_mask: false}\n",
    keys: ["models[0].parameters.weight[0]", "models[0].parameters.weight[1]", "models[0].parameters.density", "models[1].parameters.weight", "models[1].parameters.density", "parameters.lambda"],
  },
  {
    file: "slerp.yml",
    text: "merge_method: slerp\nbase_model: ./a\nmodels:\n  - model: ./a\n  - model: ./b\nparameters:\n  t: [0.1, 0.9]\n",
    keys: ["parameters.t[0]", "parameters.t[1]"],
  },
  {
    file: "filter.yml",
    text: "merge_method: task_arithmetic\nbase_model: ./base\nmodels:\n  - model: ./a\n    parameters:\n      weight:\n        - {filter: self_attn, value: 0.3}\n        - {value: 0.5}\n  - model: ./b\n    parameters: {weight: 0.4}\ndtype: float32\n",
    keys: ["models[0].parameters.weight[0].value", "models[0].parameters.weight[1].value", "models[1].parameters.weight"],
  },
  {
    file: "slices.yml",
    text: "merge_method: linear\nslices:\n  - sources:\n      - {model: ./a, layer_range: [0, 1], parameters: {weight: 0.5}}\n      - {model: ./b, layer_range: [0, 1], parameters: {weight: 0.5}}\n  - sources:\n      - {model: ./a, layer_range: [1, 2], parameters: {weight: 0.2}}\n      - {model: ./b, layer_range: [1, 2], parameters: {weight: 0.8}}\n",
    keys: ["slices[0].sources[0].parameters.weight", "slices[1].sources[1].parameters.weight"],
  },
  {
    // A valid one-document recipe with a stray `---` after it (parseRecipe reads one document).
    file: "trailing.yml",
    text: "merge_method: linear\nmodels:\n  - model: ./a\n    parameters: {weight: 0.5}\n  - model: ./b\n    parameters: {weight: 0.5}\n---\n",
    keys: ["models[0].parameters.weight", "models[1].parameters.weight"],
  },
  {
    file: "stages.yml",
    text: "name: first\nmerge_method: linear\nmodels:\n  - model: ./a\n    parameters: {weight: 0.5}\n  - model: ./b\n    parameters: {weight: 0.5}\n---\nmerge_method: linear\nmodels:\n  - model: first\n    parameters: {weight: 0.5}\n  - model: ./base\n    parameters: {weight: 0.5}\n",
    keys: ["models[0].parameters.weight", "models[1].parameters.weight"],
  },
];

/** Recipes only the CLI cases use: diagnose's subject and a method without task vectors. */
export const DIAGNOSE_RECIPE = "ties.yml";
export const NO_TASK_VECTORS_RECIPE = { file: "linear.yml", text: "merge_method: linear\nmodels:\n  - model: ./a\n    parameters: {weight: 0.5}\n  - model: ./b\n    parameters: {weight: 0.5}\n" };

/** Writes the models, ids.json and every recipe into dir. */
export async function writeMeasureFixtures(dir: string): Promise<void> {
  for (const [i, name] of MEASURE_MODELS.entries()) await writeDecoderModel(join(dir, name), decoderModel("llama-gqa-untied", { seed: 31 + i }));
  await writeFile(join(dir, "ids.json"), JSON.stringify(MEASURE_IDS));
  for (const r of [...MEASURE_RECIPES, NO_TASK_VECTORS_RECIPE]) await writeFile(join(dir, r.file), r.text);
}
