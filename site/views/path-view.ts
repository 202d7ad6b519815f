/**
 * @file Section 6, Loss path: the loss (mean NLL) along the straight line between two loaded models,
 * on the Evaluate panel's text, with the barrier (Git Re-Basin's: the largest loss on the path minus
 * the mean of the endpoint losses). The chart is the chart module's line chart, the one `weightsoup
 * path --svg` writes, redrawn as each point completes; once done it is that file, byte for byte.
 * Each number cell carries its exact value in `data-value`.
 */
import type { LossPoint } from "../../src/api/path";
import { lineChartSvg } from "../../src/chart/svg";
import { BARRIER_DEFINITION, pathChart } from "../../src/measure/charts";
import type { Store } from "../state";
import { h, replace } from "../ui/dom";
import { formatNll, formatPerplexity } from "../ui/eval-format";
import { pathModels, pointsProblem, whyPathBlocked, type PathForm, type PathRun } from "../ui/run-path";
import { renderProblems } from "./problems";

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

  const run = h("button", { type: "button", class: "primary", "data-testid": "path-run", "aria-describedby": "path-blocked" }, "Measure the path");
  run.addEventListener("click", () => actions.run());
  const cancel = h("button", { type: "button", "data-testid": "path-cancel", disabled: true }, "Cancel");
  cancel.addEventListener("click", () => actions.cancel());
  const blocked = h("p", { class: "blocked", id: "path-blocked", "data-testid": "path-blocked", hidden: true });
  const progress = h("progress", { "data-testid": "path-progress", max: 1, value: 0, "aria-label": "Loss path progress" });
  const status = h("p", { class: "status", "data-testid": "path-status" });
  const announce = h("p", { class: "visually-hidden", role: "status", "data-testid": "path-announce" });
  const error = h("div", { class: "problem-box", "data-testid": "path-error", role: "alert", hidden: true });
  const chart = h("img", { class: "heatmap", "data-testid": "path-chart", alt: "", hidden: true });
  const results = h("div", { "data-testid": "path-results", hidden: true });

  let shownModels = "";
  store.watch(["models", "pathForm"], (s) => {
    const names = pathModels(s);
    const key = names.join("\n");
    if (key !== shownModels) {
      shownModels = key;
      for (const select of [selectA, selectB]) replace(select, ...names.map((n) => h("option", { value: n }, n)));
    }
    // A model that went (or none chosen yet): the first two models, a base-like one as A.
    const { a, b } = s.pathForm;
    if (names.length >= 2 && (!names.includes(a) || !names.includes(b))) {
      const first = names.includes(a) ? a : names.find((n) => /base/i.test(n)) ?? names[0]!;
      actions.form({ a: first, b: names.includes(b) && b !== first ? b : names.find((n) => n !== first)! });
      return;
    }
    if (selectA.value !== a) selectA.value = a;
    if (selectB.value !== b) selectB.value = b;
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

  store.watch(["platformProblems", "models", "pathForm", "evalForm", "path"], (s) => {
    const why = whyPathBlocked(s);
    run.disabled = why !== "" || s.path.run === "running";
    cancel.disabled = s.path.run !== "running";
    if (blocked.textContent !== why) blocked.textContent = why;
    blocked.hidden = why === "";
  });

  let shown: Pick<PathRun, "problems" | "points" | "result"> = { problems: [], points: [], result: null };
  store.watch(["path"], (s) => {
    const p = s.path;
    progress.value = p.progress;
    if (status.textContent !== p.status) status.textContent = p.status;
    if (announce.textContent !== p.announcement) announce.textContent = p.announcement;
    if (shown.problems !== p.problems) {
      if (p.problems.length) replace(error, renderProblems(p.problems));
      else replace(error);
      error.hidden = p.problems.length === 0;
    }
    if (shown.points !== p.points) {
      chart.hidden = p.points.length === 0;
      if (p.points.length) {
        chart.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(chartSvg(p.points))}`;
        chart.alt = `Mean NLL at ${p.points.length} point${p.points.length === 1 ? "" : "s"} from A (λ = 0) to B (λ = 1); the table below lists them.`;
        chart.dataset.points = String(p.points.length);
      } else chart.removeAttribute("src");
    }
    if (shown.points !== p.points || shown.result !== p.result) {
      replace(results, p.points.length ? pathResults(p) : null);
      results.hidden = p.points.length === 0;
    }
    shown = { problems: p.problems, points: p.points, result: p.result };
  });

  return h("section", { "aria-labelledby": "h-path" },
    h("h2", { id: "h-path" }, "6. Loss path"),
    h("p", { class: "hint" }, "The loss at evenly spaced points on the straight line from model A (λ = 0) to model B (λ = 1), each point the merge (1 − λ)·A + λ·B evaluated in memory. A bump in the middle (a barrier) means averaging the two loses what each knows."),
    h("div", { class: "row" },
      h("label", { for: "path-a" }, "A"), selectA, h("label", { for: "path-b" }, "B"), selectB,
      h("label", { for: "path-points" }, "Points"), points, pointsError),
    textSource,
    h("div", { class: "row" }, run, cancel, progress),
    blocked, status, announce, error,
    h("div", { class: "table-scroll", "data-scroll": "" }, chart), results);
}

/** The chart of the points so far: `weightsoup path`'s chart (pathChart) of a curve made of them. */
function chartSvg(points: readonly LossPoint[]): string {
  return lineChartSvg(pathChart({ a: "A", b: "B", tokens: 0, predicted: 0, seconds: 0, points: [...points], barrier: 0, gap: 0, worstLambda: 0 }));
}

const num = (x: number, shown: string, testId: string) => h("td", { class: "num", "data-testid": testId, "data-value": String(x) }, shown);

function pathResults(p: PathRun): DocumentFragment {
  const fragment = document.createDocumentFragment();
  const r = p.result;
  if (r) {
    fragment.append(
      h("p", { "data-testid": "path-barrier", "data-value": String(r.barrier), "data-gap": String(r.gap), "data-worst": String(r.worstLambda) },
        `Barrier ${formatNll(r.barrier)} nats (worst at λ = ${r.worstLambda.toFixed(2)}); gap above the line joining the endpoints ${formatNll(r.gap)} nats. ${r.predicted} predicted tokens of ${r.tokens} per point.`),
      h("p", { class: "hint" }, `${BARRIER_DEFINITION}.`));
  }
  fragment.append(h("div", { class: "table-scroll", "data-scroll": "" },
    h("table", { class: "params results-table", "data-testid": "path-table" },
      h("caption", {}, "Points"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col", class: "num" }, "λ"), h("th", { scope: "col", class: "num" }, "NLL"), h("th", { scope: "col", class: "num" }, "Perplexity"))),
      h("tbody", {}, ...p.points.map((x) => h("tr", { "data-testid": "path-row" },
        num(x.lambda, x.lambda.toFixed(2), "path-lambda"), num(x.nll, formatNll(x.nll), "path-nll"), num(x.perplexity, formatPerplexity(x.perplexity), "path-perplexity")))))));
  return fragment;
}
