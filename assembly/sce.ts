// sce (Select, Calculate, Erase). Select: the positions of largest variance across the task vectors
// tau_i = x_i - b (population variance in float64, mean((tau_i - mu)^2)), ranked by their float64 bits
// (non-negative doubles order like their bits), so the cut is exact. A resident tensor brackets the cut
// from a sample, copies out the variances inside the bracket in one pass and ranks those (sceSample,
// sceCollect, sceSelectCandidates); a chunked one does the same across its chunks (src/merge/sce-cut.ts:
// each chunk's sceSample, then sceCollect); a missed bracket uses the radix passes of TIES's select
// (sceRange). Calculate: c_i from the mean of tau_i^2 over the kept positions (the
// caller normalises them). Erase: a sum-consensus sign mask on the unweighted tau. Then
// out = b + sum_i c_i m_i tau_i / max(sum_i c_i m_i, 1e-6), per element, in float32.
// `table` is a task-vector operand table (TV_RECORD; record 0 the base), TV_WEIGHT holding c_i.

import { elementBytes, encode, loadLanes } from "./convert";
import { DTYPE_BF16, DTYPE_F32, MAX_INPUTS, RANGE_ABOVE, SCE_CUT, SCE_CUT_ABOVE, SCE_CUT_EQUAL, RANGE_INSIDE, RANGE_KEPT, SCE_ALL, SCE_HIGH, SCE_LOW, SCE_TIES, SCE_MODE, SCE_TOP, TILE, TV_RECORD, TV_WEIGHT, SCE_SAMPLE_BITS, SCE_SAMPLE_STRIDE } from "./layout";
import { promoteHigh } from "./reduce";
import { inputTiles, readable, readableDtype, slot } from "./tile";

/** Per-position variance of the n elements of a chunk, as f64 at `vars`; returns how many are not zero. */
export function sceVariance(table: usize, nInputs: i32, n: i32, quant: i32, vars: usize): i32 {
  const tasks = nInputs - 1;
  let zeros = 0;
  const ptrs = slot(MAX_INPUTS + 2);
  const count64 = f64x2.splat(<f64>tasks);
  for (let t = 0; t < n; t += TILE) {
    const count = min(TILE, n - t);
    const dst = vars + (<usize>t << 3);
    let j = 0;
    // BF16 inputs (the usual checkpoints) are read in place by the 2-4 task loops: no decoding pass.
    let bf16 = tasks >= 2 && tasks <= 4;
    for (let i = 0; bf16 && i < nInputs; i++) {
      const rec = table + <usize>i * TV_RECORD;
      store<u32>(ptrs + (<usize>i << 2), <u32>readable(load<u32>(rec), load<i32>(rec, 4), t, count, quant, i));
      bf16 = readableDtype == DTYPE_BF16;
    }
    if (bf16) j = varianceQuadsOf(tasks, true, ptrs, count, dst);
    if (j < count) inputTiles(table, TV_RECORD, nInputs, t, count, quant, ptrs);
    if (!bf16 && tasks >= 2 && tasks <= 4) j = varianceQuadsOf(tasks, false, ptrs, count, dst);
    for (let q = 0; q < j; q += 2) zeros += <i32>(i64x2.extract_lane(v128.load(dst + (<usize>q << 3)), 0) == 0) + <i32>(i64x2.extract_lane(v128.load(dst + (<usize>q << 3)), 1) == 0);
    const b = <usize>load<u32>(ptrs);
    for (; j + 2 <= count; j += 2) {
      const vb = v128.load64_zero(b + (<usize>j << 2));
      let sum = f64x2.splat(0);
      for (let i = 0; i < tasks; i++) {
        const tau = f32x4.sub(v128.load64_zero(<usize>load<u32>(ptrs + (<usize>(i + 1) << 2)) + (<usize>j << 2)), vb);
        sum = f64x2.add(sum, f64x2.promote_low_f32x4(tau));
      }
      const mu = f64x2.div(sum, count64);
      let sq = f64x2.splat(0);
      for (let i = 0; i < tasks; i++) {
        const tau = f32x4.sub(v128.load64_zero(<usize>load<u32>(ptrs + (<usize>(i + 1) << 2)) + (<usize>j << 2)), vb);
        const d = f64x2.sub(f64x2.promote_low_f32x4(tau), mu);
        sq = f64x2.add(sq, f64x2.mul(d, d));
      }
      const v = positiveNaN(f64x2.div(sq, count64));
      v128.store(dst + (<usize>j << 3), v);
      zeros += <i32>(i64x2.extract_lane(v, 0) == 0) + <i32>(i64x2.extract_lane(v, 1) == 0);
    }
    for (; j < count; j++) {
      const vb = load<f32>(b + (<usize>j << 2));
      let sum: f64 = 0;
      for (let i = 0; i < tasks; i++) sum += <f64>(load<f32>(<usize>load<u32>(ptrs + (<usize>(i + 1) << 2)) + (<usize>j << 2)) - vb);
      const mu = sum / <f64>tasks;
      let sq: f64 = 0;
      for (let i = 0; i < tasks; i++) {
        const d = <f64>(load<f32>(<usize>load<u32>(ptrs + (<usize>(i + 1) << 2)) + (<usize>j << 2)) - vb) - mu;
        sq += d * d;
      }
      const v = sq / <f64>tasks;
      store<f64>(dst + (<usize>j << 3), abs<f64>(v));
      zeros += <i32>(reinterpret<u64>(v) == 0);
    }
  }
  return n - zeros;
}

