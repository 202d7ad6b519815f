/**
 * @file "Saved in this browser": the outputs kept in the origin-private file system, each file a
 * download link, each output with a Delete button that says which output it deletes.
 */
import { formatBytes } from "../../src/units";
import type { Store } from "../state";
import { h, replace } from "../ui/dom";

export interface SavedActions {
  delete(name: string): Promise<void>;
}

export function savedView(store: Store, actions: SavedActions): HTMLElement {
  const list = h("div", { class: "saved" });
  let urls: string[] = [];
  const link = (f: File) => {
    const href = URL.createObjectURL(f);
    urls.push(href);
    return h("a", { href, download: f.name }, f.name);
  };
  store.watch(["saved"], (s) => {
    for (const u of urls) URL.revokeObjectURL(u);
    urls = [];
    replace(list, s.saved.length === 0 ? h("p", { class: "hint" }, "Nothing yet.") : h("ul", {}, ...s.saved.map((out) =>
      h("li", { "data-testid": "saved-output", "data-name": out.name },
        h("strong", {}, out.name), ` ${out.files.length} files, ${formatBytes(out.files.reduce((n, f) => n + f.size, 0))} `,
        h("button", { type: "button", class: "link", "data-testid": "delete-saved", "aria-label": `Delete “${out.name}” from this browser`, onclick: () => void actions.delete(out.name) }, "Delete"),
        h("ul", { class: "files" }, ...out.files.map((f) => h("li", {}, link(f))))))));
  });
  return h("section", { "aria-labelledby": "h-saved" }, h("h2", { id: "h-saved" }, "Saved in this browser"), list);
}
