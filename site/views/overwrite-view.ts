/**
 * @file The way out of a save that stopped at an output folder holding files (the merge's and the
 * soup's): "Overwrite “name”…", then a confirmation saying what is replaced, with test ids
 * `${prefix}overwrite`, `${prefix}overwrite-confirm` and `${prefix}overwrite-cancel`.
 */
import { h } from "../ui/dom";
import type { OverwriteOffer } from "../ui/save";

export interface OverwriteActions {
  /** The person asked to overwrite the non-empty output folder (a confirmation follows). */
  overwrite(): void;
  confirmOverwrite(): void;
  keepExisting(): void;
}

/** The offer's row; `whose` ends "The files in “x” will be replaced by …", `confirm` labels the confirming button. */
export function overwriteOffer(o: OverwriteOffer, prefix: string, words: { whose: string; confirm: string }, actions: OverwriteActions): HTMLElement {
  return o.confirming
    ? h("div", { class: "row" },
      h("span", {}, `The files in “${o.name}” will be replaced by ${words.whose}.`),
      h("button", { type: "button", class: "primary", "data-testid": `${prefix}overwrite-confirm`, onclick: () => actions.confirmOverwrite() }, words.confirm),
      h("button", { type: "button", "data-testid": `${prefix}overwrite-cancel`, onclick: () => actions.keepExisting() }, "Keep them"))
    : h("div", { class: "row" },
      h("button", { type: "button", "data-testid": `${prefix}overwrite`, onclick: () => actions.overwrite() }, `Overwrite “${o.name}”…`),
      h("span", { class: "hint" }, "or choose another output folder name."));
}
