/**
 * @file Checking the recipe against the loaded models as it is edited, with the engine's own checks:
 * parseRecipe, methodOf, recipeWarnings and planMerge (which reads only the headers each model
 * was opened with when it was added, so this is cheap enough to run on every edit). What needs more
 * than those headers (a LoRA adapter's files, the models' tokenizers) follows in completeCheck.
 */
import { ModelError, ValidationError, WeightsoupError } from "../../src/errors";
import { openModelReference } from "../../src/lora/model-ref";
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE } from "../../src/lora/peft-format";
import type { LoadedModel } from "../../src/model/model";
import { methodOf, planMerge, recipeWarnings, referencedModels } from "../../src/plan/plan";
import { parseRecipe, type Recipe } from "../../src/recipe/recipe";
import { recipeVocabulary } from "../../src/vocab/prepare";
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
  /** What the recipe sets that mergekit does not read: ignored, as mergekit ignores it (plan.ts recipeWarnings). */
  warnings: string[];
  /** Its documents: more than one is a multi-stage recipe, which only a merge (or a path's endpoint, merged whole) runs. */
  documents: number;
  /** Models the recipe uses that could not be read. */
  broken: { name: string; error: string }[];
  /**
   * The header check found nothing wrong, but the recipe's LoRA adapters or tokenizers are still to be
   * read (completeCheck): until then a `base+adapter` name was checked as its base alone, and the
   * embeddings of a recipe with tokenizer keys were not compared.
   */
  pending: boolean;
}

/** What a documents list checks: every document of a multi-stage recipe, the final one last. */
const documentsOf = (recipe: Recipe): Recipe[] => [...(recipe.stages ?? []), recipe];

export function checkRecipe(text: string, models: readonly PickedModel[], chosen: ReadonlyMap<string, string>): RecipeCheck {
  const check: RecipeCheck = { text, models, chosen, problems: [], warnings: [], documents: 1, unmapped: [], broken: [], pending: false };
  if (text.trim() === "") return check;
  try {
    const recipe = parseRecipe(text);
    const documents = documentsOf(recipe);
    check.warnings = documents.flatMap((document) => recipeWarnings(document, methodOf(document)));
    check.documents = documents.length;
    const mapping = mappingOf(text, models.map((m) => m.name), chosen);
    check.unmapped = mapping.unmapped;
    const byName = new Map(models.map((m) => [m.name, m]));
    const misplaced: WeightsoupError[] = [];
    for (const [recipeName, loadedName] of mapping.map) {
      const model = byName.get(loadedName)!;
      if (model.error) check.broken.push({ name: loadedName, error: model.error });
      else if (mapping.adapters.has(recipeName) !== !!model.adapter) misplaced.push(misplacedError(recipeName, loadedName, !!model.adapter));
    }
    if (check.unmapped.length || check.broken.length) return check;
    if (misplaced.length) throw misplaced.length === 1 ? misplaced[0]! : new ValidationError(misplaced);
    // Until its adapter is read, a `base+adapter` name stands as its base: same tensors, same headers.
    const opened = new Map<string, LoadedModel>();
    for (const name of mapping.recipeNames) opened.set(name, byName.get(mapping.map.get(mapping.loras.get(name)?.base ?? name)!)!.loaded!);
    // A later stage of a multi-stage recipe reads an earlier one's output, whose headers exist only
    // once it is merged: the documents that read loaded models only are checked against them.
    for (const document of documents) if (referencedModels(document).every((name) => opened.has(name))) planMerge(document, opened);
    check.pending = mapping.loras.size > 0 || documents.some((d) => !!d.tokenizer);
  } catch (e) {
    check.problems = problemsOf(e);
  }
  return check;
}

function misplacedError(recipeName: string, loadedName: string, isAdapter: boolean): ModelError {
  const message = isAdapter
    ? `model "${recipeName}" is the LoRA adapter folder ${loadedName}; a recipe uses an adapter as BASE+ADAPTER`
    : `"${recipeName}" is the adapter of a BASE+ADAPTER name, but ${loadedName} is a model folder, not a PEFT LoRA adapter (${ADAPTER_CONFIG_FILE} and ${ADAPTER_WEIGHTS_FILE})`;
  return new ModelError("E_ADAPTER", message, { model: recipeName, file: loadedName });
}

/** `base+adapter` models opened by the engine's own code, once per pair of loaded folders. */
const references = new WeakMap<PickedModel, WeakMap<PickedModel, Promise<LoadedModel>>>();

function openReference(name: string, parts: { base: string; adapter: string }, base: PickedModel, adapter: PickedModel): Promise<LoadedModel> {
  let byAdapter = references.get(base);
  if (!byAdapter) references.set(base, (byAdapter = new WeakMap()));
  let opened = byAdapter.get(adapter);
  if (!opened) byAdapter.set(adapter, (opened = openModelReference(name, (part) => (part === parts.base ? base : adapter).folder)));
  return opened;
}

/**
 * The rest of the check, as the merge does it before reading any weights (api/merge.ts prepare): each
 * `base+adapter` name opened with its adapter (openModelReference: the factors' shapes against the
 * base), and, with tokenizer keys, the output vocabulary built from the models' tokenizer files
 * (recipeVocabulary) and passed to planMerge, which compares the embeddings with it. Only tokenizer
 * and adapter files and headers are read.
 */
export async function completeCheck(check: RecipeCheck): Promise<RecipeCheck> {
  if (!check.pending) return check;
  const done: RecipeCheck = { ...check, pending: false };
  try {
    const documents = documentsOf(parseRecipe(check.text));
    const mapping = mappingOf(check.text, check.models.map((m) => m.name), check.chosen);
    const byName = new Map(check.models.map((m) => [m.name, m]));
    // checkRecipe found every name mapped, to a folder of the right kind, before it set `pending`.
    const picked = (part: string) => byName.get(mapping.map.get(part)!)!;
    const opened = new Map<string, LoadedModel>();
    const problems: WeightsoupError[] = [];
    for (const name of mapping.recipeNames) {
      const parts = mapping.loras.get(name);
      if (!parts) {
        opened.set(name, picked(name).loaded!);
        continue;
      }
      try {
        opened.set(name, await openReference(name, parts, picked(parts.base), picked(parts.adapter)));
      } catch (e) {
        if (!(e instanceof WeightsoupError)) throw e;
        problems.push(e);
      }
    }
    if (problems.length) throw problems.length === 1 ? problems[0]! : new ValidationError(problems);
    for (const document of documents) {
      const order = referencedModels(document);
      if (!order.every((name) => opened.has(name))) continue;
      planMerge(document, opened, await recipeVocabulary(document, order, opened));
    }
  } catch (e) {
    done.problems = problemsOf(e);
  }
  return done;
}
