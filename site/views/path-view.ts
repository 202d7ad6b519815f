/**
 * @file Section 6, Loss path: the loss (mean NLL) from A to B, each any of the Evaluate panel's
 * candidates (a loaded model, the merge's output, the recipe merged in memory), along the straight line
 * and optionally SLERP, and again after aligning B to A, on the Evaluate panel's text, with each curve's
 * barrier (Git Re-Basin's: the largest loss on the path minus the mean of the endpoint losses). The
 * chart is the chart module's line chart, the one `weightsoup path --svg` writes, redrawn as each point
 * completes; once done it is that file, byte for byte. Each number cell carries its exact value in
 * `data-value`.
 */
import { lineChartSvg } from "../../src/chart/svg";
import { BARRIER_DEFINITION, pathChart, pathCurves } from "../../src/measure/charts";
import type { Store } from "../state";
import { h, replace } from "../ui/dom";
import { formatNll, formatPerplexity } from "../ui/eval-format";
import { partialResult, pathEndpoints, pointsProblem, whyPathBlocked, type PathForm, type PathRun } from "../ui/run-path";
import { runControls } from "./run-controls";

export interface PathActions {
  form(patch: Partial<PathForm>): void;
  run(): void;
  cancel(): void;
}

export function pathView(store: Store, actions: PathActions): HTMLElement {
  const selectA = h("select", { id: "path-a", "data-testid": "path-a" });
  const selectB = h("select", { id: "path-b", "data-testid": "path-b" });
  selectA.addEventListener("change", () => actions.form({ a: selectA.value }));
  selectB.addEventListener("change", () => actions.form({ b: selectB.value }));
  const points = h("input", { id: "path-points", "data-testid": "path-points", type: "number", min: 2, max: 101, step: 1, inputmode: "numeric", "aria-describedby": "path-points-error" });
  points.addEventListener("input", () => actions.form({ points: points.value }));
  const pointsError = h("span", { class: "field-error", id: "path-points-error", "data-testid": "path-points-error", hidden: true });
  const textSource = h("p", { class: "hint", "data-testid": "path-text-source" });
  const slerp = h("input", { id: "path-slerp", "data-testid": "path-slerp", type: "checkbox" });
  slerp.addEventListener("change", () => actions.form({ slerp: slerp.checked }));
  const align = h("input", { id: "path-align", "data-testid": "path-align", type: "checkbox" });
  align.addEventListener("change", () => actions.form({ align: align.checked }));

  const panel = runControls("path", { run: "Measure the path", progress: "Loss path progress" }, actions);
  const { run, cancel, blocked, progress, status, announce, error } = panel;
  const chart = h("img", { class: "heatmap", "data-testid": "path-chart", alt: "", hidden: true });
  const results = h("div", { "data-testid": "path-results", hidden: true });

  let shownEnds = "";
  store.watch(["models", "merged", "recipe", "check", "chosen", "pathForm"], (s) => {
    const ends = pathEndpoints(s);
    const ids = ends.map((c) => c.id);
    const key = ends.map((c) => `${c.id}\t${c.label}`).join("\n");
    if (key !== shownEnds) {
      shownEnds = key;
      for (const select of [selectA, selectB]) replace(select, ...ends.map((c) => h("option", { value: c.id }, c.label)));
    }
    // An end that went (or none chosen yet): two loaded models, a base-like one as A.
    const { a, b } = s.pathForm;
    if (ids.length >= 2 && (!ids.includes(a) || !ids.includes(b))) {
      const models = ends.filter((c) => c.kind === "model").map((c) => c.id);
      const pool = models.length >= 2 ? models : ids;
      const first = ids.includes(a) ? a : pool.find((id) => /base/i.test(id)) ?? pool[0]!;
      actions.form({ a: first, b: ids.includes(b) && b !== first ? b : pool.find((id) => id !== first)! });
      return;
    }
    if (selectA.value !== a) selectA.value = a;
    if (selectB.value !== b) selectB.value = b;
    slerp.checked = s.pathForm.slerp;
    align.checked = s.pathForm.align;
    if (points.value !== s.pathForm.points && !points.matches(":focus")) points.value = s.pathForm.points;
    const problem = pointsProblem(s.pathForm.points);
    if (pointsError.textContent !== problem) pointsError.textContent = problem;
    pointsError.hidden = !problem;
    points.setAttribute("aria-invalid", String(!!problem));
  });

  store.watch(["evalForm"], (s) => {
    const t = s.evalForm.text.trim() === "" ? "The text is the Evaluate panel's; it is empty, so the built-in text is used." : "The text, window and token limit are the Evaluate panel's.";
    if (textSource.textContent !== t) textSource.textContent = t;
  });

  store.watch(["platformProblems", "models", "merged", "recipe", "check", "chosen", "pathForm", "evalForm", "path"], (s) => {
    const why = whyPathBlocked(s);
    panel.gate(why, s.path.run === "running");
  });

  let shown: Pick<PathRun, "curves" | "result" | "alignedOn"> = { curves: [], result: null, alignedOn: null };
  store.watch(["path"], (s) => {
    const p = s.path;
    panel.show(p);
    if (shown.curves !== p.curves || shown.result !== p.result || shown.alignedOn !== p.alignedOn) {
      const count = p.curves.reduce((n, c) => n + c.points.length, 0);
      chart.hidden = count === 0;
      if (count) {
        // Once done, the chart of lossPath()'s result: `weightsoup path --svg`'s file.
        chart.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(lineChartSvg(pathChart(p.result ?? partialResult(p.curves))))}`;
        chart.alt = `Mean NLL at ${count} point${count === 1 ? "" : "s"} from A (λ = 0) to B (λ = 1), ${p.curves.map((c) => c.label).join(", ")}; the table below lists them.`;
        chart.dataset.points = String(count);
      } else chart.removeAttribute("src");
      replace(results, count ? pathResults(p) : null);
      results.hidden = count === 0;
    }
    shown = { curves: p.curves, result: p.result, alignedOn: p.alignedOn };
  });

  return h("section", { "aria-labelledby": "h-path" },
    h("h2", { id: "h-path" }, "6. Loss path"),
    h("p", { class: "hint" }, "The loss at evenly spaced points on the straight line from A (λ = 0) to B (λ = 1), each point the merge (1 − λ)·A + λ·B evaluated in memory. A and B are loaded models, the merge's output or the recipe (merged in memory first). A bump in the middle (a barrier) means averaging the two loses what each knows."),
    h("div", { class: "row" },
      h("label", { for: "path-a" }, "A"), selectA, h("label", { for: "path-b" }, "B"), selectB,
      h("label", { for: "path-points" }, "Points"), points, pointsError),
    h("div", { class: "row" },
      h("label", {}, slerp, " Also along SLERP (mergekit's slerp, t = λ, A as the base)"),
      h("label", {}, align, " Also after aligning B to A (weight matching)")),
    textSource,
    h("div", { class: "row" }, run, cancel, progress),
    blocked, status, announce, error,
    h("div", { class: "table-scroll", "data-scroll": "" }, chart), results);
}

const num = (x: number, shown: string, testId: string, curve?: string) => h("td", { class: "num", "data-testid": testId, "data-value": String(x), ...(curve ? { "data-curve": curve } : {}) }, shown);

function pathResults(p: PathRun): DocumentFragment {
  const fragment = document.createDocumentFragment();
  const r = p.result;
  if (r) {
    fragment.append(
      h("p", { "data-testid": "path-summary" }, `${r.predicted} predicted tokens of ${r.tokens} per point.${r.aligned ? ` Aligned: B permuted onto A by weight matching in ${r.aligned.sweeps} sweeps.` : ""}`),
      h("div", { class: "table-scroll", "data-scroll": "" },
        h("table", { class: "params results-table", "data-testid": "path-barriers" },
          h("caption", {}, "Barriers"),
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Path"), h("th", { scope: "col", class: "num" }, "Barrier (nats)"), h("th", { scope: "col", class: "num" }, "Worst λ"), h("th", { scope: "col", class: "num" }, "Gap (nats)"))),
          h("tbody", {}, ...pathCurves(r).map(({ label, curve }) => h("tr", { "data-testid": "path-barrier", "data-curve": label },
            h("th", { scope: "row" }, label),
            num(curve.barrier, formatNll(curve.barrier), "path-barrier-value"), num(curve.worstLambda, curve.worstLambda.toFixed(2), "path-worst"), num(curve.gap, formatNll(curve.gap), "path-gap")))))),
      h("p", { class: "hint" }, `${BARRIER_DEFINITION}.`));
  }
  const on = p.alignedOn;
  if (on) {
    fragment.append(h("p", { class: "hint", "data-testid": "path-aligned", "data-workers": String(on.workers), "data-assignments": String(on.assignments) },
      `B was aligned to A on ${on.workers} worker${on.workers === 1 ? "" : "s"}, which solved all ${on.assignments} assignments (the page's main thread only ordered the work).`));
  }
  const lambdas = p.curves[0]?.points.map((x) => x.lambda) ?? [];
  fragment.append(h("div", { class: "table-scroll", "data-scroll": "" },
    h("table", { class: "params results-table", "data-testid": "path-table" },
      h("caption", {}, "Points"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col", class: "num" }, "λ"),
        ...p.curves.flatMap((c) => [h("th", { scope: "col", class: "num" }, `${c.label} NLL`), h("th", { scope: "col", class: "num" }, `${c.label} perplexity`)]))),
      h("tbody", {}, ...lambdas.map((lambda, i) => h("tr", { "data-testid": "path-row" },
        num(lambda, lambda.toFixed(2), "path-lambda"),
        ...p.curves.flatMap((c) => {
          const x = c.points[i];
          return x ? [num(x.nll, formatNll(x.nll), "path-nll", c.label), num(x.perplexity, formatPerplexity(x.perplexity), "path-perplexity", c.label)] : [h("td", {}), h("td", {})];
        })))))));
  return fragment;
}
