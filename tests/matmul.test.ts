// The forward pass's matrix products (assembly/matmul.ts): linear (W stored [n, k]) and linearKN (W
// stored [k, n]), in both builds (plain SIMD and relaxed SIMD), for F32, BF16 and F16 weights. Values
// are checked against a float64 product written here, with a tolerance from the float32 rounding of
// the sum; the determinism contract (row i of Y depends on row i of X, W and k only) is checked bit
// for bit. Shapes are chosen to hit every path: few rows (W read in place) and many (W in panels),
// several panels, k too long to pack, and every remainder of m, n and k against the block sizes.
import assert from "node:assert/strict";
import { test } from "node:test";
import { DTYPE_BF16, DTYPE_F16, DTYPE_F32, MATMUL_SCRATCH_BYTES } from "../assembly/layout";
import { loadKernels, type Kernels } from "../src/kernels/kernels";
import { OptionError } from "../src/errors";
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from "./reference/float16";

type Kernel = "linear" | "linearKN";
type Build = "plain" | "relaxed";

interface Dtype {
  name: string;
  code: number;
  bytes: number;
  /** Stored bytes of the values (rounded to nearest even where the dtype is narrower than f32). */
  store(values: Float32Array): Uint8Array;
  /** The value a stored element stands for. */
  value(stored: Uint8Array, i: number): number;
}

const F32: Dtype = {
  name: "F32", code: DTYPE_F32, bytes: 4,
  store: (v) => new Uint8Array(Float32Array.from(v).buffer),
  value: (s, i) => new DataView(s.buffer, s.byteOffset).getFloat32(i * 4, true),
};
const half = (name: string, code: number, encode: (x: number) => number, decode: (bits: number) => number): Dtype => ({
  name, code, bytes: 2,
  store: (v) => new Uint8Array(Uint16Array.from(v, encode).buffer),
  value: (s, i) => decode(s[2 * i]! | (s[2 * i + 1]! << 8)),
});
const DTYPES = [F32, half("BF16", DTYPE_BF16, f32ToBf16Bits, bf16BitsToF32), half("F16", DTYPE_F16, f32ToF16Bits, f16BitsToF32)];

/** Deterministic uniform values in [-1, 1) (xorshift32), as float32. */
function uniform(count: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: count }, () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 2147483648 - 1;
  });
}

/** A weight matrix of n rows (outputs) by k, stored both ways, with the values the stored bytes mean. */
interface Weights {
  n: number;
  k: number;
  dtype: Dtype;
  /** [n, k] as nn.Linear stores it. */
  nk: Uint8Array;
  /** [k, n] as GPT-2's Conv1D stores it. */
  kn: Uint8Array;
  /** values[j * k + t]: W[j][t] as a number. */
  values: Float64Array;
}

function weights(n: number, k: number, dtype: Dtype, seed: number): Weights {
  return weightsOf(uniform(n * k, seed), n, k, dtype);
}

/** Weights from float32 values laid out [n, k] (rounded to the dtype). */
function weightsOf(w: Float32Array, n: number, k: number, dtype: Dtype): Weights {
  const nk = dtype.store(w);
  const values = Float64Array.from({ length: n * k }, (_, i) => dtype.value(nk, i));
  const transposed = new Float32Array(n * k);
  for (let j = 0; j < n; j++) for (let t = 0; t < k; t++) transposed[t * n + j] = w[j * k + t]!;
  return { n, k, dtype, nk, kn: dtype.store(transposed), values };
}

/** Y = X · Wᵀ (+ Y0) in float64, with the bound Σ|x·w| + |y0| the float32 error is measured against. */
function reference(x: Float32Array, m: number, w: Weights, y0?: Float32Array): { y: Float64Array; scale: Float64Array } {
  const { n, k, values } = w;
  const y = new Float64Array(m * n), scale = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = y0 ? y0[i * n + j]! : 0, abs = Math.abs(sum);
      for (let t = 0; t < k; t++) {
        const p = x[i * k + t]! * values[j * k + t]!;
        sum += p;
        abs += Math.abs(p);
      }
      y[i * n + j] = sum;
      scale[i * n + j] = abs;
    }
  }
  return { y, scale };
}

