// The fuzz suite of issue 8: property-based tests (fast-check) that mutate valid safetensors files,
// config.json files, recipes and merge options, run weightsoup on them (mostly planning only; a share
// runs the whole merge through the library or the CLI, or inspect), and require every outcome to be
// either a success whose output re-inspects cleanly or a typed WeightsoupError that leaves no output;
// never another exception, a hang, or an output that looks complete after a failure (fuzz-oracle.ts).
// Issue 9's evaluation and generation get the same treatment: tiny valid decoders with their
// config.json, tensors, tokenizer files, ids, texts and options mutated, run through evaluate, logits,
// generate and the CLI, judged by fuzz-eval-oracle.ts (consistent counts, finite numbers, the
// reference's values, or a typed refusal; refusals the rules of fuzz-eval-rules.ts demand).
// Issue 11's measuring commands: `--vary KEY=SPEC` arguments mutated and run through the library's
// parse and check functions (and, for small grids, a whole sweep() whose points must equal evaluate()
// of their recipes), and mutated command lines of path, soup, diagnose, sweep and extract-lora, judged
// by fuzz-measure-oracle.ts against the README's rules worked out in fuzz-measure-rules.ts.
// Cases run in a runner thread so hangs are caught (fuzz-runner.ts). Seeds, run counts and replaying a
// failure: fuzz-settings.ts. This file is also the runner thread's script (see the end).
// Runs per property in npm test (FUZZ_LONG: ten times as many), about a minute in all on an idle
// 2-core machine: safetensors 110, config.json 60, recipes 140, library options 30, merge flags 8,
// evaluation 30, sweep keys 150 (about one in ten a whole sweep), measuring command lines 14. Each
// property's fixed examples run first and count in its runs.
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test, type TestContext } from "node:test";
import { workerData } from "node:worker_threads";
import fc from "fast-check";
import { RecipeError, ValidationError, WeightsoupError } from "../src/errors";
import { PRISTINE, type FuzzCase } from "./helpers/fuzz-cases";
import { CONFIG_EXAMPLES, FILE_EXAMPLES, FLAG_EXAMPLES, OPTION_EXAMPLES, RECIPE_EXAMPLES } from "./helpers/fuzz-examples";
import { fuzzModels, RECIPES, writeFuzzModels } from "./helpers/fuzz-fixtures";
import { configMutationsArb } from "./helpers/fuzz-model-config";
import { judge, leftoverProblem, rejectionProblem, type Verdict } from "./helpers/fuzz-oracle";
import { flagsCaseArb, optionsCaseArb } from "./helpers/fuzz-options";
import { recipeMutationsArb } from "./helpers/fuzz-recipes";
import { CaseRunner, serveCases } from "./helpers/fuzz-runner";
import { evalCaseArb, type EvalCase } from "./helpers/fuzz-eval-cases";
import { EVAL_EXAMPLES } from "./helpers/fuzz-eval-examples";
import { EVAL_MODELS, writeEvalFixtures } from "./helpers/fuzz-eval-fixtures";
import { evaluationResultProblem, judgeEval } from "./helpers/fuzz-eval-oracle";
import { configRefusal, idsRefusal, optionRefusal } from "./helpers/fuzz-eval-rules";
import { fileMutationsArb } from "./helpers/fuzz-safetensors";
import { measureCliCaseArb, sweepKeyCaseArb, type MeasureCase } from "./helpers/fuzz-measure-cases";
import { MEASURE_CLI_EXAMPLES, SWEEP_KEY_EXAMPLES } from "./helpers/fuzz-measure-examples";
import { writeMeasureFixtures } from "./helpers/fuzz-measure-fixtures";
import { judgeMeasure } from "./helpers/fuzz-measure-oracle";
import { expectVary, specValues } from "./helpers/fuzz-measure-rules";
import { fuzzSettings } from "./helpers/fuzz-settings";
import { removeDir, tempDir } from "./helpers/fixtures";

interface RunnerData {
  fuzzRunner: true;
  root: string;
  cliTimeoutMs: number;
}

