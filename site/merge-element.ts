/**
 * @file <weightsoup-merge>: the whole merger as one custom element, used by the page (index.html) and
 * by any site that embeds it (embed.html). Models are picked or dropped files, read inside the workers;
 * the recipe is its mergekit YAML text, which the form edits in place; the output goes to a named folder
 * inside a folder the person picks, or in the origin-private file system. Nothing leaves the machine.
 *
 * The element holds one state object (state.ts) and one view per section (views/), each re-rendering
 * only what depends on what changed. The Evaluate section (views/eval-view.ts) scores the merge's
 * output and any loaded model on a text and continues a prompt with them, on the same store.
 *
 * Attributes: `worker-url` (default: worker.js next to this script), `workers` (default: the cores).
 * It sets `data-state` (the merge), `data-eval-state`, `data-generate-state`, `data-diagnose-state`,
 * `data-path-state`, `data-sweep-state`, `data-soup-state` and `data-soup-save-state` (idle, running,
 * done, cancelled, error) for a host page to follow.
 */
import { type PageState, Store } from "./state";
import { append, h, replace } from "./ui/dom";
import { groupModels, loadModel, type PickedFile, type PickedModel } from "./ui/models";
import { mappingOf } from "./ui/mapping";
import { MERGED_ID, modelId, picksAfterMerge, type MergedOutput } from "./ui/eval-candidates";
import { checkRecipe, completeCheck, type RecipeCheck } from "./ui/recipe-check";
import { removeRecipeModel, setIncluded, starterRecipe, type EditContext } from "./ui/recipe-doc";
import { initialEvalForm, initialEvalRun, runEvaluation } from "./ui/run-eval";
import { initialGenForm, initialGenRun, runGeneration } from "./ui/run-generate";
import { runMerge } from "./ui/run-merge";
import { initialDiagnoseRun, runDiagnosis } from "./ui/run-diagnose";
import { initialPathForm, initialPathRun, runPath } from "./ui/run-path";
import { initialSweepForm, initialSweepRun, runSweep } from "./ui/run-sweep";
import { initialSoupForm, initialSoupRun, runSoup, saveSoup } from "./ui/run-soup";
import { canPickFolder, deleteSaved, hasOpfs, listSaved, pickFolder, removeStaleOutputs } from "./ui/save";
import { diagnoseView } from "./views/diagnose-view";
import { evalView } from "./views/eval-view";
import { generateView } from "./views/generate-view";
import { pathView } from "./views/path-view";
import { sweepView } from "./views/sweep-view";
import { soupView } from "./views/soup-view";
import { modelsView } from "./views/models-view";
import { recipeView } from "./views/recipe-view";
import { runView } from "./views/run-view";
import { savedView } from "./views/saved-view";
import { libraryView } from "./views/library-view";
import { addPicked, refreshLibrary, removeLibraryModel, useLibraryModel } from "./ui/library";

/** The smallest module using a v128 instruction: validates only where wasm SIMD exists. */
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);
const NO_PROBLEMS: PageState["runError"] = [];

function initialState(): PageState {
  return {
    platformProblems: [], models: [], addProblem: "", library: [], libraryCopy: null, libraryProblem: "", recipe: "", recipeOrigin: "form", chosen: new Map(),
    check: checkRecipe("", [], new Map()), formErrors: new Map(),
    outputName: "merged", target: canPickFolder() ? "folder" : "opfs", seed: "0",
    run: "idle", progress: 0, status: "Add models to begin.", announcement: "", runError: NO_PROBLEMS, overwrite: null, result: null, saved: [],
    merged: null, evalForm: initialEvalForm(), evalPicks: new Map(), evaluation: initialEvalRun(), genForm: initialGenForm(), generation: initialGenRun(),
    diagnosis: initialDiagnoseRun(), pathForm: initialPathForm(), path: initialPathRun(),
    sweepForm: initialSweepForm(), sweep: initialSweepRun(),
    soupForm: initialSoupForm(), soup: initialSoupRun(),
  };
}

/** The base a method that needs one starts with: a model named like a base, else the first. */
const defaultBase = (names: readonly string[]) => names.find((n) => /base/i.test(n)) ?? names[0] ?? "";

