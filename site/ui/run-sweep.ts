/**
 * @file One sweep from the page: the recipe as it stands, evaluated at every point of the grid its
 * varied keys span, by the library's sweep() in the page's worker pool, on the loaded models it maps to.
 * The text, window and token limit are the Evaluate panel's (as for the Loss path panel), and so are
 * the models every point is compared with (its "Compare with (KL)" ticks). Each point is stored as its
 * `sweep-point` event arrives, so the chart and table grow while the sweep runs; the numbers are
 * sweep()'s, the same as `weightsoup sweep --json` gives.
 */
import { sweep, type SweepEvent, type SweepResult } from "../../src/api/sweep";
import { DEFAULT_TEXT } from "../../src/eval/default-text";
import { ModelError } from "../../src/errors";
import { gridPoints, parseValues } from "../../src/sweep/grid";
import { parseKey } from "../../src/sweep/keys";
import { formatSeconds } from "../../src/units";
import type { PageState, RunState, Store } from "../state";
import { evalCandidates, pickOf, recipeUsable, subjectOf, whyRecipeUnusable } from "./eval-candidates";
import { mappingOf } from "./mapping";
import { endFailedRun, type PanelRunOptions } from "./panel-run";
import type { Problem } from "./recipe-check";
import { contextProblem, DEFAULT_EVAL_CONTEXT, maxTokensProblem } from "./run-eval";

/** One varied key and its values, as typed: the two halves of the CLI's `--vary KEY=SPEC`. */
export interface VaryRow {
  key: string;
  spec: string;
}

export interface SweepForm {
  vary: readonly VaryRow[];
}

/** A point as its `sweep-point` event reports it. */
export interface ShownPoint {
  index: number;
  values: Record<string, number>;
  nll: number;
  perplexity: number;
  against: { model: string; kl: number }[];
}

export interface SweepRun {
  run: RunState;
  /** 0..1 */
  progress: number;
  status: string;
  /** Milestones for screen readers: started, finished. */
  announcement: string;
  problems: readonly Problem[];
  /** What the sweep warned about (a point's tensor merged NaN throughout), each message once. */
  warnings: readonly string[];
  /** The varied keys and the grid's size, as the sweep started. */
  keys: readonly string[];
  total: number;
  /** The points scored so far, in grid order (the chart and table draw them as they come). */
  points: readonly ShownPoint[];
  /** The whole sweep, once every point is scored. */
  result: SweepResult | null;
}

export const initialSweepForm = (): SweepForm => ({ vary: [{ key: "", spec: "" }] });
export const initialSweepRun = (): SweepRun => ({ run: "idle", progress: 0, status: "", announcement: "", problems: [], warnings: [], keys: [], total: 0, points: [], result: null });

/** What is wrong with a row's KEY or SPEC, in sweep()'s own words ("" when nothing, or when the row is untouched). */
export function varyProblem(row: VaryRow): string {
  if (row.key.trim() === "" && row.spec.trim() === "") return "";
  try {
    parseKey(row.key.trim());
    parseValues(row.key.trim(), row.spec.trim());
    return "";
  } catch (e) {
    return (e as Error).message;
  }
}

/** The rows as sweep() takes them: `KEY=SPEC`. */
export const varyArguments = (form: SweepForm): string[] => form.vary.map((r) => `${r.key.trim()}=${r.spec.trim()}`);

/** The grid's size, or what is wrong with the rows together (a key twice, too many points). */
function gridProblem(form: SweepForm): string {
  try {
    gridPoints(form.vary.map((r) => ({ key: r.key.trim(), values: parseValues(r.key.trim(), r.spec.trim()) })));
    return "";
  } catch (e) {
    return (e as Error).message;
  }
}

/** Why Sweep cannot run now, in words ("" when it can). */
export function whySweepBlocked(s: PageState): string {
  if (s.platformProblems.length) return "This browser cannot run weightsoup (see the notice above).";
  if (s.sweep.run === "running") return "";
  if (!s.models.some((m) => m.loaded)) return "Add models and a recipe to sweep.";
  if (!recipeUsable(s)) return whyRecipeUnusable(s);
  const rows = s.sweepForm.vary;
  if (rows.length === 0) return "Add a key to vary.";
  if (rows.some((r) => r.key.trim() === "" || r.spec.trim() === "")) return "Give every row a recipe key and its values.";
  if (rows.some((r) => varyProblem(r) !== "")) return "A key or its values cannot be used (see the row).";
  return gridProblem(s.sweepForm) || contextProblem(s.evalForm.context) || maxTokensProblem(s.evalForm.maxTokens);
}

/** The Evaluate panel's "Compare with (KL)" ticks: the models every point is compared with. */
export const sweepAgainst = (s: PageState) => evalCandidates(s).filter((c) => pickOf(s, c.id).against);

