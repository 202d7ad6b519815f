/**
 * @file `weightsoup sweep RECIPE --vary KEY=SPEC ...`: a recipe evaluated at every point of a grid of
 * parameter values (nothing written unless --write-best): a table and a terminal chart on stdout, or
 * JSON; CSV, SVG and an HTML report on request; the lowest-NLL point's merge written with --write-best.
 */
import { dirname, resolve } from "node:path";
import { DataError, UsageError } from "../errors";
import { resolveModel } from "../model/resolve";
import { merge, sweep } from "../node";
import { pathsOf, readRecipe } from "../node-merge";
import { NodeOutputFolder } from "../io/node-output";
import type { ModelFolder } from "../io/folder";
import { referencedModels } from "../plan/plan";
import { splitLoraReference } from "../lora/model-ref";
import { parseRecipe } from "../recipe/recipe";
import { htmlReport } from "../chart/report";
import { lineChartSvg } from "../chart/svg";
import { lineChartText } from "../chart/terminal";
import type { SweepEvent } from "../api/sweep";
import { sweepChart, sweepCsv, sweepReport, sweepTable } from "../sweep/present";
import { args, defined, type Io } from "./args";
import { commandHelp } from "./commands";
import { printWarning } from "./progress";
import { checkFileTargets, writeFileAtomically } from "./write-file";
import { evalInput } from "./eval-commands";
import { interruptible } from "./interrupt";

export async function sweepCommand(argv: string[], io: Io): Promise<number> {
  const parsed = args("sweep", argv, {
    vary: { type: "string", multiple: true }, text: { type: "string" }, ids: { type: "string" }, against: { type: "string", multiple: true },
    context: { type: "string" }, "max-tokens": { type: "string" }, workers: { type: "string" }, "memory-budget": { type: "string" },
    seed: { type: "string" }, json: { type: "boolean" }, csv: { type: "string" }, svg: { type: "string" }, report: { type: "string" },
    "write-best": { type: "string" }, force: { type: "boolean" }, quiet: { type: "boolean" },
  }, [1, 1], io);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  if (!values.vary?.length) throw new UsageError("E_USAGE", `sweep: give at least one --vary KEY=SPEC\n\n${commandHelp("sweep")}`);
  const options = await evalInput("sweep", values);
  await checkFileTargets([values.csv, values.svg, values.report]);
  const recipePath = positionals[0]!;
  const interactive = io.stderr.isTTY === true && !values.quiet;
  const onProgress = (e: SweepEvent) => {
    if (e.type === "warning") printWarning(io.stderr, e.message, interactive);
    if (!interactive) return;
    if (e.type === "sweep-layer") io.stderr.write(`\r\x1b[Kpoints ${e.points[0]! + 1}-${e.points[e.points.length - 1]! + 1}: layer ${e.layer + 1}/${e.layers}`);
    else if (e.type === "sweep-point") io.stderr.write(`\r\x1b[Kpoint ${e.index + 1}: NLL ${e.nll.toFixed(4)}\n`);
    else if (e.type === "sweep-done") io.stderr.write("\r\x1b[K");
  };
  const models = (n: string) => resolveModel(n, dirname(resolve(recipePath)));
  // --write-best's folder is checked (empty unless --force, not an input) and locked before any point
  // is evaluated, as soup's --out is: a long sweep must not fail at its end on a folder in use.
  const bestOut = values["write-best"] ? await openBestFolder(recipePath, values["write-best"], values.force ?? false, models) : undefined;
  let r: Awaited<ReturnType<typeof sweep>>, chart: ReturnType<typeof sweepChart>;
  try {
    r = await interruptible((signal) => sweep(recipePath, values.vary!, { ...options, against: values.against ?? [], signal, onProgress }));
    chart = sweepChart(r);
    const svg = lineChartSvg(chart);
    if (values.csv) await writeFileAtomically(values.csv, sweepCsv(r));
    if (values.svg) await writeFileAtomically(values.svg, svg);
    if (values.report) await writeFileAtomically(values.report, htmlReport(sweepReport(r, svg)));
    if (bestOut) {
      // The best point's recipe, merged by the merge engine like `weightsoup merge` would (models relative to the recipe).
      if (!Number.isFinite(r.points[r.best]!.nll)) throw new DataError("E_DATA", `${recipePath}: no point of the sweep has a finite NLL; --write-best has nothing to write`, { file: recipePath });
      const best = parseRecipe(r.points[r.best]!.recipe, recipePath);
      await interruptible((signal) => merge(best, { out: bestOut, signal, ...defined({ seed: options.seed, workers: options.workers }), models }));
    }
  } catch (e) {
    await bestOut?.discard().catch(() => undefined);
    throw e;
  }
  if (values.json) {
    io.stdout.write(JSON.stringify({
      points: r.points.map((p) => ({ values: p.values, nll: p.nll, perplexity: p.perplexity, bitsPerByte: p.bitsPerByte, against: p.against.map((a) => ({ model: a.model, kl: a.kl, top1Agreement: a.top1Agreement })), recipe: p.recipe })),
      best: r.best, tokens: r.tokens, predicted: r.predicted, tensorsComputed: r.tensorsComputed, tensorsShared: r.tensorsShared, seconds: r.seconds,
    }) + "\n");
    return 0;
  }
  const { columns, rows } = sweepTable(r);
  const show = (v: string | number, c: number) => (typeof v === "string" ? v : c < r.keys.length ? String(v) : v.toFixed(c === r.keys.length + 1 ? 3 : 5));
  const cells = [columns, ...rows.map((row) => row.map(show))];
  const widths = columns.map((_, c) => Math.max(...cells.map((row) => row[c]!.length)));
  const lines = cells.map((row, i) => row.map((cell, c) => cell.padStart(widths[c]!)).join("  ") + (i - 1 === r.best ? "  <- best" : ""));
  lines.push("", lineChartText(chart).trimEnd());
  lines.push(`${r.points.length} points, ${r.predicted} predicted tokens each, ${r.seconds.toFixed(2)} s; merged tensors: ${r.tensorsComputed} computed, ${r.tensorsShared} uses shared between points`);
  if (values.csv) lines.push(`csv: ${values.csv}`);
  if (values.svg) lines.push(`chart: ${values.svg}`);
  if (values.report) lines.push(`report: ${values.report}`);
  if (values["write-best"]) lines.push(`best point's merge: ${values["write-best"]}`);
  io.stdout.write(lines.join("\n") + "\n");
  return 0;
}

/**
 * --write-best's folder, opened (locked, checked empty unless `force`, refused if it is one of the
 * recipe's inputs: the recipe file, its models' folders and weight files) before the sweep runs.
 */
async function openBestFolder(recipePath: string, dir: string, force: boolean, models: (name: string) => Promise<ModelFolder>): Promise<NodeOutputFolder> {
  const recipe = await readRecipe(recipePath);
  const names = referencedModels(recipe).flatMap((n) => { const parts = splitLoraReference(n); return parts ? [parts.base, parts.adapter] : [n]; });
  const inputs = [recipePath];
  for (const name of names) {
    const folder = await models(name);
    inputs.push(...pathsOf(folder, (await folder.list()).filter((f) => f.endsWith(".safetensors"))));
  }
  return NodeOutputFolder.open(dir, { force, inputs });
}
