// arcee_fusion's element work. Per row of the last axis (rows are whole inside a chunk):
// KL_row = sum p log(p/q) with p = softmax(b_row) + 1e-8 and q = softmax(a_row) + 1e-8 in float64
// (a = base, b = the other model); the importance of an element is I = |b - a| * KL_row in float32;
// elements whose importance reaches the Tukey fence of all importances take b, the others keep a.

import { elementBytes, encode } from "./convert";
import { MAX_INPUTS, TILE } from "./layout";
import { slot, tileOf } from "./tile";

const LN2_HI: f64 = 6.93147180369123816490e-01; // ln 2 with trailing zero bits: k * LN2_HI is exact
const LN2_LO: f64 = 1.90821492927058770002e-10;
const INV_LN2: f64 = 1.44269504088896338700e+00;

/** 2^k for integral k in [-1022, 1023], two lanes. */
// @ts-ignore: decorator
@inline
function pow2(k: v128): v128 {
  const wide = i64x2.extend_low_i32x4_s(i32x4.trunc_sat_f64x2_s_zero(k));
  return i64x2.shl(i64x2.add(wide, i64x2.splat(1023)), 52);
}

/**
 * e^x for x <= 0, two lanes, within about an ulp: x = k ln2 + r with |r| <= ln2/2, e^r by its Taylor
 * series to r^13 (the remainder is below 2^-56 relative). x below -700 is taken as -700: e^-700 is
 * 1e-304, which adds nothing to the softmax sums or to the 1e-8 each probability gets.
 */
// @ts-ignore: decorator
@inline
function exp2x(x: v128): v128 {
  x = f64x2.max(x, f64x2.splat(-700));
  const k = f64x2.nearest(f64x2.mul(x, f64x2.splat(INV_LN2)));
  const r = f64x2.sub(f64x2.sub(x, f64x2.mul(k, f64x2.splat(LN2_HI))), f64x2.mul(k, f64x2.splat(LN2_LO)));
  let p = f64x2.splat(1.0 / 6227020800.0); // 1/13!
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 479001600.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 39916800.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 3628800.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 362880.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 40320.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 5040.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 720.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 120.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 24.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 6.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(0.5));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0));
  return f64x2.mul(p, pow2(k));
}

/**
 * ln y for normal positive y, two lanes, within a few ulps: y = m 2^e with m in [sqrt(1/2), sqrt(2)),
 * ln m = 2 atanh(s) with s = (m - 1)/(m + 1), |s| < 0.172, by its series to s^21.
 */
// @ts-ignore: decorator
@inline
function logx(y: v128): v128 {
  let e = i64x2.sub(i64x2.shr_u(y, 52), i64x2.splat(1023));
  let m = v128.or(v128.and(y, i64x2.splat(0x000fffffffffffff)), i64x2.splat(0x3ff0000000000000));
  const big = f64x2.gt(m, f64x2.splat(1.4142135623730951));
  m = v128.bitselect(f64x2.mul(m, f64x2.splat(0.5)), m, big);
  e = i64x2.sub(e, big); // big is -1 where m was halved
  const ef = f64x2.convert_low_i32x4_s(i32x4.shuffle(e, e, 0, 2, 0, 2));
  const s = f64x2.div(f64x2.sub(m, f64x2.splat(1)), f64x2.add(m, f64x2.splat(1)));
  const z = f64x2.mul(s, s);
  let p = f64x2.splat(1.0 / 21.0);
  p = f64x2.add(f64x2.mul(p, z), f64x2.splat(1.0 / 19.0));
  p = f64x2.add(f64x2.mul(p, z), f64x2.splat(1.0 / 17.0));
  p = f64x2.add(f64x2.mul(p, z), f64x2.splat(1.0 / 15.0));
  p = f64x2.add(f64x2.mul(p, z), f64x2.splat(1.0 / 13.0));
  p = f64x2.add(f64x2.mul(p, z), f64x2.splat(1.0 / 11.0));
  p = f64x2.add(f64x2.mul(p, z), f64x2.splat(1.0 / 9.0));
  p = f64x2.add(f64x2.mul(p, z), f64x2.splat(1.0 / 7.0));
  p = f64x2.add(f64x2.mul(p, z), f64x2.splat(1.0 / 5.0));
  p = f64x2.add(f64x2.mul(p, z), f64x2.splat(1.0 / 3.0));
  p = f64x2.add(f64x2.mul(p, z), f64x2.splat(1.0));
  const lnm = f64x2.mul(f64x2.add(s, s), p);
  return f64x2.add(f64x2.mul(ef, f64x2.splat(LN2_HI)), f64x2.add(lnm, f64x2.mul(ef, f64x2.splat(LN2_LO))));
}

/**
 * KL_row for each row of `cols` elements (n is a multiple of cols), as float64 at `out`. `scratch`
 * holds 2 * cols + 2 float64. Softmaxes subtract the row's maximum; every sum runs in element order
 * (two lanes at a time, added one after the other).
 */
export function fusionRowKL(a: usize, aDtype: i32, b: usize, bDtype: i32, n: i32, cols: i32, quant: i32, scratch: usize, out: usize): void {
  const ea = scratch, eb = scratch + (<usize>(cols + 1) << 3);
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
    // An odd row gets one padding lane (its value, whose results are not added).
    if (cols & 1) {
      store<f64>(ea + (<usize>cols << 3), maxA);
      store<f64>(eb + (<usize>cols << 3), maxB);
    }
    const vmaxA = f64x2.splat(maxA), vmaxB = f64x2.splat(maxB);
    let sumA: f64 = 0, sumB: f64 = 0;
    for (let j = 0; j < cols; j += 2) {
      const o = <usize>j << 3;
      const x = exp2x(f64x2.sub(v128.load(ea + o), vmaxA)), y = exp2x(f64x2.sub(v128.load(eb + o), vmaxB));
      v128.store(ea + o, x);
      v128.store(eb + o, y);
      sumA += f64x2.extract_lane(x, 0);
      sumB += f64x2.extract_lane(y, 0);
      if (j + 1 < cols) {
        sumA += f64x2.extract_lane(x, 1);
        sumB += f64x2.extract_lane(y, 1);
      }
    }
    const vsumA = f64x2.splat(sumA), vsumB = f64x2.splat(sumB), tiny = f64x2.splat(1e-8);
    let kl: f64 = 0;
    for (let j = 0; j < cols; j += 2) {
      const o = <usize>j << 3;
      const p = f64x2.add(f64x2.div(v128.load(eb + o), vsumB), tiny), q = f64x2.add(f64x2.div(v128.load(ea + o), vsumA), tiny);
      const term = f64x2.mul(p, logx(f64x2.div(p, q)));
      kl += f64x2.extract_lane(term, 0);
      if (j + 1 < cols) kl += f64x2.extract_lane(term, 1);
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
