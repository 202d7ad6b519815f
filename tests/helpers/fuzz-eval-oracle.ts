// The evaluation fuzz oracle: runs evaluate / logits / generate (or `weightsoup eval|generate --json`)
// on one case and judges the outcome. Acceptable outcomes are
//  - success, with numbers that hang together: finite, tokens and predicted counts that follow from
//    the ids and the context (predicted = Σ(window length − 1)), perplexity = exp(nll), KL ≥ 0,
//    0 ≤ top-1 agreement ≤ 1 (a whole number of positions), generated ids inside the vocabulary that
//    stop only at an end-of-sequence id; and, where the independent reference can run the model, the
//    reference's numbers (logits, NLL, KL, agreement up to near-ties, greedy tokens);
//  - a rejection that is a WeightsoupError with an E_ code; from the CLI, exit 1 with `[E_...]` and no
//    stack trace, or exit 2 for flags.
// A success on inputs the rules say must be refused (fuzz-eval-rules.ts, and tensors the reference
// cannot run) is a failure, and so is anything else: another exception, a non-finite number.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { DEFAULT_TEXT } from "../../src/eval/default-text";
import { NodeFolder } from "../../src/io/node-folder";
import { resolveModel } from "../../src/model/resolve";
import { evaluate, generate, logits, readRecipe, type EvalSubject } from "../../src/node";
import { loadTokenizer, type Tokenizer } from "../../src/tokenizer/tokenizer";
import { referenceScores, resolveDecoderConfig } from "../reference/decoder";
import { CLI, WORKER_URL } from "./fixtures";
import { materializeEval, PLAIN_FLAG_VALUES, type EvalCase, type EvalCaseFiles, type IdValue, type OptionValue } from "./fuzz-eval-cases";
import { fixtureDir, fixtureVocab } from "./fuzz-eval-fixtures";
import { mergedReferenceModel, readReferenceModel, referenceOutcome, type ReferenceModel } from "./fuzz-eval-reference";
import { configRefusal, flagRefusal, idsRefusal, inputShapeRefusal, libraryRun, optionRefusal } from "./fuzz-eval-rules";
import { rejectionProblem, type Verdict } from "./fuzz-oracle";
import { windowStartBytes } from "./window-bytes";

export interface EvalOracleContext {
  /** Cases are written in folders under it. */
  root: string;
  /** The pristine fixtures (writeEvalFixtures). */
  pristine: string;
  cliTimeoutMs: number;
}

const ok = (outcome: string): Verdict => ({ ok: true, outcome });
const bad = (outcome: string, problem: string): Verdict => ({ ok: false, outcome, problem });

/** Default window of evaluate, and new tokens of generate, when not given (README). */
const DEFAULT_CONTEXT = 512;
const DEFAULT_NEW_TOKENS = 64;

