/**
 * @file One loss path from the page: lossPath() itself, between two of the Evaluate panel's candidates
 * (a loaded model, the last merge's output, or the recipe as it stands, merged in memory as the
 * Evaluate panel's recipe row is), on the Evaluate panel's text and window, optionally along SLERP and
 * after aligning B to A. The numbers are therefore `weightsoup path`'s, bit for bit. lossPath() runs
 * point by point (`pointByPoint`), so each point's `path-point` event lands as it is measured and the
 * chart grows with it. Aligning B to A runs on lossPath()'s worker pool, which computes the similarity
 * matrices and solves the assignments (src/align/pool-engine.ts): the page's main thread only orders the
 * work, so the page stays responsive; the workers' count of assignments solved is shown.
 */
import { lossPath, type CurveLabel, type LossPathResult, type LossPoint } from "../../src/api/path";
import { DEFAULT_TEXT } from "../../src/eval/default-text";
import { ModelError } from "../../src/errors";
import { formatSeconds } from "../../src/units";
import type { PageState, RunState, Store } from "../state";
import { evalCandidates, subjectOf, type EvalCandidate } from "./eval-candidates";
import { endFailedRun, type PanelRunOptions } from "./panel-run";
import type { Problem } from "./recipe-check";
import { contextProblem, DEFAULT_EVAL_CONTEXT, maxTokensProblem } from "./run-eval";

export const DEFAULT_PATH_POINTS = "11";

/** The panel's inputs, as typed: the two endpoints (candidate ids), the number of points, the extra paths. */
export interface PathForm {
  a: string;
  b: string;
  points: string;
  slerp: boolean;
  align: boolean;
}

export interface PathResult extends LossPathResult {
  /** The text was the Evaluate panel's (false: it was empty, the built-in text was used). */
  ownText: boolean;
}

export interface PathRun {
  run: RunState;
  /** 0..1 */
  progress: number;
  status: string;
  /** Milestones for screen readers: started, finished. */
  announcement: string;
  problems: readonly Problem[];
  /** Each curve's points measured so far, λ ascending, curves in the order they are measured. */
  curves: readonly { label: CurveLabel; points: readonly LossPoint[] }[];
  /** lossPath()'s result, once every curve is measured. */
  result: PathResult | null;
  /** Once B is aligned to A: the workers the matching ran on and the assignments they solved. */
  alignedOn: { workers: number; assignments: number } | null;
}

export const initialPathForm = (): PathForm => ({ a: "", b: "", points: DEFAULT_PATH_POINTS, slerp: false, align: false });
export const initialPathRun = (): PathRun => ({ run: "idle", progress: 0, status: "", announcement: "", problems: [], curves: [], result: null, alignedOn: null });

/** A whole number of points, 2 to 101, or "" for the default; otherwise what is wrong, in words. */
export function pointsProblem(text: string): string {
  const t = text.trim();
  if (t === "") return "";
  if (!/^\d+$/.test(t) || Number(t) < 2 || Number(t) > 101) return `Points must be a whole number from 2 to 101 (empty: ${DEFAULT_PATH_POINTS}); “${t}” is not.`;
  return "";
}

/** What a path can join: the Evaluate panel's candidates (merged output, recipe, loaded models). */
export const pathEndpoints = (s: PageState): EvalCandidate[] => evalCandidates(s, { stages: true });

/** Why Loss path cannot run now, in words ("" when it can). */
export function whyPathBlocked(s: PageState): string {
  if (s.platformProblems.length) return "This browser cannot run weightsoup (see the notice above).";
  if (s.path.run === "running") return "";
  const ids = pathEndpoints(s).map((c) => c.id);
  if (ids.length < 2) return "Add two models to measure the loss between them.";
  const { a, b } = s.pathForm;
  if (!ids.includes(a) || !ids.includes(b)) return "Choose the two ends, A and B.";
  if (a === b) return "A and B are the same model: choose two different ones.";
  return pointsProblem(s.pathForm.points) || contextProblem(s.evalForm.context) || maxTokensProblem(s.evalForm.maxTokens);
}