export class WeightsoupMerge extends HTMLElement {
  private readonly root = this.attachShadow({ mode: "open" });
  private readonly store = new Store(initialState());
  private controller: AbortController | undefined;
  private evalController: AbortController | undefined;
  private genController: AbortController | undefined;
  private diagnoseController: AbortController | undefined;
  private pathController: AbortController | undefined;
  private sweepController: AbortController | undefined;
  private soupController: AbortController | undefined;
  private soupSaveController: AbortController | undefined;
  private libraryController: AbortController | undefined;
  private checking: Promise<void> = Promise.resolve();
  /** Closing or reloading the tab mid-merge loses it: the browser asks first. */
  private readonly beforeUnload = (e: BeforeUnloadEvent) => {
    // A merge or a soup's save under way: leaving would stop it mid-write (the staging folder is
    // removed at the next start-up, but the work is lost).
    if (this.store.state.run !== "running" && this.store.state.soup.save !== "running") return;
    e.preventDefault();
    e.returnValue = "";
  };

  connectedCallback(): void {
    window.addEventListener("beforeunload", this.beforeUnload);
    if (this.root.childElementCount) return;
    const store = this.store;
    // The check first: the views that show it run after it in each update.
    store.watch(["recipe", "models", "chosen"], (s) => store.update({ check: checkRecipe(s.recipe, s.models, s.chosen) }));
    store.watch(["check"], (s) => { if (s.check.pending) this.completeCheck(s.check); });
    // What the last merge said goes once anything it was about changes.
    store.watch(["recipe", "models", "chosen", "outputName", "target", "seed"], (s) => {
      if (s.run === "running" || (s.runError.length === 0 && !s.overwrite)) return;
      store.update({ runError: NO_PROBLEMS, overwrite: null, status: "", ...(s.run === "error" ? { run: "idle" } : {}) });
    });
    // Likewise what the soup's last save said, once its name or where it goes changes.
    store.watch(["soupForm", "target"], (s) => {
      const p = s.soup;
      if (p.save === "running" || (p.saveProblems.length === 0 && !p.saveOverwrite)) return;
      store.update({ soup: { ...p, saveProblems: [], saveOverwrite: null, saveStatus: "", ...(p.save === "error" ? { save: "idle" as const } : {}) } });
    });
    store.watch(["run"], (s) => { this.dataset.state = s.run; });
    store.watch(["result"], (s) => {
      if (s.result?.seconds === undefined) delete this.dataset.seconds;
      else this.dataset.seconds = String(s.result.seconds);
    });
    store.watch(["evaluation"], (s) => { this.dataset.evalState = s.evaluation.run; });
    store.watch(["generation"], (s) => { this.dataset.generateState = s.generation.run; });
    store.watch(["diagnosis"], (s) => { this.dataset.diagnoseState = s.diagnosis.run; });
    store.watch(["path"], (s) => { this.dataset.pathState = s.path.run; });
    store.watch(["sweep"], (s) => { this.dataset.sweepState = s.sweep.run; });
    store.watch(["soup"], (s) => { this.dataset.soupState = s.soup.run; this.dataset.soupSaveState = s.soup.save; });

    const notice = h("div", { class: "notice", role: "status" });
    store.watch(["platformProblems"], (s) => replace(notice, ...s.platformProblems.map((p) => h("p", { class: "problem" }, p))));
    append(this.root, [
      h("link", { rel: "stylesheet", href: new URL("./weightsoup-merge.css", import.meta.url).href }),
      notice,
      modelsView(store, { add: (files) => this.addFiles(files), remove: (name) => this.removeModel(name) }),
      hasOpfs() ? libraryView(store, {
        add: (files) => {
          this.libraryController = new AbortController();
          void addPicked(store, files, { signal: this.libraryController.signal, ...this.poolOptions() }).finally(() => { this.libraryController = undefined; });
        },
        cancel: () => this.libraryController?.abort(),
        use: (model) => void useLibraryModel(model, new Set(store.state.models.map((m) => m.name))).then((m) => this.addModels([m])),
        remove: (model) => {
          // Its files go: a loaded model read from them goes too.
          const loaded = store.state.models.find((m) => m.library === model.id);
          if (loaded) this.removeModel(loaded.name);
          void removeLibraryModel(store, model);
        },
      }) : null,
      recipeView(store, {
        typed: (text) => store.update({ recipe: text, recipeOrigin: "user", formErrors: new Map() }),
        edit: (change) => this.edit(change),
        fieldError: (id, message) => {
          const errors = new Map(store.state.formErrors);
          if (message === null ? !errors.delete(id) : errors.get(id) === message) return;
          if (message !== null) errors.set(id, message);
          store.update({ formErrors: errors });
        },
        clearFieldErrors: () => { if (store.state.formErrors.size) store.update({ formErrors: new Map() }); },
        choose: (name, loaded) => {
          const chosen = new Map(store.state.chosen);
          if (loaded) chosen.set(name, loaded);
          else chosen.delete(name);
          store.update({ chosen });
        },
        drop: (name) => store.update({ recipe: removeRecipeModel(store.state.recipe, name) }),
      }),
      runView(store, {
        set: (patch) => store.update(patch),
        // The folder picker needs the click's user activation: it is asked before anything is awaited.
        run: () => this.run({ picked: store.state.target === "folder" ? pickFolder().catch(() => undefined) : undefined }),
        cancel: () => this.controller?.abort(),
        overwrite: () => store.update({ overwrite: { ...store.state.overwrite!, confirming: true } }),
        confirmOverwrite: () => this.run({ parent: store.state.overwrite!.parent, force: true }),
        keepExisting: () => store.update({ overwrite: { ...store.state.overwrite!, confirming: false } }),
      }),
      evalView(store, {
        form: (patch) => store.update({ evalForm: { ...store.state.evalForm, ...patch } }),
        pick: (id, patch) => {
          const picks = new Map(store.state.evalPicks);
          picks.set(id, { ...(picks.get(id) ?? { score: false, against: false }), ...patch });
          store.update({ evalPicks: picks });
        },
        run: () => this.evaluate(),
        cancel: () => this.evalController?.abort(),
      }, generateView(store, {
        form: (patch) => store.update({ genForm: { ...store.state.genForm, ...patch } }),
        run: () => this.generate(),
        cancel: () => this.genController?.abort(),
      })),
      diagnoseView(store, { run: () => this.diagnose(), cancel: () => this.diagnoseController?.abort() }),
      pathView(store, {
        form: (patch) => store.update({ pathForm: { ...store.state.pathForm, ...patch } }),
        run: () => this.measurePath(),
        cancel: () => this.pathController?.abort(),
      }),
      sweepView(store, {
        vary: (rows) => store.update({ sweepForm: { ...store.state.sweepForm, vary: rows } }),
        run: () => this.sweep(),
        cancel: () => this.sweepController?.abort(),
        // The best point's recipe, as the person's own text: Merge then saves that point.
        useBest: () => { const r = store.state.sweep.result; if (r) store.update({ recipe: r.points[r.best]!.recipe, recipeOrigin: "user" }); },
      }),
      soupView(store, {
        form: (patch) => store.update({ soupForm: { ...store.state.soupForm, ...patch } }),
        run: () => this.makeSoup(),
        cancel: () => this.soupController?.abort(),
        // The folder picker needs the click's user activation: it is asked before anything is awaited.
        save: () => this.saveSoup(store.state.target === "folder" ? { picked: pickFolder().catch(() => undefined) } : {}),
        cancelSave: () => this.soupSaveController?.abort(),
        overwrite: {
          overwrite: () => store.update({ soup: { ...store.state.soup, saveOverwrite: { ...store.state.soup.saveOverwrite!, confirming: true } } }),
          confirmOverwrite: () => this.saveSoup({ parent: store.state.soup.saveOverwrite!.parent, force: true }),
          keepExisting: () => store.update({ soup: { ...store.state.soup, saveOverwrite: { ...store.state.soup.saveOverwrite!, confirming: false } } }),
        },
      }),
      hasOpfs() ? savedView(store, {
        delete: async (name) => {
          await deleteSaved(name);
          // Deleting the merged output from browser storage takes it out of the Evaluate panel too.
          const merged = store.state.merged;
          if (merged?.target === "opfs" && merged.name === name) store.update({ merged: null });
          await this.refreshSaved();
        },
      }) : null,
    ]);
    this.checkPlatform();
    if (hasOpfs()) void refreshLibrary(store, true);
    if (hasOpfs()) void this.refreshSaved().then(() => removeStaleOutputs()).then((removed) => (removed.length ? this.refreshSaved() : undefined), () => undefined);
  }

