// arcee_fusion's row KL kernel (float32 exps and log1p parts, float64 sums) against the reference's
// float64 Math.exp/Math.log formula, within the SPEC's tolerance (1e-5 relative + 1e-12), row for row,
// for rows of awkward lengths (partial vectors, rows across tiles), nearly equal rows (where KL is a small
// difference of large terms), ties, zeros, far-apart rows (the general log1p and phi), -Infinity and NaN.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { DTYPE_BF16, DTYPE_F32, DTYPE_NONE, TILE } from "../assembly/layout";
import { loadKernels } from "../src/kernels/kernels";
import { rowKl } from "./reference/methods";
import { uniform } from "./helpers/fixtures";
import { roundToDtype } from "./reference/float16";
import { fuzzSettings } from "./helpers/fuzz-settings";


/** The kernel's KL of each row of `cols` of a (base) and b, read as `dtype` (F32 or BF16 bits). */
let loaded: ReturnType<typeof loadKernels> | undefined;
async function kernelKl(a: Float32Array, b: Float32Array, cols: number, dtype = DTYPE_F32): Promise<Float64Array> {
  const { exports, arena } = await (loaded ??= loadKernels(256 * 2 ** 20));
  arena.reset();
  const n = a.length, bytes = dtype === DTYPE_BF16 ? 2 : 4;
  const pa = arena.alloc(n * bytes), pb = arena.alloc(n * bytes);
  for (const [p, x] of [[pa, a], [pb, b]] as const) {
    if (dtype === DTYPE_BF16) arena.u8(p, n * 2).set(new Uint8Array(Uint16Array.from(new Uint32Array(x.buffer, x.byteOffset, n), (u) => u >>> 16).buffer));
    else arena.f32(p, n).set(x);
  }
  const scratch = arena.alloc(((cols + 3) & ~3) * 16), out = arena.alloc((n / cols) * 8);
  exports.fusionRowKL(pa, dtype, pb, dtype, n, cols, DTYPE_NONE, scratch, out);
  return arena.copyF64(out, n / cols);
}

/**
 * The SPEC's KL tolerance: |KL - reference| <= KL_REL * |reference| + KL_ABS. The kernel sums
 * non-negative float32 terms p * phi(t) (see assembly/fusion.ts), each within ~1e-6 relative, so its
 * KL is within ~1e-6 relative (the worst seen here is ~7e-7); KL_ABS covers the reference's own float64
 * rounding where KL is near 0 (its sums' rounding shifts every log(p/q) by up to ~cols * 2^-53).
 */
const KL_REL = 1e-5, KL_ABS = 1e-12;

function assertAgrees(a: Float32Array, b: Float32Array, cols: number, kl: Float64Array, what: string): void {
  let worst = 0;
  for (let r = 0; r < kl.length; r++) {
    const ref = rowKl(a.subarray(r * cols, (r + 1) * cols), b.subarray(r * cols, (r + 1) * cols));
    if (Number.isNaN(ref)) {
      assert.ok(Number.isNaN(kl[r]), `${what} row ${r}: NaN expected, got ${kl[r]}`);
      continue;
    }
    const err = Math.abs(kl[r]! - ref);
    worst = Math.max(worst, err / (KL_REL * Math.abs(ref) + KL_ABS));
    assert.ok(err <= KL_REL * Math.abs(ref) + KL_ABS, `${what} row ${r}: KL ${kl[r]} vs reference ${ref}`);
  }
  if (process.env.KL_WORST) console.log(what, "worst error / tolerance", worst);
}

/** Rows of `cols` like a fine-tune's: a base and a small, row-dependent change of it. */
function nearRows(rows: number, cols: number, seed: number): [Float32Array, Float32Array] {
  const n = rows * cols;
  const a = Float32Array.from({ length: n }, (_, i) => (uniform(seed, i) - 0.5) * 0.2);
  const b = Float32Array.from(a, (v, i) => v + (uniform(seed + 1, i) - 0.5) * 0.01 * (1 + Math.floor(i / cols) % 5));
  return [a, b];
}