/** The partial result the chart draws: the curves measured so far, shaped as lossPath()'s result. */
export function partialResult(curves: PathRun["curves"]): LossPathResult {
  const of = (label: CurveLabel) => curves.find((c) => c.label === label)?.points;
  const curve = (points: readonly LossPoint[]) => ({ points: [...points], barrier: 0, gap: 0, worstLambda: 0 });
  const [linear, slerp, alignedLinear, alignedSlerp] = [of("linear"), of("slerp"), of("aligned linear"), of("aligned slerp")];
  return {
    a: "A", b: "B", tokens: 0, predicted: 0, seconds: 0, ...curve(linear ?? []),
    ...(slerp ? { slerp: curve(slerp) } : {}),
    ...(alignedLinear ? { aligned: { ...curve(alignedLinear), sweeps: 0, groups: [], ...(alignedSlerp ? { slerp: curve(alignedSlerp) } : {}) } } : {}),
  };
}

export async function runPath(store: Store, options: PanelRunOptions): Promise<void> {
  const s = store.state;
  const form = s.pathForm;
  const endpoint = (id: string) => {
    const c = pathEndpoints(s).find((x) => x.id === id);
    if (!c) throw new ModelError("E_MODEL_NOT_FOUND", `"${id}" is no longer in the page`, { model: id });
    return c;
  };
  const points = Number(form.points.trim() || DEFAULT_PATH_POINTS);
  const total = points * (form.slerp ? 2 : 1) * (form.align ? 2 : 1);
  const ownText = s.evalForm.text.trim() !== "";
  const text = ownText ? s.evalForm.text : DEFAULT_TEXT;
  const context = Number(s.evalForm.context.trim() || DEFAULT_EVAL_CONTEXT);
  const maxTokens = s.evalForm.maxTokens.trim() === "" ? undefined : Number(s.evalForm.maxTokens.trim());
  const set = (patch: Partial<PathRun>) => store.update({ path: { ...store.state.path, ...patch } });
  const started = performance.now();
  try {
    const [ca, cb] = [endpoint(form.a), endpoint(form.b)];
    const start = `Measuring ${total} points from ${ca.label} to ${cb.label}…`;
    set({ run: "running", progress: 0, status: start, announcement: start, problems: [], curves: [], result: null, alignedOn: null });
    const usesRecipe = ca.kind === "recipe" || cb.kind === "recipe";
    let measured = 0;
    const result = await lossPath(await subjectOf(ca, s), await subjectOf(cb, s), {
      text, context, ...(maxTokens !== undefined ? { maxTokens } : {}), points, slerp: form.slerp, align: form.align, pointByPoint: true,
      // The merge's seed field matters to a recipe endpoint only (DARE's drops), as in the Evaluate panel.
      ...(usesRecipe ? { seed: Number(s.seed.trim() || 0) } : {}),
      signal: options.signal,
      ...(options.workers ? { workers: options.workers } : {}), ...(options.workerUrl ? { workerUrl: options.workerUrl } : {}),
      onProgress: (e) => {
        if (e.type === "path-endpoint") set({ status: `Merging ${e.name} (${e.endpoint}) in memory…` });
        else if (e.type === "path-align") set({ status: `Aligning ${e.model} to ${e.reference} (weight matching, in the workers)…` });
        else if (e.type === "path-aligned") set({ alignedOn: { workers: e.workerAssignments.length, assignments: e.workerAssignments.reduce((n, k) => n + k, 0) } });
        else if (e.type === "path-point") {
          measured++;
          const curves = [...store.state.path.curves];
          const at = curves.findIndex((c) => c.label === e.curve);
          const point = { lambda: e.lambda, nll: e.nll, perplexity: e.perplexity };
          if (at < 0) curves.push({ label: e.curve, points: [point] });
          else curves[at] = { label: e.curve, points: [...curves[at]!.points, point] };
          set({ curves, progress: Math.min(0.99, measured / total), status: `Point ${measured} of ${total} (${e.curve}, λ = ${e.lambda.toFixed(2)}): NLL ${e.nll.toFixed(4)}` });
        }
      },
    });
    const done = `Measured ${total} points on ${result.tokens} tokens in ${formatSeconds((performance.now() - started) / 1000)}: barrier ${result.barrier.toFixed(4)} nats.`;
    set({ progress: 1, status: done, result: { ...result, ownText } });
    // "done" last: a host page reacting to data-path-state finds the results shown.
    set({ announcement: done, run: "done" });
  } catch (e) {
    endFailedRun(e, options.signal, set, { cancelled: "Loss path cancelled.", failed: "The loss path failed." });
  }
}