/**
 * A variance is NaN where a task's input is NaN or infinite, with a sign the hardware picks (x86 makes
 * inf - inf negative). Stored with the sign bit clear (as the absolute value: a variance is otherwise
 * non-negative, and an AND costs nothing here where a compare-and-select cost 1.5 ns per position),
 * every such position ranks above every number (as torch's topk puts NaN first), and its high word
 * stays within the radix select's 31-bit keys.
 */
// @ts-ignore: decorator
@inline
function positiveNaN(v: v128): v128 {
  return f64x2.abs(v);
}

/**
 * sceVariance's loop for 2 to 4 task inputs (`tasks` and `dtype`, F32 or BF16, constants at every
 * call), four positions at a time: each tau_i is computed once and kept in registers for both sums,
 * which are the general loop's float64 operations in its order (so the same bits). Returns how many
 * positions it did (a multiple of 4).
 */
// @ts-ignore: decorator
@inline
function varianceQuads(tasks: i32, dtype: i32, ptrs: usize, count: i32, dst: usize): i32 {
  const b = <usize>load<u32>(ptrs), x0 = <usize>load<u32>(ptrs, 4), x1 = <usize>load<u32>(ptrs, 8);
  const x2 = tasks > 2 ? <usize>load<u32>(ptrs, 12) : x1, x3 = tasks > 3 ? <usize>load<u32>(ptrs, 16) : x1;
  const n64 = f64x2.splat(<f64>tasks), zero = f64x2.splat(0);
  let j = 0;
  for (; j + 4 <= count; j += 4) {
    const vb = loadLanes(b, dtype, j);
    const t0 = f32x4.sub(loadLanes(x0, dtype, j), vb), t1 = f32x4.sub(loadLanes(x1, dtype, j), vb);
    const t2 = tasks > 2 ? f32x4.sub(loadLanes(x2, dtype, j), vb) : vb, t3 = tasks > 3 ? f32x4.sub(loadLanes(x3, dtype, j), vb) : vb;
    const l0 = f64x2.promote_low_f32x4(t0), h0 = promoteHigh(t0), l1 = f64x2.promote_low_f32x4(t1), h1 = promoteHigh(t1);
    const l2 = tasks > 2 ? f64x2.promote_low_f32x4(t2) : zero, h2 = tasks > 2 ? promoteHigh(t2) : zero;
    const l3 = tasks > 3 ? f64x2.promote_low_f32x4(t3) : zero, h3 = tasks > 3 ? promoteHigh(t3) : zero;
    let sumL = f64x2.add(f64x2.add(zero, l0), l1), sumH = f64x2.add(f64x2.add(zero, h0), h1);
    if (tasks > 2) { sumL = f64x2.add(sumL, l2); sumH = f64x2.add(sumH, h2); }
    if (tasks > 3) { sumL = f64x2.add(sumL, l3); sumH = f64x2.add(sumH, h3); }
    const muL = f64x2.div(sumL, n64), muH = f64x2.div(sumH, n64);
    let dL = f64x2.sub(l0, muL), dH = f64x2.sub(h0, muH);
    let sqL = f64x2.add(zero, f64x2.mul(dL, dL)), sqH = f64x2.add(zero, f64x2.mul(dH, dH));
    dL = f64x2.sub(l1, muL); dH = f64x2.sub(h1, muH);
    sqL = f64x2.add(sqL, f64x2.mul(dL, dL)); sqH = f64x2.add(sqH, f64x2.mul(dH, dH));
    if (tasks > 2) {
      dL = f64x2.sub(l2, muL); dH = f64x2.sub(h2, muH);
      sqL = f64x2.add(sqL, f64x2.mul(dL, dL)); sqH = f64x2.add(sqH, f64x2.mul(dH, dH));
    }
    if (tasks > 3) {
      dL = f64x2.sub(l3, muL); dH = f64x2.sub(h3, muH);
      sqL = f64x2.add(sqL, f64x2.mul(dL, dL)); sqH = f64x2.add(sqH, f64x2.mul(dH, dH));
    }
    v128.store(dst + (<usize>j << 3), positiveNaN(f64x2.div(sqL, n64)));
    v128.store(dst + (<usize>j << 3), positiveNaN(f64x2.div(sqH, n64)), 16);
  }
  return j;
}

