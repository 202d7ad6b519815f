// The task-vector family: task_arithmetic, ties, dare_linear and dare_ties.
//
// For every non-base input i: tau_i = x_i - b, sparsified (TIES keeps the k largest |tau|, DARE keeps
// a pseudo-random subset), optionally rescaled to keep its L1 norm, then weighted: p_i = m_i * r_i * w_i.
// TIES-style consensus elects a sign per element from sum_i p_i and keeps only the p_i that agree with
// it (a disjoint mean when normalized by the agreeing weights); plain task arithmetic sums every p_i.
// Finally out = b + lambda * mixed. Every step rounds to float32 in the order mergekit's float32 torch
// code does, so the same inputs give the same bits.

import { elementBytes, encode, loadLanes, loadOne, storeEight, storeOne } from "./convert";
import {
  MAX_INPUTS, TILE, TRIM_BAND, TRIM_BITS, TRIM_MAGNITUDE, TRIM_NONE, TRIM_RANDOM, TV_CONSENSUS, TV_COUNT_VOTE, TV_KEY, TV_MASK,
  TV_MODE, TV_NORMALIZE, TV_RECORD, TV_RESCALE, TV_THRESHOLD, TV_THRESHOLD2, TV_TIES, TV_TIES2, TV_UNWEIGHTED_VOTE, TV_WEIGHT,
} from "./layout";
import { promoteHigh, sumLanes } from "./reduce";
import { readableInputs, slot, tileOf } from "./tile";

/**
 * The 32-bit integer mixer of DARE's counter-based generator (two multiply-xorshift rounds; every input
 * bit affects every output bit). Because it is a function of (key, element index) only, a mask does not
 * depend on how the tensor is chunked or which worker computes it.
 */
// @ts-ignore: decorator
@inline
export function mix4(x: v128): v128 {
  x = v128.xor(x, i32x4.shr_u(x, 16));
  x = i32x4.mul(x, i32x4.splat(0x21f0aaad));
  x = v128.xor(x, i32x4.shr_u(x, 15));
  x = i32x4.mul(x, i32x4.splat(0x735a2d97));
  return v128.xor(x, i32x4.shr_u(x, 15));
}

// @ts-ignore: decorator
@inline
export function mix(x: u32): u32 {
  x ^= x >>> 16;
  x *= 0x21f0aaad;
  x ^= x >>> 15;
  x *= 0x735a2d97;
  return x ^ (x >>> 15);
}

/** Lanes 0..3 of the u32 index vector starting at lo. */
// @ts-ignore: decorator
@inline
function indexLanes(lo: u32): v128 {
  return i32x4.add(i32x4.splat(lo), i32x4(0, 1, 2, 3));
}

/** Magnitude and band modes: elements equal to the (lower) threshold the current task input may still keep. */
let tiesLeft: u32 = 0;
/** Band mode: elements equal to the outliers' threshold that are still counted as outliers. */
let outliersLeft: u32 = 0;

/**
 * The lanes (all ones) of `bits` that belong to a top-k set: bits above `threshold`, and those equal to
 * it while the set's budget of equal elements lasts, in element order (so the set has exactly k elements,
 * ties going to the lowest indices). `outliers` picks the budget: outliersLeft, else tiesLeft.
 */
// @ts-ignore: decorator
@inline
function topLanes(bits: v128, threshold: v128, outliers: bool): v128 {
  let left = outliers ? outliersLeft : tiesLeft;
  let keep = i32x4.gt_u(bits, threshold);
  const equal = i32x4.eq(bits, threshold);
  // No branch on whether any lane is equal: bf16 task vectors repeat the threshold's value in a few
  // percent of the elements, often enough to defeat the branch predictor, seldom enough to be unpredictable.
  const equalCount = <u32>popcnt<i32>(i32x4.bitmask(equal));
  if (left >= equalCount) {
    // The budget covers every equal lane (none, or the usual case while it lasts).
    keep = v128.or(keep, equal);
    left -= equalCount;
  } else if (left != 0) {
    if (i32x4.extract_lane(equal, 0) != 0) { keep = i32x4.replace_lane(keep, 0, -1); left--; }
    if (left != 0 && i32x4.extract_lane(equal, 1) != 0) { keep = i32x4.replace_lane(keep, 1, -1); left--; }
    if (left != 0 && i32x4.extract_lane(equal, 2) != 0) { keep = i32x4.replace_lane(keep, 2, -1); left--; }
    if (left != 0 && i32x4.extract_lane(equal, 3) != 0) { keep = i32x4.replace_lane(keep, 3, -1); left--; }
  }
  if (outliers) outliersLeft = left;
  else tiesLeft = left;
  return keep;
}

