/**
 * @file One loss path from the page: the mean NLL at evenly spaced λ on (1 − λ)·A + λ·B for two loaded
 * models, on the Evaluate panel's text and window. Each point is the library's own point recipe
 * (linearPointRecipe, what lossPath() evaluates), and the barrier is the library's lossCurve(), so
 * the numbers are lossPath()'s and `weightsoup path`'s, bit for bit. The page evaluates the points one
 * evaluate() call at a time, not in one lossPath() call, because lossPath() reports a point's loss only
 * when the whole curve is done, and the chart here grows as each point completes.
 */
import { evaluate } from "../../src/api/evaluate";
import { lossCurve, type LossCurve, type LossPoint } from "../../src/api/path";
import { DEFAULT_TEXT } from "../../src/eval/default-text";
import { AbortError, ModelError } from "../../src/errors";
import { lambdas, linearPointRecipe } from "../../src/measure/recipes";
import { formatSeconds } from "../../src/units";
import type { PageState, RunState, Store } from "../state";
import { problemsOf, type Problem } from "./recipe-check";
import { contextProblem, DEFAULT_EVAL_CONTEXT, maxTokensProblem } from "./run-eval";

export const DEFAULT_PATH_POINTS = "11";

/** The panel's inputs, as typed: the two loaded models' names and the number of points. */
export interface PathForm {
  a: string;
  b: string;
  points: string;
}

export interface PathResult extends LossCurve {
  a: string;
  b: string;
  tokens: number;
  predicted: number;
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
  /** The points measured so far, λ ascending (the chart draws them as they come). */
  points: readonly LossPoint[];
  /** The whole curve and its barrier, once every point is measured. */
  result: PathResult | null;
}

export const initialPathForm = (): PathForm => ({ a: "", b: "", points: DEFAULT_PATH_POINTS });
export const initialPathRun = (): PathRun => ({ run: "idle", progress: 0, status: "", announcement: "", problems: [], points: [], result: null });

/** A whole number of points, 2 to 101, or "" for the default; otherwise what is wrong, in words. */
export function pointsProblem(text: string): string {
  const t = text.trim();
  if (t === "") return "";
  if (!/^\d+$/.test(t) || Number(t) < 2 || Number(t) > 101) return `Points must be a whole number from 2 to 101 (empty: ${DEFAULT_PATH_POINTS}); “${t}” is not.`;
  return "";
}

/** The loaded, readable models a path can join. */
export const pathModels = (s: PageState): string[] => s.models.filter((m) => m.loaded && !m.adapter).map((m) => m.name);

/** Why Loss path cannot run now, in words ("" when it can). */
export function whyPathBlocked(s: PageState): string {
  if (s.platformProblems.length) return "This browser cannot run weightsoup (see the notice above).";
  if (s.path.run === "running") return "";
  const names = pathModels(s);
  if (names.length < 2) return "Add two models to measure the loss between them.";
  const { a, b } = s.pathForm;
  if (!names.includes(a) || !names.includes(b)) return "Choose the two models, A and B.";
  if (a === b) return "A and B are the same model: choose two different ones.";
  return pointsProblem(s.pathForm.points) || contextProblem(s.evalForm.context) || maxTokensProblem(s.evalForm.maxTokens);
}

export interface PathRunOptions {
  signal: AbortSignal;
  workers?: number;
  workerUrl?: URL;
}

export async function runPath(store: Store, options: PathRunOptions): Promise<void> {
  const s = store.state;
  const { a, b } = s.pathForm;
  const folderOf = (name: string) => {
    const m = s.models.find((x) => x.name === name);
    if (!m) throw new ModelError("E_MODEL_NOT_FOUND", `model "${name}" is no longer loaded in the page`, { model: name });
    return m.folder;
  };
  const grid = lambdas(Number(s.pathForm.points.trim() || DEFAULT_PATH_POINTS));
  const ownText = s.evalForm.text.trim() !== "";
  const text = ownText ? s.evalForm.text : DEFAULT_TEXT;
  const context = Number(s.evalForm.context.trim() || DEFAULT_EVAL_CONTEXT);
  const maxTokens = s.evalForm.maxTokens.trim() === "" ? undefined : Number(s.evalForm.maxTokens.trim());
  const set = (patch: Partial<PathRun>) => store.update({ path: { ...store.state.path, ...patch } });
  const start = `Measuring ${grid.length} points from ${a} to ${b}…`;
  set({ run: "running", progress: 0, status: start, announcement: start, problems: [], points: [], result: null });

  const started = performance.now();
  try {
    const folders = { A: folderOf(a), B: folderOf(b) };
    const points: LossPoint[] = [];
    let counts = { tokens: 0, predicted: 0 };
    for (const [i, lambda] of grid.entries()) {
      // The recipes name the endpoints "A" and "B", as lossPath's do (a model's own name could read as recipe syntax).
      const { results } = await evaluate([{ name: `linear λ=${lambda}`, recipe: linearPointRecipe("A", "B", lambda), models: (n) => (n === "A" ? folders.A : folders.B) }], {
        text, context, ...(maxTokens !== undefined ? { maxTokens } : {}),
        signal: options.signal,
        ...(options.workers ? { workers: options.workers } : {}), ...(options.workerUrl ? { workerUrl: options.workerUrl } : {}),
      });
      const r = results[0]!;
      counts = { tokens: r.tokens, predicted: r.predicted };
      points.push({ lambda, nll: r.nll, perplexity: r.perplexity });
      set({ points: [...points], progress: Math.min(0.99, (i + 1) / grid.length), status: `Point ${i + 1} of ${grid.length} (λ = ${lambda.toFixed(2)}): NLL ${r.nll.toFixed(4)}` });
    }
    const result: PathResult = { a, b, ...lossCurve(points), ...counts, ownText };
    const done = `Measured ${grid.length} points on ${counts.tokens} tokens in ${formatSeconds((performance.now() - started) / 1000)}: barrier ${result.barrier.toFixed(4)} nats.`;
    set({ progress: 1, status: done, result });
    // "done" last: a host page reacting to data-path-state finds the results shown.
    set({ announcement: done, run: "done" });
  } catch (e) {
    if (e instanceof AbortError || options.signal.aborted) {
      set({ status: "Loss path cancelled.", announcement: "Loss path cancelled.", run: "cancelled" });
      return;
    }
    set({ status: "The loss path failed.", announcement: "The loss path failed.", problems: problemsOf(e), run: "error" });
  }
}