/** Where the evaluation fixtures are written, under the suite's root. */
const EVAL_PRISTINE = "pristine-eval";
/** Where the measuring commands' fixtures are written. */
const MEASURE_PRISTINE = "pristine-measure";

type AnyCase = FuzzCase | EvalCase | MeasureCase;

const templateArb = fc.nat(RECIPES.length - 1);
/** Mostly plan-only (fast); a share runs the whole merge, the CLI or inspect. */
const runArb = fc.oneof(
  { weight: 12, arbitrary: fc.constant("plan" as const) },
  { weight: 3, arbitrary: fc.constant("merge" as const) },
  { weight: 1, arbitrary: fc.constant("cli" as const) },
  { weight: 2, arbitrary: fc.constant("inspect" as const) },
);
const recipeRunArb = fc.oneof(
  { weight: 12, arbitrary: fc.constant("plan" as const) },
  { weight: 3, arbitrary: fc.constant("merge" as const) },
  { weight: 1, arbitrary: fc.constant("cli" as const) },
);

function defineSuite(): void {
  const settings = fuzzSettings();
  let root: string;
  let runner: CaseRunner<AnyCase>;

  before(async () => {
    root = await tempDir("ws-fuzz-");
    await writeFuzzModels(join(root, PRISTINE), fuzzModels());
    await writeEvalFixtures(join(root, EVAL_PRISTINE));
    await writeMeasureFixtures(join(root, MEASURE_PRISTINE));
    const data: RunnerData = { fuzzRunner: true, root, cliTimeoutMs: Math.max(1_000, settings.caseTimeoutMs - 5_000) };
    runner = new CaseRunner(new URL(import.meta.url), data, settings.caseTimeoutMs);
  });
  after(async () => {
    await runner.close();
    await removeDir(root);
  });

  /** Runs a property with the suite's seed and budget; prints the seed and the tally of outcomes. */
  async function check<C extends AnyCase>(t: TestContext, arb: fc.Arbitrary<C>, quickRuns: number, examples: C[]): Promise<void> {
    const numRuns = settings.runs(quickRuns);
    const limit = settings.timeLimitMs(quickRuns);
    t.diagnostic(`seed ${settings.seed}, ${numRuns} runs (the same cases again: FUZZ_SEED=${settings.seed}; one failure: add FUZZ_PATH=<its path>, see fuzz-settings.ts)`);
    const tally = new Map<string, number>();
    const seconds = new Map<string, [number, number]>();
    const failures = new Map<string, { c: C; verdict: Verdict }>();
    const property = fc.asyncProperty(arb, async (c) => {
      const started = performance.now();
      const verdict = await runner.run(c);
      const [n, total] = seconds.get(c.run) ?? [0, 0];
      seconds.set(c.run, [n + 1, total + (performance.now() - started) / 1000]);
      tally.set(verdict.outcome, (tally.get(verdict.outcome) ?? 0) + 1);
      if (verdict.ok) return;
      if (settings.only && !`${verdict.outcome}: ${verdict.problem}`.includes(settings.only)) return;
      if (!settings.survey) throw new Error(`${verdict.outcome}: ${verdict.problem}`);
      const signature = failureSignature(verdict);
      const seen = failures.get(signature);
      if (!seen || JSON.stringify(c).length < JSON.stringify(seen.c).length) failures.set(signature, { c, verdict });
    });
    try {
      await fc.assert(property, {
        seed: settings.seed, numRuns, examples: settings.examples ? examples.map((e) => [e]) : [],
        ...(settings.path ? { path: settings.path } : {}),
        ...(limit ? { plugins: [fc.interruptAfterTimeLimit(limit)] } : {}),
      });
    } finally {
      t.diagnostic(`outcomes: ${[...tally].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(", ")}`);
      t.diagnostic(`time: ${[...seconds].map(([run, [n, s]]) => `${n} ${run} ${s.toFixed(1)} s`).join(", ")}`);
    }
    if (failures.size) {
      const list = [...failures.values()].map(({ c, verdict }, i) => `${i + 1}. ${verdict.outcome}: ${verdict.problem}\n   case: ${fc.stringify(c).slice(0, 3_000)}`);
      assert.fail(`${failures.size} distinct failures:\n${list.join("\n")}`);
    }
  }

  describe("fuzz", () => {
    test("the oracle accepts typed errors and flags untyped ones and leftovers", async () => {
      assert.equal(rejectionProblem(new RecipeError("E_RECIPE", "recipe: bad")), undefined);
      assert.match(rejectionProblem(new TypeError("Cannot convert undefined or null to object"))!, /other than a WeightsoupError: TypeError/);
      assert.match(rejectionProblem(new WeightsoupError("" as never, "no code"))!, /code/);
      assert.match(rejectionProblem(new ValidationError([new RecipeError("E_RECIPE", "x"), new RangeError("deep") as never]))!, /E_VALIDATION problem: .*RangeError/);
      const out = join(root, "leftover");
      assert.equal(await leftoverProblem(out), undefined, "an absent folder is no leftover");
      await mkdir(out);
      assert.equal(await leftoverProblem(out), undefined, "an empty folder is no leftover");
      await writeFile(join(out, "README.md"), "");
      assert.equal(await leftoverProblem(out), undefined, "a folder without weights or config is no model");
      await writeFile(join(out, "config.json"), "{}");
      assert.match((await leftoverProblem(out))!, /config\.json/);
      await writeFile(join(out, "model-00001-of-00002.safetensors"), "");
      assert.match((await leftoverProblem(out))!, /model-00001-of-00002\.safetensors/);
    });

    test("the oracle's success path: every fixture recipe plans, inspects and merges to the reference's values; one also sharded and through the CLI", async () => {
      const pristine = { target: "a" as const, header: [], bytes: [], index: [] };
      for (const [template, { name }] of RECIPES.entries()) {
        const cases: FuzzCase[] = [
          { kind: "files", run: "plan", template, files: pristine },
          { kind: "files", run: "inspect", template, files: pristine },
          { kind: "options", run: "merge", options: { template, options: {} } },
        ];
        if (template === 0) cases.push({ kind: "files", run: "cli", template, files: pristine }, { kind: "files", run: "merge", template, files: pristine });
        for (const c of cases) {
          const verdict = await runner.run(c);
          assert.ok(verdict.ok, `${name}, ${c.run}: ${verdict.problem}`);
          assert.match(verdict.outcome, /^(success|exit 0)$/, `${name}, ${c.run}`);
        }
      }
    });

    test("safetensors files: header, byte and index mutations", (t) =>
      check(t, fc.record({ kind: fc.constant("files" as const), run: runArb, template: templateArb, files: fileMutationsArb }), 110, FILE_EXAMPLES));

    test("config.json mutations", (t) =>
      check(t, fc.record({ kind: fc.constant("config" as const), run: runArb, template: templateArb, config: configMutationsArb }), 60, CONFIG_EXAMPLES));

    test("recipe mutations", (t) =>
      check(t, fc.record({ kind: fc.constant("recipe" as const), run: recipeRunArb, recipe: recipeMutationsArb }), 140, RECIPE_EXAMPLES));

    test("library option mutations (whole merges, values checked against the reference)", (t) =>
      check(t, fc.record({ kind: fc.constant("options" as const), run: fc.constant("merge" as const), options: optionsCaseArb }), 30, OPTION_EXAMPLES));

    test("command-line flag mutations", (t) =>
      check(t, fc.record({ kind: fc.constant("flags" as const), run: fc.constant("cli" as const), flags: flagsCaseArb }), 8, FLAG_EXAMPLES));

    test("the evaluation oracle flags inconsistent counts, non-finite numbers and inputs that must be refused", () => {
      const result = (r: Record<string, unknown>) => ({ results: [{ model: "m", tokens: 9, predicted: 7, nll: 2, perplexity: Math.exp(2), bitsPerByte: null, against: [], ...r }] });
      const expect = { model: "m", against: [], tokens: 9, context: 5, poisoned: false, bitsPerByte: "null" as const };
      assert.equal(evaluationResultProblem(result({}), expect), undefined, "9 ids in windows of 5: 4 + 3 predicted");
      assert.match(evaluationResultProblem(result({ predicted: 8 }), expect)!, /predicted 8/);
      assert.match(evaluationResultProblem(result({ nll: NaN, perplexity: NaN }), expect)!, /nll is NaN/);
      assert.match(evaluationResultProblem(result({ perplexity: 7 }), expect)!, /not exp/);
      assert.match(evaluationResultProblem(result({ bitsPerByte: Infinity }), { ...expect, bitsPerByte: "any" })!, /bitsPerByte is Infinity/);
      assert.match(evaluationResultProblem(result({ against: [{ model: "a", kl: -0.1, top1Agreement: 0.5 }] }), { ...expect, against: ["a"] })!, /KL/);
      assert.match(evaluationResultProblem(result({ against: [{ model: "a", kl: 0.1, top1Agreement: 0.5 }] }), { ...expect, against: ["a"] })!, /share of 7/);
      assert.match(configRefusal({ model_type: "mamba" })!, /model_type/);
      assert.match(configRefusal({ model_type: "llama", num_attention_heads: 4, num_key_value_heads: 3 })!, /multiple/);
      assert.match(configRefusal({ model_type: "qwen3", head_dim: null })!, /head_dim/);
      assert.match(configRefusal({ model_type: "llama", rope_parameters: "x" })!, /rope_parameters/);
      assert.match(configRefusal({ model_type: "llama", rope_scaling: { rope_type: "llama3", factor: 8 } })!, /llama3/);
      assert.equal(configRefusal({ model_type: "llama", rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4 }, rope_parameters: false }), undefined);
      assert.match(idsRefusal([1, 2, 160], { vocabs: [160], positions: undefined, longest: 3, minimum: 2 })!, /160/);
      assert.match(idsRefusal([1, 0.5], { vocabs: [160], positions: undefined, longest: 2, minimum: 2 })!, /0\.5/);
      assert.match(idsRefusal([1, 2, 3], { vocabs: [160], positions: 2, longest: 3, minimum: 1 })!, /positions/);
      assert.match(optionRefusal("evaluate", { context: 1 })!, /context/);
      assert.match(optionRefusal("generate", { temperature: -1 })!, /temperature/);
      assert.match(optionRefusal("generate", { onWarning: "print" })!, /onWarning/);
    });

    test("the evaluation oracle's success path: every fixture evaluates to the reference's numbers; each way of running once", async () => {
      const cases: EvalCase[] = EVAL_MODELS.map((model) => ({
        kind: "eval", run: "evaluate", model, recipe: false, config: [], tensors: [], tokenizer: [], input: { ids: [1, 3, 5, 7, 9, 11, 13] }, against: [], options: { context: 4, workers: 1 },
      }));
      const first = cases[0]!;
      cases.push(
        { ...first, run: "logits", options: {} }, { ...first, run: "generate", options: { maxNewTokens: 2 } }, { ...first, recipe: true },
        { ...first, run: "cli-eval", options: { context: "4" } }, { ...first, run: "cli-generate", options: { maxNewTokens: "2" } },
      );
      for (const c of cases) {
        const verdict = await runner.run(c);
        assert.ok(verdict.ok, `${c.model}, ${c.run}${c.recipe ? " (recipe)" : ""}: ${verdict.problem}`);
        assert.match(verdict.outcome, /^(success|exit 0)$/, `${c.model}, ${c.run}`);
      }
    });

    test("evaluation and generation: config, tensor, tokenizer, id, text and option mutations", (t) =>
      check(t, evalCaseArb, 30, EVAL_EXAMPLES));

    test("the sweep-key rules follow the README: hand-worked SPECs, grids and refusals", () => {
      assert.deepEqual(specValues("0:1:5"), [0, 0.25, 0.5, 0.75, 1]);
      assert.deepEqual(specValues("1:-1:3"), [1, 0, -1]);
      assert.deepEqual(specValues(" .5 ,1e-1"), [0.5, 0.1]);
      for (const spec of ["0:1:1", "0:1:10001", "NaN", "1e309", "1,,2", "", "0:1", "1e308:-1e308:3", "0x10"]) assert.equal(typeof specValues(spec), "string", spec);
      const text = "merge_method: slerp\nmodels:\n  - model: a\n    parameters: {weight: 1}\nparameters:\n  t: [0.1, 0.9]\n";
      const v = expectVary(text, ["parameters.t[1]=0,1", "models[0].parameters.weight=2:3:2"]);
      assert.equal(v.refuse, undefined);
      assert.deepEqual(v.refuse === undefined && v.grid, [[0, 2], [0, 3], [1, 2], [1, 3]]);
      assert.deepEqual(v.refuse === undefined && v.recipeAt([1, 3]), { merge_method: "slerp", models: [{ model: "a", parameters: { weight: 3 } }], parameters: { t: [0.1, 1] } });
      assert.equal(expectVary(text, ["parameters.density=0.5"]).refuse, undefined, "a new name inside parameters");
      for (const [vary, placed] of [["parameters.t=1", true], ["models[1].parameters.weight=1", true], ["models[0].model=1", true], ["models[0].parameters.density.x=1", true],
        ["parameters.t[01]=1", false], ["=1", false], ["parameters.t[0]=0:1:10000", false]] as const) {
        const r = expectVary(text, [vary, ...(vary.endsWith("10000") ? ["parameters.t[1]=0,1"] : [])]);
        assert.ok(r.refuse !== undefined && r.placed === placed && r.codes.includes("E_OPTION"), vary);
      }
      assert.deepEqual((expectVary(`${text}---\n${text}`, ["parameters.t[0]=1"]) as { codes: string[] }).codes, ["E_METHOD_UNSUPPORTED"]);
      assert.equal(expectVary(`${text}---\n`, ["parameters.t[0]=1"]).refuse, undefined, "a stray --- is no second document");
    });

    test("sweep keys and SPECs (parse and check; one in ten a whole sweep, points checked against evaluate())", (t) =>
      check(t, sweepKeyCaseArb, 150, SWEEP_KEY_EXAMPLES));

    test("command lines of path, soup, diagnose, sweep, extract-lora and align (with --profile anywhere)", (t) =>
      check(t, measureCliCaseArb, 14, MEASURE_CLI_EXAMPLES));
  });
}

