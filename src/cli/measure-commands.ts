/**
 * @file `weightsoup path` and `weightsoup soup`: loss paths between two models or recipes, and greedy
 * soups, with a table and a terminal chart on stdout (or JSON), and optionally the chart as SVG and a
 * self-contained HTML report, each written under a temporary name and renamed into place.
 */
import { htmlReport } from "../chart/report";
import { lineChartSvg } from "../chart/svg";
import { lineChartText } from "../chart/terminal";
import { UsageError } from "../errors";
import { BARRIER_DEFINITION, pathChart, pathCurves, pathReport, pathTable, soupChart, soupReport } from "../measure/charts";
import { greedySoup, isRecipePath, lossPath } from "../node";
import type { LossPathEvent } from "../api/path";
import type { SoupEvent } from "../api/soup";
import { args, defined, integer, type Io } from "./args";
import { commandHelp, type Command } from "./commands";
import { evalInput, table } from "./eval-commands";
import { interruptible } from "./interrupt";
import { checkFileTargets, writeFileAtomically } from "./write-file";
import { printWarning } from "./progress";


const EVAL_FLAGS = {
  text: { type: "string" }, ids: { type: "string" }, context: { type: "string" }, "max-tokens": { type: "string" },
  workers: { type: "string" }, "memory-budget": { type: "string" }, seed: { type: "string" },
  quiet: { type: "boolean" }, json: { type: "boolean" }, svg: { type: "string" }, report: { type: "string" },
} as const;

/** A progress line on stderr: redrawn on a terminal, nothing otherwise (the result says it all). */
function progressLine(stream: NodeJS.WriteStream, quiet: boolean | undefined): ((line: string) => void) & { done(): void } {
  const interactive = stream.isTTY === true && !quiet;
  const show = (line: string) => { if (interactive) stream.write(`\r\x1b[K${line}`); };
  return Object.assign(show, { done: () => { if (interactive) stream.write("\r\x1b[K"); } });
}

const fixed = (x: number, digits = 4) => (Number.isFinite(x) ? x.toFixed(digits) : String(x));

export async function pathCommand(argv: string[], io: Io): Promise<number> {
  const parsed = args("path", argv, {
    ...EVAL_FLAGS, points: { type: "string" }, slerp: { type: "boolean" }, align: { type: "boolean" }, "max-sweeps": { type: "string" },
  }, [2, 2], io);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  const [a, b] = positionals as [string, string];
  const options = {
    ...(await evalInput("path", values)),
    ...defined({ points: integer(values.points, "points", "points"), maxSweeps: integer(values["max-sweeps"], "max-sweeps", "maxSweeps") }),
    slerp: values.slerp ?? false, align: values.align ?? false,
  };
  await checkFileTargets([values.svg, values.report]);
  const progress = progressLine(io.stderr, values.quiet);
  const onProgress = (e: LossPathEvent) => {
    if (e.type === "path-endpoint") progress(`merging ${e.name} (${e.endpoint}) in memory`);
    else if (e.type === "path-align") progress(`aligning ${e.model} to ${e.reference}`);
    else if (e.type === "path-point-start") progress(`${e.curve} path: λ = ${fixed(e.lambda, 3)} (${e.index + 1}/${e.points})`);
    else if (e.type === "warning") printWarning(io.stderr, e.message, !values.quiet && io.stderr.isTTY === true);
  };
  let result;
  try {
    result = await interruptible((signal) => lossPath(a, b, { ...options, signal, onProgress }));
  } finally {
    progress.done();
  }
  const chart = pathChart(result);
  const svg = values.svg !== undefined || values.report !== undefined ? lineChartSvg(chart) : undefined;
  if (values.svg !== undefined) await writeFileAtomically(values.svg, svg!);
  if (values.report !== undefined) await writeFileAtomically(values.report, htmlReport(pathReport(result, svg!)));
  if (values.json) {
    io.stdout.write(JSON.stringify(result) + "\n");
    return 0;
  }
  const t = pathTable(result);
  const lines = [
    `loss path from A = ${a} (λ = 0) to B = ${b} (λ = 1): mean NLL on ${result.predicted} predicted tokens`,
    "",
    ...table([t.columns.map((c) => c.replace(/ perplexity$/, " ppl")), ...t.rows.map((row) => row.map((v, i) => (typeof v === "number" ? fixed(v, i === 0 ? 3 : 4) : v)))]),
    "",
    lineChartText(chart),
    "",
    ...pathCurves(result).map(({ label, curve }) => `${label}: barrier ${fixed(curve.barrier)} (at λ = ${fixed(curve.worstLambda, 3)}), gap ${fixed(curve.gap)}`),
    ...(result.aligned ? [`(aligned: B permuted onto A by weight matching in ${result.aligned.sweeps} sweeps)`] : []),
    BARRIER_DEFINITION,
  ];
  io.stdout.write(lines.join("\n") + "\n");
  return 0;
}

