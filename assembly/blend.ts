// Weighted sums: out = w_0*x_0 + w_1*x_1 + ... (optionally / divisor).
//
// This one kernel is linear (a model soup), SLERP's final step (two inputs with the spherical
// coefficients, or 1-t and t for the colinear fallback) and passthrough (one input scaled). Each product
// and each partial sum is rounded to float32 in input order, exactly as a float32 `(w * x).sum(0)` does,
// and the division happens last, as mergekit does it.

import { encode, elementBytes } from "./convert";
import { MAX_INPUTS, SUM_RECORD, TILE } from "./layout";
import { slot, tileOf } from "./tile";

/** dst = x * w */
// @ts-ignore: decorator
@inline
function scaleInto(dst: usize, x: usize, w: f32, n: i32): void {
  const vw = f32x4.splat(w);
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const o = <usize>j << 2;
    v128.store(dst + o, f32x4.mul(v128.load(x + o), vw));
  }
  for (; j < n; j++) {
    const o = <usize>j << 2;
    store<f32>(dst + o, load<f32>(x + o) * w);
  }
}

/** dst = dst + x * w (two roundings: wasm SIMD has no fused multiply-add outside relaxed SIMD) */
// @ts-ignore: decorator
@inline
function addScaled(dst: usize, x: usize, w: f32, n: i32): void {
  const vw = f32x4.splat(w);
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const o = <usize>j << 2;
    v128.store(dst + o, f32x4.add(v128.load(dst + o), f32x4.mul(v128.load(x + o), vw)));
  }
  for (; j < n; j++) {
    const o = <usize>j << 2;
    store<f32>(dst + o, load<f32>(dst + o) + load<f32>(x + o) * w);
  }
}

/** dst = dst / d */
// @ts-ignore: decorator
@inline
function divideBy(dst: usize, d: f32, n: i32): void {
  const vd = f32x4.splat(d);
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const o = <usize>j << 2;
    v128.store(dst + o, f32x4.div(v128.load(dst + o), vd));
  }
  for (; j < n; j++) {
    const o = <usize>j << 2;
    store<f32>(dst + o, load<f32>(dst + o) / d);
  }
}

/**
 * out = (sum_i w_i * x_i) [/ divisor] over n elements.
 * `table` holds nInputs records of SUM_RECORD bytes: data pointer, dtype code, weight (f32).
 * `quant` is the recipe's load dtype (inputs are rounded to it first), `outDtype` the stored type of out.
 */
export function weightedSum(table: usize, nInputs: i32, n: i32, quant: i32, normalize: bool, divisor: f32, out: usize, outDtype: i32): void {
  const outBytes = <usize>elementBytes(outDtype);
  for (let t = 0; t < n; t += TILE) {
    const count = min(TILE, n - t);
    // A float32 output is accumulated in place; anything else in scratch, then encoded.
    const acc = outBytes == 4 ? out + (<usize>t << 2) : slot(MAX_INPUTS);
    for (let i = 0; i < nInputs; i++) {
      const rec = table + <usize>i * SUM_RECORD;
      const x = tileOf(load<u32>(rec), load<u32>(rec, 4), t, count, quant, 0);
      const w = load<f32>(rec, 8);
      if (i == 0) scaleInto(acc, x, w, count);
      else addScaled(acc, x, w, count);
    }
    if (normalize) divideBy(acc, divisor, count);
    if (outBytes != 4) encode(acc, outDtype, out + <usize>t * outBytes, count);
  }
}