  disconnectedCallback(): void {
    window.removeEventListener("beforeunload", this.beforeUnload);
  }

  private checkPlatform(): void {
    const problems: string[] = [];
    if (typeof WebAssembly !== "object" || !WebAssembly.validate(SIMD_PROBE)) {
      problems.push("This browser's WebAssembly has no SIMD, which weightsoup's kernels need (Chrome or Edge 91+, Firefox 89+, Safari 16.4+).");
    }
    if (!canPickFolder() && !hasOpfs()) problems.push("This browser can neither write to a folder nor to its private storage, so a merged model cannot be saved.");
    if (problems.length) this.store.update({ platformProblems: problems });
  }

  // ---------------------------------------------------------------------------------------------
  // Models and the recipe

  /**
   * Finishes a check that must read adapter or tokenizer files. One runs at a time, and one that was
   * superseded by an edit while it waited is skipped, so typing does not pile up reads.
   */
  private completeCheck(check: RecipeCheck): void {
    this.checking = this.checking.then(async () => {
      if (this.store.state.check !== check) return;
      const done = await completeCheck(check);
      if (this.store.state.check === check) this.store.update({ check: done });
    });
  }

  private readable(): string[] {
    return this.store.state.models.filter((m) => m.loaded).map((m) => m.name);
  }

