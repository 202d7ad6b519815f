/**
 * @file Checking the recipe against the loaded models as it is edited, with the engine's own checks:
 * parseRecipe, methodOf, checkParameterNames and planMerge (which reads only the headers each model
 * was opened with when it was added, so this is cheap enough to run on every edit).
 */
import { ValidationError, WeightsoupError } from "../../src/errors";
import type { LoadedModel } from "../../src/model/model";
import { checkParameterNames, methodOf, planMerge, referencedModels } from "../../src/plan/plan";
import { parseRecipe } from "../../src/recipe/recipe";
import { mappingOf } from "./mapping";
import type { PickedModel } from "./models";

/** One problem, as shown: the engine's error code and message, and the model it is about. */
export interface Problem {
  code: string;
  message: string;
  model?: string;
}

/** Every problem an error holds (a ValidationError holds several). */
export function problemsOf(e: unknown): Problem[] {
  const one = (p: WeightsoupError): Problem => ({ code: p.code, message: p.message, ...(typeof p.details.model === "string" ? { model: p.details.model } : {}) });
  if (e instanceof ValidationError) return e.problems.map(one);
  if (e instanceof WeightsoupError) return [one(e)];
  return [{ code: "E_UNEXPECTED", message: `Something unexpected went wrong: ${(e as Error)?.message ?? String(e)}` }];
}

export interface RecipeCheck {
  /** The inputs it checked (a check of other inputs is stale). */
  text: string;
  models: readonly PickedModel[];
  chosen: ReadonlyMap<string, string>;
  /** What is wrong with the recipe itself or with it against the models' headers. */
  problems: Problem[];
  /** Recipe names no loaded model stands for (the page asks which one). */
  unmapped: string[];
  /** Models the recipe uses that could not be read. */
  broken: { name: string; error: string }[];
}

export function checkRecipe(text: string, models: readonly PickedModel[], chosen: ReadonlyMap<string, string>): RecipeCheck {
  const check: RecipeCheck = { text, models, chosen, problems: [], unmapped: [], broken: [] };
  if (text.trim() === "") return check;
  try {
    const recipe = parseRecipe(text);
    const documents = [...(recipe.stages ?? []), recipe];
    for (const document of documents) checkParameterNames(document, methodOf(document));
    const mapping = mappingOf(text, models.map((m) => m.name), chosen);
    check.unmapped = mapping.unmapped;
    const byName = new Map(models.map((m) => [m.name, m]));
    const opened = new Map<string, LoadedModel>();
    for (const [recipeName, loadedName] of mapping.map) {
      const model = byName.get(loadedName)!;
      if (model.loaded) opened.set(recipeName, model.loaded);
      else check.broken.push({ name: loadedName, error: model.error ?? "it could not be read" });
    }
    if (check.unmapped.length || check.broken.length) return check;
    // A later stage of a multi-stage recipe reads an earlier one's output, whose headers exist only
    // once it is merged: the documents that read loaded models only are checked against them.
    for (const document of documents) if (referencedModels(document).every((name) => opened.has(name))) planMerge(document, opened);
  } catch (e) {
    check.problems = problemsOf(e);
  }
  return check;
}
