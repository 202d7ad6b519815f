/**
 * @file The library call: lossPath(a, b, options). The loss (mean NLL, as evaluate defines it) at
 * evenly spaced λ on (1 − λ)·A + λ·B, each point an in-memory linear-merge recipe run through
 * evaluate, so a point's number equals writing that merge and evaluating the folder, bit for bit.
 * Optionally the same along SLERP, and after B is permuted onto A (Git Re-Basin weight matching).
 * The barrier is Git Re-Basin's (Ainsworth et al. 2022, Def. 2.2): the largest loss on the path minus
 * the mean of the two endpoint losses.
 */
import { DataError } from "../errors";
import type { ModelFolder } from "../io/folder";
import { alignedEndpoint, checkSameComputation, endpointFolder, subjectName, type Alignment } from "../measure/endpoints";
import { lambdas, linearPointRecipe, slerpPointRecipe } from "../measure/recipes";
import { evaluate, type EvalSubject, type EvaluateOptions } from "./evaluate";
import { checkCallbackOption, checkIntegerOptions } from "./options";
import { nowMs } from "../clock";
import { nonFiniteWarningTensor } from "../merge/job";

export type LossPathEvent =
  | { type: "path-endpoint"; endpoint: "A" | "B"; name: string }
  | { type: "path-align"; reference: string; model: string }
  /** B is permuted onto A; `workerAssignments`: the assignments each worker of the matching's pool solved (browsers: all; Node: the calling thread solves them, so zeros). */
  | { type: "path-aligned"; reference: string; model: string; sweeps: number; workerAssignments: number[] }
  /** A point's forward pass begins (with the default batching, every point of a curve begins before any ends). */
  | { type: "path-point-start"; curve: CurveLabel; path: PathKind; aligned: boolean; index: number; points: number; lambda: number }
  /** A point is measured: its numbers are those the result's curve holds at `index`. */
  | ({ type: "path-point"; curve: CurveLabel; path: PathKind; aligned: boolean; index: number; points: number } & LossPoint)
  | { type: "path-done"; seconds: number }
  /** A merged tensor (a recipe endpoint's, or a point's) came out NaN throughout (a NaN or infinite input), as merge and eval warn; each message once per path. */
  | { type: "warning"; message: string };

export type PathKind = "linear" | "slerp";
/** A curve's name, as pathCurves() labels it: "linear", "slerp", "aligned linear", "aligned slerp". */
export type CurveLabel = PathKind | `aligned ${PathKind}`;

export interface LossPathOptions extends Omit<EvaluateOptions, "against" | "onProgress"> {
  /** Evenly spaced points from A (λ = 0) to B (λ = 1), both included (default 11). */
  points?: number;
  /** Also measure the SLERP path (mergekit's slerp with t = λ, A as the base). */
  slerp?: boolean;
  /** Also measure both paths after permuting B onto A (weight matching, spec from config.json). */
  align?: boolean;
  /** Weight matching's sweep limit (default 100); its seed is `seed`. */
  maxSweeps?: number;
  /**
   * Score each point in its own evaluate call, so each `path-point` event arrives as soon as that point
   * is measured (a chart can grow point by point). Same numbers; slower, since each call starts its own
   * worker pool and tokenizes the text again. Default false: one evaluate call per curve, whose
   * `path-point` events all arrive when the curve is done.
   */
  pointByPoint?: boolean;
  onProgress?: (event: LossPathEvent) => void;
}

export interface LossPoint {
  lambda: number;
  /** Mean negative log-likelihood per predicted token, nats (evaluate's `nll`). */
  nll: number;
  perplexity: number;
}

export interface LossCurve {
  points: LossPoint[];
  /** max_λ L(λ) − (L(0) + L(1)) / 2 (Git Re-Basin Def. 2.2). */
  barrier: number;
  /** max_λ [L(λ) − ((1 − λ)·L(0) + λ·L(1))]: the rise above the line joining the endpoint losses. */
  gap: number;
  /** The λ of the largest loss (the first, if several are equal). */
  worstLambda: number;
}

export interface LossPathResult extends LossCurve {
  a: string;
  b: string;
  /** Tokens evaluated and predicted at every point (the same text for every point). */
  tokens: number;
  predicted: number;
  slerp?: LossCurve;
  /** The paths again with B permuted onto A first. */
  aligned?: LossCurve & { slerp?: LossCurve; sweeps: number; groups: Alignment["groups"] };
  seconds: number;
}

export const DEFAULT_PATH_POINTS = 11;

