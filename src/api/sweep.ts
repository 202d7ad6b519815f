/**
 * @file The library call: sweep(recipe, vary, options). Every point of the grid the varied keys span is
 * the recipe with those numbers set (src/sweep/keys.ts), evaluated like evaluate() evaluates a recipe:
 * merged tensor by tensor in memory, never written, with the numbers of writing that point's merge
 * and evaluating the written folder. Work the points share is done once: a merged tensor whose job
 * (inputs, method, effective parameters) is the same at several points is merged once, and the points
 * go through the model layer by layer together (as many at a time as the memory budget holds the
 * hidden states of), so each layer's shared tensors are in memory once for all of them.
 */
import { DataError, describeValue, OptionError } from "../errors";
import { availableCores, defaultWorkerUrl } from "../env";
import { openModel } from "../model/model";
import { JOBS_PER_WORKER } from "../merge/engine";
import { parseRecipe, type Recipe } from "../recipe/recipe";
import { checkInputs, forModel, gather, statesThatFit } from "../eval/engine";
import { checkpointSource, type DecoderSource } from "../eval/sources";
import type { WeightRef } from "../eval/protocol";
import { Phases } from "../eval/profile";
import { assignValues, checkKeys } from "../sweep/keys";
import { gridPoints, parseVary, type Vary } from "../sweep/grid";
import { PointTensors, SharedTensors } from "../sweep/shared-tensors";
import { pointSource, type PointSource } from "../sweep/point-source";
import { runLayerMajor, type RunEntry } from "../sweep/layer-major";
import { abortable } from "./abortable";
import { DEFAULT_CONTEXT, forwardBudget, mean, mergeBudgetOf, tokens, windowsOf, type EvalSubject, type EvaluateOptions } from "./evaluate";
import { DEFAULT_CHUNK_BYTES, DEFAULT_MEMORY_BUDGET, prepare } from "./merge";
import { checkArrayArgument, checkCallbackOption, checkIntegerOptions, checkOptionKinds, checkRecipeArgument } from "./options";
import type { ModelLookup } from "../io/folder";
import { scalarMath } from "../kernels/scalar-math";
import { nowMs } from "../clock";

export interface SweepOptions extends Omit<EvaluateOptions, "against" | "onProgress"> {
  /** How the recipe's model names are found. */
  models: ModelLookup;
  /** Models every point is compared with (KL divergence, top-1 agreement), as for evaluate(). */
  against?: readonly EvalSubject[];
  onProgress?: (event: SweepEvent) => void;
  /** At most this many points go through the layers together (default: as many as the memory budget holds; 1 = point by point). */
  maxPointsPerPass?: number;
}

export interface SweepPoint {
  /** The varied keys' values at this point (a null-prototype object: keys come from the caller). */
  values: Record<string, number>;
  nll: number;
  perplexity: number;
  bitsPerByte: number | null;
  against: { model: string; kl: number; top1Agreement: number }[];
  /** The point's recipe YAML (the recipe with the values set): what --write-best merges. */
  recipe: string;
}

export interface SweepResult {
  recipe: string;
  keys: string[];
  points: SweepPoint[];
  /** Index of the lowest-NLL point (the first of equals; a point with a NaN NLL only when every point has one). */
  best: number;
  tokens: number;
  predicted: number;
  /** Merged tensors computed, and tensor uses served by another point's identical job. */
  tensorsComputed: number;
  tensorsShared: number;
  /** Points run layer by layer together (fewer when the memory budget cannot hold all their hidden states). */
  pointsPerPass: number;
  /** Decoder layers run over the sequences, against models' included: a layer that points share (their weights equal up to it) runs once. */
  layerRuns: number;
  seconds: number;
}

export type SweepEvent =
  | { type: "sweep-plan"; keys: string[]; points: number; pointsPerPass: number; sequences: number; tokens: number; workers: number }
  | { type: "sweep-layer"; layer: number; layers: number; points: number[] }
  | { type: "sweep-point"; index: number; values: Record<string, number>; nll: number; perplexity: number; against: { model: string; kl: number }[] }
  | { type: "sweep-done"; seconds: number; tensorsComputed: number; tensorsShared: number }
  /** A merged tensor is NaN throughout (a NaN or infinite input), as the written merge warns; each message once per sweep. */
  | { type: "warning"; message: string };

