// The task-vector family: task_arithmetic, ties, dare_linear and dare_ties.
//
// For every non-base input i: tau_i = x_i - b, sparsified (TIES keeps the k largest |tau|, DARE keeps
// a pseudo-random subset), optionally rescaled to keep its L1 norm, then weighted: p_i = m_i * r_i * w_i.
// TIES-style consensus elects a sign per element from sum_i p_i and keeps only the p_i that agree with
// it (a disjoint mean when normalized by the agreeing weights); plain task arithmetic sums every p_i.
// Masks are multiplied in, as mergekit's are (maskLanes): a trimmed or outvoted NaN or infinity is NaN.
// Finally out = b + lambda * mixed. Every step rounds to float32 in the order mergekit's float32 torch
// code does, so the same inputs give the same bits.

import { bf16High, bf16Low, elementBytes, encode, loadLanes, loadOne, storeEight, storeOne } from "./convert";
import {
  DTYPE_BF16, DTYPE_F32, MAX_INPUTS, TILE, TRIM_BAND, TRIM_BITS, TRIM_MAGNITUDE, TRIM_NONE, TRIM_RANDOM, TV_CONSENSUS, TV_COUNT_VOTE, TV_KEY, TV_MASK,
  TV_MODE, TV_NORMALIZE, TV_RECORD, TV_RESCALE, TV_THRESHOLD, TV_THRESHOLD2, TV_TIES, TV_TIES2, TV_UNWEIGHTED_VOTE, TV_WEIGHT,
} from "./layout";
import { exactReciprocal } from "./blend";
import { promoteHigh, sumLanes } from "./reduce";
import { readableInputs, slot } from "./tile";

/**
 * The 32-bit integer mixer of DARE's counter-based generator (two multiply-xorshift rounds; every input
 * bit affects every output bit). Because it is a function of (key, element index) only, a mask does not
 * depend on how the tensor is chunked or which worker computes it.
 */
// @ts-ignore: decorator
@inline
export function mix4(x: v128): v128 {
  return mixLanes(x, i32x4.splat(0x21f0aaad), i32x4.splat(0x735a2d97));
}

