/**
 * @file Section 3, merge and save: output name, where to save, seed; Merge with the reason it is
 * disabled next to it; progress; the result or what went wrong (with a way out when the output folder
 * is not empty). Screen readers hear milestones (started, halfway, finished) from their own live region,
 * not the progress line, which changes several times a second.
 */
import { formatBytes } from "../../src/units";
import type { Ledger } from "../../src/ledger/ledger";
import type { PageState, Store } from "../state";
import { h, replace } from "../ui/dom";
import { canPickFolder, hasOpfs, outputNameProblem } from "../ui/save";
import { overwriteOffer, type OverwriteActions } from "./overwrite-view";
import { renderProblems } from "./problems";
import { warningsList } from "./warnings";

export interface RunActions extends OverwriteActions {
  set(patch: Partial<PageState>): void;
  run(): void;
  cancel(): void;
}

const MAX_SEED = 2 ** 32 - 1;

/** What is wrong with the seed field's text ("" when it is a usable seed; empty means 0). */
export function seedProblem(text: string): string {
  const t = text.trim();
  if (t === "") return "";
  if (!/^\d+$/.test(t) || Number(t) > MAX_SEED) return `Seed must be a whole number from 0 to ${MAX_SEED}; “${t}” is not.`;
  return "";
}

/** Why Merge cannot run now, in words ("" when it can). */
export function whyBlocked(s: PageState): string {
  if (s.platformProblems.length) return "This browser cannot run merges (see the notice above).";
  if (s.run === "running") return "";
  if (s.models.length === 0) return "Add models first.";
  if (s.recipe.trim() === "") return "The recipe is empty: build one in the form or paste one.";
  const c = s.check;
  if (c.problems.length === 1) return `The recipe has a problem: ${c.problems[0]!.message}`;
  if (c.problems.length > 1) return `The recipe has ${c.problems.length} problems, listed under the YAML; the first: ${c.problems[0]!.message}`;
  if (c.unmapped.length) return `Choose which loaded model is “${c.unmapped[0]}” (under the YAML).`;
  if (c.broken.length) return `The recipe uses “${c.broken[0]!.name}”, which cannot be read: ${c.broken[0]!.error}`;
  if (c.pending) return "Checking the recipe against the LoRA adapters and tokenizers it uses…";
  const field = [...s.formErrors.values()][0];
  if (field) return `A form field does not hold a value: ${field}`;
  return seedProblem(s.seed) || outputNameProblem(s.outputName);
}

