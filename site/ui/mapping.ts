/**
 * @file Recipe model names ("org/math", "./math", "math") and the models loaded in the page: which
 * loaded model each name stands for. A `base+adapter` name (mergekit's model+lora) stands for two
 * loaded folders, a model and a LoRA adapter, each mapped on its own, as the engine asks for them.
 */
import { isMap, isSeq, parseDocument } from "yaml";
import { splitLoraReference } from "../../src/lora/model-ref";
import { parseRecipe } from "../../src/recipe/recipe";
import { externalModels } from "../../src/recipe/stages";
import { RECIPE_YAML } from "../../src/recipe/yaml-schema";

/** Every model name the recipe refers to, base first; read leniently when the recipe does not parse. */
export function recipeModelNames(text: string): string[] {
  if (text.trim() === "") return [];
  try {
    // A multi-stage recipe's documents use each other by name: only the models from outside need loading.
    return externalModels(parseRecipe(text));
  } catch {
    // An invalid recipe still shows which names it uses, so they can be mapped while it is fixed.
    const doc = parseDocument(text, RECIPE_YAML);
    if (doc.errors.length || !isMap(doc.contents)) return [];
    const names = new Set<string>();
    const add = (v: unknown) => { if (typeof v === "string" && v.trim()) names.add(v.trim()); };
    add(doc.get("base_model"));
    const models = doc.get("models");
    if (isSeq(models)) for (const m of models.items) if (isMap(m)) add(m.get("model"));
    const slices = doc.get("slices");
    if (isSeq(slices)) {
      for (const s of slices.items) {
        if (!isMap(s)) continue;
        add(s.get("base_model"));
        const sources = s.get("sources");
        if (isSeq(sources)) for (const src of sources.items) if (isMap(src)) add(src.get("model"));
      }
    }
    return [...names];
  }
}

/**
 * Maps recipe model names to loaded models: a person's choice, else an exact name, else the one loaded
 * model named like the last path segment ("org/math", "./math" -> "math"). Names left out need a choice.
 * The last segment is a guess, so it is made only where it cannot confuse two models: not when another
 * name the recipe uses has the same last segment and a different path ("orgA/model", "orgB/model"), nor
 * onto a loaded model that another path already took by its exact name or a choice. Two names of one
 * path ("math", "./math") are the same folder, as the command line reads them.
 */
export function autoMap(recipeNames: readonly string[], loaded: readonly string[], chosen: ReadonlyMap<string, string>): Map<string, string> {
  const out = new Map<string, string>();
  const guesses: string[] = [];
  for (const name of recipeNames) {
    const pick = chosen.get(name);
    if (pick && loaded.includes(pick)) out.set(name, pick);
    else if (loaded.includes(name)) out.set(name, name);
    else guesses.push(name);
  }
  for (const name of guesses) {
    const last = lastSegment(name);
    const path = pathOf(name);
    const ambiguous = recipeNames.some((other) => pathOf(other) !== path && lastSegment(other).toLowerCase() === last.toLowerCase());
    const hits = loaded.filter((l) => l === last || l.toLowerCase() === last.toLowerCase());
    const taken = [...out].some(([other, to]) => to === hits[0] && pathOf(other) !== path);
    if (hits.length === 1 && !ambiguous && !taken) out.set(name, hits[0]!);
  }
  return out;
}

/** A recipe name's path without a revision, "./" parts and trailing slashes: "./org/math/" -> "org/math". */
function pathOf(name: string): string {
  return name.replace(/@.*$/, "").split("/").filter((p) => p && p !== ".").join("/");
}

function lastSegment(name: string): string {
  return pathOf(name).split("/").pop() || name;
}

export interface Mapping {
  /** The recipe's model names as written, base first. */
  recipeNames: string[];
  /** The folders they need, in that order: each plain name, and each `base+adapter` name's two parts. */
  names: string[];
  /** Name in `names` -> loaded name. */
  map: Map<string, string>;
  /** Names in `names` that map to no loaded model. */
  unmapped: string[];
  /** The `base+adapter` recipe names -> their two parts (both in `names`). */
  loras: Map<string, { base: string; adapter: string }>;
  /** The parts that name LoRA adapters (the rest name models). */
  adapters: Set<string>;
}

/**
 * The parts of a well-formed `base+adapter` name (as splitLoraReference reads it for the engine), or
 * undefined: a malformed one ("a+", "a+b+c") stays one name, which the engine refuses with its reason.
 */
export function loraParts(name: string): { base: string; adapter: string } | undefined {
  const parts = splitLoraReference(name);
  return parts && parts.base && parts.adapter && !parts.adapter.includes("+") ? parts : undefined;
}

let memo: { text: string; loaded: readonly string[]; chosen: ReadonlyMap<string, string>; result: Mapping } | undefined;

/** The mapping for a recipe text (memoised on its inputs: the form asks for it on every render). */
export function mappingOf(text: string, loaded: readonly string[], chosen: ReadonlyMap<string, string>): Mapping {
  if (memo && memo.text === text && memo.chosen === chosen && memo.loaded.join("\n") === loaded.join("\n")) return memo.result;
  const recipeNames = recipeModelNames(text);
  const loras = new Map<string, { base: string; adapter: string }>();
  const adapters = new Set<string>();
  const names: string[] = [];
  for (const name of recipeNames) {
    const parts = loraParts(name);
    if (parts) {
      loras.set(name, parts);
      adapters.add(parts.adapter);
    }
    for (const n of parts ? [parts.base, parts.adapter] : [name]) if (!names.includes(n)) names.push(n);
  }
  const map = autoMap(names, loaded, chosen);
  const result = { recipeNames, names, map, unmapped: names.filter((n) => !map.has(n)), loras, adapters };
  memo = { text, loaded: [...loaded], chosen, result };
  return result;
}