export async function sweep(recipe: Recipe | string, vary: readonly (Vary | string)[], options: SweepOptions): Promise<SweepResult> {
  checkRecipeArgument("sweep", recipe);
  checkOptionKinds("sweep", options, { text: "string", ids: "array", signal: "signal" });
  checkArrayArgument("sweep", "vary", vary, "vary (keys and their values)");
  checkIntegerOptions(options, ["workers", "seed", "memoryBudget", "chunkBytes", "context", "maxTokens"]);
  if (options.maxPointsPerPass !== undefined && (!Number.isSafeInteger(options.maxPointsPerPass) || options.maxPointsPerPass < 1)) {
    throw new OptionError("E_OPTION", `option maxPointsPerPass must be an integer of at least 1, got ${describeValue(options.maxPointsPerPass)}`, { key: "maxPointsPerPass" });
  }
  checkCallbackOption(options, "onProgress");
  if ((options.text === undefined) === (options.ids === undefined)) throw new DataError("E_DATA", "give either a text or token ids to evaluate on", {});
  const started = nowMs();
  const { signal } = options;
  const emit = (e: SweepEvent) => options.onProgress?.(e);
  const base = typeof recipe === "string" ? parseRecipe(recipe) : recipe;
  const varies = vary.map((v) => (typeof v === "string" ? parseVary(v) : v));
  const grid = gridPoints(varies);
  const keys = varies.map((v) => v.key);
  checkKeys(base.text, base.file, keys);

  const budget = options.memoryBudget ?? DEFAULT_MEMORY_BUDGET;
  const mergeBudget = mergeBudgetOf(budget, true);
  const mergeOptions = { memoryBudget: mergeBudget, chunkBytes: options.chunkBytes ?? DEFAULT_CHUNK_BYTES, seed: options.seed ?? 0 };
  const shared = new SharedTensors();
  // Points whose jobs differ can warn the same (the message names the tensor and the input files): heard once.
  const warned = new Set<string>();
  const onWarning = (message: string) => {
    if (warned.has(message)) return;
    warned.add(message);
    emit({ type: "warning", message });
  };
  const phases = new Phases("sweep");
  return abortable(signal, async (slot) => {
    // Every point planned (headers only) before anything runs: a bad value fails before any work.
    const planned = nowMs();
    const points: { values: Record<string, number>; text: string; source: PointSource }[] = [];
    for (const [i, values] of grid.entries()) {
      signal?.throwIfAborted();
      const text = assignValues(base.text, base.file, values);
      const plan = await prepare(parseRecipe(text, base.file), options.models, signal, { workers: options.workers, workerUrl: options.workerUrl });
      for (const message of plan.warnings) onWarning(message);
      const record: Record<string, number> = Object.create(null);
      for (const [k, v] of values) record[k] = v;
      points.push({ values: record, text, source: pointSource(`point ${i + 1}`, plan, new PointTensors(plan, () => slot.pool!, mergeOptions, shared, onWarning)) });
    }
    const against: DecoderSource[] = [];
    for (const [i, s] of (options.against ?? []).entries()) {
      if ("model" in s) against.push(checkpointSource(s.name ?? s.model.name, await openModel(s.model)));
      else {
        const plan = await prepare(s.recipe, s.models, signal, { workers: options.workers, workerUrl: options.workerUrl });
        for (const message of plan.warnings) onWarning(message);
        against.push(pointSource(s.name ?? (typeof s.recipe === "string" ? `recipe ${i + 1}` : s.recipe.file), plan, new PointTensors(plan, () => slot.pool!, mergeOptions, shared, onWarning)));
      }
    }

    phases.since("plan points, open models", planned);
    const first = points[0]!.source;
    const { ids, bytes } = await tokens(first, options as EvaluateOptions);
    const context = options.context ?? DEFAULT_CONTEXT;
    const sequences = windowsOf(ids, context);
    checkInputs(sequences, [...points.map((p) => p.source), ...against], points.map((p) => p.source), against);
    const workers = Math.max(1, Math.min(options.workers ?? (await availableCores()), sequences.length));
    const dealt = Array.from({ length: workers }, (_, w) => sequences.filter((_, i) => i % workers === w));

    // As many points per pass as the workers can hold the hidden states of.
    const forward = forwardBudget(budget, mergeBudget);
    const perPass = Math.min(points.length, options.maxPointsPerPass ?? points.length, statesThatFit(forward, dealt, points.map((p) => p.source), against));

    const starting = nowMs();
    const pool = await slot.start({ size: workers, workerUrl: options.workerUrl ?? defaultWorkerUrl(), memoryBudget: mergeBudget, jobsPerWorker: JOBS_PER_WORKER });
    await pool.each((api) => api.evalOpen(forward));
    phases.since("start workers", starting);
    emit({ type: "sweep-plan", keys, points: points.length, pointsPerPass: perPass, sequences: sequences.length, tokens: ids.length, workers });

    // Against models' output projections are the same for every point: fetched once.
    const againstIds = against.map((_, j) => `a${j}`);
    let layerRuns = 0;
    let againstHeads: { model: string; lmHead: WeightRef }[] | undefined;
    const results: SweepPoint[] = [];
    const { exp } = await scalarMath(); // the kernels' exp, as evaluate() uses: the page and the CLI give the same bits
    for (let from = 0; from < points.length; from += perPass) {
      const pass = points.slice(from, from + perPass);
      // A fresh session per pass: every state from the last pass released (the against models run again).
      await Promise.all(dealt.map((seqs, w) => pool.on(w, (api) => api.evalSequences(seqs))));
      // A tied output projection is the embedding: the points whose merged embeddings the budget can
      // hold until scoring keep them (one more announced use), so it is merged once for them.
      const tied = pass.filter((p) => p.source.spec.lmHead === p.source.spec.embed);
      const holds = new Set(tied.slice(0, Math.floor(budget / Math.max(1, ...tied.map((p) => p.source.sizeOf(p.source.spec.lmHead))))));
      for (const p of holds) p.source.expect([p.source.spec.lmHead]);
      const entries: RunEntry[] = [...against.map((a, j) => ({ id: againstIds[j]!, source: a })), ...pass.map((p, i) => ({ id: `p${from + i}`, source: p.source }))];
      const indexes = pass.map((_, i) => from + i);
      const ran = await runLayerMajor(pool, workers, entries, (layer, layers) => emit({ type: "sweep-layer", layer, layers, points: indexes }), signal, phases);
      layerRuns += ran.layerRuns;
      const stateOf = (id: string) => ran.states.get(id)!;
      if (!againstHeads) {
        for (const a of against) (a as Partial<PointSource>).expect?.([a.spec.lmHead]);
        againstHeads = await Promise.all(against.map(async (a, j) => ({ model: againstIds[j]!, lmHead: (await a.weights([a.spec.lmHead])).get(a.spec.lmHead)! })));
      }
      // Announced for the whole pass, so an output projection equal at several points is merged once.
      for (const p of pass) if (!holds.has(p)) p.source.expect([p.source.spec.lmHead]);
      // The next point's output projection is merged while this one is scored.
      const headOf = (p: (typeof pass)[number]) => {
        const h = p.source.weights([p.source.spec.lmHead]);
        h.catch(() => undefined); // awaited below; a failure while an earlier point scores is not unhandled
        return h;
      };
      let nextHead = headOf(pass[0]!);
      for (const [i, p] of pass.entries()) {
        signal?.throwIfAborted();
        const index = from + i;
        const head = (await phases.time("wait for merged lm head", nextHead)).get(p.source.spec.lmHead)!;
        if (i + 1 < pass.length) nextHead = headOf(pass[i + 1]!);
        const perWorker = await phases.time("scoring", () => forModel(p.source.name, Promise.all(dealt.map((_, w) => pool.on(w, (api) => api.evalScore(stateOf(`p${index}`), head, againstHeads!.map((h) => ({ ...h, model: stateOf(h.model) }))))))));
        const s = gather(p.source.name, against.map((a) => a.name), sequences, dealt, perWorker);
        // The same sums, in the same order, as evaluate().
        let sum = 0;
        for (const v of s.nll) sum += v;
        const predicted = s.nll.length;
        const point: SweepPoint = {
          values: p.values, nll: sum / predicted, perplexity: exp(sum / predicted), bitsPerByte: bytes === null ? null : sum / Math.LN2 / bytes,
          against: s.against.map((a) => ({ model: a.model, kl: mean(a.kl), top1Agreement: mean(a.agree) })), recipe: p.text,
        };
        results.push(point);
        emit({ type: "sweep-point", index, values: p.values, nll: point.nll, perplexity: point.perplexity, against: point.against.map((a) => ({ model: a.model, kl: a.kl })) });
      }
    }
    await pool.each((api) => api.release());
    // The lowest NLL, the first of equals; a NaN point (weights beyond float32's range) is never best unless all are.
    let best = 0;
    results.forEach((r, i) => { if (r.nll < results[best]!.nll || (Number.isNaN(results[best]!.nll) && !Number.isNaN(r.nll))) best = i; });
    const seconds = (nowMs() - started) / 1000;
    phases.report();
    emit({ type: "sweep-done", seconds, tensorsComputed: shared.computed, tensorsShared: shared.shared });
    const predicted = sequences.reduce((n, s) => n + Math.max(0, s.length - 1), 0);
    return { recipe: base.file, keys, points: results, best, tokens: ids.length, predicted, tensorsComputed: shared.computed, tensorsShared: shared.shared, layerRuns, pointsPerPass: perPass, seconds };
  });
}
