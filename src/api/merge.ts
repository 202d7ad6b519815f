/**
 * @file The library call: merge(recipe, options). Models come from a resolver and the output goes to
 * an OutputFolder, so the same call serves Node folders and browser files; src/node.ts fills in Node
 * defaults (recipe paths, model lookup, output folders on disk).
 */
import { OptionError, RecipeError, ValidationError, WeightsoupError } from "../errors";
import { abortable } from "./abortable";
import { availableCores, defaultWorkerUrl, IS_NODE } from "../env";
import type { ProgressCallback } from "../events";
import type { ModelLookup } from "../io/folder";
import type { OutputFolder } from "../io/output";
import { JOBS_PER_WORKER, runPlan, type EngineOptions, type MergeSummary as EngineSummary } from "../merge/engine";
import { WorkerPool } from "../pool/pool";
import { compileKernels } from "../kernels/kernels";
import { Phases } from "../eval/profile";
import { FASTEST_RATE, tensorSeconds } from "../ledger/estimate";
import type { Ledger } from "../ledger/ledger";
import { openModel, type LoadedModel } from "../model/model";
import { openModelReference } from "../lora/model-ref";
import { MemoryOutputFolder } from "../io/memory-output";
import { methodOf, planMerge, referencedModels, type MergePlan } from "../plan/plan";
import { parseRecipe, type AlignStep, type Recipe } from "../recipe/recipe";
import { finishTokenizerPlan, recipeVocabulary } from "../vocab/prepare";
import { checkCallbackOption, checkIntegerOptions, checkOptionKinds, checkRecipeArgument } from "./options";
import { mergeStages, refuseStages } from "./stages";
import { nowMs } from "../clock";

export interface MergeOptions {
  /**
   * Where the merged model is written: a folder, or a function opening it, called once the plan is
   * valid and given it (so it can check space for the plan's output before anything is created). For a
   * multi-stage recipe it is called with the first stage's plan: the intermediates live in its staging area.
   */
  out: OutputFolder | ((plan: MergePlan) => Promise<OutputFolder>);
  /** Finds the folder of a model named in the recipe. */
  models: ModelLookup;
  /**
   * Worker count (default: the available cores, at most one per tensor, and in Node none for a merge
   * whose tensors take at most IN_THREAD_SECONDS at the measured rates, which then runs on the calling
   * thread).
   */
  workers?: number;
  /** DARE's seed, an integer in [0, 2^32) (default 0). */
  seed?: number;
  /** Wasm memory budget per worker in bytes (default 256 MiB). */
  memoryBudget?: number;
  /** Largest chunk of tensor data a worker holds at once, in bytes (default 64 MiB, at most the budget). */
  chunkBytes?: number;
  /** Force chunks of this many elements (testing and benchmarking). */
  chunkElements?: number;
  /** Largest output shard, bytes of tensor data (default 5e9, mergekit's and Hugging Face's default). */
  outShardSize?: number;
  /** The worker script, if it is not served next to the library (dist/worker.js). */
  workerUrl?: URL | string;
  signal?: AbortSignal;
  onProgress?: ProgressCallback;
  /** @internal Benchmarks: the same reads and writes, no computation (see EngineOptions.ioOnly). */
  ioOnly?: boolean;
}

export const DEFAULT_MEMORY_BUDGET = 256 * 1048576;
export const DEFAULT_CHUNK_BYTES = 64 * 1048576;
export const DEFAULT_SHARD_SIZE = 5e9;

/**
 * A merge whose tensors take at most this long with 2 workers (tensorSeconds: input bytes over each
 * operation's measured rate) runs on the calling thread when the caller leaves the worker count to
 * weightsoup (Node only: a page's main thread must stay free). Workers cost their start (a Node thread,
 * its bundle, about 0.2 s of CPU) and their memory's first touch; one thread does the work of two in
 * about twice the time, so workers pay once that work passes about 0.1 s. Whole CLI processes on the
 * dev VM, alternating (stop 36): the example's TIES merge (103 MB read) took 0.41–0.53 s in this thread
 * against 0.58–0.72 s with 2 workers; TIES on 173 MB 0.49–0.55 s against 0.63–0.73 s, on 322 MB
 * (0.16 s of work) 0.73–0.79 s against 0.75–0.89 s, on 619 MB 1.33–1.56 s against 1.24–1.39 s; linear
 * on 619 MB (0.08 s) 0.51–0.53 s against 0.56–0.58 s, on the bench's 4.34 GB 1.40–1.53 s against
 * 0.94–0.98 s. Until then, merges of at most 64 MiB read and written ran here, whatever the method.
 */
export const IN_THREAD_SECONDS = 0.1;

/**
 * Whether a merge whose worker count is left out runs on the calling thread (in Node): its models hold
 * no more than such a merge may read, and its tensors take at most IN_THREAD_SECONDS at the measured rates.
 */
export function runsInThread(plan: MergePlan): boolean {
  let modelBytes = 0;
  for (const model of plan.models.values()) for (const t of model.tensors.values()) modelBytes += t.end - t.begin;
  return modelBytes <= IN_THREAD_SECONDS * FASTEST_RATE && tensorSeconds(plan) <= IN_THREAD_SECONDS;
}