for (const cols of [1, 2, 3, 5, 6, 7, 63, TILE - 1, TILE, TILE + 1, 2 * TILE + 3]) {
  test(`rows of ${cols}: KL within the tolerance of the reference's`, async () => {
    const rows = Math.max(3, Math.min(400, Math.floor(40000 / cols)));
    const [a, b] = nearRows(rows, cols, cols);
    assertAgrees(a, b, cols, await kernelKl(a, b, cols), `cols ${cols}`);
  });
}

test("far-apart rows (p/q far from 1, p or q near the 1e-8 floor), wide value ranges", async () => {
  const cols = 97, rows = 300, n = rows * cols;
  const a = Float32Array.from({ length: n }, (_, i) => (uniform(11, i) - 0.5) * 2 ** (Math.floor(i / cols) % 7));
  const b = Float32Array.from({ length: n }, (_, i) => (uniform(12, i) - 0.5) * 2 ** (Math.floor(i / cols) % 5) + (i % 13 === 0 ? 30 : 0));
  assertAgrees(a, b, cols, await kernelKl(a, b, cols), "far");
});

test("rows whose maxima lie far apart: a large-valued row against one near 1, both ways, and rows offset by a constant", async () => {
  // The row constants (maxima, log-sums) are large here while t = log(p/q) is not: t must not be a
  // difference of large float32 terms. Found by the two-document parity fuzz (arcee_fusion of a
  // magnitude-30000 bf16 model onto a base near 1, KL off by 4e-4).
  const cols = 32, rows = 64, n = rows * cols;
  const near = (seed: number) => Float32Array.from({ length: n }, (_, i) => uniform(seed, i) - 0.5);
  const large = (seed: number, scale: number) => Float32Array.from({ length: n }, (_, i) => Math.fround((uniform(seed, i) - 0.5) * scale));
  const small = near(21);
  // b one-hot (p of every other element at the 1e-8 floor), a spread.
  assertAgrees(small, large(22, 30000), cols, await kernelKl(small, large(22, 30000), cols), "large b");
  // a one-hot, b spread.
  assertAgrees(large(23, 3000), small, cols, await kernelKl(large(23, 3000), small, cols), "large a");
  // Both large and unrelated.
  assertAgrees(large(24, 1e4), large(25, 1e4), cols, await kernelKl(large(24, 1e4), large(25, 1e4), cols), "both large");
  // b = a + 1000 plus a small change: nearly the same softmax, every value ~1000.
  const shifted = Float32Array.from(small, (v, i) => Math.fround(v + 1000 + (uniform(26, i) - 0.5) * 0.01));
  assertAgrees(small, shifted, cols, await kernelKl(small, shifted, cols), "shifted");
  // b = a - 50 plus a change of 1e-3: a's values are small, so a's values minus its max round at their
  // own scale unless that rounding is added back (the random rows below found this one).
  const offset = Float32Array.from(small, (v, i) => Math.fround(v - 50 + (uniform(27, i) - 0.5) * 1e-3));
  assertAgrees(small, offset, cols, await kernelKl(small, offset, cols), "offset");
});

