/**
 * @file weightsoup for Node: the library API with Node defaults. A recipe is a YAML file whose model
 * names resolve relative to it (or in the local Hugging Face cache), and the output is a folder on disk.
 *
 * @example
 * import { merge } from "weightsoup";
 * const summary = await merge("recipe.yml", { out: "merged", onProgress: (e) => console.log(e.type) });
 */
import { realpath } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { DataError, describeValue, OptionError, WeightsoupError } from "./errors";
import { splitLoraReference } from "./lora/model-ref";
import { NodeFolder } from "./io/node-folder";
import type { ModelFolder } from "./io/folder";
import { checkArrayArgument, checkCallbackOption, checkIntegerOptions, checkOptionKinds, checkRecipeArgument } from "./api/options";
import { NodeOutputFolder } from "./io/node-output";
import type { OutputFolder } from "./io/output";
import { resolveModel } from "./model/resolve";
import { openModel } from "./model/model";
import { alignModel, type AlignOptions, type AlignResult } from "./align/align-model";
import { loadDataset, measureBarrier, type BarrierOptions } from "./align/barrier";
import type { Recipe } from "./recipe/recipe";
import { evaluate as evaluateWith, type EvalSubject, type EvaluateOptions, type EvaluationResult } from "./api/evaluate";
import { generate as generateWith, type GenerateOptions, type GenerationResult } from "./api/generate";
import { checkExtractOptions, extractLora as extractLoraFolders } from "./api/extract-lora";
import type { ExtractLoraOptions, ExtractLoraResult } from "./lora/extract";
import { pathsOf, readRecipe } from "./node-merge";
import { lossPath as lossPathWith, type LossPathOptions, type LossPathResult } from "./api/path";
import { greedySoup as greedySoupWith, type SoupOptions, type SoupResult } from "./api/soup";
import { sweep as sweepWith, type SweepOptions, type SweepResult } from "./api/sweep";
import type { Vary } from "./sweep/grid";
import { diagnose as diagnoseWith, type DiagnoseOptions, type DiagnosisResult } from "./api/diagnose";

/**
 * Interference diagnostics of a recipe (a file path, or a parsed Recipe): task-vector norms, cosines,
 * sign conflicts, trimmed and discarded mass, per tensor and per layer (see api/diagnose.ts). Nothing
 * is written.
 */
export async function diagnose(recipe: string | Recipe, options: Omit<DiagnoseOptions, "models"> & { models?: DiagnoseOptions["models"]; baseDir?: string } = {}): Promise<DiagnosisResult> {
  checkRecipeArgument("diagnose", recipe);
  checkOptionKinds("diagnose", options, { baseDir: "string", signal: "signal" });
  const parsed = typeof recipe === "string" ? await readRecipe(recipe) : recipe;
  const baseDir = typeof recipe === "string" ? dirname(resolve(recipe)) : resolve(options.baseDir ?? ".");
  const { models, baseDir: _, ...rest } = options;
  return diagnoseWith(parsed, { ...rest, models: models ?? ((name: string) => resolveModel(name, baseDir)) });
}

export interface NodeAlignOptions extends AlignOptions {
  /** Output folder (created if missing; must be empty unless `force`). */
  out: string;
  force?: boolean;
}

/**
 * Permutes `model`'s hidden units to match `reference` (Git Re-Basin weight matching) and writes the
 * result to `options.out` with the input's file layout. Paths as for recipes: folders, .safetensors
 * files or Hugging Face cache names.
 */
export async function align(reference: string, model: string, options: NodeAlignOptions): Promise<AlignResult> {
  checkOptionKinds("align", options, { force: "boolean", signal: "signal" });
  checkCallbackOption(options, "onGroup");
  checkIntegerOptions(options, ["seed", "maxSweeps", "workers", "memoryBudget"]);
  const [a, b] = await Promise.all([reference, model].map(async (name) => openModel(await resolveModel(name, resolve(".")))));
  const { out, force, ...rest } = options;
  const inputs = [a!, b!].flatMap((m) => pathsOf(m.folder, m.weightFiles.map((w) => w.file)));
  return alignModel(a!, b!, await NodeOutputFolder.open(out, { force: force ?? false, inputs }), rest);
}

/**
 * Loss and accuracy of two MLP classifiers' straight-line path on a dataset (a safetensors file with
 * `inputs` and `labels`), and the barrier; with `align`, the same after weight matching.
 */
export async function barrier(a: string, b: string, options: BarrierOptions & { data: string }) {
  checkIntegerOptions(options, ["seed", "points"]);
  const open = async (name: string) => openModel(await resolveModel(name, resolve(".")));
  const data = await loadDataset(await openModel(await NodeFolder.open(options.data)));
  return measureBarrier(await open(a), await open(b), data, options);
}

