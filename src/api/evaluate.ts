/**
 * @file The library call: evaluate(subjects, options). Each subject is a model folder or a recipe
 * (merged layer by layer in memory, never written); the text is tokenized once by each evaluated
 * model's tokenizer, cut into consecutive windows of `context` tokens, and every window is a separate
 * forward pass from position 0 in which every token but the first is predicted. With `against`, the
 * same positions are scored by other models (a merge's parents, say) and compared with KL divergence
 * and top-1 agreement. Same worker pool, AbortSignal and typed events as merge().
 */
import { DataError, ModelError, WorkerError } from "../errors";
import { availableCores, defaultWorkerUrl } from "../env";
import type { ModelFolder, ModelLookup } from "../io/folder";
import { JOBS_PER_WORKER } from "../merge/engine";
import { openModel } from "../model/model";
import { WorkerPool } from "../pool/pool";
import type { Recipe } from "../recipe/recipe";
import { modelLogits, scoreModels } from "../eval/engine";
import type { EvalEvent } from "../eval/protocol";
import { checkpointSource, recipeSource, type DecoderSource } from "../eval/sources";
import { checkEncodedIds, loadTokenizer, type Tokenizer } from "../tokenizer/tokenizer";
import { DEFAULT_CHUNK_BYTES, DEFAULT_MEMORY_BUDGET, prepare } from "./merge";
import { abortable } from "./abortable";
import { checkArrayArgument, checkCallbackOption, checkIntegerOptions, checkOptionKinds } from "./options";
import { formatBytes } from "../units";
import { scalarMath } from "../kernels/scalar-math";
import { nowMs } from "../clock";

/** A model to evaluate or compare against: a checkpoint folder, or a recipe evaluated without writing it. */
export type EvalSubject =
  | { name?: string; model: ModelFolder }
  | { name?: string; recipe: Recipe | string; models: ModelLookup };

export interface EvaluateOptions {
  /** The text to score; with `ids` instead, pre-tokenized input (a model without a tokenizer needs it). */
  text?: string;
  ids?: readonly number[];
  /** Models every evaluated model is compared with, at the same positions. */
  against?: readonly EvalSubject[];
  /** Tokens per window (default 512). */
  context?: number;
  /** Cut the tokenized text to this many tokens before windowing. */
  maxTokens?: number;
  workers?: number;
  /** Wasm memory budget per worker, bytes (default 256 MiB); recipes spend a quarter of it merging. */
  memoryBudget?: number;
  /** Recipes: DARE's seed and the merge's chunk size, as for merge(). */
  seed?: number;
  chunkBytes?: number;
  workerUrl?: URL | string;
  signal?: AbortSignal;
  onProgress?: (event: EvalEvent) => void;
}

export interface EvaluationResult {
  model: string;
  /** Tokens evaluated (after max-tokens). */
  tokens: number;
  /** Tokens predicted: every token of a window but its first. */
  predicted: number;
  /** Mean negative log-likelihood per predicted token, nats. */
  nll: number;
  perplexity: number;
  /** Summed NLL / ln 2 / UTF-8 bytes of the evaluated text; null for pre-tokenized input without a tokenizer. */
  bitsPerByte: number | null;
  against: { model: string; kl: number; top1Agreement: number }[];
}

export const DEFAULT_CONTEXT = 512;