/** One element of topLanes. */
// @ts-ignore: decorator
@inline
function topOne(bits: u32, threshold: u32, outliers: bool): bool {
  if (bits > threshold) return true;
  if (bits != threshold) return false;
  if (outliers) {
    if (outliersLeft == 0) return false;
    outliersLeft--;
  } else {
    if (tiesLeft == 0) return false;
    tiesLeft--;
  }
  return true;
}

/**
 * The 4 lanes of tau (flat elements given by `lanes`, chunk elements from `local`, a multiple of 4)
 * that a task input keeps, per its trim mode; the others become 0. Parameters are hoisted by the
 * caller (splatted thresholds, key and high word).
 * - TRIM_NONE: everything is kept; TRIM_ZERO: nothing;
 * - TRIM_MAGNITUDE: the top k |tau| (see topLanes);
 * - TRIM_BAND: the top (keep + top) |tau| except the top `top` (breadcrumbs' outliers);
 * - TRIM_RANDOM: element j is kept iff u(j) < threshold, u from the counter-based generator;
 * - TRIM_BITS: the keep bits at `bits` (della's mask, computed beforehand for the chunk).
 */
// @ts-ignore: decorator
@inline
function maskLanes(mode: u32, threshold: v128, threshold2: v128, key: v128, high: v128, bits: usize, tau: v128, lanes: v128, local: i32): v128 {
  if (mode == TRIM_NONE) return tau;
  if (mode == TRIM_MAGNITUDE) return v128.and(tau, topLanes(v128.and(tau, i32x4.splat(0x7fffffff)), threshold, false));
  if (mode == TRIM_RANDOM) {
    const u = mix4(v128.xor(mix4(v128.xor(lanes, key)), high));
    return v128.and(tau, i32x4.lt_u(u, threshold));
  }
  if (mode == TRIM_BAND) {
    const magnitude = v128.and(tau, i32x4.splat(0x7fffffff));
    const inner = topLanes(magnitude, threshold, false);
    return v128.and(tau, v128.andnot(inner, topLanes(magnitude, threshold2, true)));
  }
  if (mode == TRIM_BITS) {
    const nibble = (<u32>load<u8>(bits + (<usize>local >>> 3)) >>> (<u32>local & 4)) & 0xf;
    return v128.and(tau, i32x4.ne(v128.and(i32x4.splat(nibble), i32x4(1, 2, 4, 8)), i32x4.splat(0)));
  }
  return i32x4.splat(0);
}

/** One element of maskLanes (tails), for flat element (hi:lo), chunk element `local`. */
// @ts-ignore: decorator
@inline
function maskOne(mode: u32, threshold: u32, threshold2: u32, key: u32, high: u32, bits: usize, tau: f32, lo: u32, local: i32): f32 {
  if (mode == TRIM_NONE) return tau;
  const magnitude = reinterpret<u32>(tau) & 0x7fffffff;
  if (mode == TRIM_MAGNITUDE) return topOne(magnitude, threshold, false) ? tau : 0;
  if (mode == TRIM_RANDOM) return mix(mix(lo ^ key) ^ high) < threshold ? tau : 0;
  if (mode == TRIM_BAND) {
    const inner = topOne(magnitude, threshold, false);
    return !topOne(magnitude, threshold2, true) && inner ? tau : 0;
  }
  if (mode == TRIM_BITS) return (load<u8>(bits + (<usize>local >>> 3)) >>> (<u32>local & 7)) & 1 ? tau : 0;
  return 0;
}

/**
 * p = ((mask(x - b)) * r) * w over `count` elements whose first flat index is (hi:lo) and first chunk
 * element `local`, for the task input at `rec` (its tie budgets are consumed). Multiplying by r = 1 is
 * skipped: it changes no value. `unweighted` stages q = mask(x - b) * r instead (w taken as 1).
 */
