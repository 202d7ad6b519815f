// The task-vector family: task_arithmetic, ties, dare_linear and dare_ties.
//
// For every non-base input i: tau_i = x_i - b, sparsified (TIES keeps the k largest |tau|, DARE keeps
// a pseudo-random subset), optionally rescaled to keep its L1 norm, then weighted: p_i = m_i * r_i * w_i.
// TIES-style consensus elects a sign per element from sum_i p_i and keeps only the p_i that agree with
// it (a disjoint mean when normalized by the agreeing weights); plain task arithmetic sums every p_i.
// Finally out = b + lambda * mixed. Every step rounds to float32 in the order mergekit's float32 torch
// code does, so the same inputs give the same bits.

import { encode, elementBytes } from "./convert";
import {
  MAX_INPUTS, TILE, TRIM_MAGNITUDE, TRIM_NONE, TV_CONSENSUS, TV_KEY, TV_MODE, TV_NORMALIZE, TV_RECORD,
  TV_RESCALE, TV_THRESHOLD, TV_TIES, TV_WEIGHT,
} from "./layout";
import { promoteHigh, sumLanes } from "./reduce";
import { slot, tileOf } from "./tile";

/**
 * The 32-bit integer mixer of DARE's counter-based generator (two multiply-xorshift rounds; every input
 * bit affects every output bit). Because it is a function of (key, element index) only, a mask does not
 * depend on how the tensor is chunked or which worker computes it.
 */
// @ts-ignore: decorator
@inline
function mix4(x: v128): v128 {
  x = v128.xor(x, i32x4.shr_u(x, 16));
  x = i32x4.mul(x, i32x4.splat(0x21f0aaad));
  x = v128.xor(x, i32x4.shr_u(x, 15));
  x = i32x4.mul(x, i32x4.splat(0x735a2d97));
  return v128.xor(x, i32x4.shr_u(x, 15));
}