export async function soupCommand(argv: string[], io: Io): Promise<number> {
  const { seed: _seed, ...soupFlags } = EVAL_FLAGS;
  const parsed = args("soup", argv, { ...soupFlags, greedy: { type: "boolean" }, out: { type: "string" }, force: { type: "boolean" } }, [2, 256], io);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  const recipe = positionals.find(isRecipePath);
  if (recipe !== undefined) throw new UsageError("E_USAGE", `soup: ${recipe}: ingredients are model folders; merge the recipe first and give its folder\n\n${commandHelp("soup")}`);
  if (values.svg !== undefined && !values.greedy) throw new UsageError("E_USAGE", `soup: --svg draws the greedy trajectory; give --greedy\n\n${commandHelp("soup")}`);
  if (values.force && values.out === undefined) throw new UsageError("E_USAGE", `soup: --force applies to --out DIR, which is not given\n\n${commandHelp("soup")}`);
  const options = { ...(await evalInput("soup", values)), greedy: values.greedy ?? false };
  await checkFileTargets([values.svg, values.report]);
  const progress = progressLine(io.stderr, values.quiet);
  const onProgress = (e: SoupEvent) => {
    if (e.type === "soup-ingredients") progress(`scoring ${e.ingredients.length} ingredients`);
    else if (e.type === "soup-candidate") progress(`greedy step ${e.step}/${e.steps}: trying ${e.candidate}`);
    else if (e.type === "soup-uniform") progress("scoring the uniform soup of all");
    else if (e.type === "soup-write") progress(`writing the soup to ${values.out}`);
  };
  let result;
  try {
    result = await interruptible((signal) => greedySoup(positionals, {
      ...options, signal, onProgress, ...(values.out !== undefined ? { out: values.out, force: values.force ?? false } : {}),
    }));
  } finally {
    progress.done();
  }
  const chart = result.trajectory.length ? soupChart(result) : undefined;
  const svg = chart && (values.svg !== undefined || values.report !== undefined) ? lineChartSvg(chart) : undefined;
  if (values.svg !== undefined) await writeFileAtomically(values.svg, svg!);
  if (values.report !== undefined) await writeFileAtomically(values.report, htmlReport(soupReport(result, svg)));
  const { recipe: soupRecipe, written, ...rest } = result;
  if (values.json) {
    io.stdout.write(JSON.stringify({ ...rest, recipe: soupRecipe.text, ...(written ? { out: values.out, files: written.files } : {}) }) + "\n");
    return 0;
  }
  const lines = [
    `ingredients by held-out NLL (${result.predicted} predicted tokens), best first:`,
    ...table([["", "model", "NLL", "perplexity"], ...result.ingredients.map((x, i) => [`${i + 1}.`, x.model, fixed(x.nll), fixed(x.perplexity, 3)])]).map((l) => `  ${l}`),
  ];
  if (options.greedy) {
    lines.push("", `greedy soup: start with ${result.ingredients[0]!.model} (NLL ${fixed(result.ingredients[0]!.nll)}); an ingredient is kept if the soup's NLL with it is not worse (≤)`);
    lines.push(...table([["step", "candidate", "soup NLL", "perplexity", "kept"], ...result.trajectory.map((s, i) => [String(i + 1), s.candidate, fixed(s.nll), fixed(s.perplexity, 3), s.kept ? "yes" : "no"])]).map((l) => `  ${l}`));
    lines.push("", lineChartText(chart!));
  }
  lines.push("",
    `${options.greedy ? "greedy" : "uniform"} soup of ${result.kept.length} (${result.kept.join(", ")}): NLL ${fixed(result.nll)}, perplexity ${fixed(result.perplexity, 3)}`,
    `uniform soup of all ${result.ingredients.length}: NLL ${fixed(result.uniform.nll)}, perplexity ${fixed(result.uniform.perplexity, 3)}`);
  if (written) lines.push(`written to ${values.out} (${written.files.join(", ")})`);
  io.stdout.write(lines.join("\n") + "\n");
  return 0;
}
