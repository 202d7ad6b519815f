/**
 * @file Section 7, Sweep: the recipe evaluated at every point of a grid of parameter values (rows of
 * KEY and SPEC, the grammar of `weightsoup sweep --vary KEY=SPEC`), without merging anything to disk.
 * The chart is the one `weightsoup sweep --svg` writes (sweepChart: NLL against the first key, a line
 * per value of the others), redrawn as each point is scored; once done it is that file, byte for byte
 * but for the recipe's name. The table lists each point's values, NLL, perplexity and KL to each model
 * compared with; each number cell carries its exact value in `data-value`.
 */
import type { SweepResult } from "../../src/api/sweep";
import { lineChartSvg } from "../../src/chart/svg";
import { sweepChart } from "../../src/sweep/present";
import type { PageState, Store } from "../state";
import { h, replace } from "../ui/dom";
import { formatKl, formatNll, formatPerplexity } from "../ui/eval-format";
import { sweepAgainst, varyProblem, whySweepBlocked, type ShownPoint, type SweepRun, type VaryRow } from "../ui/run-sweep";
import { runControls } from "./run-controls";

export interface SweepActions {
  vary(rows: readonly VaryRow[]): void;
  run(): void;
  cancel(): void;
  /** Puts the best point's recipe in the recipe editor (Merge then saves it). */
  useBest(): void;
}

interface RowControls {
  box: HTMLElement;
  key: HTMLInputElement;
  spec: HTMLInputElement;
  remove: HTMLButtonElement;
  error: HTMLElement;
}

