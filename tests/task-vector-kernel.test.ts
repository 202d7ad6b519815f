// The task-vector merge kernel (assembly/taskvector.ts taskVectorMerge) on every path of its final pass:
// TIES's loops for 2, 3 and 4 task vectors (sum vote, normalized or not), plain task arithmetic's BF16
// loops (divisors that are powers of two and not), the general loop (count and
// unweighted votes, no consensus, 5 and 10 task vectors), each trim mode (magnitude, band, random, keep
// bits, none, zero), inputs read in place as BF16, F16 and F32 (mixed too) or rounded on load, outputs
// in each dtype, against a plain scalar implementation written here from the method's definition: keep
// masks from the test reference (top-k by |tau| with ties to the lowest index; DARE's generator), then
// p_i = (m_i * r_i) * w_i, the elected sign, the disjoint mean and b + lambda * mixed in float32.
// The data has many |tau| equal to the thresholds (budgets run out inside blocks and tails), zero deltas
// and both signs; lengths are not multiples of 8, and chunked runs split each tie budget as the caller does.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  DTYPE_BF16, DTYPE_F16, DTYPE_F32, DTYPE_NONE, TRIM_BAND, TRIM_BITS, TRIM_MAGNITUDE, TRIM_NONE, TRIM_RANDOM, TRIM_ZERO,
  TV_CONSENSUS, TV_COUNT_VOTE, TV_DTYPE, TV_KEY, TV_MASK, TV_MODE, TV_NORMALIZE, TV_PTR, TV_RECORD, TV_RESCALE, TV_THRESHOLD,
  TV_THRESHOLD2, TV_TIES, TV_TIES2, TV_UNWEIGHTED_VOTE, TV_WEIGHT,
} from "../assembly/layout";
import { loadKernels, type Kernels } from "../src/kernels/kernels";
import { magnitudeKeepMask } from "./reference/merge";
import { dareKeepThreshold, dareU } from "./reference/rng";
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToBits, f32ToF16Bits, roundToDtype, type FloatDtype } from "./reference/float16";
import { uniform } from "./helpers/fixtures";

const fr = Math.fround;
const CODES: Record<FloatDtype, number> = { F32: DTYPE_F32, F16: DTYPE_F16, BF16: DTYPE_BF16 };
const BYTES: Record<FloatDtype, number> = { F32: 4, F16: 2, BF16: 2 };

type Trim =
  | { mode: "none" }
  | { mode: "zero" }
  | { mode: "magnitude"; k: number }
  | { mode: "band"; keep: number; top: number }
  | { mode: "random"; density: number; key: number }
  | { mode: "bits"; keep: Uint8Array };

interface Task { x: Float32Array; weight: number; rescale: number; trim: Trim }

interface Case {
  b: Float32Array;
  tasks: Task[];
  consensus: boolean;
  normalize: boolean;
  count?: boolean;
  unweighted?: boolean;
  lambda: number;
  divisor: number;
  /** Flat index of element 0 (a multiple of the kernel's tile). */
  start: number;
  inDtypes: FloatDtype[]; // base first
  outDtype: FloatDtype;
  /** The recipe's load dtype: inputs are rounded to it before anything else. */
  quant?: FloatDtype;
}

// ---------------------------------------------------------------------------------------------
// The scalar reference.

function keepMask(trim: Trim, tau: Float32Array, start: number): Uint8Array {
  const n = tau.length;
  switch (trim.mode) {
    case "none": return new Uint8Array(n).fill(1);
    case "zero": return new Uint8Array(n);
    case "magnitude": return magnitudeKeepMask(tau, trim.k);
    case "band": {
      // Ranks [top, top + keep) by |tau| descending: the top (keep + top) minus the top `top`.
      const inner = magnitudeKeepMask(tau, trim.keep + trim.top), outer = magnitudeKeepMask(tau, trim.top);
      return inner.map((v, j) => (v && !outer[j] ? 1 : 0));
    }
    case "random": {
      const t = dareKeepThreshold(trim.density);
      return Uint8Array.from({ length: n }, (_, j) => (dareU(trim.key, start + j) < t ? 1 : 0));
    }
    case "bits": return trim.keep;
  }
}

