// RAM (Reinforced Agent Merging) and RAM+ tensor-local: an entry of a task vector is active when
// |tau_i| > epsilon (a float32 compare). Where exactly one model is active its change is taken whole
// (times lambda_i for ramplus_tl); where several are, each active change is divided by their count;
// the terms are summed in model order and added to the base, as mergekit's ram.py does in float32.
// `table` is a task-vector operand table (TV_RECORD; record 0 the base), TV_WEIGHT holding lambda_i.

import { elementBytes, encode } from "./convert";
import { MAX_INPUTS, TILE, TV_RECORD, TV_WEIGHT } from "./layout";
import { inputTiles, slot } from "./tile";

/** Active lanes (all ones) and the count of active models per lane, for 4 elements at byte offset o. */
// @ts-ignore: decorator
@inline
function activeCount(ptrs: usize, tasks: i32, o: usize, veps: v128): v128 {
  const vb = v128.load(<usize>load<u32>(ptrs) + o);
  let c = i32x4.splat(0);
  for (let i = 0; i < tasks; i++) {
    const tau = f32x4.sub(v128.load(<usize>load<u32>(ptrs + (<usize>(i + 1) << 2)) + o), vb);
    c = i32x4.sub(c, f32x4.gt(f32x4.abs(tau), veps));
  }
  return c;
}

/**
 * ramplus_tl's counts: per tile and task input, the positions where it is active and shared (count > 1)
 * and where it is active alone, as 2 f64 per (tile, task) at `partials` (tile-major).
 */
export function ramCounts(table: usize, nInputs: i32, n: i32, quant: i32, epsilon: f32, partials: usize): void {
  const tasks = nInputs - 1;
  const ptrs = slot(MAX_INPUTS + 2);
  const veps = f32x4.splat(epsilon), one = i32x4.splat(1);
  let tile = 0;
  for (let t = 0; t < n; t += TILE) {
    const count = min(TILE, n - t);
    inputTiles(table, TV_RECORD, nInputs, t, count, quant, ptrs);
    const b = <usize>load<u32>(ptrs);
    for (let i = 0; i < tasks; i++) {
      const x = <usize>load<u32>(ptrs + (<usize>(i + 1) << 2));
      let shared = i32x4.splat(0), alone = i32x4.splat(0);
      let j = 0;
      for (; j + 4 <= count; j += 4) {
        const o = <usize>j << 2;
        const c = activeCount(ptrs, tasks, o, veps);
        const active = f32x4.gt(f32x4.abs(f32x4.sub(v128.load(x + o), v128.load(b + o))), veps);
        shared = i32x4.sub(shared, v128.and(active, i32x4.gt_s(c, one)));
        alone = i32x4.sub(alone, v128.and(active, i32x4.eq(c, one)));
      }
      let s = i32x4.extract_lane(shared, 0) + i32x4.extract_lane(shared, 1) + i32x4.extract_lane(shared, 2) + i32x4.extract_lane(shared, 3);
      let a = i32x4.extract_lane(alone, 0) + i32x4.extract_lane(alone, 1) + i32x4.extract_lane(alone, 2) + i32x4.extract_lane(alone, 3);
      for (; j < count; j++) {
        const o = <usize>j << 2;
        const vb = load<f32>(b + o);
        let c = 0;
        for (let k = 0; k < tasks; k++) c += <i32>(abs<f32>(load<f32>(<usize>load<u32>(ptrs + (<usize>(k + 1) << 2)) + o) - vb) > epsilon);
        if (abs<f32>(load<f32>(x + o) - vb) > epsilon) {
          if (c > 1) s++;
          else a++;
        }
      }
      const p = partials + (<usize>tile * <usize>tasks + <usize>i) * 16;
      store<f64>(p, <f64>s);
      store<f64>(p, <f64>a, 8);
    }
    tile++;
  }
}

/** out = b + sum_i term_i over n elements; see the file comment. */
export function ramMerge(table: usize, nInputs: i32, n: i32, quant: i32, epsilon: f32, out: usize, outDtype: i32): void {
  const tasks = nInputs - 1;
  const outBytes = <usize>elementBytes(outDtype);
  const ptrs = slot(MAX_INPUTS + 2);
  const lambdas = ptrs + (<usize>MAX_INPUTS << 2) + 16; // each task's lambda in all four lanes
  for (let i = 0; i < tasks; i++) v128.store(lambdas + (<usize>i << 4), f32x4.splat(load<f32>(table + <usize>(i + 1) * TV_RECORD, TV_WEIGHT)));
  const veps = f32x4.splat(epsilon), one = i32x4.splat(1), zero = f32x4.splat(0);
  for (let t = 0; t < n; t += TILE) {
    const count = min(TILE, n - t);
    inputTiles(table, TV_RECORD, nInputs, t, count, quant, ptrs);
    const b = <usize>load<u32>(ptrs);
    const acc = outBytes == 4 ? out + (<usize>t << 2) : slot(MAX_INPUTS);
    let j = 0;
    for (; j + 4 <= count; j += 4) {
      const o = <usize>j << 2;
      const c = activeCount(ptrs, tasks, o, veps);
      const unique = i32x4.eq(c, one), vc = f32x4.convert_i32x4_s(c);
      const vb = v128.load(b + o);
      let sum = zero, nonFinite = zero;
      for (let i = 0; i < tasks; i++) {
        const tau = f32x4.sub(v128.load(<usize>load<u32>(ptrs + (<usize>(i + 1) << 2)) + o), vb);
        const active = f32x4.gt(f32x4.abs(tau), veps);
        // Lanes with c = 0 divide by 0 but are masked out (no model is active there).
        const term = v128.and(v128.bitselect(f32x4.mul(tau, v128.load(lambdas + (<usize>i << 4))), f32x4.div(tau, vc), unique), active);
        sum = i == 0 ? term : f32x4.add(sum, term);
        // tau - tau is NaN exactly where tau is infinite or NaN.
        nonFinite = v128.or(nonFinite, f32x4.ne(f32x4.sub(tau, tau), zero));
      }
      // mergekit multiplies tau by its 0/1 masks, so a non-finite tau (which one of them zeroes) makes the element NaN.
      v128.store(acc + o, v128.bitselect(f32x4.splat(NaN), f32x4.add(vb, sum), nonFinite));
    }
    for (; j < count; j++) {
      const o = <usize>j << 2;
      const vb = load<f32>(b + o);
      let c = 0;
      for (let i = 0; i < tasks; i++) c += <i32>(abs<f32>(load<f32>(<usize>load<u32>(ptrs + (<usize>(i + 1) << 2)) + o) - vb) > epsilon);
      let sum: f32 = 0, nonFinite = false;
      for (let i = 0; i < tasks; i++) {
        const tau = load<f32>(<usize>load<u32>(ptrs + (<usize>(i + 1) << 2)) + o) - vb;
        let term: f32 = 0;
        if (abs<f32>(tau) > epsilon) term = c == 1 ? tau * load<f32>(lambdas + (<usize>i << 4)) : tau / <f32>c;
        sum = i == 0 ? term : sum + term;
        nonFinite = nonFinite || !isFinite<f32>(tau);
      }
      store<f32>(acc + o, nonFinite ? <f32>NaN : vb + sum);
    }
    if (outBytes != 4) encode(acc, outDtype, out + <usize>t * outBytes, count);
  }
}
