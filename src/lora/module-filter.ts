/**
 * @file Which modules an extraction decomposes, saves whole or leaves out (mergekit-extract-lora's
 * --include-regex / --exclude-regex / --save-module), decided by module name: a tensor's name without
 * its last ".weight" / ".bias".
 */
import { describeValue, OptionError } from "../errors";

export interface ModuleFilterOptions {
  include?: string[];
  exclude?: string[];
  saveModules?: string[];
}

export type FilterVerdict = { extract: true } | { extract: false; reason: "excluded" | "not included"; pattern?: string };

export interface ModuleFilter {
  /** Whether the tensor belongs to a module saved whole. */
  saves(tensor: string): boolean;
  /** Whether the include / exclude patterns let the tensor's module be decomposed, and if not why. */
  verdict(tensor: string): FilterVerdict;
}

export function moduleOf(tensor: string): string {
  return tensor.replace(/\.(weight|bias)$/, "");
}

function stringList(value: unknown, key: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string" || v === "")) {
    throw new OptionError("E_OPTION", `option ${key} must be a list of non-empty strings, got ${describeValue(value)}`, { key });
  }
  return value as string[];
}

/** The option's patterns compiled; a pattern JavaScript cannot compile is an E_OPTION naming it. */
function compile(value: unknown, key: string): { source: string; re: RegExp }[] {
  return stringList(value, key).map((source) => {
    try {
      return { source, re: new RegExp(source) };
    } catch (e) {
      throw new OptionError("E_OPTION", `option ${key}: "${source}" is not a regular expression (${(e as Error).message})`, { key });
    }
  });
}

/** Checks the filter options' types and patterns (before any model is read). */
export function checkModuleFilterOptions(options: ModuleFilterOptions): void {
  compile(options.include, "include");
  compile(options.exclude, "exclude");
  stringList(options.saveModules, "saveModules");
}

/**
 * The filter for a model's tensors. A --save-module name that matches no module of the model is an
 * E_OPTION: a misspelt name would otherwise silently leave the module out of the adapter.
 */
export function moduleFilter(options: ModuleFilterOptions, tensors: string[], model: string): ModuleFilter {
  const include = compile(options.include, "include"), exclude = compile(options.exclude, "exclude");
  const saveNames = stringList(options.saveModules, "saveModules");
  const matchesSave = (module: string, name: string) => module === name || module.endsWith(`.${name}`);
  const modules = new Set(tensors.map(moduleOf));
  for (const name of saveNames) {
    if (![...modules].some((m) => matchesSave(m, name))) {
      throw new OptionError("E_OPTION", `option saveModules: "${name}" names no module of ${model} (a module's full name, or the part after its last dot)`, { key: "saveModules", model });
    }
  }
  return {
    saves: (tensor) => saveNames.some((name) => matchesSave(moduleOf(tensor), name)),
    verdict: (tensor) => {
      const module = moduleOf(tensor);
      if (include.length && !include.some((p) => p.re.test(module))) return { extract: false, reason: "not included" };
      const hit = exclude.find((p) => p.re.test(module));
      return hit ? { extract: false, reason: "excluded", pattern: hit.source } : { extract: true };
    },
  };
}