test("ties, zeros, equal rows, -Infinity and NaN", async () => {
  const cols = 9;
  const rows: [number[], number[]][] = [
    [[0, 0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0, 0]], // KL 0
    [[1, 1, 1, 2, 2, 2, 3, 3, 3], [1, 1, 1, 2, 2, 2, 3, 3, 3.5]],
    [[0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], [0, 0, 0, 0, 1, 0, 0, 0, 0]],
    [[-Infinity, 0, 1, 2, 3, 4, 5, 6, 7], [0, 0, 1, 2, 3, 4, 5, 6, 7]], // e^-inf: p or q is 1e-8 alone
    [[0, 1, 2, 3, 4, 5, 6, 7, -1000], [0, 1, 2, 3, 4, 5, 6, 7, 0]], // e^-1007 underflows to 0 in float64
    [[0, 1, NaN, 3, 4, 5, 6, 7, 8], [0, 1, 2, 3, 4, 5, 6, 7, 8]], // NaN
    [[1e-40, -1e-40, 0, -0, 1e-38, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0, 1e-30]], // denormals
    [[100, -100, 50, 0, 0, 0, 0, 0, 0], [-100, 100, 0, 0, 0, 0, 0, 0, 0]], // p/q up to e^200
  ];
  const a = new Float32Array(rows.flatMap(([x]) => x)), b = new Float32Array(rows.flatMap(([, y]) => y));
  const kl = await kernelKl(a, b, cols);
  assertAgrees(a, b, cols, kl, "special");
  assert.equal(kl[0], 0);
  assert.ok(Number.isNaN(kl[5]));
});

test("bfloat16 inputs are decoded per tile, across a row longer than a tile", async () => {
  const cols = TILE + 5;
  const [a0, b0] = nearRows(4, cols, 77);
  // Values exactly representable in bfloat16, so the reference sees what the kernel decodes.
  const toBf16 = (x: Float32Array) => { const u = new Uint32Array(x.buffer, x.byteOffset, x.length); for (let i = 0; i < u.length; i++) u[i]! &= 0xffff0000; return x; };
  const a = toBf16(a0), b = toBf16(b0);
  assertAgrees(a, b, cols, await kernelKl(a, b, cols, DTYPE_BF16), "bf16");
});

/** Rows drawn at random: sizes, magnitudes, offsets, a's row and b's near each other or not, F32 or BF16. */
interface DrawnRows {
  cols: number;
  rows: number;
  seed: number;
  scaleA: number;
  shiftA: number;
  /** b = a + shiftB + closeness * scaleA * noise (a fine-tune, perhaps offset) when set; otherwise b is drawn like a, on its own. */
  closeness?: number;
  scaleB: number;
  shiftB: number;
  bf16: boolean;
}
const magnitude = fc.constantFrom(1e-3, 0.1, 1, 30, 1000, 30000);
const offset = fc.constantFrom(0, 0, 1, -50, 10_000, -20_000);
const rowsArb: fc.Arbitrary<DrawnRows> = fc.record({
  cols: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.constantFrom(TILE - 1, TILE + 3)),
  rows: fc.integer({ min: 1, max: 4 }),
  seed: fc.integer({ min: 0, max: 100_000 }),
  scaleA: magnitude, shiftA: offset,
  closeness: fc.option(fc.constantFrom(1e-6, 1e-3, 0.1), { nil: undefined }),
  scaleB: magnitude, shiftB: offset,
  bf16: fc.boolean(),
});

test("random rows of any size, magnitude and offset, near each other or not, F32 or BF16: KL within the tolerance", async (t) => {
  const settings = fuzzSettings();
  const numRuns = settings.runs(150);
  t.diagnostic(`seed ${settings.seed}, ${numRuns} runs`);
  await fc.assert(fc.asyncProperty(rowsArb, async (d) => {
    const n = d.rows * d.cols, dtype = d.bf16 ? "BF16" : "F32";
    const a = Float32Array.from({ length: n }, (_, i) => roundToDtype(d.shiftA + d.scaleA * (uniform(d.seed, i) - 0.5), dtype));
    const b = Float32Array.from({ length: n }, (_, i) => roundToDtype(d.closeness !== undefined
      ? a[i]! + d.shiftB + d.closeness * d.scaleA * (uniform(d.seed + 1, i) - 0.5)
      : d.shiftB + d.scaleB * (uniform(d.seed + 1, i) - 0.5), dtype));
    assertAgrees(a, b, d.cols, await kernelKl(a, b, d.cols, d.bf16 ? DTYPE_BF16 : DTYPE_F32), JSON.stringify(d));
  }), { seed: settings.seed, numRuns, ...(settings.path ? { path: settings.path } : {}) });
});