const STATUS_EVERY_MS = 250;

const valuesText = (keys: readonly string[], values: Record<string, number>) => keys.map((k) => `${k} = ${values[k]}`).join(", ");

export async function runSweep(store: Store, options: PanelRunOptions): Promise<void> {
  const s = store.state;
  // What is swept, as it starts (the recipe and the rows may be edited while it runs).
  const recipe = s.recipe;
  const vary = varyArguments(s.sweepForm);
  const byName = new Map(s.models.map((m) => [m.name, m]));
  const mapping = mappingOf(recipe, s.models.map((m) => m.name), s.chosen);
  const ownText = s.evalForm.text.trim() !== "";
  const context = Number(s.evalForm.context.trim() || DEFAULT_EVAL_CONTEXT);
  const maxTokens = s.evalForm.maxTokens.trim() === "" ? undefined : Number(s.evalForm.maxTokens.trim());
  const set = (patch: Partial<SweepRun>) => store.update({ sweep: { ...store.state.sweep, ...patch } });
  set({ run: "running", progress: 0, status: "Planning the points…", announcement: "Sweep started.", problems: [], warnings: [], keys: [], total: 0, points: [], result: null });

  const started = performance.now();
  let keys: string[] = [], total = 1, lastStatus = 0;
  const points: ShownPoint[] = [];
  const onProgress = (e: SweepEvent) => {
    if (e.type === "warning") {
      set({ warnings: [...store.state.sweep.warnings, e.message] });
    } else if (e.type === "sweep-plan") {
      keys = e.keys;
      total = e.points;
      set({ keys, total, status: `${e.points} point${e.points === 1 ? "" : "s"} on ${e.tokens} tokens (${e.sequences} window${e.sequences === 1 ? "" : "s"}, ${e.workers} worker${e.workers === 1 ? "" : "s"})…` });
    } else if (e.type === "sweep-layer") {
      // The layers of a group of points run together; the group's share of the bar fills as they do.
      const first = e.points[0] ?? 0, last = e.points[e.points.length - 1] ?? first;
      const patch: Partial<SweepRun> = { progress: Math.max(store.state.sweep.progress, Math.min(0.99, (first + (last - first + 1) * ((e.layer + 1) / e.layers) * 0.9) / total)) };
      const now = performance.now();
      if (now - lastStatus >= STATUS_EVERY_MS || e.layer + 1 === e.layers) {
        lastStatus = now;
        patch.status = `Point${last > first ? `s ${first + 1}-${last + 1}` : ` ${first + 1}`} of ${total}: layer ${e.layer + 1} of ${e.layers}`;
      }
      set(patch);
    } else if (e.type === "sweep-point") {
      points.push({ index: e.index, values: e.values, nll: e.nll, perplexity: e.perplexity, against: e.against });
      points.sort((a, b) => a.index - b.index);
      set({
        points: [...points], progress: Math.max(store.state.sweep.progress, Math.min(0.99, points.length / total)),
        status: `Point ${e.index + 1} of ${total} (${valuesText(keys, e.values)}): NLL ${e.nll.toFixed(4)}`,
      });
    }
  };

  try {
    const against = await Promise.all(sweepAgainst(s).map((c) => subjectOf(c, s)));
    const result = await sweep(recipe, vary, {
      models: (recipeName: string) => {
        const model = byName.get(mapping.map.get(recipeName) ?? recipeName);
        if (!model) throw new ModelError("E_MODEL_NOT_FOUND", `model "${recipeName}" is not loaded in the page`, { model: recipeName });
        return model.folder;
      },
      text: ownText ? s.evalForm.text : DEFAULT_TEXT, context, ...(maxTokens !== undefined ? { maxTokens } : {}), against,
      // The merge's seed field: DARE's and DELLA's drops are the ones the merge would make.
      seed: Number(s.seed.trim() || 0),
      signal: options.signal, onProgress,
      ...(options.workers ? { workers: options.workers } : {}), ...(options.workerUrl ? { workerUrl: options.workerUrl } : {}),
    });
    const best = result.points[result.best]!;
    const done = `Swept ${result.points.length} points on ${result.tokens} tokens in ${formatSeconds((performance.now() - started) / 1000)}: lowest NLL ${best.nll.toFixed(4)} at ${valuesText(result.keys, best.values)}.`;
    set({ progress: 1, status: done, keys: result.keys, total: result.points.length, result });
    // "done" last: a host page reacting to data-sweep-state finds the results shown.
    set({ announcement: done, run: "done" });
  } catch (e) {
    endFailedRun(e, options.signal, set, { cancelled: "Sweep cancelled.", failed: "The sweep failed." });
  }
}
