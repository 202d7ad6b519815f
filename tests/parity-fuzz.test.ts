// Randomized parity: recipes drawn at random over every merge method (their parameters as scalars,
// gradients and filter lists, global, per slice or per model; `models:`, or `slices:` whole or split at a
// layer; passthrough stacks of layer ranges; input, load and output dtypes; values of magnitude 1 to
// 30000; a fine-tune with a larger vocabulary; fine-tunes that move everything, only the MLP or
// attention, nothing at all, by quantized steps so that many |τ| tie, or far away), merged by
// weightsoup with 1 or 2 workers, whole or in 4096-element chunks, and checked tensor by tensor against
// the independent scalar reference (tests/reference, helpers/parity-check.ts). A recipe the reference
// refuses must be refused by weightsoup with a typed error. The hand-picked cases of
// merge-methods-parity.test.ts check each rule once; this suite looks for the combinations nobody picked.
// A second property joins two drawn recipes into one multi-stage recipe (mergekit-multi): the second
// document reads the first's output in place of one of its models, and must match the reference run on
// the output of the first document merged alone (each document of mergekit-multi is its own merge).
// A third draws `modules:` recipes on a made-up two-module model (helpers/vlm.ts): each module's models,
// form and parameters of its own, the top level's parameters behind them; the output must match the
// reference run on each module alone (the models cut to its tensors, the top level's parameters looked
// up after the module's: SPEC section 4).
// Runs and seeds as the fuzz suite (helpers/fuzz-settings.ts): FUZZ_LONG=1 for ten times the runs and a
// random seed, FUZZ_SEED and FUZZ_PATH to replay a failure.
import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import fc from "fast-check";
import { merge } from "../src/node";
import { WeightsoupError } from "../src/errors";
import { referenceMerge, type RefModel, type RefOutput } from "./reference/merge";
import { roundToDtype } from "./reference/float16";
import { decodeFloat, isFloatDtype } from "./reference/safetensors";
import { fineTune, readOutput, removeDir, tempDir, toYaml, uniform, WORKER_URL, writeCase, writeModel } from "./helpers/fixtures";
import { checkedMerge, checkOutput, type Case } from "./helpers/parity-check";
import { caseOf, drawnArb, DTYPES, moveArb, RULES, TORCH, type Drawn, type Dtype, type Move } from "./helpers/parity-draws";
import { only, tensorShapes, TEXT_LAYERS, VISION_LAYERS, vlmConfig } from "./helpers/vlm";
import { fuzzSettings } from "./helpers/fuzz-settings";

let root: string;
before(async () => { root = await tempDir("ws-parity-fuzz-"); });
after(async () => { await removeDir(root); });

/** The reference's refusal of a recipe (its error), or undefined when it merges it. */
function referenceRefusal(recipe: Record<string, unknown>, inputs: Map<string, RefModel>, seed: number): unknown {
  try {
    referenceMerge(recipe, inputs, { seed });
    return undefined;
  } catch (e) {
    return e;
  }
}

/** weightsoup refuses `recipePath` with a typed error, as the reference refused it. */
async function refusedAsReference(name: string, recipePath: string, out: string, workers: number, reference: unknown): Promise<void> {
  await assert.rejects(merge(recipePath, { out, workers, workerUrl: WORKER_URL }), (e: unknown) => {
    assert.ok(e instanceof WeightsoupError, `${name}: the reference refuses (${String(reference)}); weightsoup threw ${String(e)}`);
    return true;
  }, `${name}: the reference refuses it (${String(reference)}); weightsoup merged it`);
}

const inputsOf = (c: Case) => new Map(Object.entries(c.models).map(([k, v]) => [`./${k}`, v]));

const settings = fuzzSettings();
let cases = 0, refusals = 0;
const byMethod = new Map<string, { cases: number; refused: number }>();

/**
 * One drawn case, merged by both (and checked: see helpers/parity-check.ts) or refused by both. Returns
 * the merged case's folder and output, or undefined when both refused it.
 */
async function mergedOrRefused(d: Drawn, c: Case): Promise<{ dir: string; out: string } | undefined> {
  const counts = byMethod.get(d.method) ?? { cases: 0, refused: 0 };
  byMethod.set(d.method, counts);
  counts.cases++;
  const reference = referenceRefusal(c.recipe, inputsOf(c), c.seed ?? 0);
  if (reference === undefined) return checkedMerge(root, c);
  refusals++;
  counts.refused++;
  const dir = join(root, `refused-${cases}`);
  await refusedAsReference(c.name, await writeCase(dir, c.models, c.recipe), join(dir, "out"), c.workers ?? 2, reference);
  await rm(dir, { recursive: true, force: true });
  return undefined;
}

