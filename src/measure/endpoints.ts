/**
 * @file The two ends of a loss path as model folders: a checkpoint as it is, a recipe merged into
 * memory (never written to disk), and B permuted onto A by weight matching, exactly as a recipe's
 * `align: {to: A}` step permutes it (same spec "auto", seed and sweep limit), so an aligned path point
 * equals that recipe with the `align:` key.
 */
import { matchModels } from "../align/align-model";
import { writePermutedModel } from "../align/checkpoint";
import type { GroupSimilarity } from "../align/weight-matching";
import type { EvalSubject } from "../api/evaluate";
import { merge } from "../api/merge";
import type { ModelFolder } from "../io/folder";
import { MemoryOutputFolder } from "../io/memory-output";
import { describeValue, ModelError } from "../errors";
import { computationDifference, decoderSpec } from "../eval/architecture";
import { openModel } from "../model/model";
import type { MergeEvent } from "../events";

export interface EndpointOptions {
  workers?: number;
  memoryBudget?: number;
  chunkBytes?: number;
  seed?: number;
  workerUrl?: URL | string;
  signal?: AbortSignal;
}

/** A subject's display name: as given, else the folder's name or the recipe's file. */
export function subjectName(s: EvalSubject): string {
  return s.name ?? ("model" in s ? s.model.name : typeof s.recipe === "string" ? "recipe" : s.recipe.file);
}

/** The subject's weights as a folder; a recipe is merged into memory (the whole model is held there). */
export async function endpointFolder(s: EvalSubject, options: EndpointOptions, onWarning?: (message: string) => void): Promise<ModelFolder> {
  if ("model" in s) return s.model;
  const memory = new MemoryOutputFolder(subjectName(s));
  await merge(s.recipe, {
    out: memory, models: s.models,
    ...pick(options, ["workers", "memoryBudget", "chunkBytes", "seed", "workerUrl", "signal"]),
    ...(onWarning ? { onProgress: (e: MergeEvent) => { if (e.type === "warning") onWarning(e.message); } } : {}),
  });
  return memory.folder();
}

export interface Alignment {
  folder: ModelFolder;
  sweeps: number;
  groups: ({ name: string; size: number } & GroupSimilarity)[];
  /** Assignments each worker of the matching's pool solved (in browsers all of them; in Node the calling thread solves them: none). */
  workerAssignments: number[];
}

/** `b` permuted onto `a` (Git Re-Basin weight matching, spec from config.json), held in memory. */
export async function alignedEndpoint(a: ModelFolder, b: ModelFolder, options: { seed?: number; maxSweeps?: number; signal?: AbortSignal; workers?: number; workerUrl?: URL | string }): Promise<Alignment> {
  const [reference, model] = [await openModel(a), await openModel(b)];
  const matched = await matchModels(reference, model, { spec: "auto", seed: options.seed ?? 0, maxSweeps: options.maxSweeps, signal: options.signal, workers: options.workers, workerUrl: options.workerUrl });
  const memory = new MemoryOutputFolder(`${model.location} (aligned to ${reference.location})`);
  await writePermutedModel(model, matched.spec, matched.permutations, memory, options.signal);
  await memory.commit();
  return { folder: memory.folder(), sweeps: matched.sweeps, groups: matched.groups, workerAssignments: matched.workerStats.map((s) => s.assignments) };
}

/**
 * Refuses models that compute differently (config.json settings the forward pass reads): a point
 * between them (a path's, a soup's) runs with one model's config, so at the far end it would not be
 * the other model, and the comparison `why` names would measure the configs, not the weights.
 */
export async function checkSameComputation(models: readonly { name: string; folder: ModelFolder }[], why: string): Promise<void> {
  const specs = await Promise.all(models.map(async (m) => {
    const model = await openModel(m.folder);
    return decoderSpec(model.config, model.tensors, model.location);
  }));
  for (let i = 1; i < models.length; i++) {
    const difference = computationDifference(specs[0]!, specs[i]!);
    if (!difference) continue;
    const [first, other] = [models[0]!.name, models[i]!.name];
    throw new ModelError("E_CONFIG", `${first} and ${other} compute differently: ${difference.what} is ${describeValue(difference.a)} in ${first} and ${describeValue(difference.b)} in ${other}; ${why}, so make their config.json agree`,
      { file: specs[i]!.file, model: other });
  }
}

function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
