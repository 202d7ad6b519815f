/**
 * @file Section 1, the models: the drop zone (with what went wrong with the last files added) and the
 * list of loaded models, each with its facts, the error that makes it unusable and its differences from
 * the base. Re-renders when the models change or the recipe's base does, not on every recipe edit.
 */
import { formatBytes } from "../../src/units";
import type { Store } from "../state";
import { h, replace } from "../ui/dom";
import { mappingOf } from "../ui/mapping";
import { compatibilityWarnings, droppedFiles, type PickedFile, type PickedModel } from "../ui/models";
import { readForm } from "../ui/recipe-doc";

export interface ModelsActions {
  add(files: PickedFile[]): Promise<void>;
  remove(name: string): void;
}

export function modelsView(store: Store, actions: ModelsActions): HTMLElement {
  // The inputs are clicked by the buttons; hidden from assistive technology, which gets the buttons.
  const input = (props: Record<string, string | boolean>) => h("input", { type: "file", multiple: true, class: "visually-hidden", tabindex: -1, "aria-hidden": "true", ...props });
  const folderInput = input({ "data-testid": "add-folder", webkitdirectory: true });
  const filesInput = input({ "data-testid": "add-files", accept: ".safetensors,.json,.txt,.model,.jinja,.bin,.pt,.pth,.gguf" });
  for (const el of [folderInput, filesInput]) {
    el.addEventListener("change", () => {
      const picked = [...(el.files ?? [])].map((file) => ({ file, path: file.webkitRelativePath || file.name }));
      el.value = "";
      void actions.add(picked);
    });
  }
  const problem = h("p", { class: "problem", "data-testid": "add-problem", role: "alert", hidden: true });
  const drop = h("div", { class: "drop", "data-testid": "drop-zone" },
    h("p", {}, "Drop model folders or .safetensors files here, or"),
    h("div", { class: "row" },
      h("button", { type: "button", onclick: () => folderInput.click() }, "Add a model folder…"),
      h("button", { type: "button", onclick: () => filesInput.click() }, "Add files…")),
    h("p", { class: "hint" }, "Files stay on this computer: they are read here, never uploaded."),
    problem, folderInput, filesInput);
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer) void droppedFiles(e.dataTransfer.items).then((files) => actions.add(files));
  });
  const list = h("ul", { class: "models", "aria-label": "Loaded models" });

  store.watch(["addProblem"], (s) => {
    problem.textContent = s.addProblem;
    problem.hidden = s.addProblem === "";
  });
  // Warnings compare each model with the recipe's base: re-render when the models or that base change.
  let shown: { models: readonly PickedModel[]; base: string } | undefined;
  store.watch(["models", "recipe", "chosen"], (s) => {
    const names = s.models.filter((m) => m.loaded).map((m) => m.name);
    const mapping = mappingOf(s.recipe, s.models.map((m) => m.name), s.chosen);
    const base = readForm(s.recipe, names, (n) => mapping.map.get(n)).base;
    if (shown && shown.models === s.models && shown.base === base) return;
    shown = { models: s.models, base };
    renderList(list, s.models, base, actions);
  });
  return h("section", { "aria-labelledby": "h-models" }, h("h2", { id: "h-models" }, "1. Models"), drop, list);
}

function renderList(list: HTMLElement, models: readonly PickedModel[], base: string, actions: ModelsActions): void {
  const reference = models.find((m) => m.name === base && m.report && !m.adapter) ?? models.find((m) => m.report && !m.adapter);
  replace(list, ...models.map((m) => {
    const r = m.report;
    const config = r?.config;
    const warnings = reference ? compatibilityWarnings(m, reference) : [];
    return h("li", { class: m.error ? "model bad" : "model", "data-testid": "model", "data-model-name": m.name },
      h("div", { class: "model-head" },
        h("strong", {}, m.name),
        h("button", { type: "button", class: "link", "aria-label": `Remove ${m.name}`, onclick: () => actions.remove(m.name) }, "Remove")),
      r && m.adapter && h("p", { class: "facts" },
        `LoRA adapter (PEFT) · ${r.tensors.length} factor tensors · ${r.parameters.toLocaleString("en-US")} parameters · ${Object.keys(r.byDtype).join(", ")} · ${formatBytes(r.bytes)} · used as BASE+ADAPTER in a recipe`),
      r && !m.adapter && h("p", { class: "facts" },
        `${r.tensors.length} tensors · ${r.parameters.toLocaleString("en-US")} parameters · ${Object.keys(r.byDtype).join(", ")} · ${formatBytes(r.bytes)}`,
        r.weightFiles.length > 1 ? ` · ${r.weightFiles.length} shards` : "",
        config ? ` · ${[config.architectures, config.model_type].flat().filter(Boolean).join(" / ")}${config.hidden_size ? `, hidden ${String(config.hidden_size)}` : ""}${config.vocab_size ? `, vocab ${String(config.vocab_size)}` : ""}, ${r.layers} layers` : " · no config.json"),
      m.error && h("p", { class: "problem" }, m.errorCode ? h("code", { class: "problem-code", "data-testid": "model-error-code" }, m.errorCode) : null, m.errorCode ? " " : null,
        h("span", { "data-testid": "model-error" }, m.error)),
      ...warnings.map((w) => h("p", { class: "warning", "data-testid": "model-warning" }, `⚠ ${w}`)));
  }));
}
