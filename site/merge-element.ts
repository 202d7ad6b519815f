/**
 * @file <weightsoup-merge>: the whole merger as one custom element, used by the page (index.html) and
 * by any site that embeds it (embed.html). Models are picked or dropped files, read inside the workers;
 * the recipe is a form and its mergekit YAML, kept in sync; the output goes to a folder the person picks
 * or to the origin-private file system. Nothing leaves the machine.
 *
 * Attributes: `worker-url` (default: worker.js next to this script), `workers` (default: the cores).
 */
import { merge } from "../src/api/merge";
import type { MergePlan } from "../src/plan/plan";
import { AbortError, ValidationError, WeightsoupError } from "../src/errors";
import type { MergeEvent } from "../src/events";
import { DirectoryOutputFolder } from "../src/io/directory-output";
import { METHODS } from "../src/merge/methods";
import { referencedModels } from "../src/plan/plan";
import { parseRecipe } from "../src/recipe/recipe";
import { formatBytes, formatSeconds } from "../src/units";
import { append, h, replace } from "./ui/dom";
import { compatibilityWarnings, droppedFiles, groupModels, loadModel, type PickedFile, type PickedModel } from "./ui/models";
import { autoMap, defaultForm, formToYaml, yamlToForm, type FormState } from "./ui/recipe-form";
import { canPickFolder, checkSpace, deleteSaved, hasOpfs, listSaved, pickFolder, type SaveTarget } from "./ui/save";

type RunState = "idle" | "running" | "done" | "cancelled" | "error";

/** The smallest module using a v128 instruction: validates only where wasm SIMD exists. */
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);

export class WeightsoupMerge extends HTMLElement {
  private readonly root = this.attachShadow({ mode: "open" });
  private models: PickedModel[] = [];
  private form: FormState = defaultForm([]);
  private yaml = "";
  /** Choices a person made for recipe names that did not map by themselves. */
  private chosen = new Map<string, string>();
  private formCannotShow: string[] = [];
  private recipeProblem = "";
  private controller: AbortController | undefined;
  private state: RunState = "idle";

  private readonly els = {
    notice: h("div", { class: "notice", role: "status" }),
    models: h("ul", { class: "models", "aria-label": "Loaded models" }),
    form: h("div", { class: "form" }),
    mapping: h("div", { class: "mapping" }),
    yaml: h("textarea", { "data-testid": "recipe-yaml", id: "yaml", spellcheck: "false", rows: 14, "aria-describedby": "recipe-error" }),
    recipeError: h("p", { class: "problem", id: "recipe-error", "data-testid": "recipe-error", role: "alert", hidden: true }),
    outputName: h("input", { "data-testid": "output-name", id: "output-name", value: "merged", autocomplete: "off" }),
    target: h("select", { "data-testid": "save-target", id: "save-target" }),
    seed: h("input", { "data-testid": "seed", id: "seed", type: "number", min: 0, step: 1, value: 0 }),
    run: h("button", { type: "button", class: "primary", "data-testid": "run" }, "Merge"),
    cancel: h("button", { type: "button", "data-testid": "cancel", disabled: true }, "Cancel"),
    progress: h("progress", { "data-testid": "progress", max: 1, value: 0, "aria-label": "Merge progress" }),
    status: h("p", { class: "status", "data-testid": "status", "aria-live": "polite" }, "Add models to begin."),
    error: h("p", { class: "problem", "data-testid": "error", role: "alert", hidden: true }),
    result: h("div", { class: "result", "data-testid": "result", hidden: true }),
    saved: h("div", { class: "saved" }),
  };