export async function lossPath(a: EvalSubject, b: EvalSubject, options: LossPathOptions): Promise<LossPathResult> {
  checkIntegerOptions(options, ["workers", "seed", "memoryBudget", "chunkBytes", "context", "maxTokens", "points", "maxSweeps"]);
  checkCallbackOption(options, "onProgress");
  const started = nowMs();
  const { points = DEFAULT_PATH_POINTS, slerp = false, align = false, maxSweeps, pointByPoint = false, onProgress, ...evalOptions } = options;
  const [nameA, nameB] = [subjectName(a), subjectName(b)];
  if (nameA === nameB) throw new DataError("E_DATA", `A and B are both "${nameA}": a loss path needs two different models or recipes`, { model: nameA });
  // A recipe endpoint's merge, and every point of a curve (merging the same tensors), may warn alike: each
  // message once. A point's tensor holding NaN or infinite values holds an endpoint's: once that tensor has
  // a warning (the endpoint's merge's, or an earlier point's), the points say nothing more of it.
  const warned = new Set<string>(), nonFiniteTensors = new Set<string>();
  const warn = (message: string, fromPoint = false) => {
    const tensor = nonFiniteWarningTensor(message);
    if (warned.has(message) || (fromPoint && tensor !== undefined && nonFiniteTensors.has(tensor))) return;
    warned.add(message);
    if (tensor !== undefined) nonFiniteTensors.add(tensor);
    onProgress?.({ type: "warning", message });
  };
  const folder = async (s: EvalSubject, endpoint: "A" | "B", name: string) => {
    if ("recipe" in s) onProgress?.({ type: "path-endpoint", endpoint, name });
    return endpointFolder(s, evalOptions, warn);
  };
  const folderA = await folder(a, "A", nameA);
  const folderB = await folder(b, "B", nameB);
  await checkSameComputation([{ name: nameA, folder: folderA }, { name: nameB, folder: folderB }], "every point of the path runs with A's config.json, so λ = 1 would not be B");

  let counts = { tokens: 0, predicted: 0 };
  // By default one evaluate call per curve, every point a subject of it: the text is tokenized once and
  // one pool serves all points; each point's numbers do not depend on the others (evaluate's guarantee),
  // which is also why scoring the points one call at a time (pointByPoint) gives the same numbers.
  const curve = async (kind: PathKind, aligned: boolean, bFolder: ModelFolder): Promise<LossCurve> => {
    // The recipes name the endpoints "A" and "B" (any name a person gives, "+" or spaces included, would be read as recipe syntax).
    const resolve = (n: string) => (n === "A" ? folderA : bFolder);
    const grid = lambdas(points);
    const label: CurveLabel = aligned ? `aligned ${kind}` : kind;
    const name = (lambda: number) => `${label} λ=${lambda}`;
    const subjects = grid.map((lambda) => ({ name: name(lambda), recipe: kind === "linear" ? linearPointRecipe("A", "B", lambda) : slerpPointRecipe("A", "B", lambda), models: resolve }));
    const index = new Map(grid.map((lambda, i) => [name(lambda), i]));
    const event = { curve: label, path: kind, aligned, points };
    const measured: LossPoint[] = [];
    const batches = pointByPoint ? subjects.map((s) => [s]) : [subjects];
    for (const batch of batches) {
      const { results } = await evaluate(batch, {
        ...evalOptions,
        onProgress: (e) => {
          if (e.type === "warning") warn(e.message, true);
          if (e.type !== "model-start") return;
          const i = index.get(e.model)!;
          onProgress?.({ type: "path-point-start", ...event, index: i, lambda: grid[i]! });
        },
      });
      counts = { tokens: results[0]!.tokens, predicted: results[0]!.predicted };
      for (const r of results) {
        const i = index.get(r.model)!;
        const point = { lambda: grid[i]!, nll: r.nll, perplexity: r.perplexity };
        measured.push(point);
        onProgress?.({ type: "path-point", ...event, index: i, ...point });
      }
    }
    return lossCurve(measured);
  };
  const curves = async (aligned: boolean, bFolder: ModelFolder) => {
    const line = await curve("linear", aligned, bFolder);
    return slerp ? { ...line, slerp: await curve("slerp", aligned, bFolder) } : line;
  };

  const result: LossPathResult = { a: nameA, b: nameB, ...(await curves(false, folderB)), ...counts, seconds: 0 };
  if (align) {
    onProgress?.({ type: "path-align", reference: nameA, model: nameB });
    const alignment = await alignedEndpoint(folderA, folderB, { seed: evalOptions.seed, maxSweeps, signal: evalOptions.signal, workers: evalOptions.workers, workerUrl: evalOptions.workerUrl });
    onProgress?.({ type: "path-aligned", reference: nameA, model: nameB, sweeps: alignment.sweeps, workerAssignments: alignment.workerAssignments });
    result.aligned = { ...(await curves(true, alignment.folder)), sweeps: alignment.sweeps, groups: alignment.groups };
  }
  result.seconds = (nowMs() - started) / 1000;
  onProgress?.({ type: "path-done", seconds: result.seconds });
  return result;
}

/** Barrier, gap and worst λ of measured points (λ ascending, both endpoints included). */
export function lossCurve(points: LossPoint[]): LossCurve {
  const first = points[0]!, last = points[points.length - 1]!;
  let worst = first, gap = -Infinity;
  for (const p of points) {
    if (p.nll > worst.nll) worst = p;
    gap = Math.max(gap, p.nll - ((1 - p.lambda) * first.nll + p.lambda * last.nll));
  }
  return { points, barrier: worst.nll - (first.nll + last.nll) / 2, gap, worstLambda: worst.lambda };
}