export function sweepView(store: Store, actions: SweepActions): HTMLElement {
  const rowsBox = h("div", { "data-testid": "sweep-vary" });
  const controls: RowControls[] = [];
  const edit = (i: number, patch: Partial<VaryRow>) => actions.vary(store.state.sweepForm.vary.map((r, j) => (j === i ? { ...r, ...patch } : r)));
  const makeRow = (i: number): RowControls => {
    const key = h("input", { id: `sweep-key-${i}`, class: "sweep-key", "data-testid": "sweep-key", type: "text", autocomplete: "off", spellcheck: "false", placeholder: "models[1].parameters.weight", "aria-describedby": `sweep-vary-error-${i}` });
    const spec = h("input", { id: `sweep-spec-${i}`, "data-testid": "sweep-spec", type: "text", autocomplete: "off", spellcheck: "false", placeholder: "0:1:5 or 0.2,0.5,0.8", "aria-describedby": `sweep-vary-error-${i}` });
    const remove = h("button", { type: "button", "data-testid": "sweep-remove", "aria-label": `Remove key ${i + 1}` }, "Remove");
    const error = h("span", { class: "field-error", id: `sweep-vary-error-${i}`, "data-testid": "sweep-vary-error", hidden: true });
    key.addEventListener("input", () => edit(i, { key: key.value }));
    spec.addEventListener("input", () => edit(i, { spec: spec.value }));
    remove.addEventListener("click", () => actions.vary(store.state.sweepForm.vary.filter((_, j) => j !== i)));
    const box = h("div", { class: "row", "data-testid": "sweep-vary-row" },
      h("label", { for: `sweep-key-${i}` }, "Key"), key, h("label", { for: `sweep-spec-${i}` }, "Values"), spec, remove, error);
    return { box, key, spec, remove, error };
  };
  const add = h("button", { type: "button", "data-testid": "sweep-add" }, "Add a key");
  add.addEventListener("click", () => actions.vary([...store.state.sweepForm.vary, { key: "", spec: "" }]));
  const source = h("p", { class: "hint", "data-testid": "sweep-text-source" });

  const panel = runControls("sweep", { run: "Sweep", progress: "Sweep progress" }, actions);
  const { run, cancel, blocked, progress, status, announce, error } = panel;
  const chart = h("img", { class: "heatmap", "data-testid": "sweep-chart", alt: "", hidden: true });
  const results = h("div", { "data-testid": "sweep-results", hidden: true });

  store.watch(["sweepForm"], (s) => {
    const rows = s.sweepForm.vary;
    while (controls.length < rows.length) controls.push(makeRow(controls.length));
    controls.forEach((c, i) => {
      const row = rows[i];
      if (!row) return c.box.remove();
      if (c.box.parentNode !== rowsBox) rowsBox.append(c.box);
      if (c.key.value !== row.key && !c.key.matches(":focus")) c.key.value = row.key;
      if (c.spec.value !== row.spec && !c.spec.matches(":focus")) c.spec.value = row.spec;
      c.remove.disabled = rows.length === 1;
      const problem = varyProblem(row);
      if (c.error.textContent !== problem) c.error.textContent = problem;
      c.error.hidden = !problem;
      c.key.setAttribute("aria-invalid", String(!!problem));
      c.spec.setAttribute("aria-invalid", String(!!problem));
    });
  });

  store.watch(["evalForm", "models", "merged", "recipe", "check", "evalPicks"], (s) => {
    const against = sweepAgainst(s).map((c) => c.label);
    const text = s.evalForm.text.trim() === "" ? "The text is the Evaluate panel's; it is empty, so the built-in text is used." : "The text, window and token limit are the Evaluate panel's.";
    const compared = against.length ? ` Every point is compared with ${against.join(", ")} (the Evaluate panel's “Compare with” ticks).` : " Tick “Compare with” in the Evaluate panel to compare every point with a model (KL divergence).";
    if (source.textContent !== text + compared) source.textContent = text + compared;
  });

  store.watch(["platformProblems", "models", "recipe", "check", "sweepForm", "evalForm", "sweep"], (s) => {
    const why = whySweepBlocked(s);
    panel.gate(why, s.sweep.run === "running");
  });

  let shown: Pick<SweepRun, "points" | "result"> = { points: [], result: null };
  store.watch(["sweep"], (s) => {
    const p = s.sweep;
    panel.show(p);
    if (shown.points !== p.points || shown.result !== p.result) {
      const count = p.result?.points.length ?? p.points.length;
      chart.hidden = count === 0;
      if (count) {
        chart.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(chartSvg(p))}`;
        chart.alt = `Mean NLL at ${count} of ${p.total} point${p.total === 1 ? "" : "s"} against ${p.keys[0]}; the table below lists them.`;
        chart.dataset.points = String(count);
      } else {
        chart.removeAttribute("src");
        delete chart.dataset.points;
      }
      replace(results, count ? sweepResults(p, actions) : null);
      results.hidden = count === 0;
    }
    shown = { points: p.points, result: p.result };
  });

  return h("section", { "aria-labelledby": "h-sweep" },
    h("h2", { id: "h-sweep" }, "7. Sweep"),
    h("p", { class: "hint" }, "The recipe above evaluated at every combination of the values you give its parameters, each point merged in memory (nothing is saved): which weight, density or t gives the lowest loss. A key addresses one number of the recipe, e.g. parameters.t, models[1].parameters.weight or parameters.t[2] (a gradient's third anchor); values are a list 0.2,0.5,0.8 or a range START:STOP:COUNT (both ends included)."),
    rowsBox,
    h("div", { class: "row" }, add),
    source,
    h("div", { class: "row" }, run, cancel, progress),
    blocked, status, announce, error, panel.warnings,
    h("div", { class: "table-scroll", "data-scroll": "" }, chart), results);
}

/**
 * The chart of the points so far: `weightsoup sweep`'s chart (sweepChart) of a sweep made of them
 * (the recipe named "recipe", as sweep() names recipe text); once done, of the sweep itself.
 */
function chartSvg(p: SweepRun): string {
  if (p.result) return lineChartSvg(sweepChart(p.result));
  let best = 0;
  p.points.forEach((x, i) => { if (x.nll < p.points[best]!.nll) best = i; });
  const partial: SweepResult = {
    recipe: "recipe", keys: [...p.keys], best, tokens: 0, predicted: 0, tensorsComputed: 0, tensorsShared: 0, pointsPerPass: 0, layerRuns: 0, seconds: 0,
    points: p.points.map((x) => ({ values: x.values, nll: x.nll, perplexity: x.perplexity, bitsPerByte: null, recipe: "", against: x.against.map((a) => ({ ...a, top1Agreement: 0 })) })),
  };
  return lineChartSvg(sweepChart(partial));
}

const num = (x: number, shown: string, testId: string, extra: Record<string, string> = {}) =>
  h("td", { class: "num", "data-testid": testId, "data-value": String(x), ...extra }, shown);

function sweepResults(p: SweepRun, actions: SweepActions): DocumentFragment {
  const fragment = document.createDocumentFragment();
  const r = p.result;
  const rows: ShownPoint[] = r ? r.points.map((x, index) => ({ index, ...x })) : [...p.points];
  const against = rows[0]?.against.map((a) => a.model) ?? [];
  if (r) {
    const best = r.points[r.best]!;
    const use = h("button", { type: "button", "data-testid": "sweep-use-best" }, "Use the best point's recipe");
    use.addEventListener("click", () => actions.useBest());
    fragment.append(
      h("p", { "data-testid": "sweep-best", "data-index": String(r.best) },
        `Lowest NLL ${formatNll(best.nll)} (perplexity ${formatPerplexity(best.perplexity)}) at ${r.keys.map((k) => `${k} = ${best.values[k]}`).join(", ")}. ` +
        `${r.predicted} predicted tokens of ${r.tokens} per point; merged tensors: ${r.tensorsComputed} computed, ${r.tensorsShared} uses shared between points.`),
      h("div", { class: "row" }, use,
        h("span", { class: "hint" }, "puts that point's recipe in the recipe editor above; Merge then saves it.")));
  }
  fragment.append(h("div", { class: "table-scroll", "data-scroll": "" },
    h("table", { class: "params results-table", "data-testid": "sweep-table" },
      h("caption", {}, r ? "Points" : `Points (${rows.length} of ${p.total})`),
      h("thead", {}, h("tr", {},
        ...p.keys.map((k) => h("th", { scope: "col", class: "num" }, k)),
        h("th", { scope: "col", class: "num" }, "NLL"), h("th", { scope: "col", class: "num" }, "Perplexity"),
        ...against.map((m) => h("th", { scope: "col", class: "num" }, `KL(${m} ‖ point)`)))),
      h("tbody", {}, ...rows.map((x) => h("tr", { "data-testid": "sweep-row", "data-index": String(x.index), ...(r && x.index === r.best ? { class: "best", "data-best": "" } : {}) },
        ...p.keys.map((k) => num(x.values[k]!, String(x.values[k]), "sweep-value", { "data-key": k })),
        num(x.nll, formatNll(x.nll), "sweep-nll"), num(x.perplexity, formatPerplexity(x.perplexity), "sweep-perplexity"),
        ...x.against.map((a) => num(a.kl, formatKl(a.kl), "sweep-kl", { "data-against": a.model }))))))));
  fragment.append(h("p", { class: "hint" },
    "NLL is the mean negative log-likelihood per predicted token (nats), perplexity its exp; KL(P ‖ point) is how far the point's next-token distribution is from P's, in nats per token. The same numbers as “weightsoup sweep --json” gives."));
  return fragment;
}
