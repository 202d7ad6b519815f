/**
 * @file The recipe form and the YAML are two views of one recipe. Editing the form writes the YAML
 * anew; typing or pasting YAML fills the form, as far as a form can show it (slices and filtered
 * parameters stay YAML-only, and the YAML is then what runs, exactly as written).
 */
import { parse, stringify } from "yaml";
import { METHODS } from "../../src/merge/methods";
import { parseRecipe, type Setting } from "../../src/recipe/recipe";

export interface ModelRow {
  /** Loaded model name. */
  name: string;
  include: boolean;
  /** A number or a gradient list as typed ("0.5", "[0, 0.5, 1]"). */
  weight: string;
  density: string;
}

export interface FormState {
  method: string;
  /** Loaded model name, "" for none. */
  base: string;
  rows: ModelRow[];
  t: string;
  normalize: boolean;
  lambda: string;
  /** "" (inputs' dtype), bfloat16, float16, float32. */
  dtype: string;
}

export function defaultForm(names: string[]): FormState {
  const base = names.find((n) => /base/i.test(n)) ?? names[0] ?? "";
  return {
    method: "linear", base, t: "0.5", normalize: true, lambda: "1", dtype: "",
    rows: names.map((name) => ({ name, include: true, weight: "1", density: "0.5" })),
  };
}

/** "0.5" -> 0.5, "[0, 1]" -> [0, 1]; anything else is an error naming `what`. */
export function settingFromText(text: string, what: string): Setting {
  let v: unknown;
  try {
    v = parse(text);
  } catch {
    v = undefined;
  }
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "number" && Number.isFinite(x))) return v as number[];
  throw new Error(`${what}: "${text}" is not a number or a list of numbers like [0, 0.5, 1]`);
}

export function formToYaml(f: FormState): string {
  const spec = METHODS[f.method];
  if (!spec) throw new Error(`unknown method ${f.method}`);
  const usesBase = spec.needsBase && f.base !== "";
  const others = f.rows.filter((r) => r.include && !(usesBase && r.name === f.base));
  const models: Record<string, unknown>[] = [];
  if (usesBase) models.push({ model: f.base });
  for (const r of others) {
    const parameters: Record<string, Setting> = {};
    if ("weight" in spec.perModel) parameters.weight = settingFromText(r.weight, `${r.name}: weight`);
    if ("density" in spec.perModel && spec.sparsify) parameters.density = settingFromText(r.density, `${r.name}: density`);
    models.push(Object.keys(parameters).length ? { model: r.name, parameters } : { model: r.name });
  }
  const recipe: Record<string, unknown> = { models, merge_method: f.method };
  if (usesBase) recipe.base_model = f.base;
  const parameters: Record<string, Setting | boolean> = {};
  if ("t" in spec.global) parameters.t = settingFromText(f.t, "t");
  if ("normalize" in spec.global) parameters.normalize = f.normalize;
  if ("lambda" in spec.global && f.lambda.trim() !== "" && f.lambda.trim() !== "1") parameters.lambda = settingFromText(f.lambda, "lambda");
  if (Object.keys(parameters).length) recipe.parameters = parameters;
  if (f.dtype) recipe.dtype = f.dtype;
  return stringify(recipe, { lineWidth: 0 });
}

const settingText = (v: unknown): string => (Array.isArray(v) ? `[${v.join(", ")}]` : String(v));
const isPlain = (v: unknown) => typeof v === "number" || (Array.isArray(v) && v.every((x) => typeof x === "number"));

/**
 * Fills the form from YAML. `mapped` turns recipe model names into loaded ones. Returns the form and,
 * when the recipe uses things the form cannot show, what they are. Throws RecipeError on a bad recipe.
 */
export function yamlToForm(text: string, current: FormState, mapped: (recipeName: string) => string | undefined): { form: FormState; formCannotShow: string[] } {
  const recipe = parseRecipe(text);
  const cannot: string[] = [];
  const form: FormState = { ...current, method: recipe.mergeMethod, rows: current.rows.map((r) => ({ ...r, include: false })) };
  if (!METHODS[recipe.mergeMethod]) cannot.push(`method ${recipe.mergeMethod}`);
  // Methods without a base leave it out of the YAML; the form keeps its choice for when one is picked.
  form.base = recipe.baseModel ? (mapped(recipe.baseModel) ?? "") : current.base;
  if (recipe.slices) cannot.push("slices (layer ranges)");
  for (const m of recipe.models ?? []) {
    const row = form.rows.find((r) => r.name === mapped(m.model));
    if (!row) continue;
    row.include = true;
    for (const [key, value] of Object.entries(m.parameters ?? {})) {
      if (!isPlain(value)) cannot.push(`${m.model}: ${key} with filters`);
      else if (key === "weight") row.weight = settingText(value);
      else if (key === "density") row.density = settingText(value);
      else cannot.push(`${m.model}: ${key}`);
    }
  }
  for (const [key, value] of Object.entries(recipe.parameters ?? {})) {
    if (key === "normalize" && typeof value === "boolean") form.normalize = value;
    else if (!isPlain(value)) cannot.push(`${key} with filters`);
    else if (key === "t") form.t = settingText(value);
    else if (key === "lambda") form.lambda = settingText(value);
    else cannot.push(key);
  }
  const spec = METHODS[recipe.mergeMethod];
  if (spec && "normalize" in spec.global && recipe.parameters?.normalize === undefined) form.normalize = spec.global.normalize!.default as boolean;
  if (recipe.parameters?.lambda === undefined) form.lambda = "1";
  form.dtype = recipe.dtype ? { BF16: "bfloat16", F16: "float16", F32: "float32", F64: "float64" }[recipe.dtype] ?? "" : "";
  if (recipe.outDtype) cannot.push("out_dtype");
  if (recipe.align) cannot.push("align (permutation alignment)");
  return { form, formCannotShow: cannot };
}

/**
 * Maps recipe model names to loaded models: an exact name, else the one loaded model named like the
 * last path segment ("org/math", "./math" -> "math"). Names left out need a person to choose.
 */
export function autoMap(recipeNames: string[], loaded: string[], chosen: ReadonlyMap<string, string>): Map<string, string> {
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
