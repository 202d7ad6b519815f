// Building blocks of TIES's exact top-k selection: find the k-th largest |tau| = |x - b| of a tensor
// without sorting it.
//
// For non-negative float32 values the bit patterns order exactly like the values, so the magnitude
// |tau| is selected through its 31-bit pattern, the "key". A radix select narrows a key range
// [lo, hi) known to contain the k-th largest key: one pass histograms the keys inside the range into at
// most 2048 buckets and counts the keys at or above hi, the caller finds the bucket that holds the k-th
// key and the next pass looks only inside it. 31 bits need at most three passes; a sample histogram can
// start the search from a narrow bracket instead of the whole range, and the keys inside a bracket can be
// compacted into a small buffer so later passes skip the full tensor. The caller (TypeScript) owns that
// logic; these kernels only scan.

import {
  RANGE_ABOVE, RANGE_INSIDE, RANGE_KEPT, SAMPLE_RUN, SAMPLE_SHIFT, SAMPLE_STRIDE, TASK_RANGE_CAND, TASK_RANGE_CAPACITY, TASK_RANGE_DTYPE,
  DTYPE_BF16, DTYPE_F32, TASK_RANGE_HI, TASK_RANGE_HIST, TASK_RANGE_LO, TASK_RANGE_RECORD, TASK_RANGE_SHIFT, TASK_RANGE_STATS, TASK_RANGE_X, TILE,
} from "./layout";
import { loadLanes, loadOne } from "./convert";
import { readable, readableDtype, slot } from "./tile";

/** |x| of four float32 lanes: clear the sign bits. Loaded before a loop (V8 re-creates a v128 constant at every use inside one). */
const MAGNITUDE = memory.data<u32>([0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff], 16);

/**
 * Sample histogram: for the first SAMPLE_RUN elements of every SAMPLE_STRIDE (counted from the chunk's
 * first element, which is tile-aligned, so from a fixed global pattern) add 1 to hist[key >>> SAMPLE_SHIFT].
 * `hist` holds SAMPLE_BUCKETS u32 counters. Returns the number of sampled elements. F32, BF16 and F16
 * inputs are read in place (a run is 16 elements: a call to decode them cost more than the histogram).
 */
export function absDeltaSample(x: usize, xDtype: i32, b: usize, bDtype: i32, n: i32, quant: i32, hist: usize): i32 {
  let sampled = 0;
  for (let s = 0; s < n; s += SAMPLE_STRIDE) {
    const run = min(SAMPLE_RUN, n - s);
    const bp = readable(b, bDtype, s, run, quant, 0), bd = readableDtype;
    const xp = readable(x, xDtype, s, run, quant, 1), xd = readableDtype;
    if (xd == DTYPE_BF16 && bd == DTYPE_BF16) sampleRun(xp, DTYPE_BF16, bp, DTYPE_BF16, run, hist);
    else if (xd == DTYPE_F32 && bd == DTYPE_F32) sampleRun(xp, DTYPE_F32, bp, DTYPE_F32, run, hist);
    else sampleRun(xp, xd, bp, bd, run, hist);
    sampled += run;
  }
  return sampled;
}

/** One run of the sample: keys of four lanes at a time, each counted in its bucket. */
// @ts-ignore: decorator
@inline
function sampleRun(xv: usize, xd: i32, bv: usize, bd: i32, run: i32, hist: usize): void {
  const magnitude = v128.load(MAGNITUDE);
  let j = 0;
  for (; j + 4 <= run; j += 4) {
    const buckets = i32x4.shr_u(v128.and(f32x4.sub(loadLanes(xv, xd, j), loadLanes(bv, bd, j)), magnitude), SAMPLE_SHIFT);
    bump(hist, i32x4.extract_lane(buckets, 0));
    bump(hist, i32x4.extract_lane(buckets, 1));
    bump(hist, i32x4.extract_lane(buckets, 2));
    bump(hist, i32x4.extract_lane(buckets, 3));
  }
  for (; j < run; j++) bump(hist, (reinterpret<u32>(loadOne(xv, xd, j) - loadOne(bv, bd, j)) & 0x7fffffff) >>> SAMPLE_SHIFT);
}

