/**
 * @file Section 8, Greedy soup: Wortsman et al.'s greedy soup of the ticked loaded models, with held-out
 * NLL in place of accuracy, by the library's greedySoup(): each ingredient scored alone, the greedy
 * trajectory (which candidate joined, the soup's NLL with it), the uniform soup of all for comparison,
 * and the chart `weightsoup soup --greedy --svg` writes. The soup can then be saved where merges are
 * saved. Each number cell carries its exact value in `data-value`.
 */
import { lineChartSvg } from "../../src/chart/svg";
import { soupChart } from "../../src/measure/charts";
import type { Store } from "../state";
import { h, replace } from "../ui/dom";
import { formatNll, formatPerplexity } from "../ui/eval-format";
import { soupModels, whySoupBlocked, whySoupSaveBlocked, type SoupForm, type SoupRun } from "../ui/run-soup";
import { overwriteOffer, type OverwriteActions } from "./overwrite-view";
import { renderProblems } from "./problems";
import { runControls } from "./run-controls";

export interface SoupActions {
  form(patch: Partial<SoupForm>): void;
  run(): void;
  cancel(): void;
  save(): void;
  /** Stops the save under way; nothing it wrote is left. */
  cancelSave(): void;
  /** The way out when the save's folder holds files (the merge's). */
  overwrite: OverwriteActions;
}

export function soupView(store: Store, actions: SoupActions): HTMLElement {
  const ingredients = h("fieldset", { class: "row", "data-testid": "soup-ingredients" });
  const text = h("textarea", { id: "soup-text", "data-testid": "soup-text", rows: 4, spellcheck: "false", "aria-describedby": "soup-text-hint" });
  text.addEventListener("input", () => actions.form({ text: text.value }));
  const greedy = h("input", { id: "soup-greedy", "data-testid": "soup-greedy", type: "checkbox" });
  greedy.addEventListener("change", () => actions.form({ greedy: greedy.checked }));

  const panel = runControls("soup", { run: "Make the soup", progress: "Soup progress" }, actions);
  const { run, cancel, blocked, progress, status, announce, error } = panel;
  const results = h("div", { "data-testid": "soup-results", hidden: true });

  const outputName = h("input", { id: "soup-output-name", "data-testid": "soup-output-name", type: "text", spellcheck: "false" });
  outputName.addEventListener("input", () => actions.form({ outputName: outputName.value }));
  const save = h("button", { type: "button", "data-testid": "soup-save", "aria-describedby": "soup-save-blocked" }, "Save the soup");
  save.addEventListener("click", () => actions.save());
  const cancelSave = h("button", { type: "button", "data-testid": "soup-save-cancel", disabled: true }, "Cancel");
  cancelSave.addEventListener("click", () => actions.cancelSave());
  const saveBlocked = h("p", { class: "blocked", id: "soup-save-blocked", "data-testid": "soup-save-blocked", hidden: true });
  const saveStatus = h("p", { class: "status", role: "status", "data-testid": "soup-save-status" });
  const saveError = h("div", { class: "problem-box", "data-testid": "soup-save-error", role: "alert", hidden: true });
  const saving = h("div", { "data-testid": "soup-saving", hidden: true },
    h("div", { class: "row" }, h("label", { for: "soup-output-name" }, "Save as"), outputName, save, cancelSave,
      h("span", { class: "hint" }, "Written where merges are saved (section 3's choice), as `weightsoup soup --out` writes it.")),
    saveBlocked, saveStatus, saveError);

  let shownModels = "";
  store.watch(["models", "soupForm"], (s) => {
    const names = soupModels(s);
    if (names.join("\n") !== shownModels) {
      shownModels = names.join("\n");
      replace(ingredients, h("legend", {}, "Ingredients"), ...names.map((name) => {
        const box = h("input", { type: "checkbox", "data-testid": "soup-ingredient", value: name });
        box.addEventListener("change", () => {
          const unticked = new Set(store.state.soupForm.unticked);
          if (box.checked) unticked.delete(name);
          else unticked.add(name);
          actions.form({ unticked });
        });
        return h("label", {}, box, ` ${name}`);
      }));
    }
    for (const box of ingredients.querySelectorAll<HTMLInputElement>("input[type=checkbox]")) box.checked = !s.soupForm.unticked.has(box.value);
    if (text.value !== s.soupForm.text && !text.matches(":focus")) text.value = s.soupForm.text;
    greedy.checked = s.soupForm.greedy;
    if (outputName.value !== s.soupForm.outputName && !outputName.matches(":focus")) outputName.value = s.soupForm.outputName;
  });

  store.watch(["platformProblems", "models", "soupForm", "evalForm", "soup"], (s) => {
    const why = whySoupBlocked(s);
    panel.gate(why, s.soup.run === "running" || s.soup.save === "running", s.soup.run === "running");
    const whySave = whySoupSaveBlocked(s);
    save.disabled = whySave !== "" || s.soup.save === "running";
    cancelSave.disabled = s.soup.save !== "running";
    if (saveBlocked.textContent !== whySave) saveBlocked.textContent = whySave;
    saveBlocked.hidden = whySave === "" || !s.soup.result;
  });

  let shown: Pick<SoupRun, "result" | "saveProblems" | "saveOverwrite"> = { result: null, saveProblems: [], saveOverwrite: null };
  store.watch(["soup"], (s) => {
    const p = s.soup;
    panel.show(p);
    if (saveStatus.textContent !== p.saveStatus) saveStatus.textContent = p.saveStatus;
    if (shown.saveProblems !== p.saveProblems || shown.saveOverwrite !== p.saveOverwrite) {
      const way = p.saveOverwrite && overwriteOffer(p.saveOverwrite, "soup-", { whose: "the soup's", confirm: "Overwrite and save" }, actions.overwrite);
      replace(saveError, ...(p.saveProblems.length ? [renderProblems(p.saveProblems)] : []), way);
      saveError.hidden = p.saveProblems.length === 0 && !way;
    }
    if (shown.result !== p.result) {
      replace(results, p.result ? soupResults(p.result) : null);
      results.hidden = p.result === null;
    }
    saving.hidden = p.result === null || p.run !== "done";
    shown = { result: p.result, saveProblems: p.saveProblems, saveOverwrite: p.saveOverwrite };
  });

  return h("section", { "aria-labelledby": "h-soup" },
    h("h2", { id: "h-soup" }, "8. Greedy soup"),
    h("p", { class: "hint" }, "A model soup (Wortsman et al. 2022): the ingredients are scored alone on a held-out text and sorted best first; the soup starts as the best one, and each next one joins the average only if the soup's loss with it is not worse. The uniform average of all is measured for comparison."),
    ingredients,
    h("label", { for: "soup-text" }, "Held-out text"), text,
    h("p", { class: "hint", id: "soup-text-hint" }, "The text chooses the soup, so judge the soup on another text (in the Evaluate panel). Empty: the built-in text. Window and token limit are the Evaluate panel's."),
    h("div", { class: "row" }, h("label", {}, greedy, " Greedy (otherwise the soup is the uniform average of all)")),
    h("div", { class: "row" }, run, cancel, progress),
    blocked, status, announce, error, results, saving);
}

