// The evaluation forward pass against an independent float64 reference (tests/reference/decoder.ts) on
// tiny random models of every supported family and variant, and against transformers' own float32
// logits (tests/fixtures/transformers); evaluation's numbers against the reference's definitions;
// a hand-checked perplexity; recipes evaluated without writing them equal to the written merge, bit for
// bit, for any number of workers; greedy generation equal to the reference's argmax path.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { writeFile } from "node:fs/promises";
import { evaluate, generate, logits, lossPath, merge } from "../src/node";
import { NodeFolder } from "../src/io/node-folder";
import { CLI, removeDir, tempDir, WORKER_URL } from "./helpers/fixtures";
import { DECODER_VARIANTS, decoderIds, decoderModel, goldenCases, goldenRoot, readGoldenCase, writeDecoderModel, type DecoderModel } from "./helpers/decoder-models";
import { referenceEvaluation, referenceLogits } from "./reference/decoder";

let root: string;
let n = 0;
before(async () => { root = await tempDir("ws-eval-"); });
after(async () => { await removeDir(root); });

async function written(model: DecoderModel): Promise<string> {
  const dir = join(root, `m${n++}-${model.variant}-${model.dtype}`);
  await writeDecoderModel(dir, model);
  return dir;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, "same number of logits");
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

describe("logits against the float64 reference", () => {
  for (const variant of DECODER_VARIANTS) {
    for (const dtype of ["F32", "BF16"] as const) {
      test(`${variant}, ${dtype} weights`, async () => {
        const model = decoderModel(variant, { seed: 3, dtype });
        const dir = await written(model);
        const vocab = (model.tensors.get([...model.tensors.keys()].find((k) => /embed_tokens|wte/.test(k))!)!.shape[0])!;
        // Long enough to cross the sliding windows and llama3's scaling bands of the variants.
        const ids = decoderIds(vocab, 40, 11);
        const ours = await logits({ model: await NodeFolder.open(dir) }, ids, { workerUrl: WORKER_URL });
        const ref = referenceLogits(model.config, model.tensors, ids);
        const d = maxAbsDiff(ours, ref);
        assert.ok(d <= 1e-3, `max |Δlogit| ${d}`);
      });
    }
  }
});

describe("logits against transformers (float32, eager)", async () => {
  for (const name of await goldenCases()) {
    test(name, async () => {
      const golden = await readGoldenCase(name);
      const ours = await logits({ model: await NodeFolder.open(join(goldenRoot(), name)) }, golden.expected.ids, { workerUrl: WORKER_URL });
      const d = maxAbsDiff(ours, golden.expected.logits);
      assert.ok(d <= 1e-3, `max |Δlogit| ${d} against transformers`);
    });
  }
});

describe("evaluation's numbers", () => {
  test("NLL, perplexity, KL and top-1 agreement over several windows (the last shorter) equal the reference's definitions", async () => {
    const evaluated = decoderModel("qwen2-tied-bias", { seed: 5 });
    const parentA = decoderModel("qwen2-tied-bias", { seed: 6 }), parentB = decoderModel("qwen2-tied-bias", { seed: 7 });
    const [e, a, b] = await Promise.all([evaluated, parentA, parentB].map(written));
    const vocab = Number(evaluated.config.vocab_size);
    const ids = decoderIds(vocab, 57, 21);
    const { results } = await evaluate([e!], { ids, context: 16, against: [a!, b!], workerUrl: WORKER_URL });
    const ref = referenceEvaluation(evaluated, ids, { context: 16, against: [parentA, parentB] });
    const r = results[0]!;
    assert.equal(r.tokens, 57);
    assert.equal(r.predicted, ref.predicted);
    assert.equal(r.predicted, 53, "windows of 16, 16, 16 and 9 tokens predict 15 + 15 + 15 + 8");
    assert.ok(Math.abs(r.nll - ref.nllMean) < 1e-5, `NLL ${r.nll} vs ${ref.nllMean}`);
    assert.ok(Math.abs(r.perplexity / ref.perplexity - 1) < 1e-5);
    assert.equal(r.bitsPerByte, null, "pre-tokenized input has no byte count");
    r.against.forEach((x, i) => {
      assert.ok(Math.abs(x.kl - ref.against[i]!.kl) < 1e-5, `KL ${x.kl} vs ${ref.against[i]!.kl}`);
      assert.equal(x.top1Agreement, ref.against[i]!.top1Agreement);
    });
  });

  test("a model whose output projection is all zeros predicts uniformly: perplexity = vocabulary size, NLL = ln V", async () => {
    const model = decoderModel("llama-gqa-untied", { seed: 8 });
    const head = model.tensors.get("lm_head.weight")!;
    model.tensors.set("lm_head.weight", { ...head, values: new Float32Array(head.values.length) });
    const dir = await written(model);
    const V = Number(model.config.vocab_size);
    const { results } = await evaluate([dir], { ids: decoderIds(V, 20, 3), context: 20, workerUrl: WORKER_URL });
    assert.ok(Math.abs(results[0]!.nll - Math.log(V)) < 1e-9, `${results[0]!.nll} vs ln ${V}`);
    assert.ok(Math.abs(results[0]!.perplexity - V) < 1e-6);
  });

  test("the same model against itself: KL 0, agreement 1", async () => {
    const dir = await written(decoderModel("gpt2-prefixed", { seed: 9 }));
    const { results } = await evaluate([dir], { ids: decoderIds(100, 30, 4), context: 30, against: [dir], workerUrl: WORKER_URL });
    assert.equal(results[0]!.against[0]!.kl, 0);
    assert.equal(results[0]!.against[0]!.top1Agreement, 1);
  });
});

