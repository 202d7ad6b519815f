// The fuzz oracle: runs weightsoup on one case and judges the outcome. Acceptable outcomes are
//  - success, with an output that re-inspects cleanly: every written safetensors file parses with the
//    independent reference reader and with weightsoup's inspect, and the tensor names, dtypes and shapes
//    are the plan's (for valid inputs run with fuzzed options, the values are the reference merge's);
//  - a rejection that is a WeightsoupError with an E_ code (for ValidationError, every problem too),
//    after which the output folder is absent or holds no weights, index or config.json.
// Anything else (another exception, an untyped rejection, a CLI stack trace, an output that looks
// complete after a failure, a merge that succeeds on inputs its own planner refuses, a success on
// inputs that must be refused: fuzz-rules.ts) is a failure.
// Hangs are the runner's to catch (fuzz-runner.ts).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { DEFAULT_SHARD_SIZE, prepare } from "../../src/api/merge";
import { ValidationError, WeightsoupError } from "../../src/errors";
import { resolveModel } from "../../src/model/resolve";
import { inspect, merge } from "../../src/node";
import type { MergePlan } from "../../src/plan/plan";
import { planShards } from "../../src/plan/shards";
import { referenceMerge, type RefModel } from "../reference/merge";
import { DTYPE_SIZE, isRefDtype, numelOf, readSafetensors } from "../reference/safetensors";
import { inspectTarget, materialize, type FuzzCase } from "./fuzz-cases";
import { RECIPES } from "./fuzz-fixtures";
import { invalidOption, type LibraryOptions } from "./fuzz-options";
import { requiredRejection } from "./fuzz-rules";
import { CLI, compareTensor, readOutput, WORKER_URL } from "./fixtures";

export interface Verdict {
  ok: boolean;
  /** "success", an error code, or what went wrong ("untyped", "hang", ...), for the outcome tally. */
  outcome: string;
  problem?: string;
}

export interface OracleContext {
  /** Holds the pristine fixtures; cases are written in folders under it. */
  root: string;
  /** The fixture models as the reference implementation takes them ("./base" -> model). */
  models: Map<string, RefModel>;
  /** Time a CLI child may take before it is killed (and the case judged a hang). */
  cliTimeoutMs: number;
}

