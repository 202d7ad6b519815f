// Weighted sums: out = w_0*x_0 + w_1*x_1 + ... (optionally / divisor).
//
// This one kernel is linear (a model soup), SLERP's final step (two inputs with the spherical
// coefficients, or 1-t and t for the colinear fallback) and passthrough (one input scaled). Each product
// and each partial sum is rounded to float32 in input order, exactly as a float32 `(w * x).sum(0)` does,
// and the division happens last, as mergekit does it. Inputs are read in place (BF16 and F16 widened in
// registers) and the sum stays in registers, so memory sees each input once and the output once.

import { bf16High, bf16Low, elementBytes, loadLanes, loadOne, storeEight, storeOne } from "./convert";
import { DTYPE_BF16, DTYPE_F32, MAX_INPUTS, SUM_RECORD, TILE } from "./layout";
import { readableInputs, slot } from "./tile";

/**
 * Whether 1 / d is exact: d is a normal power of two (its reciprocal, from 2^-127 to 2^126, is a float32),
 * so that x / d may be computed as x * (1 / d) with the same bits.
 */
export function exactReciprocal(d: f32): bool {
  const bits = reinterpret<u32>(d), exponent = (bits >>> 23) & 0xff;
  return (bits & 0x7fffff) == 0 && exponent != 0 && exponent != 0xff;
}

/**
 * out = (sum_i w_i * x_i) [/ divisor] over n elements.
 * `table` holds nInputs records of SUM_RECORD bytes: data pointer, dtype code, weight (f32).
 * `quant` is the recipe's load dtype (inputs are rounded to it first), `outDtype` the stored type of out.
 */
export function weightedSum(table: usize, nInputs: i32, n: i32, quant: i32, normalize: bool, divisor: f32, out: usize, outDtype: i32): void {
  const outBytes = <usize>elementBytes(outDtype);
  const inputs = slot(MAX_INPUTS + 1); // per input: pointer, dtype, weight splatted (32 bytes)
  const vdiv = f32x4.splat(divisor);
  for (let t = 0; t < n; t += TILE) {
    const count = min(TILE, n - t);
    readableInputs(table, SUM_RECORD, 8, nInputs, t, count, quant, inputs); // the weight at +8
    const dst = out + <usize>t * outBytes;
    let j = bf16Sum(inputs, nInputs, count, normalize, divisor, dst, outDtype);
    for (; j + 8 <= count; j += 8) {
      let lo = f32x4.splat(0), hi = f32x4.splat(0);
      for (let i = 0; i < nInputs; i++) {
        const at = inputs + (<usize>i << 5);
        const ptr = <usize>load<u32>(at), dtype = load<i32>(at, 4);
        const w = v128.load(at, 16);
        const a = f32x4.mul(loadLanes(ptr, dtype, j), w), b = f32x4.mul(loadLanes(ptr, dtype, j + 4), w);
        if (i == 0) { lo = a; hi = b; } else { lo = f32x4.add(lo, a); hi = f32x4.add(hi, b); }
      }
      if (normalize) { lo = f32x4.div(lo, vdiv); hi = f32x4.div(hi, vdiv); }
      storeEight(dst, outDtype, j, lo, hi);
    }
    for (; j < count; j++) {
      let acc: f32 = 0;
      for (let i = 0; i < nInputs; i++) {
        const at = inputs + (<usize>i << 5);
        const x = loadOne(<usize>load<u32>(at), load<i32>(at, 4), j) * f32x4.extract_lane(v128.load(at, 16), 0);
        acc = i == 0 ? x : acc + x;
      }
      storeOne(dst, outDtype, j, normalize ? acc / divisor : acc);
    }
  }
}

/**
 * The common case of weightedSum's vector loop: two to four inputs, all stored as BF16 (read in place:
 * a BF16 value is the high half of its float32). Returns how many elements it did (a multiple of 8; 0
 * when the case does not apply). One loop per input count, output dtype and division (constants in
 * each, see bf16SumLoop): a single loop testing them at run time needs more vector registers than x64
 * has, and V8 then reloads eight of them from the stack on every iteration (the loop ran at half speed).
 */
function bf16Sum(inputs: usize, nInputs: i32, count: i32, normalize: bool, divisor: f32, dst: usize, outDtype: i32): i32 {
  if (nInputs < 2 || nInputs > 4) return 0;
  for (let i = 0; i < nInputs; i++) if (load<i32>(inputs + (<usize>i << 5), 4) != DTYPE_BF16) return 0;
  const divide = normalize && !exactReciprocal(divisor);
  const vscale = f32x4.splat(divide ? divisor : normalize ? 1 / divisor : 1);
  if (nInputs == 2) return bf16Sum2(inputs, count, divide, vscale, dst, outDtype);
  if (nInputs == 3) return bf16Sum3(inputs, count, divide, vscale, dst, outDtype);
  return bf16Sum4(inputs, count, divide, vscale, dst, outDtype);
}