describe("recipes evaluated without writing them", () => {
  test("equal the written merge bit for bit (logits and scores), for 1 and 2 workers", async () => {
    const dir = join(root, `recipe-${n++}`);
    const base = decoderModel("llama-gqa-untied", { seed: 11, dtype: "BF16" });
    for (const [name, model] of [["base", base], ["a", decoderModel("llama-gqa-untied", { seed: 12, dtype: "BF16" })], ["b", decoderModel("llama-gqa-untied", { seed: 13, dtype: "BF16" })]] as const) {
      await writeDecoderModel(join(dir, name), model);
    }
    const recipe = join(dir, "recipe.yml");
    await writeFile(recipe, "merge_method: ties\nbase_model: ./base\nmodels:\n  - {model: ./a, parameters: {weight: 1, density: [0.7, 0.3]}}\n  - {model: ./b, parameters: {weight: 0.5, density: 0.5}}\ndtype: bfloat16\n");
    await merge(recipe, { out: join(dir, "merged"), workerUrl: WORKER_URL });
    const ids = decoderIds(160, 45, 13);
    const fromFile = await logits({ model: await NodeFolder.open(join(dir, "merged")) }, ids, { workerUrl: WORKER_URL });
    const { parseRecipe } = await import("../src/recipe/recipe");
    const { resolveModel } = await import("../src/model/resolve");
    const direct = await logits({ recipe: parseRecipe(await (await import("node:fs/promises")).readFile(recipe, "utf8"), recipe), models: (m) => resolveModel(m, dir) }, ids, { workerUrl: WORKER_URL });
    assert.deepEqual(new Uint8Array(direct.buffer), new Uint8Array(fromFile.buffer), "logits bit-identical");
    const scores = await Promise.all([1, 2].flatMap((workers) => [recipe, join(dir, "merged")].map((subject) =>
      evaluate([subject], { ids, context: 10, against: [join(dir, "base")], workers, workerUrl: WORKER_URL }))));
    for (const s of scores.slice(1)) assert.deepEqual(s.results.map((r) => ({ ...r, model: "" })), scores[0]!.results.map((r) => ({ ...r, model: "" })));
  });

  test("generate() of a DARE recipe merges with mergeSeed, not the sampling seed: greedy tokens equal the written merge's at that merge seed, whatever seed is (found by the stop 37 audit)", async () => {
    const dir = join(root, `dare-seed-${n++}`);
    for (const [name, seed] of [["base", 11], ["a", 12], ["b", 13]] as const) await writeDecoderModel(join(dir, name), decoderModel("llama-gqa-untied", { seed, dtype: "BF16" }));
    const recipe = join(dir, "recipe.yml");
    await writeFile(recipe, "merge_method: dare_ties\nbase_model: ./base\nmodels:\n  - {model: ./a, parameters: {weight: 1, density: 0.5}}\n  - {model: ./b, parameters: {weight: 0.5, density: 0.5}}\ndtype: bfloat16\n");
    const ids = decoderIds(160, 12, 7);
    const tokens = async (subject: string, options: { seed?: number; mergeSeed?: number } = {}) => (await generate(subject, { ids, maxNewTokens: 12, workerUrl: WORKER_URL, ...options })).ids;
    for (const mergeSeed of [0, 5]) {
      const out = join(dir, `merged-${mergeSeed}`);
      await merge(recipe, { out, seed: mergeSeed, workerUrl: WORKER_URL });
      const written = await tokens(out);
      assert.deepEqual(await tokens(recipe, { mergeSeed, seed: 9 }), written, `merge seed ${mergeSeed}, sampling seed 9 (greedy: unused)`);
      assert.deepEqual(await tokens(recipe, { mergeSeed }), written, `merge seed ${mergeSeed}`);
    }
    assert.notDeepEqual(await tokens(join(dir, "merged-0")), await tokens(join(dir, "merged-5")), "the two merge seeds give two models that continue differently");
  });

  test("a tensor merged NaN throughout (an infinite input) is the written merge's warning: evaluate(), generate() and the CLI, --quiet or not", async () => {
    const dir = join(root, `recipe-${n++}`);
    const base = decoderModel("llama-gqa-untied", { seed: 11 }), a = decoderModel("llama-gqa-untied", { seed: 12 }), b = decoderModel("llama-gqa-untied", { seed: 13 });
    const name = "model.layers.0.mlp.up_proj.weight";
    b.tensors.get(name)!.values[5] = Infinity; // dare_ties' L1 rescale of b's task vector is then NaN: the tensor is NaN
    for (const [folder, model] of [["base", base], ["a", a], ["b", b]] as const) await writeDecoderModel(join(dir, folder), model);
    const recipe = join(dir, "recipe.yml");
    await writeFile(recipe, "merge_method: dare_ties\nbase_model: ./base\nmodels:\n  - {model: ./a, parameters: {weight: 1, density: 0.5}}\n  - {model: ./b, parameters: {weight: 1, density: 0.5}}\n");
    const written: string[] = [], evaluated: string[] = [];
    await merge(recipe, { out: join(dir, "merged"), workerUrl: WORKER_URL, onProgress: (e) => { if (e.type === "warning") written.push(e.message); } });
    await evaluate([recipe], { ids: decoderIds(160, 45, 13), context: 10, workerUrl: WORKER_URL, onProgress: (e) => { if (e.type === "warning") evaluated.push(e.message); } });
    assert.equal(written.length, 1, written.join("\n"));
    assert.match(written[0]!, new RegExp(`^${name.replaceAll(".", "\\.")}: NaN or infinite values in \\S*b\\S* \\(tensor ${name.replaceAll(".", "\\.")}\\)`));
    assert.deepEqual(evaluated, written);
    const generating: string[] = [];
    await generate(recipe, { ids: decoderIds(160, 4, 3), maxNewTokens: 2, workerUrl: WORKER_URL, onWarning: (m) => generating.push(m) });
    assert.deepEqual(generating, written, "generate() of the recipe");
    // The CLI prints each as `weightsoup: warning: ...` on stderr and exits 0; --quiet drops progress, not warnings.
    const ids = join(dir, "ids.json");
    await writeFile(ids, JSON.stringify(decoderIds(160, 12, 3)));
    // A loss path from the recipe to a model: every point merges the same NaN tensor, said once
    // (found by the stop 38 README audit: path said nothing).
    const pathWarnings: string[] = [];
    await lossPath(recipe, join(dir, "a"), { ids: decoderIds(160, 45, 13), context: 10, points: 3, workerUrl: WORKER_URL, onProgress: (e) => { if (e.type === "warning") pathWarnings.push(e.message); } });
    assert.deepEqual(pathWarnings, written, "lossPath() of the recipe");
    for (const command of [
      ["merge", recipe, join(dir, "merged-cli"), "--quiet"],
      ["eval", recipe, "--ids", ids, "--context", "6", "--quiet", "--json"],
      ["generate", recipe, "--ids", ids, "--max-new-tokens", "2", "--json"],
      ["path", recipe, join(dir, "a"), "--ids", ids, "--context", "6", "--points", "3", "--quiet", "--json"],
    ]) {
      const run = spawnSync(process.execPath, [CLI, ...command], { encoding: "utf8", timeout: 120_000, killSignal: "SIGKILL" });
      assert.equal(run.status, 0, `${command[0]}: ${run.stderr}`);
      const printed = run.stderr.split("\n").filter((l) => l.startsWith("weightsoup: warning: ")).map((l) => l.slice("weightsoup: warning: ".length));
      assert.deepEqual(printed, written, `weightsoup ${command.join(" ")}`);
    }
  });
});

