// The radix select's range pass (assembly/select.ts absDeltaRange, absDeltaRanges) against a scalar
// reference: for keys |x - b| (float32 bits with the sign cleared) over several tiles, the count above
// the range, the histogram of the keys inside it and the candidates kept (in element order, up to the
// capacity, continuing after the ones already kept), for every dtype the kernel reads in place, ranges
// that hold a few percent of the keys (a TIES bracket), all of them or none, and lengths that end in a
// partial vector. And the sample the select brackets from (absDeltaSample): the keys of the first 16 of
// every 1024 elements, counted by their top 16 bits.
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadKernels, type Kernels } from "../src/kernels/kernels";
import {
  DTYPE_BF16, DTYPE_F16, DTYPE_F32, DTYPE_NONE, RANGE_ABOVE, SAMPLE_BUCKETS, RANGE_INSIDE, RANGE_KEPT, TASK_RANGE_CAND, TASK_RANGE_CAPACITY,
  TASK_RANGE_DTYPE, TASK_RANGE_HI, TASK_RANGE_HIST, TASK_RANGE_LO, TASK_RANGE_RECORD, TASK_RANGE_SHIFT, TASK_RANGE_STATS, TASK_RANGE_X,
} from "../assembly/layout";
import { uniform } from "./helpers/fixtures";
import { f32ToBf16Bits, f32ToF16Bits, roundToDtype } from "./reference/float16";

type Dtype = "F32" | "BF16" | "F16";
const CODE: Record<Dtype, number> = { F32: DTYPE_F32, BF16: DTYPE_BF16, F16: DTYPE_F16 };

/** The stored bytes of `values` (already representable in `dtype`). */
function encode(values: number[], dtype: Dtype): Uint8Array {
  if (dtype === "F32") return new Uint8Array(new Float32Array(values).buffer);
  const bits = values.map((v) => (dtype === "BF16" ? f32ToBf16Bits(v) : f32ToF16Bits(v)));
  return new Uint8Array(new Uint16Array(bits).buffer);
}

/** float32 bits of |x - b| computed in float32, as the kernel does. */
function keysOf(x: number[], b: number[]): number[] {
  const f = new Float32Array(x.map((v, i) => Math.fround(v) - Math.fround(b[i]!)));
  return Array.from(new Uint32Array(f.buffer), (bits) => bits & 0x7fffffff);
}

interface Expected { above: number; inside: number; hist: Uint32Array; cand: number[] }

function reference(keys: number[], lo: number, hi: number, shift: number, capacity: number): Expected {
  const hist = new Uint32Array(Math.ceil((hi - lo) / 2 ** shift));
  let above = 0, inside = 0;
  const cand: number[] = [];
  for (const k of keys) {
    if (k >= hi) above++;
    else if (k >= lo) {
      inside++;
      hist[Math.floor((k - lo) / 2 ** shift)]!++;
      if (cand.length < capacity) cand.push(k);
    }
  }
  return { above, inside, hist, cand };
}

/** Values of a bf16-like checkpoint: a base, and a task model that moves it by small, often equal, steps. */
function values(n: number, seed: number, dtype: Dtype): { x: number[]; b: number[] } {
  const b: number[] = [], x: number[] = [];
  for (let i = 0; i < n; i++) {
    const base = roundToDtype(0.05 * (uniform(seed, i) - 0.5), dtype === "F32" ? "BF16" : dtype);
    b.push(base);
    x.push(roundToDtype(base + 0.004 * (uniform(seed + 1, i) - 0.5), dtype === "F32" ? "BF16" : dtype));
  }
  return { x, b };
}

/** The median key of |x - b| and a bracket around it holding a few percent of the keys. */
function bracket(keys: number[]): [number, number] {
  const sorted = [...keys].sort((p, q) => p - q);
  const at = (q: number) => sorted[Math.floor(q * (sorted.length - 1))]!;
  return [at(0.48), at(0.52) + 1];
}

function place(k: Kernels, bytes: Uint8Array): number {
  const p = k.arena.alloc(bytes.length + 16);
  k.arena.u8(p, bytes.length).set(bytes);
  return p;
}

const LENGTHS = [5, 4096 + 3, 3 * 4096 + 13];

