// The measuring commands' fuzz oracle (issue 11). Acceptable outcomes:
//  - sweep keys: exactly what fuzz-measure-rules.ts works out from the README. A refusal is an
//    OptionError E_OPTION naming the --vary argument's key (multi-stage recipes: E_METHOD_UNSUPPORTED),
//    giving the recipe's line:column when the key does not fit the recipe. An acceptance has the grid
//    the rules expect, and the YAML text of its first and last point reads back as the recipe with
//    those values set and nothing else changed. A whole sweep() ("sweep" runs) either succeeds or is a
//    typed error (a value the method refuses, such as a negative density, is the planner's to refuse);
//    a success has one point per grid point with those values, finite NLLs, perplexity = exp(NLL),
//    `best` the first lowest NLL, and the first and last point's NLL bit-identical to evaluate() of that
//    point's recipe (README: a sweep point equals merging that recipe and evaluating it).
//  - command lines: exit 0 with complete outputs (JSON on stdout whose numbers hang together, each
//    requested SVG, HTML or CSV file whole, each written model or adapter folder readable by the
//    reference reader), or exit 1 with `[E_CODE]`, or exit 2 with a `weightsoup:` usage line (or
//    `[E_OPTION]`); never a stack trace or a hang; after a failure, no temporary file, no staging
//    folder, no output folder that looks like a model, no output file that is not whole; the input
//    models untouched. A success where fuzz-measure-rules.ts says the input must be refused fails.
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { WeightsoupError } from "../../src/errors";
import { assignValues, evaluate, gridPoints, parseVary, sweep, type SweepResult } from "../../src/node";
import { checkKeys } from "../../src/sweep/keys";
import { readSafetensors } from "../reference/safetensors";
import { CLI, readOutput, WORKER_URL } from "./fixtures";
import { runChild } from "./fuzz-eval-oracle";
import type { MeasureCase, MeasureCliCase, SweepKeyCase } from "./fuzz-measure-cases";
import { DIAGNOSE_RECIPE, MEASURE_CONTEXT, MEASURE_IDS, MEASURE_MODELS, MEASURE_RECIPES, NO_TASK_VECTORS_RECIPE } from "./fuzz-measure-fixtures";
import { cliRefusal, dataDifference, expectVary, FILE_OUTPUTS, FOLDER_OUTPUTS, recipeDocuments, type VaryVerdict } from "./fuzz-measure-rules";
import { leftoverProblem, rejectionProblem, type Verdict } from "./fuzz-oracle";

export interface MeasureOracleContext {
  root: string;
  /** Where writeMeasureFixtures wrote the models, ids.json and recipes. */
  pristine: string;
  cliTimeoutMs: number;
}

const ok = (outcome: string): Verdict => ({ ok: true, outcome });
const bad = (outcome: string, problem: string): Verdict => ({ ok: false, outcome, problem });

