// The kernels' transcendental functions (assembly/scalar-math.ts), which replace JavaScript's Math
// wherever a result reaches a merged tensor, an evaluation number or a sampled token, checked against
// independent references: V8's own libm (a different implementation: agreement within one ulp), the
// transformers RoPE goldens, and the scalar merge references of tests/reference/methods.ts.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { before, test } from "node:test";
import { loadKernels, type Kernels } from "../src/kernels/kernels";
import { scalarMath, type ScalarMath } from "../src/kernels/scalar-math";
import { ropeFrequencies, ropeInverseFrequencies, ropeTables } from "../src/eval/rope";
import { sample, samplingUniform } from "../src/eval/generator";
import { karcherCoefficients, nuslerpCoefficients, type Gram } from "../src/merge/geometric";
import { karcherMean, nuslerpCoefficients as referenceNuslerp } from "./reference/methods";
import { goldenRoot } from "./helpers/decoder-models";

let k: Kernels;
let math: ScalarMath;
before(async () => {
  k = await loadKernels(64 * 2 ** 20);
  math = await scalarMath();
});

const f32 = Math.fround;

/** Distance in units of the last place between two float64 values of the same sign. */
function ulps64(a: number, b: number): number {
  if (a === b) return 0;
  const bits = new BigInt64Array(new Float64Array([a, b]).buffer);
  return Number(bits[0]! > bits[1]! ? bits[0]! - bits[1]! : bits[1]! - bits[0]!);
}

/** Distance in float32 units of the last place between two float32 values. */
function ulps32(a: number, b: number): number {
  if (a === b) return 0;
  const bits = new Int32Array(new Float32Array([a, b]).buffer);
  // Map the sign-magnitude bit patterns onto a line so that values of either sign compare.
  const line = (x: number) => (x < 0 ? -(x & 0x7fffffff) : x);
  return Math.abs(line(bits[0]!) - line(bits[1]!));
}

/** A fixed pseudo-random sequence in [0, 1) (xorshift), so the cases are the same every run. */
function randoms(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x / 4294967296;
  };
}

test("the kernels' sin, cos, acos, exp, log and pow agree with V8's libm within one ulp", () => {
  const next = randoms(7);
  const cases: [string, (x: number, y: number) => number, (x: number, y: number) => number, () => [number, number]][] = [
    // RoPE angles reach 10⁵ radians; slerp angles are in [0, π].
    ["sin", (x) => math.sin(x), (x) => Math.sin(x), () => [(next() - 0.5) * 2e5, 0]],
    ["cos", (x) => math.cos(x), (x) => Math.cos(x), () => [(next() - 0.5) * 2e5, 0]],
    ["sin small", (x) => math.sin(x), (x) => Math.sin(x), () => [next() * Math.PI, 0]],
    ["acos", (x) => math.acos(x), (x) => Math.acos(x), () => [next() * 2 - 1, 0]],
    ["exp", (x) => math.exp(x), (x) => Math.exp(x), () => [(next() - 0.5) * 1400, 0]],
    ["log", (x) => math.log(x), (x) => Math.log(x), () => [Math.exp((next() - 0.5) * 1400), 0]],
    // θ^e for RoPE: θ up to 10⁶, e in [0, 1).
    ["pow", (x, y) => math.pow(x, y), (x, y) => Math.pow(x, y), () => [1 + next() * 1e6, next()]],
  ];
  for (const [name, ours, theirs, draw] of cases) {
    for (let i = 0; i < 2000; i++) {
      const [x, y] = draw();
      const a = ours(x, y), b = theirs(x, y);
      assert.ok(ulps64(a, b) <= 1, `${name}(${x}, ${y}): kernels ${a}, V8 ${b}`);
    }
  }
  // Exact cases every libm must get right.
  assert.equal(math.exp(0), 1);
  assert.equal(math.log(1), 0);
  assert.equal(math.acos(1), 0);
  assert.equal(math.cos(0), 1);
  assert.equal(math.pow(2, 10), 1024);
  assert.equal(math.pow(10000, 0), 1);
});

