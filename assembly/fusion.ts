// arcee_fusion's element work. Per row of the last axis (rows are whole inside a chunk):
// KL_row = sum p log(p/q) with p = softmax(b_row) + 1e-8 and q = softmax(a_row) + 1e-8
// (a = base, b = the other model); the importance of an element is I = |b - a| * KL_row in float32;
// elements whose importance reaches the Tukey fence of all importances take b, the others keep a.
//
// KL is computed to a relative accuracy (SPEC section 5, arcee_fusion), not bit for bit: per element in
// float32 (four lanes), sums in float64. Where b's row is close to a's, KL is a small difference of
// large terms, so it is computed in a form without that cancellation. With t = log p - log q,
//   KL = sum p t = sum p (t - 1 + e^-t) = sum p phi(t)      (sum p = sum q, both are 1 + cols * 1e-8)
// where phi(t) = t - 1 + e^-t ~ t^2/2 >= 0: every term is non-negative, so float32 terms give KL to
// float32's relative accuracy, and a constant error c in every t (from the rounding of the softmax
// sums) moves KL only by c * (sum p - sum p e^-t) ~ 0. t itself is formed without logarithms of p and q:
// with P = e^(x - m) (the row's max m), S = sum P and e = 1e-8 S,
//   p = P/S + 1e-8 = (P/S)(1 + e/P),  log p = (x - m) - ln S + log1p(e/P)   where P >= e,
//                  = 1e-8 (1 + P/e),  log p = ln 1e-8 + log1p(P/e)           elsewhere,
// so where both p and q are of the first kind, t = (x_b - x_a) - K + (log1p parts), with x = value - m
// and K = ln(S_b/S_a); where only one is, t = x_b - (ln S_b + ln 1e-8), or the opposite. x is formed
// with its rounding kept (TwoSum: x = hi + lo exactly), and hi_b - hi_a is exact for close rows
// (Sterbenz), so t is the difference of two exact numbers and a small K: it keeps float32's relative
// accuracy however small it is, whatever the rows' magnitudes or offsets. (The first form, (b - a) -
// ((m_b - m_a) + K) in float32, rounded each term to an ulp of the values: KL was 4e-4 off for a row of
// b near 18000 against one of a near 0.5. Shifting without keeping the rounding left a row offset by
// -50 with changes of 1e-3 5e-5 off, and near rows of 2-3 columns outside the tolerance.)

import { elementBytes, encode } from "./convert";
import { MAX_INPUTS, RANGE_ABOVE, RANGE_BYTES, RANGE_INSIDE, TILE } from "./layout";
import { promoteHigh, sumLanes } from "./reduce";
import { slot, tileOf } from "./tile";
import { expTaylor } from "./vecmath";

const LN_1EM8: f64 = -18.420680743952367; // ln 1e-8

const LN2_HI: f32 = 0.693145751953125; // 11 significant bits: n * LN2_HI is exact
const LN2_LO: f32 = 1.42860682030941723212e-6;

/** Adding it rounds a float32 of magnitude below 2^22 to an integer, which lands in the low bits. */
const SHIFTER: f32 = 12582912.0; // 1.5 * 2^23

/**
 * e^x for x <= 0 (NaN stays NaN), four float32 lanes, within ~2 ulps: x = n ln2 + r, |r| <= ln2/2, n by
 * the shifter's rounding (no float-to-int conversion), e^r by its Taylor series to r^7 (Horner), 2^n in
 * the exponent field. x below -87 is taken as -87 (e^-87 ~ 1.6e-38, still normal): such a softmax
 * term adds nothing a float32 or the 1e-8 floor resolves. Like vecmath's expf4 without its upper range.
 */
