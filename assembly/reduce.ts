// Whole-tensor reductions, accumulated in float64 one tile at a time.
//
// Each tile's sum is written out separately and the caller adds the tile sums in order. Chunks start on
// tile boundaries, so a tensor's tiles are the same however it is chunked and whichever worker runs a
// chunk: the totals are bit-identical for any chunk size or worker count. Within a tile the four lanes
// accumulate independently and are combined in a fixed order.

import { TILE } from "./layout";
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
