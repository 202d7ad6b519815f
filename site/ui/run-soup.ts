/**
 * @file One model soup from the page: the library's greedySoup() over the loaded models the person
 * ticked, on the panel's held-out text (the Evaluate panel's window and token limit), greedy and the
 * uniform soup of all for comparison; so the numbers and the kept list are `weightsoup soup --greedy`'s.
 * Saving writes the soup's recipe (linear, weight 1 per kept ingredient) with merge(), into a named
 * folder of the merge's save target (the picked folder or browser storage): exactly what `soup --out`
 * writes, since that option runs the same merge of the same recipe.
 */
import { merge } from "../../src/api/merge";
import { greedySoup, type SoupResult } from "../../src/api/soup";
import { DEFAULT_TEXT } from "../../src/eval/default-text";
import { ModelError } from "../../src/errors";
import type { ModelFolder } from "../../src/io/folder";
import { formatBytes, formatSeconds } from "../../src/units";
import type { PageState, RunState, Store } from "../state";
import { endFailedRun, type PanelRunOptions } from "./panel-run";
import type { Problem } from "./recipe-check";
import { contextProblem, DEFAULT_EVAL_CONTEXT, maxTokensProblem } from "./run-eval";
import { outputNameProblem, outputOpener, saveFailure, type OverwriteOffer, type SaveTarget, type SaveWhere } from "./save";

/** The panel's inputs: which loaded models are ingredients (absent: ticked), the held-out text, greedy or not, the save name. */
export interface SoupForm {
  unticked: ReadonlySet<string>;
  text: string;
  greedy: boolean;
  outputName: string;
}

export interface SoupSaved {
  target: SaveTarget;
  name: string;
  files: readonly string[];
}

export interface SoupRun {
  run: RunState;
  /** 0..1 */
  progress: number;
  status: string;
  /** Milestones for screen readers: started, finished. */
  announcement: string;
  problems: readonly Problem[];
  result: (SoupResult & { ownText: boolean }) | null;
  /** Saving the last soup: idle until asked, then as a merge runs. */
  save: RunState;
  saveStatus: string;
  saveProblems: readonly Problem[];
  /** The last save stopped at an output folder that holds files: offer to overwrite it (as the merge's save does). */
  saveOverwrite: OverwriteOffer | null;
  saved: SoupSaved | null;
}

export const DEFAULT_SOUP_NAME = "soup";
export const initialSoupForm = (): SoupForm => ({ unticked: new Set(), text: "", greedy: true, outputName: DEFAULT_SOUP_NAME });
export const initialSoupRun = (): SoupRun => ({
  run: "idle", progress: 0, status: "", announcement: "", problems: [], result: null, save: "idle", saveStatus: "", saveProblems: [], saveOverwrite: null, saved: null,
});

/** The loaded, readable models a soup can take. */
export const soupModels = (s: PageState): string[] => s.models.filter((m) => m.loaded && !m.adapter).map((m) => m.name);
/** The ticked ones, in the order they were added (the uniform soup's order). */
export const soupIngredients = (s: PageState): string[] => soupModels(s).filter((n) => !s.soupForm.unticked.has(n));

/** Why the soup cannot be made now, in words ("" when it can). */
export function whySoupBlocked(s: PageState): string {
  if (s.platformProblems.length) return "This browser cannot run weightsoup (see the notice above).";
  if (s.soup.run === "running") return "";
  if (soupModels(s).length < 2) return "Add at least two models to make a soup of them.";
  if (soupIngredients(s).length < 2) return "Tick at least two ingredients.";
  return contextProblem(s.evalForm.context) || maxTokensProblem(s.evalForm.maxTokens);
}

/** Why the last soup cannot be saved now ("" when it can). */
export function whySoupSaveBlocked(s: PageState): string {
  if (!s.soup.result || s.soup.run !== "done") return "Make a soup first.";
  if (s.soup.save === "running") return "";
  return outputNameProblem(s.soupForm.outputName);
}

const folderResolver = (s: PageState) => {
  const byName = new Map(s.models.map((m) => [m.name, m]));
  return (name: string): ModelFolder => {
    const m = byName.get(name);
    if (!m) throw new ModelError("E_MODEL_NOT_FOUND", `model "${name}" is no longer loaded in the page`, { model: name });
    return m.folder;
  };
};