/**
 * Relative error allowed against Σ|x·w|: each lane of the float32 sum adds about k/4 products, each
 * addition rounding by at most 2^-24, plus the products themselves, the lane sum, the k % 4 tail and
 * the final add to Y0 (a dozen more roundings). Computed per k so that it is a bound, not a guess.
 */
const tolerance = (k: number) => (Math.ceil(k / 4) + 12) * 2 ** -24;

const GUARD = 64;
const CANARY = 0xa5;

/** Runs the kernels on arrays, in fresh arena memory fenced by canaries that must survive the call. */
class Runner {
  constructor(readonly kernels: Kernels) {}

  /** `last`: the operand placed at the very end of wasm memory, where reading past it traps. */
  run(kernel: Kernel, x: Float32Array, m: number, w: Weights, y0?: Float32Array, last?: "x" | "w"): Float32Array {
    const { exports, arena } = this.kernels;
    const { n, k } = w;
    const stored = kernel === "linear" ? w.nk : w.kn;
    arena.reset();
    const yBytes = m * n * 4, scratchBytes = MATMUL_SCRATCH_BYTES;
    const yBlock = arena.alloc(GUARD + yBytes + GUARD), sBlock = arena.alloc(scratchBytes + GUARD);
    const xp = last === "x" ? this.allocLast(x.length * 4) : arena.alloc(x.length * 4 + GUARD);
    const wp = last === "w" ? this.allocLast(stored.length) : arena.alloc(stored.length + GUARD);
    const yp = yBlock + GUARD;
    arena.f32(xp, x.length).set(x);
    arena.u8(wp, stored.length).set(stored);
    arena.u8(yBlock, GUARD + yBytes + GUARD).fill(CANARY);
    if (y0) arena.f32(yp, m * n).set(y0);
    arena.u8(sBlock + scratchBytes, GUARD).fill(CANARY);
    exports[kernel](xp, m, k, wp, w.dtype.code, n, yp, y0 ? 1 : 0, sBlock);
    const where = `${kernel} ${w.dtype.name} m=${m} k=${k} n=${n}`;
    assert.ok(arena.u8(yBlock, GUARD).every((b) => b === CANARY), `${where}: wrote before Y`);
    assert.ok(arena.u8(yp + yBytes, GUARD).every((b) => b === CANARY), `${where}: wrote after Y`);
    assert.ok(arena.u8(sBlock + scratchBytes, GUARD).every((b) => b === CANARY), `${where}: wrote past MATMUL_SCRATCH_BYTES of scratch`);
    assert.deepEqual(arena.f32(xp, x.length), x, `${where}: X changed`);
    assert.deepEqual(arena.u8(wp, stored.length), stored, `${where}: W changed`);
    const y = new Float32Array(m * n);
    y.set(arena.f32(yp, m * n));
    return y;
  }

  /** A region that ends exactly where wasm memory ends (bytes: a multiple of 16, so it starts aligned). */
  private allocLast(bytes: number): number {
    const { arena } = this.kernels, PAGE = 65536;
    assert.equal(bytes % 16, 0);
    const top = Math.ceil(arena.mark() / 16) * 16;
    let end = Math.ceil(Math.max(arena.memory.buffer.byteLength, top + bytes) / PAGE) * PAGE;
    if (end === arena.memory.buffer.byteLength && end - bytes < top) end += PAGE;
    arena.alloc(end - bytes - top);
    const p = arena.alloc(bytes);
    assert.equal(p + bytes, arena.memory.buffer.byteLength, "the region ends where memory ends");
    return p;
  }
}

const runners = new Map<Build, Promise<Runner>>();
function runner(build: Build): Promise<Runner> {
  let r = runners.get(build);
  if (!r) {
    r = loadKernels(256 << 20, undefined, { simd: build }).then((k) => {
      assert.equal(k.simd, build);
      return new Runner(k);
    });
    runners.set(build, r);
  }
  return r;
}

const bitsOf = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

