/**
 * @file The page's one state object and its store. Views watch the keys they depend on and re-render
 * only when one of those changes, so editing the recipe does not rebuild the model list, and a form
 * control a person is using is never replaced under them.
 */
import type { EvalPick, MergedOutput } from "./ui/eval-candidates";
import type { OverwriteOffer, SaveTarget, SavedOutput } from "./ui/save";
import type { Ledger } from "../src/ledger/ledger";
import type { PickedModel } from "./ui/models";
import type { LibraryModel } from "../src/io/model-library";
import type { Problem, RecipeCheck } from "./ui/recipe-check";
import type { DiagnoseRun } from "./ui/run-diagnose";
import type { EvalForm, EvalRun } from "./ui/run-eval";
import type { GenForm, GenRun } from "./ui/run-generate";
import type { PathForm, PathRun } from "./ui/run-path";
import type { SweepForm, SweepRun } from "./ui/run-sweep";
import type { SoupForm, SoupRun } from "./ui/run-soup";

export type RunState = "idle" | "running" | "done" | "cancelled" | "error";

export interface PageState {
  /** Why this browser cannot merge (no wasm SIMD, nowhere to save); empty when it can. */
  platformProblems: readonly string[];
  models: readonly PickedModel[];
  /** What went wrong with the last files added ("no model found"), shown at the drop zone. */
  addProblem: string;
  /** The model library: complete models kept in the origin-private file system. */
  library: readonly LibraryModel[];
  /** The copy into the library in progress (bytes of all the folders being added), if any. */
  libraryCopy: { name: string; copied: number; total: number } | null;
  /** Why the last addition to or removal from the library failed. */
  libraryProblem: string;
  /** The recipe text: the single source of truth; the form edits it in place. */
  recipe: string;
  /** "form" while only the form has written the recipe (new models are then added to it). */
  recipeOrigin: "form" | "user";
  /** A person's choices for recipe names that map to no loaded model by themselves. */
  chosen: ReadonlyMap<string, string>;
  /** The check of the current recipe against the current models. */
  check: RecipeCheck;
  /** Form fields holding text that is not a value (by field id); the recipe keeps its old value. */
  formErrors: ReadonlyMap<string, string>;
  outputName: string;
  target: SaveTarget;
  seed: string;
  run: RunState;
  /** Progress of the running merge, 0..1. */
  progress: number;
  /** The line under the progress bar (tensors, bytes, rate, time left; or how the merge ended). */
  status: string;
  /** Milestones for screen readers: started, halfway, finished. */
  announcement: string;
  /** Why the last merge failed. */
  runError: readonly Problem[];
  /** The last merge stopped at an output folder that holds files: offer to overwrite it. */
  overwrite: OverwriteOffer | null;
  /** The last merge's output, its ledger (every input tensor: merged, copied or refused) and its time (the host's data-seconds). */
  result: { target: SaveTarget; name: string; files: string[]; ledger?: Ledger; seconds?: number; /** The merge's warning events. */ warnings?: string[] } | null;
  saved: readonly SavedOutput[];
  /** The last successful merge's output and the models it was made from (the Evaluate panel reads it back). */
  merged: MergedOutput | null;
  /** The Evaluate panel: its text and numbers, which candidates are scored and compared with, the last run. */
  evalForm: EvalForm;
  evalPicks: ReadonlyMap<string, EvalPick>;
  evaluation: EvalRun;
  /** The prompt box: its inputs and the last generation. */
  genForm: GenForm;
  generation: GenRun;
  /** The Diagnose panel's last run: progress, and the diagnosis of the recipe on the loaded models. */
  diagnosis: DiagnoseRun;
  /** The Loss path panel: its two models and points, and the last run (its points as they complete). */
  pathForm: PathForm;
  path: PathRun;
  /** The Sweep panel: its keys and values to vary, and the last run (its points as they are scored). */
  sweepForm: SweepForm;
  sweep: SweepRun;
  /** The Greedy soup panel: its ingredients, held-out text and save name, and the last soup (and its saving). */
  soupForm: SoupForm;
  soup: SoupRun;
}

export type StateKey = keyof PageState;

export class Store {
  private current: PageState;
  private readonly watchers: { keys: readonly StateKey[]; fn: (s: PageState) => void }[] = [];

  constructor(initial: PageState) {
    this.current = initial;
  }

  get state(): Readonly<PageState> {
    return this.current;
  }

  /** Applies `patch`; watchers of the keys whose value changed run once each, in the order they watched. */
  update(patch: Partial<PageState>): void {
    const changed = (Object.keys(patch) as StateKey[]).filter((k) => !Object.is(patch[k], this.current[k]));
    if (changed.length === 0) return;
    this.current = { ...this.current, ...patch };
    for (const w of this.watchers) if (w.keys.some((k) => changed.includes(k))) w.fn(this.current);
  }

  /** Runs `fn` now and whenever one of `keys` changes. */
  watch(keys: readonly StateKey[], fn: (s: PageState) => void): void {
    this.watchers.push({ keys, fn });
    fn(this.current);
  }
}
