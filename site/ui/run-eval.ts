/**
 * @file One evaluation from the page: the ticked candidates scored on the panel's text, each compared
 * with every ticked reference (KL and top-1 agreement), in one evaluate() call on the worker pool.
 * Progress goes into the store (the status line at most four times a second); screen readers hear
 * only that it started and how it ended.
 */
import { evaluate, type EvaluationResult } from "../../src/api/evaluate";
import type { EvalEvent } from "../../src/eval/protocol";
import { formatSeconds } from "../../src/units";
import type { PageState, RunState, Store } from "../state";
import { evalCandidates, pickOf, subjectOf } from "./eval-candidates";
import { endFailedRun, type PanelRunOptions } from "./panel-run";
import type { Problem } from "./recipe-check";

/** The panel's inputs, as typed (numbers are checked where they are typed, see fieldProblems). */
export interface EvalForm {
  text: string;
  /** Where the text came from, said under it: "builtin", a file name, or "" (typed or pasted). */
  source: string;
  context: string;
  maxTokens: string;
}

export interface EvalResults {
  rows: EvaluationResult[];
  /** The references every row was compared with, in column order. */
  against: string[];
  context: number;
}

export interface EvalRun {
  run: RunState;
  /** 0..1 */
  progress: number;
  status: string;
  /** Milestones for screen readers: started, finished. */
  announcement: string;
  problems: readonly Problem[];
  /** What the run warned about (a recipe's tensor merged NaN throughout), as the CLI prints it. */
  warnings: readonly string[];
  results: EvalResults | null;
}

export const BUILTIN_SOURCE = "builtin";
export const DEFAULT_EVAL_CONTEXT = "512";

export const initialEvalForm = (): EvalForm => ({ text: "", source: "", context: DEFAULT_EVAL_CONTEXT, maxTokens: "" });
export const initialEvalRun = (): EvalRun => ({ run: "idle", progress: 0, status: "", announcement: "", problems: [], warnings: [], results: null });

/** A whole number of at least `min`, or "" for the default; otherwise what is wrong, in words. */
function countProblem(label: string, text: string, min: number, emptyMeans: string): string {
  const t = text.trim();
  if (t === "") return "";
  if (!/^\d+$/.test(t) || !Number.isSafeInteger(Number(t)) || Number(t) < min) return `${label} must be a whole number of at least ${min} (empty: ${emptyMeans}); “${t}” is not.`;
  return "";
}

export const contextProblem = (text: string): string => countProblem("Context", text, 2, DEFAULT_EVAL_CONTEXT);
export const maxTokensProblem = (text: string): string => countProblem("Tokens at most", text, 2, "the whole text");

/** Why Evaluate cannot run now, in words ("" when it can). */
export function whyEvalBlocked(s: PageState): string {
  if (s.platformProblems.length) return "This browser cannot run weightsoup (see the notice above).";
  if (s.evaluation.run === "running") return "";
  const candidates = evalCandidates(s);
  if (candidates.length === 0) return "Add models, or merge, to have something to evaluate.";
  if (!candidates.some((c) => pickOf(s, c.id).score)) return "Tick at least one model to evaluate.";
  if (s.evalForm.text.trim() === "") return "Paste a text, pick a .txt file, or use the built-in text.";
  return contextProblem(s.evalForm.context) || maxTokensProblem(s.evalForm.maxTokens);
}

const STATUS_EVERY_MS = 250;

export async function runEvaluation(store: Store, options: PanelRunOptions): Promise<void> {
  const s = store.state;
  const candidates = evalCandidates(s);
  const scored = candidates.filter((c) => pickOf(s, c.id).score);
  const references = candidates.filter((c) => pickOf(s, c.id).against);
  const context = Number(s.evalForm.context.trim() || DEFAULT_EVAL_CONTEXT);
  const maxTokens = s.evalForm.maxTokens.trim() === "" ? undefined : Number(s.evalForm.maxTokens.trim());
  const set = (patch: Partial<EvalRun>) => store.update({ evaluation: { ...store.state.evaluation, ...patch } });
  set({ run: "running", progress: 0, status: "Opening the models…", announcement: "", problems: [], warnings: [], results: null });

  const started = performance.now();
  // Each model is one pass over its layers; passes run one after another.
  let passes = 1, pass = -1, lastStatus = 0;
  const onProgress = (e: EvalEvent) => {
    if (e.type === "warning") {
      set({ warnings: [...store.state.evaluation.warnings, e.message] });
    } else if (e.type === "eval-plan") {
      passes = Math.max(1, e.models.length);
      const text = `Evaluating ${scored.length} model${scored.length === 1 ? "" : "s"} on ${e.tokens} tokens (${e.sequences} window${e.sequences === 1 ? "" : "s"}, ${e.workers} worker${e.workers === 1 ? "" : "s"})…`;
      set({ status: text, announcement: text });
    } else if (e.type === "model-start") {
      pass++;
      set({ status: `${e.model}: layer 0 of ${e.layers}` });
    } else if (e.type === "layer-done") {
      const patch: Partial<EvalRun> = { progress: Math.min(0.99, (pass + (e.layer + 1) / e.layers) / passes) };
      const now = performance.now();
      if (now - lastStatus >= STATUS_EVERY_MS || e.layer + 1 === e.layers) {
        lastStatus = now;
        patch.status = `${e.model}: layer ${e.layer + 1} of ${e.layers}`;
      }
      set(patch);
    } else if (e.type === "scoring") {
      set({ status: `Scoring ${e.model}…` });
    }
  };

  try {
    const subjects = await Promise.all(scored.map((c) => subjectOf(c, s)));
    const against = await Promise.all(references.map((c) => subjectOf(c, s)));
    const { results } = await evaluate(subjects, {
      text: s.evalForm.text, against, context, ...(maxTokens !== undefined ? { maxTokens } : {}),
      // The merge's seed field matters to the recipe row only (DARE's drops); a bad value there is refused, typed.
      ...([...scored, ...references].some((c) => c.kind === "recipe") ? { seed: Number(s.seed.trim() || 0) } : {}),
      signal: options.signal, onProgress,
      ...(options.workers ? { workers: options.workers } : {}), ...(options.workerUrl ? { workerUrl: options.workerUrl } : {}),
    });
    const done = `Evaluated ${results.length} model${results.length === 1 ? "" : "s"} on ${results[0]?.tokens ?? 0} tokens in ${formatSeconds((performance.now() - started) / 1000)}.`;
    set({ progress: 1, status: done, results: { rows: results, against: references.map((c) => c.label), context } });
    // "done" last: a host page reacting to data-eval-state finds the results shown.
    set({ announcement: done, run: "done" });
  } catch (e) {
    endFailedRun(e, options.signal, set, { cancelled: "Evaluation cancelled.", failed: "The evaluation failed." });
  }
}
