/**
 * @file Section 5, Diagnose: where the recipe's task vectors agree and where they fight, measured by
 * the library's diagnose() on the loaded models without merging. Shows the plain-language summary, the
 * layer × tensor-kind sign-conflict heatmap (the very SVG `weightsoup diagnose --svg` writes, shown as
 * an image so its bytes are the CLI's and the page's style rules cannot touch it), and a per-layer
 * table formatted as the CLI prints it. Each number cell carries its exact value in `data-value`.
 */
import type { DiagnosisResult } from "../../src/api/diagnose";
import { heatmapSvg } from "../../src/chart/svg";
import { formatValue } from "../../src/chart/text";
import { conflictHeatmap, layerLabel, percent } from "../../src/diagnose/present";
import type { GroupStats } from "../../src/diagnose/statistics";
import type { PageState, Store } from "../state";
import { h, replace } from "../ui/dom";
import { whyDiagnoseBlocked } from "../ui/run-diagnose";
import { runControls } from "./run-controls";

export interface DiagnoseActions {
  run(): void;
  cancel(): void;
}

export function diagnoseView(store: Store, actions: DiagnoseActions): HTMLElement {
  const panel = runControls("diagnose", { run: "Diagnose", progress: "Diagnosis progress" }, actions);
  const { run, cancel, blocked, progress, status, announce, error } = panel;
  const results = h("div", { class: "diagnose-results", "data-testid": "diagnose-results", hidden: true });

  store.watch(["platformProblems", "models", "recipe", "check", "diagnosis"], (s) => {
    const why = whyDiagnoseBlocked(s);
    panel.gate(why, s.diagnosis.run === "running");
  });

  let shown: Pick<PageState["diagnosis"], "result"> = { result: null };
  store.watch(["diagnosis"], (s) => {
    const d = s.diagnosis;
    panel.show(d);
    if (shown.result !== d.result) {
      if (d.result) replace(results, diagnosisShown(d.result));
      else replace(results);
      results.hidden = d.result === null;
    }
    shown = { result: d.result };
  });

  return h("section", { "aria-labelledby": "h-diagnose" },
    h("h2", { id: "h-diagnose" }, "5. Diagnose"),
    h("p", { class: "hint" }, "Where the recipe's task vectors (each model minus the base) agree and where they fight: sign conflicts by layer and tensor, cosines, and what trimming and the sign vote remove. Measured on the models above without merging them."),
    h("div", { class: "row" }, run, cancel, progress),
    blocked, status, announce, error, results);
}

/** A statistic as `weightsoup diagnose` prints it ("n/a" for none), its exact value in data-value. */
function cell(x: number | null, shown: (v: number) => string, testId: string, extra: Record<string, string> = {}): HTMLTableCellElement {
  return h("td", { class: "num", "data-testid": testId, "data-value": x === null ? "null" : String(x), ...extra }, x === null ? "n/a" : shown(x));
}

const cosine = (x: number) => formatValue(x, 3);

function diagnosisShown(d: DiagnosisResult): DocumentFragment {
  const fragment = document.createDocumentFragment();
  const heatmap = conflictHeatmap(d);
  const svg = heatmapSvg(heatmap);
  const image = h("img", {
    class: "heatmap", "data-testid": "diagnose-heatmap", src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`,
    alt: `${heatmap.title}: conflicting mass by layer (rows) and tensor (columns); the table below lists it per layer.`,
  });
  const pairs = d.total.pairs;
  const head = h("tr", {},
    h("th", { scope: "col" }, "Layer"), h("th", { scope: "col", class: "num" }, "Conflict (coords)"), h("th", { scope: "col", class: "num" }, "Conflict (mass)"),
    ...d.models.map((m) => h("th", { scope: "col", class: "num" }, `‖τ‖/‖b‖ ${m}`)),
    ...pairs.map((p) => h("th", { scope: "col", class: "num" }, `cos ${p.a}/${p.b}`)));
  const row = (label: string, layer: string, g: GroupStats) => h("tr", { "data-testid": "diagnose-row", "data-layer": layer },
    h("th", { scope: "row" }, label),
    cell(g.conflict.coordinates, percent, "diagnose-conflict-coords"),
    cell(g.conflict.mass, percent, "diagnose-conflict-mass"),
    ...d.models.map((m) => cell(g.tasks.find((t) => t.model === m)?.baseRatio ?? null, percent, "diagnose-ratio", { "data-model": m })),
    ...pairs.map((p) => cell(g.pairs.find((q) => q.a === p.a && q.b === p.b)?.cosine ?? null, cosine, "diagnose-cosine", { "data-pair": `${p.a}/${p.b}` })));
  fragment.append(
    h("p", {}, `Method ${d.method}, base ${d.base}, task models ${d.models.join(", ")}.`),
    h("ul", { class: "summary", "data-testid": "diagnose-summary" }, ...d.summary.map((line) => h("li", { "data-testid": "diagnose-summary-line" }, line))),
    h("ul", { class: "warnings", hidden: d.warnings.length === 0 }, ...d.warnings.map((w) => h("li", { class: "warning", "data-testid": "diagnose-warning" }, w))),
    h("ul", { "data-testid": "diagnose-alignment", hidden: !d.alignment }, ...(d.alignment?.models ?? []).map((m) => h("li", {},
      `align: ${m.model} vs ${d.alignment!.reference}: task-vector cosine ${m.cosineBefore === null ? "n/a" : cosine(m.cosineBefore)} → ${m.cosineAfter === null ? "n/a" : cosine(m.cosineAfter)}`))),
    h("div", { class: "table-scroll", "data-scroll": "" }, image),
    h("div", { class: "table-scroll", "data-scroll": "" },
      h("table", { class: "params results-table", "data-testid": "diagnose-table" },
        h("caption", {}, "Per layer, and in total"),
        h("thead", {}, head),
        h("tbody", {}, ...d.layers.map((l) => row(layerLabel(l, d.decoder), layerLabel(l, d.decoder), l)), row("total", "total", d.total)))),
    h("p", { class: "hint" },
      "Conflict: among coordinates where two or more task vectors are non-zero after the method's trimming, the fraction where they disagree in sign (of the coordinates, and of their mass). " +
      "‖τ‖/‖b‖: a task vector's norm relative to the base weights'. cos: cosine similarity of two task vectors, before trimming. The same numbers as “weightsoup diagnose --json” gives."));
  return fragment;
}