// @ts-ignore: decorator
@inline
function mix(x: u32): u32 {
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

/**
 * dst = kept ? x - b : 0 over one tile of one task input, per the input's trim mode:
 * - TRIM_NONE: everything is kept;
 * - TRIM_MAGNITUDE: |tau| bits above the threshold are kept, and elements equal to it while the input's
 *   tie budget lasts, in element order (so exactly k elements survive, ties going to the lowest indices);
 * - TRIM_RANDOM: element j is kept iff u(j) < threshold, u from the counter-based generator.
 * `lo`/`hi` are the low and high 32 bits of the tile's first flat element index.
 */
function maskedDelta(rec: usize, x: usize, b: usize, count: i32, lo: u32, hi: u32, dst: usize): void {
  const mode = load<u32>(rec, TV_MODE);
  let j = 0;
  if (mode == TRIM_NONE) {
    for (; j + 4 <= count; j += 4) {
      const o = <usize>j << 2;
      v128.store(dst + o, f32x4.sub(v128.load(x + o), v128.load(b + o)));
    }
    for (; j < count; j++) {
      const o = <usize>j << 2;
      store<f32>(dst + o, load<f32>(x + o) - load<f32>(b + o));
    }
  } else if (mode == TRIM_MAGNITUDE) {
    const threshold = load<u32>(rec, TV_THRESHOLD);
    let ties = load<u32>(rec, TV_TIES);
    const vt = i32x4.splat(threshold);
    const magnitude = i32x4.splat(0x7fffffff);
    for (; j + 4 <= count; j += 4) {
      const o = <usize>j << 2;
      const tau = f32x4.sub(v128.load(x + o), v128.load(b + o));
      const key = v128.and(tau, magnitude);
      let keep = i32x4.gt_u(key, vt);
      const equal = i32x4.eq(key, vt);
      const equalCount = <u32>popcnt<i32>(i32x4.bitmask(equal));
      if (equalCount != 0 && ties >= equalCount) {
        // The budget covers every equal lane here (the usual case: bf16 task vectors repeat values a lot).
        keep = v128.or(keep, equal);
        ties -= equalCount;
      } else if (equalCount != 0 && ties != 0) {
        if (ties != 0 && i32x4.extract_lane(equal, 0) != 0) { keep = i32x4.replace_lane(keep, 0, -1); ties--; }
        if (ties != 0 && i32x4.extract_lane(equal, 1) != 0) { keep = i32x4.replace_lane(keep, 1, -1); ties--; }
        if (ties != 0 && i32x4.extract_lane(equal, 2) != 0) { keep = i32x4.replace_lane(keep, 2, -1); ties--; }
        if (ties != 0 && i32x4.extract_lane(equal, 3) != 0) { keep = i32x4.replace_lane(keep, 3, -1); ties--; }
      }
      v128.store(dst + o, v128.and(tau, keep));
    }
    for (; j < count; j++) {
      const o = <usize>j << 2;
      const tau = load<f32>(x + o) - load<f32>(b + o);
      const key = reinterpret<u32>(tau) & 0x7fffffff;
      let keep = key > threshold;
      if (key == threshold && ties != 0) { keep = true; ties--; }
      store<f32>(dst + o, keep ? tau : 0);
    }
    store<u32>(rec, ties, TV_TIES);
  } else {
    const threshold = load<u32>(rec, TV_THRESHOLD);
    const key = load<u32>(rec, TV_KEY);
    const high = hi + 0x9e3779b9;
    const vt = i32x4.splat(threshold), vkey = i32x4.splat(key), vhigh = i32x4.splat(high);
    for (; j + 4 <= count; j += 4) {
      const o = <usize>j << 2;
      const u = mix4(v128.xor(mix4(v128.xor(indexLanes(lo + <u32>j), vkey)), vhigh));
      const tau = f32x4.sub(v128.load(x + o), v128.load(b + o));
      v128.store(dst + o, v128.and(tau, i32x4.lt_u(u, vt)));
    }
    for (; j < count; j++) {
      const o = <usize>j << 2;
      const u = mix(mix((lo + <u32>j) ^ key) ^ high);
      const tau = load<f32>(x + o) - load<f32>(b + o);
      store<f32>(dst + o, u < threshold ? tau : 0);
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
  const vdiv = f32x4.splat(divisor), vlambda = f32x4.splat(lambda), zero = f32x4.splat(0), one = f32x4.splat(1);
  for (let t = 0; t < n; t += TILE) {
    const count = min(TILE, n - t);
    const index = start + <u64>t;
    const b = tileOf(load<u32>(table), load<u32>(table, 4), t, count, quant, 0);

    // p_i = ((x_i - b) masked * r_i) * w_i, one scratch tile per task input.
    for (let i = 1; i < nInputs; i++) {
      const rec = table + <usize>i * TV_RECORD;
      const x = tileOf(load<u32>(rec), load<u32>(rec, 4), t, count, quant, 1);
      const p = slot(1 + i);
      maskedDelta(rec, x, b, count, <u32>index, <u32>(index >>> 32), p);
      const vr = f32x4.splat(load<f32>(rec, TV_RESCALE)), vw = f32x4.splat(load<f32>(rec, TV_WEIGHT));
      let j = 0;
      for (; j + 4 <= count; j += 4) {
        const o = <usize>j << 2;
        v128.store(p + o, f32x4.mul(f32x4.mul(v128.load(p + o), vr), vw));
      }
      const r = load<f32>(rec, TV_RESCALE), w = load<f32>(rec, TV_WEIGHT);
      for (; j < count; j++) {
        const o = <usize>j << 2;
        store<f32>(p + o, (load<f32>(p + o) * r) * w);
      }
    }

    const acc = outBytes == 4 ? out + (<usize>t << 2) : slot(MAX_INPUTS + 1);
    let j = 0;
    for (; j + 4 <= count; j += 4) {
      const o = <usize>j << 2;
      let mixed: v128;
      if (consensus) {
        let sum = v128.load(slot(2) + o);
        for (let i = 2; i < nInputs; i++) sum = f32x4.add(sum, v128.load(slot(1 + i) + o));
        const positive = f32x4.ge(sum, zero);
        mixed = zero;
        let weights = zero;
        for (let i = 1; i < nInputs; i++) {
          const p = v128.load(slot(1 + i) + o);
          const agree = v128.bitselect(f32x4.gt(p, zero), f32x4.lt(p, zero), positive);
          const w = f32x4.splat(load<f32>(table + <usize>i * TV_RECORD, TV_WEIGHT));
          if (i == 1) {
            mixed = v128.and(p, agree);
            weights = v128.and(w, agree);
          } else {
            mixed = f32x4.add(mixed, v128.and(p, agree));
            weights = f32x4.add(weights, v128.and(w, agree));
          }
        }
        if (normalize) mixed = f32x4.div(mixed, v128.bitselect(one, weights, f32x4.eq(weights, zero)));
      } else {
        mixed = v128.load(slot(2) + o);
        for (let i = 2; i < nInputs; i++) mixed = f32x4.add(mixed, v128.load(slot(1 + i) + o));
        if (normalize) mixed = f32x4.div(mixed, vdiv);
      }
      if (lambda != 1) mixed = f32x4.mul(mixed, vlambda);
      v128.store(acc + o, f32x4.add(v128.load(b + o), mixed));
    }
    for (; j < count; j++) {
      const o = <usize>j << 2;
      let mixed: f32;
      if (consensus) {
        let sum = load<f32>(slot(2) + o);
        for (let i = 2; i < nInputs; i++) sum += load<f32>(slot(1 + i) + o);
        const positive = sum >= 0;
        mixed = 0;
        let weights: f32 = 0;
        for (let i = 1; i < nInputs; i++) {
          const p = load<f32>(slot(1 + i) + o);
          const agree = positive ? p > 0 : p < 0;
          const w = load<f32>(table + <usize>i * TV_RECORD, TV_WEIGHT);
          const pm: f32 = agree ? p : 0, wm: f32 = agree ? w : 0;
          if (i == 1) { mixed = pm; weights = wm; } else { mixed += pm; weights += wm; }
        }
        if (normalize) mixed /= weights == 0 ? <f32>1 : weights;
      } else {
        mixed = load<f32>(slot(2) + o);
        for (let i = 2; i < nInputs; i++) mixed += load<f32>(slot(1 + i) + o);
        if (normalize) mixed /= divisor;
      }
      if (lambda != 1) mixed *= lambda;
      store<f32>(acc + o, load<f32>(b + o) + mixed);
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
    const b = tileOf(load<u32>(table), load<u32>(table, 4), t, count, quant, 0);
    for (let i = 1; i < nInputs; i++) {
      const rec = table + <usize>i * TV_RECORD;
      const x = tileOf(load<u32>(rec), load<u32>(rec, 4), t, count, quant, 1);
      const m = slot(2);
      maskedDelta(rec, x, b, count, <u32>index, <u32>(index >>> 32), m);
      let aLo = f64x2.splat(0), aHi = f64x2.splat(0), mLo = f64x2.splat(0), mHi = f64x2.splat(0);
      let j = 0;
      for (; j + 4 <= count; j += 4) {
        const o = <usize>j << 2;
        const tau = v128.and(f32x4.sub(v128.load(x + o), v128.load(b + o)), magnitude);
        const kept = v128.and(v128.load(m + o), magnitude);
        aLo = f64x2.add(aLo, f64x2.promote_low_f32x4(tau));
        aHi = f64x2.add(aHi, promoteHigh(tau));
        mLo = f64x2.add(mLo, f64x2.promote_low_f32x4(kept));
        mHi = f64x2.add(mHi, promoteHigh(kept));
      }
      let all = sumLanes(aLo, aHi), kept = sumLanes(mLo, mHi);
      for (; j < count; j++) {
        const o = <usize>j << 2;
        all += <f64>abs<f32>(load<f32>(x + o) - load<f32>(b + o));
        kept += <f64>abs<f32>(load<f32>(m + o));
      }
      const p = partials + (<usize>tile * <usize>tasks + <usize>(i - 1)) * 16;
      store<f64>(p, all);
      store<f64>(p, kept, 8);
    }
    tile++;
  }
}
