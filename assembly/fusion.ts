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

/** Adding it rounds a float64 of magnitude below 2^51 to an integer, which lands in the low bits. */
const SHIFTER: f64 = 6755399441055744.0; // 1.5 * 2^52

/**
 * e^x for x <= 0, two lanes, by the same steps as fdlibm's exp (V8's Math.exp, which the SPEC's
 * reference uses), so the two agree bit for bit on the range used: x = k ln2 + r, |r| <= ln2/2, with
 * k = 0 below |x| = 0.5 ln2 and -1 below 1.5 ln2 (fdlibm's word thresholds), e^r = 1 - ((lo - r c /
 * (2 - c)) - hi) with fdlibm's Remez coefficients; 1 + x for |x| < 2^-28. Agreeing bits matter: an ulp
 * of a softmax term moves KL by more than fround resolves where the rows are nearly equal. x below -700
 * is taken as -700: e^-700 is 1e-304, which adds nothing to the softmax sums or to the 1e-8 each
 * probability gets (fdlibm's subnormal results there are no different for KL).
 */
// @ts-ignore: decorator
@inline
function exp2x(x: v128): v128 {
  x = f64x2.pmax(x, f64x2.splat(-700)); // x < -700 ? -700 : x, so NaN stays NaN
  const ax = f64x2.abs(x);
  let k = f64x2.trunc(f64x2.sub(f64x2.mul(x, f64x2.splat(INV_LN2)), f64x2.splat(0.5)));
  k = v128.bitselect(f64x2.splat(-1), k, f64x2.lt(ax, f64x2.splat(reinterpret<f64>(0x3FF0A2B200000000))));
  k = v128.and(k, f64x2.ge(ax, f64x2.splat(reinterpret<f64>(0x3FD62E4300000000)))); // 0 at and below 0.5 ln2
  const hi = f64x2.sub(x, f64x2.mul(k, f64x2.splat(LN2_HI))), lo = f64x2.mul(k, f64x2.splat(LN2_LO));
  const r = f64x2.sub(hi, lo);
  const t = f64x2.mul(r, r);
  let c = f64x2.splat(4.13813679705723846039e-08);
  c = f64x2.add(f64x2.splat(-1.65339022054652515390e-06), f64x2.mul(t, c));
  c = f64x2.add(f64x2.splat(6.61375632143793436117e-05), f64x2.mul(t, c));
  c = f64x2.add(f64x2.splat(-2.77777777770155933842e-03), f64x2.mul(t, c));
  c = f64x2.add(f64x2.splat(1.66666666666666019037e-01), f64x2.mul(t, c));
  c = f64x2.sub(r, f64x2.mul(t, c));
  const q = f64x2.div(f64x2.mul(r, c), f64x2.sub(f64x2.splat(2), c));
  const y = f64x2.sub(f64x2.splat(1), f64x2.sub(f64x2.sub(lo, q), hi));
  // 2^k: k + 1023 sits in the low bits of k + SHIFTER (SHIFTER's low bits are 0); move it to the exponent.
  const scaled = f64x2.mul(y, i64x2.shl(i64x2.add(f64x2.add(k, f64x2.splat(SHIFTER)), i64x2.splat(1023)), 52));
  return v128.bitselect(f64x2.add(f64x2.splat(1), x), scaled, f64x2.lt(ax, f64x2.splat(reinterpret<f64>(0x3E30000000000000)))); // 2^-28
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
  const lny = f64x2.add(f64x2.mul(ef, f64x2.splat(LN2_HI)), f64x2.add(lnm, f64x2.mul(ef, f64x2.splat(LN2_LO))));
  return f64x2.add(lny, f64x2.sub(y, y)); // + 0, or NaN for a NaN y (whose bits read as 2^1024 * 1.5)
}

/** Elements of a row's exp buffer: the row rounded up to whole f32x4 loads (the padding holds 0). */
// @ts-ignore: decorator
@inline
function paddedCols(cols: i32): i32 {
  return (cols + 3) & ~3;
}

/** Largest of a row's values as `if (x > m) m = x` finds it: NaNs are skipped (-Infinity if all are). */
// @ts-ignore: decorator
@inline
function rowMax(x: usize, dtype: i32, start: i32, cols: i32, quant: i32, k: i32): f32 {
  let vm = f32x4.splat(-Infinity);
  let m: f32 = -Infinity;
  for (let s = 0; s < cols; s += TILE) {
    const count = min(TILE, cols - s);
    const v = tileOf(x, dtype, start + s, count, quant, k);
    let j = 0;
    for (; j + 4 <= count; j += 4) vm = f32x4.pmax(vm, v128.load(v + (<usize>j << 2))); // pmax keeps vm on NaN
    for (; j < count; j++) {
      const y = load<f32>(v + (<usize>j << 2));
      if (y > m) m = y;
    }
  }
  for (let l = 0; l < 4; l++) {
    const y = f32x4.extract_lane(vm, 0);
    if (y > m) m = y;
    vm = v128.shuffle<f32>(vm, vm, 1, 2, 3, 0);
  }
  return m;
}