export async function judgeEval(c: EvalCase, ctx: EvalOracleContext): Promise<Verdict> {
  const dir = await mkdtemp(join(ctx.root, "eval-"));
  try {
    const files = await materializeEval(c, ctx.pristine, dir);
    const plan = await planCase(c, files, ctx);
    const verdict = c.run === "cli-eval" || c.run === "cli-generate" ? await runCli(c, files, plan, dir, ctx) : await runLibrary(c, files, plan);
    if (plan.refuse && verdict.ok && /^(success|exit 0)/.test(verdict.outcome)) return bad("accepted-invalid", `${plan.refuse}, yet ${c.run} succeeded instead of a typed error`);
    return verdict;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------
// What the case means, independently of weightsoup

/** The case as the run will see it, and what it must do. */
interface CasePlan {
  /** Why the case must be refused, if it must. */
  refuse: string | undefined;
  /** Options in effect (CLI flags read as numbers where they are plain numbers). */
  options: Record<string, OptionValue>;
  /** The text actually given (after what argv or a file does to it), or undefined for ids. */
  text: string | undefined;
  /** Ids as the run sees them (tokenized; evaluate: truncated to maxTokens), when they could be worked out. */
  ids: IdValue[] | undefined;
  /** The model's tokenizer, when it has one that loads. */
  tokenizer: Tokenizer | undefined;
  vocab: number | undefined;
  context: number;
  maxNew: number;
  /** Without a tokenizer, the end-of-sequence ids the configs state (generation_config.json's, else config.json's). */
  configEosIds: number[];
}

const validInteger = (v: OptionValue | undefined, min: number): number | undefined => (typeof v === "number" && Number.isSafeInteger(v) && v >= min ? v : undefined);

/** Flags as the options they set (plain decimal integers and temperatures as numbers, the rest as given). */
function flagOptions(flags: Record<string, OptionValue>): Record<string, OptionValue> {
  return Object.fromEntries(Object.entries(flags).map(([k, v]) => [k, typeof v === "string" && /^\d+(\.\d+)?$/.test(v) ? Number(v) : v]));
}

async function planCase(c: EvalCase, files: EvalCaseFiles, ctx: EvalOracleContext): Promise<CasePlan> {
  const run = libraryRun(c.run);
  const cli = c.run !== run;
  const options = cli ? flagOptions(c.options) : c.options;
  const context = validInteger(options.context, 2) ?? DEFAULT_CONTEXT;
  const maxNew = validInteger(options.maxNewTokens, 1) ?? DEFAULT_NEW_TOKENS;
  const reasons: (string | undefined)[] = [];
  reasons.push(cli ? flagRefusal(c.run as "cli-eval" | "cli-generate", c.options) : optionRefusal(run, options));
  // The CLI evaluates its default text when given neither --text nor --ids.
  const input = c.run === "cli-eval" && "none" in c.input ? { text: DEFAULT_TEXT } : c.input;
  reasons.push(inputShapeRefusal({ ...c, input }));

  // config.json and the tensors.
  let config: unknown, configProblem: string | undefined;
  try {
    config = JSON.parse(await readFile(join(files.model, "config.json"), "utf8"));
    configProblem = configRefusal(config);
  } catch (e) {
    configProblem = `config.json cannot be read as JSON (${(e as Error).message.slice(0, 80)})`;
  }
  reasons.push(configProblem);
  let vocab: number | undefined, positions: number | undefined;
  if (configProblem === undefined) {
    const model = await readReferenceModel(files.model);
    if (typeof model !== "string") {
      const probe = referenceOutcome(model, [0]);
      if (!probe.ok && probe.why === "tensors") reasons.push(`the tensors do not fit the config (the reference: ${probe.reason})`);
      if (probe.ok || probe.why !== "config") {
        const resolved = resolveDecoderConfig(model.config);
        vocab = resolved.vocab;
        positions = resolved.maxPositions ?? undefined;
      }
    }
  }

  // The ids the run sees.
  const text = "text" in input && !("ids" in input && c.run === "logits") ? cliText(c, input.text) : undefined;
  let tokenizer: Tokenizer | undefined, ids: IdValue[] | undefined;
  const hasTokenizerFile = existsSync(join(files.model, "tokenizer.json"));
  if (text === undefined) {
    ids = "ids" in input ? input.ids : [];
    if (run === "generate" && options.chat === true && "ids" in input) reasons.push("chat with prompt ids (the template wraps a text)");
    // Given ids, a model with a tokenizer still decodes what it generates (and stops at its end-of-sequence ids).
    if (hasTokenizerFile) tokenizer = await loadTokenizer(await NodeFolder.open(files.model)).catch(() => undefined);
  } else if (!hasTokenizerFile) {
    reasons.push("a text for a model without tokenizer.json");
  } else {
    try {
      tokenizer = await loadTokenizer(await NodeFolder.open(files.model));
      if (run === "generate" && options.chat === true) {
        if (!(await hasChatTemplate(files.model))) reasons.push("--chat for a model without a chat template");
        const prompt = tokenizer?.chatPrompt([{ role: "user", content: text }]);
        ids = prompt === undefined ? undefined : tokenizer!.encode(prompt, { addSpecialTokens: false });
      } else {
        ids = tokenizer?.encode(text);
      }
    } catch {
      // A tokenizer that does not load (or encode) is the run's to report, typed; nothing more is asked.
      tokenizer = undefined;
      ids = undefined;
    }
  }
  if (run === "evaluate" && ids !== undefined) {
    const maxTokens = validInteger(options.maxTokens, 2);
    if (maxTokens !== undefined) ids = ids.slice(0, maxTokens);
  }
  if (ids !== undefined && vocab !== undefined) {
    const againstVocabs = c.against.map(fixtureVocab);
    const againstPositions = await Promise.all(c.against.map(async (a) => resolveDecoderConfig(JSON.parse(await readFile(join(fixtureDir(ctx.pristine, a), "config.json"), "utf8"))).maxPositions));
    const limits = [positions, ...againstPositions].filter((p): p is number => typeof p === "number");
    // Generation feeds the prompt and every new token but the last: P + N - 1 positions.
    const longest = run === "evaluate" ? Math.min(context, ids.length) : run === "generate" ? ids.length + maxNew - 1 : ids.length;
    reasons.push(idsRefusal(ids, { vocabs: [vocab, ...againstVocabs], positions: limits.length ? Math.min(...limits) : undefined, longest, minimum: run === "evaluate" ? 2 : 1 }));
    const other = againstVocabs.find((v) => v !== vocab);
    if (other !== undefined) reasons.push(`an against model has a vocabulary of ${other}, the evaluated model ${vocab}`);
  }
  return { refuse: reasons.find((r) => r !== undefined), options, text, ids, tokenizer, vocab, context, maxNew, configEosIds: await configEosIds(files.model) };
}

/** The text as the run receives it: argv cannot carry NUL and turns lone surrogates into U+FFFD, as a UTF-8 file does. */
function cliText(c: EvalCase, text: string): string {
  if (c.run === "cli-generate") return Buffer.from(text.replaceAll("\0", ""), "utf8").toString("utf8");
  if (c.run === "cli-eval") return Buffer.from(text, "utf8").toString("utf8");
  return text;
}

async function configEosIds(dir: string): Promise<number[]> {
  for (const file of ["generation_config.json", "config.json"]) {
    let stated: unknown;
    try {
      stated = (JSON.parse(await readFile(join(dir, file), "utf8")) as Record<string, unknown> | null)?.eos_token_id;
    } catch {
      continue;
    }
    const ids = (Array.isArray(stated) ? stated : [stated]).filter((v): v is number => Number.isSafeInteger(v) && (v as number) >= 0);
    if (ids.length) return ids;
  }
  return [];
}

async function hasChatTemplate(dir: string): Promise<boolean> {
  if (existsSync(join(dir, "chat_template.jinja"))) return true;
  try {
    const config = JSON.parse(await readFile(join(dir, "tokenizer_config.json"), "utf8")) as Record<string, unknown>;
    const t = config.chat_template;
    return t !== undefined && t !== null && t !== "" && !(Array.isArray(t) && t.length === 0);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------
// Running

function subjectOf(files: EvalCaseFiles): Promise<EvalSubject> | EvalSubject {
  if (files.recipe) return readRecipe(files.recipe).then((recipe) => ({ name: files.subject, recipe, models: (n: string) => resolveModel(n, dirname(files.recipe!)) }));
  return NodeFolder.open(files.model).then((model) => ({ name: files.subject, model }));
}

/** The input as the library takes it (logits: ids only). */
function libraryInput(c: EvalCase): Record<string, unknown> {
  const input = c.input;
  if (c.run === "logits") return { ids: "ids" in input ? input.ids : [] };
  const key = c.run === "generate" ? "prompt" : "text";
  return { ...("ids" in input ? { ids: input.ids } : {}), ...("text" in input ? { [key]: input.text } : {}) };
}

async function runLibrary(c: EvalCase, files: EvalCaseFiles, plan: CasePlan): Promise<Verdict> {
  let result: unknown;
  try {
    const common = { ...c.options, workerUrl: WORKER_URL };
    const input = libraryInput(c);
    switch (c.run) {
      case "evaluate":
        result = await evaluate([files.subject], { ...common, ...input, against: files.against } as never);
        break;
      case "logits":
        result = await logits(await subjectOf(files), input.ids as number[], common as never);
        break;
      case "generate":
        result = await generate(files.subject, { ...common, ...input } as never);
        break;
    }
  } catch (e) {
    const problem = rejectionProblem(e);
    if (problem) return bad("untyped", problem);
    // A worker that dies is the pool's last resort, not a refusal of the input: bad input must be
    // refused before it can take a worker down.
    const code = (e as { code: string }).code;
    return code === "E_WORKER" ? bad("worker", `a worker stopped: ${(e as Error).message}`) : ok(code);
  }
  return judgeSuccess(c, files, plan, result, "success");
}

const FLAGS: Record<string, string> = { context: "--context", maxTokens: "--max-tokens", workers: "--workers", memoryBudget: "--memory-budget", seed: "--seed", maxNewTokens: "--max-new-tokens", temperature: "--temperature" };

async function runCli(c: EvalCase, files: EvalCaseFiles, plan: CasePlan, dir: string, ctx: EvalOracleContext): Promise<Verdict> {
  const args = [CLI, c.run === "cli-eval" ? "eval" : "generate", files.subject, "--json"];
  if (c.run === "cli-eval") args.push("--quiet", ...files.against.flatMap((a) => ["--against", a]));
  for (const [key, value] of Object.entries(c.options)) {
    if (key === "chat") {
      if (value === true) args.push("--chat");
    } else args.push(FLAGS[key]!, String(value));
  }
  if ("ids" in c.input) {
    const path = join(dir, "ids.json");
    await writeFile(path, `[${c.input.ids.map((id) => (typeof id === "number" && !Number.isFinite(id) ? String(id) : JSON.stringify(id))).join(", ")}]`);
    args.push("--ids", path);
  }
  if ("text" in c.input) {
    if (c.run === "cli-generate") args.push("--prompt", c.input.text.replaceAll("\0", ""));
    else {
      const path = join(dir, "text.txt");
      await writeFile(path, c.input.text);
      args.push("--text", path);
    }
  }
  const r = await runChild(args, ctx.cliTimeoutMs);
  const stderr = r.stderr.slice(0, 2_000);
  if (r.status === null) return bad("hang", `the CLI was killed (${r.signal}) after ${ctx.cliTimeoutMs / 1000} s; stderr: ${stderr}`);
  if (/^\s+at\s/m.test(r.stderr) || /unexpected error/.test(r.stderr)) return bad("stack-trace", `the CLI exited ${r.status} with a stack trace: ${stderr}`);
  if (r.status === 0) {
    let result: unknown;
    try {
      result = JSON.parse(r.stdout);
    } catch {
      return bad("bad-output", `the CLI exited 0 but stdout is not JSON: ${r.stdout.slice(0, 300)}`);
    }
    return judgeSuccess(c, files, plan, result, "exit 0");
  }
  if (r.status === 1) {
    const code = /^weightsoup: \[(E_[A-Z0-9_]+)\] /m.exec(r.stderr)?.[1];
    return code ? ok(`exit 1 ${code}`) : bad("untyped", `the CLI exited 1 without an [E_...] code: ${stderr}`);
  }
  if (r.status === 2 && /^weightsoup: /.test(r.stderr) && usageCase(c)) return ok("exit 2 usage");
  return bad("exit-status", `the CLI exited ${r.status}: ${stderr}`);
}

/** Exit 2 is for flags: a value outside its flag's plain valid ones, or a missing or doubled input. */
function usageCase(c: EvalCase): boolean {
  const plain: Record<string, readonly string[]> = c.run === "cli-eval" ? PLAIN_FLAG_VALUES.eval : PLAIN_FLAG_VALUES.generate;
  const odd = Object.entries(c.options).some(([k, v]) => k !== "chat" && !(typeof v === "string" && (plain[k] ?? []).includes(v)));
  return odd || ("ids" in c.input && "text" in c.input) || (c.run === "cli-generate" && ("none" in c.input || ("ids" in c.input && c.options.chat === true)));
}

export interface ChildResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs node with `args` (killed after timeoutMs), collecting stdout and stderr. */
export function runChild(args: string[], timeoutMs: number, cwd?: string): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs, killSignal: "SIGKILL", ...(cwd ? { cwd } : {}) });
    let stdout = "", stderr = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => { if (stdout.length < 10_000_000) stdout += s; });
    child.stderr.setEncoding("utf8").on("data", (s: string) => { if (stderr.length < 100_000) stderr += s; });
    child.on("error", reject);
    child.on("close", (status, signal) => resolve({ status, signal, stdout, stderr }));
  });
}

