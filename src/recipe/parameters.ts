/**
 * @file Parameter values for one tensor, as mergekit's ConfigReader computes them: the value can depend
 * on the tensor's name (filters), its relative position in the slice (gradients, through `t`) and the
 * model (per-model blocks). Lookup order: the model's own block in the slice, the slice's block, the
 * recipe's top-level block.
 */
import type { OutputSlice, Parameters, Recipe, Setting } from "./recipe";

export type Value = number | string | boolean;

/**
 * One setting at relative position t in [0, 1]: a scalar is itself; a list of numbers (booleans as 0 and 1) is a gradient,
 * interpolated piecewise-linearly between evenly spaced anchors; a list of other scalars is stepped; a
 * list of {filter, value} picks the first entry whose filter is absent, "*", or a substring of the name.
 * Returns undefined when no filter matches.
 */
export function evaluateSetting(setting: Setting, tensorName: string, t: number): Value | undefined {
  if (!Array.isArray(setting)) {
    if (typeof setting === "object") return matches(setting.filter, tensorName) ? evaluateSetting(setting.value, tensorName, t) : undefined;
    return setting;
  }
  // Python's bool is an int, so mergekit interpolates a list of booleans (and of numbers and booleans)
  // as a gradient of 0s and 1s: [false, true] is 0.5 halfway, which its `if normalize:` takes as true.
  // Read in place: a gradient may have a million entries and is looked up for every tensor.
  if (setting.every((e) => typeof e === "number" || typeof e === "boolean")) {
    const scaled = t * (setting.length - 1);
    const i0 = Math.trunc(scaled);
    const i1 = Math.min(setting.length - 1, i0 + 1);
    const frac = scaled - i0;
    return (1 - frac) * Number(setting[i0]) + frac * Number(setting[i1]);
  }
  if (setting.every((e) => typeof e !== "object")) return setting[Math.trunc(t * (setting.length - 1))] as Value;
  for (const entry of setting) {
    if (entry !== null && typeof entry === "object" && !Array.isArray(entry)) {
      if (matches(entry.filter, tensorName)) return evaluateSetting(entry.value, tensorName, t);
    }
  }
  return undefined;
}

function matches(filter: string | undefined, name: string): boolean {
  return filter === undefined || filter === "*" || name.includes(filter);
}

/** Where parameters are looked up for one output tensor. */
export interface ParameterScope {
  recipe: Recipe;
  slice: OutputSlice;
  t: number;
}

/** Each model's own parameter block in a slice (sources are unique per slice: recipe.ts refuses repeats). */
const sourceBlocks = new WeakMap<OutputSlice, Map<string, Parameters | undefined>>();

function sourceBlock(slice: OutputSlice, model: string): Parameters | undefined {
  let blocks = sourceBlocks.get(slice);
  if (!blocks) {
    blocks = new Map();
    for (const s of slice.sources) if (!blocks.has(s.model)) blocks.set(s.model, s.parameters);
    sourceBlocks.set(slice, blocks);
  }
  return blocks.get(model);
}

/**
 * The value of `name` for a tensor: per-model blocks are consulted only when `model` is given (that
 * model's source entry in the slice), then the slice's block, then the recipe's.
 */
export function lookupParameter(scope: ParameterScope, name: string, tensorName: string, model?: string): Value | undefined {
  const blocks = [model === undefined ? undefined : sourceBlock(scope.slice, model), scope.slice.parameters, scope.recipe.parameters];
  for (const block of blocks) {
    if (!block || !Object.hasOwn(block, name)) continue;
    const value = evaluateSetting(block[name]!, tensorName, scope.t);
    if (value !== undefined) return value;
  }
  return undefined;
}