test("absDeltaRange: count above, histogram inside and candidates kept equal a scalar reference", async () => {
  const k = await loadKernels(64 << 20);
  let cases = 0;
  for (const [xd, bd] of [["BF16", "BF16"], ["F32", "F32"], ["F16", "F16"], ["BF16", "F32"]] as [Dtype, Dtype][]) {
    for (const n of LENGTHS) {
      const { x, b } = values(n, n + xd.length * 7 + bd.length, xd === "F16" || bd === "F16" ? "F16" : "BF16");
      const keys = keysOf(x, b);
      const [blo, bhi] = bracket(keys);
      const ranges: [number, number, number][] = [
        [blo, bhi, Math.max(0, Math.ceil(Math.log2(bhi - blo)) - 16)], // a bracket
        [blo, blo + 2048, 0], // key by key
        [0, 0x80000000, 20], // every key inside
        [0x7f000000, 0x7f001000, 0], // none inside, none above
        [0, blo, 16], // the lower half: the rest above
      ];
      for (const [lo, hi, shift] of ranges) {
        const expectedAll = reference(keys, lo, hi, shift, Infinity);
        for (const capacity of [0, 3, Math.floor(expectedAll.inside / 2), n]) {
          const mark = k.arena.mark();
          const xp = place(k, encode(x, xd)), bp = place(k, encode(b, bd));
          const buckets = expectedAll.hist.length;
          const hist = k.arena.alloc(buckets * 4), cand = k.arena.alloc(n * 4 + 16), stats = k.arena.alloc(24);
          k.arena.u32(hist, buckets).fill(0);
          k.exports.absDeltaRange(xp, CODE[xd], bp, CODE[bd], n, DTYPE_NONE, lo, hi, shift, hist, cand, capacity, stats);
          const expected = reference(keys, lo, hi, shift, capacity);
          const got = k.arena.f64(stats, 3);
          const label = `${xd}/${bd} n=${n} [${lo.toString(16)}, ${hi.toString(16)}) >>${shift} capacity ${capacity}`;
          assert.equal(got[RANGE_ABOVE / 8], expected.above, `${label}: above`);
          assert.equal(got[RANGE_INSIDE / 8], expected.inside, `${label}: inside`);
          assert.equal(got[RANGE_KEPT / 8], expected.cand.length, `${label}: kept`);
          assert.deepEqual(k.arena.copyU32(hist, buckets), expected.hist, `${label}: histogram`);
          assert.deepEqual(Array.from(k.arena.u32(cand, expected.cand.length)), expected.cand, `${label}: candidates`);
          k.arena.release(mark);
          cases++;
        }
      }
    }
  }
  assert.ok(cases >= 200);
});