export async function evaluate(subjects: readonly EvalSubject[], options: EvaluateOptions): Promise<{ results: EvaluationResult[] }> {
  checkOptionKinds("evaluate", options, { text: "string", ids: "array", against: "array", signal: "signal" });
  checkArrayArgument("evaluate", "subjects", subjects, "the models to evaluate");
  checkIntegerOptions(options, ["workers", "seed", "memoryBudget", "chunkBytes", "context", "maxTokens"]);
  checkCallbackOption(options, "onProgress");
  if (subjects.length === 0) throw new DataError("E_DATA", "nothing to evaluate: name at least one model or recipe", {});
  if ((options.text === undefined) === (options.ids === undefined)) throw new DataError("E_DATA", "give either a text or token ids to evaluate on", {});
  const started = nowMs();
  const { signal } = options;
  const budget = options.memoryBudget ?? DEFAULT_MEMORY_BUDGET;
  const anyRecipe = [...subjects, ...(options.against ?? [])].some((s) => "recipe" in s);
  const mergeBudget = mergeBudgetOf(budget, anyRecipe);
  const mergeOptions = { memoryBudget: mergeBudget, chunkBytes: options.chunkBytes ?? DEFAULT_CHUNK_BYTES, seed: options.seed ?? 0 };
  const onWarning = (message: string) => options.onProgress?.({ type: "warning", message });
  return abortable(signal, async (slot) => {
    const open = async (s: EvalSubject, i: number): Promise<DecoderSource> => {
      if ("model" in s) return checkpointSource(s.name ?? s.model.name, await openModel(s.model));
      const plan = await prepare(s.recipe, s.models, signal, { workers: options.workers, workerUrl: options.workerUrl });
      return recipeSource(s.name ?? (typeof s.recipe === "string" ? `recipe ${i + 1}` : s.recipe.file), plan, () => slot.pool!, mergeOptions, onWarning);
    };
    // A subject both evaluated and compared against (a parent scored beside the merge) runs once: the
    // same folder object, or the same recipe. Folders are told apart by identity, not name (two picked
    // folders can share a name and hold different models).
    const opened = new Map<unknown, Promise<DecoderSource>>();
    const recipeTexts = new Map<unknown, Map<string, object>>(); // models resolver → recipe text → key
    const textKey = (models: unknown, text: string) => {
      const texts = recipeTexts.get(models) ?? recipeTexts.set(models, new Map()).get(models)!;
      return texts.get(text) ?? texts.set(text, {}).get(text)!;
    };
    const once = (s: EvalSubject, i: number) => {
      const key = "model" in s ? s.model : typeof s.recipe === "string" ? textKey(s.models, s.recipe) : s.recipe;
      if (!opened.has(key)) opened.set(key, open(s, i));
      return opened.get(key)!;
    };
    // One subject after another: a path's 10,001 points opened at once held two files open each while
    // their headers were read, beyond the process's limit (EMFILE; found by the stop 38 README audit).
    const evaluated: DecoderSource[] = [], against: DecoderSource[] = [];
    for (const [i, s] of subjects.entries()) evaluated.push(await once(s, i));
    for (const [i, s] of (options.against ?? []).entries()) against.push(await once(s, subjects.length + i));
    // Results are labelled by name: two different subjects under one name could not be told apart.
    const byName = new Map<string, DecoderSource>();
    for (const source of [...evaluated, ...against]) {
      const seen = byName.get(source.name);
      if (seen && seen !== source) throw new DataError("E_DATA", `two different models or recipes are both named "${source.name}": give each its own name`, { model: source.name });
      byName.set(source.name, source);
    }

    // Tokens, per evaluated model (its own tokenizer); models that tokenize alike are run together.
    // Bytes are each model's own: the same ids can decode to other bytes with another tokenizer, or
    // to none without one.
    const groups = new Map<string, { ids: Int32Array; models: DecoderSource[] }>();
    const bytesOf = new Map<DecoderSource, number | null>();
    for (const e of evaluated) {
      const { ids, bytes } = await tokens(e, options);
      bytesOf.set(e, bytes);
      const key = ids.join(",");
      const group = groups.get(key) ?? { ids, models: [] };
      group.models.push(e);
      groups.set(key, group);
    }
    const context = options.context ?? DEFAULT_CONTEXT;
    const most = Math.max(...[...groups.values()].map((g) => windowsOf(g.ids, context).length));
    const size = Math.max(1, Math.min(options.workers ?? (await availableCores()), most));
    const forward = forwardBudget(budget, mergeBudget);
    const pool = await slot.start({ size, workerUrl: options.workerUrl ?? defaultWorkerUrl(), memoryBudget: mergeBudget, jobsPerWorker: JOBS_PER_WORKER });
    await pool.each((api) => api.evalOpen(forward));
    options.onProgress?.({ type: "eval-plan", models: [...evaluated, ...against].map((m) => m.name), sequences: most, tokens: Math.max(...[...groups.values()].map((g) => g.ids.length)), workers: size });

    const results: EvaluationResult[] = [];
    const { exp } = await scalarMath(); // the kernels' exp: the page and the CLI give the same bits
    for (const group of groups.values()) {
      const seqs = windowsOf(group.ids, context);
      const scores = await scoreModels(pool, seqs, group.models, against, { forwardBudget: forward, ...(signal ? { signal } : {}), ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
      for (const [i, s] of scores.entries()) {
        let sum = 0;
        for (const v of s.nll) sum += v;
        const predicted = s.nll.length;
        const bytes = bytesOf.get(group.models[i]!)!;
        results.push({
          model: s.model, tokens: group.ids.length, predicted, nll: sum / predicted, perplexity: exp(sum / predicted),
          bitsPerByte: bytes === null ? null : sum / Math.LN2 / bytes,
          against: s.against.map((a) => ({ model: a.model, kl: mean(a.kl), top1Agreement: mean(a.agree) })),
        });
      }
    }
    // Results in the order the subjects were given.
    results.sort((a, b) => evaluated.findIndex((e) => e.name === a.model) - evaluated.findIndex((e) => e.name === b.model));
    await pool.each((api) => api.release());
    options.onProgress?.({ type: "eval-done", seconds: (nowMs() - started) / 1000 });
    return { results };
  });
}

/**
 * The logits of one model (or recipe, merged in memory) at every position of `ids`, as one forward
 * pass from position 0: [ids.length × vocab] float32. For checking a model against another
 * implementation; memory grows with length × vocabulary, so keep the sequence short.
 */
export async function logits(subject: EvalSubject, ids: readonly number[], options: Omit<EvaluateOptions, "text" | "ids" | "against" | "context" | "maxTokens"> = {}): Promise<Float32Array> {
  checkIntegerOptions(options, ["workers", "seed", "memoryBudget", "chunkBytes"]);
  if (ids.length === 0 || ids.some((id) => !Number.isSafeInteger(id) || id < 0 || id > 0x7fffffff)) throw new DataError("E_DATA", "token ids must be a non-empty list of non-negative integers below 2^31", {});
  const budget = options.memoryBudget ?? DEFAULT_MEMORY_BUDGET;
  const mergeBudget = mergeBudgetOf(budget, "recipe" in subject);
  let pool: WorkerPool | undefined;
  try {
    const source = "model" in subject
      ? checkpointSource(subject.name ?? subject.model.name, await openModel(subject.model))
      : recipeSource(subject.name ?? "recipe", await prepare(subject.recipe, subject.models, options.signal, { workers: options.workers, workerUrl: options.workerUrl }), () => pool!, { memoryBudget: mergeBudget, chunkBytes: options.chunkBytes ?? DEFAULT_CHUNK_BYTES, seed: options.seed ?? 0 });
    const forward = forwardBudget(budget, mergeBudget);
    pool = await WorkerPool.create({ size: 1, workerUrl: options.workerUrl ?? defaultWorkerUrl(), memoryBudget: mergeBudget, jobsPerWorker: JOBS_PER_WORKER });
    await pool.each((api) => api.evalOpen(forward));
    const [z] = await modelLogits(pool, [Int32Array.from(ids)], source, { ...(options.signal ? { signal: options.signal } : {}) });
    await pool.each((api) => api.release());
    return z!;
  } finally {
    await pool?.terminate();
  }
}

/**
 * The share of a worker's budget for merging: a quarter (at least 16 MiB) when recipes are merged
 * layer by layer, else 16 MiB. The forward pass gets the rest (forwardBudget).
 */
export function mergeBudgetOf(budget: number, mergesRecipes: boolean): number {
  return mergesRecipes ? Math.max(16 * 2 ** 20, Math.floor(budget / 4)) : 16 * 2 ** 20;
}

/** What is left of a worker's budget for the forward pass once the merge kernels have theirs; nothing left is refused. */
export function forwardBudget(budget: number, mergeBudget: number): number {
  if (budget > mergeBudget) return budget - mergeBudget;
  throw new WorkerError("E_MEMORY_BUDGET", `the memory budget of ${formatBytes(budget)} per worker (--memory-budget, option memoryBudget) leaves nothing for the forward pass once ${formatBytes(mergeBudget)} are set aside for the merge kernels; give more than ${formatBytes(mergeBudget)}`,
    { key: "memoryBudget", budget, needed: mergeBudget });
}

/** Consecutive windows of `context` tokens (the last one shorter), each a separate forward pass. */
export function windowsOf(ids: Int32Array, context: number): Int32Array[] {
  return Array.from({ length: Math.ceil(ids.length / context) }, (_, w) => ids.subarray(w * context, Math.min(ids.length, (w + 1) * context)));
}

/** The mean of per-position values (KL, top-1 agreement), summed in order. */
export function mean(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]!;
  return sum / values.length;
}

/** The evaluated token ids and the UTF-8 bytes they cover (for bits per byte). */
export async function tokens(model: DecoderSource, options: EvaluateOptions): Promise<{ ids: Int32Array; bytes: number | null }> {
  let ids: number[];
  let bytes: number | null = null;
  const tokenizer = await loadTokenizer(model.folder);
  if (options.ids !== undefined) {
    ids = [...options.ids];
    if (ids.some((id) => !Number.isSafeInteger(id) || id < 0)) throw new DataError("E_DATA", "token ids must be non-negative integers", {});
    // Ids are held as int32 from here on: a larger one would wrap round to another token's id.
    const huge = ids.find((id) => id > 0x7fffffff);
    if (huge !== undefined) throw new DataError("E_DATA", `${model.name}: token id ${huge} is outside its vocabulary of ${model.spec.vocab}`, { model: model.name });
  } else {
    if (!tokenizer) {
      throw new ModelError("E_TOKENIZER", `${model.folder.name}: has no tokenizer.json, so the text cannot be tokenized; give pre-tokenized ids instead (--ids FILE)`, { file: model.folder.name });
    }
    ids = tokenizer.encode(options.text!);
    checkEncodedIds(tokenizer, model.folder.name, ids, model.spec.vocab, "the text");
    bytes = new TextEncoder().encode(options.text!).length;
  }
  if (options.maxTokens !== undefined && ids.length > options.maxTokens) {
    ids = ids.slice(0, options.maxTokens);
    // The bytes of what is left: the kept tokens decoded (special tokens carry no bytes).
    if (tokenizer) bytes = new TextEncoder().encode(tokenizer.decode(ids, { skipSpecialTokens: true })).length;
  }
  if (bytes === null && tokenizer) bytes = new TextEncoder().encode(tokenizer.decode(ids, { skipSpecialTokens: true })).length;
  if (ids.length < 2) {
    throw new DataError("E_DATA", `${model.name}: the text is ${ids.length} token${ids.length === 1 ? "" : "s"} long; at least 2 are needed (every token but a window's first is predicted)`, { model: model.name });
  }
  if (bytes !== null && tokenizer) bytes -= unscoredBytes(tokenizer, ids, options.context ?? DEFAULT_CONTEXT);
  return { ids: Int32Array.from(ids), bytes };
}

/**
 * The UTF-8 bytes of the tokens no window predicts (each window's first): bits per byte divides the
 * scored tokens' NLL by the bytes of the same tokens (decoder-forward.md 10.2), else it would come out
 * low by about 1/context, and by different amounts for tokenizers that cut the windows differently.
 * A token's bytes are what a stream decoder emits when it arrives, a few tokens of left context
 * included (a leading space kept, a character split across byte tokens counted where it completes).
 */
function unscoredBytes(tokenizer: Tokenizer, ids: readonly number[], context: number): number {
  const encoder = new TextEncoder();
  let bytes = 0;
  for (let start = 0; start < ids.length; start += context) {
    const decoder = tokenizer.streamDecoder({ skipSpecialTokens: true });
    for (let i = Math.max(0, start - UNSCORED_LEFT_CONTEXT); i <= start; i++) {
      const text = decoder.push(ids[i]!);
      if (i === start) bytes += encoder.encode(text).length;
    }
  }
  return bytes;
}

const UNSCORED_LEFT_CONTEXT = 8;