/** The merged float32 values. */
function referenceMerge(c: Case): Float32Array {
  const n = c.b.length;
  const round = (v: Float32Array) => (c.quant ? v.map((x) => roundToDtype(x, c.quant!)) : v);
  const b = round(c.b);
  const qs: Float32Array[] = [], ps: Float32Array[] = [];
  for (const task of c.tasks) {
    const x = round(task.x);
    const tau = Float32Array.from(x, (v, j) => fr(v - b[j]!));
    const keep = keepMask(task.trim, tau, c.start);
    const q = tau.map((t, j) => {
      const m = keep[j] ? t : 0;
      return task.rescale === 1 ? m : fr(m * fr(task.rescale));
    });
    qs.push(q);
    ps.push(q.map((m) => fr(m * fr(task.weight))));
  }
  const w = c.tasks.map((t) => fr(t.weight));
  const votes = c.unweighted ? qs : ps;
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    let mixed = 0;
    if (c.consensus) {
      let positive: boolean;
      if (c.count) {
        let count = 0;
        for (const v of votes) count += v[j]! > 0 ? 1 : v[j]! < 0 ? -1 : 0;
        positive = count >= 0;
      } else {
        let sum = votes[0]![j]!;
        for (let i = 1; i < votes.length; i++) sum = fr(sum + votes[i]![j]!);
        positive = sum >= 0;
      }
      let weights = 0;
      for (let i = 0; i < votes.length; i++) {
        const v = votes[i]![j]!;
        const agree = positive ? v > 0 : v < 0;
        const term = agree ? ps[i]![j]! : 0, weight = agree ? w[i]! : 0;
        mixed = i === 0 ? term : fr(mixed + term);
        weights = i === 0 ? weight : fr(weights + weight);
      }
      if (c.normalize) mixed = fr(mixed / (weights === 0 ? 1 : weights));
    } else {
      mixed = ps[0]![j]!;
      for (let i = 1; i < ps.length; i++) mixed = fr(mixed + ps[i]![j]!);
      if (c.normalize) mixed = fr(mixed / fr(c.divisor));
    }
    if (c.lambda !== 1) mixed = fr(mixed * fr(c.lambda));
    out[j] = fr(b[j]! + mixed);
  }
  return out;
}

/** The output's bit patterns. */
function encoded(values: Float32Array, dtype: FloatDtype): number[] {
  return Array.from(values, (v) => (dtype === "F32" ? f32ToBits(v) : dtype === "BF16" ? f32ToBf16Bits(v) : f32ToF16Bits(v)));
}

// ---------------------------------------------------------------------------------------------
// The kernel, over chunks [0, split) and [split, n) as the engine runs a chunked tensor.

/** |tau| bits of the k-th largest and how many elements above it (the select step's result). */
function cutOf(tau: Float32Array, k: number): { threshold: number; above: number } {
  const bits = Array.from(tau, (t) => f32ToBits(Math.abs(t))).sort((p, q) => q - p);
  const threshold = bits[k - 1]!;
  return { threshold, above: bits.filter((v) => v > threshold).length };
}

/** Each chunk's budget of elements equal to the threshold: the lowest indices first, as the engine splits it. */
function tiesPerChunk(tau: Float32Array, k: number, bounds: number[]): { threshold: number; ties: number[] } {
  const { threshold, above } = cutOf(tau, k);
  let left = k - above;
  const ties = bounds.slice(1).map((end, c) => {
    let equal = 0;
    for (let j = bounds[c]!; j < end; j++) if (f32ToBits(Math.abs(tau[j]!)) === threshold) equal++;
    const mine = Math.min(left, equal);
    left -= mine;
    return mine;
  });
  return { threshold, ties };
}

function storeAs(k: Kernels, values: Float32Array, dtype: FloatDtype): number {
  const ptr = k.arena.alloc(values.length * BYTES[dtype] + 16);
  const view = k.arena.view();
  values.forEach((v, j) => {
    if (dtype === "F32") view.setFloat32(ptr + 4 * j, v, true);
    else view.setUint16(ptr + 2 * j, dtype === "BF16" ? f32ToBf16Bits(v) : f32ToF16Bits(v), true);
  });
  return ptr;
}