/** mix4 with its two multipliers splatted by the caller (see laneConstant). */
// @ts-ignore: decorator
@inline
function mixLanes(x: v128, m1: v128, m2: v128): v128 {
  x = v128.xor(x, i32x4.shr_u(x, 16));
  x = i32x4.mul(x, m1);
  x = v128.xor(x, i32x4.shr_u(x, 15));
  x = i32x4.mul(x, m2);
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

/** The float32 sign bit. */
const SIGN: u32 = 0x80000000;

/**
 * SIMD constants of the hot loops, read from memory before a loop: V8 re-creates a v128 constant at
 * every use inside a loop (three instructions), while a loaded value stays in a register.
 */
const CONSTANTS = memory.data<u32>([
  0, 1, 2, 3, // LANES: lane indices
  0x21f0aaad, 0x21f0aaad, 0x21f0aaad, 0x21f0aaad, // MIX1, MIX2: mix's multipliers
  0x735a2d97, 0x735a2d97, 0x735a2d97, 0x735a2d97,
  SIGN, SIGN, SIGN, SIGN, // SIGNS
  0x3f800000, 0x3f800000, 0x3f800000, 0x3f800000, // ONES: 1.0f
  0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff, // MAGNITUDES: clears the sign bits
  1, 2, 4, 8, // BITS_LOW, BITS_HIGH: the bit of each lane in a byte of keep bits
  16, 32, 64, 128,
], 16);
const LANES = 0, MIX1 = 1, MIX2 = 2, SIGNS = 3, ONES = 4, MAGNITUDES = 5, BITS_LOW = 6, BITS_HIGH = 7;

// @ts-ignore: decorator
@inline
function laneConstant(k: i32): v128 {
  return v128.load(CONSTANTS + (<usize>k << 4));
}

/**
 * A top-k cut over |tau| bits keeps the elements above its threshold, and those equal to it while the
 * cut's budget of equal elements lasts, in element order (so the set has exactly k elements, ties going
 * to the lowest indices). A block of elements is first staged as if the budget covered all its equal
 * elements (or kept none of them, once it is spent): the kept set is then |tau| > cut with cut =
 * threshold - 1 or threshold, one signed compare (magnitudes are below 2^31; thresholds of 2^31 and
 * above, which keep nothing, are clamped to stay so). Only the one block per chunk where the budget runs
 * out is staged again, element by element (stageTies).
 */
// @ts-ignore: decorator
@inline
function blockCut(threshold: u32, left: u32): i32 {
  if (left == 0) return <i32>min<u32>(threshold, 0x7fffffff);
  return <i32>(min<u32>(threshold, SIGN) - 1); // threshold 0: -1, below every magnitude
}

/**
 * Where the budget runs out: of the lanes `equal` to the threshold, those a budget of `left` still keeps
 * (all while it lasts, else the first `left` in lane order). The caller subtracts their number.
 */
// @ts-ignore: decorator
@inline
function keptTies(equal: v128, left: u32): v128 {
  let bits = <u32>i32x4.bitmask(equal);
  if (<u32>popcnt(bits) <= left) return equal;
  while (<u32>popcnt(bits) > left) bits ^= <u32>1 << (31 - clz(bits)); // drop the last lane
  return i32x4.ne(v128.and(i32x4.splat(bits), i32x4(1, 2, 4, 8)), i32x4.splat(0));
}

/** Number of all-ones lanes of a compare's result. */
// @ts-ignore: decorator
@inline
function laneCount(mask: v128): u32 {
  return <u32>popcnt(i32x4.bitmask(mask));
}

/** One element of a top-k cut, with `left` equal elements still kept (the caller decrements it when this keeps an equal one). */
// @ts-ignore: decorator
@inline
function aboveOrKeptTie(magnitude: u32, threshold: u32, left: u32): bool {
  return magnitude > threshold || (magnitude == threshold && left != 0);
}

/**
 * x != 1, as an integer compare of its bits (the same answer): the optimizer moves such a test into the
 * loop that uses it, where V8 would re-create the float constant 1 at every iteration.
 */
// @ts-ignore: decorator
@inline
function isNotOne(x: f32): bool {
  return reinterpret<u32>(x) != 0x3f800000;
}

/** The sum of the four lanes of an i32x4. */
// @ts-ignore: decorator
@inline
function laneSum(v: v128): u32 {
  return <u32>(i32x4.extract_lane(v, 0) + i32x4.extract_lane(v, 1) + i32x4.extract_lane(v, 2) + i32x4.extract_lane(v, 3));
}

/** (m * r) * w, or m * w when `rescaled` is false (r = 1 changes no value). */
// @ts-ignore: decorator
@inline
function scaleLanes(m: v128, rescaled: bool, vr: v128, vw: v128): v128 {
  return f32x4.mul(rescaled ? f32x4.mul(m, vr) : m, vw);
}

/** One element of scaleLanes. */
// @ts-ignore: decorator
@inline
function scaleOne(m: f32, rescaled: bool, r: f32, w: f32): f32 {
  return (rescaled ? m * r : m) * w;
}

/**
 * tau times the 0/1 mask whose all-ones lanes are `keep` (`ones` is ONES): mergekit multiplies its masks
 * in, so a dropped NaN or infinite tau is NaN (and a dropped negative tau -0), where and-ing with the mask
 * would give 0. Kept lanes are tau exactly.
 */
// @ts-ignore: decorator
@inline
function maskLanes(tau: v128, keep: v128, ones: v128): v128 {
  return f32x4.mul(tau, v128.and(keep, ones));
}

/** One element of maskLanes. */
// @ts-ignore: decorator
@inline
function maskOne(tau: f32, keep: bool): f32 {
  return tau * (keep ? <f32>1 : <f32>0);
}

/**
 * p = ((mask(x - b)) * r) * w over `count` elements of a task input, x and b read in place (F32, BF16 or
 * F16, element 0 at the pointers), written as float32 at `p`; (hi:lo) is the first element's flat index
 * and `local` its index in the chunk. The record's trim mode decides the mask:
 * - TRIM_NONE: everything is kept; TRIM_ZERO: zeros, whatever tau is;
 * - TRIM_MAGNITUDE: the top k |tau| (a top-k cut: threshold TV_THRESHOLD, budget TV_TIES);
 * - TRIM_BAND: the top (keep + top) |tau| except the top `top` (breadcrumbs' outliers: a second cut at
 *   TV_THRESHOLD2, TV_TIES2);
 * - TRIM_RANDOM: element j is kept iff u(j) < threshold, u from the counter-based generator;
 * - TRIM_BITS: the keep bits at TV_MASK (della's mask, or DARE's as maskedL1 drew them, computed
 *   beforehand for the chunk).
 * The cuts' budgets are consumed in element order and written back, so consecutive blocks of a chunk
 * continue where the last one stopped. `unweighted` stages q = mask(x - b) * r (w taken as 1).
 * One loop per mode, and for the magnitude, random and no-trim modes one per input dtype pair (BF16, F32,
 * any other), so the hot loops carry no branch on either; rescaling costs one integer test per 4 elements.
 */
function stageBlock(rec: usize, x: usize, xd: i32, b: usize, bd: i32, count: i32, lo: u32, hi: u32, local: i32, p: usize, unweighted: bool): void {
  const mode = load<u32>(rec, TV_MODE);
  const r = load<f32>(rec, TV_RESCALE), w = unweighted ? <f32>1 : load<f32>(rec, TV_WEIGHT);
  const rescaled = isNotOne(r);
  const vr = f32x4.splat(r), vw = f32x4.splat(w);
  const quads = count & ~3;
  if (mode == TRIM_MAGNITUDE) {
    const threshold = load<u32>(rec, TV_THRESHOLD);
    let left = load<u32>(rec, TV_TIES);
    let equal: u32;
    const cut = blockCut(threshold, left);
    if (xd == DTYPE_BF16 && bd == DTYPE_BF16) equal = stageCut(x, DTYPE_BF16, b, DTYPE_BF16, count, cut, threshold, p, rescaled, r, w);
    else if (xd == DTYPE_F32 && bd == DTYPE_F32) equal = stageCut(x, DTYPE_F32, b, DTYPE_F32, count, cut, threshold, p, rescaled, r, w);
    else equal = stageCut(x, xd, b, bd, count, cut, threshold, p, rescaled, r, w);
    if (left != 0) left = equal <= left ? left - equal : stageTies(x, xd, b, bd, count, threshold, left, p, rescaled, r, w);
    store<u32>(rec, left, TV_TIES);
  } else if (mode == TRIM_RANDOM) {
    const threshold = load<u32>(rec, TV_THRESHOLD), key = load<u32>(rec, TV_KEY), high = hi + 0x9e3779b9;
    if (xd == DTYPE_BF16 && bd == DTYPE_BF16) stageRandom(x, DTYPE_BF16, b, DTYPE_BF16, count, lo, threshold, key, high, p, rescaled, r, w);
    else if (xd == DTYPE_F32 && bd == DTYPE_F32) stageRandom(x, DTYPE_F32, b, DTYPE_F32, count, lo, threshold, key, high, p, rescaled, r, w);
    else stageRandom(x, xd, b, bd, count, lo, threshold, key, high, p, rescaled, r, w);
  } else if (mode == TRIM_NONE) {
    // A cut that keeps everything: |tau| > -1.
    if (xd == DTYPE_BF16 && bd == DTYPE_BF16) stageCut(x, DTYPE_BF16, b, DTYPE_BF16, count, -1, 0, p, rescaled, r, w);
    else if (xd == DTYPE_F32 && bd == DTYPE_F32) stageCut(x, DTYPE_F32, b, DTYPE_F32, count, -1, 0, p, rescaled, r, w);
    else stageCut(x, xd, b, bd, count, -1, 0, p, rescaled, r, w);
  } else if (mode == TRIM_BAND) {
    stageBand(rec, x, xd, b, bd, count, p, rescaled, r, w);
  } else if (mode == TRIM_BITS) {
    const bits = <usize>load<u32>(rec, TV_MASK);
    let j = 0;
    if ((local & 7) == 0) {
      if (xd == DTYPE_BF16 && bd == DTYPE_BF16) j = stageBits(x, DTYPE_BF16, b, DTYPE_BF16, count, bits + (<usize>local >>> 3), p, rescaled, vr, vw);
      else if (xd == DTYPE_F32 && bd == DTYPE_F32) j = stageBits(x, DTYPE_F32, b, DTYPE_F32, count, bits + (<usize>local >>> 3), p, rescaled, vr, vw);
    }
    const ones = laneConstant(ONES);
    for (; j < quads; j += 4) {
      const at = local + j; // a multiple of 4: its four bits are one nibble of a byte
      const nibble = (<u32>load<u8>(bits + (<usize>at >>> 3)) >>> (<u32>at & 4)) & 0xf;
      const keep = i32x4.ne(v128.and(i32x4.splat(nibble), i32x4(1, 2, 4, 8)), i32x4.splat(0));
      v128.store(p + (<usize>j << 2), scaleLanes(maskLanes(f32x4.sub(loadLanes(x, xd, j), loadLanes(b, bd, j)), keep, ones), rescaled, vr, vw));
    }
    for (; j < count; j++) {
      const at = local + j;
      const tau = loadOne(x, xd, j) - loadOne(b, bd, j);
      const keep = ((<u32>load<u8>(bits + (<usize>at >>> 3)) >>> (<u32>at & 7)) & 1) != 0;
      store<f32>(p + (<usize>j << 2), scaleOne(maskOne(tau, keep), rescaled, r, w));
    }
  } else {
    const zero = scaleOne(0, rescaled, r, w); // TRIM_ZERO: zeros whatever tau is (della at density <= 0: mergekit's zeros_like)
    for (let j = 0; j < count; j++) store<f32>(p + (<usize>j << 2), zero);
  }
}

/**
 * The keep-bits loop for BF16 and F32 inputs (dtypes constant at the calls), eight elements per
 * iteration from one byte of bits (`bits` is the byte of the block's first element): the general loop's
 * operations without its per-load dtype tests. Returns how many elements it did (a multiple of 8).
 */
// @ts-ignore: decorator
@inline
function stageBits(x: usize, xd: i32, b: usize, bd: i32, count: i32, bits: usize, p: usize, rescaled: bool, vr: v128, vw: v128): i32 {
  const low = laneConstant(BITS_LOW), high = laneConstant(BITS_HIGH), ones = laneConstant(ONES);
  let j = 0;
  for (; j + 8 <= count; j += 8) {
    const byte = i32x4.splat(load<u8>(bits + (<usize>j >>> 3)));
    const keep0 = i32x4.ne(v128.and(byte, low), i32x4.splat(0)), keep1 = i32x4.ne(v128.and(byte, high), i32x4.splat(0));
    const tau0 = f32x4.sub(loadLanes(x, xd, j), loadLanes(b, bd, j)), tau1 = f32x4.sub(loadLanes(x, xd, j + 4), loadLanes(b, bd, j + 4));
    v128.store(p + (<usize>j << 2), scaleLanes(maskLanes(tau0, keep0, ones), rescaled, vr, vw));
    v128.store(p + (<usize>j << 2), scaleLanes(maskLanes(tau1, keep1, ones), rescaled, vr, vw), 16);
  }
  return j;
}

/**
 * The magnitude loop (see blockCut): keeps |tau| > cut (signed) and returns how many elements equal the
 * threshold (what the block takes from the budget when cut = threshold - 1, if the budget covers them).
 * Eight elements per iteration; the dtypes are constants at the calls for BF16 and F32 inputs, so their
 * loops carry no branch on them (and no other dtype's constants in registers).
 */
// @ts-ignore: decorator
@inline
function stageCut(x: usize, xd: i32, b: usize, bd: i32, count: i32, cut: i32, threshold: u32, p: usize, rescaled: bool, r: f32, w: f32): u32 {
  const vcut = i32x4.splat(cut), vthreshold = i32x4.splat(threshold), vr = f32x4.splat(r), vw = f32x4.splat(w);
  const magnitude = i32x4.splat(0x7fffffff), ones = laneConstant(ONES);
  let equal0 = i32x4.splat(0), equal1 = i32x4.splat(0);
  let j = 0;
  for (; j + 8 <= count; j += 8) {
    const tau0 = f32x4.sub(loadLanes(x, xd, j), loadLanes(b, bd, j)), tau1 = f32x4.sub(loadLanes(x, xd, j + 4), loadLanes(b, bd, j + 4));
    const m0 = v128.and(tau0, magnitude), m1 = v128.and(tau1, magnitude);
    equal0 = i32x4.sub(equal0, i32x4.eq(m0, vthreshold));
    equal1 = i32x4.sub(equal1, i32x4.eq(m1, vthreshold));
    v128.store(p + (<usize>j << 2), scaleLanes(maskLanes(tau0, i32x4.gt_s(m0, vcut), ones), rescaled, vr, vw));
    v128.store(p + (<usize>j << 2), scaleLanes(maskLanes(tau1, i32x4.gt_s(m1, vcut), ones), rescaled, vr, vw), 16);
  }
  let tail: u32 = 0;
  for (; j < count; j++) {
    const tau = loadOne(x, xd, j) - loadOne(b, bd, j);
    const m = reinterpret<u32>(tau) & 0x7fffffff;
    if (m == threshold) tail++;
    store<f32>(p + (<usize>j << 2), scaleOne(maskOne(tau, <i32>m > cut), rescaled, r, w));
  }
  return laneSum(i32x4.add(equal0, equal1)) + tail;
}

/**
 * The magnitude loop of the block where the budget (`left`, less than the block's elements equal to the
 * threshold) runs out: keeps those above the threshold and the first `left` equal ones. Returns the
 * budget left (0).
 */
function stageTies(x: usize, xd: i32, b: usize, bd: i32, count: i32, threshold: u32, left: u32, p: usize, rescaled: bool, r: f32, w: f32): u32 {
  const vabove = i32x4.splat(<i32>min<u32>(threshold, 0x7fffffff)), vthreshold = i32x4.splat(threshold);
  const vr = f32x4.splat(r), vw = f32x4.splat(w), ones = laneConstant(ONES);
  let j = 0;
  for (; j + 4 <= count; j += 4) {
    const tau = f32x4.sub(loadLanes(x, xd, j), loadLanes(b, bd, j));
    const magnitude = v128.and(tau, i32x4.splat(0x7fffffff));
    const ties = keptTies(i32x4.eq(magnitude, vthreshold), left);
    left -= laneCount(ties);
    v128.store(p + (<usize>j << 2), scaleLanes(maskLanes(tau, v128.or(i32x4.gt_s(magnitude, vabove), ties), ones), rescaled, vr, vw));
  }
  for (; j < count; j++) {
    const tau = loadOne(x, xd, j) - loadOne(b, bd, j);
    const magnitude = reinterpret<u32>(tau) & 0x7fffffff;
    const keep = aboveOrKeptTie(magnitude, threshold, left);
    if (keep && magnitude == threshold) left--;
    store<f32>(p + (<usize>j << 2), scaleOne(maskOne(tau, keep), rescaled, r, w));
  }
  return left;
}

/**
 * The lanes of four consecutive elements from `lo` that DARE keeps: u(j) = mix(mix(lo_j ^ key) ^ high) <
 * threshold. x64 has no unsigned lane compare (V8 emulates one with three or four instructions): flipping
 * the sign bits of both sides (`signs` is SIGNS, `flipped` the threshold ^ SIGN) turns it into a signed one.
 */
// @ts-ignore: decorator
@inline
function randomLanes(lo: u32, lanes: v128, m1: v128, m2: v128, signs: v128, vkey: v128, vhigh: v128, flipped: v128): v128 {
  const u = mixLanes(v128.xor(mixLanes(v128.xor(i32x4.add(i32x4.splat(lo), lanes), vkey), m1, m2), vhigh), m1, m2);
  return i32x4.lt_s(v128.xor(u, signs), flipped);
}

/** The random (DARE) loop, eight elements per iteration (dtypes as for stageCut). */
// @ts-ignore: decorator
@inline
function stageRandom(x: usize, xd: i32, b: usize, bd: i32, count: i32, lo: u32, threshold: u32, key: u32, high: u32, p: usize, rescaled: bool, r: f32, w: f32): void {
  const flipped = i32x4.splat(threshold ^ SIGN), vkey = i32x4.splat(key), vhigh = i32x4.splat(high), vr = f32x4.splat(r), vw = f32x4.splat(w);
  const lanes = laneConstant(LANES), m1 = laneConstant(MIX1), m2 = laneConstant(MIX2), signs = laneConstant(SIGNS), ones = laneConstant(ONES);
  let j = 0;
  for (; j + 8 <= count; j += 8) {
    const keep0 = randomLanes(lo + <u32>j, lanes, m1, m2, signs, vkey, vhigh, flipped);
    const keep1 = randomLanes(lo + <u32>j + 4, lanes, m1, m2, signs, vkey, vhigh, flipped);
    const tau0 = f32x4.sub(loadLanes(x, xd, j), loadLanes(b, bd, j)), tau1 = f32x4.sub(loadLanes(x, xd, j + 4), loadLanes(b, bd, j + 4));
    v128.store(p + (<usize>j << 2), scaleLanes(maskLanes(tau0, keep0, ones), rescaled, vr, vw));
    v128.store(p + (<usize>j << 2), scaleLanes(maskLanes(tau1, keep1, ones), rescaled, vr, vw), 16);
  }
  for (; j < count; j++) {
    const tau = loadOne(x, xd, j) - loadOne(b, bd, j);
    const keep = mix(mix((lo + <u32>j) ^ key) ^ high) < threshold;
    store<f32>(p + (<usize>j << 2), scaleOne(maskOne(tau, keep), rescaled, r, w));
  }
}

/**
 * The band (breadcrumbs) loop: inside the inner cut (TV_THRESHOLD, TV_TIES) and not inside the outliers'
 * (TV_THRESHOLD2, TV_TIES2), staged as blockCut says, and again element by element when a budget runs
 * out inside the block.
 */
function stageBand(rec: usize, x: usize, xd: i32, b: usize, bd: i32, count: i32, p: usize, rescaled: bool, r: f32, w: f32): void {
  const threshold = load<u32>(rec, TV_THRESHOLD), threshold2 = load<u32>(rec, TV_THRESHOLD2);
  let left = load<u32>(rec, TV_TIES), left2 = load<u32>(rec, TV_TIES2);
  const vr = f32x4.splat(r), vw = f32x4.splat(w), ones = laneConstant(ONES);
  const vthreshold = i32x4.splat(threshold), vthreshold2 = i32x4.splat(threshold2);
  const cut = blockCut(threshold, left), cut2 = blockCut(threshold2, left2);
  const vcut = i32x4.splat(cut), vcut2 = i32x4.splat(cut2);
  let equal = i32x4.splat(0), equal2 = i32x4.splat(0);
  let j = 0;
  for (; j + 4 <= count; j += 4) {
    const tau = f32x4.sub(loadLanes(x, xd, j), loadLanes(b, bd, j));
    const magnitude = v128.and(tau, i32x4.splat(0x7fffffff));
    equal = i32x4.sub(equal, i32x4.eq(magnitude, vthreshold));
    equal2 = i32x4.sub(equal2, i32x4.eq(magnitude, vthreshold2));
    const keep = v128.andnot(i32x4.gt_s(magnitude, vcut), i32x4.gt_s(magnitude, vcut2));
    v128.store(p + (<usize>j << 2), scaleLanes(maskLanes(tau, keep, ones), rescaled, vr, vw));
  }
  let tail: u32 = 0, tail2: u32 = 0;
  for (; j < count; j++) {
    const tau = loadOne(x, xd, j) - loadOne(b, bd, j);
    const magnitude = reinterpret<u32>(tau) & 0x7fffffff;
    if (magnitude == threshold) tail++;
    if (magnitude == threshold2) tail2++;
    store<f32>(p + (<usize>j << 2), scaleOne(maskOne(tau, <i32>magnitude > cut && !(<i32>magnitude > cut2)), rescaled, r, w));
  }
  const used = laneSum(equal) + tail, used2 = laneSum(equal2) + tail2;
  if ((left == 0 || used <= left) && (left2 == 0 || used2 <= left2)) {
    if (left != 0) left -= used;
    if (left2 != 0) left2 -= used2;
  } else {
    const vabove = i32x4.splat(<i32>min<u32>(threshold, 0x7fffffff)), vabove2 = i32x4.splat(<i32>min<u32>(threshold2, 0x7fffffff));
    for (j = 0; j + 4 <= count; j += 4) {
      const tau = f32x4.sub(loadLanes(x, xd, j), loadLanes(b, bd, j));
      const magnitude = v128.and(tau, i32x4.splat(0x7fffffff));
      const ties = keptTies(i32x4.eq(magnitude, vthreshold), left), ties2 = keptTies(i32x4.eq(magnitude, vthreshold2), left2);
      left -= laneCount(ties);
      left2 -= laneCount(ties2);
      const inner = v128.or(i32x4.gt_s(magnitude, vabove), ties), outliers = v128.or(i32x4.gt_s(magnitude, vabove2), ties2);
      v128.store(p + (<usize>j << 2), scaleLanes(maskLanes(tau, v128.andnot(inner, outliers), ones), rescaled, vr, vw));
    }
    for (; j < count; j++) {
      const tau = loadOne(x, xd, j) - loadOne(b, bd, j);
      const magnitude = reinterpret<u32>(tau) & 0x7fffffff;
      const inner = aboveOrKeptTie(magnitude, threshold, left), outlier = aboveOrKeptTie(magnitude, threshold2, left2);
      if (inner && magnitude == threshold) left--;
      if (outlier && magnitude == threshold2) left2--;
      store<f32>(p + (<usize>j << 2), scaleOne(maskOne(tau, inner && !outlier), rescaled, r, w));
    }
  }
  store<u32>(rec, left, TV_TIES);
  store<u32>(rec, left2, TV_TIES2);
}

/**
 * stageBlock over float32 x and b (the interference diagnostics' view of a tile): the merge's own
 * staging, so "trimmed" and "kept" mean what the merge does.
 */
export function stageTask(rec: usize, x: usize, b: usize, count: i32, lo: u32, hi: u32, local: i32, p: usize, unweighted: bool): void {
  stageBlock(rec, x, DTYPE_F32, b, DTYPE_F32, count, lo, hi, local, p, unweighted);
}

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
    let j = bf16TaskArithmetic(inputs, nInputs, count, normalize, divisor, lambda, dst, outDtype);
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
 * The common case of plainTaskArithmetic's vector loop: one to three task models and the base, all
 * stored as BF16. Returns how many elements it did (a multiple of 8; 0 when the case does not apply).
 * One loop per input count, output dtype and division, as blend.ts's bf16Sum and for the same reason.
 */
function bf16TaskArithmetic(inputs: usize, nInputs: i32, count: i32, normalize: bool, divisor: f32, lambda: f32, dst: usize, outDtype: i32): i32 {
  if (nInputs < 2 || nInputs > 4) return 0;
  for (let i = 0; i < nInputs; i++) if (load<i32>(inputs + (<usize>i << 5), 4) != DTYPE_BF16) return 0;
  const divide = normalize && !exactReciprocal(divisor);
  const vscale = f32x4.splat(divide ? divisor : normalize ? 1 / divisor : 1), vlambda = f32x4.splat(lambda);
  if (nInputs == 2) return bf16TaskArithmetic1(inputs, count, divide, vscale, vlambda, dst, outDtype);
  if (nInputs == 3) return bf16TaskArithmetic2(inputs, count, divide, vscale, vlambda, dst, outDtype);
  return bf16TaskArithmetic3(inputs, count, divide, vscale, vlambda, dst, outDtype);
}

function bf16TaskArithmetic1(inputs: usize, count: i32, divide: bool, vscale: v128, vlambda: v128, dst: usize, outDtype: i32): i32 {
  return bf16TaskArithmeticDivided(2, inputs, count, divide, vscale, vlambda, dst, outDtype);
}
function bf16TaskArithmetic2(inputs: usize, count: i32, divide: bool, vscale: v128, vlambda: v128, dst: usize, outDtype: i32): i32 {
  return bf16TaskArithmeticDivided(3, inputs, count, divide, vscale, vlambda, dst, outDtype);
}
function bf16TaskArithmetic3(inputs: usize, count: i32, divide: bool, vscale: v128, vlambda: v128, dst: usize, outDtype: i32): i32 {
  return bf16TaskArithmeticDivided(4, inputs, count, divide, vscale, vlambda, dst, outDtype);
}

// @ts-ignore: decorator
@inline
function bf16TaskArithmeticDivided(nInputs: i32, inputs: usize, count: i32, divide: bool, vscale: v128, vlambda: v128, dst: usize, outDtype: i32): i32 {
  if (divide) return bf16TaskArithmeticStored(nInputs, true, inputs, count, vscale, vlambda, dst, outDtype);
  return bf16TaskArithmeticStored(nInputs, false, inputs, count, vscale, vlambda, dst, outDtype);
}

// @ts-ignore: decorator
@inline
function bf16TaskArithmeticStored(nInputs: i32, divide: bool, inputs: usize, count: i32, vscale: v128, vlambda: v128, dst: usize, outDtype: i32): i32 {
  if (outDtype == DTYPE_BF16) return bf16TaskArithmeticLoop(nInputs, divide, inputs, count, vscale, vlambda, dst, DTYPE_BF16);
  if (outDtype == DTYPE_F32) return bf16TaskArithmeticLoop(nInputs, divide, inputs, count, vscale, vlambda, dst, DTYPE_F32);
  return bf16TaskArithmeticLoop(nInputs, divide, inputs, count, vscale, vlambda, dst, outDtype);
}

/**
 * The loop, with nInputs, divide and (for BF16 and F32) outDtype constant: pointers and weights in
 * locals, eight values per 16-byte load, the general loop's float32 operations in its order. Dividing
 * by the weight sum is multiplying by `vscale` unless `divide` (see blend.ts's bf16SumLoop), and lambda
 * multiplies always: by 1 it changes no bits.
 */
// @ts-ignore: decorator
@inline
function bf16TaskArithmeticLoop(nInputs: i32, divide: bool, inputs: usize, count: i32, vscale: v128, vlambda: v128, dst: usize, outDtype: i32): i32 {
  const pb = <usize>load<u32>(inputs), p1 = <usize>load<u32>(inputs + 32);
  const p2 = nInputs > 2 ? <usize>load<u32>(inputs + 64) : p1, p3 = nInputs > 3 ? <usize>load<u32>(inputs + 96) : p1;
  const w1 = v128.load(inputs + 32, 16);
  const w2 = nInputs > 2 ? v128.load(inputs + 64, 16) : w1, w3 = nInputs > 3 ? v128.load(inputs + 96, 16) : w1;
  let j = 0;
  for (; j + 8 <= count; j += 8) {
    const at = <usize>j << 1;
    const hb = v128.load(pb + at), h1 = v128.load(p1 + at);
    const b0 = bf16Low(hb), b1 = bf16High(hb);
    let m0 = f32x4.mul(f32x4.sub(bf16Low(h1), b0), w1), m1 = f32x4.mul(f32x4.sub(bf16High(h1), b1), w1);
    if (nInputs > 2) {
      const h2 = v128.load(p2 + at);
      m0 = f32x4.add(m0, f32x4.mul(f32x4.sub(bf16Low(h2), b0), w2));
      m1 = f32x4.add(m1, f32x4.mul(f32x4.sub(bf16High(h2), b1), w2));
    }
    if (nInputs > 3) {
      const h3 = v128.load(p3 + at);
      m0 = f32x4.add(m0, f32x4.mul(f32x4.sub(bf16Low(h3), b0), w3));
      m1 = f32x4.add(m1, f32x4.mul(f32x4.sub(bf16High(h3), b1), w3));
    }
    if (divide) { m0 = f32x4.div(m0, vscale); m1 = f32x4.div(m1, vscale); }
    else { m0 = f32x4.mul(m0, vscale); m1 = f32x4.mul(m1, vscale); }
    storeEight(dst, outDtype, j, f32x4.add(b0, f32x4.mul(m0, vlambda)), f32x4.add(b1, f32x4.mul(m1, vlambda)));
  }
  return j;
}

/** Elements per sub-block of the staged merge: every task's p for a sub-block fits in L1 together. */
const SUB = 512;

/**
 * The merged value of one element from its staged v_i (at p + i * stride) and its base value b:
 * b + lambda * mixed, where mixed is the sum of the v_i (plain, divided by `divisor` when normalized),
 * or with consensus the sum of the p_i times 1 where their sign agrees with the elected one (sign of
 * sum_i v_i, 0 counting as +, or of the count of signs) and 0 elsewhere, divided by the agreeing
 * weights' sum when normalized. With
 * `unweighted`, v_i = q_i and p_i = q_i * w_i. The order of the float32 operations is the SIMD loops'.
 */
// @ts-ignore: decorator
@inline
function mergeOne(
  inputs: usize, tasks: i32, p: usize, stride: usize, b: f32,
  consensus: bool, countVote: bool, unweighted: bool, normalize: bool, divisor: f32, lambda: f32,
): f32 {
  let mixed: f32 = 0;
  for (let i = 0; i < tasks; i++) {
    const v = load<f32>(p + <usize>i * stride);
    mixed = i == 0 ? v : mixed + v;
  }
  if (consensus) {
    let positive = mixed >= 0;
    if (countVote) {
      let votes = 0;
      for (let i = 0; i < tasks; i++) {
        const v = load<f32>(p + <usize>i * stride);
        votes += <i32>(v > 0) - <i32>(v < 0);
      }
      positive = votes >= 0;
    }
    let weights: f32 = 0;
    for (let i = 0; i < tasks; i++) {
      const v = load<f32>(p + <usize>i * stride);
      const agree = positive ? v > 0 : v < 0;
      const w = load<f32>(inputs + (<usize>(i + 1) << 5), 16);
      const term: f32 = maskOne(unweighted ? v * w : v, agree), weight: f32 = agree ? w : 0;
      if (i == 0) { mixed = term; weights = weight; } else { mixed += term; weights += weight; }
    }
    if (normalize) mixed /= weights == 0 ? <f32>1 : weights;
  } else if (normalize) {
    mixed /= divisor;
  }
  if (lambda != 1) mixed *= lambda;
  return b + mixed;
}

/**
 * mergeOne over the four lanes at byte offset o of the staged sub-block, for any flags and task count
 * (the general loop; the common TIES cases run sumVoteLanes).
 */
// @ts-ignore: decorator
@inline
function mergeLanes(
  inputs: usize, tasks: i32, p: usize, stride: usize, vb: v128,
  consensus: bool, countVote: bool, unweighted: bool, normalize: bool, vdivisor: v128, lambda: f32,
): v128 {
  const zero = f32x4.splat(0);
  let mixed = zero;
  for (let i = 0; i < tasks; i++) {
    const v = v128.load(p + <usize>i * stride);
    mixed = i == 0 ? v : f32x4.add(mixed, v);
  }
  if (consensus) {
    let positive = f32x4.ge(mixed, zero);
    if (countVote) {
      let votes = i32x4.splat(0);
      for (let i = 0; i < tasks; i++) {
        const v = v128.load(p + <usize>i * stride);
        votes = i32x4.add(i32x4.sub(votes, f32x4.gt(v, zero)), f32x4.lt(v, zero));
      }
      positive = i32x4.ge_s(votes, i32x4.splat(0));
    }
    let weights = zero;
    for (let i = 0; i < tasks; i++) {
      const v = v128.load(p + <usize>i * stride);
      const agree = v128.bitselect(f32x4.gt(v, zero), f32x4.lt(v, zero), positive);
      const w = v128.load(inputs + (<usize>(i + 1) << 5), 16);
      const term = maskLanes(unweighted ? f32x4.mul(v, w) : v, agree, laneConstant(ONES));
      if (i == 0) {
        mixed = term;
        weights = v128.and(w, agree);
      } else {
        mixed = f32x4.add(mixed, term);
        weights = f32x4.add(weights, v128.and(w, agree));
      }
    }
    if (normalize) mixed = f32x4.div(mixed, v128.bitselect(f32x4.splat(1), weights, f32x4.eq(weights, zero)));
  } else if (normalize) {
    mixed = f32x4.div(mixed, vdivisor);
  }
  if (lambda != 1) mixed = f32x4.mul(mixed, f32x4.splat(lambda));
  return f32x4.add(vb, mixed);
}

/**
 * TIES's usual consensus (the sign of the sum of the p_i, 2 to 4 task inputs: `tasks` and `normalize`
 * are constants at every call) over the four lanes at p: the same operations as mergeLanes with the
 * task loop unrolled. A p_i agrees with the elected sign when p_i * (-1 if the sign is -) > 0: flipping
 * the sign bit of p_i where - is elected turns "p_i < 0" into "> 0" (false for zeros and NaN alike).
 */
// @ts-ignore: decorator
@inline
function sumVoteLanes(
  tasks: i32, normalize: bool, p: usize, stride: usize, vb: v128,
  w0: v128, w1: v128, w2: v128, w3: v128, lambda: f32, vlambda: v128, signs: v128, ones: v128,
): v128 {
  const zero = f32x4.splat(0);
  const p0 = v128.load(p), p1 = v128.load(p + stride);
  const p2 = tasks > 2 ? v128.load(p + 2 * stride) : zero, p3 = tasks > 3 ? v128.load(p + 3 * stride) : zero;
  let sum = f32x4.add(p0, p1);
  if (tasks > 2) sum = f32x4.add(sum, p2);
  if (tasks > 3) sum = f32x4.add(sum, p3);
  const flip = v128.andnot(signs, f32x4.ge(sum, zero)); // the sign bit where - is elected
  const a0 = f32x4.gt(v128.xor(p0, flip), zero), a1 = f32x4.gt(v128.xor(p1, flip), zero);
  const a2 = tasks > 2 ? f32x4.gt(v128.xor(p2, flip), zero) : zero, a3 = tasks > 3 ? f32x4.gt(v128.xor(p3, flip), zero) : zero;
  let mixed = f32x4.add(maskLanes(p0, a0, ones), maskLanes(p1, a1, ones));
  if (tasks > 2) mixed = f32x4.add(mixed, maskLanes(p2, a2, ones));
  if (tasks > 3) mixed = f32x4.add(mixed, maskLanes(p3, a3, ones));
  if (normalize) {
    let weights = f32x4.add(v128.and(w0, a0), v128.and(w1, a1));
    if (tasks > 2) weights = f32x4.add(weights, v128.and(w2, a2));
    if (tasks > 3) weights = f32x4.add(weights, v128.and(w3, a3));
    mixed = f32x4.div(mixed, v128.bitselect(ones, weights, f32x4.eq(weights, zero)));
  }
  if (isNotOne(lambda)) mixed = f32x4.mul(mixed, vlambda);
  return f32x4.add(vb, mixed);
}

/**
 * One staged sub-block of `len` elements merged with sumVoteLanes, eight elements at a time, and
 * written to `out` (element 0 of the sub-block) in its dtype; the tail goes through mergeOne.
 */
// @ts-ignore: decorator
@inline
function sumVoteBlock(
  tasks: i32, normalize: bool, inputs: usize, p: usize, stride: usize, b: usize, bd: i32, len: i32, lambda: f32, out: usize, outDtype: i32,
): void {
  const w0 = v128.load(inputs + 32, 16), w1 = v128.load(inputs + 64, 16);
  const w2 = tasks > 2 ? v128.load(inputs + 96, 16) : f32x4.splat(0), w3 = tasks > 3 ? v128.load(inputs + 128, 16) : f32x4.splat(0);
  const vlambda = f32x4.splat(lambda), signs = laneConstant(SIGNS), ones = laneConstant(ONES);
  let j = 0;
  for (; j + 8 <= len; j += 8) {
    const o = <usize>j << 2;
    const lo = sumVoteLanes(tasks, normalize, p + o, stride, loadLanes(b, bd, j), w0, w1, w2, w3, lambda, vlambda, signs, ones);
    const hi = sumVoteLanes(tasks, normalize, p + o + 16, stride, loadLanes(b, bd, j + 4), w0, w1, w2, w3, lambda, vlambda, signs, ones);
    storeEight(out, outDtype, j, lo, hi);
  }
  for (; j < len; j++) {
    storeOne(out, outDtype, j, mergeOne(inputs, tasks, p + (<usize>j << 2), stride, loadOne(b, bd, j), true, false, false, normalize, 1, lambda));
  }
}

/** sumVoteBlock with the base and output both BF16, both F32, or anything else. */
// @ts-ignore: decorator
@inline
function sumVoteDtypes(tasks: i32, normalize: bool, inputs: usize, p: usize, stride: usize, b: usize, bd: i32, len: i32, lambda: f32, out: usize, outDtype: i32): void {
  if (bd == DTYPE_BF16 && outDtype == DTYPE_BF16) sumVoteBlock(tasks, normalize, inputs, p, stride, b, DTYPE_BF16, len, lambda, out, DTYPE_BF16);
  else if (bd == DTYPE_F32 && outDtype == DTYPE_F32) sumVoteBlock(tasks, normalize, inputs, p, stride, b, DTYPE_F32, len, lambda, out, DTYPE_F32);
  else sumVoteBlock(tasks, normalize, inputs, p, stride, b, bd, len, lambda, out, outDtype);
}

// One function per task count and normalization: the optimizer would merge loops that differ only in
// these constants back into one loop that tests them at run time.
function sumVote2(inputs: usize, p: usize, stride: usize, b: usize, bd: i32, len: i32, lambda: f32, out: usize, outDtype: i32): void {
  sumVoteDtypes(2, false, inputs, p, stride, b, bd, len, lambda, out, outDtype);
}
function sumVote3(inputs: usize, p: usize, stride: usize, b: usize, bd: i32, len: i32, lambda: f32, out: usize, outDtype: i32): void {
  sumVoteDtypes(3, false, inputs, p, stride, b, bd, len, lambda, out, outDtype);
}
function sumVote4(inputs: usize, p: usize, stride: usize, b: usize, bd: i32, len: i32, lambda: f32, out: usize, outDtype: i32): void {
  sumVoteDtypes(4, false, inputs, p, stride, b, bd, len, lambda, out, outDtype);
}
function sumVoteNormalized2(inputs: usize, p: usize, stride: usize, b: usize, bd: i32, len: i32, lambda: f32, out: usize, outDtype: i32): void {
  sumVoteDtypes(2, true, inputs, p, stride, b, bd, len, lambda, out, outDtype);
}
function sumVoteNormalized3(inputs: usize, p: usize, stride: usize, b: usize, bd: i32, len: i32, lambda: f32, out: usize, outDtype: i32): void {
  sumVoteDtypes(3, true, inputs, p, stride, b, bd, len, lambda, out, outDtype);
}
function sumVoteNormalized4(inputs: usize, p: usize, stride: usize, b: usize, bd: i32, len: i32, lambda: f32, out: usize, outDtype: i32): void {
  sumVoteDtypes(4, true, inputs, p, stride, b, bd, len, lambda, out, outDtype);
}

/** sumVoteBlock for 2, 3 or 4 task inputs, normalized or not. */
function sumVote(normalize: bool, inputs: usize, tasks: i32, p: usize, stride: usize, b: usize, bd: i32, len: i32, lambda: f32, out: usize, outDtype: i32): void {
  if (normalize) {
    if (tasks == 2) sumVoteNormalized2(inputs, p, stride, b, bd, len, lambda, out, outDtype);
    else if (tasks == 3) sumVoteNormalized3(inputs, p, stride, b, bd, len, lambda, out, outDtype);
    else sumVoteNormalized4(inputs, p, stride, b, bd, len, lambda, out, outDtype);
  } else {
    if (tasks == 2) sumVote2(inputs, p, stride, b, bd, len, lambda, out, outDtype);
    else if (tasks == 3) sumVote3(inputs, p, stride, b, bd, len, lambda, out, outDtype);
    else sumVote4(inputs, p, stride, b, bd, len, lambda, out, outDtype);
  }
}

/**
 * The merge: out = b + lambda * mixed over n elements of a chunk whose first flat element index is
 * (startHi << 32 | startLo). `table` holds nInputs TV_RECORDs, record 0 being the base model.
 * flags: TV_NORMALIZE divides by the (agreeing) weight sum, TV_CONSENSUS elects signs, TV_COUNT_VOTE
 * and TV_UNWEIGHTED_VOTE choose the vote (see mergeOne). `divisor` is the weight sum used without
 * consensus (already replaced by 1 when |sum| < 1e-8).
 *
 * Inputs are read in place (decoded only when the recipe's load dtype rounds them). Each sub-block's
 * task inputs are staged (stageBlock) into L1, then merged and written in the output's dtype.
 */
export function taskVectorMerge(
  table: usize, nInputs: i32, n: i32, startLo: u32, startHi: u32, quant: i32,
  flags: i32, divisor: f32, lambda: f32, out: usize, outDtype: i32,
): void {
  const start = (<u64>startHi << 32) | <u64>startLo;
  const outBytes = <usize>elementBytes(outDtype);
  const consensus = (flags & TV_CONSENSUS) != 0;
  const normalize = (flags & TV_NORMALIZE) != 0;
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
  const sumVoted = consensus && !countVote && !unweighted && tasks >= 2 && tasks <= 4;
  const inputs = slot(MAX_INPUTS + 1); // per input: pointer, dtype, weight splatted (32 bytes)
  const staged = slot(MAX_INPUTS + 2); // two slots: each task's v for a sub-block, `stride` bytes apart
  const sub = min(SUB, (TILE * 2 / max(tasks, 1)) & ~7);
  const stride = <usize>sub << 2;
  const acc = slot(MAX_INPUTS); // the general loop's float32 results, before encoding
  const vdivisor = f32x4.splat(divisor);
  for (let t = 0; t < n; t += TILE) {
    const count = min(TILE, n - t);
    readableInputs(table, TV_RECORD, TV_WEIGHT, nInputs, t, count, quant, inputs);
    const bp = <usize>load<u32>(inputs), bd = load<i32>(inputs, 4), bBytes = <usize>elementBytes(bd);
    for (let s = 0; s < count; s += sub) {
      const len = min(sub, count - s);
      const index = start + <u64>(t + s);
      for (let i = 1; i < nInputs; i++) {
        const at = inputs + (<usize>i << 5);
        const xd = load<i32>(at, 4);
        const x = <usize>load<u32>(at) + <usize>s * <usize>elementBytes(xd);
        stageBlock(table + <usize>i * TV_RECORD, x, xd, bp + <usize>s * bBytes, bd, len, <u32>index, <u32>(index >>> 32), t + s, staged + <usize>(i - 1) * stride, unweighted);
      }
      const b = bp + <usize>s * bBytes, dst = out + <usize>(t + s) * outBytes;
      if (sumVoted) {
        sumVote(normalize, inputs, tasks, staged, stride, b, bd, len, lambda, dst, outDtype);
        continue;
      }
      const results = outBytes == 4 ? dst : acc;
      let j = 0;
      for (; j + 4 <= len; j += 4) {
        const o = <usize>j << 2;
        v128.store(results + o, mergeLanes(inputs, tasks, staged + o, stride, loadLanes(b, bd, j), consensus, countVote, unweighted, normalize, vdivisor, lambda));
      }
      for (; j < len; j++) {
        store<f32>(results + (<usize>j << 2), mergeOne(inputs, tasks, staged + (<usize>j << 2), stride, loadOne(b, bd, j), consensus, countVote, unweighted, normalize, divisor, lambda));
      }
      if (outBytes != 4) encode(acc, outDtype, dst, len);
    }
  }
}

/**
 * The L1 norms rescaling needs, per tile and task input: sum |tau_i| and sum |masked tau_i| in float64,
 * written as 2 f64 per (tile, task input) at `partials` (tile-major). Uses the merge's own masks
 * (stageBlock, unweighted), so it consumes magnitude tie budgets the same way: give it a fresh table
 * (rescale 1). A TRIM_RANDOM record whose TV_MASK is set gets the keep bits it drew written there
 * (TRIM_BITS' layout, ceil(n / 8) bytes): the merge can then stage the chunk with TRIM_BITS instead.
 */
export function maskedL1(table: usize, nInputs: i32, n: i32, startLo: u32, startHi: u32, quant: i32, partials: usize): void {
  const start = (<u64>startHi << 32) | <u64>startLo;
  const tasks = nInputs - 1;
  const inputs = slot(MAX_INPUTS + 1), kept = slot(MAX_INPUTS + 2);
  let tile = 0;
  for (let t = 0; t < n; t += TILE) {
    const count = min(TILE, n - t);
    readableInputs(table, TV_RECORD, -1, nInputs, t, count, quant, inputs);
    const bp = <usize>load<u32>(inputs), bd = load<i32>(inputs, 4);
    for (let i = 1; i < nInputs; i++) {
      const at = inputs + (<usize>i << 5);
      const x = <usize>load<u32>(at), xd = load<i32>(at, 4);
      const index = start + <u64>t;
      const rec = table + <usize>i * TV_RECORD;
      const p = partials + (<usize>tile * <usize>tasks + <usize>(i - 1)) * 16;
      if (load<u32>(rec, TV_MODE) == TRIM_RANDOM && !isNotOne(load<f32>(rec, TV_RESCALE))) {
        // DARE: the keep lanes drawn in the same walk (staging the kept values and reading them back costs a
        // third more), and kept as bits at TV_MASK when it is set, for the merge to read instead of drawing.
        const threshold = load<u32>(rec, TV_THRESHOLD), key = load<u32>(rec, TV_KEY), high = <u32>(index >>> 32) + 0x9e3779b9;
        const mask = <usize>load<u32>(rec, TV_MASK), bits: usize = mask == 0 ? 0 : mask + (<usize>t >>> 3);
        if (xd == DTYPE_BF16 && bd == DTYPE_BF16) l1Block(x, DTYPE_BF16, bp, DTYPE_BF16, count, true, 0, <u32>index, threshold, key, high, bits, p);
        else if (xd == DTYPE_F32 && bd == DTYPE_F32) l1Block(x, DTYPE_F32, bp, DTYPE_F32, count, true, 0, <u32>index, threshold, key, high, bits, p);
        else l1Block(x, xd, bp, bd, count, true, 0, <u32>index, threshold, key, high, bits, p);
        continue;
      }
      stageBlock(rec, x, xd, bp, bd, count, <u32>index, <u32>(index >>> 32), t, kept, true);
      l1Block(x, xd, bp, bd, count, false, kept, 0, 0, 0, 0, 0, p);
    }
    tile++;
  }
}

/**
 * maskedL1's two sums over one block of a task input, written as 2 f64 at p: sum |tau| and sum |tau|
 * over the kept elements, four lanes into two float64 pairs each, then the tail one by one. With
 * `random` (a constant at every call) DARE's keep lanes are drawn here as stageRandom draws them (counter
 * lo + j, stream key, high word, threshold), and written as keep bits at `bits` (TRIM_BITS' layout from
 * the block's first element, which starts a byte) unless it is 0; otherwise the kept values were staged
 * at `kept`. Either way the same values in the same order, so the same bits.
 */
// @ts-ignore: decorator
@inline
function l1Block(x: usize, xd: i32, b: usize, bd: i32, count: i32, random: bool, kept: usize, lo: u32, threshold: u32, key: u32, high: u32, bits: usize, p: usize): void {
  const flipped = i32x4.splat(threshold ^ SIGN), vkey = i32x4.splat(key), vhigh = i32x4.splat(high);
  const lanes = laneConstant(LANES), m1c = laneConstant(MIX1), m2c = laneConstant(MIX2), signs = laneConstant(SIGNS);
  const magnitude = laneConstant(MAGNITUDES);
  let aLo = f64x2.splat(0), aHi = f64x2.splat(0), mLo = f64x2.splat(0), mHi = f64x2.splat(0);
  // The keep bits of the elements since the last whole byte (a nibble after an odd number of vectors).
  let pending: u32 = 0;
  let j = 0;
  // Eight elements per iteration, the two vectors' sums added in element order (the same sums, bit for
  // bit, as four at a time); their keep bits make one whole byte.
  for (; j + 8 <= count; j += 8) {
    const all0 = v128.and(f32x4.sub(loadLanes(x, xd, j), loadLanes(b, bd, j)), magnitude);
    const all1 = v128.and(f32x4.sub(loadLanes(x, xd, j + 4), loadLanes(b, bd, j + 4)), magnitude);
    let m0: v128, m1: v128;
    if (random) {
      const keep0 = randomLanes(lo + <u32>j, lanes, m1c, m2c, signs, vkey, vhigh, flipped);
      const keep1 = randomLanes(lo + <u32>j + 4, lanes, m1c, m2c, signs, vkey, vhigh, flipped);
      m0 = v128.and(all0, keep0);
      m1 = v128.and(all1, keep1);
      if (bits != 0) store<u8>(bits + (<usize>j >>> 3), <u32>i32x4.bitmask(keep0) | (<u32>i32x4.bitmask(keep1) << 4));
    } else {
      m0 = v128.and(v128.load(kept + (<usize>j << 2)), magnitude);
      m1 = v128.and(v128.load(kept + (<usize>j << 2), 16), magnitude);
    }
    aLo = f64x2.add(aLo, f64x2.promote_low_f32x4(all0));
    aHi = f64x2.add(aHi, promoteHigh(all0));
    mLo = f64x2.add(mLo, f64x2.promote_low_f32x4(m0));
    mHi = f64x2.add(mHi, promoteHigh(m0));
    aLo = f64x2.add(aLo, f64x2.promote_low_f32x4(all1));
    aHi = f64x2.add(aHi, promoteHigh(all1));
    mLo = f64x2.add(mLo, f64x2.promote_low_f32x4(m1));
    mHi = f64x2.add(mHi, promoteHigh(m1));
  }
  for (; j + 4 <= count; j += 4) {
    const all = v128.and(f32x4.sub(loadLanes(x, xd, j), loadLanes(b, bd, j)), magnitude);
    let m: v128;
    if (random) {
      const keep = randomLanes(lo + <u32>j, lanes, m1c, m2c, signs, vkey, vhigh, flipped);
      m = v128.and(all, keep);
      if (bits != 0) {
        pending |= <u32>i32x4.bitmask(keep) << (<u32>j & 4);
        if ((j & 4) != 0) { store<u8>(bits + (<usize>j >>> 3), pending); pending = 0; }
      }
    } else {
      m = v128.and(v128.load(kept + (<usize>j << 2)), magnitude);
    }
    aLo = f64x2.add(aLo, f64x2.promote_low_f32x4(all));
    aHi = f64x2.add(aHi, promoteHigh(all));
    mLo = f64x2.add(mLo, f64x2.promote_low_f32x4(m));
    mHi = f64x2.add(mHi, promoteHigh(m));
  }
  let sumAll = sumLanes(aLo, aHi), sumKept = sumLanes(mLo, mHi);
  for (; j < count; j++) {
    const tau = loadOne(x, xd, j) - loadOne(b, bd, j);
    sumAll += <f64>abs<f32>(tau);
    if (random) {
      const keep = mix(mix((lo + <u32>j) ^ key) ^ high) < threshold;
      sumKept += <f64>abs<f32>(keep ? tau : 0);
      if (keep) pending |= <u32>1 << (<u32>j & 7); // the tail (under 4 elements) ends in the byte it starts in
    } else {
      sumKept += <f64>abs<f32>(load<f32>(kept + (<usize>j << 2)));
    }
  }
  if (random && bits != 0 && (count & 7) != 0) store<u8>(bits + (<usize>(count - 1) >>> 3), pending);
  store<f64>(p, sumAll);
  store<f64>(p, sumKept, 8);
}