test("absDeltaRanges: several task inputs in one walk, each with its own range, histogram and candidates", async () => {
  const k = await loadKernels(64 << 20);
  const n = 2 * 4096 + 7;
  const tasks = [0, 1, 2].map((t) => values(n, 40 + 3 * t, "BF16"));
  const b = tasks[0]!.b; // one base for every task input
  const xs = tasks.map((t) => t.x.map((v, i) => roundToDtype(b[i]! + (v - t.b[i]!), "BF16")));
  const specs = xs.map((x, t) => {
    const [lo, hi] = bracket(keysOf(x, b));
    return t === 2 ? { lo: 0, hi: 0x80000000, shift: 21, capacity: 0 } : { lo, hi, shift: Math.max(t, Math.ceil(Math.log2(hi - lo)) - 16), capacity: t === 0 ? n : 100 };
  });
  const bp = place(k, encode(b, "BF16"));
  const table = k.arena.alloc(xs.length * TASK_RANGE_RECORD);
  const records = xs.map((x, t) => {
    const s = specs[t]!;
    const buckets = Math.ceil((s.hi - s.lo) / 2 ** s.shift);
    const xp = place(k, encode(x, "BF16")), hist = k.arena.alloc(buckets * 4), cand = k.arena.alloc((n + 16) * 4), stats = k.arena.alloc(24);
    k.arena.u32(hist, buckets).fill(0);
    const rec = table + t * TASK_RANGE_RECORD;
    const fields: [number, number][] = [
      [TASK_RANGE_X, xp], [TASK_RANGE_DTYPE, DTYPE_BF16], [TASK_RANGE_LO, s.lo], [TASK_RANGE_HI, s.hi], [TASK_RANGE_SHIFT, s.shift],
      [TASK_RANGE_HIST, hist], [TASK_RANGE_CAND, cand], [TASK_RANGE_CAPACITY, s.capacity], [TASK_RANGE_STATS, stats],
    ];
    for (const [offset, value] of fields) k.arena.view().setUint32(rec + offset, value >>> 0, true);
    return { hist, cand, stats, buckets };
  });
  k.exports.absDeltaRanges(table, xs.length, bp, DTYPE_BF16, n, DTYPE_NONE);
  xs.forEach((x, t) => {
    const s = specs[t]!, r = records[t]!;
    const expected = reference(keysOf(x, b), s.lo, s.hi, s.shift, s.capacity);
    const got = k.arena.f64(r.stats, 3);
    assert.equal(got[RANGE_ABOVE / 8], expected.above, `task ${t}: above`);
    assert.equal(got[RANGE_INSIDE / 8], expected.inside, `task ${t}: inside`);
    assert.equal(got[RANGE_KEPT / 8], expected.cand.length, `task ${t}: kept`);
    assert.ok(t === 2 ? expected.inside === n : expected.inside > 100 && expected.inside < n / 10, `task ${t}: a bracket holds a few keys, the whole range all`);
    assert.deepEqual(k.arena.copyU32(r.hist, r.buckets), expected.hist, `task ${t}: histogram`);
    assert.deepEqual(Array.from(k.arena.u32(r.cand, expected.cand.length)), expected.cand, `task ${t}: candidates`);
  });
});

test("absDeltaSample: the first 16 keys of every 1024 elements, counted by key >>> 15, for every dtype pair and a recipe dtype", async () => {
  const k = await loadKernels(64 << 20);
  const cases: [Dtype, Dtype, "BF16" | "F16" | undefined][] = [
    ["BF16", "BF16", undefined], ["F32", "F32", undefined], ["F16", "F16", undefined], ["BF16", "F32", undefined], ["F32", "BF16", undefined],
    ["F32", "F32", "BF16"], ["BF16", "BF16", "F16"],
  ];
  for (const [xd, bd, quant] of cases) {
    // A last run cut short (n mod 1024 under 16) and one that is not.
    for (const n of [7, 3 * 1024 + 5, 4 * 1024 + 40]) {
      // F32 inputs get values a bf16 cannot hold, so that rounding them to the recipe dtype matters.
      const { x: x0, b: b0 } = values(n, n + 3 * xd.length + bd.length, xd === "F16" || bd === "F16" ? "F16" : "BF16");
      const wide = (v: number, i: number, d: Dtype) => (d === "F32" ? Math.fround(v * (1 + 1e-5 * uniform(n + 9, i))) : v);
      const x = x0.map((v, i) => wide(v, i, xd)), b = b0.map((v, i) => wide(v, i, bd));
      const expected = new Uint32Array(SAMPLE_BUCKETS);
      let sampled = 0;
      for (let s = 0; s < n; s += 1024) {
        for (let j = s; j < Math.min(s + 16, n); j++) {
          const [xq, bq] = quant ? [roundToDtype(x[j]!, quant), roundToDtype(b[j]!, quant)] : [x[j]!, b[j]!];
          expected[keysOf([xq], [bq])[0]! >>> 15]!++;
          sampled++;
        }
      }
      const mark = k.arena.mark();
      const xp = place(k, encode(x, xd)), bp = place(k, encode(b, bd)), hist = k.arena.alloc(SAMPLE_BUCKETS * 4);
      k.arena.u32(hist, SAMPLE_BUCKETS).fill(0);
      const got = k.exports.absDeltaSample(xp, CODE[xd], bp, CODE[bd], n, quant ? CODE[quant] : DTYPE_NONE, hist);
      const label = `${xd}/${bd}${quant ? ` as ${quant}` : ""} n=${n}`;
      assert.equal(got, sampled, `${label}: elements sampled`);
      assert.deepEqual(k.arena.copyU32(hist, SAMPLE_BUCKETS), expected, `${label}: histogram`);
      k.arena.release(mark);
    }
  }
});