/** What merge() resolves with: the engine's summary and the ledger of every input tensor. */
export interface MergeSummary extends EngineSummary {
  ledger: Ledger;
}

/**
 * Parses the recipe and opens and plans every model, reading only headers (and, for `align:`, the
 * weights it permutes unless `align` is false, on `workers` workers). `onModel` hears each model as
 * soon as it is open.
 */
export async function prepare(recipe: Recipe | string, models: MergeOptions["models"], signal?: AbortSignal, options: { align?: boolean; onModel?: (model: LoadedModel) => void } & Pick<MergeOptions, "workers" | "workerUrl"> = {}): Promise<MergePlan> {
  const parsed = typeof recipe === "string" ? parseRecipe(recipe) : recipe;
  refuseStages(parsed);
  methodOf(parsed); // an unknown method fails before any model is opened
  const opened = new Map<string, LoadedModel>();
  const problems: WeightsoupError[] = [];
  // Every model's files are opened and its headers read at once (each is a few small reads, waited on
  // one after another), then taken in the recipe's order.
  signal?.throwIfAborted();
  const names = referencedModels(parsed);
  const results = await Promise.allSettled(names.map(async (name) => {
    const model = await openModelReference(name, models);
    options.onModel?.(model);
    return model;
  }));
  for (const [i, result] of results.entries()) {
    if (result.status === "fulfilled") opened.set(names[i]!, result.value);
    else if (result.reason instanceof WeightsoupError) problems.push(result.reason);
    else throw result.reason;
  }
  signal?.throwIfAborted();
  if (problems.length === 1) throw problems[0]!;
  if (problems.length > 1) throw new ValidationError(problems);
  if (parsed.align && options.align !== false) await alignInputs(parsed, parsed.align, opened, signal, options);
  const order = referencedModels(parsed);
  const vocabulary = await recipeVocabulary(parsed, order, opened);
  const plan = planMerge(parsed, opened, vocabulary);
  await finishTokenizerPlan(plan, vocabulary, order, signal);
  return plan;
}

/**
 * The recipe's `align:` step: every model other than `align.to` is replaced by its permutation onto
 * `align.to` (weight matching), held in memory with the original file layout.
 */
async function alignInputs(recipe: Recipe, step: AlignStep, opened: Map<string, LoadedModel>, signal: AbortSignal | undefined, pool: Pick<MergeOptions, "workers" | "workerUrl">): Promise<void> {
  const reference = opened.get(step.to);
  if (!reference) {
    throw new RecipeError("E_RECIPE", `${recipe.file}: align.to: "${step.to}" is not one of the recipe's models (${[...opened.keys()].join(", ")})`, { file: recipe.file, key: "align.to" });
  }
  // Loaded only for a recipe that aligns: weight matching is most of the alignment code, and no part of a plain merge.
  const [{ matchModels }, { writePermutedModel }] = await Promise.all([import("../align/align-model"), import("../align/checkpoint")]);
  for (const [name, model] of opened) {
    if (name === step.to) continue;
    const matched = await matchModels(reference, model, { spec: step.spec ?? "auto", seed: step.seed ?? 0, maxSweeps: step.maxSweeps, signal, workers: pool.workers, workerUrl: pool.workerUrl });
    const memory = new MemoryOutputFolder(`${model.location} (aligned to ${reference.location})`);
    await writePermutedModel(model, matched.spec, matched.permutations, memory, signal);
    await memory.commit();
    opened.set(name, await openModel(memory.folder()));
  }
}

export async function merge(recipe: Recipe | string, options: MergeOptions): Promise<MergeSummary> {
  return discardedOnFailure(options, async () => {
    checkRecipeArgument("merge", recipe);
    checkOptionKinds("merge", options, { signal: "signal" });
    checkIntegerOptions(options, ["workers", "seed", "memoryBudget", "chunkBytes", "chunkElements", "outShardSize"]);
    checkCallbackOption(options, "onProgress");
    const guarded = { ...options, ...(options.onProgress ? { onProgress: guardedProgress(options.onProgress) } : {}) };
    return await abortable(options.signal, async () => {
      const parsed = typeof recipe === "string" ? parseRecipe(recipe) : recipe;
      if (parsed.stages?.length) return await mergeStages(parsed, guarded, await engineOptions(guarded), prepare);
      return await mergeOnce(parsed, guarded);
    });
  });
}

/**
 * The caller's progress callback, so that what it throws is reported, not taken for a failure of the
 * merge it cannot tell apart. Before the output is published, a throw stops the merge (nothing is
 * published) with an OptionError naming the event, its cause the callback's error. The `done` event
 * comes after the output is published: a throw there cannot undo that, so the merge resolves and the
 * error is thrown on its own (an uncaught exception, as from any callback outside a promise's chain).
 */