/** Asserts two results are the same float32 values bit for bit, naming the first difference. */
function assertSameBits(got: Float32Array, want: Float32Array, n: number, what: string): void {
  const g = bitsOf(got), w = bitsOf(want);
  assert.equal(g.length, w.length, `${what}: length`);
  for (let e = 0; e < g.length; e++) {
    if (g[e] !== w[e]) assert.fail(`${what}: Y[${Math.floor(e / n)}][${e % n}] is ${got[e]} but ${want[e]} elsewhere`);
  }
}

// m, k, n. The packed path needs m >= 8; a panel holds 256 KiB / (4k) rows of W (112 at k = 577), so
// n = 250 at k = 577 spans three panels; k = 16389 is too long for even 4 rows in a panel. The few-rows
// linearKN path works on strips of 256 columns (n = 577: three strips, the last one partial).
const SHAPES: [number, number, number][] = [
  [1, 1, 1], [1, 3, 5], [3, 5, 17], [5, 17, 3], [2, 63, 577], [1, 577, 63], [4, 577, 5],
  [8, 1, 1], [9, 17, 63], [17, 63, 5], [63, 5, 17], [12, 577, 250], [33, 64, 130], [10, 16389, 7], [3, 16389, 5],
];

for (const build of ["plain", "relaxed"] as const) {
  for (const dtype of DTYPES) {
    test(`${build}: linear and linearKN with ${dtype.name} weights match a float64 product, with and without accumulate`, async () => {
      const r = await runner(build);
      for (const [s, [m, k, n]] of SHAPES.entries()) {
        const w = weights(n, k, dtype, 1000 + s);
        const x = uniform(m * k, 2000 + s), y0 = uniform(m * n, 3000 + s);
        for (const y0Used of [undefined, y0]) {
          const want = reference(x, m, w, y0Used);
          for (const kernel of ["linear", "linearKN"] as const) {
            const got = r.run(kernel, x, m, w, y0Used);
            for (let e = 0; e < m * n; e++) {
              const err = Math.abs(got[e]! - want.y[e]!), allowed = tolerance(k) * want.scale[e]!;
              if (!(err <= allowed)) {
                assert.fail(`${kernel} m=${m} k=${k} n=${n}${y0Used ? " accumulate" : ""}: Y[${Math.floor(e / n)}][${e % n}] = ${got[e]}, float64 ${want.y[e]} (|Δ| ${err.toExponential(2)} > ${allowed.toExponential(2)})`);
              }
            }
          }
        }
      }
    });

    test(`${build}: with ${dtype.name} weights, Y[i][j] is the same bits however rows and outputs are grouped into calls`, async () => {
      const r = await runner(build);
      for (const [m, k, n] of [[41, 577, 130], [21, 63, 577], [13, 16389, 6]] as const) {
        const values = uniform(n * k, 77 + k), w = weightsOf(values, n, k, dtype);
        const x = uniform(m * k, 99 + n);
        for (const kernel of ["linear", "linearKN"] as const) {
          const whole = r.run(kernel, x, m, w);
          // One row at a time (the decode path).
          const single = new Float32Array(m * n);
          for (let i = 0; i < m; i++) single.set(r.run(kernel, x.subarray(i * k, (i + 1) * k), 1, w), i * n);
          assertSameBits(single, whole, n, `${kernel} m=${m} k=${k} n=${n}, rows one by one vs all at once`);
          // Uneven groups, some below and some above the packing threshold.
          const grouped = new Float32Array(m * n);
          const sizes = [3, 9, 1, 2, 11, 4, 5, 8, 7, 6, 20];
          for (let i = 0, g = 0; i < m; g++) {
            const rows = Math.min(sizes[g % sizes.length]!, m - i);
            grouped.set(r.run(kernel, x.subarray(i * k, (i + rows) * k), rows, w), i * n);
            i += rows;
          }
          assertSameBits(grouped, whole, n, `${kernel} m=${m} k=${k} n=${n}, rows in groups of ${sizes.join(", ")}`);
          // The rows in reverse order among rows of other data: each output row must not move.
          const others = uniform(m * k, 5);
          const mixed = new Float32Array(2 * m * k);
          for (let i = 0; i < m; i++) {
            mixed.set(others.subarray(i * k, (i + 1) * k), 2 * i * k);
            mixed.set(x.subarray((m - 1 - i) * k, (m - i) * k), (2 * i + 1) * k);
          }
          const y = r.run(kernel, mixed, 2 * m, w);
          const back = new Float32Array(m * n);
          for (let i = 0; i < m; i++) back.set(y.subarray((2 * i + 1) * n, (2 * i + 2) * n), (m - 1 - i) * n);
          assertSameBits(back, whole, n, `${kernel} m=${m} k=${k} n=${n}, rows reversed and interleaved with other rows`);
          // Columns too: the outputs of W's rows (or columns) [j0, j1) computed on their own are the same
          // bits, so a layer can be split over workers by outputs as well as by rows.
          const cuts = [0, Math.floor(n / 3) + 1, Math.floor((2 * n) / 3), n];
          for (let c = 0; c + 1 < cuts.length; c++) {
            const [j0, j1] = [cuts[c]!, cuts[c + 1]!];
            const part = r.run(kernel, x, m, weightsOf(values.subarray(j0 * k, j1 * k), j1 - j0, k, dtype));
            for (let i = 0; i < m; i++) assertSameBits(part.subarray(i * (j1 - j0), (i + 1) * (j1 - j0)), whole.subarray(i * n + j0, i * n + j1), j1 - j0, `${kernel} m=${m} k=${k} n=${n}, outputs [${j0}, ${j1}) alone, row ${i}`);
          }
        }
      }
    });

    test(`${build}: linearKN on Wᵀ is linear on W, bit for bit (${dtype.name})`, async () => {
      const r = await runner(build);
      for (const [s, [m, k, n]] of SHAPES.entries()) {
        const w = weights(n, k, dtype, 500 + s);
        const x = uniform(m * k, 600 + s), y0 = uniform(m * n, 700 + s);
        assertSameBits(r.run("linearKN", x, m, w), r.run("linear", x, m, w), n, `m=${m} k=${k} n=${n}`);
        assertSameBits(r.run("linearKN", x, m, w, y0), r.run("linear", x, m, w, y0), n, `m=${m} k=${k} n=${n} accumulate`);
      }
    });
  }

  test(`${build}: m = 0 or n = 0 writes nothing; k = 0 gives zeros, or Y unchanged with accumulate`, async () => {
    const r = await runner(build);
    for (const kernel of ["linear", "linearKN"] as const) {
      assert.equal(r.run(kernel, new Float32Array(0), 0, weights(5, 3, F32, 1)).length, 0); // canaries checked inside
      assert.equal(r.run(kernel, uniform(9, 1), 3, weights(0, 3, F32, 1)).length, 0);
      for (const m of [2, 9]) {
        const w = weights(6, 0, F32, 1), y0 = uniform(m * 6, 4);
        assert.deepEqual(r.run(kernel, new Float32Array(0), m, w), new Float32Array(m * 6));
        assertSameBits(r.run(kernel, new Float32Array(0), m, w, y0), y0, 6, `${kernel} k = 0 accumulate`);
      }
    }
  });
}