/** Count/histogram/compact one key that is known to lie in [lo, hi). */
// @ts-ignore: decorator
@inline
function takeKey(key: u32, lo: u32, shift: u32, hist: usize, cand: usize, capacity: i32, kept: i32): i32 {
  const h = hist + (<usize>((key - lo) >>> shift) << 2);
  store<u32>(h, load<u32>(h) + 1);
  if (kept < capacity) {
    store<u32>(cand + (<usize>kept << 2), key);
    kept++;
  }
  return kept;
}

/** Writes the RANGE_* result record. */
// @ts-ignore: decorator
@inline
function writeStats(stats: usize, above: i64, inside: i64, kept: i32): void {
  store<f64>(stats, <f64>above, RANGE_ABOVE);
  store<f64>(stats, <f64>inside, RANGE_INSIDE);
  store<f64>(stats, <f64>kept, RANGE_KEPT);
}

// @ts-ignore: decorator
@inline
function bump(hist: usize, bucket: u32): void {
  const h = hist + (<usize>bucket << 2);
  store<u32>(h, load<u32>(h) + 1);
}

/**
 * One radix pass over |x - b|: keys >= hi are counted, keys in [lo, hi) are added to
 * hist[(key - lo) >>> shift] and, while `capacity` allows, copied to `cand` (in element order).
 * hi may be 2^31 (no key is that large). Uses scratch slot 2.
 * Fills the RANGE_* record at `stats`.
 */
export function absDeltaRange(
  x: usize, xDtype: i32, b: usize, bDtype: i32, n: i32, quant: i32,
  lo: u32, hi: u32, shift: u32, hist: usize, cand: usize, capacity: i32, stats: usize,
): void {
  writeStats(stats, 0, 0, 0);
  for (let t = 0; t < n; t += TILE) {
    const count = min(TILE, n - t);
    const bp = readable(b, bDtype, t, count, quant, 0), bd = readableDtype;
    const xp = readable(x, xDtype, t, count, quant, 1), xd = readableDtype;
    rangeBlock(xp, xd, bp, bd, count, lo, hi, shift, hist, cand, capacity, stats);
  }
}

/**
 * The same pass for several task inputs x_i against one base at once (`tasks` TASK_RANGE_RECORDs at
 * `table`, each with its own range, histogram, candidates and stats): the tensor is walked once, a tile
 * at a time, every task's keys of a tile computed while the base's tile is in cache.
 */
export function absDeltaRanges(table: usize, tasks: i32, b: usize, bDtype: i32, n: i32, quant: i32): void {
  for (let i = 0; i < tasks; i++) writeStats(load<u32>(table + <usize>i * TASK_RANGE_RECORD, TASK_RANGE_STATS), 0, 0, 0);
  for (let t = 0; t < n; t += TILE) {
    const count = min(TILE, n - t);
    const bp = readable(b, bDtype, t, count, quant, 0), bd = readableDtype;
    for (let i = 0; i < tasks; i++) {
      const rec = table + <usize>i * TASK_RANGE_RECORD;
      const xp = readable(load<u32>(rec, TASK_RANGE_X), load<i32>(rec, TASK_RANGE_DTYPE), t, count, quant, 1), xd = readableDtype;
      rangeBlock(
        xp, xd, bp, bd, count, load<u32>(rec, TASK_RANGE_LO), load<u32>(rec, TASK_RANGE_HI), load<u32>(rec, TASK_RANGE_SHIFT),
        load<u32>(rec, TASK_RANGE_HIST), load<u32>(rec, TASK_RANGE_CAND), load<i32>(rec, TASK_RANGE_CAPACITY), load<u32>(rec, TASK_RANGE_STATS),
      );
    }
  }
}

/**
 * rangeTile with the dtypes as constants for the common pairs (BF16 and F32 inputs), so those loops
 * carry no branch on them.
 */