/** varianceQuads for 2, 3 or 4 task inputs, float32 tiles or BF16 read in place: one loop per case. */
function varianceQuadsOf(tasks: i32, bf16: bool, ptrs: usize, count: i32, dst: usize): i32 {
  if (bf16) {
    if (tasks == 2) return varianceQuads(2, DTYPE_BF16, ptrs, count, dst);
    if (tasks == 3) return varianceQuads(3, DTYPE_BF16, ptrs, count, dst);
    return varianceQuads(4, DTYPE_BF16, ptrs, count, dst);
  }
  if (tasks == 2) return varianceQuads(2, DTYPE_F32, ptrs, count, dst);
  if (tasks == 3) return varianceQuads(3, DTYPE_F32, ptrs, count, dst);
  return varianceQuads(4, DTYPE_F32, ptrs, count, dst);
}

/**
 * A sample of the variances that depends only on the tensor: one position in every SCE_SAMPLE_STRIDE,
 * at a hashed offset (so rows of a period dividing the stride are not sampled at one column), copied
 * to `sample`; returns how many.
 */
export function sceSample(vars: usize, n: i32, sample: usize): i32 {
  let m = 0;
  for (let i = 0; i * SCE_SAMPLE_STRIDE < n; i++) {
    const j = i * SCE_SAMPLE_STRIDE + <i32>((<u32>i * 0x9e3779b1) >>> (32 - SCE_SAMPLE_BITS));
    if (j >= n) break;
    store<u64>(sample + (<usize>m << 3), load<u64>(vars + (<usize>j << 3)));
    m++;
  }
  return m;
}

/**
 * The variance bits in [lo, hi] (as u64), in element order, to `cand` while `capacity` lasts (room for
 * capacity + 1: every element is written, the next overwrites it unless it belongs). At `result` (f64):
 * how many are in the range (all of them, even past the capacity) and how many above it. Variance bits
 * are below 2^63 (non-negative doubles, NaN stored with the sign bit clear), so signed 64-bit compares order them two
 * at a time, with a bracket open at the top clamped to 2^63 - 1; most pairs lie outside a bracket and
 * are only counted.
 */
