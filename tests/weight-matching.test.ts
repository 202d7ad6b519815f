// Weight matching on MLPs: permutations keep the function (checked with a forward pass written here),
// and a planted permutation is recovered exactly.
import assert from "node:assert/strict";
import { test } from "node:test";
import { mlpSpec } from "../src/align/architectures";
import type { Permutations } from "../src/align/spec";
import { applyPermutations, weightMatching, type Tensor } from "../src/align/weight-matching";

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x / 4294967296;
  };
}

const WIDTHS = [12, 32, 24, 5]; // input, two hidden layers, output

function randomMlp(seed: number): Map<string, Tensor> {
  const r = rng(seed);
  const m = new Map<string, Tensor>();
  for (let l = 0; l + 1 < WIDTHS.length; l++) {
    const [inp, out] = [WIDTHS[l]!, WIDTHS[l + 1]!];
    m.set(`layers.${l}.weight`, { shape: [out, inp], data: Float32Array.from({ length: out * inp }, () => (r() - 0.5) / Math.sqrt(inp)) });
    m.set(`layers.${l}.bias`, { shape: [out], data: Float32Array.from({ length: out }, () => (r() - 0.5) * 0.1) });
  }
  return m;
}

/** relu(W x + b) for every layer but the last, which is linear. In float64. */
function forward(m: Map<string, Tensor>, x: number[]): number[] {
  let h = x;
  for (let l = 0; l + 1 < WIDTHS.length; l++) {
    const w = m.get(`layers.${l}.weight`)!, b = m.get(`layers.${l}.bias`)!;
    const [out, inp] = w.shape as [number, number];
    const next: number[] = [];
    for (let i = 0; i < out; i++) {
      let z = b.data[i]!;
      for (let j = 0; j < inp; j++) z += w.data[i * inp + j]! * h[j]!;
      next.push(l + 2 < WIDTHS.length ? Math.max(0, z) : z);
    }
    h = next;
  }
  return h;
}

function randomPermutation(n: number, r: () => number): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

const shapesOf = (m: Map<string, Tensor>) => new Map([...m].map(([k, t]) => [k, t.shape]));

test("the MLP spec chains the layers and leaves input and output axes alone", () => {
  const spec = mlpSpec(shapesOf(randomMlp(1)));
  assert.equal(Object.getPrototypeOf(spec), null, "keyed by tensor names, so no prototype");
  assert.deepEqual({ ...spec }, {
    "layers.0.weight": ["P_0", null], "layers.0.bias": ["P_0"],
    "layers.1.weight": ["P_1", "P_0"], "layers.1.bias": ["P_1"],
    "layers.2.weight": [null, "P_1"], "layers.2.bias": [null],
  });
});

test("permuting hidden units leaves the MLP's function unchanged", () => {
  const model = randomMlp(2);
  const r = rng(3);
  const perms: Permutations = new Map([["P_0", randomPermutation(32, r)], ["P_1", randomPermutation(24, r)]]);
  const permuted = applyPermutations(mlpSpec(shapesOf(model)), model, perms);
  assert.notDeepEqual([...permuted.get("layers.1.weight")!.data], [...model.get("layers.1.weight")!.data], "the weights did move");
  for (let trial = 0; trial < 5; trial++) {
    const x = Array.from({ length: WIDTHS[0]! }, () => r() * 2 - 1);
    const before = forward(model, x), after = forward(permuted, x);
    before.forEach((y, i) => assert.ok(Math.abs(y - after[i]!) <= 1e-5, `output ${i}: ${y} vs ${after[i]}`));
  }
});

test("weight matching recovers a planted permutation exactly (B = permuted A + noise)", async () => {
  const a = randomMlp(4);
  const r = rng(5);
  const planted: Permutations = new Map([["P_0", randomPermutation(32, r)], ["P_1", randomPermutation(24, r)]]);
  const spec = mlpSpec(shapesOf(a));
  const b = applyPermutations(spec, a, planted);
  for (const t of b.values()) for (let i = 0; i < t.data.length; i++) t.data[i] += (r() - 0.5) * 1e-3;
  const result = await weightMatching(spec, a, b, { seed: 7 });
  // B[i] = A[q[i]] along each group, so the matching gather p must satisfy q[p[k]] = k.
  for (const [group, q] of planted) {
    const p = result.permutations.get(group)!;
    for (let k = 0; k < q.length; k++) assert.equal(q[p[k]!], k, `${group}: unit ${k}`);
    const s = result.similarity.get(group)!;
    assert.ok(s.after > s.before, `${group}: similarity grew (${s.before} -> ${s.after})`);
  }
  assert.ok(result.sweeps >= 2 && result.sweeps <= 10, `converged in ${result.sweeps} sweeps`);
  const aligned = applyPermutations(spec, b, result.permutations);
  for (const [name, t] of a) {
    const u = aligned.get(name)!;
    for (let i = 0; i < t.data.length; i++) assert.ok(Math.abs(t.data[i]! - u.data[i]!) <= 1e-3, `${name}[${i}]`);
  }
});

test("the same inputs and seed give the same permutations", async () => {
  const a = randomMlp(8), b = randomMlp(9);
  const spec = mlpSpec(shapesOf(a));
  const one = await weightMatching(spec, a, b, { seed: 3 }), two = await weightMatching(spec, a, b, { seed: 3 });
  for (const [g, p] of one.permutations) assert.deepEqual([...p], [...two.permutations.get(g)!]);
});

test("tensors that are not a chain of linear layers get a clear error", () => {
  assert.throws(() => mlpSpec(new Map([["fc1.weight", [4, 3]], ["fc2.weight", [2, 5]]])), (e: Error & { code?: string }) => e.code === "E_SPEC" && /fc2\.weight takes 5 inputs/.test(e.message));
  assert.throws(() => mlpSpec(new Map([["fc1.weight", [4, 3]], ["fc2.weight", [2, 4]], ["norm.scale", [4]]])), (e: Error & { code?: string }) => e.code === "E_SPEC" && /norm\.scale/.test(e.message));
});

test("layers whose order their names do not give (not numbered alike) are refused, not chained in name order", () => {
  // input / hidden / output sort as hidden, input, output: with square layers every shape check passed
  // and B was permuted as a different network (its function changed).
  const square = (names: string[]) => new Map(names.map((n) => [`${n}.weight`, [8, 8]] as [string, number[]]));
  for (const names of [["input", "hidden", "output"], ["fc1", "fc2", "head"], ["encoder.0", "decoder.0"]]) {
    assert.throws(() => mlpSpec(square(names)), (e: Error & { code?: string }) => e.code === "E_SPEC" && /not numbered alike/.test(e.message), names.join(", "));
  }
  // Numbered alike, in number order (10 after 9), gaps allowed (nn.Sequential's net.0, net.2, net.4).
  const spec = mlpSpec(square(["net.0", "net.2", "net.4", "net.10", "net.9"]));
  assert.deepEqual(spec["net.4.weight"], ["P_2", "P_1"]);
  assert.deepEqual(spec["net.10.weight"], [null, "P_3"]);
});
