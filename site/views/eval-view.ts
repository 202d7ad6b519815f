/**
 * @file Section 4, Evaluate: a text (typed or pasted, a picked .txt file, or the built-in text), the
 * models to score and to compare with, Evaluate with progress and Cancel, and the results: perplexity,
 * bits per byte and tokens per model, and KL divergence from each reference. The prompt box
 * (generate-view.ts) sits at its end. Checkboxes and fields are updated in place, never rebuilt under
 * a person using them; screen readers hear milestones only, from their own live region.
 */
import { DEFAULT_TEXT, DEFAULT_TEXT_NAME } from "../../src/eval/default-text";
import type { PageState, Store } from "../state";
import { h, replace } from "../ui/dom";
import { evalCandidates, pickOf, type EvalCandidate, type EvalPick } from "../ui/eval-candidates";
import { formatAgreement, formatBitsPerByte, formatKl, formatPerplexity } from "../ui/eval-format";
import { BUILTIN_SOURCE, contextProblem, maxTokensProblem, whyEvalBlocked, type EvalForm, type EvalResults } from "../ui/run-eval";
import { runControls } from "./run-controls";

export interface EvalActions {
  form(patch: Partial<EvalForm>): void;
  pick(id: string, patch: Partial<EvalPick>): void;
  run(): void;
  cancel(): void;
}