// ---------------------------------------------------------------------------------------------------
// Judging a success

const finite = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);

/** The verdict on a success: "success" when the reference confirmed the numbers, "success unchecked" when it could not run the case. */
async function judgeSuccess(c: EvalCase, files: EvalCaseFiles, plan: CasePlan, result: unknown, outcome: "success" | "exit 0"): Promise<Verdict> {
  if (plan.refuse) return ok(outcome); // judged as accepted-invalid by the caller
  const run = libraryRun(c.run);
  const consistency = run === "evaluate" ? evaluationProblem(files, plan, result) : run === "logits" ? logitsProblem(plan, result, files.poisoned) : generationProblem(plan, result);
  if (consistency) return bad("inconsistent", consistency);
  const values = files.poisoned ? UNCHECKED : await valuesProblem(c, files, plan, result);
  if (values.problem) return bad("wrong-values", values.problem);
  if (!values.checked && process.env.FUZZ_EVAL_DEBUG) console.error(`unchecked: ${values.why}\n  ${JSON.stringify(c)}`);
  return ok(values.checked ? outcome : values.why === "sampled" ? `${outcome} sampled` : `${outcome} unchecked`);
}

interface EvaluationResultJson {
  model: string;
  tokens: number;
  predicted: number;
  nll: number;
  perplexity: number;
  bitsPerByte: number | null;
  against: { model: string; kl: number; top1Agreement: number }[];
}

