// `path` and `diagnose` on two TRAINED tiny language models (tests/fixtures/tiny-lms: Llama, GQA, tied
// embeddings, trained by train.py from two different random inits on the same text). Hand computation of
// points: transformers' NLL of the endpoints and of the float32-interpolated models (recorded at fixture
// time in expected.json), the float64 scalar reference forward pass (tests/reference/decoder.ts) on
// interpolated weights computed here, and a written merge evaluated. --align: the barrier falls, B's
// permuted copy has B's loss (the reference forward pass agrees: alignment is a symmetry), and diagnose
// sees the cosine to the reference rise by as much as a float64 cosine computed here says.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { stringify } from "yaml";
import { align, diagnose, evaluate, lossPath, merge } from "../src/node";
import type { LossPathResult } from "../src/api/path";
import { CLI, removeDir, tempDir, WORKER_URL } from "./helpers/fixtures";
import { readDecoderModel } from "./helpers/decoder-models";
import { lerpModel } from "./reference/interpolate";
import { referenceEvaluation, referenceLogits, type ReferenceModel } from "./reference/decoder";
import { encodeTensor, writeShardedModel } from "./reference/safetensors";

const FIXTURE = fileURLToPath(new URL("../../tests/fixtures/tiny-lms/", import.meta.url));
const A = join(FIXTURE, "model-a"), B = join(FIXTURE, "model-b"), HELDOUT = join(FIXTURE, "heldout.txt");

interface Expected {
  context: number;
  ids: number[];
  predicted: number;
  uniformNll: number;
  models: Record<"model-a" | "model-b", { nll: number; logits: number[][] }>;
  linearPath: { lambda: number; nll: number }[];
  barrier: number;
}

let root: string;
let expected: Expected;
let text: string;
let refA: ReferenceModel, refB: ReferenceModel;
let path: LossPathResult;

const options = () => ({ text, context: expected.context, workers: 1, workerUrl: WORKER_URL });

before(async () => {
  root = await tempDir("ws-path-trained-");
  expected = JSON.parse(await readFile(join(FIXTURE, "expected.json"), "utf8")) as Expected;
  text = await readFile(HELDOUT, "utf8");
  [refA, refB] = [await readDecoderModel(A), await readDecoderModel(B)];
  path = await lossPath(A, B, { ...options(), points: 5, align: true });
});
after(async () => { await removeDir(root); });

const nllOf = (model: ReferenceModel) => referenceEvaluation(model, expected.ids, { context: expected.context }).nllMean;

describe("the trained fixtures are what transformers computed", () => {
  test("the held-out text tokenizes to transformers' ids; the scalar reference reproduces transformers' logits and NLL", async () => {
    const byText = (await evaluate([A], options())).results[0]!;
    const byIds = (await evaluate([A], { ids: expected.ids, context: expected.context, workers: 1, workerUrl: WORKER_URL })).results[0]!;
    assert.equal(byText.tokens, expected.ids.length);
    assert.equal(byText.predicted, expected.predicted);
    assert.equal(byText.nll, byIds.nll, "the text and transformers' ids give the same NLL");
    for (const [name, model] of [["model-a", refA], ["model-b", refB]] as const) {
      const logits = referenceLogits(model.config, model.tensors, expected.ids.slice(0, expected.context));
      const V = logits.length / expected.context;
      expected.models[name].logits.forEach((row, t) => row.forEach((z, v) => {
        assert.ok(Math.abs(logits[t * V + v]! - z) < 1e-4, `${name} logit [${t}, ${v}]: reference ${logits[t * V + v]} vs transformers ${z}`);
      }));
      const nll = nllOf(model);
      assert.ok(Math.abs(nll - expected.models[name].nll) < 1e-5, `${name}: reference NLL ${nll} vs transformers ${expected.models[name].nll}`);
    }
    // Trained: both far below the uniform model's log(vocab), and the naive midpoint has a barrier.
    for (const name of ["model-a", "model-b"] as const) assert.ok(expected.models[name].nll < expected.uniformNll / 4, `${name} NLL ${expected.models[name].nll}`);
    assert.ok(expected.barrier > 0.5, `transformers' barrier ${expected.barrier}`);
  });
});

