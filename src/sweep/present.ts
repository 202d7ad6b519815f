/**
 * @file A sweep's results as a chart (NLL against the first varied key; with more keys, one series per
 * combination of the others' values), CSV rows and an HTML report: shared by the CLI and any page.
 */
import type { LineChartSpec, ReportSpec } from "../chart/spec";
import type { SweepResult } from "../api/sweep";

/** NLL against the first key; one series per combination of the other keys' values. */
export function sweepChart(r: SweepResult): LineChartSpec {
  const [x, ...rest] = r.keys;
  const series = new Map<string, [number, number][]>();
  for (const p of r.points) {
    const name = rest.length === 0 ? "NLL" : rest.map((k) => `${k}=${p.values[k]}`).join(", ");
    const points = series.get(name) ?? [];
    points.push([p.values[x!]!, p.nll]);
    series.set(name, points);
  }
  const best = r.points[r.best]!;
  return {
    title: `${r.recipe}: NLL over ${r.keys.join(" × ")}`, xLabel: x!, yLabel: "NLL (nats/token)",
    series: [...series].map(([name, points]) => ({ name, points })),
    markers: [{ x: best.values[x!]!, label: "best" }],
  };
}

/** Column names and rows: the keys' values, NLL, perplexity, then KL and top-1 agreement per against model. */
export function sweepTable(r: SweepResult): { columns: string[]; rows: (string | number)[][] } {
  const against = r.points[0]?.against.map((a) => a.model) ?? [];
  return {
    columns: [...r.keys, "nll", "perplexity", ...against.flatMap((m) => [`kl ${m}`, `top1 ${m}`])],
    rows: r.points.map((p) => [...r.keys.map((k) => p.values[k]!), p.nll, p.perplexity, ...p.against.flatMap((a) => [a.kl, a.top1Agreement])]),
  };
}

/** RFC 4180 CSV of sweepTable (numbers written in full, so they read back exactly). */
export function sweepCsv(r: SweepResult): string {
  const { columns, rows } = sweepTable(r);
  const cell = (v: string | number) => (typeof v === "number" ? String(v) : /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  return [columns, ...rows].map((row) => row.map(cell).join(",")).join("\r\n") + "\r\n";
}

export function sweepReport(r: SweepResult, svg: string): ReportSpec {
  const best = r.points[r.best]!;
  return {
    title: `Sweep of ${r.recipe}`,
    sections: [
      { heading: "Summary", text: `${r.points.length} points over ${r.keys.join(" × ")}, ${r.predicted} predicted tokens each. Lowest NLL ${best.nll.toFixed(4)} (perplexity ${best.perplexity.toFixed(3)}) at ${r.keys.map((k) => `${k} = ${best.values[k]}`).join(", ")}.` },
      { heading: "NLL", svg },
      { heading: "Points", table: sweepTable(r) },
    ],
  };
}