export async function runSoup(store: Store, options: PanelRunOptions): Promise<void> {
  const s = store.state;
  const names = soupIngredients(s);
  const folderOf = folderResolver(s);
  const ownText = s.soupForm.text.trim() !== "";
  const text = ownText ? s.soupForm.text : DEFAULT_TEXT;
  const context = Number(s.evalForm.context.trim() || DEFAULT_EVAL_CONTEXT);
  const maxTokens = s.evalForm.maxTokens.trim() === "" ? undefined : Number(s.evalForm.maxTokens.trim());
  const greedy = s.soupForm.greedy;
  const set = (patch: Partial<SoupRun>) => store.update({ soup: { ...store.state.soup, ...patch } });
  const start = `Making a ${greedy ? "greedy" : "uniform"} soup of ${names.length} ingredients…`;
  set({ ...initialSoupRun(), run: "running", status: start, announcement: start });
  // Scoring each ingredient alone, each greedy step, and the uniform soup: the progress bar's units.
  const total = 1 + (greedy ? names.length - 1 : 0) + 1;
  let done = 0;
  const started = performance.now();
  try {
    const result = await greedySoup(names.map((name) => ({ name, model: folderOf(name) })), {
      text, context, ...(maxTokens !== undefined ? { maxTokens } : {}), greedy, signal: options.signal,
      ...(options.workers ? { workers: options.workers } : {}), ...(options.workerUrl ? { workerUrl: options.workerUrl } : {}),
      onProgress: (e) => {
        if (e.type === "soup-ingredients") set({ status: `Scoring ${e.ingredients.length} ingredients alone…` });
        else if (e.type === "soup-candidate") set({ progress: ++done / total, status: `Greedy step ${e.step} of ${e.steps}: trying ${e.candidate}…` });
        else if (e.type === "soup-candidate-done") set({ status: `Greedy step ${e.step} of ${e.steps}: ${e.candidate} ${e.kept ? "kept" : "left out"} (NLL ${e.nll.toFixed(4)}).` });
        else if (e.type === "soup-uniform") set({ progress: Math.max(done, total - 1) / total, status: "Scoring the uniform soup of all…" });
      },
    });
    const finished = `Soup of ${result.kept.length} (${result.kept.join(", ")}): NLL ${result.nll.toFixed(4)}; uniform soup of all ${names.length}: ${result.uniform.nll.toFixed(4)}. ${formatSeconds((performance.now() - started) / 1000)}.`;
    set({ progress: 1, status: finished, result: { ...result, ownText } });
    // "done" last: a host page reacting to data-soup-state finds the results shown.
    set({ announcement: finished, run: "done" });
  } catch (e) {
    endFailedRun(e, options.signal, set, { cancelled: "Soup cancelled.", failed: "The soup failed." });
  }
}

export interface SoupSaveOptions extends Omit<SaveWhere, "target"> {
  signal: AbortSignal;
  workers?: number;
  workerUrl?: URL;
}

/**
 * Writes the last soup's recipe with merge() into the merge's save target, under the panel's name, as
 * the merge's save writes (./save.ts): staged until the commit, so Cancel leaves nothing behind, and a
 * folder that holds files is offered for overwriting. With `parent`, the offer is being taken up.
 */
export async function saveSoup(store: Store, options: SoupSaveOptions): Promise<void> {
  const s = store.state;
  const result = s.soup.result!;
  const target = options.parent ? (s.soup.saveOverwrite?.target ?? s.target) : s.target;
  const name = s.soupForm.outputName.trim() || DEFAULT_SOUP_NAME;
  const set = (patch: Partial<SoupRun>) => store.update({ soup: { ...store.state.soup, ...patch } });
  set({ save: "running", saveStatus: `Writing the soup to “${name}”…`, saveProblems: [], saveOverwrite: null, saved: null });
  const output = outputOpener({ ...options, target }, name);
  try {
    const summary = await merge(result.recipe, {
      models: folderResolver(s), signal: options.signal,
      out: (plan) => output.open(plan.tensors.reduce((n, t) => n + t.outputBytes, 0) + 1e6),
      ...(options.workers ? { workers: options.workers } : {}), ...(options.workerUrl ? { workerUrl: options.workerUrl } : {}),
    });
    set({ save: "done", saved: { target, name, files: summary.files }, saveStatus: `Saved as “${name}” (${summary.files.join(", ")}; ${formatBytes(summary.outputBytes)}) in ${target === "opfs" ? "browser storage" : "the picked folder"}.` });
  } catch (e) {
    const failure = saveFailure(e, options.signal, name, target, output.parent());
    if ("cancelled" in failure) set({ save: "cancelled", saveStatus: failure.cancelled });
    else set({ save: "error", saveStatus: "Saving the soup failed; nothing was saved.", saveProblems: failure.problems, saveOverwrite: failure.overwrite });
  }
}