const fuzzOptions = (numRuns: number) => ({
  seed: settings.seed, numRuns, ...(settings.path ? { path: settings.path } : {}),
  ...(settings.timeLimitMs(numRuns) ? { interruptAfterTimeLimit: settings.timeLimitMs(numRuns) } : {}),
});

test("random recipes of every method merge as the reference computes them, or are refused as it refuses them", { timeout: 30 * 60_000 }, async (t) => {
  const numRuns = settings.runs(60);
  t.diagnostic(`seed ${settings.seed}, ${numRuns} runs (again: FUZZ_SEED=${settings.seed}; one failure: add FUZZ_PATH=<its path>)`);
  await fc.assert(fc.asyncProperty(drawnArb, async (d) => {
    const merged = await mergedOrRefused(d, caseOf(d, cases++));
    if (merged) await rm(merged.dir, { recursive: true, force: true });
  }), fuzzOptions(numRuns));
  t.diagnostic(`${cases} cases (${refusals} refused by both): ${[...byMethod].map(([m, n]) => `${m} ${n.cases} (${n.refused} refused)`).join(", ")}`);
});

/** Prefix for the final document's models, so that both documents' models live in one folder. */
const FINAL = "f-";

/** An output folder read back as a model (its config and tensors): the reference's input for a later stage. */
async function asModel(folder: string): Promise<RefModel> {
  const { tensors } = await readOutput(folder);
  const config = JSON.parse(await readFile(join(folder, "config.json"), "utf8")) as Record<string, unknown>;
  return {
    config,
    tensors: new Map([...tensors].map(([name, t]) => [name, isFloatDtype(t.dtype) ? { dtype: t.dtype, shape: t.shape, values: decodeFloat(t.dtype, t.data) } : { dtype: t.dtype, shape: t.shape, raw: t.data }])),
  };
}

const staged = { cases: 0, refusedFirst: 0, refusedFinal: 0 };

test("random two-document recipes: the final document, run on the first's output, merges as the reference computes it, or is refused as it refuses it", { timeout: 30 * 60_000 }, async (t) => {
  const numRuns = settings.runs(12);
  t.diagnostic(`seed ${settings.seed}, ${numRuns} runs (again: FUZZ_SEED=${settings.seed}; one failure: add FUZZ_PATH=<its path>)`);
  // `slot` picks which model the final document reads from the first document's output instead.
  // The final document's models have the first's vocabulary, so that most pairs fit together.
  await fc.assert(fc.asyncProperty(drawnArb, drawnArb, fc.nat(7), async (first, drawnFinal, slot) => {
    const final = { ...drawnFinal, vocab: first.vocab };
    staged.cases++;
    // The first document alone, as mergekit-multi runs it: its output is the intermediate model (checked
    // against the reference here like any case).
    const one = caseOf(first, cases++);
    const alone = await mergedOrRefused(first, one);
    const drawn = caseOf(final, cases++);
    const models: Record<string, RefModel> = Object.fromEntries(Object.entries(drawn.models).map(([k, m]) => [`${FINAL}${k}`, m]));
    let text = JSON.stringify(drawn.recipe);
    for (const k of Object.keys(drawn.models)) text = text.replaceAll(`"./${k}"`, `"./${FINAL}${k}"`);
    const named = Object.keys(models).filter((k) => text.includes(`"./${k}"`));
    const replaced = named[slot % named.length]!;
    delete models[replaced];
    const recipe = JSON.parse(text.replaceAll(`"./${replaced}"`, `"mid"`)) as Record<string, unknown>;
    const c: Case = { ...drawn, name: `random two-document case ${cases - 1} (${first.method}, then ${final.method} with "mid" for ${replaced})`, models, recipe, seed: one.seed };
    const dir = alone?.dir ?? join(root, `staged-${cases}`);
    const recipePath = join(dir, "staged.yml");
    for (const [k, m] of Object.entries(models)) await writeModel(join(dir, k), m);
    if (!alone) for (const [k, m] of Object.entries(one.models)) await writeModel(join(dir, k), m);
    await writeFile(recipePath, [{ name: "mid", ...one.recipe }, recipe].map((doc) => toYaml(doc)).join("---\n"));
    const out = join(dir, "staged-out");
    const run = { out, workers: c.workers ?? 2, seed: c.seed ?? 0, workerUrl: WORKER_URL, ...(c.chunkElements ? { chunkElements: c.chunkElements } : {}) };
    if (!alone) {
      staged.refusedFirst++;
      await refusedAsReference(c.name, recipePath, out, run.workers, "its first document");
    } else {
      const inputs = inputsOf(c);
      inputs.set("mid", await asModel(alone.out));
      c.models.mid = inputs.get("mid")!;
      const reference = referenceRefusal(recipe, inputs, c.seed ?? 0);
      if (reference !== undefined) {
        staged.refusedFinal++;
        await refusedAsReference(c.name, recipePath, out, run.workers, reference);
      } else {
        await merge(recipePath, run);
        await checkOutput(c, out, referenceMerge(recipe, inputs, { seed: c.seed ?? 0 }));
      }
    }
    await rm(dir, { recursive: true, force: true });
  }), fuzzOptions(numRuns));
  t.diagnostic(`${staged.cases} two-document cases: ${staged.refusedFirst} with the first document refused by both, ${staged.refusedFinal} with the final one refused by both`);
});