function rangeBlock(xv: usize, xd: i32, bv: usize, bd: i32, count: i32, lo: u32, hi: u32, shift: u32, hist: usize, cand: usize, capacity: i32, stats: usize): void {
  if (xd == DTYPE_BF16 && bd == DTYPE_BF16) rangeTile(xv, DTYPE_BF16, bv, DTYPE_BF16, count, lo, hi, shift, hist, cand, capacity, stats);
  else if (xd == DTYPE_F32 && bd == DTYPE_F32) rangeTile(xv, DTYPE_F32, bv, DTYPE_F32, count, lo, hi, shift, hist, cand, capacity, stats);
  else rangeTile(xv, xd, bv, bd, count, lo, hi, shift, hist, cand, capacity, stats);
}

/**
 * PACK + 16 m: the byte shuffle (i8x16.swizzle) that moves the lanes of a vector selected by the 4-bit
 * mask m to its front, in lane order (the other bytes are don't-cares).
 */
const PACK = memory.data<u8>([
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0,
  8, 9, 10, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 1, 2, 3, 8, 9, 10, 11, 0, 0, 0, 0, 0, 0, 0, 0,
  4, 5, 6, 7, 8, 9, 10, 11, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 0, 0, 0,
  12, 13, 14, 15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 1, 2, 3, 12, 13, 14, 15, 0, 0, 0, 0, 0, 0, 0, 0,
  4, 5, 6, 7, 12, 13, 14, 15, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15, 0, 0, 0, 0,
  8, 9, 10, 11, 12, 13, 14, 15, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 0, 0, 0, 0,
  4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 0, 0, 0,
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
], 16);

/**
 * One block (`count` elements of x and b, stored as xd and bd: F32, BF16 or F16, read in place) of a
 * range pass, added to the RANGE_* record at `stats` (candidates go on after the ones already kept).
 *
 * Keys are below 2^31 (the sign bit is masked off), so the range tests are signed compares (x64 has no
 * unsigned lane compare; V8 emulates one): key >= hi is key > hi - 1, where hi = 2^31 ("no upper bound")
 * gives 2^31 - 1, which no key exceeds, and hi = 0 gives -1, which every key does; likewise for lo.
 *
 * A few percent of the keys fall inside a bracket, scattered: a branch per vector on them mispredicts
 * often, and bf16 checkpoints repeat the same |tau| a lot (histogram updates to one counter wait on each
 * other). So the loop has no branch on the keys: each vector's keys inside the range are packed to its
 * front and stored at the end of a buffer (slot 2) that advances by their number; a second, short loop
 * then counts them in the histogram and appends them to the candidates, in element order.
 */
