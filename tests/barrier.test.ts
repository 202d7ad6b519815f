// The barrier harness (src/align/barrier.ts): the wasm forward pass's loss and accuracy against a plain
// float64 forward pass written here, the path and the barrier against the definition computed here,
// dataset validation, and `weightsoup barrier` end to end.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { mlpSpec } from "../src/align/architectures";
import { barrierPath, evaluateMlp, type Dataset } from "../src/align/barrier";
import { applyPermutations, type Tensor } from "../src/align/weight-matching";
import { WeightsoupError } from "../src/errors";
import { CLI, removeDir, tempDir } from "./helpers/fixtures";
import { encodeTensor, writeSafetensors, type RefDtype } from "./reference/safetensors";

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x / 4294967296;
  };
}

const WIDTHS = [7, 13, 10, 5];

function randomMlp(seed: number, withBias = [true, false, true]): Map<string, Tensor> {
  const r = rng(seed);
  const m = new Map<string, Tensor>();
  for (let l = 0; l + 1 < WIDTHS.length; l++) {
    const [inp, out] = [WIDTHS[l]!, WIDTHS[l + 1]!];
    m.set(`fc${l}.weight`, { shape: [out, inp], data: Float32Array.from({ length: out * inp }, () => (r() - 0.5) * 2 / Math.sqrt(inp)) });
    if (withBias[l]) m.set(`fc${l}.bias`, { shape: [out], data: Float32Array.from({ length: out }, () => (r() - 0.5) * 0.5) });
  }
  return m;
}

function randomData(seed: number, count: number): Dataset {
  const r = rng(seed);
  return {
    inputs: Float32Array.from({ length: count * WIDTHS[0]! }, () => (r() - 0.5) * 4),
    labels: Int32Array.from({ length: count }, () => Math.floor(r() * WIDTHS.at(-1)!)),
    count, features: WIDTHS[0]!, name: "data",
  };
}

/** Float64 forward pass of one example: logits. */
function forward(m: Map<string, Tensor>, x: ArrayLike<number>): number[] {
  let h = Array.from(x);
  for (let l = 0; l + 1 < WIDTHS.length; l++) {
    const w = m.get(`fc${l}.weight`)!, b = m.get(`fc${l}.bias`);
    const [out, inp] = w.shape as [number, number];
    h = Array.from({ length: out }, (_, i) => {
      let z = b ? b.data[i]! : 0;
      for (let j = 0; j < inp; j++) z += w.data[i * inp + j]! * h[j]!;
      return l + 2 < WIDTHS.length ? Math.max(0, z) : z;
    });
  }
  return h;
}

/** Softmax cross-entropy and first-argmax accuracy, in float64. */
function reference(m: Map<string, Tensor>, d: Dataset): { loss: number; accuracy: number } {
  let loss = 0, correct = 0;
  for (let n = 0; n < d.count; n++) {
    const h = forward(m, d.inputs.subarray(n * d.features, (n + 1) * d.features));
    const max = Math.max(...h);
    loss += Math.log(h.reduce((s, z) => s + Math.exp(z - max), 0)) + max - h[d.labels[n]!]!;
    if (h.indexOf(max) === d.labels[n]) correct++;
  }
  return { loss: loss / d.count, accuracy: correct / d.count };
}

test("the wasm forward pass gives the reference's loss and accuracy (batches of 256 and a partial one; a layer without bias)", async () => {
  for (const [seed, count] of [[1, 300], [2, 1], [3, 512]] as const) {
    const m = randomMlp(seed), d = randomData(seed + 10, count);
    const got = await evaluateMlp(m, d), want = reference(m, d);
    assert.ok(Math.abs(got.loss - want.loss) <= 1e-5 * Math.max(1, want.loss), `seed ${seed}: loss ${got.loss} vs ${want.loss}`);
    assert.equal(got.accuracy, want.accuracy, `seed ${seed}: accuracy`);
  }
});

