// The weighted-sum kernel (assembly/blend.ts weightedSum: linear, SLERP's last step, passthrough's scale)
// against a scalar reference written from mergekit's definition: (sum_i w_i * x_i) / divisor in float32,
// each product and partial sum rounded in input order, the division last, the result rounded once to the
// output dtype. Every path: the BF16 loops for 2, 3 and 4 inputs into each output dtype, the general loop
// (one and five inputs, F32, F16 and mixed dtypes), weight sums that are powers of two (divided as
// multiplications by their exact reciprocals) and ones that are not, no normalization, and lengths that
// end in a partial vector and tile.
import assert from "node:assert/strict";
import { test } from "node:test";
import { DTYPE_BF16, DTYPE_F16, DTYPE_F32, DTYPE_NONE, SUM_RECORD } from "../assembly/layout";
import { loadKernels, type Kernels } from "../src/kernels/kernels";
import { uniform } from "./helpers/fixtures";
import { f32ToBf16Bits, f32ToBits, f32ToF16Bits, roundToDtype, type FloatDtype } from "./reference/float16";

const fr = Math.fround;
const CODES: Record<FloatDtype, number> = { F32: DTYPE_F32, F16: DTYPE_F16, BF16: DTYPE_BF16 };
const BYTES: Record<FloatDtype, number> = { F32: 4, F16: 2, BF16: 2 };

function reference(xs: Float32Array[], weights: number[], normalize: boolean, divisor: number): Float32Array {
  return Float32Array.from(xs[0]!, (_, j) => {
    let acc = fr(fr(weights[0]!) * xs[0]![j]!);
    for (let i = 1; i < xs.length; i++) acc = fr(acc + fr(fr(weights[i]!) * xs[i]![j]!));
    return normalize ? fr(acc / fr(divisor)) : acc;
  });
}

function bitsOf(values: Float32Array, dtype: FloatDtype): number[] {
  return Array.from(values, (v) => (dtype === "F32" ? f32ToBits(v) : dtype === "BF16" ? f32ToBf16Bits(v) : f32ToF16Bits(v)));
}

function kernelSum(k: Kernels, xs: Float32Array[], dtypes: FloatDtype[], weights: number[], normalize: boolean, divisor: number, outDtype: FloatDtype): number[] {
  const n = xs[0]!.length;
  const mark = k.arena.mark();
  const ptrs = xs.map((x, i) => {
    const ptr = k.arena.alloc(n * BYTES[dtypes[i]!] + 16);
    const view = k.arena.view();
    x.forEach((v, j) => {
      if (dtypes[i] === "F32") view.setFloat32(ptr + 4 * j, v, true);
      else view.setUint16(ptr + 2 * j, dtypes[i] === "BF16" ? f32ToBf16Bits(v) : f32ToF16Bits(v), true);
    });
    return ptr;
  });
  const table = k.arena.alloc(xs.length * SUM_RECORD), out = k.arena.alloc(n * BYTES[outDtype] + 16);
  const view = k.arena.view();
  xs.forEach((_, i) => {
    view.setUint32(table + i * SUM_RECORD, ptrs[i]!, true);
    view.setUint32(table + i * SUM_RECORD + 4, CODES[dtypes[i]!], true);
    view.setFloat32(table + i * SUM_RECORD + 8, weights[i]!, true);
  });
  k.exports.weightedSum(table, xs.length, n, DTYPE_NONE, normalize ? 1 : 0, fr(divisor), out, CODES[outDtype]);
  const result = k.arena.view();
  const bits = Array.from({ length: n }, (_, j) => (outDtype === "F32" ? result.getUint32(out + 4 * j, true) : result.getUint16(out + 2 * j, true)));
  k.arena.release(mark);
  return bits;
}

const N = 4096 * 2 + 517; // three tiles, the last not a multiple of 8

test("weightedSum equals the scalar reference on every loop, output dtype and kind of divisor", async () => {
  const k = await loadKernels(64 << 20);
  let seed = 40, cases = 0;
  for (const inputs of [1, 2, 3, 4, 5]) {
    for (const [dtype, outDtype] of [["BF16", "BF16"], ["BF16", "F32"], ["BF16", "F16"], ["F32", "F32"], ["F16", "BF16"], ["mixed", "BF16"]] as const) {
      const dtypes: FloatDtype[] = Array.from({ length: inputs }, (_, i) => (dtype === "mixed" ? (["BF16", "F32", "F16"] as const)[i % 3]! : dtype));
      const xs = dtypes.map((d) => Float32Array.from({ length: N }, (_, j) => roundToDtype((uniform(seed + 1, j) - 0.5) * 0.2, d)));
      seed += 7;
      const weights = [0.3, 0.7, 0.45, 1.25, -0.2].slice(0, inputs).map(fr);
      // 1, 2 and 2^-4 are divided as multiplications by exact reciprocals; 3, 1.7 and the weights' own sum are not.
      const sum = weights.reduce((a, w) => fr(a + w), 0);
      for (const [normalize, divisor] of [[true, 1], [true, 2], [true, 0.0625], [true, 3], [true, 1.7], [true, sum], [false, 1]] as const) {
        const expected = bitsOf(reference(xs, weights, normalize, divisor), outDtype);
        const got = kernelSum(k, xs, dtypes, weights, normalize, divisor, outDtype);
        const bad = got.findIndex((v, j) => v !== expected[j]);
        assert.equal(bad, -1, `${inputs} inputs, ${dtypes.join("/")} -> ${outDtype}, ${normalize ? `divided by ${divisor}` : "not normalized"}: element ${bad} is 0x${got[bad]?.toString(16)}, expected 0x${expected[bad]?.toString(16)}`);
        cases++;
      }
    }
  }
  assert.equal(cases, 5 * 6 * 7);
});