export interface NodeEvaluateOptions extends Omit<EvaluateOptions, "against"> {
  /** Models (or recipes) to compare every evaluated model with, named like the subjects. */
  against?: readonly string[];
  /** Folder model names are relative to (default: the working directory); recipes resolve their own models relative to themselves. */
  baseDir?: string;
}

/** A recipe file (YAML) rather than a model: evaluated by merging it layer by layer in memory. */
export function isRecipePath(name: string): boolean {
  return /\.ya?ml$/i.test(name);
}

/**
 * Evaluates models and recipes (paths, .safetensors files, Hugging Face cache names, recipe .yml files)
 * on a text: perplexity, bits per byte, and KL divergence and top-1 agreement against other models.
 */
export async function evaluate(subjects: readonly string[], options: NodeEvaluateOptions): Promise<{ results: EvaluationResult[] }> {
  checkOptionKinds("evaluate", options, { baseDir: "string", against: "array" });
  checkArrayArgument("evaluate", "subjects", subjects, "the models to evaluate");
  const baseDir = resolve(options.baseDir ?? ".");
  // One subject per name: a model both evaluated and compared against is one folder, opened and run once.
  const named = new Map<string, Promise<EvalSubject>>();
  const subject = (name: string) => {
    if (!named.has(name)) named.set(name, evalSubject(name, baseDir));
    return named.get(name)!;
  };
  const { against, baseDir: _, ...rest } = options;
  return evaluateWith(await Promise.all(subjects.map(subject)), { ...rest, against: await Promise.all((against ?? []).map(subject)) });
}

/**
 * A model path (folder, .safetensors file, Hugging Face cache name), a recipe .yml, or BASE+ADAPTER (a
 * LoRA applied as in a recipe: the one-model passthrough recipe of that reference, merged in memory),
 * as evaluate, generate and path name them. A path that exists is a model, "+" in its name or not.
 */
async function evalSubject(name: string, baseDir: string): Promise<EvalSubject> {
  if (isRecipePath(name)) return { name, recipe: await readRecipe(name), models: (n: string) => resolveModel(n, dirname(resolve(name))) };
  try {
    return { name, model: await resolveModel(name, baseDir) };
  } catch (e) {
    if (!(e instanceof WeightsoupError && e.code === "E_MODEL_NOT_FOUND" && splitLoraReference(name))) throw e;
    return { name, recipe: `merge_method: passthrough\nmodels:\n  - model: ${JSON.stringify(name)}\n`, models: (n: string) => resolveModel(n, baseDir) };
  }
}

/**
 * The loss along (1 − λ)·A + λ·B (and optionally SLERP, and after aligning B to A) on a text, and
 * the barrier; A and B are models or recipes (a recipe is merged into memory first). See api/path.ts.
 */
export async function lossPath(a: string, b: string, options: LossPathOptions & { baseDir?: string }): Promise<LossPathResult> {
  checkOptionKinds("lossPath", options, { baseDir: "string", slerp: "boolean", align: "boolean", pointByPoint: "boolean", signal: "signal" });
  const { baseDir, ...rest } = options;
  const dir = resolve(baseDir ?? ".");
  const subjects = [await evalSubject(a, dir), await evalSubject(b, dir)];
  await refuseSameFolder(subjects.flatMap((s) => ("model" in s ? [{ name: s.name!, model: s.model }] : [])), "a loss path needs two different models");
  return lossPathWith(subjects[0]!, subjects[1]!, rest);
}

/**
 * Models named otherwise that are one folder on disk (`a`, `./a/`, a link to it): measured as two, one
 * model would count twice in a soup, and a path would run from a model to itself.
 */
async function refuseSameFolder(models: readonly { name: string; model: ModelFolder }[], why: string): Promise<void> {
  const seen = new Map<string, string>();
  for (const { name, model } of models) {
    const path = pathsOf(model)[0];
    if (path === undefined) continue;
    const real = await realpath(path).catch(() => path);
    const other = seen.get(real);
    // One name given twice is the API's own refusal (api/path.ts, api/soup.ts), worded for that.
    if (other !== undefined && other !== name) throw new DataError("E_DATA", `"${other}" and "${name}" are the same model (${real}); ${why}`, { model: name });
    seen.set(real, name);
  }
}

/**
 * Wortsman et al.'s greedy soup of models on a held-out text (see api/soup.ts); with `out` (a folder
 * path or an OutputFolder), the soup is written there.
 */
