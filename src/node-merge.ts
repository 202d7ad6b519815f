/**
 * @file The Node API's merge, plan and inspect (re-exported by node.ts): apart from the rest of the API,
 * so that the CLI's start-up for these commands runs only the modules they need.
 */
import { dirname, resolve } from "node:path";
import { discardedOnFailure, merge as mergeWith, type MergeOptions, type MergeSummary } from "./api/merge";
import { inspect as inspectFolder, type InspectReport } from "./api/inspect";
import { describeValue, ModelError, OptionError, WeightsoupError } from "./errors";
import { checkOptionKinds, checkRecipeArgument } from "./api/options";
import { NodeFolder, readTextFile } from "./io/node-folder";
import type { ModelFolder } from "./io/folder";
import { NodeOutputFolder } from "./io/node-output";
import type { OutputFolder } from "./io/output";
import { resolveModel } from "./model/resolve";
import { parseRecipe, type Recipe } from "./recipe/recipe";
import { plan as planWith, type PlanOptions, type PlanReport } from "./api/plan";

export interface NodeMergeOptions extends Omit<MergeOptions, "out" | "models"> {
  /** Output folder path (created if missing; must be empty unless `force`), or any OutputFolder. */
  out: string | OutputFolder;
  /** Overwrite a non-empty output folder. */
  force?: boolean;
  /** Model lookup; default: relative to the recipe file, then the Hugging Face cache. */
  models?: MergeOptions["models"];
  /** Folder model paths are relative to when `recipe` is not a file path (default: the working directory). */
  baseDir?: string;
}

/** Reads a recipe file. */
export async function readRecipe(path: string): Promise<Recipe> {
  let text: string;
  try {
    text = await readTextFile(path);
  } catch (cause) {
    if (cause instanceof WeightsoupError && cause.code !== "E_MODEL_NOT_FOUND") throw cause;
    throw new ModelError("E_MODEL_NOT_FOUND", `${path}: cannot read the recipe (no such file)`, { file: path }, { cause });
  }
  return parseRecipe(text, path);
}

/** The paths on disk a model is read from: its folder (or file) and every weight file (cache snapshots link into blobs/). */
export function pathsOf(folder: ModelFolder, weightFiles: readonly string[] = []): string[] {
  if (!(folder instanceof NodeFolder)) return [];
  return [folder.path, ...weightFiles.flatMap((f) => { const ref = folder.source(f); return ref.kind === "path" ? [ref.path] : []; })];
}

/** Merges the models of a recipe (a file path, or a parsed Recipe) into `options.out`. */
export async function merge(recipe: string | Recipe, options: NodeMergeOptions): Promise<MergeSummary> {
  return discardedOnFailure(options, async () => {
    checkRecipeArgument("merge", recipe);
    checkOptionKinds("merge", options, { force: "boolean", baseDir: "string" });
    if (typeof options.out !== "string" && typeof options.out !== "function" && !isOutputFolder(options.out)) {
      throw new OptionError("E_OPTION", `merge: option out must be the output folder's path or an OutputFolder, got ${describeValue(options.out)}`, { key: "out" });
    }
    const parsed = typeof recipe === "string" ? await readRecipe(recipe) : recipe;
    const baseDir = typeof recipe === "string" ? dirname(resolve(recipe)) : resolve(options.baseDir ?? ".");
    const { out, force, models, ...rest } = options;
    // Everything the merge reads, so that the output can never be one of them (--force would delete it).
    const inputs = typeof recipe === "string" ? [recipe] : [];
    const find = models ?? ((name: string) => resolveModel(name, baseDir));
    return mergeWith(parsed, {
      ...rest,
      models: async (name) => {
        const folder = await find(name);
        if (folder) inputs.push(...pathsOf(folder));
        return folder;
      },
      out: typeof out === "string"
        ? (plan) => NodeOutputFolder.open(out, { force: force ?? false, inputs: [...inputs, ...[...plan.models.values()].flatMap((m) => pathsOf(m.folder, m.weightFiles.map((w) => w.file)))] })
        : out,
    });
  });
}

/**
 * What merging a recipe (a file path, or a parsed Recipe) would do, from headers only: the ledger of
 * every input tensor, the output size, peak memory and estimated time (see api/plan.ts).
 */
export async function plan(recipe: string | Recipe, options: Omit<PlanOptions, "models"> & { models?: PlanOptions["models"]; baseDir?: string } = {}): Promise<PlanReport> {
  checkRecipeArgument("plan", recipe);
  checkOptionKinds("plan", options, { baseDir: "string", signal: "signal" });
  const parsed = typeof recipe === "string" ? await readRecipe(recipe) : recipe;
  const baseDir = typeof recipe === "string" ? dirname(resolve(recipe)) : resolve(options.baseDir ?? ".");
  const { models, baseDir: _, ...rest } = options;
  return planWith(parsed, { ...rest, models: models ?? ((name: string) => resolveModel(name, baseDir)) });
}

/** Describes a .safetensors file or a model folder. */
export async function inspect(path: string): Promise<InspectReport> {
  return inspectFolder(await NodeFolder.open(path));
}

/** An OutputFolder from plain JavaScript: an object with the methods a merge calls. */
function isOutputFolder(v: unknown): v is OutputFolder {
  if (v === null || typeof v !== "object") return false;
  const o = v as Record<string, unknown>;
  return ["createFile", "write", "writeText", "copyFrom", "commit", "discard"].every((m) => typeof o[m] === "function");
}
