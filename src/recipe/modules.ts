/**
 * @file `modules:` in a recipe (mergekit's OutputModuleDefinition): for models made of several parts,
 * such as a vision-language model's text decoder, vision tower and projector, each part gets its own
 * `models:` or `slices:` and `parameters:`, under the recipe's one merge method and base model. Which
 * tensors a module holds is decided when planning (plan/modules.ts); here the entries are only checked.
 */
import { RecipeError } from "../errors";
import type { Parameters, Recipe, Setting } from "./recipe";

/**
 * mergekit's name for the one module of an architecture that is not made of parts (Llama, Mistral,
 * Qwen2, ...: its architecture files wrap each in a module `default` with no prefix), which model cards'
 * recipes use (`modules: {default: {slices: ...}}`). Alone, it is the recipe's own models or slices
 * (mergekit's planner makes top-level ones that module); beside others, it holds every tensor no other
 * module holds (plan/modules.ts).
 */
export const DEFAULT_MODULE = "default";

export interface RecipeModule {
  /** The key under `modules:` (text_decoder, vision_tower, ...). */
  name: string;
  /**
   * The module's own models or slices and parameters, checked as a recipe of the same merge method
   * (`file` says "FILE: modules.NAME", so its messages name the module).
   */
  recipe: Recipe;
}

const MODULE_KEYS = ["models", "slices", "parameters"];

/** A module name is a tensor-name prefix: dot-separated words, nothing that could match by accident. */
const MODULE_NAME = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

/**
 * Checks `modules:` (a mapping of module names to {models | slices, parameters}); `check` validates
 * one module's entry as a recipe (the recipe's own rules: one of models/slices, known keys, values).
 */
export function parseModules(raw: unknown, file: string, check: (entry: Record<string, unknown>, label: string) => Recipe, ignore: (key: string, allowed: readonly string[]) => void): RecipeModule[] {
  const fail = (key: string, what: string) => new RecipeError("E_RECIPE", `${file}: ${key}: ${what}`, { file, key });
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw fail("modules", "must be a mapping of module names (text_decoder, vision_tower, ...) to {models or slices, parameters}");
  const modules: RecipeModule[] = [];
  for (const [name, entry] of Object.entries(raw)) {
    const key = `modules.${name.slice(0, 60)}`;
    if (!MODULE_NAME.test(name)) throw fail(key, "a module name is a tensor-name prefix: letters, digits, _ and -, in dot-separated parts");
    if (entry === null || typeof entry !== "object" || Array.isArray(entry)) throw fail(key, "must be a mapping with models or slices (and optionally parameters)");
    // mergekit's OutputModuleDefinition drops other keys (a module's merge_method or base_model too: the recipe's hold for every module).
    const read: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(entry)) {
      if (MODULE_KEYS.includes(k)) read[k] = x;
      else ignore(`${key}.${k.slice(0, 60)}`, MODULE_KEYS);
    }
    modules.push({ name, recipe: check(read, `${file}: ${key}`) });
  }
  if (modules.length === 0) throw fail("modules", "is empty");
  return modules;
}

/**
 * The module's parameter block in front of the recipe's, as one block. A key both set becomes one
 * first-match list, the module's entries first: where none of the module's filters matches a tensor,
 * the recipe's value applies, as in mergekit's lookup (source, slice, module, then top level).
 */
export function layered(inner: Parameters | undefined, outer: Parameters | undefined): Parameters | undefined {
  if (!inner || !outer) return inner ?? outer;
  const out: Parameters = Object.create(null);
  for (const [key, value] of Object.entries(outer)) out[key] = value;
  for (const [key, value] of Object.entries(inner)) out[key] = Object.hasOwn(outer, key) ? [...entries(value), ...entries(outer[key]!)] : value;
  return out;
}

/** A setting as first-match entries: a filter list is one already, any other value matches every tensor. */
function entries(setting: Setting): Setting[] {
  const isFilterList = Array.isArray(setting) && setting.some((e) => e !== null && typeof e === "object" && !Array.isArray(e));
  return isFilterList ? setting : [{ value: setting }];
}