/** The softmax sums rowExps leaves: of a's row and of b's. */
let sumA: f64 = 0, sumB: f64 = 0;

/** exp(x - m) of the four values of w at d as float64, 0 where `keep` is 0. */
// @ts-ignore: decorator
@inline
function expStore(w: v128, vm: v128, keep: v128, d: usize): void {
  v128.store(d, v128.and(exp2x(f64x2.sub(f64x2.promote_low_f32x4(w), vm)), i64x2.extend_low_i32x4_s(keep)));
  v128.store(d, v128.and(exp2x(f64x2.sub(f64x2.promote_low_f32x4(v128.shuffle<f32>(w, w, 2, 3, 0, 1)), vm)), i64x2.extend_high_i32x4_s(keep)), 16);
}

/**
 * s + the four lanes of lo and hi, one after the other. The softmax sums are added in element order as
 * the SPEC's formula adds them: KL moves by the relative rounding error of either sum (every p, or q,
 * scaled by 1 + d moves KL by about d), which at ~1e-16 absolute is above fround's resolution of a
 * small KL, so the sums must round as the reference's do.
 */
// @ts-ignore: decorator
@inline
function sum4(s: f64, lo: v128, hi: v128): f64 {
  s += f64x2.extract_lane(lo, 0);
  s += f64x2.extract_lane(lo, 1);
  s += f64x2.extract_lane(hi, 0);
  return s + f64x2.extract_lane(hi, 1);
}

/**
 * exp(x - max) of a's row at `ea` and of b's at `eb` (float64, padded with 0 to whole f32x4 loads),
 * and their sums in sumA and sumB. Both rows in one loop: four independent exps per step keep the
 * float64 units busy.
 */
// @ts-ignore: decorator
@inline
function rowExps(a: usize, aDtype: i32, b: usize, bDtype: i32, start: i32, cols: i32, quant: i32, maxA: f32, maxB: f32, ea: usize, eb: usize): void {
  const vmA = f64x2.splat(<f64>maxA), vmB = f64x2.splat(<f64>maxB);
  let sa: f64 = 0, sb: f64 = 0;
  for (let s = 0; s < cols; s += TILE) {
    const count = min(TILE, cols - s);
    const va = tileOf(a, aDtype, start + s, count, quant, 0);
    const vb = tileOf(b, bDtype, start + s, count, quant, 1);
    const da = ea + (<usize>s << 3), db = eb + (<usize>s << 3);
    let j = 0;
    for (; j + 4 <= count; j += 4) {
      const wa = v128.load(va + (<usize>j << 2)), wb = v128.load(vb + (<usize>j << 2));
      const pa0 = exp2x(f64x2.sub(f64x2.promote_low_f32x4(wa), vmA));
      const pa1 = exp2x(f64x2.sub(f64x2.promote_low_f32x4(v128.shuffle<f32>(wa, wa, 2, 3, 0, 1)), vmA));
      const pb0 = exp2x(f64x2.sub(f64x2.promote_low_f32x4(wb), vmB));
      const pb1 = exp2x(f64x2.sub(f64x2.promote_low_f32x4(v128.shuffle<f32>(wb, wb, 2, 3, 0, 1)), vmB));
      const o = <usize>j << 3;
      v128.store(da + o, pa0);
      v128.store(da + o, pa1, 16);
      v128.store(db + o, pb0);
      v128.store(db + o, pb1, 16);
      sa = sum4(sa, pa0, pa1);
      sb = sum4(sb, pb0, pb1);
    }
    if (j < count) { // the row's last 1-3 values; the padding lanes become 0
      const keep = i32x4.lt_s(i32x4(0, 1, 2, 3), i32x4.splat(count - j)); // -1 in the row's lanes
      const ta = lastValues(va + (<usize>j << 2), count - j), tb = lastValues(vb + (<usize>j << 2), count - j);
      const o = <usize>j << 3;
      expStore(ta, vmA, keep, da + o);
      expStore(tb, vmB, keep, db + o);
      sa = sum4(sa, v128.load(da + o), v128.load(da + o, 16)); // the padding's 0 changes no sum
      sb = sum4(sb, v128.load(db + o), v128.load(db + o, 16));
    }
  }
  sumA = sa;
  sumB = sb;
}

