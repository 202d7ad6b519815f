/**
 * @file One diagnosis from the page: the recipe as it stands, on the loaded models it maps to (the
 * merge form's inputs), measured by the library's diagnose() in the page's worker pool. Progress goes
 * into the store (the status line at most four times a second); screen readers hear only that it
 * started and how it ended.
 */
import { diagnose, type DiagnoseEvent, type DiagnosisResult } from "../../src/api/diagnose";
import { ModelError } from "../../src/errors";
import { parseRecipe } from "../../src/recipe/recipe";
import { formatSeconds } from "../../src/units";
import type { PageState, RunState, Store } from "../state";
import { recipeUsable, whyRecipeUnusable } from "./eval-candidates";
import { mappingOf } from "./mapping";
import { endFailedRun, type PanelRunOptions } from "./panel-run";
import type { Problem } from "./recipe-check";

export interface DiagnoseRun {
  run: RunState;
  /** 0..1 */
  progress: number;
  status: string;
  /** Milestones for screen readers: started, finished. */
  announcement: string;
  problems: readonly Problem[];
  result: DiagnosisResult | null;
}

export const initialDiagnoseRun = (): DiagnoseRun => ({ run: "idle", progress: 0, status: "", announcement: "", problems: [], result: null });

/** Why Diagnose cannot run now, in words ("" when it can). */
export function whyDiagnoseBlocked(s: PageState): string {
  if (s.platformProblems.length) return "This browser cannot run weightsoup (see the notice above).";
  if (s.diagnosis.run === "running") return "";
  if (!s.models.some((m) => m.loaded)) return "Add models and a recipe to diagnose.";
  if (!recipeUsable(s)) return whyRecipeUnusable(s);
  return "";
}

const STATUS_EVERY_MS = 250;

/** An `align:` recipe (diagnose then measures it twice); a recipe that does not parse fails in diagnose, typed. */
function alignsModels(recipe: string): boolean {
  try {
    return parseRecipe(recipe).align !== undefined;
  } catch {
    return false;
  }
}

export async function runDiagnosis(store: Store, options: PanelRunOptions): Promise<void> {
  const s = store.state;
  // What is measured, as it starts (the recipe may be edited while it runs).
  const recipe = s.recipe;
  const byName = new Map(s.models.map((m) => [m.name, m]));
  const mapping = mappingOf(recipe, s.models.map((m) => m.name), s.chosen);
  const set = (patch: Partial<DiagnoseRun>) => store.update({ diagnosis: { ...store.state.diagnosis, ...patch } });
  set({ run: "running", progress: 0, status: "Opening the models…", announcement: "Diagnosis started.", problems: [], result: null });

  const started = performance.now();
  // An align: recipe is measured twice (as given, then aligned): each pass is half the bar.
  const passes = alignsModels(recipe) ? 2 : 1;
  let pass = -1, lastStatus = 0;
  const onProgress = (e: DiagnoseEvent) => {
    if (e.type === "diagnose-start") {
      pass++;
      set({ status: `${e.pass === "aligned" ? "Aligned models: " : ""}${e.method}, ${e.tensors} tensors…` });
    } else if (e.type === "tensor-done") {
      const patch: Partial<DiagnoseRun> = { progress: Math.min(0.99, (Math.max(0, pass) + e.tensorsDone / e.tensorsTotal) / passes) };
      const now = performance.now();
      if (now - lastStatus >= STATUS_EVERY_MS || e.tensorsDone === e.tensorsTotal) {
        lastStatus = now;
        patch.status = `${e.pass === "aligned" ? "Aligned models: " : ""}${e.tensorsDone} of ${e.tensorsTotal} tensors`;
      }
      set(patch);
    }
  };

  try {
    const result = await diagnose(recipe, {
      models: (recipeName: string) => {
        const model = byName.get(mapping.map.get(recipeName) ?? recipeName);
        if (!model) throw new ModelError("E_MODEL_NOT_FOUND", `model "${recipeName}" is not loaded in the page`, { model: recipeName });
        return model.folder;
      },
      // The merge's seed field: DARE's and DELLA's drops are the ones the merge would make.
      seed: Number(s.seed.trim() || 0),
      signal: options.signal, onProgress,
      ...(options.workers ? { workers: options.workers } : {}), ...(options.workerUrl ? { workerUrl: options.workerUrl } : {}),
    });
    const done = `Diagnosed ${result.tensors.length} tensor${result.tensors.length === 1 ? "" : "s"} in ${formatSeconds((performance.now() - started) / 1000)}.`;
    set({ progress: 1, status: done, result });
    // "done" last: a host page reacting to data-diagnose-state finds the results shown.
    set({ announcement: done, run: "done" });
  } catch (e) {
    endFailedRun(e, options.signal, set, { cancelled: "Diagnosis cancelled.", failed: "The diagnosis failed." });
  }
}