// Reading past the end of X or W is a bug that canaries cannot see; at the end of wasm memory it traps.
// Shapes whose X and W sizes are multiples of 16 bytes (so they can end exactly there), with every
// remainder of k and n, on both paths.
test("no kernel reads past the end of X or W", async () => {
  for (const build of ["plain", "relaxed"] as const) {
    const r = await runner(build);
    for (const [m, k, n] of [[1, 8, 5], [3, 12, 6], [9, 4, 10], [2, 6, 8], [4, 13, 16], [12, 7, 16], [8, 3, 16], [11, 12, 2]]) {
      for (const dtype of DTYPES) {
        const w = weights(n, k, dtype, m + k + n), x = uniform(m * k, 3);
        for (const kernel of ["linear", "linearKN"] as const) {
          const want = r.run(kernel, x, m, w);
          for (const last of ["x", "w"] as const) assertSameBits(runOrSay(() => r.run(kernel, x, m, w, undefined, last), `${build} ${kernel} ${dtype.name} m=${m} k=${k} n=${n} ${last}`), want, n, `${build} ${kernel} ${dtype.name} m=${m} k=${k} n=${n}, ${last === "x" ? "X" : "W"} at the end of memory`);
        }
      }
    }
  }
});

// A hand-worked sum on which a fused multiply-add and a multiply-then-add differ. k = 8: lane 0 of the
// accumulator adds x[0]·w[0] = -(1 + 2^-11), then x[4]·w[4] = (1 + 2^-12)² = 1 + 2^-11 + 2^-24 exactly.
// Rounded to float32 first (a tie, to even) that product is 1 + 2^-11 and the sum is 0; fused, the
// sum is 2^-24. The other lanes are 0. Every path must agree (m = 1 reads W in place, m = 9 packs it).
test("the relaxed build fuses the multiply-adds (on this FMA-capable machine) and the plain one does not, on every path", async () => {
  const a = 1 + 2 ** -12;
  for (const build of ["plain", "relaxed"] as const) {
    const r = await runner(build);
    for (const m of [1, 9]) {
      const x = new Float32Array(8 * m), wv = new Float32Array(8 * 3);
      for (let i = 0; i < m; i++) { x[i * 8] = -(1 + 2 ** -11); x[i * 8 + 4] = a; }
      for (let j = 0; j < 3; j++) { wv[j * 8] = 1; wv[j * 8 + 4] = a; }
      const w: Weights = { n: 3, k: 8, dtype: F32, nk: F32.store(wv), kn: F32.store(Float32Array.from({ length: 24 }, (_, e) => wv[(e % 3) * 8 + Math.floor(e / 3)]!)), values: Float64Array.from(wv) };
      for (const kernel of ["linear", "linearKN"] as const) {
        const y = r.run(kernel, x, m, w);
        assert.deepEqual([...y], new Array(3 * m).fill(build === "relaxed" ? 2 ** -24 : 0), `${build} ${kernel} m=${m}`);
      }
    }
  }
});