test("RoPE through the kernels: frequencies and cos/sin tables match transformers' goldens and a scalar TS table", async () => {
  const cases = JSON.parse(await readFile(join(goldenRoot(), "rope_tables.json"), "utf8")) as {
    name: string; config: Record<string, unknown>; positions: number[]; invFreq: number[]; cos: number[]; sin: number[];
  }[];
  const rows = 8192;
  let compared = 0;
  for (const c of cases) {
    const rope = ropeFrequencies(c.config, c.config.head_dim as number, c.name);
    const half = rope.rot / 2;
    const freqs = ropeInverseFrequencies(rope, math);
    // torch's float32 pow is not always correctly rounded: at most one frequency one ulp away.
    const off = [...freqs].flatMap((f, i) => (f === f32(c.invFreq[i]!) ? [] : [i]));
    for (const i of off) assert.ok(ulps32(freqs[i]!, f32(c.invFreq[i]!)) <= 1, `${c.name}: inv_freq[${i}] ${freqs[i]} vs ${c.invFreq[i]}`);
    assert.ok(off.length <= 1, `${c.name}: frequencies ${off.join(", ")} differ from transformers`);

    const mark = k.arena.mark();
    const tables = ropeTables(rope, rows, k);
    const cos = k.arena.f32(tables.cos, rows * half).slice(), sin = k.arena.f32(tables.sin, rows * half).slice();
    k.arena.release(mark);
    c.positions.forEach((t, row) => {
      if (t >= rows) return;
      for (let i = 0; i < half; i++) {
        const d = Math.max(Math.abs(cos[t * half + i]! - c.cos[row * half + i]!), Math.abs(sin[t * half + i]! - c.sin[row * half + i]!));
        const tol = off.includes(i) ? 1e-5 : 1.2e-7;
        assert.ok(d <= tol, `${c.name}: position ${t}, pair ${i}: |Δ| ${d} from transformers`);
        compared++;
      }
    });
    // Every entry within one float32 ulp of the same recipe with V8's cos and sin.
    for (let t = 0; t < rows; t += 7) {
      for (let i = 0; i < half; i++) {
        const phi = f32(f32(t) * freqs[i]!);
        const j = t * half + i;
        assert.ok(ulps32(cos[j]!, f32(Math.cos(phi))) <= 1, `${c.name}: cos at ${t}, ${i}: ${cos[j]} vs ${f32(Math.cos(phi))}`);
        assert.ok(ulps32(sin[j]!, f32(Math.sin(phi))) <= 1, `${c.name}: sin at ${t}, ${i}: ${sin[j]} vs ${f32(Math.sin(phi))}`);
      }
    }
  }
  assert.ok(compared > 1000, `only ${compared} golden entries compared`);
});

/** The Gram matrix of float64 vectors. */
function gramOf(vs: Float64Array[]): Gram {
  const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, x, j) => s + x * b[j]!, 0);
  const g = vs.map((a) => vs.map((b) => dot(a, b)));
  return (i, j) => g[i]![j]!;
}

test("slerp-family coefficients through the kernels equal the scalar references (nuslerp, karcher)", () => {
  const next = randoms(11);
  const vector = (n: number) => Float64Array.from({ length: n }, () => next() - 0.5);
  for (let trial = 0; trial < 50; trial++) {
    const n = 5 + trial;
    const a = vector(n), b = vector(n);
    const t = next();
    const [c0, c1] = nuslerpCoefficients(t, gramOf([a, b]), math);
    const [r0, r1] = referenceNuslerp(a, b, t);
    assert.ok(Math.abs(c0! - r0) <= 1e-12 * Math.max(1, Math.abs(r0)) && Math.abs(c1! - r1) <= 1e-12 * Math.max(1, Math.abs(r1)),
      `nuslerp trial ${trial}: (${c0}, ${c1}) vs (${r0}, ${r1})`);

    const vs = [vector(n), vector(n), vector(n)];
    const coef = karcherCoefficients(10, 1e-5, gramOf(vs), vs.length, math);
    const mean = karcherMean(vs, 10, 1e-5);
    for (let j = 0; j < n; j++) {
      const ours = coef.reduce((s, x, i) => s + x * vs[i]![j]!, 0);
      assert.ok(Math.abs(ours - mean[j]!) <= 1e-9 * Math.max(1, Math.abs(mean[j]!)), `karcher trial ${trial}, element ${j}: ${ours} vs ${mean[j]}`);
    }
  }
});

test("sampling through the kernels picks the token whose softmax interval holds the uniform draw", () => {
  const next = randoms(5);
  const n = 50;
  const logits = k.arena.alloc(n * 4);
  for (let trial = 0; trial < 300; trial++) {
    const z = k.arena.f32(logits, n);
    for (let i = 0; i < n; i++) z[i] = f32((next() - 0.5) * 8);
    const temperature = 0.3 + next() * 1.5, seed = trial * 7919;
    const id = sample(k, logits, n, { temperature, seed }, trial);
    // Reference: softmax(z / T) cumulated with V8's exp; the draw u must fall in the chosen token's
    // interval [before, after) of the cumulative distribution (up to rounding of the sums).
    let best = 0;
    for (let i = 1; i < n; i++) if (z[i]! > z[best]!) best = i;
    const w = Array.from(z, (x) => Math.exp((x - z[best]!) / temperature));
    const total = w.reduce((s, x) => s + x, 0);
    const before = w.slice(0, id).reduce((s, x) => s + x, 0) / total, after = before + w[id]! / total;
    const u = samplingUniform(seed, trial);
    assert.ok(u >= before - 1e-12 && u < after + 1e-12, `trial ${trial}: token ${id} covers [${before}, ${after}), the draw is ${u}`);
  }
  // Greedy (temperature 0) is the first largest logit, no exponentials involved.
  const z = k.arena.f32(logits, n);
  z.fill(0); z[3] = 2; z[9] = 2;
  assert.equal(sample(k, logits, n, { temperature: 0, seed: 1 }, 0), 3);
});