/** The made-up model's modules: the key under `modules:`, its tensors' prefix and its layers. */
const MODULES = [
  { name: "text_decoder", prefix: "language_model.", layers: TEXT_LAYERS },
  { name: "vision_tower", prefix: "model.vision_tower.", layers: VISION_LAYERS },
] as const;

interface ModuleDraw {
  /** How many of the fine-tunes it uses (the first ones). */
  uses: number;
  form: "models" | "slice";
  perModel: Record<string, unknown>[];
  parameters: Record<string, unknown>;
}

interface ModulesDrawn {
  method: string;
  base: { seed: number; dtype: Dtype; withBase: boolean };
  moves: Move[];
  magnitude: number;
  top: Record<string, unknown>;
  modules: ModuleDraw[];
  loadDtype?: Dtype;
  outDtype?: Dtype;
  workers: 1 | 2;
  chunked: boolean;
  seed: number;
}

const modulesArb: fc.Arbitrary<ModulesDrawn> = fc.constantFrom(...[...RULES.keys()].filter((m) => m !== "passthrough")).chain((method) => {
  const rule = RULES.get(method)!;
  return fc.integer({ min: rule.models[0], max: rule.models[1] }).chain((count) => {
    const moduleArb: fc.Arbitrary<ModuleDraw> = fc.integer({ min: rule.models[0], max: count }).chain((uses) => fc.record({
      uses: fc.constant(uses),
      form: fc.constantFrom("models" as const, "slice" as const),
      perModel: fc.array(rule.perModel, { minLength: uses, maxLength: uses }),
      parameters: fc.oneof(fc.constant({}), rule.global),
    }));
    return fc.record({
      method: fc.constant(method),
      base: fc.record({ seed: fc.integer({ min: 1, max: 10_000 }), dtype: fc.constantFrom(...DTYPES), withBase: rule.base === "optional" ? fc.boolean() : fc.constant(rule.base === "required") }),
      moves: fc.array(moveArb, { minLength: count, maxLength: count }),
      magnitude: fc.constantFrom(1, 1, 100),
      top: fc.oneof(fc.constant({}), rule.global),
      modules: fc.tuple(moduleArb, moduleArb),
      loadDtype: fc.option(fc.constantFrom(...DTYPES), { nil: undefined }),
      outDtype: fc.option(fc.constantFrom(...DTYPES), { nil: undefined }),
      workers: fc.constantFrom(1 as const, 2 as const),
      chunked: fc.boolean(),
      seed: fc.integer({ min: 0, max: 1000 }),
    });
  });
});

/** The made-up two-module base: values U(-0.5, 0.5) times the magnitude (norms around it), rounded to `dtype`. */
function vlmBase(seed: number, dtype: Dtype, magnitude: number): RefModel {
  const tensors = new Map(tensorShapes().map(([name, shape], k) => {
    const values = new Float32Array(shape.reduce((p, d) => p * d, 1));
    for (let i = 0; i < values.length; i++) values[i] = roundToDtype(magnitude * ((name.endsWith("norm.weight") || name.includes("layer_norm") ? 1 : 0) + uniform(seed * 131 + k, i) - 0.5), dtype);
    return [name, { dtype, shape, values }] as const;
  }));
  return { config: vlmConfig(), tensors };
}