export async function judge(c: FuzzCase, ctx: OracleContext): Promise<Verdict> {
  const dir = await mkdtemp(join(ctx.root, "case-"));
  try {
    const recipePath = await materialize(c, ctx.root, dir);
    const inspected = c.run === "inspect" ? inspectTarget(c) : undefined;
    const refuse = await requiredRejection(c, dir, inspected);
    let verdict: Verdict;
    switch (c.run) {
      case "plan": verdict = await runPlan(dir, recipePath); break;
      case "inspect": verdict = await runInspect(join(dir, inspected!)); break;
      case "merge": verdict = await runMerge(c, dir, recipePath, ctx); break;
      case "cli": verdict = await runCli(c, dir, recipePath, ctx); break;
    }
    if (refuse && verdict.ok && /^(success|exit 0)$/.test(verdict.outcome)) return bad("accepted-invalid", `${refuse}, yet ${c.run} succeeded instead of a typed error`);
    return verdict;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const ok = (outcome: string): Verdict => ({ ok: true, outcome });
const bad = (outcome: string, problem: string): Verdict => ({ ok: false, outcome, problem });

// ---------------------------------------------------------------------------------------------------
// Rejections

/** Why `e` is not an acceptable rejection, or undefined if it is one. */
export function rejectionProblem(e: unknown): string | undefined {
  if (!(e instanceof WeightsoupError)) return `rejected with something other than a WeightsoupError: ${describeError(e)}`;
  if (typeof e.code !== "string" || !/^E_[A-Z0-9_]+$/.test(e.code)) return `a ${e.name} whose code is ${JSON.stringify(e.code)}`;
  if (typeof e.message !== "string" || e.message.length === 0) return `[${e.code}] with an empty message`;
  if (e instanceof ValidationError) {
    if (!Array.isArray(e.problems) || e.problems.length === 0) return "E_VALIDATION without problems";
    for (const p of e.problems) {
      const inner = rejectionProblem(p);
      if (inner) return `an E_VALIDATION problem: ${inner}`;
    }
  }
  return undefined;
}

export function describeError(e: unknown): string {
  if (!(e instanceof Error)) return `the non-Error value ${String(e).slice(0, 200)}`;
  const frames = (e.stack ?? "").split("\n").filter((l) => /^\s+at /.test(l)).slice(0, 6).join("\n");
  return `${e.constructor.name}: ${e.message.slice(0, 400)}${frames ? `\n${frames}` : ""}`;
}

function judgeRejection(e: unknown): Verdict {
  const problem = rejectionProblem(e);
  return problem ? bad("untyped", problem) : ok((e as WeightsoupError).code);
}

/** After a failure the output folder must be absent or hold nothing that could pass for a model. */
export async function leftoverProblem(out: string): Promise<string | undefined> {
  const beside = await besideProblem(out);
  if (beside) return `after the failure ${beside}`;
  if (!existsSync(out)) return undefined;
  const modelish = (await readdir(out)).filter((f) => f.endsWith(".safetensors") || f.endsWith(".index.json") || f === "config.json");
  return modelish.length === 0 ? undefined : `after the failure the output folder holds ${modelish.slice(0, 8).join(", ")}`;
}

/** A merge stages its output, and keeps its lock, next to OUT_DIR: neither may outlive the merge. */
async function besideProblem(out: string): Promise<string | undefined> {
  const prefix = `.${basename(out)}.weightsoup-`;
  const left = (await readdir(dirname(out)).catch(() => [] as string[])).filter((e) => e.startsWith(prefix));
  return left.length ? `${left[0]} is left beside the output folder` : undefined;
}

// ---------------------------------------------------------------------------------------------------
// Plans

const resolver = (dir: string) => (name: string) => resolveModel(name, dir);

async function runPlan(dir: string, recipePath: string): Promise<Verdict> {
  let plan: MergePlan;
  try {
    plan = await prepare(await readFile(recipePath, "utf8"), resolver(dir));
  } catch (e) {
    return judgeRejection(e);
  }
  const problem = planProblem(plan) ?? plannedFilesProblem(plan);
  return problem ? bad("bad-plan", problem) : ok("success");
}

/** A plan's own consistency: unique names, whole-number shapes whose sizes add up. */
export function planProblem(plan: MergePlan): string | undefined {
  const names = new Set<string>();
  for (const t of plan.tensors) {
    if (names.has(t.name)) return `the plan writes tensor ${JSON.stringify(t.name)} twice`;
    names.add(t.name);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) return `tensor ${JSON.stringify(t.name)} has shape ${JSON.stringify(t.shape)}`;
    if (!isRefDtype(t.dtype)) return `tensor ${JSON.stringify(t.name)} would be written as dtype ${JSON.stringify(t.dtype)}`;
    const numel = numelOf(t.shape);
    if (t.numel !== numel || t.outputBytes !== numel * DTYPE_SIZE[t.dtype]) {
      return `tensor ${JSON.stringify(t.name)}: shape [${t.shape}] of ${t.dtype} but numel ${t.numel}, ${t.outputBytes} output bytes`;
    }
    if (t.inputs.length === 0) return `tensor ${JSON.stringify(t.name)} has no inputs`;
  }
  return undefined;
}

/**
 * The headers the merge would write, read back with the reference reader: every planned tensor must
 * be in them with its dtype and shape (a header written from a plain object loses `__proto__`).
 */
function plannedFilesProblem(plan: MergePlan): string | undefined {
  let shards;
  try {
    shards = planShards(plan.tensors, DEFAULT_SHARD_SIZE, { format: "pt" });
  } catch (e) {
    return rejectionProblem(e) && `planning the output files threw ${describeError(e)}`;
  }
  for (const shard of shards) {
    const size = shard.layout.size;
    if (!Number.isSafeInteger(size) || size < shard.layout.head.length || size > 2 ** 28) return `${shard.file} would be ${size} bytes`;
    const bytes = new Uint8Array(size);
    bytes.set(shard.layout.head);
    let parsed;
    try {
      parsed = readSafetensors(bytes);
    } catch (e) {
      return `the planned header of ${shard.file} does not parse with the reference reader: ${(e as Error).message}`;
    }
    const problem = sameTensors(shard.tensors, parsed.tensors, `the planned header of ${shard.file}`);
    if (problem) return problem;
  }
  return undefined;
}

/** `found` holds exactly the `expected` tensors, with their dtypes and shapes. */
function sameTensors(expected: { name: string; dtype: string; shape: number[] }[], found: ReadonlyMap<string, { dtype: string; shape: number[] }>, what: string): string | undefined {
  const missing = expected.filter((t) => !found.has(t.name)).map((t) => JSON.stringify(t.name));
  const wanted = new Set(expected.map((t) => t.name));
  const extra = [...found.keys()].filter((n) => !wanted.has(n)).map((n) => JSON.stringify(n));
  if (missing.length || extra.length) {
    return `${what} lacks ${missing.length} planned tensors (${missing.slice(0, 5).join(", ")}) and has ${extra.length} unplanned ones (${extra.slice(0, 5).join(", ")})`;
  }
  for (const t of expected) {
    const f = found.get(t.name)!;
    if (f.dtype !== t.dtype || f.shape.join(",") !== t.shape.join(",")) {
      return `${what}: tensor ${JSON.stringify(t.name)} is ${f.dtype} [${f.shape}], planned ${t.dtype} [${t.shape}]`;
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// Whole merges

async function planOf(dir: string, recipePath: string): Promise<{ plan?: MergePlan; error?: unknown }> {
  try {
    return { plan: await prepare(await readFile(recipePath, "utf8"), resolver(dir)) };
  } catch (error) {
    return { error };
  }
}

async function runMerge(c: FuzzCase, dir: string, recipePath: string, ctx: OracleContext): Promise<Verdict> {
  const out = join(dir, "out");
  // One worker is enough for the tiny fixtures; 20 kB shards split a float32 output in two, so the
  // index is written and checked too (the CLI runs keep the default single file).
  const options: LibraryOptions = c.kind === "options" ? c.options.options : { workers: 1, outShardSize: 20_000 };
  const { plan, error } = await planOf(dir, recipePath);
  let summary;
  try {
    summary = await merge(recipePath, { out, workerUrl: WORKER_URL, ...(options as Record<string, number>) });
  } catch (e) {
    const verdict = judgeRejection(e);
    const leftover = await leftoverProblem(out);
    return leftover && verdict.ok ? bad("leftover", `[${verdict.outcome}] ${leftover}`) : verdict;
  }
  if (!plan) return bad("inconsistent", `merge succeeded although planning the same inputs failed with ${describeError(error)}`);
  if (summary.tensors !== plan.tensors.length) return bad("bad-output", `the summary counts ${summary.tensors} tensors, the plan ${plan.tensors.length}`);
  const problem = await outputProblem(out, plan);
  if (problem) return bad("bad-output", problem);
  if (c.kind === "options") {
    const seed = typeof options.seed === "number" && !invalidOption("seed", options.seed) ? options.seed : 0;
    const values = await valuesProblem(out, RECIPES[c.options.template]!.recipe, ctx.models, seed);
    if (values) return bad("wrong-values", values);
  }
  return ok("success");
}

/** The output re-inspects cleanly with both readers and holds exactly the planned tensors. */
export async function outputProblem(out: string, plan: MergePlan): Promise<string | undefined> {
  const entries = await readdir(out);
  const staging = entries.filter((e) => e.startsWith(".weightsoup-partial-"));
  if (staging.length) return `the output folder still holds the staging folder ${staging[0]}`;
  const beside = await besideProblem(out);
  if (beside) return beside;
  let written;
  try {
    written = await readOutput(out);
  } catch (e) {
    return `the reference reader rejects the output: ${(e as Error).message}`;
  }
  const problem = sameTensors(plan.tensors, written.tensors, "the output");
  if (problem) return problem;
  let report;
  try {
    report = await inspect(out);
  } catch (e) {
    return `weightsoup's inspect rejects its own output: ${describeError(e)}`;
  }
  const inspected = new Map(report.tensors.map((t) => [t.name, t]));
  const again = sameTensors(plan.tensors, inspected, "weightsoup's inspect of the output");
  if (again) return again;
  if (entries.includes("config.json")) {
    let config: unknown;
    try {
      config = JSON.parse(await readFile(join(out, "config.json"), "utf8"));
    } catch (e) {
      return `the output's config.json is not JSON: ${(e as Error).message}`;
    }
    if (config === null || typeof config !== "object" || Array.isArray(config)) return `the output's config.json is ${JSON.stringify(config)?.slice(0, 80)}`;
  }
  return undefined;
}

/** Output values against the reference merge: float32 within 1e-6, bf16/f16 within 1 ulp, integers exact. */
async function valuesProblem(out: string, recipe: Record<string, unknown>, models: Map<string, RefModel>, seed: number): Promise<string | undefined> {
  const expected = referenceMerge(recipe, models, { seed });
  const { tensors } = await readOutput(out);
  for (const [name, ref] of expected.tensors) {
    const got = tensors.get(name);
    if (!got) return `tensor ${name} is missing`;
    const { maxAbs, maxUlp, at } = compareTensor(got, ref);
    const close = got.dtype === "F32" ? maxAbs <= 1e-6 : got.dtype === "BF16" || got.dtype === "F16" ? maxUlp <= 1 : maxAbs === 0;
    if (!close) return `tensor ${name} differs from the reference merge (max abs diff ${maxAbs}, ${maxUlp} ulps, at element ${at})`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// The command line

interface ChildResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

function runChild(args: string[], timeoutMs: number): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"], timeout: timeoutMs, killSignal: "SIGKILL" });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (s: string) => { if (stderr.length < 100_000) stderr += s; });
    child.on("error", reject);
    child.on("close", (status, signal) => resolve({ status, signal, stderr }));
  });
}

async function runCli(c: FuzzCase, dir: string, recipePath: string, ctx: OracleContext): Promise<Verdict> {
  const out = join(dir, "out");
  const flags = c.kind === "flags" ? c.flags.flags.flatMap((f) => [f.flag, f.value]) : ["--workers", "1"];
  const { plan, error } = await planOf(dir, recipePath);
  const r = await runChild([CLI, "merge", recipePath, out, "--quiet", ...flags], ctx.cliTimeoutMs);
  const stderr = r.stderr.slice(0, 2_000);
  if (r.status === null) return bad("hang", `the CLI was killed (${r.signal}) after ${ctx.cliTimeoutMs / 1000} s; stderr: ${stderr}`);
  if (/^\s+at\s/m.test(r.stderr) || /unexpected error/.test(r.stderr)) return bad("stack-trace", `the CLI exited ${r.status} with a stack trace: ${stderr}`);
  if (r.status === 0) {
    if (!plan) return bad("inconsistent", `the CLI succeeded although planning the same inputs failed with ${describeError(error)}`);
    const problem = await outputProblem(out, plan);
    return problem ? bad("bad-output", problem) : ok("exit 0");
  }
  const leftover = await leftoverProblem(out);
  if (leftover) return bad("leftover", `the CLI exited ${r.status}; ${leftover}`);
  if (r.status === 1) {
    const code = /^weightsoup: \[(E_[A-Z0-9_]+)\] /m.exec(r.stderr)?.[1];
    return code ? ok(`exit 1 ${code}`) : bad("untyped", `the CLI exited 1 without an [E_...] code: ${stderr}`);
  }
  if (r.status === 2 && c.kind === "flags" && /^weightsoup: /.test(r.stderr)) return ok("exit 2 usage");
  return bad("exit-status", `the CLI exited ${r.status}: ${stderr}`);
}

// ---------------------------------------------------------------------------------------------------
// inspect

/**
 * inspect on the folder and on each of its .safetensors files. A report must be sane (whole numbers),
 * and a file weightsoup accepts whose dtypes the reference reader knows must parse with the reference
 * reader to the same tensors: weightsoup must not be laxer than the format. (Except for whitespace
 * before the header's `{`, which the Rust reader accepts and our test reader does not.)
 */
async function runInspect(folder: string): Promise<Verdict> {
  const outcomes: string[] = [];
  const files = (await readdir(folder)).filter((f) => f.endsWith(".safetensors")).sort();
  for (const path of [folder, ...files.map((f) => join(folder, f))]) {
    let report;
    try {
      report = await inspect(path);
    } catch (e) {
      const problem = rejectionProblem(e);
      if (problem) return bad("untyped", `inspect ${path}: ${problem}`);
      outcomes.push((e as WeightsoupError).code);
      continue;
    }
    for (const [what, n] of [["layers", report.layers], ["parameters", report.parameters], ["bytes", report.bytes]] as const) {
      if (!Number.isSafeInteger(n) || n < 0) return bad("bad-report", `inspect ${path}: ${what} is ${typeof n === "number" ? n : JSON.stringify(n)}`);
    }
    const bytes = path === folder ? new Uint8Array(0) : new Uint8Array(await readFile(path));
    if (path !== folder && report.tensors.every((t) => isRefDtype(t.dtype)) && !/^[ \t\n\r]/.test(String.fromCharCode(bytes[8] ?? 0x7b))) {
      let parsed;
      try {
        parsed = readSafetensors(bytes);
      } catch (e) {
        return bad("too-lax", `inspect accepts ${path}, the reference reader does not: ${(e as Error).message}`);
      }
      const problem = sameTensors(report.tensors, parsed.tensors, `inspect ${path} against the reference reader`);
      if (problem) return bad("bad-report", problem);
    }
    outcomes.push("success");
  }
  return ok(outcomes[0]!); // the folder's; the files' are checked above
}
