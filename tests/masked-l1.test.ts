// The L1 norms DARE's rescaling needs (assembly/taskvector.ts maskedL1): per tile and task input, the
// sum of |tau| and the sum of |tau| over the elements DARE keeps, against a scalar reference built on
// the generator as tests/reference/rng.ts states it. Lengths end in partial vectors and tiles, inputs
// are BF16, F32 and mixed, and chunks start at an offset (also past 2^32, where the counter's high word
// enters the draw). A kept or dropped element too many changes a sum by far more than the tolerance.
// With a keep-bit buffer in a record (TV_MASK), the pass also writes the bits it drew: each element's
// bit against the same generator, nothing past the last byte.
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadKernels } from "../src/kernels/kernels";
import { DTYPE_BF16, DTYPE_F32, DTYPE_NONE, TILE, TRIM_RANDOM, TV_DTYPE, TV_KEY, TV_MASK, TV_MODE, TV_PTR, TV_RECORD, TV_RESCALE, TV_THRESHOLD, TV_WEIGHT } from "../assembly/layout";
import { uniform } from "./helpers/fixtures";
import { f32ToBf16Bits, roundToDtype } from "./reference/float16";
import { dareKeepThreshold, dareStreamKey, dareU } from "./reference/rng";

type Dtype = "F32" | "BF16";

function bytesOf(values: number[], dtype: Dtype): Uint8Array {
  return dtype === "F32" ? new Uint8Array(new Float32Array(values).buffer) : new Uint8Array(new Uint16Array(values.map(f32ToBf16Bits)).buffer);
}

/** Per tile, per task: [sum |tau|, sum of |tau| kept], tau = x - b in float32, kept iff u(start + j) < threshold. */
function reference(b: number[], xs: number[][], keys: number[], threshold: number, start: number): number[] {
  const out: number[] = [];
  for (let t = 0; t < b.length; t += TILE) {
    xs.forEach((x, i) => {
      let all = 0, kept = 0;
      for (let j = t; j < Math.min(t + TILE, b.length); j++) {
        const tau = Math.abs(Math.fround(x[j]! - b[j]!));
        all += tau;
        if (dareU(keys[i]!, start + j) < threshold) kept += tau;
      }
      out.push(all, kept);
    });
  }
  return out;
}

test("maskedL1 with DARE's random masks: both sums per tile and task, and the keep bits drawn, equal the scalar reference", async () => {
  const k = await loadKernels(64 << 20);
  const density = 0.3, threshold = dareKeepThreshold(density);
  let checked = 0;
  for (const [xd, bd] of [["BF16", "BF16"], ["F32", "F32"], ["BF16", "F32"]] as [Dtype, Dtype][]) {
    for (const n of [3, 13, 2 * TILE + 7, TILE + 12, 2 * TILE + 4]) {
      for (const start of [0, 3 * TILE, 2 ** 32 + TILE]) {
        const round = (v: number, d: Dtype) => roundToDtype(v, d === "F32" ? "F32" : "BF16");
        const b = Array.from({ length: n }, (_, j) => round(0.05 * (uniform(n + 1, j) - 0.5), bd));
        const xs = [2, 3, 4].map((seed) => b.map((v, j) => round(v + 0.004 * (uniform(seed * 100 + n, j) - 0.5), xd)));
        const keys = xs.map((_, i) => dareStreamKey(7, `layer.${n}`, i));
        const mark = k.arena.mark();
        const ptrs = [bytesOf(b, bd), ...xs.map((x) => bytesOf(x, xd))].map((bytes) => {
          const p = k.arena.alloc(bytes.length + 16);
          k.arena.u8(p, bytes.length).set(bytes);
          return p;
        });
        const table = k.arena.alloc(4 * TV_RECORD);
        const tiles = Math.ceil(n / TILE), partials = k.arena.alloc(tiles * xs.length * 16);
        // Task 2 draws into no buffer; tasks 0 and 1 into buffers with a guard byte after their last byte.
        const bytes = Math.ceil(n / 8), masks = [0, 1].map(() => k.arena.alloc(bytes + 1));
        masks.forEach((m) => k.arena.u8(m, bytes + 1).fill(0xa5));
        ptrs.forEach((ptr, i) => {
          const v = k.arena.view(), rec = table + i * TV_RECORD;
          v.setUint32(rec + TV_PTR, ptr, true);
          v.setUint32(rec + TV_DTYPE, i === 0 ? (bd === "F32" ? DTYPE_F32 : DTYPE_BF16) : xd === "F32" ? DTYPE_F32 : DTYPE_BF16, true);
          v.setFloat32(rec + TV_WEIGHT, 1, true);
          v.setFloat32(rec + TV_RESCALE, 1, true);
          v.setUint32(rec + TV_MODE, TRIM_RANDOM, true);
          v.setUint32(rec + TV_THRESHOLD, threshold, true);
          v.setUint32(rec + TV_KEY, i === 0 ? 0 : keys[i - 1]!, true);
          v.setUint32(rec + TV_MASK, i === 0 ? 0 : masks[i - 1] ?? 0, true);
        });
        k.exports.maskedL1(table, 4, n, start % 2 ** 32, Math.floor(start / 2 ** 32), DTYPE_NONE, partials);
        const got = Array.from(k.arena.f64(partials, tiles * xs.length * 2));
        const expected = reference(b, xs, keys, threshold, start);
        expected.forEach((e, i) => {
          const label = `${xd}/${bd} n=${n} start=${start}: tile ${Math.floor(i / 6)}, task ${Math.floor(i / 2) % 3}, ${i % 2 ? "kept" : "all"}`;
          assert.ok(Math.abs(got[i]! - e) <= 1e-12 * Math.max(1e-30, Math.abs(e)), `${label}: ${got[i]} against ${e}`);
        });
        masks.forEach((m, i) => {
          const got = Array.from(k.arena.u8(m, bytes + 1));
          for (let j = 0; j < n; j++) {
            const bit = (got[j >> 3]! >> (j & 7)) & 1, want = dareU(keys[i]!, start + j) < threshold ? 1 : 0;
            assert.equal(bit, want, `${xd}/${bd} n=${n} start=${start}: task ${i}'s keep bit of element ${j}`);
          }
          if (n % 8) assert.equal(got[bytes - 1]! >> (n % 8), 0, `${xd}/${bd} n=${n}: bits past the last element are clear`);
          assert.equal(got[bytes], 0xa5, `${xd}/${bd} n=${n}: nothing written past the last byte`);
        });
        // The masks keep about `density` of the elements (not all, not none) on the longer tensors.
        if (n > TILE) assert.ok(expected[1]! > 0.15 * expected[0]! && expected[1]! < 0.45 * expected[0]!, "the reference keeps about density of |tau|");
        k.arena.release(mark);
        checked++;
      }
    }
  }
  assert.equal(checked, 45);
});