  connectedCallback(): void {
    if (this.root.childElementCount) return;
    this.setState("idle");
    const css = h("link", { rel: "stylesheet", href: new URL("./weightsoup-merge.css", import.meta.url).href });
    const folderInput = h("input", { type: "file", "data-testid": "add-folder", webkitdirectory: true, multiple: true, class: "visually-hidden", tabindex: -1 });
    const filesInput = h("input", { type: "file", "data-testid": "add-files", multiple: true, accept: ".safetensors,.json,.txt,.model,.jinja", class: "visually-hidden", tabindex: -1 });
    const fromInput = (input: HTMLInputElement) => async () => {
      const picked = [...(input.files ?? [])].map((file) => ({ file, path: file.webkitRelativePath || file.name }));
      input.value = "";
      await this.addFiles(picked);
    };
    folderInput.addEventListener("change", fromInput(folderInput));
    filesInput.addEventListener("change", fromInput(filesInput));

    const drop = h("div", { class: "drop", "data-testid": "drop-zone" },
      h("p", {}, "Drop model folders or .safetensors files here, or"),
      h("div", { class: "row" },
        h("button", { type: "button", onclick: () => folderInput.click() }, "Add a model folder…"),
        h("button", { type: "button", onclick: () => filesInput.click() }, "Add files…")),
      h("p", { class: "hint" }, "Files stay on this computer: they are read here, never uploaded."),
      folderInput, filesInput);
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      if (e.dataTransfer) void droppedFiles(e.dataTransfer.items).then((files) => this.addFiles(files));
    });

    this.els.yaml.addEventListener("input", () => this.yamlEdited());
    this.els.run.addEventListener("click", () => void this.run());
    this.els.cancel.addEventListener("click", () => this.controller?.abort());
    if (canPickFolder()) this.els.target.append(h("option", { value: "folder" }, "A folder on this computer"));
    if (hasOpfs()) this.els.target.append(h("option", { value: "opfs" }, "Browser storage, then download"));
    // Straight to a folder where the browser can (no second copy in browser storage, no downloads).
    this.els.target.value = canPickFolder() ? "folder" : "opfs";

    append(this.root, [
      css,
      this.els.notice,
      h("section", { "aria-labelledby": "h-models" }, h("h2", { id: "h-models" }, "1. Models"), drop, this.els.models),
      h("section", { "aria-labelledby": "h-recipe" },
        h("h2", { id: "h-recipe" }, "2. Recipe"),
        h("div", { class: "columns" },
          this.els.form,
          h("div", { class: "yaml" },
            h("label", { for: "yaml" }, "mergekit YAML (edit or paste a recipe from a model card)"),
            this.els.yaml, this.els.mapping, this.els.recipeError))),
      h("section", { "aria-labelledby": "h-run" },
        h("h2", { id: "h-run" }, "3. Merge and save"),
        h("div", { class: "row" },
          h("label", { for: "output-name" }, "Output folder name"), this.els.outputName,
          h("label", { for: "save-target" }, "Save to"), this.els.target,
          h("label", { for: "seed" }, "Seed"), this.els.seed),
        h("div", { class: "row" }, this.els.run, this.els.cancel, this.els.progress),
        this.els.status, this.els.error, this.els.result),
      h("section", { "aria-labelledby": "h-saved" }, h("h2", { id: "h-saved" }, "Saved in this browser"), this.els.saved),
    ]);
    void this.checkPlatform();
    this.renderForm();
    this.syncYamlFromForm();
    void this.renderSaved();
  }

  private async checkPlatform(): Promise<void> {
    const problems: string[] = [];
    if (typeof WebAssembly !== "object" || !WebAssembly.validate(SIMD_PROBE)) {
      problems.push("This browser's WebAssembly has no SIMD, which weightsoup's kernels need (Chrome or Edge 91+, Firefox 89+, Safari 16.4+).");
    }
    if (!canPickFolder() && !hasOpfs()) problems.push("This browser can neither write to a folder nor to its private storage, so a merged model cannot be saved.");
    if (problems.length) {
      replace(this.els.notice, ...problems.map((p) => h("p", { class: "problem" }, p)));
      this.els.run.disabled = true;
      this.els.run.dataset.blocked = "platform";
    }
  }

  private setState(state: RunState): void {
    this.state = state;
    this.dataset.state = state;
    this.els.cancel.disabled = state !== "running";
    this.updateRunButton();
  }

  private updateRunButton(): void {
    const unmapped = this.unmappedNames();
    this.els.run.disabled = this.els.run.dataset.blocked === "platform" || this.state === "running" || this.models.length === 0 ||
      this.recipeProblem !== "" || unmapped.length > 0 || this.models.some((m) => m.error);
  }

  // ---------------------------------------------------------------------------------------------
  // Models

  private async addFiles(picked: PickedFile[]): Promise<void> {
    const groups = groupModels(picked, new Set(this.models.map((m) => m.name)));
    if (groups.length === 0) {
      this.showError("No model found in what was added: a model is a folder holding .safetensors files, or a .safetensors file.");
      return;
    }
    const yamlWasTyped = this.formCannotShow.length > 0 || this.yamlIsUsers();
    this.els.status.textContent = `Reading ${groups.length} model${groups.length > 1 ? "s" : ""}…`;
    const loaded = await Promise.all(groups.map((g) => loadModel(g.name, g.files)));
    this.models.push(...loaded);
    for (const m of loaded) this.form.rows.push({ name: m.name, include: !m.error, weight: "1", density: "0.5" });
    if (!this.form.base || !this.models.some((m) => m.name === this.form.base)) this.form.base = defaultForm(this.models.map((m) => m.name)).base;
    this.els.status.textContent = this.models.some((m) => m.error) ? "A model could not be read; remove it or add it again." : "Models ready. Choose a method.";
    this.renderModels();
    this.renderForm();
    // A recipe someone typed or pasted stays as written; one the form wrote now includes the new models.
    if (yamlWasTyped) this.yamlEdited();
    else this.syncYamlFromForm();
  }

  private removeModel(name: string): void {
    this.models = this.models.filter((m) => m.name !== name);
    this.form.rows = this.form.rows.filter((r) => r.name !== name);
    if (this.form.base === name) this.form.base = defaultForm(this.models.map((m) => m.name)).base;
    this.renderModels();
    this.renderForm();
    this.syncYamlFromForm();
  }

  private renderModels(): void {
    const reference = this.models.find((m) => m.name === this.form.base && m.report) ?? this.models.find((m) => m.report);
    replace(this.els.models, ...this.models.map((m) => {
      const r = m.report;
      const dtypes = r ? Object.keys(r.byDtype).join(", ") : "";
      const config = r?.config;
      const warnings = reference ? compatibilityWarnings(m, reference) : [];
      return h("li", { class: m.error ? "model bad" : "model", "data-testid": "model", "data-model-name": m.name },
        h("div", { class: "model-head" },
          h("strong", {}, m.name),
          h("button", { type: "button", class: "link", "aria-label": `Remove ${m.name}`, onclick: () => this.removeModel(m.name) }, "Remove")),
        r && h("p", { class: "facts" },
          `${r.tensors.length} tensors · ${r.parameters.toLocaleString("en-US")} parameters · ${dtypes} · ${formatBytes(r.bytes)}`,
          r.weightFiles.length > 1 ? ` · ${r.weightFiles.length} shards` : "",
          config ? ` · ${[config.architectures, config.model_type].flat().filter(Boolean).join(" / ")}${config.hidden_size ? `, hidden ${String(config.hidden_size)}` : ""}${config.vocab_size ? `, vocab ${String(config.vocab_size)}` : ""}, ${r.layers} layers` : " · no config.json"),
        m.error && h("p", { class: "problem", "data-testid": "model-error" }, m.error),
        ...warnings.map((w) => h("p", { class: "warning", "data-testid": "model-warning" }, `⚠ ${w}`)));
    }));
  }

  // ---------------------------------------------------------------------------------------------
  // Recipe: form and YAML

  private renderForm(): void {
    const f = this.form;
    const spec = METHODS[f.method];
    const names = this.models.map((m) => m.name);
    const disabled = this.formCannotShow.length > 0;
    const changed = (fn: (value: string, el: HTMLInputElement | HTMLSelectElement) => void) => (e: Event) => {
      const el = e.target as HTMLInputElement | HTMLSelectElement;
      fn(el.type === "checkbox" ? String((el as HTMLInputElement).checked) : el.value, el);
      this.syncYamlFromForm();
    };
    const method = h("select", { id: "method", "data-testid": "method", onchange: changed((v) => { f.method = v; this.renderForm(); }) },
      ...Object.values(METHODS).map((m) => h("option", { value: m.name, selected: m.name === f.method }, m.title)));
    const base = h("select", { id: "base-model", "data-testid": "base-model", onchange: changed((v) => { f.base = v; this.renderForm(); this.renderModels(); }) },
      h("option", { value: "" }, "(none)"),
      ...names.map((n) => h("option", { value: n, selected: n === f.base }, n)));
    const usesBase = !!spec?.needsBase;
    const perModel = Object.keys(spec?.perModel ?? {}).filter((k) => k !== "density" || spec?.sparsify).filter((k) => k !== "scale");
    const rows = f.rows.map((r) => {
      const isBase = usesBase && r.name === f.base;
      return h("tr", { "data-testid": "model-params", "data-model-name": r.name },
        h("td", {}, h("label", {}, h("input", { type: "checkbox", name: "include", checked: r.include || isBase, disabled: isBase,
          onchange: changed((v) => { r.include = v === "true"; }) }), ` ${r.name}`)),
        ...perModel.map((key) => h("td", {}, isBase ? h("span", { class: "hint" }, "base") : h("input", {
          name: key, inputmode: "decimal", "aria-label": `${key} of ${r.name}`, value: key === "weight" ? r.weight : r.density,
          onchange: changed((v) => { if (key === "weight") r.weight = v; else r.density = v; }),
        }))));
    });
    const global = (key: string, label: string, input: HTMLElement) => (spec && key in spec.global ? h("div", { class: "field" }, h("label", { for: input.id }, label), input) : null);
    const fieldset = h("fieldset", { disabled },
      h("div", { class: "field" }, h("label", { for: "method" }, "Method"), method),
      spec?.paper ? h("p", { class: "hint" }, h("a", { href: spec.paper, target: "_blank", rel: "noopener noreferrer" }, `About ${spec.title}`)) : null,
      usesBase ? h("div", { class: "field" }, h("label", { for: "base-model" }, "Base model"), base) : null,
      h("table", { class: "params" },
        h("thead", {}, h("tr", {}, h("th", {}, "Model"), ...perModel.map((k) => h("th", {}, k)))),
        h("tbody", {}, ...rows)),
      global("t", "t (0 = base, 1 = other; a list makes a gradient over layers)",
        h("input", { id: "param-t", "data-testid": "param-t", inputmode: "decimal", value: f.t, onchange: changed((v) => { f.t = v; }) })),
      global("lambda", "lambda (scales the merged task vector)",
        h("input", { id: "param-lambda", "data-testid": "param-lambda", inputmode: "decimal", value: f.lambda, onchange: changed((v) => { f.lambda = v; }) })),
      global("normalize", "normalize weights to sum to 1",
        h("input", { id: "param-normalize", "data-testid": "param-normalize", type: "checkbox", checked: f.normalize, onchange: changed((v) => { f.normalize = v === "true"; }) })),
      h("div", { class: "field" }, h("label", { for: "dtype" }, "Compute dtype"),
        h("select", { id: "dtype", "data-testid": "dtype", onchange: changed((v) => { f.dtype = v; }) },
          ...[["", "as the inputs"], ["bfloat16", "bfloat16"], ["float16", "float16"], ["float32", "float32"]].map(([v, t]) => h("option", { value: v!, selected: v === f.dtype }, t!)))),
      h("p", { class: "hint" }, "Weights, density and t take a number or a list such as [0, 0.5, 1] (a gradient over the layers)."));
    replace(this.els.form, fieldset, disabled ? h("p", { class: "hint", "data-testid": "form-cannot-show" },
      `The YAML uses ${this.formCannotShow.join(", ")}, which the form cannot show; it runs exactly as written. Clear the YAML to start over from the form.`) : null);
  }

  /** True when the YAML came from a person rather than from the form. */
  private yamlIsUsers(): boolean {
    try {
      return this.yaml.trim() !== "" && this.yaml !== formToYaml(this.form);
    } catch {
      return true;
    }
  }

  private syncYamlFromForm(): void {
    try {
      this.yaml = this.models.length ? formToYaml(this.form) : "";
      this.els.yaml.value = this.yaml;
      this.formCannotShow = [];
      this.checkRecipe();
    } catch (e) {
      this.setRecipeProblem((e as Error).message);
    }
  }

  private yamlEdited(): void {
    this.yaml = this.els.yaml.value;
    if (this.yaml.trim() === "") {
      this.formCannotShow = [];
      this.renderForm();
      this.syncYamlFromForm();
      return;
    }
    try {
      const mapping = this.mapping();
      const { form, formCannotShow } = yamlToForm(this.yaml, this.form, (n) => mapping.get(n));
      this.form = form;
      this.formCannotShow = formCannotShow;
      this.renderForm();
      this.renderModels();
      this.checkRecipe();
    } catch (e) {
      this.setRecipeProblem((e as Error).message);
    }
  }

  private recipeNames(): string[] {
    try {
      return referencedModels(parseRecipe(this.yaml));
    } catch {
      return [];
    }
  }

  private mapping(): Map<string, string> {
    return autoMap(this.recipeNames(), this.models.filter((m) => !m.error).map((m) => m.name), this.chosen);
  }

  private unmappedNames(): string[] {
    const mapping = this.mapping();
    return this.recipeNames().filter((n) => !mapping.has(n));
  }

  /** Checks the YAML and asks about recipe names that map to no loaded model. */
  private checkRecipe(): void {
    let problem = "";
    try {
      if (this.yaml.trim()) parseRecipe(this.yaml);
    } catch (e) {
      problem = (e as Error).message;
    }
    const mapping = this.mapping();
    const loaded = this.models.filter((m) => !m.error).map((m) => m.name);
    const ask = this.recipeNames().filter((n) => !mapping.has(n) || this.chosen.has(n));
    replace(this.els.mapping, ...ask.map((name) => h("div", { class: "field" },
      h("label", {}, `Which loaded model is “${name}”?`,
        h("select", {
          "data-testid": "model-map", "data-recipe-name": name,
          onchange: (e: Event) => {
            const v = (e.target as HTMLSelectElement).value;
            if (v) this.chosen.set(name, v); else this.chosen.delete(name);
            this.yamlEdited();
          },
        }, h("option", { value: "" }, "choose…"), ...loaded.map((l) => h("option", { value: l, selected: mapping.get(name) === l }, l)))))));
    this.setRecipeProblem(problem);
  }

  private setRecipeProblem(problem: string): void {
    this.recipeProblem = problem;
    this.els.recipeError.hidden = problem === "";
    this.els.recipeError.textContent = problem;
    this.els.yaml.setAttribute("aria-invalid", String(problem !== ""));
    this.updateRunButton();
  }

  // ---------------------------------------------------------------------------------------------
  // Running and saving

  private async run(): Promise<void> {
    const target = this.els.target.value as SaveTarget;
    const name = this.els.outputName.value.trim();
    // The folder picker needs the click's user activation: ask before anything else is awaited.
    const picked = target === "folder" ? pickFolder().catch(() => undefined) : undefined;
    this.controller = new AbortController();
    const signal = this.controller.signal;
    this.els.error.hidden = true;
    this.els.result.hidden = true;
    this.els.progress.value = 0;
    this.setState("running");
    const mapping = this.mapping();
    const byName = new Map(this.models.map((m) => [m.name, m]));
    const models = (recipeName: string) => byName.get(mapping.get(recipeName) ?? recipeName)!.folder;
    const started = performance.now();
    try {
      let out: DirectoryOutputFolder | undefined;
      // Called by merge() once the plan is valid: the output is created only for a recipe that can run.
      const open = async (plan: MergePlan): Promise<DirectoryOutputFolder> => {
        if (target === "folder") {
          const dir = await picked;
          if (!dir) throw new AbortError("No folder was chosen");
          out = await DirectoryOutputFolder.into(dir);
        } else {
          const donor = byName.get(mapping.get(plan.donor) ?? plan.donor)!;
          const extra = [...donor.files.values()].reduce((s, f) => s + f.size, 0);
          await checkSpace(plan.tensors.reduce((s, t) => s + t.outputBytes, 0) + extra + 1e6);
          out = await DirectoryOutputFolder.create(await navigator.storage.getDirectory(), name || "merged");
        }
        return out;
      };
      const workers = Number(this.getAttribute("workers")) || undefined;
      const workerUrl = this.getAttribute("worker-url") ?? undefined;
      const summary = await merge(this.yaml, {
        models, out: open, signal, seed: Number(this.els.seed.value) || 0,
        ...(workers ? { workers } : {}), ...(workerUrl ? { workerUrl: new URL(workerUrl, document.baseURI) } : {}),
        onProgress: (e) => this.progress(e, started),
      });
      this.els.status.textContent = `Done: ${summary.method} merged ${summary.tensors} tensors (${formatBytes(summary.inputBytes)} read, ${formatBytes(summary.outputBytes)} written) in ${formatSeconds(summary.seconds)}.`;
      await this.showResult(target, out!.name, summary.files);
      // "done" last: a host page reacting to it finds the result already listed.
      this.dataset.seconds = summary.seconds.toFixed(3);
      this.setState("done");
    } catch (e) {
      if (e instanceof AbortError || signal.aborted) {
        this.setState("cancelled");
        this.els.status.textContent = e instanceof AbortError && e.message === "No folder was chosen" ? "No folder was chosen; nothing was saved." : "Cancelled; nothing was saved.";
      } else {
        this.setState("error");
        this.els.status.textContent = "The merge failed; nothing was saved.";
        this.showError(describe(e));
      }
    } finally {
      this.controller = undefined;
      this.updateRunButton();
      void this.renderSaved();
    }
  }

  private progress(e: MergeEvent, started: number): void {
    if (e.type === "plan") {
      this.els.status.textContent = `Merging ${e.tensors} tensors with ${e.workers} workers…`;
      return;
    }
    if (e.type !== "progress" && e.type !== "tensor-done") return;
    const fraction = e.bytesTotal ? e.bytesDone / e.bytesTotal : 0;
    this.els.progress.value = fraction;
    const seconds = (performance.now() - started) / 1000;
    const rate = e.bytesDone / Math.max(seconds, 1e-3);
    const left = fraction > 0 ? seconds * (1 - fraction) / fraction : Infinity;
    const tensors = e.type === "tensor-done" ? `${e.tensorsDone}/${e.tensorsTotal} tensors · ` : (this.els.status.dataset.tensors ?? "");
    if (e.type === "tensor-done") this.els.status.dataset.tensors = tensors;
    this.els.status.textContent = `${tensors}${formatBytes(e.bytesDone)} of ${formatBytes(e.bytesTotal)} · ${formatBytes(rate)}/s · ${formatSeconds(left)} left`;
  }

  private async showResult(target: SaveTarget, name: string, files: string[]): Promise<void> {
    const items = await Promise.all(files.map(async (file) => {
      if (target !== "opfs") return h("li", {}, file);
      const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle(name);
      const blob = await (await dir.getFileHandle(file)).getFile();
      return h("li", {}, h("a", { href: URL.createObjectURL(blob), download: file, "data-testid": "download" }, file), ` ${formatBytes(blob.size)}`);
    }));
    replace(this.els.result,
      h("p", {}, target === "opfs" ? `Saved in this browser as “${name}”. Download each file into one folder to load it with transformers:` : `Saved in the folder “${name}”:`),
      h("ul", {}, ...items));
    this.els.result.hidden = false;
  }

  private showError(message: string): void {
    this.els.error.textContent = message;
    this.els.error.hidden = false;
  }

  private async renderSaved(): Promise<void> {
    if (!hasOpfs()) return;
    const saved = await listSaved().catch(() => []);
    replace(this.els.saved, saved.length === 0 ? h("p", { class: "hint" }, "Nothing yet.") : h("ul", {}, ...saved.map((s) => h("li", { "data-testid": "saved-output", "data-name": s.name },
      h("strong", {}, s.name), ` ${s.files.length} files, ${formatBytes(s.files.reduce((n, f) => n + f.size, 0))} `,
      h("button", { type: "button", class: "link", onclick: async () => { await deleteSaved(s.name); await this.renderSaved(); } }, "Delete"),
      h("ul", { class: "files" }, ...s.files.map((f) => h("li", {}, h("a", { href: URL.createObjectURL(f), download: f.name }, f.name))))))));
  }
}

/** An error in plain words: what went wrong, with the file, tensor or key it is about. */
function describe(e: unknown): string {
  if (e instanceof ValidationError) return `${e.problems.length} problems found before merging: ${e.problems.map((p) => p.message).join("; ")}`;
  if (e instanceof WeightsoupError) return e.message;
  return `Something unexpected went wrong: ${(e as Error)?.message ?? String(e)}`;
}

if (!customElements.get("weightsoup-merge")) customElements.define("weightsoup-merge", WeightsoupMerge);