// @ts-ignore: decorator
@inline
function rangeTile(xv: usize, xd: i32, bv: usize, bd: i32, count: i32, lo: u32, hi: u32, shift: u32, hist: usize, cand: usize, capacity: i32, stats: usize): void {
  const magnitude = v128.load(MAGNITUDE);
  const vbelow = i32x4.splat(min<u32>(lo, 0x80000000) - 1), vtop = i32x4.splat(min<u32>(hi, 0x80000000) - 1);
  const packed = slot(2);
  let above: i64 = 0;
  let kept = <i32>load<f64>(stats, RANGE_KEPT);
  let aboveLanes = i32x4.splat(0);
  let inside = 0;
  let j = 0;
  // Each store writes a whole vector (16 bytes) at packed + 4 inside, where inside is at most the number of
  // keys read before that vector: it ends by packed + 4 count, within the slot's TILE keys. Eight keys
  // per iteration: two vectors' work interleaves.
  for (; j + 8 <= count; j += 8) {
    const key0 = v128.and(f32x4.sub(loadLanes(xv, xd, j), loadLanes(bv, bd, j)), magnitude);
    const key1 = v128.and(f32x4.sub(loadLanes(xv, xd, j + 4), loadLanes(bv, bd, j + 4)), magnitude);
    const atOrAbove0 = i32x4.gt_s(key0, vtop), atOrAbove1 = i32x4.gt_s(key1, vtop);
    aboveLanes = i32x4.sub(i32x4.sub(aboveLanes, atOrAbove0), atOrAbove1);
    const within0 = <u32>i32x4.bitmask(v128.andnot(i32x4.gt_s(key0, vbelow), atOrAbove0));
    const within1 = <u32>i32x4.bitmask(v128.andnot(i32x4.gt_s(key1, vbelow), atOrAbove1));
    v128.store(packed + (<usize>inside << 2), i8x16.swizzle(key0, v128.load(PACK + (<usize>within0 << 4))));
    inside += <i32>popcnt(within0);
    v128.store(packed + (<usize>inside << 2), i8x16.swizzle(key1, v128.load(PACK + (<usize>within1 << 4))));
    inside += <i32>popcnt(within1);
  }
  for (; j + 4 <= count; j += 4) {
    const key = v128.and(f32x4.sub(loadLanes(xv, xd, j), loadLanes(bv, bd, j)), magnitude);
    const atOrAbove = i32x4.gt_s(key, vtop);
    aboveLanes = i32x4.sub(aboveLanes, atOrAbove);
    const within = <u32>i32x4.bitmask(v128.andnot(i32x4.gt_s(key, vbelow), atOrAbove));
    v128.store(packed + (<usize>inside << 2), i8x16.swizzle(key, v128.load(PACK + (<usize>within << 4))));
    inside += <i32>popcnt(within);
  }
  for (; j < count; j++) {
    const key = reinterpret<u32>(loadOne(xv, xd, j) - loadOne(bv, bd, j)) & 0x7fffffff;
    if (key >= hi) above++;
    else if (key >= lo) { store<u32>(packed + (<usize>inside << 2), key); inside++; }
  }
  above += <i64>(i32x4.extract_lane(aboveLanes, 0) + i32x4.extract_lane(aboveLanes, 1) + i32x4.extract_lane(aboveLanes, 2) + i32x4.extract_lane(aboveLanes, 3));
  for (let i = 0; i < inside; i++) bump(hist, (load<u32>(packed + (<usize>i << 2)) - lo) >>> shift);
  const copied = min(inside, capacity - kept);
  if (copied > 0) {
    memory.copy(cand + (<usize>kept << 2), packed, <usize>copied << 2);
    kept += copied;
  }
  writeStats(stats, <i64>load<f64>(stats, RANGE_ABOVE) + above, <i64>load<f64>(stats, RANGE_INSIDE) + <i64>inside, kept);
}

/**
 * The same pass over an array of n keys (a compacted candidate buffer). With `compact`, the keys inside
 * [lo, hi) are also moved to the front of the array (in order), so the next, narrower pass reads fewer.
 */
export function keyRange(keys: usize, n: i32, lo: u32, hi: u32, shift: u32, hist: usize, compact: bool, stats: usize): void {
  let above: i64 = 0, inside: i64 = 0;
  let kept = 0;
  const capacity = compact ? n : 0;
  for (let j = 0; j < n; j++) {
    const key = load<u32>(keys + (<usize>j << 2));
    if (key >= hi) above++;
    else if (key >= lo) { kept = takeKey(key, lo, shift, hist, keys, capacity, kept); inside++; }
  }
  writeStats(stats, above, inside, kept);
}

/**
 * The nonzero buckets of a histogram as (bucket, count) u32 pairs at `pairs`, in bucket order; returns
 * how many pairs. A chunk's fine bracket histogram holds far fewer distinct keys than buckets (bf16
 * task vectors take few distinct values), so the pairs are what leaves the worker.
 */
export function nonzeroBuckets(hist: usize, buckets: i32, pairs: usize): i32 {
  let n = 0;
  let b = 0;
  for (; b + 4 <= buckets; b += 4) {
    if (!v128.any_true(v128.load(hist + (<usize>b << 2)))) continue;
    for (let j = b; j < b + 4; j++) n = pairIfNonzero(hist, j, pairs, n);
  }
  for (; b < buckets; b++) n = pairIfNonzero(hist, b, pairs, n);
  return n;
}

// @ts-ignore: decorator
@inline
function pairIfNonzero(hist: usize, bucket: i32, pairs: usize, n: i32): i32 {
  const count = load<u32>(hist + (<usize>bucket << 2));
  if (count == 0) return n;
  store<u32>(pairs + (<usize>n << 3), bucket);
  store<u32>(pairs + (<usize>n << 3), count, 4);
  return n + 1;
}