function guardedProgress(onProgress: ProgressCallback): ProgressCallback {
  return (event) => {
    try {
      onProgress(event);
    } catch (cause) {
      if (event.type === "done") {
        queueMicrotask(() => { throw cause; });
        return;
      }
      throw new OptionError("E_OPTION", `option onProgress threw on a "${event.type}" event: ${cause instanceof Error ? cause.message : String(cause)}`, { key: "onProgress" }, { cause });
    }
  };
}

/**
 * Runs a merge so that an output folder the caller opened (the browser's pattern, or an OutputFolder
 * given in Node) is discarded however the merge fails: the engine discards it only once it runs, so a
 * recipe refused, a model missing or an abort while planning left its staging folder, and in browsers
 * its lock, for the rest of the page's life.
 */
export async function discardedOnFailure<T>(options: unknown, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    const out = (options as { out?: unknown } | null | undefined)?.out as Partial<OutputFolder> | null | undefined;
    if (out !== null && typeof out === "object" && typeof out.discard === "function") await out.discard().catch(() => undefined);
    throw e;
  }
}

/**
 * A single-stage merge. Its fixed costs overlap: the kernels compile (off this thread) while the
 * headers are read and the plan is made, and the first worker starts as soon as the models are known
 * to hold more than a merge in this thread may read (at once when the caller set the worker count); the rest start
 * once the plan says how many tensors there are to share. WEIGHTSOUP_PROFILE=1 (--profile) prints
 * the timeline.
 */
async function mergeOnce(recipe: Recipe, options: MergeOptions): Promise<MergeSummary> {
  const phases = new Phases("merge");
  const engine = await engineOptions(options);
  const mayRunInThread = IS_NODE && options.workers === undefined;
  const kernels = phases.time("compile the kernels (main thread)", compileKernels());
  kernels.catch(() => undefined); // awaited by whichever pool uses them
  const pool = WorkerPool.empty({ workerUrl: engine.workerUrl, memoryBudget: engine.memoryBudget, jobsPerWorker: JOBS_PER_WORKER, kernels });
  let starting: Promise<void> | undefined;
  const startFirstWorker = () => {
    if (starting) return;
    starting = phases.time("start the first worker", pool.grow(1));
    starting.catch(() => undefined); // the pool is failed; the engine hears it when it takes the pool
  };
  if (!mayRunInThread) startFirstWorker();
  let modelBytes = 0;
  const onModel = (model: LoadedModel) => {
    for (const t of model.tensors.values()) modelBytes += t.end - t.begin;
    // Models this large hold more than any merge in this thread reads: start a worker while planning.
    if (modelBytes > IN_THREAD_SECONDS * FASTEST_RATE) startFirstWorker();
  };
  let inThread = false;
  try {
    const plan = await phases.time("read headers, plan", prepare(recipe, options.models, options.signal, { onModel, workers: options.workers, workerUrl: options.workerUrl }));
    const out = await phases.time("open the output folder", typeof options.out === "function" ? options.out(plan) : Promise.resolve(options.out));
    inThread = mayRunInThread && !starting && runsInThread(plan);
    // The engine's steps, timed from its calls and events: until it takes the pool, then the tensors
    // (to the last one done), then the rest (releasing workers, the other files, the commit).
    let mark = nowMs();
    const summary = await runPlan(plan, out, {
      ...engine,
      startPool: async (size) => {
        phases.since("plan shards, create the output files", mark);
        const ready = await phases.time(inThread ? "load the kernels in this thread" : `workers ready (${size})`, inThread
          // One kernel instance: this thread computes one tensor at a time anyway (reads wait on Node's
          // thread pool either way), and a second instance's memory would cost its first touch again
          // (~12 us a page on the bench's VM: a few ms of a small merge).
          ? WorkerPool.inThisThread({ memoryBudget: engine.memoryBudget, jobsPerWorker: 1, kernels })
          : pool.grow(size).then(() => pool));
        mark = nowMs();
        return ready;
      },
      onProgress: (e) => {
        if (e.type === "plan" && inThread) e = { ...e, workers: 0 };
        if (e.type === "tensor-done" && e.tensorsDone === e.tensorsTotal) {
          phases.since("merge the tensors", mark);
          mark = nowMs();
        }
        if (e.type === "done") phases.since("stop workers, other files, commit", mark);
        options.onProgress?.(e);
      },
    });
    return { ...summary, ...(inThread ? { workers: 0 } : {}), ledger: plan.ledger };
  } finally {
    await pool.terminate();
    phases.report();
  }
}

/** The engine's options from the library's, with their defaults (merge's and diagnose's). */
export async function engineOptions(options: Omit<MergeOptions, "out">): Promise<EngineOptions> {
  return {
    workers: options.workers ?? (await availableCores()),
    workerUrl: options.workerUrl ?? defaultWorkerUrl(),
    memoryBudget: options.memoryBudget ?? DEFAULT_MEMORY_BUDGET,
    chunkBytes: options.chunkBytes ?? DEFAULT_CHUNK_BYTES,
    ...(options.chunkElements ? { chunkElements: options.chunkElements } : {}),
    seed: options.seed ?? 0,
    outShardSize: options.outShardSize ?? DEFAULT_SHARD_SIZE,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    ...(options.ioOnly ? { ioOnly: true } : {}),
  };
}
