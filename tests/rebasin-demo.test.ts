// The shipped Git Re-Basin demonstration (bench/rebasin): two Fashion-MNIST MLPs trained from different
// seeds. Their straight line has a clear loss barrier and aligning B to A by weight matching removes
// nearly all of it. The files are read with the tests' own safetensors reader, and the claims are
// checked with a float64 forward pass written here, not only with the library's wasm evaluation.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { mlpSpec } from "../src/align/architectures";
import { barrierPath, type Dataset } from "../src/align/barrier";
import { applyPermutations, weightMatching, type Tensor } from "../src/align/weight-matching";
import { decodeFloat, readSafetensors } from "./reference/safetensors";

const DEMO = new URL("../../bench/rebasin/", import.meta.url);

async function readFloats(file: string): Promise<Map<string, Tensor>> {
  const { tensors } = readSafetensors(new Uint8Array(await readFile(new URL(file, DEMO))));
  return new Map([...tensors].filter(([, t]) => t.dtype !== "I32").map(([name, t]) => [name, { shape: t.shape, data: decodeFloat(t.dtype, t.data) }]));
}

async function readTestSet(): Promise<Dataset> {
  const { tensors } = readSafetensors(new Uint8Array(await readFile(new URL("test.safetensors", DEMO))));
  const inputs = tensors.get("inputs")!, labels = tensors.get("labels")!;
  assert.equal(labels.dtype, "I32");
  const l = labels.data;
  return {
    inputs: decodeFloat(inputs.dtype, inputs.data),
    labels: new Int32Array(l.buffer.slice(l.byteOffset, l.byteOffset + l.byteLength)),
    count: inputs.shape[0]!, features: inputs.shape[1]!, name: "test.safetensors",
  };
}

/** Logits of one example, in float64: layers.0 … layers.3, ReLU between. */
function logits(m: ReadonlyMap<string, Tensor>, x: ArrayLike<number>): Float64Array {
  let h = Float64Array.from(x);
  for (let l = 0; m.has(`layers.${l}.weight`); l++) {
    const w = m.get(`layers.${l}.weight`)!, b = m.get(`layers.${l}.bias`)!;
    const [out, inp] = w.shape as [number, number];
    const z = new Float64Array(out);
    for (let i = 0; i < out; i++) {
      let s = b.data[i]!;
      for (let j = 0; j < inp; j++) s += w.data[i * inp + j]! * h[j]!;
      z[i] = m.has(`layers.${l + 1}.weight`) ? Math.max(0, s) : s;
    }
    h = z;
  }
  return h;
}

/** Mean softmax cross-entropy over the first `count` examples, in float64. */
function meanLoss(m: ReadonlyMap<string, Tensor>, d: Dataset, count: number): number {
  let loss = 0;
  for (let n = 0; n < count; n++) {
    const z = logits(m, d.inputs.subarray(n * d.features, (n + 1) * d.features));
    const max = Math.max(...z);
    loss += Math.log(z.reduce((s, v) => s + Math.exp(v - max), 0)) + max - z[d.labels[n]!]!;
  }
  return loss / count;
}

function midpoint(a: ReadonlyMap<string, Tensor>, b: ReadonlyMap<string, Tensor>): Map<string, Tensor> {
  return new Map([...a].map(([name, t]) => [name, { shape: t.shape, data: t.data.map((v, i) => 0.5 * v + 0.5 * b.get(name)!.data[i]!) }]));
}

test("the shipped MLP pair: weight matching removes most of the barrier between models trained from different seeds", async () => {
  const a = await readFloats("mlp-a.safetensors"), b = await readFloats("mlp-b.safetensors"), data = await readTestSet();
  assert.equal(data.count, 2000);
  const spec = mlpSpec(new Map([...a].map(([name, t]) => [name, t.shape])));
  const { permutations } = await weightMatching(spec, a, b, { seed: 0 });
  for (const [group, p] of permutations) assert.deepEqual([...p].sort((x, y) => x - y), [...p.keys()], `${group} is a permutation`);
  const aligned = applyPermutations(spec, b, permutations);

  // Aligned B is still B: the same logits on real images.
  for (let n = 0; n < 20; n++) {
    const x = data.inputs.subarray(n * data.features, (n + 1) * data.features);
    const want = logits(b, x), got = logits(aligned, x);
    for (let c = 0; c < want.length; c++) assert.ok(Math.abs(got[c]! - want[c]!) <= 1e-9 * Math.max(1, Math.abs(want[c]!)), `example ${n}, class ${c}`);
  }

  // The midpoint barrier (loss at λ = ½ minus the mean endpoint loss), float64, on 300 test images.
  const count = 300;
  const endpoints = (meanLoss(a, data, count) + meanLoss(b, data, count)) / 2;
  const naive = meanLoss(midpoint(a, b), data, count) - endpoints;
  const afterAlignment = meanLoss(midpoint(a, aligned), data, count) - endpoints;
  assert.ok(naive > 0.5, `the straight line between the unaligned models has a clear barrier: ${naive}`);
  assert.ok(afterAlignment < 0.1 * naive, `after alignment the barrier is under a tenth of it: ${afterAlignment} vs ${naive}`);

  // The library's path over the whole shipped test set says the same.
  const path = await barrierPath(a, b, data, 5), alignedPath = await barrierPath(a, aligned, data, 5);
  assert.ok(path.barrier > 0.5 && alignedPath.barrier < 0.1 * path.barrier, `barrier ${path.barrier} before, ${alignedPath.barrier} after`);
  const worstEndpoint = Math.min(alignedPath.points[0]!.accuracy, alignedPath.points[4]!.accuracy);
  assert.ok(alignedPath.midpoint.accuracy > worstEndpoint - 0.02, `aligned midpoint accuracy ${alignedPath.midpoint.accuracy} vs endpoints ≥ ${worstEndpoint}`);
  assert.ok(path.midpoint.accuracy < worstEndpoint - 0.1, `unaligned midpoint accuracy ${path.midpoint.accuracy} drops well below ${worstEndpoint}`);
});