function kernelMerge(k: Kernels, c: Case, split: number): number[] {
  const n = c.b.length;
  const bounds = split > 0 && split < n ? [0, split, n] : [0, n];
  const mark = k.arena.mark();
  const inputs = [c.b, ...c.tasks.map((t) => t.x)];
  const ptrs = inputs.map((v, i) => storeAs(k, v, c.inDtypes[i]!));
  const round = (v: Float32Array) => (c.quant ? v.map((x) => roundToDtype(x, c.quant!)) : v);
  const b = round(c.b);
  const taus = c.tasks.map((t) => round(t.x).map((v, j) => fr(v - b[j]!)));
  const cuts = c.tasks.map((task, i) => {
    const trim = task.trim;
    if (trim.mode === "magnitude") return [tiesPerChunk(taus[i]!, trim.k, bounds)];
    if (trim.mode === "band") return [tiesPerChunk(taus[i]!, trim.keep + trim.top, bounds), tiesPerChunk(taus[i]!, trim.top, bounds)];
    return [];
  });
  const outBytes = BYTES[c.outDtype];
  const out = k.arena.alloc(n * outBytes + 16);
  const table = k.arena.alloc(inputs.length * TV_RECORD);
  const flags = (c.normalize ? TV_NORMALIZE : 0) | (c.consensus ? TV_CONSENSUS : 0) | (c.count ? TV_COUNT_VOTE : 0) | (c.unweighted ? TV_UNWEIGHTED_VOTE : 0);
  for (let chunk = 0; chunk + 1 < bounds.length; chunk++) {
    const from = bounds[chunk]!, count = bounds[chunk + 1]! - from;
    const chunkMark = k.arena.mark();
    // Keep bits of this chunk (bit j of byte j >> 3 for chunk element j), allocated before the view below.
    const masks = c.tasks.map((task) => {
      if (task.trim.mode !== "bits") return 0;
      const bytes = Math.ceil(count / 8) + 8, mask = k.arena.alloc(bytes);
      const bits = k.arena.u8(mask, bytes).fill(0);
      for (let j = 0; j < count; j++) if (task.trim.keep[from + j]) bits[j >>> 3]! |= 1 << (j & 7);
      return mask;
    });
    const view = k.arena.view();
    k.arena.u8(table, inputs.length * TV_RECORD).fill(0);
    inputs.forEach((_, i) => {
      const rec = table + i * TV_RECORD;
      view.setUint32(rec + TV_PTR, ptrs[i]! + from * BYTES[c.inDtypes[i]!], true);
      view.setUint32(rec + TV_DTYPE, CODES[c.inDtypes[i]!], true);
      if (i === 0) return;
      const task = c.tasks[i - 1]!, trim = task.trim;
      view.setFloat32(rec + TV_WEIGHT, task.weight, true);
      view.setFloat32(rec + TV_RESCALE, task.rescale, true);
      const mode = { none: TRIM_NONE, zero: TRIM_ZERO, magnitude: TRIM_MAGNITUDE, band: TRIM_BAND, random: TRIM_RANDOM, bits: TRIM_BITS }[trim.mode];
      view.setUint32(rec + TV_MODE, mode, true);
      const [inner, outer] = cuts[i - 1]!;
      if (inner) {
        view.setUint32(rec + TV_THRESHOLD, inner.threshold, true);
        view.setUint32(rec + TV_TIES, inner.ties[chunk]!, true);
      }
      if (outer) {
        view.setUint32(rec + TV_THRESHOLD2, outer.threshold, true);
        view.setUint32(rec + TV_TIES2, outer.ties[chunk]!, true);
      }
      if (trim.mode === "random") {
        view.setUint32(rec + TV_THRESHOLD, dareKeepThreshold(trim.density), true);
        view.setUint32(rec + TV_KEY, trim.key, true);
      }
      if (trim.mode === "bits") view.setUint32(rec + TV_MASK, masks[i - 1]!, true);
    });
    const first = c.start + from;
    k.exports.taskVectorMerge(table, inputs.length, count, first >>> 0, Math.floor(first / 2 ** 32), c.quant ? CODES[c.quant] : DTYPE_NONE, flags, fr(c.divisor), fr(c.lambda), out + from * outBytes, CODES[c.outDtype]);
    k.arena.release(chunkMark);
  }
  const view = k.arena.view();
  const bits = Array.from({ length: n }, (_, j) => (outBytes === 4 ? view.getUint32(out + 4 * j, true) : view.getUint16(out + 2 * j, true)));
  k.arena.release(mark);
  return bits;
}

