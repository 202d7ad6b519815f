// Inputs that must be refused with a typed error, decided independently of weightsoup: a success on
// one of these is a failure even when the output re-inspects cleanly (issue 8: `workers: NaN` wrote an
// all-zero model; a config.json claiming -1 or 1e12 layers was used as is).
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { TINY } from "./fixtures";
import type { FuzzCase } from "./fuzz-cases";
import { RECIPES } from "./fuzz-fixtures";
import { invalidOption, type LibraryOptions } from "./fuzz-options";

/** The config.json keys that hold a layer count (transformers' names across architectures). */
const LAYER_KEYS = ["num_hidden_layers", "n_layer", "num_layers"];

/**
 * Why the case's inputs must be refused, or undefined when success is acceptable. `inspect` asks about
 * inspecting one model (only its own config matters).
 */
export async function requiredRejection(c: FuzzCase, dir: string, inspected?: string): Promise<string | undefined> {
  if (c.kind === "options") {
    const invalid = Object.entries(c.options.options).filter(([k, v]) => invalidOption(k as keyof LibraryOptions, v));
    return invalid.length ? `the options ${invalid.map(([k, v]) => `${k}: ${String(v)}`).join(", ")} are invalid` : undefined;
  }
  if (c.kind !== "config") return undefined;
  const recipe = RECIPES[c.template]!.recipe;
  const names = inspected ? [inspected] : referencedModels(recipe);
  const counts = new Map<string, number>();
  for (const name of names) {
    const problem = await configProblem(join(dir, name.replace(/^\.\//, "")), counts, name, inspected !== undefined);
    if (problem) return problem;
  }
  // mergekit: every source of a slice spans the same number of layers; `models:` gives each its own count.
  if (!inspected && recipe.models && new Set(counts.values()).size > 1) {
    return `the models have different layer counts (${[...counts].map(([m, n]) => `${m}: ${n}`).join(", ")})`;
  }
  return undefined;
}

/** A config value in a few words; a container is named, not stringified (it may nest deeper than the stack). */
function describeJson(value: unknown): string {
  if (Array.isArray(value)) return "an array";
  if (value !== null && typeof value === "object") return "an object";
  return typeof value === "number" ? String(value) : JSON.stringify(value).slice(0, 40);
}

/**
 * A model's config.json must be a JSON object, and a layer count it states must be a whole number from
 * 0 to the layers its weights have (more would name tensors that do not exist); unless the model is only
 * inspected, it must not say the model is quantized. Records the count.
 */
async function configProblem(folder: string, counts: Map<string, number>, name: string, inspecting: boolean): Promise<string | undefined> {
  let config: unknown;
  try {
    config = JSON.parse(await readFile(join(folder, "config.json"), "utf8"));
  } catch {
    return `${name}/config.json is not JSON`;
  }
  if (config === null || typeof config !== "object" || Array.isArray(config)) return `${name}/config.json is not a JSON object`;
  let stated: number | undefined;
  for (const key of LAYER_KEYS) {
    if (!Object.hasOwn(config, key)) continue;
    const value = (config as Record<string, unknown>)[key];
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0 || value > TINY.layers) {
      return `${name}/config.json: ${key} is ${describeJson(value)}, not a layer count from 0 to ${TINY.layers}`;
    }
    stated ??= value;
  }
  counts.set(name, stated ?? TINY.layers);
  // transformers writes quantization_config for every quantized checkpoint, MLX an object under
  // `quantization`: packed weights that must not be merged as numbers (inspect still lists them).
  const c = config as Record<string, unknown>;
  if (inspecting) return undefined;
  if (Object.hasOwn(c, "quantization_config") && c.quantization_config !== null) return `${name}/config.json says the model is quantized (quantization_config)`;
  if (Object.hasOwn(c, "quantization") && c.quantization !== null && typeof c.quantization === "object" && !Array.isArray(c.quantization)) return `${name}/config.json says the model is quantized (quantization)`;
  return undefined;
}

/** "./x" names of a recipe object's model and base_model keys. */
function referencedModels(recipe: Record<string, unknown>): string[] {
  const names = new Set<string>();
  const visit = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(visit);
    else if (v !== null && typeof v === "object") {
      for (const [k, x] of Object.entries(v)) {
        if ((k === "model" || k === "base_model") && typeof x === "string") names.add(x);
        else visit(x);
      }
    }
  };
  visit(recipe);
  return [...names];
}
