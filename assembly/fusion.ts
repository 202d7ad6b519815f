// arcee_fusion's element work. Per row of the last axis (rows are whole inside a chunk):
// KL_row = sum p log(p/q) with p = softmax(b_row) + 1e-8 and q = softmax(a_row) + 1e-8 in float64
// (a = base, b = the other model); the importance of an element is I = |b - a| * KL_row in float32;
// elements whose importance reaches the Tukey fence of all importances take b, the others keep a.

import { elementBytes, encode } from "./convert";
import { MAX_INPUTS, TILE } from "./layout";
import { slot, tileOf } from "./tile";

/**
 * KL_row for each row of `cols` elements (n is a multiple of cols), as float64 at `out`. `scratch`
 * holds 2 * cols float64. Softmaxes subtract the row's maximum; sums run in element order.
 */
export function fusionRowKL(a: usize, aDtype: i32, b: usize, bDtype: i32, n: i32, cols: i32, quant: i32, scratch: usize, out: usize): void {
  const ea = scratch, eb = scratch + (<usize>cols << 3);
  let row = 0;
  for (let r = 0; r < n; r += cols) {
    let maxA = -Infinity, maxB = -Infinity;
    for (let s = 0; s < cols; s += TILE) {
      const count = min(TILE, cols - s);
      const va = tileOf(a, aDtype, r + s, count, quant, 0);
      const vb = tileOf(b, bDtype, r + s, count, quant, 1);
      for (let j = 0; j < count; j++) {
        const x = <f64>load<f32>(va + (<usize>j << 2)), y = <f64>load<f32>(vb + (<usize>j << 2));
        store<f64>(ea + (<usize>(s + j) << 3), x);
        store<f64>(eb + (<usize>(s + j) << 3), y);
        maxA = max(maxA, x);
        maxB = max(maxB, y);
      }
    }
    let sumA: f64 = 0, sumB: f64 = 0;
    for (let j = 0; j < cols; j++) {
      const o = <usize>j << 3;
      const x = Math.exp(load<f64>(ea + o) - maxA), y = Math.exp(load<f64>(eb + o) - maxB);
      store<f64>(ea + o, x);
      store<f64>(eb + o, y);
      sumA += x;
      sumB += y;
    }
    let kl: f64 = 0;
    for (let j = 0; j < cols; j++) {
      const o = <usize>j << 3;
      const p = load<f64>(eb + o) / sumB + 1e-8, q = load<f64>(ea + o) / sumA + 1e-8;
      kl += p * Math.log(p / q);
    }
    store<f64>(out + (<usize>row << 3), kl);
    row++;
  }
}

/**
 * The importances of one tile (elements t.. of the chunk), I = |b - a| * kl[row] in float32, written
 * to `dst`. `kl` holds one float32 per row of the chunk.
 */
// @ts-ignore: decorator
@inline
function importanceTile(va: usize, vb: usize, t: i32, count: i32, cols: i32, kl: usize, dst: usize): void {
  for (let s = 0; s < count;) {
    const k = (t + s) / cols;
    const e = min(count, (k + 1) * cols - t);
    const w = load<f32>(kl + (<usize>k << 2));
    const vw = f32x4.splat(w);
    let j = s;
    for (; j + 4 <= e; j += 4) {
      const o = <usize>j << 2;
      v128.store(dst + o, f32x4.mul(f32x4.abs(f32x4.sub(v128.load(vb + o), v128.load(va + o))), vw));
    }
    for (; j < e; j++) {
      const o = <usize>j << 2;
      store<f32>(dst + o, abs<f32>(load<f32>(vb + o) - load<f32>(va + o)) * w);
    }
    s = e;
  }
}

/**
 * The importances of the chunk as select keys (u32 at `keys`): the float bits of I, which order like
 * the values for I >= 0; a negative I (rounding can make KL a hair below 0) becomes key 0.
 */
export function fusionKeys(a: usize, aDtype: i32, b: usize, bDtype: i32, n: i32, cols: i32, quant: i32, kl: usize, keys: usize): void {
  const zero = i32x4.splat(0);
  for (let t = 0; t < n; t += TILE) {
    const count = min(TILE, n - t);
    const va = tileOf(a, aDtype, t, count, quant, 0);
    const vb = tileOf(b, bDtype, t, count, quant, 1);
    const dst = keys + (<usize>t << 2);
    importanceTile(va, vb, t, count, cols, kl, dst);
    let j = 0;
    for (; j + 4 <= count; j += 4) {
      const o = <usize>j << 2;
      const v = v128.load(dst + o);
      v128.store(dst + o, v128.andnot(v, i32x4.lt_s(v, zero)));
    }
    for (; j < count; j++) {
      const o = <usize>j << 2;
      const v = load<i32>(dst + o);
      if (v < 0) store<i32>(dst + o, 0);
    }
  }
}

/** out = I >= threshold ? b : a, element by element (a bit copy of the float32-decoded value). */
export function fusionMerge(a: usize, aDtype: i32, b: usize, bDtype: i32, n: i32, cols: i32, quant: i32, kl: usize, threshold: f32, out: usize, outDtype: i32): void {
  const outBytes = <usize>elementBytes(outDtype);
  const imp = slot(MAX_INPUTS + 2);
  const vthreshold = f32x4.splat(threshold);
  for (let t = 0; t < n; t += TILE) {
    const count = min(TILE, n - t);
    const va = tileOf(a, aDtype, t, count, quant, 0);
    const vb = tileOf(b, bDtype, t, count, quant, 1);
    importanceTile(va, vb, t, count, cols, kl, imp);
    let j = 0;
    for (; j + 4 <= count; j += 4) {
      const o = <usize>j << 2;
      v128.store(imp + o, v128.bitselect(v128.load(vb + o), v128.load(va + o), f32x4.ge(v128.load(imp + o), vthreshold)));
    }
    for (; j < count; j++) {
      const o = <usize>j << 2;
      store<f32>(imp + o, load<f32>(imp + o) >= threshold ? load<f32>(vb + o) : load<f32>(va + o));
    }
    encode(imp, outDtype, out + <usize>t * outBytes, count);
  }
}