export function stageTask(rec: usize, x: usize, b: usize, count: i32, lo: u32, hi: u32, local: i32, p: usize, unweighted: bool): void {
  const mode = load<u32>(rec, TV_MODE), threshold = load<u32>(rec, TV_THRESHOLD), key = load<u32>(rec, TV_KEY);
  const threshold2 = load<u32>(rec, TV_THRESHOLD2), bits = <usize>load<u32>(rec, TV_MASK);
  const high = hi + 0x9e3779b9;
  const r = load<f32>(rec, TV_RESCALE), w = unweighted ? <f32>1 : load<f32>(rec, TV_WEIGHT);
  const vthreshold = i32x4.splat(threshold), vthreshold2 = i32x4.splat(threshold2), vkey = i32x4.splat(key), vhigh = i32x4.splat(high);
  const vr = f32x4.splat(r), vw = f32x4.splat(w);
  tiesLeft = load<u32>(rec, TV_TIES);
  outliersLeft = load<u32>(rec, TV_TIES2);
  let j = 0;
  // One loop per mode and rescaling, so the hot loop carries no branches on them.
  if (mode == TRIM_NONE && r == 1) {
    for (; j + 4 <= count; j += 4) {
      const o = <usize>j << 2;
      v128.store(p + o, f32x4.mul(f32x4.sub(v128.load(x + o), v128.load(b + o)), vw));
    }
  } else if (mode == TRIM_MAGNITUDE && r == 1) {
    for (; j + 4 <= count; j += 4) {
      const o = <usize>j << 2;
      const m = maskLanes(TRIM_MAGNITUDE, vthreshold, vthreshold2, vkey, vhigh, bits, f32x4.sub(v128.load(x + o), v128.load(b + o)), vkey, local + j);
      v128.store(p + o, f32x4.mul(m, vw));
    }
  } else if (mode == TRIM_RANDOM && r == 1) {
    for (; j + 4 <= count; j += 4) {
      const o = <usize>j << 2;
      const m = maskLanes(TRIM_RANDOM, vthreshold, vthreshold2, vkey, vhigh, bits, f32x4.sub(v128.load(x + o), v128.load(b + o)), indexLanes(lo + <u32>j), local + j);
      v128.store(p + o, f32x4.mul(m, vw));
    }
  } else if (mode == TRIM_BITS) {
    for (; j + 4 <= count; j += 4) {
      const o = <usize>j << 2;
      let m = maskLanes(TRIM_BITS, vthreshold, vthreshold2, vkey, vhigh, bits, f32x4.sub(v128.load(x + o), v128.load(b + o)), vkey, local + j);
      if (r != 1) m = f32x4.mul(m, vr);
      v128.store(p + o, f32x4.mul(m, vw));
    }
  } else {
    for (; j + 4 <= count; j += 4) {
      const o = <usize>j << 2;
      let m = maskLanes(mode, vthreshold, vthreshold2, vkey, vhigh, bits, f32x4.sub(v128.load(x + o), v128.load(b + o)), indexLanes(lo + <u32>j), local + j);
      if (r != 1) m = f32x4.mul(m, vr);
      v128.store(p + o, f32x4.mul(m, vw));
    }
  }
  for (; j < count; j++) {
    const o = <usize>j << 2;
    let m = maskOne(mode, threshold, threshold2, key, high, bits, load<f32>(x + o) - load<f32>(b + o), lo + <u32>j, local + j);
    if (r != 1) m *= r;
    store<f32>(p + o, m * w);
  }
  store<u32>(rec, tiesLeft, TV_TIES);
  store<u32>(rec, outliersLeft, TV_TIES2);
}

/** Elements per sub-block of the staged merge: every task's p for a sub-block fits in L1 together. */
const SUB = 512;

/**
 * Plain task arithmetic (nothing trimmed or rescaled, no consensus): out = b + lambda * (sum_i (x_i - b) *
 * w_i) [/ divisor], with inputs read in place and the sum kept in registers, eight elements at a time.
 */