// ---------------------------------------------------------------------------------------------
// Data: |tau| concentrated on a few levels (many equal to any threshold), zeros, both signs.

const LEVELS = [0, 0.125, -0.125, 0.25, -0.25, 0.375, -0.375, 0.5, -0.5];

/** Base values: multiples of 1/64 in [-1, 1), exact in every dtype, so x = b + level is exact too. */
function baseValues(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, (_, j) => Math.floor(uniform(seed, j) * 128 - 64) / 64);
}

function taskValues(b: Float32Array, seed: number, dtype: FloatDtype): Float32Array {
  return Float32Array.from(b, (v, j) => {
    const u = uniform(seed, j);
    const t = u < 0.7 ? LEVELS[Math.floor(uniform(seed + 1, j) * LEVELS.length)]! : (uniform(seed + 2, j) - 0.5) * 0.9;
    return roundToDtype(v + t, dtype);
  });
}

/** k for a cut inside a run of equal |tau|: everything above some level plus a fraction of that level. */
function kInsideTies(x: Float32Array, b: Float32Array, seed: number): number {
  const mags = Array.from(x, (v, j) => Math.abs(fr(v - b[j]!))).sort((p, q) => q - p);
  const level = mags[Math.floor(uniform(seed, 0) * mags.length * 0.9)]!;
  const above = mags.filter((m) => m > level).length, equal = mags.filter((m) => m === level).length;
  return Math.max(1, above + Math.floor(equal * uniform(seed, 1)));
}

/** `dtypes`: the base's, then the task inputs' (the last one repeats). */
interface Shape { tasks: number; dtypes: FloatDtype[]; outDtype: FloatDtype; n: number }

function taskDtype(dtypes: FloatDtype[], i: number): FloatDtype {
  return dtypes[Math.min(i + 1, dtypes.length - 1)]!;
}

function makeCase(shape: Shape, seed: number, trims: (x: Float32Array, b: Float32Array, i: number) => Trim, options: Partial<Case>): Case {
  const b = baseValues(shape.n, seed);
  const tasks = Array.from({ length: shape.tasks }, (_, i): Task => {
    const x = taskValues(b, seed + 10 * (i + 1), taskDtype(shape.dtypes, i));
    return { x, weight: [1, 0.7, 0.5, 1.25, 0.3][i % 5]!, rescale: 1, trim: trims(x, b, i) };
  });
  return {
    b, tasks, consensus: true, normalize: true, lambda: 1, divisor: 1, start: 0, outDtype: shape.outDtype,
    inDtypes: [shape.dtypes[0]!, ...tasks.map((_, i) => taskDtype(shape.dtypes, i))], ...options,
  };
}

function check(k: Kernels, c: Case, what: string): void {
  const expected = encoded(referenceMerge(c), c.outDtype);
  for (const split of [0, 4096]) {
    const got = kernelMerge(k, c, split);
    const bad = got.findIndex((v, j) => v !== expected[j]);
    assert.equal(bad, -1, `${what}${split ? " (two chunks)" : ""}: element ${bad} is 0x${got[bad]?.toString(16)}, expected 0x${expected[bad]?.toString(16)}`);
  }
}

const N = 4096 * 2 + 517; // three tiles, the last not a multiple of 8
const magnitude = (seed: number) => (x: Float32Array, b: Float32Array, i: number): Trim => ({ mode: "magnitude", k: kInsideTies(x, b, seed + i) });

