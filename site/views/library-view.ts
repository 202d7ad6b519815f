/**
 * @file The model library section: add model folders to this browser's storage (with progress and
 * Cancel), list them with their sizes, use one in the merge like a picked folder, or remove one.
 */
import { formatBytes } from "../../src/units";
import type { LibraryModel } from "../../src/io/model-library";
import type { Store } from "../state";
import { h, replace } from "../ui/dom";
import { copyStatus } from "../ui/library";
import type { PickedFile } from "../ui/models";

export interface LibraryActions {
  add(files: PickedFile[]): void;
  cancel(): void;
  use(model: LibraryModel): void;
  remove(model: LibraryModel): void;
}

export function libraryView(store: Store, actions: LibraryActions): HTMLElement {
  const input = h("input", { type: "file", multiple: true, webkitdirectory: true, class: "visually-hidden", tabindex: -1, "aria-hidden": "true", "data-testid": "library-add-folder" });
  input.addEventListener("change", () => {
    const picked = [...(input.files ?? [])].map((file) => ({ file, path: file.webkitRelativePath || file.name }));
    input.value = "";
    actions.add(picked);
  });
  const add = h("button", { type: "button", "data-testid": "library-add", onclick: () => input.click() }, "Add a model folder to the library…");
  const progress = h("progress", { "data-testid": "library-progress", max: 1, value: 0, "aria-label": "Copying into the library", hidden: true });
  const status = h("p", { class: "status", "data-testid": "library-status", role: "status" });
  const cancel = h("button", { type: "button", "data-testid": "library-cancel", hidden: true, onclick: () => actions.cancel() }, "Cancel");
  const problem = h("p", { class: "problem", "data-testid": "library-problem", role: "alert", hidden: true });
  const list = h("div", { class: "library" });

  store.watch(["libraryCopy"], (s) => {
    const c = s.libraryCopy;
    add.disabled = c !== null;
    progress.hidden = cancel.hidden = c === null;
    progress.value = c && c.total > 0 ? c.copied / c.total : 0;
    status.textContent = c ? copyStatus(c) : "";
  });
  store.watch(["libraryProblem"], (s) => {
    problem.textContent = s.libraryProblem;
    problem.hidden = s.libraryProblem === "";
  });
  store.watch(["library", "models", "run"], (s) => {
    const inUse = new Set(s.models.map((m) => m.library).filter(Boolean));
    const busy = s.run === "running";
    replace(list, s.library.length === 0 ? h("p", { class: "hint" }, "Empty.") : h("ul", { class: "models" }, ...s.library.map((m) =>
      h("li", { class: "model", "data-testid": "library-model", "data-name": m.name, "data-bytes": m.bytes },
        h("div", { class: "model-head" },
          h("strong", {}, m.name),
          h("span", { class: "row" },
            h("button", { type: "button", class: "link", "data-testid": "library-use", disabled: inUse.has(m.id), "aria-label": `Use ${m.name} from the library`, onclick: () => actions.use(m) }, inUse.has(m.id) ? "In use" : "Use"),
            h("button", { type: "button", class: "link", "data-testid": "library-remove", disabled: busy && inUse.has(m.id), "aria-label": `Remove ${m.name} from the library`, onclick: () => actions.remove(m) }, "Remove"))),
        h("p", { class: "facts" }, `${m.files.length} file${m.files.length === 1 ? "" : "s"} · ${formatBytes(m.bytes)}`)))));
  });
  return h("section", { "aria-labelledby": "h-library" },
    h("h2", { id: "h-library" }, "Model library in this browser"),
    h("p", { class: "hint" }, "Models copied here once stay across visits and are read faster by every later merge than picked files."),
    h("div", { class: "row" }, add, cancel), progress, status, problem, input, list);
}