function plainTaskArithmetic(
  table: usize, nInputs: i32, n: i32, quant: i32, normalize: bool, divisor: f32, lambda: f32, out: usize, outDtype: i32,
): void {
  const outBytes = <usize>elementBytes(outDtype);
  const inputs = slot(MAX_INPUTS + 1); // per input: pointer, dtype, weight splatted (32 bytes)
  const vdiv = f32x4.splat(divisor), vlambda = f32x4.splat(lambda);
  for (let t = 0; t < n; t += TILE) {
    const count = min(TILE, n - t);
    readableInputs(table, TV_RECORD, TV_WEIGHT, nInputs, t, count, quant, inputs);
    const bp = <usize>load<u32>(inputs), bd = load<i32>(inputs, 4);
    const dst = out + <usize>t * outBytes;
    let j = 0;
    for (; j + 8 <= count; j += 8) {
      const b0 = loadLanes(bp, bd, j), b1 = loadLanes(bp, bd, j + 4);
      let m0 = f32x4.splat(0), m1 = f32x4.splat(0);
      for (let i = 1; i < nInputs; i++) {
        const at = inputs + (<usize>i << 5);
        const ptr = <usize>load<u32>(at), dtype = load<i32>(at, 4);
        const w = v128.load(at, 16);
        const p0 = f32x4.mul(f32x4.sub(loadLanes(ptr, dtype, j), b0), w), p1 = f32x4.mul(f32x4.sub(loadLanes(ptr, dtype, j + 4), b1), w);
        if (i == 1) { m0 = p0; m1 = p1; } else { m0 = f32x4.add(m0, p0); m1 = f32x4.add(m1, p1); }
      }
      if (normalize) { m0 = f32x4.div(m0, vdiv); m1 = f32x4.div(m1, vdiv); }
      if (lambda != 1) { m0 = f32x4.mul(m0, vlambda); m1 = f32x4.mul(m1, vlambda); }
      storeEight(dst, outDtype, j, f32x4.add(b0, m0), f32x4.add(b1, m1));
    }
    for (; j < count; j++) {
      const b = loadOne(bp, bd, j);
      let mixed: f32 = 0;
      for (let i = 1; i < nInputs; i++) {
        const at = inputs + (<usize>i << 5);
        const p = (loadOne(<usize>load<u32>(at), load<i32>(at, 4), j) - b) * f32x4.extract_lane(v128.load(at, 16), 0);
        mixed = i == 1 ? p : mixed + p;
      }
      if (normalize) mixed /= divisor;
      if (lambda != 1) mixed *= lambda;
      storeOne(dst, outDtype, j, b + mixed);
    }
  }
}

/**
 * The merge: out = b + lambda * mixed over n elements of a chunk whose first flat element index is
 * (startHi << 32 | startLo). `table` holds nInputs TV_RECORDs, record 0 being the base model.
 * flags: TV_NORMALIZE divides by the (agreeing) weight sum, TV_CONSENSUS elects signs. `divisor` is the
 * weight sum used without consensus (already replaced by 1 when |sum| < 1e-8).
 */