// @ts-ignore: decorator
@inline
function expNeg(x0: v128): v128 {
  const x = f32x4.pmax(x0, f32x4.splat(-87)); // pmax keeps a NaN x0
  const k = f32x4.add(f32x4.mul(x, f32x4.splat(1.44269504088896341)), f32x4.splat(SHIFTER));
  const n = f32x4.sub(k, f32x4.splat(SHIFTER));
  const r = f32x4.sub(f32x4.sub(x, f32x4.mul(n, f32x4.splat(LN2_HI))), f32x4.mul(n, f32x4.splat(LN2_LO)));
  const p = expTaylor(r);
  // k's bits are 0x4B400000 + n: (n + 127) << 23 is the float 2^n.
  return f32x4.mul(p, i32x4.shl(i32x4.add(k, i32x4.splat(127 - 0x4B400000)), 23));
}

/**
 * log1p(c) for c in [0, 1], four float32 lanes, within a few ulps relative: for c < 2^-6 (every lane)
 * its series to c^4 (the first dropped term is below 2^-26 of the result); otherwise 2 atanh(s) with
 * s = c/(2 + c) <= 1/3, by its odd series to s^17 (the next term is below 2^-28 of the result).
 */
// @ts-ignore: decorator
@inline
function log1pUnit(c: v128): v128 {
  if (!v128.any_true(f32x4.ge(c, f32x4.splat(0.015625)))) {
    let t = f32x4.sub(f32x4.splat(1.0 / 3.0), f32x4.mul(c, f32x4.splat(0.25)));
    t = f32x4.sub(f32x4.splat(0.5), f32x4.mul(c, t));
    t = f32x4.sub(f32x4.splat(1), f32x4.mul(c, t));
    return f32x4.mul(c, t);
  }
  const s = f32x4.div(c, f32x4.add(f32x4.splat(2), c));
  const z = f32x4.mul(s, s);
  let p = f32x4.splat(1.0 / 17.0);
  p = f32x4.add(f32x4.mul(p, z), f32x4.splat(1.0 / 15.0));
  p = f32x4.add(f32x4.mul(p, z), f32x4.splat(1.0 / 13.0));
  p = f32x4.add(f32x4.mul(p, z), f32x4.splat(1.0 / 11.0));
  p = f32x4.add(f32x4.mul(p, z), f32x4.splat(1.0 / 9.0));
  p = f32x4.add(f32x4.mul(p, z), f32x4.splat(1.0 / 7.0));
  p = f32x4.add(f32x4.mul(p, z), f32x4.splat(1.0 / 5.0));
  p = f32x4.add(f32x4.mul(p, z), f32x4.splat(1.0 / 3.0));
  p = f32x4.add(f32x4.mul(p, z), f32x4.splat(1));
  return f32x4.mul(f32x4.add(s, s), p);
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

/** log1p(min(P, e)/max(P, e)), the float32 part of log p (see the file's head), four lanes. */
// @ts-ignore: decorator
@inline
function log1pPart(P: v128, e: v128): v128 {
  return log1pUnit(f32x4.div(f32x4.min(P, e), f32x4.max(P, e)));
}

/**
 * phi(t) = t - 1 + e^-t, four lanes, to float32's relative accuracy: for |t| < 1/4 (every lane) its
 * series sum_{k>=2} (-t)^k/k! to k = 7 (the next term is below 2^-26 of the result); otherwise the
 * formula per lane where |t| >= 1/4 (phi >= 0.028 there: the cancellation costs at most 6 bits).
 */
// @ts-ignore: decorator
@inline
function phi(t: v128): v128 {
  const u = f32x4.neg(t);
  let s = f32x4.splat(1.0 / 5040.0);
  s = f32x4.add(f32x4.mul(s, u), f32x4.splat(1.0 / 720.0));
  s = f32x4.add(f32x4.mul(s, u), f32x4.splat(1.0 / 120.0));
  s = f32x4.add(f32x4.mul(s, u), f32x4.splat(1.0 / 24.0));
  s = f32x4.add(f32x4.mul(s, u), f32x4.splat(1.0 / 6.0));
  s = f32x4.add(f32x4.mul(s, u), f32x4.splat(0.5));
  const series = f32x4.mul(f32x4.mul(u, u), s);
  const far = f32x4.ge(f32x4.abs(t), f32x4.splat(0.25)); // false for NaN: the series keeps it
  if (!v128.any_true(far)) return series;
  return v128.bitselect(f32x4.add(f32x4.sub(t, f32x4.splat(1)), expNeg(u)), series, far);
}

/**
 * The rounding error of sum = fl(x + s), four lanes: (x + s) - sum exactly (Knuth's TwoSum; 0 where s = 0).
 */
// @ts-ignore: decorator
@inline
function sumError(x: v128, s: v128, sum: v128): v128 {
  const back = f32x4.sub(sum, x);
  return f32x4.add(f32x4.sub(x, f32x4.sub(sum, back)), f32x4.sub(s, back));
}

/**
 * p phi(t) of four elements: b's values wb and exps P, a's wa and Q; the row's constants as fusionRowKL
 * sets them (see the file's head).
 */
// @ts-ignore: decorator
@inline
function klTerms(wa: v128, wb: v128, P: v128, Q: v128, nmA: v128, nmB: v128, eA: v128, eB: v128, fastA: v128, fastB: v128, K: v128, offA: v128, offB: v128, invB: v128): v128 {
  const largeB = f32x4.ge(P, eB), largeA = f32x4.ge(Q, eA);
  // x = w - m as hi + lo exactly (see the file's head). Both large: (x_b - x_a) - K; only b's: x_b - offB;
  // only a's: offA - x_a; neither: 0. Each from the hi parts, the lo parts added last.
  const xb = f32x4.add(wb, nmB), xa = f32x4.add(wa, nmA);
  const lb = sumError(wb, nmB, xb), la = sumError(wa, nmA, xa);
  const both = f32x4.add(f32x4.sub(f32x4.sub(xb, xa), K), f32x4.sub(lb, la));
  let t = v128.bitselect(both, f32x4.add(f32x4.sub(xb, offB), lb), largeA);
  t = v128.bitselect(t, v128.and(f32x4.sub(f32x4.sub(offA, xa), la), largeA), largeB);
  // + log1p(c_b) - log1p(c_a). Where every c = e/P < 2^-8 (the common case) that is, to a relative
  // 2^-16 of itself, (c_b - c_a)(1 - (c_b + c_a)/2), with one division for both.
  if (i32x4.all_true(v128.and(f32x4.ge(P, fastB), f32x4.ge(Q, fastA)))) {
    const eq = f32x4.mul(eB, Q), ep = f32x4.mul(eA, P);
    const inv = f32x4.div(f32x4.splat(1), f32x4.mul(P, Q));
    t = f32x4.add(t, f32x4.mul(f32x4.mul(f32x4.sub(eq, ep), inv), f32x4.sub(f32x4.splat(1), f32x4.mul(f32x4.add(eq, ep), f32x4.mul(inv, f32x4.splat(0.5))))));
  } else {
    t = f32x4.add(t, f32x4.sub(log1pPart(P, eB), log1pPart(Q, eA)));
  }
  return f32x4.mul(f32x4.add(f32x4.mul(P, invB), f32x4.splat(1e-8)), phi(t));
}

/** The softmax sums the exps pass leaves: of a's row and of b's. */
let sumA: f64 = 0, sumB: f64 = 0;

/**
 * One of the two passes over a row (elements start.. of a and b, `cols` of them), which walk it alike:
 * tile by tile, sixteen elements at a time, then one vector at a time (a row's last 1-3 values loaded
 * alone, the padding lanes masked off). `kl` is a constant at each call, so each inlined copy keeps
 * only its own branches.
 * - The exps pass (kl false): e^(x - max) in float32 of a's row at `ea` and of b's at `eb` (padded with
 *   0 to whole f32x4 loads), and their float64 sums in sumA and sumB; returns 0.
 * - The KL pass (kl true, after the exps pass of the same row): returns KL_row, sum p phi(t) (see the
 *   file's head) from the values, the exps and the exps pass's sums.
 * Sums are kept as four lane partials, added in a fixed order at the end.
 */
// @ts-ignore: decorator
@inline
function rowPass(kl: bool, a: usize, aDtype: i32, b: usize, bDtype: i32, start: i32, cols: i32, quant: i32, maxA: f32, maxB: f32, ea: usize, eb: usize): f64 {
  const vmA = f32x4.splat(maxA), vmB = f32x4.splat(maxB);
  // The KL pass's row constants (the exps pass leaves them unused).
  const lnA = kl ? Math.log(sumA) : 0, lnB = kl ? Math.log(sumB) : 0;
  const invB = f32x4.splat(<f32>(1 / sumB));
  const eA = f32x4.splat(<f32>(1e-8 * sumA)), eB = f32x4.splat(<f32>(1e-8 * sumB));
  const fastA = f32x4.mul(eA, f32x4.splat(256)), fastB = f32x4.mul(eB, f32x4.splat(256)); // c = e/P < 2^-8
  // The parts of t that do not depend on the element, per case of (P >= e, Q >= e): small numbers, never
  // the rows' maxima (see the file's head).
  const nmA = f32x4.splat(-maxA), nmB = f32x4.splat(-maxB);
  const K = f32x4.splat(<f32>(lnB - lnA));
  const offA = f32x4.splat(<f32>(lnA + LN_1EM8)), offB = f32x4.splat(<f32>(lnB + LN_1EM8));
  // KL's partials in sa0 and sa1; the exps pass's a sums there, b's in sb0 and sb1.
  let sa0 = f64x2.splat(0), sa1 = f64x2.splat(0), sb0 = f64x2.splat(0), sb1 = f64x2.splat(0);
  for (let s = 0; s < cols; s += TILE) {
    const count = min(TILE, cols - s);
    const va = tileOf(a, aDtype, start + s, count, quant, 0);
    const vb = tileOf(b, bDtype, start + s, count, quant, 1);
    const da = ea + (<usize>s << 2), db = eb + (<usize>s << 2);
    let j = 0;
    for (; j + 16 <= count; j += 16) { // four vectors' exps or terms added in float32 (three roundings), then promoted
      const o = <usize>j << 2;
      if (kl) {
        const t0 = klTerms(v128.load(va + o), v128.load(vb + o), v128.load(db + o), v128.load(da + o), nmA, nmB, eA, eB, fastA, fastB, K, offA, offB, invB);
        const t1 = klTerms(v128.load(va + o, 16), v128.load(vb + o, 16), v128.load(db + o, 16), v128.load(da + o, 16), nmA, nmB, eA, eB, fastA, fastB, K, offA, offB, invB);
        const t2 = klTerms(v128.load(va + o, 32), v128.load(vb + o, 32), v128.load(db + o, 32), v128.load(da + o, 32), nmA, nmB, eA, eB, fastA, fastB, K, offA, offB, invB);
        const t3 = klTerms(v128.load(va + o, 48), v128.load(vb + o, 48), v128.load(db + o, 48), v128.load(da + o, 48), nmA, nmB, eA, eB, fastA, fastB, K, offA, offB, invB);
        const term = f32x4.add(f32x4.add(t0, t1), f32x4.add(t2, t3));
        sa0 = f64x2.add(sa0, f64x2.promote_low_f32x4(term));
        sa1 = f64x2.add(sa1, promoteHigh(term));
      } else {
        const P0 = expNeg(f32x4.sub(v128.load(vb + o), vmB)), Q0 = expNeg(f32x4.sub(v128.load(va + o), vmA));
        const P1 = expNeg(f32x4.sub(v128.load(vb + o, 16), vmB)), Q1 = expNeg(f32x4.sub(v128.load(va + o, 16), vmA));
        const P2 = expNeg(f32x4.sub(v128.load(vb + o, 32), vmB)), Q2 = expNeg(f32x4.sub(v128.load(va + o, 32), vmA));
        const P3 = expNeg(f32x4.sub(v128.load(vb + o, 48), vmB)), Q3 = expNeg(f32x4.sub(v128.load(va + o, 48), vmA));
        v128.store(db + o, P0);
        v128.store(da + o, Q0);
        v128.store(db + o, P1, 16);
        v128.store(da + o, Q1, 16);
        v128.store(db + o, P2, 32);
        v128.store(da + o, Q2, 32);
        v128.store(db + o, P3, 48);
        v128.store(da + o, Q3, 48);
        const P = f32x4.add(f32x4.add(P0, P1), f32x4.add(P2, P3)), Q = f32x4.add(f32x4.add(Q0, Q1), f32x4.add(Q2, Q3));
        sb0 = f64x2.add(sb0, f64x2.promote_low_f32x4(P));
        sb1 = f64x2.add(sb1, promoteHigh(P));
        sa0 = f64x2.add(sa0, f64x2.promote_low_f32x4(Q));
        sa1 = f64x2.add(sa1, promoteHigh(Q));
      }
    }
    for (; j < count; j += 4) { // one vector at a time; a row's last 1-3 values alone, the padding lanes masked off
      const o = <usize>j << 2, left = count - j;
      const wa = left >= 4 ? v128.load(va + o) : lastValues(va + o, left), wb = left >= 4 ? v128.load(vb + o) : lastValues(vb + o, left);
      const keep = i32x4.lt_s(i32x4(0, 1, 2, 3), i32x4.splat(left));
      if (kl) { // the padding lanes (P = Q = 0, a = b = 0) give t = 0 and phi = 0; masked anyway
        const term = v128.and(klTerms(wa, wb, v128.load(db + o), v128.load(da + o), nmA, nmB, eA, eB, fastA, fastB, K, offA, offB, invB), keep);
        sa0 = f64x2.add(sa0, f64x2.promote_low_f32x4(term));
        sa1 = f64x2.add(sa1, promoteHigh(term));
      } else { // the padding's exps become 0 and change no sum
        const P = v128.and(expNeg(f32x4.sub(wb, vmB)), keep), Q = v128.and(expNeg(f32x4.sub(wa, vmA)), keep);
        v128.store(db + o, P);
        v128.store(da + o, Q);
        sb0 = f64x2.add(sb0, f64x2.promote_low_f32x4(P));
        sb1 = f64x2.add(sb1, promoteHigh(P));
        sa0 = f64x2.add(sa0, f64x2.promote_low_f32x4(Q));
        sa1 = f64x2.add(sa1, promoteHigh(Q));
      }
    }
  }
  if (kl) return sumLanes(sa0, sa1);
  sumA = sumLanes(sa0, sa1);
  sumB = sumLanes(sb0, sb1);
  return 0;
}

/**
 * KL_row for each row of `cols` elements (n is a multiple of cols), as float64 at `out`. `scratch`
 * holds two float32 rows of paddedCols(cols). A NaN anywhere in a row makes its KL NaN.
 */
export function fusionRowKL(a: usize, aDtype: i32, b: usize, bDtype: i32, n: i32, cols: i32, quant: i32, scratch: usize, out: usize): void {
  const padded = paddedCols(cols);
  const ea = scratch, eb = scratch + (<usize>padded << 2);
  let row = 0;
  for (let r = 0; r < n; r += cols) {
    const maxA = rowMax(a, aDtype, r, cols, quant, 0), maxB = rowMax(b, bDtype, r, cols, quant, 1);
    rowPass(false, a, aDtype, b, bDtype, r, cols, quant, maxA, maxB, ea, eb);
    const kl = rowPass(true, a, aDtype, b, bDtype, r, cols, quant, maxA, maxB, ea, eb);
    store<f64>(out + (<usize>row << 3), kl);
    row++;
  }
}

/**
 * The importances of one tile (elements t.. of the chunk), I = |b - a| * kl[row] in float32, written
 * to `dst` as they are or, with `keys` (a constant at each call), as their select keys. `kl` holds one
 * float32 per row of the chunk.
 */
// @ts-ignore: decorator
@inline
function importanceTile(va: usize, vb: usize, t: i32, count: i32, cols: i32, kl: usize, dst: usize, keys: bool): void {
  for (let s = 0; s < count;) {
    const k = (t + s) / cols;
    const e = min(count, (k + 1) * cols - t);
    const w = load<f32>(kl + (<usize>k << 2));
    const vw = f32x4.splat(w);
    let j = s;
    for (; j + 4 <= e; j += 4) {
      const o = <usize>j << 2;
      const v = f32x4.mul(f32x4.abs(f32x4.sub(v128.load(vb + o), v128.load(va + o))), vw);
      v128.store(dst + o, keys ? importanceKeys(v) : v);
    }
    for (; j < e; j++) {
      const o = <usize>j << 2;
      const v = abs<f32>(load<f32>(vb + o) - load<f32>(va + o)) * w;
      if (keys) store<i32>(dst + o, importanceKey(v));
      else store<f32>(dst + o, v);
    }
    s = e;
  }
}

/**
 * An importance's select key: its float bits, which order like the values for I >= 0; a negative I (a
 * KL a hair below 0) is key 0; every NaN (a row with a NaN or infinite input, whatever its sign bit) is
 * 0x7fc00000, above +inf's bits, so NaNs rank above every number and equal among themselves, as in the
 * sorted copy mergekit takes its quantiles from (torch sorts NaN last). A quartile that falls among
 * them is NaN, and so is the fence: nothing reaches it.
 */
// @ts-ignore: decorator
@inline
function importanceKey(v: f32): i32 {
  const bits = reinterpret<i32>(v);
  return (bits & 0x7fffffff) > 0x7f800000 ? 0x7fc00000 : max(bits, 0);
}

/** importanceKey of four importances. */
// @ts-ignore: decorator
@inline
function importanceKeys(v: v128): v128 {
  const nan = i32x4.gt_s(v128.and(v, i32x4.splat(0x7fffffff)), i32x4.splat(0x7f800000));
  return v128.bitselect(i32x4.splat(0x7fc00000), i32x4.max_s(v, i32x4.splat(0)), nan);
}

/** Adds 1 to hist[d >> shift] if d < span (a key's offset from its range's lo, unsigned); returns 1 if it did. */
// @ts-ignore: decorator
@inline
function countKey(d: u32, span: u32, shift: u32, hist: usize): i32 {
  if (d >= span) return 0;
  const h = hist + (<usize>(d >>> shift) << 2);
  store<u32>(h, load<u32>(h) + 1);
  return 1;
}

/** The sum of an i32x4's lanes. */
// @ts-ignore: decorator
@inline
function laneSum(v: v128): i32 {
  return i32x4.extract_lane(v, 0) + i32x4.extract_lane(v, 1) + i32x4.extract_lane(v, 2) + i32x4.extract_lane(v, 3);
}

/**
 * One radix-select round (see select.ts) over the chunk's importances for `m` (1-3) key ranges at once,
 * the quartiles' ranges: each importance is computed once, turned into its key (`importanceKey`), and
 * counted into every range: above if key >= hi, else into hist[(key - lo) >> shift] if key >= lo. `ranges`
 * holds 3 records of FUSION_RANGE_RECORD (16) bytes, the ones past m a range no key reaches (lo = hi =
 * 0xffffffff). `stats`: m RANGE_BYTES records.
 */
export function fusionRange(a: usize, aDtype: i32, b: usize, bDtype: i32, n: i32, cols: i32, quant: i32, kl: usize, ranges: usize, m: i32, stats: usize): void {
  const imp = slot(MAX_INPUTS + 2);
  const lo0 = load<u32>(ranges), hi0 = load<u32>(ranges, 4), sh0 = load<u32>(ranges, 8), h0 = <usize>load<u32>(ranges, 12);
  const lo1 = load<u32>(ranges, 16), hi1 = load<u32>(ranges, 20), sh1 = load<u32>(ranges, 24), h1 = <usize>load<u32>(ranges, 28);
  const lo2 = load<u32>(ranges, 32), hi2 = load<u32>(ranges, 36), sh2 = load<u32>(ranges, 40), h2 = <usize>load<u32>(ranges, 44);
  const span0 = hi0 - lo0, span1 = hi1 - lo1, span2 = hi2 - lo2;
  let above0 = 0, inside0 = 0, above1 = 0, inside1 = 0, above2 = 0, inside2 = 0;
  let va0 = i32x4.splat(0), va1 = i32x4.splat(0), va2 = i32x4.splat(0); // per-lane "above" counts
  const vlo0 = i32x4.splat(lo0), vlo1 = i32x4.splat(lo1), vlo2 = i32x4.splat(lo2);
  const vhi0 = i32x4.splat(hi0), vhi1 = i32x4.splat(hi1), vhi2 = i32x4.splat(hi2);
  const vspan0 = i32x4.splat(span0), vspan1 = i32x4.splat(span1), vspan2 = i32x4.splat(span2);
  for (let t = 0; t < n; t += TILE) {
    const count = min(TILE, n - t);
    const va = tileOf(a, aDtype, t, count, quant, 0);
    const vb = tileOf(b, bDtype, t, count, quant, 1);
    importanceTile(va, vb, t, count, cols, kl, imp, true);
    if (m == 1) { // the first round: one range for all three quartiles, which usually holds every key
      let j = 0;
      for (; j + 4 <= count; j += 4) { // keys and buckets four at a time; only the counting is per key
        const key = v128.load(imp + (<usize>j << 2));
        va0 = i32x4.sub(va0, i32x4.ge_u(key, vhi0));
        const d = i32x4.sub(key, vlo0);
        if (i32x4.all_true(i32x4.lt_u(d, vspan0))) {
          const bucket = i32x4.shl(i32x4.shr_u(d, sh0), 2); // byte offsets into the histogram
          const p0 = h0 + <usize>i32x4.extract_lane(bucket, 0), p1 = h0 + <usize>i32x4.extract_lane(bucket, 1);
          store<u32>(p0, load<u32>(p0) + 1);
          store<u32>(p1, load<u32>(p1) + 1);
          const p2 = h0 + <usize>i32x4.extract_lane(bucket, 2), p3 = h0 + <usize>i32x4.extract_lane(bucket, 3);
          store<u32>(p2, load<u32>(p2) + 1);
          store<u32>(p3, load<u32>(p3) + 1);
          inside0 += 4;
          continue;
        }
        inside0 += countKey(<u32>i32x4.extract_lane(d, 0), span0, sh0, h0) + countKey(<u32>i32x4.extract_lane(d, 1), span0, sh0, h0);
        inside0 += countKey(<u32>i32x4.extract_lane(d, 2), span0, sh0, h0) + countKey(<u32>i32x4.extract_lane(d, 3), span0, sh0, h0);
      }
      for (; j < count; j++) {
        const key = load<u32>(imp + (<usize>j << 2));
        above0 += <i32>(key >= hi0);
        inside0 += countKey(key - lo0, span0, sh0, h0);
      }
      continue;
    }
    // Later rounds: narrow ranges, which few keys fall in. Four keys at a time count "above" without a
    // branch; the histograms are visited only for a vector with a key inside a range.
    let j = 0;
    for (; j + 4 <= count; j += 4) {
      const key = v128.load(imp + (<usize>j << 2));
      va0 = i32x4.sub(va0, i32x4.ge_u(key, vhi0));
      va1 = i32x4.sub(va1, i32x4.ge_u(key, vhi1));
      va2 = i32x4.sub(va2, i32x4.ge_u(key, vhi2));
      const in0 = i32x4.lt_u(i32x4.sub(key, vlo0), vspan0), in1 = i32x4.lt_u(i32x4.sub(key, vlo1), vspan1), in2 = i32x4.lt_u(i32x4.sub(key, vlo2), vspan2);
      if (!v128.any_true(v128.or(v128.or(in0, in1), in2))) continue;
      for (let l = 0; l < 4; l++) {
        const kk = load<u32>(imp + (<usize>(j + l) << 2));
        inside0 += countKey(kk - lo0, span0, sh0, h0);
        inside1 += countKey(kk - lo1, span1, sh1, h1);
        inside2 += countKey(kk - lo2, span2, sh2, h2);
      }
    }
    for (; j < count; j++) {
      const key = load<u32>(imp + (<usize>j << 2));
      above0 += <i32>(key >= hi0);
      above1 += <i32>(key >= hi1);
      above2 += <i32>(key >= hi2);
      inside0 += countKey(key - lo0, span0, sh0, h0);
      inside1 += countKey(key - lo1, span1, sh1, h1);
      inside2 += countKey(key - lo2, span2, sh2, h2);
    }
  }
  above0 += laneSum(va0);
  above1 += laneSum(va1);
  above2 += laneSum(va2);
  store<f64>(stats, <f64>above0, RANGE_ABOVE);
  store<f64>(stats, <f64>inside0, RANGE_INSIDE);
  if (m > 1) {
    store<f64>(stats + RANGE_BYTES, <f64>above1, RANGE_ABOVE);
    store<f64>(stats + RANGE_BYTES, <f64>inside1, RANGE_INSIDE);
  }
  if (m > 2) {
    store<f64>(stats + 2 * RANGE_BYTES, <f64>above2, RANGE_ABOVE);
    store<f64>(stats + 2 * RANGE_BYTES, <f64>inside2, RANGE_INSIDE);
  }
}

/**
 * out = I >= threshold ? b : a, element by element (a bit copy of the float32-decoded value), except
 * where b - a is not finite: mergekit's a + mask (b - a) is NaN there, unless the element is taken and
 * b - a is infinite (then it is b).
 */
export function fusionMerge(a: usize, aDtype: i32, b: usize, bDtype: i32, n: i32, cols: i32, quant: i32, kl: usize, threshold: f32, out: usize, outDtype: i32): void {
  const outBytes = <usize>elementBytes(outDtype);
  const imp = slot(MAX_INPUTS + 2);
  const vthreshold = f32x4.splat(threshold);
  for (let t = 0; t < n; t += TILE) {
    const count = min(TILE, n - t);
    const va = tileOf(a, aDtype, t, count, quant, 0);
    const vb = tileOf(b, bDtype, t, count, quant, 1);
    importanceTile(va, vb, t, count, cols, kl, imp, false);
    let j = 0;
    const zero = f32x4.splat(0), nan = f32x4.splat(NaN);
    for (; j + 4 <= count; j += 4) {
      const o = <usize>j << 2;
      const x = v128.load(va + o), y = v128.load(vb + o), d = f32x4.sub(y, x);
      const taken = f32x4.ge(v128.load(imp + o), vthreshold);
      // d - d is NaN where d is infinite or NaN; d != d where it is NaN.
      const poisoned = v128.and(f32x4.ne(f32x4.sub(d, d), zero), v128.or(f32x4.ne(d, d), v128.not(taken)));
      v128.store(imp + o, v128.bitselect(nan, v128.bitselect(y, x, taken), poisoned));
    }
    for (; j < count; j++) {
      const o = <usize>j << 2;
      const x = load<f32>(va + o), y = load<f32>(vb + o), d = y - x;
      const taken = load<f32>(imp + o) >= threshold;
      store<f32>(imp + o, !isFinite<f32>(d) && (isNaN<f32>(d) || !taken) ? <f32>NaN : taken ? y : x);
    }
    encode(imp, outDtype, out + <usize>t * outBytes, count);
  }
}