export function sceCollect(vars: usize, n: i32, loHigh: u32, loLow: u32, hiHigh: u32, hiLow: u32, cand: usize, capacity: i32, result: usize): void {
  const lo = (<u64>loHigh << 32) | <u64>loLow, hi = (<u64>hiHigh << 32) | <u64>hiLow;
  const vlo = i64x2.splat(lo), vhi = i64x2.splat(hi > <u64>i64.MAX_VALUE ? i64.MAX_VALUE : hi);
  let c = 0, above = 0, j = 0;
  let aboveLanes = i64x2.splat(0);
  for (; j + 2 <= n; j += 2) {
    const bits = v128.load(vars + (<usize>j << 3));
    const over = i64x2.gt_s(bits, vhi);
    aboveLanes = i64x2.sub(aboveLanes, over);
    const within = v128.not(v128.or(i64x2.lt_s(bits, vlo), over));
    if (v128.any_true(within)) {
      store<u64>(cand + (<usize>min(c, capacity) << 3), i64x2.extract_lane(bits, 0));
      c -= <i32>i64x2.extract_lane(within, 0);
      store<u64>(cand + (<usize>min(c, capacity) << 3), i64x2.extract_lane(bits, 1));
      c -= <i32>i64x2.extract_lane(within, 1);
    }
  }
  above = <i32>(i64x2.extract_lane(aboveLanes, 0) + i64x2.extract_lane(aboveLanes, 1));
  for (; j < n; j++) {
    const bits = load<u64>(vars + (<usize>j << 3));
    store<u64>(cand + (<usize>min(c, capacity) << 3), bits);
    c += <i32>(bits >= lo) & <i32>(bits <= hi);
    above += <i32>(bits > hi);
  }
  store<f64>(result, <f64>c, SCE_CUT_EQUAL);
  store<f64>(result, <f64>above, SCE_CUT_ABOVE);
}

/**
 * The rank-th largest (rank >= 1) of `count` u64 bits at `cand`, exactly: radix rounds of 16 bits from
 * the top, each keeping only the candidates of the bucket holding the rank-th (compacted in place, so
 * `cand` is reordered). `hist` has room for 65536 u32. At `result`: the value as u64, then as f64 the
 * candidates above it and those equal to it.
 */
export function sceSelectCandidates(cand: usize, count: i32, rank: i32, hist: usize, result: usize): void {
  let above = 0;
  for (let shift: u64 = 48; ; shift -= 16) {
    memory.fill(hist, 0, 65536 << 2);
    for (let i = 0; i < count; i++) {
      const h = hist + (<usize>((load<u64>(cand + (<usize>i << 3)) >>> shift) & 0xffff) << 2);
      store<u32>(h, load<u32>(h) + 1);
    }
    let cum = 0, b = 0xffff;
    for (; b > 0; b--) {
      const c = <i32>load<u32>(hist + (<usize>b << 2));
      if (cum + c >= rank) break;
      cum += c;
    }
    above += cum;
    rank -= cum;
    const keep = <u64>b;
    let m = 0;
    for (let i = 0; i < count; i++) {
      const bits = load<u64>(cand + (<usize>i << 3));
      store<u64>(cand + (<usize>m << 3), bits);
      m += <i32>(((bits >>> shift) & 0xffff) == keep);
    }
    count = m;
    if (shift == 0) break;
  }
  store<u64>(result, load<u64>(cand), SCE_CUT);
  store<f64>(result, <f64>above, SCE_CUT_ABOVE);
  store<f64>(result, <f64>count, SCE_CUT_EQUAL);
}

/**
 * One radix pass over the variance bits. level 0: the key is the high word; level 1: only positions
 * whose high word equals `high` take part, keyed by their low word (those with a larger high word count
 * as above). Keys in [lo, last] go to hist[(key - lo) >>> shift], keys > last are counted as above
 * (without a branch: which side of the range a variance falls is random). `hist` has room for four
 * copies of the histogram, used in turn so that runs of equal buckets do not wait on each other; they
 * are added into the first.
 */
export function sceRange(vars: usize, n: i32, level: i32, high: u32, lo: u32, last: u32, shift: u32, hist: usize, stats: usize): void {
  const buckets = ((last - lo) >>> shift) + 1;
  const stride = <usize>buckets << 2;
  let above: i64 = 0, inside: i64 = 0;
  for (let j = 0; j < n; j++) {
    const bits = load<u64>(vars + (<usize>j << 3));
    const hiKey = <u32>(bits >>> 32);
    let key = hiKey, over = hiKey > last, within = hiKey >= lo && hiKey <= last;
    if (level == 1) {
      const same = hiKey == high;
      key = <u32>bits;
      over = hiKey > high || (same && key > last);
      within = same && key >= lo && key <= last;
    }
    above += <i64>over;
    if (within) {
      const h = hist + <usize>(j & 3) * stride + (<usize>((key - lo) >>> shift) << 2);
      store<u32>(h, load<u32>(h) + 1);
      inside++;
    }
  }
  for (let b: u32 = 0; b < buckets; b++) {
    const h = hist + (<usize>b << 2);
    store<u32>(h, load<u32>(h) + load<u32>(h + stride) + load<u32>(h + 2 * stride) + load<u32>(h + 3 * stride));
  }
  store<f64>(stats, <f64>above, RANGE_ABOVE);
  store<f64>(stats, <f64>inside, RANGE_INSIDE);
  store<f64>(stats, 0, RANGE_KEPT);
}