export async function greedySoup(models: readonly string[], options: Omit<SoupOptions, "out"> & { out?: string | OutputFolder; force?: boolean; baseDir?: string }): Promise<SoupResult> {
  checkArrayArgument("greedySoup", "models", models, "the models");
  checkOptionKinds("greedySoup", options, { baseDir: "string", force: "boolean", greedy: "boolean", signal: "signal" });
  if (options.out !== undefined && typeof options.out !== "string" && typeof (options.out as OutputFolder | null)?.discard !== "function") {
    throw new OptionError("E_OPTION", `greedySoup: option out must be a folder path or an OutputFolder, got ${describeValue(options.out)}`, { key: "out" });
  }
  const { baseDir, out, force, ...rest } = options;
  const dir = resolve(baseDir ?? ".");
  const ingredients = await Promise.all(models.map(async (name) => {
    if (isRecipePath(name)) throw new DataError("E_DATA", `${name}: soup ingredients are model folders; merge the recipe first and give its folder`, { file: name });
    return { name, model: await resolveModel(name, dir) };
  }));
  await refuseSameFolder(ingredients, "each ingredient may be in a soup once");
  // The output folder is opened (checked, locked) before any evaluation, so a non-empty one is refused at once.
  const folder = typeof out === "string" ? await NodeOutputFolder.open(out, { force: force ?? false, inputs: ingredients.flatMap((i) => pathsOf(i.model)) }) : out;
  try {
    return await greedySoupWith(ingredients, { ...rest, ...(folder ? { out: folder } : {}) });
  } catch (e) {
    if (typeof out === "string") await folder!.discard();
    throw e;
  }
}

export interface NodeSweepOptions extends Omit<SweepOptions, "against" | "models"> {
  /** Models (or recipe files) every point is compared with, named as for evaluate(). */
  against?: readonly string[];
  /** Model lookup; default: relative to the recipe file, then the Hugging Face cache. */
  models?: SweepOptions["models"];
  /** Folder `against` names are relative to (default: the working directory). */
  baseDir?: string;
}

/**
 * Evaluates a recipe file at every point of a grid of parameter values (`--vary KEY=SPEC`), without
 * writing any merge: NLL, perplexity and KL to each `against` model per point (see api/sweep.ts).
 */
export async function sweep(recipe: string, vary: readonly (Vary | string)[], options: NodeSweepOptions): Promise<SweepResult> {
  checkRecipeArgument("sweep", recipe);
  checkOptionKinds("sweep", options, { baseDir: "string", against: "array" });
  const parsed = await readRecipe(recipe);
  const baseDir = resolve(options.baseDir ?? ".");
  const { against, baseDir: _, models, ...rest } = options;
  return sweepWith(parsed, vary, { ...rest, models: models ?? ((n) => resolveModel(n, dirname(resolve(recipe)))), against: await Promise.all((against ?? []).map((name) => evalSubject(name, baseDir))) });
}

/** Generates text from a model (or a recipe, merged into memory): see GenerateOptions. */
export async function generate(model: string, options: GenerateOptions & { baseDir?: string }): Promise<GenerationResult> {
  checkOptionKinds("generate", options, { baseDir: "string", prompt: "string", ids: "array", chat: "boolean", signal: "signal" });
  const { baseDir, ...rest } = options;
  return generateWith(await evalSubject(model, resolve(baseDir ?? ".")), rest);
}

export interface NodeExtractLoraOptions extends ExtractLoraOptions {
  /** Output folder path (created if missing; must be empty unless `force`), or any OutputFolder. */
  out: string | OutputFolder;
  force?: boolean;
  /** Folder model names are relative to (default: the working directory). */
  baseDir?: string;
}

/**
 * Extracts a PEFT LoRA adapter (adapter_config.json, adapter_model.safetensors) approximating
 * `finetuned` as `base` + B·A, by a truncated SVD of each linear weight's task vector.
 */
export async function extractLora(finetuned: string, base: string, options: NodeExtractLoraOptions): Promise<ExtractLoraResult> {
  checkExtractOptions(options);
  const dir = resolve(options.baseDir ?? ".");
  const [ft, b] = [await resolveModel(finetuned, dir), await resolveModel(base, dir)];
  const { out, force, baseDir: _, ...rest } = options;
  const folder = typeof out === "string" ? await NodeOutputFolder.open(out, { force: force ?? false, inputs: [...pathsOf(ft), ...pathsOf(b)] }) : out;
  return extractLoraFolders(ft, b, { ...rest, out: folder });
}

export { merge, plan, inspect, readRecipe, type NodeMergeOptions } from "./node-merge";
export * from "./common";