describe("lossPath on the trained models reproduces hand computation", () => {
  test("every point equals transformers' NLL of the interpolated model (float32 tolerance); endpoints are A and B", async () => {
    assert.deepEqual(path.points.map((p) => p.lambda), expected.linearPath.map((p) => p.lambda));
    assert.equal(path.tokens, expected.ids.length);
    assert.equal(path.predicted, expected.predicted);
    path.points.forEach((p, i) => {
      const t = expected.linearPath[i]!.nll;
      assert.ok(Math.abs(p.nll - t) < 2e-5, `λ=${p.lambda}: ${p.nll} vs transformers ${t}`);
    });
    assert.ok(Math.abs(path.points[0]!.nll - expected.models["model-a"].nll) < 2e-5);
    assert.ok(Math.abs(path.points[4]!.nll - expected.models["model-b"].nll) < 2e-5);
    assert.equal(path.points[0]!.nll, (await evaluate([A], options())).results[0]!.nll);
    assert.equal(path.points[4]!.nll, (await evaluate([B], options())).results[0]!.nll);
    const nlls = path.points.map((p) => p.nll);
    assert.equal(path.barrier, Math.max(...nlls) - (nlls[0]! + nlls[4]!) / 2);
    assert.ok(Math.abs(path.barrier - expected.barrier) < 5e-5, `barrier ${path.barrier} vs transformers ${expected.barrier}`);
  });

  test("λ = 0.25 and 0.5 equal the float64 reference on weights interpolated here, and a written merge evaluated, bit for bit", async () => {
    for (const i of [1, 2]) {
      const lambda = path.points[i]!.lambda;
      const ref = nllOf(lerpModel(refA, refB, lambda));
      assert.ok(Math.abs(path.points[i]!.nll - ref) < 1e-5, `λ=${lambda}: ${path.points[i]!.nll} vs float64 reference ${ref}`);
      const recipe = join(root, `point-${i}.yml`);
      await writeFile(recipe, stringify({ merge_method: "linear", models: [{ model: A, parameters: { weight: 1 - lambda } }, { model: B, parameters: { weight: lambda } }], parameters: { normalize: false } }));
      const out = join(root, `point-${i}`);
      await merge(recipe, { out, workers: 1, workerUrl: WORKER_URL });
      assert.equal(path.points[i]!.nll, (await evaluate([out], options())).results[0]!.nll, `λ=${lambda}: written merge`);
    }
  });
});

describe("--align on two independently initialised trained models", () => {
  test("the barrier falls; B's permuted copy keeps B's loss; an aligned point equals the align: recipe merged and evaluated", async () => {
    const aligned = path.aligned!;
    // Measured with the committed fixtures (README "Loss paths and greedy soups"): naive 4.867, aligned
    // 2.566 nats (0.53x), both at λ = 0.5.
    assert.ok(aligned.barrier < 0.7 * path.barrier, `aligned barrier ${aligned.barrier} vs naive ${path.barrier}`);
    assert.ok(path.barrier - aligned.barrier > 1.5, `the barrier falls by ${path.barrier - aligned.barrier} nats`);
    assert.equal(aligned.points[0]!.nll, path.points[0]!.nll, "A is not touched");
    assert.ok(Math.abs(aligned.points[4]!.nll - path.points[4]!.nll) < 1e-5, `permuted B ${aligned.points[4]!.nll} vs B ${path.points[4]!.nll}`);
    assert.ok(aligned.points[2]!.nll < path.points[2]!.nll - 1.5, `aligned midpoint ${aligned.points[2]!.nll} vs naive ${path.points[2]!.nll}`);
    for (const g of ["P_res", "layers.0.P_ff", "layers.1.P_ff", "layers.0.P_kv", "layers.1.P_kv"]) {
      const group = aligned.groups.find((x) => x.name === g);
      assert.ok(group, `group ${g}`);
      assert.ok(group.cosineAfter >= group.cosineBefore, `${g}: cosine ${group.cosineBefore} -> ${group.cosineAfter}`);
    }

    const recipe = join(root, "aligned-midpoint.yml");
    await writeFile(recipe, stringify({ merge_method: "linear", models: [{ model: A, parameters: { weight: 0.5 } }, { model: B, parameters: { weight: 0.5 } }], parameters: { normalize: false }, align: { to: A } }));
    const out = join(root, "aligned-midpoint");
    await merge(recipe, { out, workers: 1, workerUrl: WORKER_URL });
    assert.equal(aligned.points[2]!.nll, (await evaluate([out], options())).results[0]!.nll);
  });

  test("the permuted B written by align() computes B's function (float64 reference logits)", async () => {
    const out = join(root, "b-aligned");
    await align(A, B, { out, workerUrl: WORKER_URL });
    const permuted = await readDecoderModel(out);
    const moved = [...permuted.tensors].filter(([name, t]) => t.values.some((v, i) => v !== refB.tensors.get(name)!.values[i])).length;
    assert.ok(moved >= permuted.tensors.size - 1, `${moved} of ${permuted.tensors.size} tensors permuted`);
    // The first window's logits, every position and token: the same up to float64 rounding.
    const window = expected.ids.slice(0, expected.context);
    const [before, after] = [referenceLogits(refB.config, refB.tensors, window), referenceLogits(permuted.config, permuted.tensors, window)];
    let worst = 0;
    before.forEach((z, i) => { worst = Math.max(worst, Math.abs(z - after[i]!)); });
    assert.ok(worst < 1e-9, `B and permuted B logits differ by up to ${worst}`);
  });
});