test("the path: loss and accuracy at evenly spaced λ, the barrier and the gap as defined", async () => {
  const a = randomMlp(4), b = randomMlp(5), d = randomData(6, 200);
  const report = await barrierPath(a, b, d, 5);
  assert.deepEqual(report.points.map((p) => p.lambda), [0, 0.25, 0.5, 0.75, 1]);
  const losses: number[] = [];
  for (const p of report.points) {
    const mixed = new Map([...a].map(([name, t]) => [name, { shape: t.shape, data: t.data.map((v, i) => (1 - p.lambda) * v + p.lambda * b.get(name)!.data[i]!) }]));
    const want = reference(mixed, d);
    assert.ok(Math.abs(p.loss - want.loss) <= 1e-5 * Math.max(1, want.loss), `λ ${p.lambda}: loss ${p.loss} vs ${want.loss}`);
    assert.equal(p.accuracy, want.accuracy);
    losses.push(want.loss);
  }
  const barrier = Math.max(...losses) - (losses[0]! + losses[4]!) / 2;
  assert.ok(Math.abs(report.barrier - barrier) < 1e-5, `barrier ${report.barrier} vs ${barrier}`);
  const gap = Math.max(...losses.map((l, i) => l - ((1 - i / 4) * losses[0]! + (i / 4) * losses[4]!)));
  assert.ok(Math.abs(report.gap - gap) < 1e-5);
  assert.equal(report.midpoint.lambda, 0.5);
  // A path from a model to itself is flat: no barrier at all.
  const flat = await barrierPath(a, a, d, 3);
  assert.ok(Math.abs(flat.barrier) < 1e-6 && flat.accuracyDrop === 0);
});

let dir: string;
before(async () => { dir = await tempDir("ws-barrier-"); });
after(async () => { await removeDir(dir); });

async function writeTensors(path: string, tensors: [string, RefDtype, number[], ArrayLike<number>][]): Promise<void> {
  await writeFile(path, writeSafetensors(tensors.map(([name, dtype, shape, values]) => ({ name, dtype, shape, data: encodeTensor(dtype, values) }))));
}
const modelFile = (m: Map<string, Tensor>) => [...m].map(([name, t]) => [name, "F32", t.shape, t.data] as [string, RefDtype, number[], Float32Array]);
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });

test("weightsoup barrier: a permuted copy has a barrier that --align removes; bad datasets are named", async () => {
  const a = randomMlp(7, [true, true, true]);
  const r = rng(8);
  const perms = new Map([["P_0", Int32Array.from({ length: 13 }, (_, i) => (i * 5 + 3) % 13)], ["P_1", Int32Array.from({ length: 10 }, (_, i) => (i * 3 + 1) % 10)]]);
  const b = applyPermutations(mlpSpec(new Map([...a].map(([k, t]) => [k, t.shape]))), a, perms);
  for (const t of b.values()) for (let i = 0; i < t.data.length; i++) t.data[i] += (r() - 0.5) * 1e-3;
  const d = randomData(9, 400);
  // Labels A itself predicts, so the endpoints are right and the path has something to lose.
  d.labels = Int32Array.from({ length: d.count }, (_, n) => {
    const h = forward(a, d.inputs.subarray(n * 7, n * 7 + 7));
    return h.indexOf(Math.max(...h));
  });
  await writeTensors(join(dir, "a.safetensors"), modelFile(a));
  await writeTensors(join(dir, "b.safetensors"), modelFile(b));
  await writeTensors(join(dir, "data.safetensors"), [["inputs", "F32", [400, 7], d.inputs], ["labels", "I64", [400], d.labels]]);
  const ok = run("barrier", join(dir, "a.safetensors"), join(dir, "b.safetensors"), "--data", join(dir, "data.safetensors"), "--points", "11", "--align", "--json");
  assert.equal(ok.status, 0, ok.stderr);
  const result = JSON.parse(ok.stdout);
  assert.equal(result.naive.points.length, 11);
  assert.ok(result.naive.barrier > 0.01, `a permuted copy is not linearly connected: barrier ${result.naive.barrier}`);
  assert.ok(Math.abs(result.aligned.barrier) < 1e-3, `aligned, the path is flat: barrier ${result.aligned.barrier}`);
  const text = run("barrier", join(dir, "a.safetensors"), join(dir, "b.safetensors"), "--data", join(dir, "data.safetensors"), "--points", "5");
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /straight line: barrier \d+\.\d{4}/);

  await writeTensors(join(dir, "bad-labels.safetensors"), [["inputs", "F32", [2, 7], new Float32Array(14)], ["labels", "I32", [2], [1, 9]]]);
  let bad = run("barrier", join(dir, "a.safetensors"), join(dir, "b.safetensors"), "--data", join(dir, "bad-labels.safetensors"));
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /E_DATA.*bad-labels\.safetensors.*label 9/);
  // Found by an audit: 2^32 + 1 wrapped round to class 1 and was scored as it; an empty dataset gave null losses.
  await writeTensors(join(dir, "huge-label.safetensors"), [["inputs", "F32", [2, 7], new Float32Array(14)], ["labels", "I64", [2], [1, 2 ** 32 + 1]]]);
  bad = run("barrier", join(dir, "a.safetensors"), join(dir, "b.safetensors"), "--data", join(dir, "huge-label.safetensors"));
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /E_DATA.*huge-label\.safetensors.*label 4294967297/);
  await writeTensors(join(dir, "empty.safetensors"), [["inputs", "F32", [0, 7], new Float32Array(0)], ["labels", "I64", [0], []]]);
  bad = run("barrier", join(dir, "a.safetensors"), join(dir, "b.safetensors"), "--data", join(dir, "empty.safetensors"));
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /E_DATA.*empty\.safetensors.*no examples/);
  await writeTensors(join(dir, "no-labels.safetensors"), [["inputs", "F32", [2, 7], new Float32Array(14)]]);
  bad = run("barrier", join(dir, "a.safetensors"), join(dir, "b.safetensors"), "--data", join(dir, "no-labels.safetensors"));
  assert.match(bad.stderr, /E_DATA.*no-labels\.safetensors.*"labels"/);
  await writeTensors(join(dir, "wide.safetensors"), [["inputs", "F32", [1, 8], new Float32Array(8)], ["labels", "U8", [1], [0]]]);
  bad = run("barrier", join(dir, "a.safetensors"), join(dir, "b.safetensors"), "--data", join(dir, "wide.safetensors"));
  assert.match(bad.stderr, /E_DATA.*8 features.*fc0\.weight.*takes 7/);
  assert.equal(run("barrier", join(dir, "a.safetensors"), join(dir, "b.safetensors")).status, 2);
});

test("A and B must hold the same tensors, whichever is first: B's own biases are refused naming the tensor and both files (they were dropped from every point between the ends)", async () => {
  // Found by the stop 39 audit: the path interpolated over A's tensors only, so B's biases vanished at
  // 0 < λ < 1 (and --align left them unpermuted); the other order was refused.
  const a = randomMlp(21, [false, false, false]), b = randomMlp(22, [true, false, true]);
  const d = randomData(23, 50);
  await assert.rejects(barrierPath(a, b, d, 5), (e: unknown) => e instanceof WeightsoupError && e.code === "E_SHAPE_MISMATCH" && /"fc0\.bias" is \[13\] in the second model and missing in the first model/.test(e.message));
  await assert.rejects(barrierPath(b, a, d, 5), (e: unknown) => e instanceof WeightsoupError && e.code === "E_SHAPE_MISMATCH" && /"fc0\.bias" is \[13\] in the first model and missing in the second model/.test(e.message));
  await writeTensors(join(dir, "plain.safetensors"), modelFile(a));
  await writeTensors(join(dir, "biased.safetensors"), modelFile(b));
  await writeTensors(join(dir, "data-50.safetensors"), [["inputs", "F32", [50, 7], d.inputs], ["labels", "I64", [50], d.labels]]);
  for (const [first, second] of [["plain", "biased"], ["biased", "plain"]]) {
    for (const align of [[], ["--align"]]) {
      const r = run("barrier", join(dir, `${first}.safetensors`), join(dir, `${second}.safetensors`), "--data", join(dir, "data-50.safetensors"), "--points", "3", ...align);
      assert.equal(r.status, 1, `${first} then ${second} ${align.join(" ")}: ${r.stdout}`);
      assert.match(r.stderr, /E_SHAPE_MISMATCH.*"fc0\.bias" is \[13\] in \S*biased\.safetensors and missing in \S*plain\.safetensors/);
    }
  }
});
