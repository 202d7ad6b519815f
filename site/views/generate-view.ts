/**
 * @file The prompt box at the end of the Evaluate section: a prompt continued by one model and by
 * another next to it (by default the merged output and the merge's base), each token shown as it is
 * chosen. The text streams into ordinary elements, not a live region: a screen reader hears that
 * generation started and ended, and reads the outputs when it wants to.
 */
import type { Store } from "../state";
import { h, replace } from "../ui/dom";
import type { EvalCandidate } from "../ui/eval-candidates";
import { genChoices, newTokensProblem, NO_OTHER, whyGenBlocked, type GenForm, type GenOutput } from "../ui/run-generate";
import { renderProblems } from "./problems";
import { warningsBox } from "./warnings";

export interface GenerateActions {
  form(patch: Partial<GenForm>): void;
  run(): void;
  cancel(): void;
}

export function generateView(store: Store, actions: GenerateActions): HTMLElement {
  const prompt = h("textarea", { id: "gen-prompt", "data-testid": "gen-prompt", rows: 3 });
  prompt.addEventListener("input", () => actions.form({ prompt: prompt.value }));
  const model = h("select", { id: "gen-model", "data-testid": "gen-model" });
  const other = h("select", { id: "gen-other", "data-testid": "gen-other" });
  model.addEventListener("change", () => actions.form({ model: model.value }));
  other.addEventListener("change", () => actions.form({ other: other.value }));
  const maxNew = h("input", { id: "gen-max-new", "data-testid": "gen-max-new", type: "number", min: 1, max: 4096, step: 1, inputmode: "numeric", "aria-describedby": "gen-max-new-error" });
  const maxNewError = h("span", { class: "field-error", id: "gen-max-new-error", "data-testid": "gen-max-new-error", hidden: true });
  maxNew.addEventListener("input", () => actions.form({ maxNew: maxNew.value }));
  const chat = h("input", { type: "checkbox", id: "gen-chat", "data-testid": "gen-chat" });
  chat.addEventListener("change", () => actions.form({ chat: chat.checked }));

  const run = h("button", { type: "button", class: "primary", "data-testid": "gen-run", "aria-describedby": "gen-blocked" }, "Generate");
  run.addEventListener("click", () => actions.run());
  const cancel = h("button", { type: "button", "data-testid": "gen-cancel", disabled: true }, "Cancel");
  cancel.addEventListener("click", () => actions.cancel());
  const blocked = h("p", { class: "blocked", id: "gen-blocked", "data-testid": "gen-blocked", hidden: true });
  const status = h("p", { class: "status", "data-testid": "gen-status" });
  const announce = h("p", { class: "visually-hidden", role: "status", "data-testid": "gen-announce" });
  const error = h("div", { class: "problem-box", "data-testid": "gen-error", role: "alert", hidden: true });
  const warnings = warningsBox("gen");
  const outputs = h("div", { class: "gen-outputs", "data-testid": "gen-outputs" });

  store.watch(["genForm"], (s) => {
    const f = s.genForm;
    if (prompt.value !== f.prompt) prompt.value = f.prompt;
    if (maxNew.value !== f.maxNew && !maxNew.matches(":focus")) maxNew.value = f.maxNew;
    chat.checked = f.chat;
    const problem = newTokensProblem(f.maxNew);
    if (maxNewError.textContent !== problem) maxNewError.textContent = problem;
    maxNewError.hidden = !problem;
    maxNew.setAttribute("aria-invalid", String(!!problem));
  });

  // Options are rebuilt only when the candidates change; the selection follows the state in place.
  let shownOptions = "";
  store.watch(["models", "merged", "recipe", "check", "genForm"], (s) => {
    const choices = genChoices(s);
    const key = choices.candidates.map((c) => `${c.id}\t${c.label}`).join("\n");
    if (key !== shownOptions) {
      shownOptions = key;
      replace(model, ...choices.candidates.map(option));
      replace(other, h("option", { value: NO_OTHER }, "nothing"), ...choices.candidates.map(option));
    }
    model.disabled = other.disabled = choices.candidates.length === 0;
    const modelValue = choices.model?.id ?? "";
    const otherValue = choices.other?.id ?? NO_OTHER;
    if (model.value !== modelValue) model.value = modelValue;
    if (other.value !== otherValue) other.value = otherValue;
  });

  store.watch(["platformProblems", "models", "merged", "recipe", "check", "genForm", "generation"], (s) => {
    const why = whyGenBlocked(s);
    run.disabled = why !== "" || s.generation.run === "running";
    cancel.disabled = s.generation.run !== "running";
    if (blocked.textContent !== why) blocked.textContent = why;
    blocked.hidden = why === "";
  });

  let shownProblems: unknown = undefined;
  const panels: OutputPanel[] = [];
  store.watch(["generation"], (s) => {
    const g = s.generation;
    if (status.textContent !== g.status) status.textContent = g.status;
    if (announce.textContent !== g.announcement) announce.textContent = g.announcement;
    if (shownProblems !== g.problems) {
      shownProblems = g.problems;
      if (g.problems.length) replace(error, renderProblems(g.problems));
      else replace(error);
      error.hidden = g.problems.length === 0;
    }
    warnings.show(g.warnings);
    // A new run (other models) gets new panels; tokens of a running one update them in place.
    if (panels.length !== g.outputs.length || panels.some((p, i) => p.label !== g.outputs[i]!.label)) {
      panels.length = 0;
      panels.push(...g.outputs.map((o) => outputPanel(o.label)));
      replace(outputs, ...panels.map((p) => p.el));
    }
    g.outputs.forEach((o, i) => panels[i]!.show(o));
  });

  return h("div", { class: "prompt-box", role: "group", "aria-labelledby": "h-generate" },
    h("h3", { id: "h-generate" }, "Generate from a prompt"),
    h("p", { class: "hint" }, "The prompt is continued greedily (the most likely token each time) by one model, then by the one next to it, so their answers can be read side by side."),
    h("div", { class: "yaml" }, h("label", { for: "gen-prompt" }, "Prompt"), prompt),
    h("div", { class: "row" },
      h("label", { for: "gen-model" }, "Model"), model,
      h("label", { for: "gen-other" }, "Next to"), other),
    h("div", { class: "row" },
      h("label", { for: "gen-max-new" }, "New tokens"), maxNew, maxNewError,
      h("span", {}, chat, " ", h("label", { for: "gen-chat" }, "Wrap the prompt in the model's chat template"))),
    h("div", { class: "row" }, run, cancel),
    blocked, status, announce, error, warnings.el, outputs);
}

const option = (c: EvalCandidate) => h("option", { value: c.id }, c.label);

interface OutputPanel {
  label: string;
  el: HTMLElement;
  show(o: GenOutput): void;
}

function outputPanel(label: string): OutputPanel {
  const text = h("pre", { class: "gen-text", "data-testid": "gen-text" });
  const status = h("p", { class: "hint", "data-testid": "gen-output-status" });
  const ids = h("code", { "data-testid": "gen-ids" });
  const el = h("article", { class: "gen-output", "data-testid": "gen-output", "data-model": label },
    h("h4", {}, label), text, status,
    h("details", {}, h("summary", {}, "Token ids"), ids));
  return {
    label, el,
    show(o) {
      if (text.textContent !== o.text) text.textContent = o.text;
      if (status.textContent !== o.status) status.textContent = o.status;
      const list = o.ids.join(", ");
      if (ids.textContent !== list) ids.textContent = list;
    },
  };
}