/** Float64 cosine between two models' weights, over every tensor. */
function cosine(a: ReferenceModel, b: ReferenceModel): number {
  let dot = 0, na = 0, nb = 0;
  for (const [name, t] of a.tensors) {
    const u = b.tensors.get(name)!.values;
    t.values.forEach((x, i) => { dot += x * u[i]!; na += x * x; nb += u[i]! * u[i]!; });
  }
  return dot / Math.sqrt(na * nb);
}

describe("diagnose of an align: recipe over the two trained models", () => {
  test("the cosine to the reference rises after alignment, to what a float64 cosine of A and the aligned B gives", async () => {
    // A zero base makes each task vector the model's own weights, so the cosine diagnose reports is the
    // one weight matching maximises.
    const zero = join(root, "zero");
    const config = JSON.parse(await readFile(join(A, "config.json"), "utf8")) as Record<string, unknown>;
    await writeShardedModel(zero, [...refA.tensors].map(([name, t]) => ({ name, dtype: "F32" as const, shape: t.shape, data: encodeTensor("F32", new Float32Array(t.values.length)) })), { shards: 1, config });
    const recipe = join(root, "diagnose-align.yml");
    await writeFile(recipe, stringify({
      merge_method: "task_arithmetic", base_model: zero,
      models: [{ model: A, parameters: { weight: 0.5 } }, { model: B, parameters: { weight: 0.5 } }],
      align: { to: A },
    }));
    const d = await diagnose(recipe, { workers: 1, workerUrl: WORKER_URL });
    assert.ok(d.alignment);
    assert.equal(d.alignment.noOp, false);
    assert.equal(d.warnings.length, 0, d.warnings.join("\n"));
    assert.deepEqual(d.alignment.models.map((m) => m.model), [B]);
    const m = d.alignment.models[0]!;
    const alignedB = join(root, "b-aligned-for-diagnose");
    await align(A, B, { out: alignedB, workerUrl: WORKER_URL });
    const [before, after] = [cosine(refA, refB), cosine(refA, await readDecoderModel(alignedB))];
    assert.ok(Math.abs(m.cosineBefore! - before) < 1e-9, `cosine before ${m.cosineBefore} vs ${before}`);
    assert.ok(Math.abs(m.cosineAfter! - after) < 1e-9, `cosine after ${m.cosineAfter} vs ${after}`);
    // Measured with the committed fixtures: 0.084 before, 0.812 after (the embeddings' hidden axis dominates).
    assert.ok(m.cosineAfter! > m.cosineBefore! + 0.5, `cosine ${m.cosineBefore} -> ${m.cosineAfter}`);
    // A permutation keeps norms.
    assert.ok(Math.abs(m.normAfter - m.normBefore) < 1e-9 * m.normBefore, `norm ${m.normBefore} -> ${m.normAfter}`);
  });
});

describe("weightsoup path --align", () => {
  test("--json gives the library's numbers", () => {
    const r = spawnSync(process.execPath, [CLI, "path", A, B, "--text", HELDOUT, "--points", "5", "--context", String(expected.context), "--align", "--workers", "1", "--json"], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as LossPathResult;
    assert.deepEqual(out.points, path.points);
    assert.equal(out.barrier, path.barrier);
    assert.equal(out.gap, path.gap);
    assert.deepEqual(out.aligned!.points, path.aligned!.points);
    assert.equal(out.aligned!.barrier, path.aligned!.barrier);
    assert.equal(out.aligned!.sweeps, path.aligned!.sweeps);
  });
});