/** The counts that follow from the ids and the context: tokens, predicted = Σ(window length − 1). */
export function expectedCounts(tokens: number, context: number): { tokens: number; predicted: number } {
  let predicted = 0;
  for (let at = 0; at < tokens; at += context) predicted += Math.min(context, tokens - at) - 1;
  return { tokens, predicted };
}

/** Why an evaluate result is not a consistent success for `tokens` ids in windows of `context`. */
export function evaluationResultProblem(result: unknown, expect: { model: string; against: string[]; tokens: number | undefined; context: number; poisoned: boolean; bitsPerByte: "null" | "number" | "any" }): string | undefined {
  const results = (result as { results?: unknown })?.results;
  if (!Array.isArray(results) || results.length !== 1) return `expected one result, got ${JSON.stringify(result)?.slice(0, 200)}`;
  const r = results[0] as EvaluationResultJson;
  if (r.model !== expect.model) return `the result names ${JSON.stringify(r.model)}, not ${JSON.stringify(expect.model)}`;
  if (expect.tokens !== undefined) {
    const want = expectedCounts(expect.tokens, expect.context);
    if (r.tokens !== want.tokens || r.predicted !== want.predicted) return `tokens ${r.tokens}, predicted ${r.predicted}; ${want.tokens} ids in windows of ${expect.context} give ${want.tokens} and ${want.predicted}`;
  } else if (!Number.isSafeInteger(r.tokens) || !Number.isSafeInteger(r.predicted) || r.predicted < 1 || r.predicted >= r.tokens) {
    return `tokens ${r.tokens}, predicted ${r.predicted}`;
  }
  if (!expect.poisoned) {
    if (!finite(r.nll) || r.nll < -1e-6) return `nll is ${r.nll}`;
    if (!finite(r.perplexity) || Math.abs(r.perplexity - Math.exp(r.nll)) > 1e-9 * r.perplexity) return `perplexity ${r.perplexity} is not exp(nll ${r.nll}) = ${Math.exp(r.nll)}`;
    if (r.bitsPerByte !== null && (!finite(r.bitsPerByte) || r.bitsPerByte < 0)) return `bitsPerByte is ${r.bitsPerByte}`;
  }
  if (expect.bitsPerByte === "null" && r.bitsPerByte !== null) return `bitsPerByte is ${r.bitsPerByte} without a tokenizer to count bytes with`;
  if (expect.bitsPerByte === "number" && r.bitsPerByte === null) return "bitsPerByte is null for a text";
  if (!Array.isArray(r.against) || r.against.length !== expect.against.length) return `${r.against?.length} against results for ${expect.against.length} models`;
  for (const [i, a] of r.against.entries()) {
    if (a.model !== expect.against[i]) return `against result ${i} names ${JSON.stringify(a.model)}, not ${JSON.stringify(expect.against[i])}`;
    if (!expect.poisoned && (!finite(a.kl) || a.kl < -1e-6)) return `KL against ${a.model} is ${a.kl}`;
    const agreed = a.top1Agreement * r.predicted;
    if (!(a.top1Agreement >= 0 && a.top1Agreement <= 1) || Math.abs(agreed - Math.round(agreed)) > 1e-6) return `top-1 agreement ${a.top1Agreement} is not a share of ${r.predicted} positions`;
  }
  return undefined;
}

