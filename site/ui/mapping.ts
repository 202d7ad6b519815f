/**
 * @file Recipe model names ("org/math", "./math", "math") and the models loaded in the page: which
 * loaded model each name stands for.
 */
import { isMap, isSeq, parseDocument } from "yaml";
import { parseRecipe } from "../../src/recipe/recipe";
import { externalModels } from "../../src/recipe/stages";

/** Every model name the recipe refers to, base first; read leniently when the recipe does not parse. */
export function recipeModelNames(text: string): string[] {
  if (text.trim() === "") return [];
  try {
    // A multi-stage recipe's documents use each other by name: only the models from outside need loading.
    return externalModels(parseRecipe(text));
  } catch {
    // An invalid recipe still shows which names it uses, so they can be mapped while it is fixed.
    const doc = parseDocument(text);
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
 */
export function autoMap(recipeNames: readonly string[], loaded: readonly string[], chosen: ReadonlyMap<string, string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of recipeNames) {
    const pick = chosen.get(name);
    if (pick && loaded.includes(pick)) out.set(name, pick);
    else if (loaded.includes(name)) out.set(name, name);
    else {
      const last = name.replace(/@.*$/, "").split("/").filter((p) => p && p !== ".").pop() ?? name;
      const hits = loaded.filter((l) => l === last || l.toLowerCase() === last.toLowerCase());
      if (hits.length === 1) out.set(name, hits[0]!);
    }
  }
  return out;
}

export interface Mapping {
  /** The recipe's model names, base first. */
  names: string[];
  /** Recipe name -> loaded name. */
  map: Map<string, string>;
  /** Recipe names that map to no loaded model. */
  unmapped: string[];
}

let memo: { text: string; loaded: readonly string[]; chosen: ReadonlyMap<string, string>; result: Mapping } | undefined;

/** The mapping for a recipe text (memoised on its inputs: the form asks for it on every render). */
export function mappingOf(text: string, loaded: readonly string[], chosen: ReadonlyMap<string, string>): Mapping {
  if (memo && memo.text === text && memo.chosen === chosen && memo.loaded.join("\n") === loaded.join("\n")) return memo.result;
  const names = recipeModelNames(text);
  const map = autoMap(names, loaded, chosen);
  const result = { names, map, unmapped: names.filter((n) => !map.has(n)) };
  memo = { text, loaded: [...loaded], chosen, result };
  return result;
}
