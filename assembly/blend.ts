// Weighted sums: out = w_0*x_0 + w_1*x_1 + ... (optionally / divisor).
//
// This one kernel is linear (a model soup), SLERP's final step (two inputs with the spherical
// coefficients, or 1-t and t for the colinear fallback) and passthrough (one input scaled). Each product
// and each partial sum is rounded to float32 in input order, exactly as a float32 `(w * x).sum(0)` does,
// and the division happens last, as mergekit does it. Inputs are read in place (BF16 and F16 widened in
// registers) and the sum stays in registers, so memory sees each input once and the output once.

import { elementBytes, loadLanes, loadOne, storeEight, storeOne } from "./convert";
import { MAX_INPUTS, SUM_RECORD, TILE } from "./layout";
import { readableInputs, slot } from "./tile";

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
    let j = 0;
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
