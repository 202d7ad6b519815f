/**
 * @file The in-memory recipes that loss paths and soups evaluate: each is ordinary mergekit YAML, so
 * evaluating it equals writing that merge with `weightsoup merge` and running `eval` on the folder,
 * bit for bit (evaluate's guarantee). The YAML text is kept, so a point can be reproduced by hand.
 */
import { stringify } from "yaml";
import { RECIPE_YAML } from "../recipe/yaml-schema";
import { parseRecipe, type Recipe } from "../recipe/recipe";

/**
 * (1 − λ)·A + λ·B as a linear merge. `normalize: false`, so the output is exactly
 * fround(fround((1 − λ)·a) + fround(λ·b)) per element, with no division by a weight sum that could
 * differ from 1 by a rounding.
 */
export function linearPointRecipe(a: string, b: string, lambda: number): Recipe {
  return recipe({
    merge_method: "linear",
    models: [{ model: a, parameters: { weight: 1 - lambda } }, { model: b, parameters: { weight: lambda } }],
    parameters: { normalize: false },
  }, `linear path λ=${lambda}`);
}

/** SLERP from A (λ = 0, the base) to B (λ = 1), per tensor, as mergekit's slerp with t = λ. */
export function slerpPointRecipe(a: string, b: string, lambda: number): Recipe {
  return recipe({
    merge_method: "slerp",
    base_model: a,
    models: [{ model: a }, { model: b }],
    parameters: { t: lambda },
  }, `slerp path λ=${lambda}`);
}

/** The uniform average of `models` (in this order: it fixes the float32 summation order). */
export function uniformSoupRecipe(models: readonly string[]): Recipe {
  return recipe({ merge_method: "linear", models: models.map((model) => ({ model, parameters: { weight: 1 } })) }, `uniform soup of ${models.length}`);
}

function recipe(object: object, file: string): Recipe {
  return parseRecipe(stringify(object, RECIPE_YAML), file);
}

/** λ_i = i / (n − 1), i = 0 … n − 1: both endpoints included. */
export function lambdas(points: number): number[] {
  return Array.from({ length: points }, (_, i) => i / (points - 1));
}