function bf16Sum2(inputs: usize, count: i32, divide: bool, vscale: v128, dst: usize, outDtype: i32): i32 {
  return bf16SumDivided(2, inputs, count, divide, vscale, dst, outDtype);
}
function bf16Sum3(inputs: usize, count: i32, divide: bool, vscale: v128, dst: usize, outDtype: i32): i32 {
  return bf16SumDivided(3, inputs, count, divide, vscale, dst, outDtype);
}
function bf16Sum4(inputs: usize, count: i32, divide: bool, vscale: v128, dst: usize, outDtype: i32): i32 {
  return bf16SumDivided(4, inputs, count, divide, vscale, dst, outDtype);
}

// @ts-ignore: decorator
@inline
function bf16SumDivided(nInputs: i32, inputs: usize, count: i32, divide: bool, vscale: v128, dst: usize, outDtype: i32): i32 {
  if (divide) return bf16SumStored(nInputs, true, inputs, count, vscale, dst, outDtype);
  return bf16SumStored(nInputs, false, inputs, count, vscale, dst, outDtype);
}

// @ts-ignore: decorator
@inline
function bf16SumStored(nInputs: i32, divide: bool, inputs: usize, count: i32, vscale: v128, dst: usize, outDtype: i32): i32 {
  if (outDtype == DTYPE_BF16) return bf16SumLoop(nInputs, divide, inputs, count, vscale, dst, DTYPE_BF16);
  if (outDtype == DTYPE_F32) return bf16SumLoop(nInputs, divide, inputs, count, vscale, dst, DTYPE_F32);
  return bf16SumLoop(nInputs, divide, inputs, count, vscale, dst, outDtype);
}

/**
 * The loop, with nInputs, divide and (for BF16 and F32) outDtype constant. Each input's pointer and
 * weight live in locals and its eight values come from one 16-byte load; the products and sums are the
 * general loop's, in the same order, so the bits are too. The division by the weight sum is a
 * multiplication by `vscale` unless `divide`: 1 without normalization, and the reciprocal when the sum is
 * a power of two, whose reciprocal is exact (x * 2^-k and x / 2^k are the same real number, rounded
 * once). Multiplying by 1 changes no bits: the sums are arithmetic results, never signalling NaNs.
 */
// @ts-ignore: decorator
@inline
function bf16SumLoop(nInputs: i32, divide: bool, inputs: usize, count: i32, vscale: v128, dst: usize, outDtype: i32): i32 {
  const p0 = <usize>load<u32>(inputs), p1 = <usize>load<u32>(inputs + 32);
  const p2 = nInputs > 2 ? <usize>load<u32>(inputs + 64) : p1, p3 = nInputs > 3 ? <usize>load<u32>(inputs + 96) : p1;
  const w0 = v128.load(inputs, 16), w1 = v128.load(inputs + 32, 16);
  const w2 = nInputs > 2 ? v128.load(inputs + 64, 16) : w1, w3 = nInputs > 3 ? v128.load(inputs + 96, 16) : w1;
  let j = 0;
  for (; j + 8 <= count; j += 8) {
    const at = <usize>j << 1;
    const h0 = v128.load(p0 + at), h1 = v128.load(p1 + at);
    let lo = f32x4.add(f32x4.mul(bf16Low(h0), w0), f32x4.mul(bf16Low(h1), w1));
    let hi = f32x4.add(f32x4.mul(bf16High(h0), w0), f32x4.mul(bf16High(h1), w1));
    if (nInputs > 2) {
      const h2 = v128.load(p2 + at);
      lo = f32x4.add(lo, f32x4.mul(bf16Low(h2), w2));
      hi = f32x4.add(hi, f32x4.mul(bf16High(h2), w2));
    }
    if (nInputs > 3) {
      const h3 = v128.load(p3 + at);
      lo = f32x4.add(lo, f32x4.mul(bf16Low(h3), w3));
      hi = f32x4.add(hi, f32x4.mul(bf16High(h3), w3));
    }
    if (divide) { lo = f32x4.div(lo, vscale); hi = f32x4.div(hi, vscale); }
    else { lo = f32x4.mul(lo, vscale); hi = f32x4.mul(hi, vscale); }
    storeEight(dst, outDtype, j, lo, hi);
  }
  return j;
}