export function taskVectorMerge(
  table: usize, nInputs: i32, n: i32, startLo: u32, startHi: u32, quant: i32,
  flags: i32, divisor: f32, lambda: f32, out: usize, outDtype: i32,
): void {
  const start = (<u64>startHi << 32) | <u64>startLo;
  const outBytes = <usize>elementBytes(outDtype);
  const consensus = (flags & TV_CONSENSUS) != 0;
  const normalize = (flags & TV_NORMALIZE) != 0;
  // Vote variants: the sign is elected from v_i, the staged values (p_i, or the unweighted q_i), by
  // their sum or by counting signs; p_i = q_i * w_i is then formed for the agreeing sum.
  const countVote = consensus && (flags & TV_COUNT_VOTE) != 0;
  const unweighted = consensus && (flags & TV_UNWEIGHTED_VOTE) != 0;
  const tasks = nInputs - 1;
  // Plain task arithmetic (no trimming, rescaling or consensus) runs fused, one vector at a time.
  let plain = !consensus;
  for (let i = 1; i < nInputs; i++) {
    const rec = table + <usize>i * TV_RECORD;
    if (load<u32>(rec, TV_MODE) != TRIM_NONE || load<f32>(rec, TV_RESCALE) != 1) plain = false;
  }
  if (plain) {
    plainTaskArithmetic(table, nInputs, n, quant, normalize, divisor, lambda, out, outDtype);
    return;
  }
  const ptrs = slot(MAX_INPUTS + 2);
  const splatted = ptrs + (<usize>MAX_INPUTS << 2); // each task's weight in all four lanes
  const pbase = slot(MAX_INPUTS + 3);
  for (let i = 0; i < tasks; i++) v128.store(splatted + (<usize>i << 4), f32x4.splat(load<f32>(table + <usize>(i + 1) * TV_RECORD, TV_WEIGHT)));
  const vdiv = f32x4.splat(divisor), vlambda = f32x4.splat(lambda), zero = f32x4.splat(0), one = f32x4.splat(1);
  for (let t = 0; t < n; t += TILE) {
    const count = min(TILE, n - t);
    const index = start + <u64>t;
    const b = tileOf(load<u32>(table), load<u32>(table, 4), t, count, quant, 0);
    for (let i = 1; i < nInputs; i++) {
      const rec = table + <usize>i * TV_RECORD;
      store<u32>(ptrs + (<usize>(i - 1) << 2), <u32>tileOf(load<u32>(rec), load<u32>(rec, 4), t, count, quant, i));
    }
    const acc = outBytes == 4 ? out + (<usize>t << 2) : slot(MAX_INPUTS);
    for (let s = 0; s < count; s += SUB) {
      const len = min(SUB, count - s);
      const so = <usize>s << 2;
      if (!plain) {
        // p_i for this sub-block, task by task, at pbase + i * SUB floats.
        for (let i = 0; i < tasks; i++) {
          const sub = index + <u64>s;
          stageTask(table + <usize>(i + 1) * TV_RECORD, <usize>load<u32>(ptrs + (<usize>i << 2)) + so, b + so, len, <u32>sub, <u32>(sub >>> 32), t + s, pbase + <usize>i * (SUB << 2), unweighted);
        }
      }
      let j = 0;
      for (; j + 4 <= len; j += 4) {
        const o = <usize>j << 2;
        const vb = v128.load(b + so + o);
        let mixed = zero;
        if (plain) {
          for (let i = 0; i < tasks; i++) {
            const p = f32x4.mul(f32x4.sub(v128.load(<usize>load<u32>(ptrs + (<usize>i << 2)) + so + o), vb), v128.load(splatted + (<usize>i << 4)));
            mixed = i == 0 ? p : f32x4.add(mixed, p);
          }
        } else {
          for (let i = 0; i < tasks; i++) {
            const p = v128.load(pbase + <usize>i * (SUB << 2) + o);
            mixed = i == 0 ? p : f32x4.add(mixed, p);
          }
        }
        if (consensus) {
          // `mixed` holds sum_i v_i: its sign is the elected one (0 counts as +), unless signs are counted.
          let positive = f32x4.ge(mixed, zero);
          if (countVote) {
            let votes = i32x4.splat(0);
            for (let i = 0; i < tasks; i++) {
              const v = v128.load(pbase + <usize>i * (SUB << 2) + o);
              votes = i32x4.add(i32x4.sub(votes, f32x4.gt(v, zero)), f32x4.lt(v, zero));
            }
            positive = i32x4.ge_s(votes, i32x4.splat(0));
          }
          let weights = zero;
          for (let i = 0; i < tasks; i++) {
            const v = v128.load(pbase + <usize>i * (SUB << 2) + o);
            const agree = v128.bitselect(f32x4.gt(v, zero), f32x4.lt(v, zero), positive);
            const w = v128.load(splatted + (<usize>i << 4));
            const p = unweighted ? f32x4.mul(v, w) : v;
            if (i == 0) {
              mixed = v128.and(p, agree);
              weights = v128.and(w, agree);
            } else {
              mixed = f32x4.add(mixed, v128.and(p, agree));
              weights = f32x4.add(weights, v128.and(w, agree));
            }
          }
          if (normalize) mixed = f32x4.div(mixed, v128.bitselect(one, weights, f32x4.eq(weights, zero)));
        } else if (normalize) {
          mixed = f32x4.div(mixed, vdiv);
        }
        if (lambda != 1) mixed = f32x4.mul(mixed, vlambda);
        v128.store(acc + so + o, f32x4.add(vb, mixed));
      }
      for (; j < len; j++) {
        const o = <usize>j << 2;
        const vb = load<f32>(b + so + o);
        let mixed: f32 = 0;
        for (let i = 0; i < tasks; i++) {
          const p = plain
            ? (load<f32>(<usize>load<u32>(ptrs + (<usize>i << 2)) + so + o) - vb) * load<f32>(table + <usize>(i + 1) * TV_RECORD, TV_WEIGHT)
            : load<f32>(pbase + <usize>i * (SUB << 2) + o);
          mixed = i == 0 ? p : mixed + p;
        }
        if (consensus) {
          let positive = mixed >= 0;
          if (countVote) {
            let votes = 0;
            for (let i = 0; i < tasks; i++) {
              const v = load<f32>(pbase + <usize>i * (SUB << 2) + o);
              votes += <i32>(v > 0) - <i32>(v < 0);
            }
            positive = votes >= 0;
          }
          let weights: f32 = 0;
          for (let i = 0; i < tasks; i++) {
            const v = load<f32>(pbase + <usize>i * (SUB << 2) + o);
            const agree = positive ? v > 0 : v < 0;
            const w = load<f32>(table + <usize>(i + 1) * TV_RECORD, TV_WEIGHT);
            const p = unweighted ? v * w : v;
            const pm: f32 = agree ? p : 0, wm: f32 = agree ? w : 0;
            if (i == 0) { mixed = pm; weights = wm; } else { mixed += pm; weights += wm; }
          }
          if (normalize) mixed /= weights == 0 ? <f32>1 : weights;
        } else if (normalize) {
          mixed /= divisor;
        }
        if (lambda != 1) mixed *= lambda;
        store<f32>(acc + so + o, vb + mixed);
      }
    }
    if (outBytes != 4) encode(acc, outDtype, out + <usize>t * outBytes, count);
  }
}