/**
 * The selection of a tile's `count` positions from `start` as 0 / all-ones u32 lanes at `keep`: a
 * variance above the cut (bits compared as u64: non-negative doubles order like their bits), or equal
 * to it while the record's tie budget lasts (consumed, in element order).
 */
function selectTile(sel: usize, vars: usize, start: i32, count: i32, keep: usize): void {
  const mode = load<u32>(sel, SCE_MODE);
  if (mode != SCE_TOP) {
    memory.fill(keep, mode == SCE_ALL ? 0xff : 0, <usize>count << 2);
    return;
  }
  const cut = (<u64>load<u32>(sel, SCE_HIGH) << 32) | <u64>load<u32>(sel, SCE_LOW);
  // Bits compare as unsigned (a NaN of either sign is above everything): signed lanes with the sign flipped.
  const flip = i64x2.splat(<i64>0x8000000000000000);
  const vcut = i64x2.splat(<i64>cut), fcut = v128.xor(vcut, flip);
  const src = vars + (<usize>start << 3);
  let left = load<u32>(sel, SCE_TIES);
  let j = 0;
  for (; j + 4 <= count; j += 4) {
    const a = v128.load(src + (<usize>j << 3)), b = v128.load(src + (<usize>j << 3), 16);
    if (v128.any_true(v128.or(i64x2.eq(a, vcut), i64x2.eq(b, vcut)))) {
      left = selectScalar(src, j, j + 4, cut, left, keep); // ties are consumed in element order
      continue;
    }
    // Each 64-bit mask's low half, four of them side by side.
    const above = i8x16.shuffle(i64x2.gt_s(v128.xor(a, flip), fcut), i64x2.gt_s(v128.xor(b, flip), fcut), 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
    v128.store(keep + (<usize>j << 2), above);
  }
  store<u32>(sel, selectScalar(src, j, count, cut, left, keep), SCE_TIES);
}

/** selectTile's rule for positions [from, to) one at a time; returns the tie budget left. */
function selectScalar(src: usize, from: i32, to: i32, cut: u64, left: u32, keep: usize): u32 {
  for (let j = from; j < to; j++) {
    const bits = load<u64>(src + (<usize>j << 3));
    let take = <u32>(bits > cut);
    if (bits == cut && left != 0) {
      take = 1;
      left--;
    }
    store<u32>(keep + (<usize>j << 2), 0 - take);
  }
  return left;
}

/** Per tile and task input: sum tau_i^2 over the selected positions (f64), at partials (tile-major). */
export function sceSquares(table: usize, nInputs: i32, n: i32, quant: i32, vars: usize, sel: usize, partials: usize): void {
  const tasks = nInputs - 1;
  const ptrs = slot(MAX_INPUTS + 2);
  const keep = slot(MAX_INPUTS + 3);
  let tile = 0;
  for (let t = 0; t < n; t += TILE) {
    const count = min(TILE, n - t);
    inputTiles(table, TV_RECORD, nInputs, t, count, quant, ptrs);
    selectTile(sel, vars, t, count, keep);
    const b = <usize>load<u32>(ptrs);
    for (let i = 0; i < tasks; i++) {
      const x = <usize>load<u32>(ptrs + (<usize>(i + 1) << 2));
      let lo = f64x2.splat(0), hi = f64x2.splat(0);
      let j = 0;
      for (; j + 4 <= count; j += 4) {
        const o = <usize>j << 2;
        const tau = v128.and(f32x4.sub(v128.load(x + o), v128.load(b + o)), v128.load(keep + o));
        const l = f64x2.promote_low_f32x4(tau);
        const h = f64x2.promote_low_f32x4(i8x16.shuffle(tau, tau, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
        lo = f64x2.add(lo, f64x2.mul(l, l));
        hi = f64x2.add(hi, f64x2.mul(h, h));
      }
      let s = (f64x2.extract_lane(lo, 0) + f64x2.extract_lane(lo, 1)) + (f64x2.extract_lane(hi, 0) + f64x2.extract_lane(hi, 1));
      for (; j < count; j++) {
        const o = <usize>j << 2;
        if (load<u32>(keep + o) == 0) continue;
        const tau = <f64>(load<f32>(x + o) - load<f32>(b + o));
        s += tau * tau;
      }
      store<f64>(partials + (<usize>tile * <usize>tasks + <usize>i) * 8, s);
    }
    tile++;
  }
}

/** The merge over n elements (see the file comment); `sel` gets the same fresh record as sceSquares. */
export function sceMerge(table: usize, nInputs: i32, n: i32, quant: i32, vars: usize, sel: usize, out: usize, outDtype: i32): void {
  const tasks = nInputs - 1;
  const outBytes = <usize>elementBytes(outDtype);
  const ptrs = slot(MAX_INPUTS + 2);
  const coeffs = ptrs + (<usize>MAX_INPUTS << 2) + 16; // each c_i in all four lanes
  for (let i = 0; i < tasks; i++) v128.store(coeffs + (<usize>i << 4), f32x4.splat(load<f32>(table + <usize>(i + 1) * TV_RECORD, TV_WEIGHT)));
  const keep = slot(MAX_INPUTS + 3);
  const zero = f32x4.splat(0), floor = f32x4.splat(<f32>1e-6);
  for (let t = 0; t < n; t += TILE) {
    const count = min(TILE, n - t);
    inputTiles(table, TV_RECORD, nInputs, t, count, quant, ptrs);
    selectTile(sel, vars, t, count, keep);
    const b = <usize>load<u32>(ptrs);
    const acc = outBytes == 4 ? out + (<usize>t << 2) : slot(MAX_INPUTS);
    let j = 0;
    for (; j + 4 <= count; j += 4) {
      const o = <usize>j << 2;
      const vb = v128.load(b + o), vkeep = v128.load(keep + o);
      let sum = zero;
      for (let i = 0; i < tasks; i++) {
        const tau = v128.and(f32x4.sub(v128.load(<usize>load<u32>(ptrs + (<usize>(i + 1) << 2)) + o), vb), vkeep);
        sum = i == 0 ? tau : f32x4.add(sum, tau);
      }
      const positive = f32x4.ge(sum, zero);
      let num = zero, den = zero;
      for (let i = 0; i < tasks; i++) {
        const tau = v128.and(f32x4.sub(v128.load(<usize>load<u32>(ptrs + (<usize>(i + 1) << 2)) + o), vb), vkeep);
        const agree = v128.bitselect(f32x4.gt(tau, zero), f32x4.lt(tau, zero), positive);
        const c = v128.load(coeffs + (<usize>i << 4));
        const nt = v128.and(f32x4.mul(c, tau), agree), dt = v128.and(c, agree);
        if (i == 0) { num = nt; den = dt; } else { num = f32x4.add(num, nt); den = f32x4.add(den, dt); }
      }
      v128.store(acc + o, f32x4.add(vb, f32x4.div(num, f32x4.max(den, floor))));
    }
    for (; j < count; j++) {
      const o = <usize>j << 2;
      const vb = load<f32>(b + o);
      const kept = load<u32>(keep + o) != 0;
      let sum: f32 = 0;
      for (let i = 0; i < tasks; i++) {
        const tau: f32 = kept ? load<f32>(<usize>load<u32>(ptrs + (<usize>(i + 1) << 2)) + o) - vb : 0;
        sum = i == 0 ? tau : sum + tau;
      }
      let num: f32 = 0, den: f32 = 0;
      for (let i = 0; i < tasks; i++) {
        const tau: f32 = kept ? load<f32>(<usize>load<u32>(ptrs + (<usize>(i + 1) << 2)) + o) - vb : 0;
        const agree = sum >= 0 ? tau > 0 : tau < 0;
        const c = load<f32>(coeffs + (<usize>i << 4));
        const nt: f32 = agree ? c * tau : 0, dt: f32 = agree ? c : 0;
        if (i == 0) { num = nt; den = dt; } else { num += nt; den += dt; }
      }
      store<f32>(acc + o, vb + num / max(den, <f32>1e-6));
    }
    if (outBytes != 4) encode(acc, outDtype, out + <usize>t * outBytes, count);
  }
}
