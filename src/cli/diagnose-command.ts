/**
 * @file `weightsoup diagnose RECIPE`: interference diagnostics of a recipe's inputs (nothing merged or
 * written but the files asked for): a summary, a per-layer table and a terminal chart on stdout, or
 * JSON; the layer × tensor heatmap as SVG and an HTML report on request.
 */
import { diagnose } from "../node";
import type { DiagnoseEvent } from "../api/diagnose";
import { htmlReport } from "../chart/report";
import { heatmapSvg } from "../chart/svg";
import { formatValue } from "../chart/text";
import { lineChartText } from "../chart/terminal";
import { conflictHeatmap, diagnosisReport, layerColumns, percent, type LayerColumn } from "../diagnose/present";
import { args, defined, integer, size, type Io } from "./args";
import { checkFileTargets, writeFileAtomically } from "./write-file";
import { interruptible } from "./interrupt";
import { printWarning } from "./progress";


export async function diagnoseCommand(argv: string[], io: Io): Promise<number> {
  const parsed = args("diagnose", argv, {
    json: { type: "boolean" }, svg: { type: "string" }, report: { type: "string" }, seed: { type: "string" }, workers: { type: "string" },
    "memory-budget": { type: "string" }, "chunk-size": { type: "string" }, quiet: { type: "boolean" },
  }, [1, 1], io);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  const numeric = defined({
    seed: integer(values.seed, "seed", "seed"),
    workers: integer(values.workers, "workers", "workers"),
    memoryBudget: size(values["memory-budget"], "memory-budget", "memoryBudget"),
    chunkBytes: size(values["chunk-size"], "chunk-size", "chunkBytes"),
  });
  await checkFileTargets([values.svg, values.report]);
  const interactive = io.stderr.isTTY === true && !values.quiet;
  const onProgress = (e: DiagnoseEvent) => {
    if (e.type === "tensor-done" && interactive) io.stderr.write(`\r\x1b[K${e.pass === "aligned" ? "aligned: " : ""}${e.tensorsDone}/${e.tensorsTotal} tensors`);
    if (e.type === "diagnose-done" && interactive) io.stderr.write(`\r\x1b[K`);
    if (e.type === "warning") printWarning(io.stderr, e.message, interactive);
  };
  const d = await interruptible((signal) => diagnose(positionals[0]!, { ...numeric, signal, onProgress }));
  if (values.svg) await writeFileAtomically(values.svg, heatmapSvg(conflictHeatmap(d)));
  if (values.report) await writeFileAtomically(values.report, htmlReport(diagnosisReport(d)));
  if (values.json) {
    io.stdout.write(JSON.stringify(d) + "\n");
    return 0;
  }
  const out: string[] = [`${d.recipe}: ${d.method}, base ${d.base}, task models ${d.models.join(", ")}`];
  out.push(...d.summary.map((s) => `  ${s}`));
  out.push(...d.warnings.map((w) => `  warning: ${w}`));
  if (d.alignment) {
    for (const m of d.alignment.models) {
      out.push(`  align: ${m.model} vs ${d.alignment.reference}: task-vector cosine ${show(m.cosineBefore)} -> ${show(m.cosineAfter)}, ‖τ‖ ${formatValue(m.normBefore)} -> ${formatValue(m.normAfter)}`);
    }
  }
  if (d.layers.length > 0) {
    const cols = layerColumns(d);
    const text = (c: LayerColumn, x: number | string | null | undefined) => (x === undefined ? "" : typeof x === "string" || c.kind === "layer" ? String(x) : c.kind === "fraction" ? pct(x) : show(x));
    const rows = d.layers.map((l) => cols.map((c) => text(c, c.cell(l))));
    out.push("", ...columns([cols.map((c) => c.label), ...rows]), "");
    out.push(lineChartText({
      title: "conflicting mass by layer", xLabel: "layer", yLabel: "fraction of kept task-vector mass",
      // One line per stack: a vision tower's layer 0 is not the decoder's.
      series: [...new Set(d.layers.map((l) => l.stack))].map((stack) => ({
        name: stack === d.decoder ? "conflict" : stack,
        points: d.layers.filter((l) => l.stack === stack).map((l) => [l.layer, l.conflict.mass ?? NaN] as [number, number]),
      })),
    }).trimEnd());
  }
  if (values.svg) out.push(`heatmap: ${values.svg}`);
  if (values.report) out.push(`report: ${values.report}`);
  io.stdout.write(out.join("\n") + "\n");
  return 0;
}

const show = (x: number | null) => (x === null ? "n/a" : formatValue(x, 3));
const pct = (x: number | null) => (x === null ? "n/a" : percent(x));

function columns(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  "));
}