function evaluationProblem(files: EvalCaseFiles, plan: CasePlan, result: unknown): string | undefined {
  const hasTokenizer = existsSync(join(files.model, "tokenizer.json"));
  return evaluationResultProblem(result, {
    model: files.subject, against: files.against, tokens: plan.ids?.length, context: plan.context, poisoned: files.poisoned,
    bitsPerByte: plan.text !== undefined ? "number" : hasTokenizer ? "any" : "null",
  });
}

function logitsProblem(plan: CasePlan, result: unknown, poisoned: boolean): string | undefined {
  if (!(result instanceof Float32Array)) return `logits returned ${Object.prototype.toString.call(result)}`;
  if (plan.ids !== undefined && plan.vocab !== undefined && result.length !== plan.ids.length * plan.vocab) return `${result.length} logits for ${plan.ids.length} ids × vocabulary ${plan.vocab}`;
  if (!poisoned && !result.every(Number.isFinite)) return "a logit is not finite";
  return undefined;
}

interface GenerationResultJson {
  model: string;
  promptTokens: number;
  ids: number[];
  text: string;
}

function generationProblem(plan: CasePlan, result: unknown): string | undefined {
  const r = result as GenerationResultJson;
  if (!Array.isArray(r?.ids)) return `generate returned ${JSON.stringify(result)?.slice(0, 200)}`;
  if (plan.ids !== undefined && r.promptTokens !== plan.ids.length) return `promptTokens ${r.promptTokens} for a prompt of ${plan.ids.length} ids`;
  if (r.ids.length < 1 || r.ids.length > plan.maxNew) return `${r.ids.length} new tokens; between 1 and ${plan.maxNew} were asked for`;
  if (plan.vocab !== undefined && !r.ids.every((id) => Number.isSafeInteger(id) && id >= 0 && id < plan.vocab!)) return `generated ids ${r.ids} are not all inside the vocabulary of ${plan.vocab}`;
  const eos = new Set(plan.tokenizer?.eosTokenIds ?? plan.configEosIds);
  const early = r.ids.findIndex((id) => eos.has(id));
  if (early !== -1 && early !== r.ids.length - 1) return `generation went on after the end-of-sequence id ${r.ids[early]} (ids ${r.ids})`;
  if (r.ids.length < plan.maxNew && !eos.has(r.ids.at(-1)!)) return `generation stopped after ${r.ids.length} of ${plan.maxNew} tokens without an end-of-sequence id (ids ${r.ids})`;
  if (typeof r.text !== "string") return `text is ${JSON.stringify(r.text)}`;
  if (plan.tokenizer) {
    const decoded = plan.tokenizer.decode(r.ids, { skipSpecialTokens: true });
    if (r.text !== decoded) return `the streamed text ${JSON.stringify(r.text)} is not the decoded ids ${JSON.stringify(decoded)}`;
  } else if (r.text !== "") return `a model without a tokenizer produced text ${JSON.stringify(r.text)}`;
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// Values against the reference

/** Allowed difference from the float64 reference: float32 arithmetic, relative to the logits' size. */
const tolerance = (logits: Iterable<Float64Array>) => {
  let scale = 1;
  for (const z of logits) for (const v of z) scale = Math.max(scale, Math.abs(v));
  return 2e-3 * scale;
};

async function subjectReference(files: EvalCaseFiles): Promise<ReferenceModel | undefined> {
  const model = files.recipe ? await mergedReferenceModel(dirname(files.recipe), files.recipe) : await readReferenceModel(files.model);
  return typeof model === "string" ? undefined : model;
}

/** Whether a success was held to the reference's numbers (it cannot run every model weightsoup accepts), or how it missed them. */
type Checked = { checked: boolean; problem?: string; why?: string };
const CHECKED: Checked = { checked: true }, UNCHECKED: Checked = { checked: false };
const unchecked = (why: string): Checked => ({ checked: false, why });

async function valuesProblem(c: EvalCase, files: EvalCaseFiles, plan: CasePlan, result: unknown): Promise<Checked> {
  if (plan.ids === undefined) return UNCHECKED;
  const model = await subjectReference(files);
  if (!model) return unchecked("the reference cannot read the model");
  const ids = plan.ids as number[];
  const run = libraryRun(c.run);
  if (run === "logits") {
    const ref = referenceOutcome(model, ids);
    if (!ref.ok) return unchecked(ref.reason);
    const z = result as Float32Array, tol = tolerance([ref.logits]);
    let worst = 0, at = 0;
    for (let i = 0; i < z.length; i++) if (Math.abs(z[i]! - ref.logits[i]!) > worst) [worst, at] = [Math.abs(z[i]! - ref.logits[i]!), i];
    return worst > tol ? { checked: true, problem: `logit ${at} differs from the reference by ${worst} (tolerance ${tol})` } : CHECKED;
  }
  if (run === "generate") {
    const r = result as GenerationResultJson;
    const temperature = plan.options.temperature;
    if (typeof temperature === "number" && temperature > 0) return unchecked("sampled"); // only the consistency checks
    const seq = [...ids, ...r.ids];
    const ref = referenceOutcome(model, seq.slice(0, -1));
    if (!ref.ok) return unchecked(ref.reason);
    const V = ref.vocab, tol = tolerance([ref.logits]);
    for (let s = 0; s < r.ids.length; s++) {
      const row = ref.logits.subarray((ids.length - 1 + s) * V, (ids.length + s) * V);
      const best = Math.max(...row);
      if (row[r.ids[s]!]! < best - tol) return { checked: true, problem: `greedy step ${s} chose id ${r.ids[s]} (reference logit ${row[r.ids[s]!]}), the reference's largest logit is ${best}` };
    }
    return CHECKED;
  }
  // evaluate
  const r = (result as { results: EvaluationResultJson[] }).results[0]!;
  const windows: number[][] = [];
  for (let at = 0; at < ids.length; at += plan.context) windows.push(ids.slice(at, at + plan.context));
  const against: ReferenceModel[] = [];
  for (const a of files.against) {
    const m = await readReferenceModel(a);
    if (typeof m === "string") return UNCHECKED;
    against.push(m);
  }
  const scored = [];
  for (const w of windows) {
    const e = referenceOutcome(model, w);
    if (!e.ok) return unchecked(e.reason);
    const as = against.map((a) => referenceOutcome(a, w));
    if (as.some((a) => !a.ok)) return UNCHECKED;
    scored.push({ ids: w, logits: e.logits, against: as.map((a) => (a as { logits: Float64Array }).logits) });
  }
  const V = plan.vocab!;
  const ref = referenceScores(scored, V);
  const tol = tolerance(scored.flatMap((s) => [s.logits, ...s.against]));
  if (Math.abs(r.nll - ref.nllMean) > tol) return { checked: true, problem: `nll ${r.nll}, the reference ${ref.nllMean} (tolerance ${tol})` };
  for (const [i, a] of r.against.entries()) {
    if (Math.abs(a.kl - ref.against[i]!.kl) > 2 * tol) return { checked: true, problem: `KL against ${a.model} ${a.kl}, the reference ${ref.against[i]!.kl} (tolerance ${2 * tol})` };
    const ambiguous = scored.reduce((n, s) => n + nearTies(s.logits, s.ids.length, V, tol) + nearTies(s.against[i]!, s.ids.length, V, tol), 0);
    const diff = Math.abs(a.top1Agreement - ref.against[i]!.top1Agreement) * ref.predicted;
    if (diff > ambiguous + 1e-6) return { checked: true, problem: `top-1 agreement with ${a.model} ${a.top1Agreement}, the reference ${ref.against[i]!.top1Agreement}, beyond the ${ambiguous} near-tied positions` };
  }
  if (r.bitsPerByte !== null && plan.text !== undefined && plan.ids!.length === (plan.tokenizer?.encode(plan.text).length ?? -1)) {
    // The whole text was evaluated: bits per byte counts its UTF-8 bytes but those of each window's first token.
    const expected = ref.nllSum / Math.LN2 / (new TextEncoder().encode(plan.text).length - windowStartBytes(plan.tokenizer!, plan.ids! as number[], plan.context));
    if (Math.abs(r.bitsPerByte - expected) > tol) return { checked: true, problem: `bitsPerByte ${r.bitsPerByte}, the reference ${expected}` };
  }
  return CHECKED;
}

/** Predicted positions of a window whose two largest logits are within tol (where argmax may differ in float32). */
function nearTies(z: Float64Array, T: number, V: number, tol: number): number {
  let n = 0;
  for (let t = 0; t + 1 < T; t++) {
    let first = -Infinity, second = -Infinity;
    for (let v = 0; v < V; v++) {
      const x = z[t * V + v]!;
      if (x > first) [first, second] = [x, first];
      else if (x > second) second = x;
    }
    if (first - second <= 2 * tol) n++;
  }
  return n;
}
