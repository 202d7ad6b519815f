/**
 * @file What `path` and `soup` draw and report, as chart-module specs: one description for the CLI's
 * SVG, terminal chart and HTML report (and, later, the page).
 */
import type { LineChartSpec, ReportSpec } from "../chart/spec";
import type { LossCurve, LossPathResult } from "../api/path";
import type { SoupResult } from "../api/soup";

export const BARRIER_DEFINITION = "barrier = the largest NLL on the path minus the mean of the two endpoint NLLs (Git Re-Basin, Ainsworth et al. 2022, Def. 2.2); gap = the largest rise above the straight line joining the endpoint NLLs";

/** Every measured curve of a path result with its label, in a fixed order. */
export function pathCurves(r: LossPathResult): { label: string; curve: LossCurve }[] {
  const out = [{ label: "linear", curve: r as LossCurve }];
  if (r.slerp) out.push({ label: "slerp", curve: r.slerp });
  if (r.aligned) {
    out.push({ label: "aligned linear", curve: r.aligned });
    if (r.aligned.slerp) out.push({ label: "aligned slerp", curve: r.aligned.slerp });
  }
  return out;
}

export function pathChart(r: LossPathResult): LineChartSpec {
  return {
    title: `Loss from A (λ = 0) to B (λ = 1)`,
    xLabel: "λ",
    yLabel: "mean NLL (nats/token)",
    series: pathCurves(r).map(({ label, curve }) => ({ name: label, points: curve.points.map((p) => [p.lambda, p.nll] as [number, number]) })),
  };
}

/** Rows of the points table: λ, then NLL and perplexity of each curve. */
export function pathTable(r: LossPathResult): { columns: string[]; rows: (string | number)[][] } {
  const curves = pathCurves(r);
  return {
    columns: ["λ", ...curves.flatMap(({ label }) => [`${label} NLL`, `${label} perplexity`])],
    rows: r.points.map((p, i) => [p.lambda, ...curves.flatMap(({ curve }) => [curve.points[i]!.nll, curve.points[i]!.perplexity])]),
  };
}

export function pathReport(r: LossPathResult, svg: string): ReportSpec {
  const barriers = pathCurves(r).map(({ label, curve }) => [label, curve.barrier, curve.gap, curve.worstLambda] as (string | number)[]);
  return {
    title: `Loss path: ${r.a} → ${r.b}`,
    sections: [
      { heading: "Models", text: `A = ${r.a}\nB = ${r.b}\nEach point is the merge (1 − λ)·A + λ·B (linear), or mergekit's slerp with t = λ and A as the base, evaluated in memory: ${r.predicted} predicted tokens of ${r.tokens}.${r.aligned ? `\nAligned: B permuted onto A by weight matching (${r.aligned.sweeps} sweeps) before merging.` : ""}` },
      { heading: "Loss along the path", svg },
      { heading: "Barriers", text: BARRIER_DEFINITION, table: { columns: ["path", "barrier", "gap", "worst λ"], rows: barriers } },
      { heading: "Points", table: pathTable(r) },
    ],
  };
}

/** Step 0 is the best ingredient alone; step i the soup tried with the i-th next ingredient. */
export function soupChart(r: SoupResult): LineChartSpec {
  let current = r.ingredients[0]!.nll;
  const running: [number, number][] = [[0, current]];
  const tried: [number, number][] = [[0, current]];
  r.trajectory.forEach((s, i) => {
    tried.push([i + 1, s.nll]);
    if (s.kept) current = s.nll;
    running.push([i + 1, current]);
  });
  const last = Math.max(1, r.trajectory.length);
  return {
    title: "Greedy soup: held-out loss",
    xLabel: "step (0: best ingredient alone; i: the i-th next ingredient tried)",
    yLabel: "mean NLL (nats/token)",
    series: [
      { name: "soup with the candidate", points: tried },
      { name: "soup so far", points: running },
      { name: "uniform soup of all", points: [[0, r.uniform.nll], [last, r.uniform.nll]] },
    ],
  };
}

export function soupReport(r: SoupResult, svg: string | undefined): ReportSpec {
  return {
    title: `Model soup of ${r.ingredients.length} ingredients`,
    sections: [
      { heading: "Ingredients (held-out NLL, best first)", table: { columns: ["rank", "model", "NLL", "perplexity"], rows: r.ingredients.map((x, i) => [i + 1, x.model, x.nll, x.perplexity]) } },
      ...(r.trajectory.length ? [{
        heading: "Greedy trajectory",
        text: "Each next ingredient joins the running uniform average only if the held-out NLL with it is not worse (≤).",
        table: { columns: ["step", "candidate", "soup NLL with it", "perplexity", "kept"], rows: r.trajectory.map((s, i) => [i + 1, s.candidate, s.nll, s.perplexity, s.kept ? "yes" : "no"]) },
      }] : []),
      ...(svg ? [{ heading: "Held-out loss by step", svg }] : []),
      { heading: "Result", table: { columns: ["soup", "ingredients", "NLL", "perplexity"], rows: [["soup", r.kept.join(", "), r.nll, r.perplexity], ["uniform soup of all", String(r.ingredients.length), r.uniform.nll, r.uniform.perplexity]] } },
      { heading: "Recipe", text: r.recipe.text },
    ],
  };
}