/** The `left` (1-3) float32 values at v in the first lanes of an f32x4, the others 0. */
// @ts-ignore: decorator
@inline
function lastValues(v: usize, left: i32): v128 {
  let w = f32x4.splat(0);
  w = f32x4.replace_lane(w, 0, load<f32>(v));
  if (left > 1) w = f32x4.replace_lane(w, 1, load<f32>(v, 4));
  if (left > 2) w = f32x4.replace_lane(w, 2, load<f32>(v, 8));
  return w;
}

/**
 * ln r for r in (0.75, 1.25) (f = r - 1 exact), two lanes, by fdlibm's log steps there (V8's Math.log,
 * which the reference uses): s = f/(2 + f), R by fdlibm's coefficients, ln r = f - s (f - R); for |f| <
 * 2^-20, f - f^2 (0.5 - f/3).
 */
// @ts-ignore: decorator
@inline
function logNear(r: v128): v128 {
  const f = f64x2.sub(r, f64x2.splat(1));
  const s = f64x2.div(f, f64x2.add(f64x2.splat(2), f));
  const z = f64x2.mul(s, s), w = f64x2.mul(z, z);
  let t1 = f64x2.splat(1.531383769920937332e-01);
  t1 = f64x2.add(f64x2.splat(2.222219843214978396e-01), f64x2.mul(w, t1));
  t1 = f64x2.mul(w, f64x2.add(f64x2.splat(3.999999999940941908e-01), f64x2.mul(w, t1)));
  let t2 = f64x2.splat(1.479819860511658591e-01);
  t2 = f64x2.add(f64x2.splat(1.818357216161805012e-01), f64x2.mul(w, t2));
  t2 = f64x2.add(f64x2.splat(2.857142874366239149e-01), f64x2.mul(w, t2));
  t2 = f64x2.mul(z, f64x2.add(f64x2.splat(6.666666666666735130e-01), f64x2.mul(w, t2)));
  const R = f64x2.add(t2, t1);
  const general = f64x2.sub(f, f64x2.mul(s, f64x2.sub(f, R)));
  const small = f64x2.sub(f, f64x2.mul(f64x2.mul(f, f), f64x2.sub(f64x2.splat(0.5), f64x2.mul(f64x2.splat(0.33333333333333333), f))));
  return v128.bitselect(small, general, f64x2.lt(f64x2.abs(f), f64x2.splat(reinterpret<f64>(0x3EB0000000000000)))); // 2^-20
}

/**
 * p ln(p/q) for two lanes, p = P/sumB + 1e-8 and q = Q/sumA + 1e-8. p, q and p/q are rounded as the
 * SPEC's formula rounds them: the rounding of p/q is what limits KL's accuracy where p and q are close
 * (it moves each term by up to an ulp of p), and sharing it keeps fround(KL) equal to the reference's.
 */
// @ts-ignore: decorator
@inline
function klTerm(P: v128, Q: v128, vsumB: v128, vsumA: v128): v128 {
  const tiny = f64x2.splat(1e-8);
  const p = f64x2.add(f64x2.div(P, vsumB), tiny), q = f64x2.add(f64x2.div(Q, vsumA), tiny);
  const r = f64x2.div(p, q);
  // Either lane outside (0.75, 1.25), NaN included: the general logarithm.
  if (!i64x2.all_true(f64x2.lt(f64x2.abs(f64x2.sub(r, f64x2.splat(1))), f64x2.splat(0.25)))) return f64x2.mul(p, logx(r));
  return f64x2.mul(p, logNear(r));
}

/**
 * KL_row for each row of `cols` elements (n is a multiple of cols), as float64 at `out`. `scratch`
 * holds two float64 rows of paddedCols(cols). Every step rounds as the SPEC's formula (with V8's
 * Math.exp/Math.log) does, and every sum runs in element order: where b's row is close to a's, KL is a
 * small difference of large sums, and a different rounding anywhere shows in fround(KL).
 */
export function fusionRowKL(a: usize, aDtype: i32, b: usize, bDtype: i32, n: i32, cols: i32, quant: i32, scratch: usize, out: usize): void {
  const padded = paddedCols(cols);
  const ea = scratch, eb = scratch + (<usize>padded << 3);
  let row = 0;
  for (let r = 0; r < n; r += cols) {
    const maxA = rowMax(a, aDtype, r, cols, quant, 0), maxB = rowMax(b, bDtype, r, cols, quant, 1);
    rowExps(a, aDtype, b, bDtype, r, cols, quant, maxA, maxB, ea, eb);
    const vsumA = f64x2.splat(sumA), vsumB = f64x2.splat(sumB);
    let kl: f64 = 0;
    for (let j = 0; j < padded; j += 2) { // the padding's p = q = 1e-8 adds exactly 0
      const t = klTerm(v128.load(eb + (<usize>j << 3)), v128.load(ea + (<usize>j << 3)), vsumB, vsumA);
      kl += f64x2.extract_lane(t, 0);
      kl += f64x2.extract_lane(t, 1);
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