test("loadKernels picks the build: the simd option, then WEIGHTSOUP_SIMD, else plain (relaxed multiply-adds differ between runtimes)", async () => {
  const saved = process.env.WEIGHTSOUP_SIMD;
  try {
    delete process.env.WEIGHTSOUP_SIMD;
    assert.equal((await loadKernels(16 << 20)).simd, "plain", "the default is the build every runtime computes alike");
    process.env.WEIGHTSOUP_SIMD = "relaxed";
    assert.equal((await loadKernels(16 << 20)).simd, "relaxed", "Node 20 runs the relaxed build once loadKernels has set the V8 flag");
    assert.equal((await loadKernels(16 << 20, undefined, { simd: "plain" })).simd, "plain", "the option wins over the variable");
    process.env.WEIGHTSOUP_SIMD = "plain";
    assert.equal((await loadKernels(16 << 20)).simd, "plain");
    assert.equal((await loadKernels(16 << 20, undefined, { simd: "relaxed" })).simd, "relaxed", "the option wins over the variable");
    process.env.WEIGHTSOUP_SIMD = "fast";
    await assert.rejects(loadKernels(16 << 20), (e: unknown) => e instanceof OptionError && e.code === "E_OPTION" && /WEIGHTSOUP_SIMD/.test(e.message) && /"fast"/.test(e.message));
    await assert.rejects(loadKernels(16 << 20, undefined, { simd: "fma" as "plain" }), (e: unknown) => e instanceof OptionError && e.code === "E_OPTION" && /simd/.test(e.message));
  } finally {
    if (saved === undefined) delete process.env.WEIGHTSOUP_SIMD;
    else process.env.WEIGHTSOUP_SIMD = saved;
  }
});

function runOrSay(fn: () => Float32Array, what: string): Float32Array {
  try {
    return fn();
  } catch (e) {
    assert.fail(`${what}: ${e instanceof Error ? e.message : String(e)}`);
  }
}
