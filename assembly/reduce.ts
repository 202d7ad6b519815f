// Whole-tensor reductions, accumulated in float64 one tile at a time.
//
// Each tile's sum is written out separately and the caller adds the tile sums in order. Chunks start on
// tile boundaries, so a tensor's tiles are the same however it is chunked and whichever worker runs a
// chunk: the totals are bit-identical for any chunk size or worker count. Within a tile the four lanes
// accumulate independently and are combined in a fixed order.

import { DTYPE_BF16, DTYPE_F16, DTYPE_F32, DTYPE_F64, TILE } from "./layout";
import { tileOf } from "./tile";

/** (lane0 + lane1) + (lane2 + lane3) of two f64x2 accumulators holding lanes (0,1) and (2,3). */
// @ts-ignore: decorator
@inline
export function sumLanes(lo: v128, hi: v128): f64 {
  return (f64x2.extract_lane(lo, 0) + f64x2.extract_lane(lo, 1)) + (f64x2.extract_lane(hi, 0) + f64x2.extract_lane(hi, 1));
}

/** The upper two f32 lanes of v, widened to f64x2. */
// @ts-ignore: decorator
@inline
export function promoteHigh(v: v128): v128 {
  return f64x2.promote_low_f32x4(i8x16.shuffle(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
}

/**
 * SLERP's statistics of two tensors: per tile, sum v0^2, sum v1^2 and sum v0*v1 in float64 (a product
 * of two float32 values is exact in float64). Writes 3 f64 per tile at `partials`.
 */
export function slerpStats(x0: usize, d0: i32, x1: usize, d1: i32, n: i32, quant: i32, partials: usize): void {
  let tile = 0;
  for (let t = 0; t < n; t += TILE) {
    const count = min(TILE, n - t);
    const a = tileOf(x0, d0, t, count, quant, 0);
    const b = tileOf(x1, d1, t, count, quant, 1);
    let aaLo = f64x2.splat(0), aaHi = f64x2.splat(0);
    let bbLo = f64x2.splat(0), bbHi = f64x2.splat(0);
    let abLo = f64x2.splat(0), abHi = f64x2.splat(0);
    let j = 0;
    for (; j + 4 <= count; j += 4) {
      const o = <usize>j << 2;
      const va = v128.load(a + o), vb = v128.load(b + o);
      const aLo = f64x2.promote_low_f32x4(va), aHi = promoteHigh(va);
      const bLo = f64x2.promote_low_f32x4(vb), bHi = promoteHigh(vb);
      aaLo = f64x2.add(aaLo, f64x2.mul(aLo, aLo));
      aaHi = f64x2.add(aaHi, f64x2.mul(aHi, aHi));
      bbLo = f64x2.add(bbLo, f64x2.mul(bLo, bLo));
      bbHi = f64x2.add(bbHi, f64x2.mul(bHi, bHi));
      abLo = f64x2.add(abLo, f64x2.mul(aLo, bLo));
      abHi = f64x2.add(abHi, f64x2.mul(aHi, bHi));
    }
    let aa = sumLanes(aaLo, aaHi), bb = sumLanes(bbLo, bbHi), ab = sumLanes(abLo, abHi);
    for (; j < count; j++) {
      const o = <usize>j << 2;
      const va = <f64>load<f32>(a + o), vb = <f64>load<f32>(b + o);
      aa += va * va;
      bb += vb * vb;
      ab += va * vb;
    }
    const p = partials + <usize>tile * 24;
    store<f64>(p, aa);
    store<f64>(p, bb, 8);
    store<f64>(p, ab, 16);
    tile++;
  }
}

/**
 * How many of the n elements at `ptr` (stored as `dtype`: F32, F16, BF16 or F64; any other code counts
 * nothing) are NaN or infinite: those whose exponent bits are all ones. A merged chunk is scanned once
 * before it is written, so that values carried from an input's own NaN or infinity are not written
 * silently. Lane counters subtract the compare masks (-1 per match); an i16 counter would wrap, so the
 * 16-bit formats widen each mask pairwise into the i32 counter.
 */
export function countNonFinite(ptr: usize, dtype: i32, n: i32): i32 {
  let count = 0;
  let j = 0;
  if (dtype == DTYPE_F32) {
    const exponent = i32x4.splat(0x7f800000);
    let lanes = i32x4.splat(0);
    for (; j + 4 <= n; j += 4) lanes = i32x4.sub(lanes, i32x4.eq(v128.and(v128.load(ptr + (<usize>j << 2)), exponent), exponent));
    count = laneTotal(lanes);
    for (; j < n; j++) if ((load<u32>(ptr + (<usize>j << 2)) & 0x7f800000) == 0x7f800000) count++;
  } else if (dtype == DTYPE_BF16 || dtype == DTYPE_F16) {
    const bits: u16 = dtype == DTYPE_BF16 ? 0x7f80 : 0x7c00;
    const exponent = i16x8.splat(bits);
    let lanes = i32x4.splat(0);
    for (; j + 8 <= n; j += 8) lanes = i32x4.sub(lanes, i32x4.extadd_pairwise_i16x8_s(i16x8.eq(v128.and(v128.load(ptr + (<usize>j << 1)), exponent), exponent)));
    count = laneTotal(lanes);
    for (; j < n; j++) if ((load<u16>(ptr + (<usize>j << 1)) & bits) == bits) count++;
  } else if (dtype == DTYPE_F64) {
    for (; j < n; j++) if ((load<u64>(ptr + (<usize>j << 3)) & 0x7ff0000000000000) == 0x7ff0000000000000) count++;
  }
  return count;
}

// @ts-ignore: decorator
@inline
function laneTotal(lanes: v128): i32 {
  return i32x4.extract_lane(lanes, 0) + i32x4.extract_lane(lanes, 1) + i32x4.extract_lane(lanes, 2) + i32x4.extract_lane(lanes, 3);
}