  /** Applies a form edit to the recipe text (to the starter recipe when there is none yet). */
  private edit(change: (text: string, ctx: EditContext) => string): void {
    const s = this.store.state;
    const names = this.readable();
    const empty = s.recipe.trim() === "";
    const text = empty ? starterRecipe(names) : s.recipe;
    const mapping = mappingOf(text, s.models.map((m) => m.name), s.chosen);
    const next = change(text, { resolve: (n) => mapping.map.get(n), defaultBase: defaultBase(names) });
    this.store.update({ recipe: next, ...(empty ? { recipeOrigin: "form" as const } : {}) });
  }

  private async addFiles(picked: PickedFile[]): Promise<void> {
    const store = this.store;
    const groups = groupModels(picked, new Set(store.state.models.map((m) => m.name)));
    if (groups.length === 0) {
      store.update({ addProblem: "No model found in what was added: a model is a folder holding .safetensors files, or a .safetensors file." });
      return;
    }
    store.update({ addProblem: "", status: `Reading ${groups.length} model${groups.length > 1 ? "s" : ""}…` });
    this.addModels(await Promise.all(groups.map((g) => loadModel(g.name, g.files))));
  }

  /** Adds read models (picked, or used from the library) to the page and, where the form wrote the recipe, to it. */
  private addModels(loaded: PickedModel[]): void {
    const store = this.store;
    store.update({ models: [...store.state.models, ...loaded] });
    const s = store.state;
    const fresh = loaded.filter((m) => m.loaded).map((m) => m.name);
    // A recipe only the form wrote takes the new models in; one a person typed or pasted stays as written.
    if (s.recipe.trim() === "") store.update({ recipe: starterRecipe(this.readable()), recipeOrigin: "form" });
    else if (s.recipeOrigin === "form") for (const name of fresh) this.edit((text, ctx) => setIncluded(text, name, true, ctx));
    store.update({ status: loaded.some((m) => m.error) ? "A model could not be read; its entry says why." : "Models ready. Choose a method." });
  }

  /** Removes a model from the page; the recipe text is never changed by it (it may become invalid, which shows). */
  private removeModel(name: string): void {
    const s = this.store.state;
    // Its form row goes, and with it what was refused in that row's fields.
    const formErrors = new Map([...s.formErrors].filter(([id]) => !id.endsWith(`:${name}`)));
    this.store.update({ models: s.models.filter((m) => m.name !== name), formErrors });
  }

  // ---------------------------------------------------------------------------------------------
  // Running and saving