describe("task-vector merge kernel against the scalar reference", () => {
  for (const simd of ["plain", "auto"] as const) {
    test(`${simd} build: TIES (sum vote) with 2, 3 and 4 task vectors, the loops for BF16, F32 and other dtypes`, async () => {
      const k = await loadKernels(256 * 2 ** 20, undefined, { simd });
      let seed = 100;
      for (const tasks of [2, 3, 4]) {
        for (const [dtypes, outDtype] of [[["BF16"], "BF16"], [["F32"], "F32"], [["F16"], "F16"], [["F32", "BF16"], "BF16"], [["BF16"], "F32"]] as [FloatDtype[], FloatDtype][]) {
          for (const normalize of [true, false]) {
            const c = makeCase({ tasks, dtypes, outDtype, n: N }, seed += 7, magnitude(seed), { normalize, lambda: normalize ? 1 : 0.75 });
            check(k, c, `ties, ${tasks} tasks, ${dtypes.join("/")} -> ${outDtype}, normalize ${normalize}`);
          }
        }
      }
    });

    test(`${simd} build: short tensors, budgets spent or untouched, a tie budget among zeros, no-trim and zero-trim tasks, negative weights`, async () => {
      const k = await loadKernels(256 * 2 ** 20, undefined, { simd });
      let seed = 300;
      for (const n of [1, 3, 7, 8, 9, 517, 4096, 4103]) {
        const c = makeCase({ tasks: 3, dtypes: ["BF16"], outDtype: "BF16", n }, seed += 3, magnitude(seed), {});
        check(k, c, `ties over ${n} elements`);
      }
      const b = baseValues(N, 7), mags = (x: Float32Array) => Array.from(x, (v, j) => Math.abs(fr(v - b[j]!)));
      const x1 = taskValues(b, 71, "BF16"), x2 = taskValues(b, 72, "BF16"), x3 = taskValues(b, 73, "BF16");
      const zeros = mags(x1).filter((m) => m === 0).length;
      const c: Case = {
        b, consensus: true, normalize: true, lambda: 1, divisor: 1, start: 0, inDtypes: ["BF16", "BF16", "BF16", "BF16"], outDtype: "BF16",
        tasks: [
          { x: x1, weight: 1, rescale: 1, trim: { mode: "magnitude", k: N - Math.floor(zeros / 2) } }, // the cut falls among the zeros
          { x: x2, weight: -0.5, rescale: 1, trim: { mode: "magnitude", k: mags(x2).filter((m) => m > 0.25).length } }, // no tie kept
          { x: x3, weight: 0.5, rescale: 1, trim: { mode: "magnitude", k: mags(x3).filter((m) => m >= 0.25).length } }, // every tie kept
        ],
      };
      check(k, c, "budgets among zeros, spent at once, never spent");
      c.tasks[1]!.trim = { mode: "none" };
      c.tasks[2]!.trim = { mode: "zero" };
      check(k, c, "with a no-trim and a zero-trim task");
      c.tasks[2]!.weight = 1; // the agreeing weights can sum to zero
      c.tasks[1]!.weight = -1;
      check(k, c, "weights summing to zero");
    });

    test(`${simd} build: DARE-TIES (random, rescaled), DARE without consensus, a chunk starting past 2^32`, async () => {
      const k = await loadKernels(256 * 2 ** 20, undefined, { simd });
      let seed = 500;
      const random = (x: Float32Array, b: Float32Array, i: number): Trim => ({ mode: "random", density: [0.5, 0.3, 0.9, 0.1][i % 4]!, key: (0x9e3779b9 * (i + 1)) >>> 0 });
      for (const tasks of [2, 3, 4, 5]) {
        for (const [dtypes, outDtype] of [[["BF16"], "BF16"], [["F32"], "F32"], [["F16", "BF16"], "F16"]] as [FloatDtype[], FloatDtype][]) {
          const c = makeCase({ tasks, dtypes, outDtype, n: N }, seed += 7, random, { normalize: false, lambda: 1.5 });
          c.tasks.forEach((t, i) => { t.rescale = [2.0123, 1, 3.3, 0.8][i % 4]!; });
          check(k, c, `dare_ties, ${tasks} tasks, ${dtypes.join("/")} -> ${outDtype}`);
          check(k, { ...c, start: 2 ** 32 - 4096, consensus: false, normalize: true, divisor: 2.2 }, `dare_linear past 2^32, ${tasks} tasks`);
        }
      }
    });

    test(`${simd} build: plain task arithmetic, the BF16 loops for 1 to 3 task vectors and the general loop, divided by powers of two and other sums`, async () => {
      const k = await loadKernels(256 * 2 ** 20, undefined, { simd });
      let seed = 900;
      const none = (): Trim => ({ mode: "none" });
      for (const tasks of [1, 2, 3, 4]) {
        for (const [dtypes, outDtype] of [[["BF16"], "BF16"], [["BF16"], "F32"], [["BF16"], "F16"], [["F32"], "F32"], [["F32", "BF16"], "BF16"]] as [FloatDtype[], FloatDtype][]) {
          // 1, 4 and 2^-3 divide exactly as multiplications by their reciprocals; 3, 1.7 and 2.2 do not.
          for (const [normalize, divisor, lambda] of [[true, 1, 1], [true, 4, 0.75], [true, 0.125, 1], [true, 3, 1], [true, 1.7, 0.6], [true, 2.2, 1], [false, 1, 1], [false, 1, 1.5]] as const) {
            const c = makeCase({ tasks, dtypes, outDtype, n: N }, seed += 3, none, { consensus: false, normalize, divisor, lambda });
            check(k, c, `task_arithmetic, ${tasks} tasks, ${dtypes.join("/")} -> ${outDtype}, ${normalize ? `divided by ${divisor}` : "not normalized"}, lambda ${lambda}`);
          }
        }
      }
    });

    test(`${simd} build: the general loop: count and unweighted votes, 5 and 10 task vectors, band and keep-bit trims, rounding on load`, async () => {
      const k = await loadKernels(256 * 2 ** 20, undefined, { simd });
      let seed = 700;
      for (const tasks of [3, 5, 10]) {
        const mag = magnitude(seed += 11);
        check(k, makeCase({ tasks, dtypes: ["BF16"], outDtype: "BF16", n: N }, seed, mag, { count: true }), `count vote, ${tasks} tasks`);
        check(k, makeCase({ tasks, dtypes: ["F32"], outDtype: "BF16", n: N }, seed + 1, mag, { unweighted: true, lambda: 0.5 }), `unweighted vote, ${tasks} tasks`);
        check(k, makeCase({ tasks, dtypes: ["BF16"], outDtype: "F32", n: N }, seed + 2, mag, {}), `sum vote, ${tasks} tasks`);
        check(k, makeCase({ tasks, dtypes: ["BF16"], outDtype: "BF16", n: N }, seed + 3, mag, { consensus: false, normalize: true, divisor: 1.7 }), `magnitude without consensus, ${tasks} tasks`);
      }
      const band = (x: Float32Array, b: Float32Array, i: number): Trim => {
        const kIn = kInsideTies(x, b, seed + i), kOut = Math.floor(kIn / 3);
        return { mode: "band", keep: kIn - kOut, top: kOut };
      };
      check(k, makeCase({ tasks: 3, dtypes: ["BF16"], outDtype: "BF16", n: N }, seed += 5, band, { normalize: false }), "band (breadcrumbs_ties)");
      const bits = (x: Float32Array, b: Float32Array, i: number): Trim => ({ mode: "bits", keep: Uint8Array.from(x, (_, j) => (uniform(seed + i, j) < 0.4 ? 1 : 0)) });
      const della = makeCase({ tasks: 3, dtypes: ["BF16"], outDtype: "BF16", n: N }, seed += 5, bits, {});
      della.tasks.forEach((t, i) => { t.rescale = 2.5 - i / 3; });
      check(k, della, "keep bits (della), rescaled");
      check(k, makeCase({ tasks: 2, dtypes: ["F32"], outDtype: "F32", n: N }, seed += 5, bits, {}), "keep bits, F32 inputs");
      check(k, makeCase({ tasks: 4, dtypes: ["F32", "BF16"], outDtype: "BF16", n: N }, seed += 5, bits, { normalize: false, lambda: 0.6 }), "keep bits, F32 base and BF16 tasks");
      check(k, makeCase({ tasks: 3, dtypes: ["F32"], outDtype: "F32", n: N }, seed += 5, magnitude(seed), { quant: "BF16" }), "F32 inputs rounded to BF16 on load");
    });
  }
});

test("the reference's data does have ties at the thresholds (else the budget paths would go untested)", () => {
  const b = baseValues(N, 1), x = taskValues(b, 11, "BF16");
  const tau = Float32Array.from(x, (v, j) => fr(v - b[j]!));
  const kk = kInsideTies(x, b, 5);
  const { threshold, above } = cutOf(tau, kk);
  const equal = Array.from(tau, (t) => f32ToBits(Math.abs(t))).filter((v) => v === threshold).length;
  assert.ok(kk - above > 0 && kk - above < equal, `a budget of ${kk - above} of ${equal} equal elements`);
  assert.equal(bf16BitsToF32(f32ToBf16Bits(x[3]!)), x[3]); // the fine-tunes are BF16 values
  assert.equal(f16BitsToF32(f32ToF16Bits(b[3]!)), b[3]); // and the base is exact in F16 too
});