/** What a failure is, without the details that vary between inputs (names, values, paths). */
function failureSignature(v: Verdict): string {
  const [first = "", ...rest] = (v.problem ?? "").split("\n");
  let masked = first.replace(/"(?:[^"\\]|\\.)*"/g, "S").replace(/\([^)]*\)/g, "()").replace(/\bgot .*/, "got X");
  if (v.outcome === "accepted-invalid") masked = masked.replace(/(\w+): [^,]*?(?=,| instead)/g, "$1");
  masked = masked.replace(/\/[^\s:)]+/g, "P").replace(/\d+/g, "N").slice(0, 160);
  const frame = rest.find((l) => /^\s+at /.test(l))?.trim().split(" ")[1] ?? "";
  return `${v.outcome}: ${masked} @${frame}`;
}

const runnerData = workerData as RunnerData | undefined;
if (runnerData?.fuzzRunner) {
  const models = new Map(Object.entries(fuzzModels()).map(([name, model]) => [`./${name}`, model]));
  const { root, cliTimeoutMs } = runnerData;
  serveCases((c: AnyCase) => c.kind === "eval"
    ? judgeEval(c, { root, pristine: join(root, EVAL_PRISTINE), cliTimeoutMs })
    : c.kind === "sweep-key" || c.kind === "measure-cli"
      ? judgeMeasure(c, { root, pristine: join(root, MEASURE_PRISTINE), cliTimeoutMs })
      : judge(c, { root, models, cliTimeoutMs }));
} else {
  defineSuite();
}