  private run(options: { picked?: Promise<FileSystemDirectoryHandle | undefined>; parent?: FileSystemDirectoryHandle; force?: boolean }): void {
    this.controller = new AbortController();
    const s = this.store.state;
    // What the merge is made from, as it starts (the recipe may be edited while it runs).
    const mapping = mappingOf(s.recipe, s.models.map((m) => m.name), s.chosen);
    // Adapters are no models to evaluate: a `base+adapter` name's parent is its base.
    const parents = [...new Set(mapping.names.filter((n) => !mapping.adapters.has(n)).map((n) => mapping.map.get(n)).filter((n): n is string => n !== undefined))];
    // A merge into the folder the Evaluate panel reads from replaces it: the panel stops reading it now.
    if (s.merged && s.merged.name === (s.outputName.trim() || "merged")) this.store.update({ merged: null });
    void runMerge(this.store, { ...options, signal: this.controller.signal, ...this.poolOptions() }).then(async () => {
      const { run, result } = this.store.state;
      if (run !== "done" || !result) return;
      // The folder the output was created in, found as runMerge found it.
      const parent = options.parent ?? (result.target === "folder" ? await options.picked : await navigator.storage.getDirectory());
      if (parent) this.setMerged({ name: result.name, parent, target: result.target, files: result.files, parents });
    }).finally(() => {
      this.controller = undefined;
      void this.refreshSaved();
    });
  }

  /** The pool options the host page set as attributes. */
  private poolOptions(): { workers?: number; workerUrl?: URL } {
    const workers = Number(this.getAttribute("workers")) || undefined;
    const workerUrl = this.getAttribute("worker-url");
    return { ...(workers ? { workers } : {}), ...(workerUrl ? { workerUrl: new URL(workerUrl, document.baseURI) } : {}) };
  }

  /** A finished merge: the panel evaluates its output next to its parents, and generates from it next to the base. */
  private setMerged(merged: MergedOutput): void {
    const base = merged.parents[0];
    this.store.update({
      merged, evalPicks: picksAfterMerge(merged),
      genForm: { ...this.store.state.genForm, model: MERGED_ID, other: base === undefined ? "" : modelId(base) },
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Evaluating and generating

  private evaluate(): void {
    this.evalController = new AbortController();
    const { workerUrl, workers } = this.poolOptions();
    void runEvaluation(this.store, { signal: this.evalController.signal, ...(workers ? { workers } : {}), ...(workerUrl ? { workerUrl } : {}) })
      .finally(() => { this.evalController = undefined; });
  }

  private generate(): void {
    this.genController = new AbortController();
    const { workerUrl } = this.poolOptions();
    void runGeneration(this.store, { signal: this.genController.signal, ...(workerUrl ? { workerUrl } : {}) })
      .finally(() => { this.genController = undefined; });
  }

  private diagnose(): void {
    this.diagnoseController = new AbortController();
    void runDiagnosis(this.store, { signal: this.diagnoseController.signal, ...this.poolOptions() })
      .finally(() => { this.diagnoseController = undefined; });
  }

  private measurePath(): void {
    this.pathController = new AbortController();
    void runPath(this.store, { signal: this.pathController.signal, ...this.poolOptions() })
      .finally(() => { this.pathController = undefined; });
  }

  private sweep(): void {
    this.sweepController = new AbortController();
    void runSweep(this.store, { signal: this.sweepController.signal, ...this.poolOptions() })
      .finally(() => { this.sweepController = undefined; });
  }

  private makeSoup(): void {
    this.soupController = new AbortController();
    void runSoup(this.store, { signal: this.soupController.signal, ...this.poolOptions() })
      .finally(() => { this.soupController = undefined; });
  }

  private saveSoup(where: { picked?: Promise<FileSystemDirectoryHandle | undefined>; parent?: FileSystemDirectoryHandle; force?: boolean }): void {
    this.soupSaveController = new AbortController();
    void saveSoup(this.store, { ...where, signal: this.soupSaveController.signal, ...this.poolOptions() })
      .finally(() => {
        this.soupSaveController = undefined;
        void this.refreshSaved();
      });
  }

  private async refreshSaved(): Promise<void> {
    if (!hasOpfs()) return;
    this.store.update({ saved: await listSaved().catch(() => []) });
  }
}

if (!customElements.get("weightsoup-merge")) customElements.define("weightsoup-merge", WeightsoupMerge);