describe("generation", () => {
  for (const variant of ["llama-llama3", "qwen3-qknorm", "gpt2-unprefixed", "mistral-sliding"] as const) {
    test(`${variant}: greedy tokens are the reference's argmax at every step (KV cache = full forward)`, async () => {
      const model = decoderModel(variant, { seed: 14 });
      const dir = await written(model);
      const vocab = Number(model.config.vocab_size ?? 0) || 100;
      const prompt = decoderIds(vocab, 6, 5);
      const out = await generate(dir, { ids: prompt, maxNewTokens: 12, workerUrl: WORKER_URL });
      assert.equal(out.ids.length, 12);
      const seq = [...prompt];
      for (const id of out.ids) {
        const z = referenceLogits(model.config, model.tensors, seq);
        const row = z.subarray((seq.length - 1) * vocab, seq.length * vocab);
        let best = 0;
        for (let v = 1; v < vocab; v++) if (row[v]! > row[best]!) best = v;
        const sorted = [...row].sort((x, y) => y - x);
        // A near-tie could go either way in float32; none of these models has one at these steps.
        assert.ok(sorted[0]! - sorted[1]! > 1e-4, "no near-tie");
        assert.equal(id, best, `token ${seq.length - prompt.length}`);
        seq.push(id);
      }
    });
  }

  test("sampling with a temperature is seeded: the same seed gives the same tokens, another seed others", async () => {
    const dir = await written(decoderModel("qwen2-tied-bias", { seed: 15 }));
    const prompt = decoderIds(100, 4, 6);
    const run = (seed: number) => generate(dir, { ids: prompt, maxNewTokens: 16, temperature: 1.5, seed, workerUrl: WORKER_URL });
    const [a, b, c] = [await run(1), await run(1), await run(2)];
    assert.deepEqual(a.ids, b.ids);
    assert.notDeepEqual(a.ids, c.ids);
  });
});