export function runView(store: Store, actions: RunActions): HTMLElement {
  const outputName = h("input", { "data-testid": "output-name", id: "output-name", autocomplete: "off", "aria-describedby": "output-name-error" });
  const outputError = h("span", { class: "field-error", id: "output-name-error", "data-testid": "output-name-error", hidden: true });
  const target = h("select", { "data-testid": "save-target", id: "save-target" });
  if (canPickFolder()) target.append(h("option", { value: "folder" }, "A folder on this computer"));
  if (hasOpfs()) target.append(h("option", { value: "opfs" }, "Browser storage, then download"));
  const seed = h("input", { "data-testid": "seed", id: "seed", type: "number", min: 0, step: 1, inputmode: "numeric", "aria-describedby": "seed-error" });
  const seedError = h("span", { class: "field-error", id: "seed-error", "data-testid": "seed-error", hidden: true });
  outputName.addEventListener("input", () => actions.set({ outputName: outputName.value }));
  target.addEventListener("change", () => actions.set({ target: target.value as PageState["target"] }));
  seed.addEventListener("input", () => actions.set({ seed: seed.value }));

  const run = h("button", { type: "button", class: "primary", "data-testid": "run", "aria-describedby": "run-blocked" }, "Merge");
  run.addEventListener("click", () => actions.run());
  const cancel = h("button", { type: "button", "data-testid": "cancel", disabled: true }, "Cancel");
  cancel.addEventListener("click", () => actions.cancel());
  const blocked = h("p", { class: "blocked", id: "run-blocked", "data-testid": "run-blocked", hidden: true });
  const progress = h("progress", { "data-testid": "progress", max: 1, value: 0, "aria-label": "Merge progress" });
  const status = h("p", { class: "status", "data-testid": "status" });
  const announce = h("p", { class: "visually-hidden", role: "status", "data-testid": "announce" });
  const error = h("div", { class: "problem-box", "data-testid": "error", role: "alert", hidden: true });
  const result = h("div", { class: "result", "data-testid": "result", hidden: true });

  store.watch(["outputName"], (s) => {
    if (outputName.value !== s.outputName) outputName.value = s.outputName;
    const problem = outputNameProblem(s.outputName);
    outputError.textContent = problem;
    outputError.hidden = !problem;
    outputName.setAttribute("aria-invalid", String(!!problem));
  });
  store.watch(["target"], (s) => { if (target.value !== s.target) target.value = s.target; });
  store.watch(["seed"], (s) => {
    if (seed.value !== s.seed && !seed.matches(":focus")) seed.value = s.seed;
    const problem = seedProblem(s.seed);
    seedError.textContent = problem;
    seedError.hidden = !problem;
    seed.setAttribute("aria-invalid", String(!!problem));
  });
  store.watch(["platformProblems", "run", "models", "recipe", "check", "formErrors", "seed", "outputName"], (s) => {
    const why = whyBlocked(s);
    run.disabled = why !== "" || s.run === "running";
    cancel.disabled = s.run !== "running";
    if (blocked.textContent !== why) blocked.textContent = why;
    blocked.hidden = why === "";
  });
  store.watch(["progress"], (s) => { progress.value = s.progress; });
  store.watch(["status"], (s) => { if (status.textContent !== s.status) status.textContent = s.status; });
  store.watch(["announcement"], (s) => { if (announce.textContent !== s.announcement) announce.textContent = s.announcement; });
  store.watch(["runError", "overwrite"], (s) => {
    const way = s.overwrite && overwriteOffer(s.overwrite, "", { whose: "this merge's", confirm: "Overwrite and merge" }, actions);
    if (s.runError.length === 0 && !way) {
      if (!error.hidden) replace(error);
      error.hidden = true;
      return;
    }
    replace(error, renderProblems(s.runError), way);
    error.hidden = false;
  });
  store.watch(["result"], (s) => void showResult(result, s.result));

  return h("section", { "aria-labelledby": "h-run" },
    h("h2", { id: "h-run" }, "3. Merge and save"),
    h("div", { class: "row" },
      h("label", { for: "output-name" }, "Output folder name"), outputName, outputError,
      h("label", { for: "save-target" }, "Save to"), target,
      h("label", { for: "seed" }, "Seed"), seed, seedError),
    h("div", { class: "row" }, run, cancel, progress),
    blocked, status, announce, error, result);
}

/** Every input tensor accounted for: the counts, and the tensors not merged with why (merged ones are the rule). */
function ledgerView(ledger: Ledger): HTMLElement {
  const c = ledger.counts;
  const notMerged = ledger.entries.filter((e) => e.status !== "merged");
  const shown = notMerged.slice(0, 200);
  return h("details", { class: "ledger", "data-testid": "ledger" },
    h("summary", {}, `Ledger: ${c.inputs} input tensors — ${c.merged} merged, ${c.copied} copied, ${c.refused} refused (not written)`),
    h("ul", {}, ...shown.map((e) => h("li", { "data-status": e.status }, `${e.status} ${e.model}: ${e.tensor}${e.why ? ` (${e.why})` : ""}`))),
    ...(notMerged.length > shown.length ? [h("p", {}, `and ${notMerged.length - shown.length} more`)] : []));
}

async function showResult(el: HTMLElement, result: PageState["result"]): Promise<void> {
  if (!result) {
    el.hidden = true;
    replace(el);
    return;
  }
  const { target, name, files } = result;
  const dir = target === "opfs" ? await (await navigator.storage.getDirectory()).getDirectoryHandle(name) : undefined;
  const items = await Promise.all(files.map(async (file) => {
    if (!dir) return h("li", {}, file);
    const blob = await (await dir.getFileHandle(file)).getFile();
    return h("li", {}, h("a", { href: URL.createObjectURL(blob), download: file, "data-testid": "download" }, file), ` ${formatBytes(blob.size)}`);
  }));
  replace(el,
    h("p", {}, dir ? `Saved in this browser as “${name}”. Download each file into one folder to load it with transformers:` : `Saved in the folder “${name}”:`),
    h("ul", {}, ...items),
    ...(result.warnings ? [warningsList("merge", result.warnings)] : []),
    ...(result.ledger ? [ledgerView(result.ledger)] : []));
  el.hidden = false;
}