const num = (x: number, shown: string, testId: string) => h("td", { class: "num", "data-testid": testId, "data-value": String(x) }, shown);

function soupResults(r: NonNullable<SoupRun["result"]>): DocumentFragment {
  const fragment = document.createDocumentFragment();
  fragment.append(h("div", { class: "table-scroll", "data-scroll": "" },
    h("table", { class: "params results-table", "data-testid": "soup-ingredient-table" },
      h("caption", {}, "Ingredients alone, best first"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col", class: "num" }, "Rank"), h("th", { scope: "col" }, "Model"), h("th", { scope: "col", class: "num" }, "NLL"), h("th", { scope: "col", class: "num" }, "Perplexity"))),
      h("tbody", {}, ...r.ingredients.map((x, i) => h("tr", { "data-testid": "soup-ingredient-row", "data-model": x.model },
        h("td", { class: "num" }, String(i + 1)), h("th", { scope: "row" }, x.model),
        num(x.nll, formatNll(x.nll), "soup-ingredient-nll"), num(x.perplexity, formatPerplexity(x.perplexity), "soup-ingredient-perplexity")))))));
  if (r.trajectory.length) {
    const chart = soupChart(r);
    fragment.append(
      h("div", { class: "table-scroll", "data-scroll": "" },
        h("table", { class: "params results-table", "data-testid": "soup-trajectory" },
          h("caption", {}, `Greedy trajectory: start with ${r.ingredients[0]!.model}; a candidate is kept if the soup's NLL with it is not worse (≤)`),
          h("thead", {}, h("tr", {}, h("th", { scope: "col", class: "num" }, "Step"), h("th", { scope: "col" }, "Candidate"), h("th", { scope: "col", class: "num" }, "Soup NLL with it"), h("th", { scope: "col", class: "num" }, "Perplexity"), h("th", { scope: "col" }, "Kept"))),
          h("tbody", {}, ...r.trajectory.map((step, i) => h("tr", { "data-testid": "soup-step", "data-candidate": step.candidate, "data-kept": String(step.kept) },
            h("td", { class: "num" }, String(i + 1)), h("th", { scope: "row" }, step.candidate),
            num(step.nll, formatNll(step.nll), "soup-step-nll"), num(step.perplexity, formatPerplexity(step.perplexity), "soup-step-perplexity"),
            h("td", {}, step.kept ? "yes" : "no")))))),
      h("div", { class: "table-scroll", "data-scroll": "" }, h("img", {
        class: "heatmap", "data-testid": "soup-chart", src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(lineChartSvg(chart))}`,
        alt: `${chart.title}: the soup's NLL at each greedy step, and the uniform soup's; the tables list them.`,
      })));
  }
  fragment.append(h("div", { class: "table-scroll", "data-scroll": "" },
    h("table", { class: "params results-table", "data-testid": "soup-result" },
      h("caption", {}, `Result (${r.predicted} predicted tokens of ${r.tokens}${r.ownText ? "" : ", the built-in text"})`),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Soup"), h("th", { scope: "col" }, "Ingredients"), h("th", { scope: "col", class: "num" }, "NLL"), h("th", { scope: "col", class: "num" }, "Perplexity"))),
      h("tbody", {},
        h("tr", { "data-testid": "soup-final", "data-kept": JSON.stringify(r.kept) },
          h("th", { scope: "row" }, r.trajectory.length ? "greedy soup" : "soup"), h("td", {}, r.kept.join(", ")),
          num(r.nll, formatNll(r.nll), "soup-nll"), num(r.perplexity, formatPerplexity(r.perplexity), "soup-perplexity")),
        h("tr", { "data-testid": "soup-uniform" },
          h("th", { scope: "row" }, "uniform soup of all"), h("td", {}, String(r.ingredients.length)),
          num(r.uniform.nll, formatNll(r.uniform.nll), "soup-uniform-nll"), num(r.uniform.perplexity, formatPerplexity(r.uniform.perplexity), "soup-uniform-perplexity"))))));
  return fragment;
}