const moduleCounts = { cases: 0, refused: 0 };

test("random modules: recipes merge each module as the reference merges it alone, with the top level's parameters behind the module's", { timeout: 30 * 60_000 }, async (t) => {
  const numRuns = settings.runs(12);
  t.diagnostic(`seed ${settings.seed}, ${numRuns} runs (again: FUZZ_SEED=${settings.seed}; one failure: add FUZZ_PATH=<its path>)`);
  await fc.assert(fc.asyncProperty(modulesArb, async (d) => {
    const index = moduleCounts.cases++;
    const base = vlmBase(d.base.seed, d.base.dtype, d.magnitude);
    const models: Record<string, RefModel> = { base };
    d.moves.forEach((mv, i) => {
      models[`m${i}`] = fineTune(base, mv.seed, mv.scale * d.magnitude, { dtype: mv.dtype, ...(mv.quantum ? { quantum: 2 ** -7 * d.magnitude } : {}), ...(mv.only ? { only: mv.only } : {}) });
    });
    // Each module lists its first `uses` fine-tunes (linear also the base, weight 1), as `models:` or as
    // one slice over the module's own layers (the base then a source too, as mergekit requires).
    const own = MODULES.map((m, k) => {
      const draw = d.modules[k]!;
      const entries = draw.perModel.map((p, i) => ({ model: `./m${i}`, ...(Object.keys(p).length ? { parameters: p } : {}) }));
      const list = d.method === "linear" ? [{ model: "./base", parameters: { weight: 1 } }, ...entries] : entries;
      const sources = [...list, ...(d.base.withBase && d.method !== "linear" ? [{ model: "./base" }] : [])].map((s) => ({ ...s, layer_range: [0, m.layers] }));
      return {
        ...(draw.form === "models" ? { models: list } : { slices: [{ sources }] }),
        ...(Object.keys(draw.parameters).length ? { parameters: draw.parameters } : {}),
      };
    });
    const shared = {
      merge_method: d.method,
      ...(d.base.withBase ? { base_model: "./base" } : {}),
      ...(d.loadDtype ? { dtype: TORCH[d.loadDtype] } : {}),
      ...(d.outDtype ? { out_dtype: TORCH[d.outDtype] } : {}),
    };
    const recipe = { ...shared, ...(Object.keys(d.top).length ? { parameters: d.top } : {}), modules: Object.fromEntries(MODULES.map((m, k) => [m.name, own[k]])) };
    const c: Case = { name: `random modules case ${index} (${d.method})`, models, recipe, seed: d.seed, workers: d.workers, ...(d.chunked ? { chunkElements: 4096 } : {}) };

    // The reference, module by module: its recipe with the module's entries and parameters, the models cut to its tensors.
    let expected: RefOutput["tensors"] | undefined = new Map();
    let refusal: unknown;
    for (const [k, m] of MODULES.entries()) {
      const cut = new Map(Object.entries(models).map(([n, model]) => [`./${n}`, only(model, m.prefix)]));
      try {
        const out = referenceMerge({ ...shared, ...own[k] }, cut, { seed: d.seed, ...(Object.keys(d.top).length ? { outerParameters: d.top } : {}) });
        for (const [name, tensor] of out.tensors) expected.set(name, tensor);
      } catch (e) {
        refusal = e;
        expected = undefined;
        break;
      }
    }
    const dir = join(root, `modules-${index}`);
    const recipePath = await writeCase(dir, models, recipe);
    const out = join(dir, "out");
    if (!expected) {
      moduleCounts.refused++;
      await refusedAsReference(c.name, recipePath, out, d.workers, refusal);
    } else {
      await merge(recipePath, { out, workers: d.workers, seed: d.seed, workerUrl: WORKER_URL, ...(d.chunked ? { chunkElements: 4096 } : {}) });
      await checkOutput(c, out, { tensors: expected });
    }
    await rm(dir, { recursive: true, force: true });
  }), fuzzOptions(numRuns));
  t.diagnostic(`${moduleCounts.cases} modules: cases (${moduleCounts.refused} refused by both)`);
});