/**
 * The L1 norms rescaling needs, per tile and task input: sum |tau_i| and sum |masked tau_i| in float64,
 * written as 2 f64 per (tile, task input) at `partials` (tile-major). Uses the same masks as the merge,
 * so it consumes magnitude tie budgets the same way: give it a fresh table.
 */
export function maskedL1(table: usize, nInputs: i32, n: i32, startLo: u32, startHi: u32, quant: i32, partials: usize): void {
  const start = (<u64>startHi << 32) | <u64>startLo;
  const magnitude = i32x4.splat(0x7fffffff);
  const tasks = nInputs - 1;
  let tile = 0;
  for (let t = 0; t < n; t += TILE) {
    const count = min(TILE, n - t);
    const index = start + <u64>t;
    const lo = <u32>index, hi = <u32>(index >>> 32);
    const b = tileOf(load<u32>(table), load<u32>(table, 4), t, count, quant, 0);
    for (let i = 1; i < nInputs; i++) {
      const rec = table + <usize>i * TV_RECORD;
      const x = tileOf(load<u32>(rec), load<u32>(rec, 4), t, count, quant, 1);
      const mode = load<u32>(rec, TV_MODE), threshold = load<u32>(rec, TV_THRESHOLD), key = load<u32>(rec, TV_KEY);
      const threshold2 = load<u32>(rec, TV_THRESHOLD2), bits = <usize>load<u32>(rec, TV_MASK);
      const high = hi + 0x9e3779b9;
      const vthreshold = i32x4.splat(threshold), vthreshold2 = i32x4.splat(threshold2), vkey = i32x4.splat(key), vhigh = i32x4.splat(high);
      tiesLeft = load<u32>(rec, TV_TIES);
      outliersLeft = load<u32>(rec, TV_TIES2);
      let aLo = f64x2.splat(0), aHi = f64x2.splat(0), mLo = f64x2.splat(0), mHi = f64x2.splat(0);
      let j = 0;
      for (; j + 4 <= count; j += 4) {
        const o = <usize>j << 2;
        const tau = f32x4.sub(v128.load(x + o), v128.load(b + o));
        const all = v128.and(tau, magnitude);
        const kept = v128.and(maskLanes(mode, vthreshold, vthreshold2, vkey, vhigh, bits, tau, indexLanes(lo + <u32>j), t + j), magnitude);
        aLo = f64x2.add(aLo, f64x2.promote_low_f32x4(all));
        aHi = f64x2.add(aHi, promoteHigh(all));
        mLo = f64x2.add(mLo, f64x2.promote_low_f32x4(kept));
        mHi = f64x2.add(mHi, promoteHigh(kept));
      }
      let all = sumLanes(aLo, aHi), kept = sumLanes(mLo, mHi);
      for (; j < count; j++) {
        const o = <usize>j << 2;
        const tau = load<f32>(x + o) - load<f32>(b + o);
        all += <f64>abs<f32>(tau);
        kept += <f64>abs<f32>(maskOne(mode, threshold, threshold2, key, high, bits, tau, lo + <u32>j, t + j));
      }
      store<u32>(rec, tiesLeft, TV_TIES);
      store<u32>(rec, outliersLeft, TV_TIES2);
      const p = partials + (<usize>tile * <usize>tasks + <usize>(i - 1)) * 16;
      store<f64>(p, all);
      store<f64>(p, kept, 8);
    }
    tile++;
  }
}