export function evalView(store: Store, actions: EvalActions, promptBox: HTMLElement): HTMLElement {
  // The text.
  const text = h("textarea", { id: "eval-text", "data-testid": "eval-text", rows: 6, spellcheck: "false", "aria-describedby": "eval-text-source" });
  text.addEventListener("input", () => actions.form({ text: text.value, source: "" }));
  const fileInput = h("input", { type: "file", accept: ".txt,text/plain", class: "visually-hidden", tabindex: -1, "aria-hidden": "true", "data-testid": "eval-text-file" });
  fileInput.addEventListener("change", () => {
    const file = fileInput.files?.[0];
    fileInput.value = "";
    if (file) void file.text().then((t) => actions.form({ text: t, source: file.name }));
  });
  const builtin = h("button", { type: "button", "data-testid": "eval-builtin", onclick: () => actions.form({ text: DEFAULT_TEXT, source: BUILTIN_SOURCE }) }, "Use the built-in text");
  const pick = h("button", { type: "button", "data-testid": "eval-pick-text", onclick: () => fileInput.click() }, "Pick a .txt file…");
  const source = h("p", { class: "hint", id: "eval-text-source", "data-testid": "eval-text-source" });

  // Window size and length.
  const context = h("input", { id: "eval-context", "data-testid": "eval-context", type: "number", min: 2, step: 1, inputmode: "numeric", "aria-describedby": "eval-context-error" });
  const contextError = h("span", { class: "field-error", id: "eval-context-error", "data-testid": "eval-context-error", hidden: true });
  const maxTokens = h("input", { id: "eval-max-tokens", "data-testid": "eval-max-tokens", type: "number", min: 2, step: 1, inputmode: "numeric", placeholder: "all", "aria-describedby": "eval-max-tokens-error" });
  const maxTokensError = h("span", { class: "field-error", id: "eval-max-tokens-error", "data-testid": "eval-max-tokens-error", hidden: true });
  context.addEventListener("input", () => actions.form({ context: context.value }));
  maxTokens.addEventListener("input", () => actions.form({ maxTokens: maxTokens.value }));

  // Which models.
  const rows = h("tbody");
  const candidatesTable = h("table", { class: "params eval-models", "data-testid": "eval-models" },
    h("caption", { class: "visually-hidden" }, "Models to evaluate and to compare with"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Model"), h("th", { scope: "col" }, "Evaluate"), h("th", { scope: "col" }, "Compare with (KL)"))),
    rows);
  const noCandidates = h("p", { class: "hint", "data-testid": "eval-no-models" }, "Models you add, and the output of a merge, can be evaluated here.");

  // Running.
  const panel = runControls("eval", { run: "Evaluate", progress: "Evaluation progress" }, actions);
  const { run, cancel, blocked, progress, status, announce, error } = panel;
  const results = h("div", { class: "eval-results", "data-testid": "eval-results", hidden: true });

  store.watch(["evalForm"], (s) => {
    const f = s.evalForm;
    if (text.value !== f.text) text.value = f.text;
    const chars = `${f.text.length.toLocaleString("en-US")} characters`;
    source.textContent = f.text === "" ? "Paste or type a text, pick a .txt file, or use the built-in text."
      : f.source === BUILTIN_SOURCE ? `The built-in text: ${DEFAULT_TEXT_NAME}, public domain; ${chars}.`
        : f.source ? `From ${f.source}; ${chars}.` : `${chars}.`;
    if (context.value !== f.context && !context.matches(":focus")) context.value = f.context;
    if (maxTokens.value !== f.maxTokens && !maxTokens.matches(":focus")) maxTokens.value = f.maxTokens;
    showFieldProblem(context, contextError, contextProblem(f.context));
    showFieldProblem(maxTokens, maxTokensError, maxTokensProblem(f.maxTokens));
  });

  let shownCandidates = "";
  const boxes = new Map<string, { score: HTMLInputElement; against: HTMLInputElement }>();
  store.watch(["models", "merged", "recipe", "check", "evalPicks"], (s) => {
    const candidates = evalCandidates(s);
    const key = candidates.map((c) => `${c.id}\t${c.label}`).join("\n");
    if (key !== shownCandidates) {
      shownCandidates = key;
      boxes.clear();
      replace(rows, ...candidates.map((c) => candidateRow(c, s, actions, boxes)));
      candidatesTable.hidden = candidates.length === 0;
      noCandidates.hidden = candidates.length > 0;
    }
    for (const c of candidates) {
      const b = boxes.get(c.id)!, p = pickOf(s, c.id);
      b.score.checked = p.score;
      b.against.checked = p.against;
    }
  });

  store.watch(["platformProblems", "models", "merged", "recipe", "check", "evalPicks", "evalForm", "evaluation"], (s) => {
    const why = whyEvalBlocked(s);
    panel.gate(why, s.evaluation.run === "running");
  });

  let shown: { results: EvalResults | null } = { results: null };
  store.watch(["evaluation"], (s) => {
    const e = s.evaluation;
    panel.show(e);
    if (shown.results !== e.results) {
      if (e.results) replace(results, resultsTable(e.results));
      else replace(results);
      results.hidden = e.results === null;
    }
    shown = { results: e.results };
  });

  return h("section", { "aria-labelledby": "h-eval" },
    h("h2", { id: "h-eval" }, "4. Evaluate"),
    h("p", { class: "hint" }, "Perplexity of each model on a text, and how far each one's predictions are from a reference's: a merge that looks fine can be quietly degraded. Everything runs here, offline."),
    h("div", { class: "yaml" }, h("label", { for: "eval-text" }, "Text to score"), text),
    h("div", { class: "row" }, builtin, pick, fileInput),
    source,
    h("div", { class: "row" },
      h("label", { for: "eval-context" }, "Context (tokens per window)"), context, contextError,
      h("label", { for: "eval-max-tokens" }, "Tokens at most"), maxTokens, maxTokensError),
    h("div", { class: "table-scroll", "data-scroll": "" }, candidatesTable), noCandidates,
    h("div", { class: "row" }, run, cancel, progress),
    blocked, status, announce, error, panel.warnings, results,
    promptBox);
}

function showFieldProblem(input: HTMLInputElement, el: HTMLElement, problem: string): void {
  if (el.textContent !== problem) el.textContent = problem;
  el.hidden = !problem;
  input.setAttribute("aria-invalid", String(!!problem));
}

function candidateRow(c: EvalCandidate, s: PageState, actions: EvalActions, boxes: Map<string, { score: HTMLInputElement; against: HTMLInputElement }>): HTMLTableRowElement {
  const score = h("input", { type: "checkbox", "data-testid": "eval-score", "aria-label": `Evaluate ${c.label}` });
  const against = h("input", { type: "checkbox", "data-testid": "eval-against", "aria-label": `Compare with ${c.label}` });
  score.addEventListener("change", () => actions.pick(c.id, { score: score.checked }));
  against.addEventListener("change", () => actions.pick(c.id, { against: against.checked }));
  boxes.set(c.id, { score, against });
  const parentOfMerge = c.kind === "model" && s.merged?.parents.includes(c.label);
  const note = c.kind === "merged" ? `the merge's output, read back from ${s.merged?.target === "folder" ? "the folder it was saved in" : "browser storage"}`
    : c.kind === "recipe" ? "the recipe above, merged layer by layer in memory, not saved"
      : parentOfMerge ? "a model the merge was made from" : "";
  return h("tr", { "data-testid": "eval-candidate", "data-id": c.id, "data-label": c.label },
    h("th", { scope: "row" }, c.label, note ? h("span", { class: "note" }, note) : null),
    h("td", {}, score), h("td", {}, against));
}

function resultsTable(r: EvalResults): DocumentFragment {
  const fragment = document.createDocumentFragment();
  const head = h("tr", {},
    h("th", { scope: "col" }, "Model"), h("th", { scope: "col", class: "num" }, "Perplexity"), h("th", { scope: "col", class: "num" }, "Bits per byte"),
    h("th", { scope: "col", class: "num" }, "Tokens"),
    ...r.against.map((a) => h("th", { scope: "col", class: "num" }, `KL(${a} ‖ model)`)));
  const body = r.rows.map((row) => h("tr", { "data-testid": "eval-row", "data-model": row.model },
    h("th", { scope: "row" }, row.model),
    h("td", { class: "num", "data-testid": "eval-perplexity" }, formatPerplexity(row.perplexity)),
    h("td", { class: "num", "data-testid": "eval-bpb" }, formatBitsPerByte(row.bitsPerByte)),
    h("td", { class: "num", "data-testid": "eval-tokens" }, String(row.tokens)),
    ...r.against.map((a) => {
      const x = row.against.find((v) => v.model === a);
      return h("td", { class: "num", "data-testid": "eval-kl", "data-against": a },
        x ? formatKl(x.kl) : "–",
        x ? h("span", { class: "note", "data-testid": "eval-top1" }, `top-1 ${formatAgreement(x.top1Agreement)}`) : null);
    })));
  // Models with different tokenizers predict different numbers of tokens: a count only when they agree.
  const counts = new Set(r.rows.map((row) => row.predicted));
  const predicted = counts.size === 1 ? ` ${[...counts][0]}` : "";
  fragment.append(
    h("div", { class: "table-scroll", "data-scroll": "" },
      h("table", { class: "params results-table", "data-testid": "eval-results-table" },
        h("caption", {}, "Results"),
        h("thead", {}, head), h("tbody", {}, ...body))),
    h("p", { class: "hint" },
      `Perplexity is exp of the mean negative log-likelihood of the${predicted} predicted tokens (every token of a ${r.context}-token window but its first); ` +
      "bits per byte divides the summed log-likelihood by the text's UTF-8 bytes. " +
      (r.against.length ? "KL(P ‖ model) is how far a model's next-token distribution is from P's, in nats per token (0 for P itself); top-1 is how often both rank the same token first." : "Tick “Compare with” for a reference to see how far each model's predictions moved from it (KL divergence).")));
  return fragment;
}