export async function judgeMeasure(c: MeasureCase, ctx: MeasureOracleContext): Promise<Verdict> {
  if (c.kind === "sweep-key" && c.run === "parse") return judgeKeys(c);
  const dir = await mkdtemp(join(ctx.root, "measure-"));
  try {
    return c.kind === "sweep-key" ? await judgeSweep(c, dir, ctx) : await judgeCli(c, dir, ctx);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------
// Keys and SPECs through parseVary, gridPoints, checkKeys and assignValues

/** Why a rejection is not the one the rules ask for. */
function refusalProblem(e: unknown, expected: Extract<VaryVerdict, { refuse: string }>, vary: readonly string[]): string | undefined {
  const untyped = rejectionProblem(e);
  if (untyped) return untyped;
  const err = e as WeightsoupError;
  if (!expected.codes.includes(err.code)) return `refused with [${err.code}] ${err.message.slice(0, 200)}; expected ${expected.codes.join(" or ")} (${expected.refuse})`;
  if (err.code === "E_OPTION") {
    if (!err.message.startsWith("--vary ")) return `an E_OPTION that does not start with the flag: ${err.message.slice(0, 200)}`;
    const named = vary.some((arg) => err.message.includes(arg.slice(0, Math.max(0, arg.indexOf("="))).trim()) || err.message.includes(arg));
    if (!named) return `an E_OPTION that names none of the --vary arguments: ${err.message.slice(0, 200)}`;
    if (expected.placed && !/\.yml:\d+:\d+: /.test(err.message)) return `a key that does not fit the recipe, refused without the recipe's line:column: ${err.message.slice(0, 200)}`;
  }
  return undefined;
}

function judgeKeys(c: SweepKeyCase): Verdict {
  const recipe = MEASURE_RECIPES[c.template]!;
  const expected = expectVary(recipe.text, c.vary);
  let grid: Map<string, number>[];
  const texts: string[] = [];
  try {
    const varies = c.vary.map((v) => parseVary(v));
    grid = gridPoints(varies);
    checkKeys(recipe.text, recipe.file, varies.map((v) => v.key));
    for (const point of new Set([grid[0]!, grid.at(-1)!])) texts.push(assignValues(recipe.text, recipe.file, point));
  } catch (e) {
    if (expected.refuse === undefined) return bad(rejectionProblem(e) ? "untyped" : "refused-valid", `refused although the README accepts it: ${describeRejection(e)}`);
    const problem = refusalProblem(e, expected, c.vary);
    return problem ? bad(rejectionProblem(e) ? "untyped" : "wrong-refusal", problem) : ok((e as WeightsoupError).code);
  }
  if (expected.refuse !== undefined) return bad("accepted-invalid", `${expected.refuse}, yet it was accepted`);
  const points = grid.map((p) => [...p.values()]);
  const keys = [...grid[0]!.keys()];
  if (dataDifference(keys, expected.keys) || dataDifference(points, expected.grid)) {
    return bad("wrong-grid", `grid ${JSON.stringify(points).slice(0, 300)} over ${keys}; expected ${JSON.stringify(expected.grid).slice(0, 300)} over ${expected.keys}`);
  }
  const ends = [...new Set([0, points.length - 1])];
  for (const [i, text] of texts.entries()) {
    const docs = recipeDocuments(text);
    const diff = docs.length === 1 ? dataDifference(docs[0], expected.recipeAt(expected.grid[ends[i]!]!)) : `${docs.length} documents`;
    if (diff) return bad("wrong-recipe", `point ${ends[i]! + 1}'s recipe differs from the recipe with its values set: ${diff}`);
  }
  return ok("success");
}

function describeRejection(e: unknown): string {
  return e instanceof WeightsoupError ? `[${e.code}] ${e.message.slice(0, 300)}` : (rejectionProblem(e) ?? String(e));
}

// ---------------------------------------------------------------------------------------------------
// Whole sweeps

/** dir gets links to the fixture models (read only), so recipes written there find them. */
async function linkModels(dir: string, pristine: string): Promise<void> {
  for (const name of MEASURE_MODELS) await symlink(join(pristine, name), join(dir, name), "dir");
}

const FLOAT32_MAX = 3.4028234663852886e38;

async function judgeSweep(c: SweepKeyCase, dir: string, ctx: MeasureOracleContext): Promise<Verdict> {
  const recipe = MEASURE_RECIPES[c.template]!;
  const expected = expectVary(recipe.text, c.vary);
  const options = { ids: MEASURE_IDS, context: MEASURE_CONTEXT, workers: 1, workerUrl: WORKER_URL };
  let r: SweepResult;
  try {
    r = await sweep(join(ctx.pristine, recipe.file), c.vary, options);
  } catch (e) {
    if (expected.refuse === undefined) {
      // Accepted keys and values may still be values the method refuses (density −0.5): typed, from the planner.
      const problem = rejectionProblem(e);
      if (problem) return bad("untyped", problem);
      return (e as WeightsoupError).code === "E_OPTION" ? bad("refused-valid", `E_OPTION although the README accepts the keys: ${describeRejection(e)}`) : ok(`sweep ${(e as WeightsoupError).code}`);
    }
    const problem = refusalProblem(e, expected, c.vary);
    return problem ? bad(rejectionProblem(e) ? "untyped" : "wrong-refusal", problem) : ok(`sweep ${(e as WeightsoupError).code}`);
  }
  if (expected.refuse !== undefined) return bad("accepted-invalid", `${expected.refuse}, yet sweep() succeeded`);
  if (r.points.length !== expected.grid.length) return bad("inconsistent", `${r.points.length} points for a grid of ${expected.grid.length}`);
  for (const [i, p] of r.points.entries()) {
    const values = expected.keys.map((k) => p.values[k]);
    if (dataDifference(values, expected.grid[i])) return bad("inconsistent", `point ${i + 1} has values ${JSON.stringify(values)}, the grid ${JSON.stringify(expected.grid[i])}`);
    // A value beyond float32's range (1e308) is a weight the merge's float32 arithmetic makes infinite: the
    // merged weights and so the NLL may be NaN, as writing that merge and evaluating it gives (checked below).
    const wild = expected.grid[i]!.some((v) => Math.abs(v) > FLOAT32_MAX);
    // The engine's exp is the kernels' (the same bits in every browser), which may differ from V8's Math.exp by an ulp.
    const perplexityOk = Object.is(p.perplexity, Math.exp(p.nll)) || expOf(p.nll, p.perplexity);
    if ((!wild && (!Number.isFinite(p.nll) || p.nll < 0)) || !perplexityOk) return bad("inconsistent", `point ${i + 1}: nll ${p.nll}, perplexity ${p.perplexity}`);
  }
  // With a NaN point (a value beyond float32, above) "lowest" is not defined; reported, not judged here.
  const lowest = r.points.findIndex((p) => p.nll === Math.min(...r.points.map((q) => q.nll)));
  if (lowest !== -1 && r.best !== lowest) return bad("inconsistent", `best is point ${r.best + 1}, the first lowest NLL is point ${lowest + 1}`);
  // The first and last point against evaluate() of the point's recipe (merged in memory, as eval does).
  await linkModels(dir, ctx.pristine);
  for (const i of new Set([0, r.points.length - 1])) {
    const file = join(dir, `point-${i}.yml`);
    await writeFile(file, r.points[i]!.recipe);
    const { results } = await evaluate([file], options);
    if (!Object.is(results[0]!.nll, r.points[i]!.nll)) return bad("wrong-values", `point ${i + 1}: the sweep's NLL ${r.points[i]!.nll}, evaluate() of its recipe ${results[0]!.nll}`);
  }
  return ok("success");
}

// ---------------------------------------------------------------------------------------------------
// Command lines

const BASE_ARGS: Record<MeasureCliCase["command"], string[]> = {
  path: ["path", "a", "b", "--ids", "ids.json", "--points", "3", "--context", String(MEASURE_CONTEXT), "--workers", "1", "--json"],
  soup: ["soup", "a", "b", "--ids", "ids.json", "--greedy", "--context", String(MEASURE_CONTEXT), "--workers", "1", "--json"],
  diagnose: ["diagnose", DIAGNOSE_RECIPE, "--workers", "1", "--json"],
  sweep: ["sweep", "ties.yml", "--vary", "models[1].parameters.density=0.3,0.6", "--ids", "ids.json", "--context", String(MEASURE_CONTEXT), "--workers", "1", "--json"],
  "extract-lora": ["extract-lora", "a", "base", "@fresh", "--rank", "2", "--json"],
  align: ["align", "a", "b", "@fresh", "--workers", "2", "--json"],
};
const POSITIONALS: Record<MeasureCliCase["command"], number> = { path: 3, soup: 3, diagnose: 2, sweep: 2, "extract-lora": 4, align: 4 };
const BOOLEAN = new Set(["--json", "--greedy", "--slerp", "--align", "--quiet", "--force", "--embed-lora", "--distribute-scale", "--no-distribute-scale", "--profile"]);
/** Commands whose third positional argument is the output folder (the cases' "OUT_DIR"). */
const OUT_DIR_COMMANDS = new Set<MeasureCliCase["command"]>(["extract-lora", "align"]);
const EXTENSION: Record<string, string> = { "--svg": ".svg", "--report": ".html", "--csv": ".csv" };

interface CommandLine {
  argv: string[];
  /** Flag → values (booleans: [""]), as the command will see them. */
  flags: Map<string, string[]>;
  extra: string[];
  /** Output flag → the path it names. */
  outputs: Map<string, string>;
}

/** Applies the edits to the command's valid command line. */
function commandLine(c: MeasureCliCase, dir: string): CommandLine {
  const base = BASE_ARGS[c.command];
  const positionals = base.slice(1, POSITIONALS[c.command]);
  const flags = new Map<string, string[]>();
  for (let i = POSITIONALS[c.command]; i < base.length; i++) {
    if (BOOLEAN.has(base[i]!)) flags.set(base[i]!, [""]);
    else flags.set(base[i]!, [base[++i]!]);
  }
  const extra: string[] = [];
  const tail: string[] = [];
  for (const e of c.edits) {
    if (e.op === "set") {
      if (e.flag === "OUT_DIR") positionals[2] = e.value;
      else flags.set(e.flag, [e.value]);
    } else if (e.op === "switch") flags.set(e.flag, [""]);
    else if (e.op === "drop") flags.delete(e.flag);
    else if (e.op === "missing" || e.op === "unknown") tail.push(e.flag);
    else extra.push(e.value);
  }
  const outputs = new Map<string, string>();
  const place = (flag: string, value: string): string => {
    if (!value.startsWith("@")) return value;
    const path = outputPath(dir, flag, value);
    outputs.set(flag, path);
    return path;
  };
  const argv = [c.command, ...positionals.map((p, i) => (OUT_DIR_COMMANDS.has(c.command) && i === 2 ? place("OUT_DIR", p) : p)), ...extra];
  for (const [flag, values] of flags) for (const v of values) argv.push(...(BOOLEAN.has(flag) ? [flag] : [flag, place(flag, v)]));
  argv.push(...tail);
  if (OUT_DIR_COMMANDS.has(c.command)) flags.set("OUT_DIR", [positionals[2]!]);
  return { argv, flags, extra, outputs };
}

function outputPath(dir: string, flag: string, target: string): string {
  switch (target) {
    case "@dir": return join(dir, "existing-dir");
    case "@file": return join(dir, "existing-file.txt");
    case "@under-file": return join(dir, "existing-file.txt", "x");
    case "@no-parent": return join(dir, "no", "such", "x");
    case "@input": return join(dir, "a");
    default: return join(dir, `out-${flag.replace(/^-+/, "")}${EXTENSION[flag] ?? ""}`);
  }
}

/** File names and sizes under a folder (what "untouched" compares). */
async function listing(folder: string): Promise<string> {
  const names = (await readdir(folder)).sort();
  return (await Promise.all(names.map(async (n) => `${n}:${(await stat(join(folder, n))).size}`))).join(",");
}

async function judgeCli(c: MeasureCliCase, dir: string, ctx: MeasureOracleContext): Promise<Verdict> {
  // Copies, not links: a command that wrongly wrote into an input must not spoil the fixtures.
  for (const name of MEASURE_MODELS) await cp(join(ctx.pristine, name), join(dir, name), { recursive: true });
  for (const file of ["ids.json", ...MEASURE_RECIPES.map((r) => r.file), NO_TASK_VECTORS_RECIPE.file]) await cp(join(ctx.pristine, file), join(dir, file));
  await mkdir(join(dir, "existing-dir"));
  await writeFile(join(dir, "existing-file.txt"), "old");
  const inputs = await Promise.all(MEASURE_MODELS.map((m) => listing(join(dir, m))));
  const line = commandLine(c, dir);
  const refuse = cliRefusal(c, line.flags, line.extra, MEASURE_RECIPES[0]!.text);
  const r = await runChild([CLI, ...line.argv], ctx.cliTimeoutMs, dir);
  const stderr = r.stderr.slice(0, 1_500);
  if (r.status === null) return bad("hang", `the CLI was killed (${r.signal}) after ${ctx.cliTimeoutMs / 1000} s; stderr: ${stderr}`);
  if (/^\s+at\s/m.test(r.stderr) || /unexpected error|E_INTERNAL/.test(r.stderr)) return bad("stack-trace", `the CLI exited ${r.status} with an internal error: ${stderr}`);
  const after = await Promise.all(MEASURE_MODELS.map((m) => listing(join(dir, m))));
  if (after.join() !== inputs.join()) return bad("input-changed", `an input model folder changed: ${inputs.join(" | ")} -> ${after.join(" | ")}`);
  const temp = await strayFiles(dir);
  if (temp) return bad("leftover", `the CLI exited ${r.status} and left ${temp}`);
  if (r.status === 0) {
    if (refuse) return bad("accepted-invalid", `${refuse}, yet the CLI exited 0`);
    const problem = (await outputsProblem(c, line, true)) ?? stdoutProblem(c, line, r.stdout) ?? (c.command === "align" ? await alignWorkersProblem(line, dir, ctx) : undefined);
    return problem ? bad("bad-output", problem) : ok("exit 0");
  }
  const half = await outputsProblem(c, line, false);
  if (half) return bad("leftover", `the CLI exited ${r.status}; ${half}`);
  if (r.status === 1) {
    const code = /^weightsoup: \[(E_[A-Z0-9_]+)\] /m.exec(r.stderr)?.[1];
    return code ? ok(`exit 1 ${code}`) : bad("untyped", `the CLI exited 1 without an [E_...] code: ${stderr}`);
  }
  if (r.status === 2 && /^weightsoup: /.test(r.stderr)) return ok(/\[E_OPTION\]/.test(r.stderr) ? "exit 2 E_OPTION" : "exit 2 usage");
  return bad("exit-status", `the CLI exited ${r.status}: ${stderr}`);
}

/**
 * The README: alignment's result is the same for any worker count. The same command line with
 * --workers 1 (and without --profile) into another folder must write the same bytes.
 */
async function alignWorkersProblem(line: CommandLine, dir: string, ctx: MeasureOracleContext): Promise<string | undefined> {
  const out = line.outputs.get("OUT_DIR")!, reference = join(dir, "aligned-by-one-worker");
  const argv = line.argv.filter((a) => a !== "--profile").map((a) => (a === out ? reference : a));
  const workers = argv.indexOf("--workers");
  if (workers === -1) argv.push("--workers", "1");
  else argv[workers + 1] = "1";
  const r = await runChild([CLI, ...argv], ctx.cliTimeoutMs, dir);
  if (r.status !== 0) return `align with --workers 1 exited ${r.status}, with ${line.flags.get("--workers")?.[0] ?? "default"} workers 0: ${r.stderr.slice(0, 300)}`;
  const names = (await readdir(out)).sort();
  if (names.join() !== (await readdir(reference)).sort().join()) return `align wrote ${names.join()} with ${line.flags.get("--workers")?.[0]} workers, ${(await readdir(reference)).sort().join()} with 1`;
  for (const name of names) {
    if (!(await readFile(join(out, name))).equals(await readFile(join(reference, name)))) return `align's ${name} differs between ${line.flags.get("--workers")?.[0] ?? "default"} workers and 1`;
  }
  return undefined;
}

/** A temporary file or staging folder anywhere under dir (.NAME.weightsoup-…). */
async function strayFiles(dir: string): Promise<string | undefined> {
  for (const entry of await readdir(dir, { recursive: true })) {
    if (/(^|\/)\.[^/]*\.weightsoup-|(^|\/)\.weightsoup-partial-/.test(entry)) return entry;
  }
  return undefined;
}

/** Every output that exists is whole; after a success (`required`), every requested new output exists. */
async function outputsProblem(c: MeasureCliCase, line: CommandLine, required: boolean): Promise<string | undefined> {
  for (const [flag, path] of line.outputs) {
    const preexisting = /existing-|\/a$/.test(path);
    if (FOLDER_OUTPUTS.has(flag)) {
      if (!required) {
        if (path.endsWith("/a")) continue; // an input, checked unchanged above
        if (existsSync(path) && !(await stat(path)).isDirectory()) {
          if ((await readFile(path, "utf8")) !== "old") return `${flag}: the file ${path} given as the output folder was changed`;
          continue;
        }
        const left = await leftoverProblem(path);
        if (left) return `${flag}: ${left}`;
        continue;
      }
      const problem = await folderProblem(c.command === "extract-lora" && flag === "OUT_DIR" ? "adapter" : "model", flag, path);
      if (problem) return problem;
      continue;
    }
    if (!existsSync(path)) {
      if (required) return `${flag} ${path} was not written`;
      continue;
    }
    const text = await readFile(path, "utf8").catch(() => undefined);
    if (text === undefined) continue; // a folder given as the output, refused
    if (text === "old" && preexisting && !required) continue;
    const whole = flag === "--svg" ? /^<svg[\s\S]*<\/svg>\s*$/.test(text) : flag === "--report" ? /^<!doctype html>[\s\S]*<\/html>\s*$/i.test(text) : /^[^\n]+\n([^\n]+\n)+$/.test(text);
    if (!whole) return `${flag} ${path} is not a whole ${flag.slice(2)} file: ${JSON.stringify(text.slice(0, 80))}…${JSON.stringify(text.slice(-40))}`;
  }
  return undefined;
}

async function folderProblem(kind: "adapter" | "model", flag: string, path: string): Promise<string | undefined> {
  try {
    if (kind === "adapter") {
      const config = JSON.parse(await readFile(join(path, "adapter_config.json"), "utf8")) as { r?: unknown };
      if (typeof config.r !== "number") return `${flag}: adapter_config.json has r = ${JSON.stringify(config.r)}`;
      const adapter = readSafetensors(new Uint8Array(await readFile(join(path, "adapter_model.safetensors"))));
      if (adapter.tensors.size === 0) return `${flag}: the adapter holds no tensors`;
      return undefined;
    }
    const { tensors } = await readOutput(path);
    if (tensors.size === 0) return `${flag}: the written model holds no tensors`;
    JSON.parse(await readFile(join(path, "config.json"), "utf8"));
  } catch (e) {
    return `${flag} ${path}: the written folder does not read back: ${(e as Error).message.slice(0, 200)}`;
  }
  return undefined;
}

const finite = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);
const expOf = (nll: number, perplexity: unknown) => typeof perplexity === "number" && Math.abs(perplexity - Math.exp(nll)) <= 1e-12 * Math.exp(nll);

/** The JSON on stdout, checked against what its own numbers imply (the definitions in the README). */
function stdoutProblem(c: MeasureCliCase, line: CommandLine, stdout: string): string | undefined {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(stdout) as Record<string, unknown>;
  } catch {
    return `stdout is not JSON: ${stdout.slice(0, 200)}`;
  }
  switch (c.command) {
    case "path": {
      const points = json.points as { lambda: number; nll: number; perplexity: number }[];
      const n = Number(line.flags.get("--points")?.[0] ?? 11);
      if (!Array.isArray(points) || points.length !== n) return `${points?.length} path points for --points ${n}`;
      for (const [i, p] of points.entries()) {
        if (!Object.is(p.lambda, i / (n - 1))) return `point ${i}: λ ${p.lambda}, expected ${i}/${n - 1}`;
        if (!finite(p.nll) || !expOf(p.nll, p.perplexity)) return `point ${i}: nll ${p.nll}, perplexity ${p.perplexity}`;
      }
      const barrier = Math.max(...points.map((p) => p.nll)) - (points[0]!.nll + points[n - 1]!.nll) / 2;
      if (!finite(json.barrier) || Math.abs((json.barrier as number) - barrier) > 1e-12 * Math.max(1, Math.abs(barrier))) return `barrier ${json.barrier}; its points give ${barrier}`;
      return undefined;
    }
    case "soup": {
      const ingredients = json.ingredients as { model: string; nll: number }[];
      const trajectory = json.trajectory as { candidate: string; nll: number; kept: boolean }[];
      if (!Array.isArray(ingredients) || !ingredients.every((x) => finite(x.nll))) return `ingredients ${JSON.stringify(ingredients)?.slice(0, 200)}`;
      if (!ingredients.every((x, i) => i === 0 || ingredients[i - 1]!.nll <= x.nll)) return "ingredients are not sorted by NLL, best first";
      if (!finite(json.nll) || !expOf(json.nll as number, json.perplexity)) return `soup nll ${json.nll}, perplexity ${json.perplexity}`;
      if (line.flags.has("--greedy")) {
        let soup = ingredients[0]!.nll;
        const kept = [ingredients[0]!.model];
        for (const step of trajectory) {
          if (step.kept !== step.nll <= soup) return `greedy step ${step.candidate}: NLL ${step.nll} against the soup's ${soup}, kept ${step.kept}`;
          if (step.kept) {
            soup = step.nll;
            kept.push(step.candidate);
          }
        }
        if (dataDifference(json.kept, kept)) return `kept ${JSON.stringify(json.kept)}, the trajectory keeps ${JSON.stringify(kept)}`;
      }
      return undefined;
    }
    case "diagnose": {
      const total = json.total as { conflict?: { coordinates: number | null; mass: number | null } };
      const rates = [total?.conflict?.coordinates, total?.conflict?.mass];
      if (!rates.every((x) => x === null || (finite(x) && x >= 0 && x <= 1))) return `conflict rates ${JSON.stringify(rates)}`;
      return undefined;
    }
    case "sweep": {
      const points = json.points as { nll: number; perplexity: number }[];
      const grid = expectVary(MEASURE_RECIPES[0]!.text, line.flags.get("--vary") ?? []);
      if (grid.refuse !== undefined || !Array.isArray(points) || points.length !== grid.grid.length) return `${points?.length} sweep points for the grid of ${JSON.stringify(line.flags.get("--vary"))}`;
      if (!points.every((p) => finite(p.nll) && expOf(p.nll, p.perplexity))) return "a sweep point's nll is not finite or its perplexity not exp(nll)";
      const lowest = points.findIndex((p) => p.nll === Math.min(...points.map((q) => q.nll)));
      if (json.best !== lowest) return `best ${json.best}, the first lowest NLL is ${lowest}`;
      const csv = line.outputs.get("--csv");
      if (csv === undefined) return undefined;
      const rows = readFileSync(csv, "utf8").trimEnd().split("\n").length;
      return rows === points.length + 1 ? undefined : `--csv has ${rows} lines for a header and ${points.length} points`;
    }
    case "align": {
      const groups = json.groups as { name: string; size: number; cosineBefore: number; cosineAfter: number }[];
      const maxSweeps = Number(line.flags.get("--max-sweeps")?.[0] ?? Infinity);
      if (json.out !== line.outputs.get("OUT_DIR")) return `align reports out ${JSON.stringify(json.out)}, the command line named ${line.outputs.get("OUT_DIR")}`;
      if (!Array.isArray(groups) || groups.length === 0 || !groups.every((g) => Number.isSafeInteger(g.size) && g.size > 0 && finite(g.cosineBefore) && finite(g.cosineAfter))) return `align groups ${JSON.stringify(groups)?.slice(0, 200)}`;
      if (!Number.isSafeInteger(json.sweeps) || (json.sweeps as number) < 1 || (json.sweeps as number) > maxSweeps) return `align ran ${json.sweeps} sweeps with --max-sweeps ${maxSweeps}`;
      return undefined;
    }
    case "extract-lora": {
      const modules = json.modules as { relativeError: number; rank: number }[];
      if (!Array.isArray(modules) || !modules.every((m) => finite(m.relativeError) && m.relativeError >= 0 && Number.isSafeInteger(m.rank))) return `modules ${JSON.stringify(modules)?.slice(0, 200)}`;
      return undefined;
    }
  }
}
