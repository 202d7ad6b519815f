// Scoring logits without ever holding a whole row of them: the vocabulary is walked in chunks and a
// record per row keeps running statistics, rescaled whenever a chunk raises the running maximum (the
// "online softmax"). From the record come the target's negative log-likelihood, the argmax, and for a
// second model over the same positions, KL(P_a ‖ P_e) and whether both argmaxes agree:
//
//   lse_e = m_e + log s_e,           s_e = Σ_v exp(z_e,v − m_e)
//   NLL   = lse_e − z_e,target
//   KL    = Σ_v p_a,v (z_a,v − z_e,v) − lse_a + lse_e,   with Σ_v p_a,v (z_a,v − z_e,v) = w_a / s_a,
//           w_a = Σ_v exp(z_a,v − m_a)(z_a,v − z_e,v)
//
// Exponentials are float32 (lanes of four); every sum is float64. Argmaxes keep the first of equal
// maxima, as torch.argmax does, since chunks are scored in vocabulary order.

import { expf4, expf1 } from "./vecmath";
import {
  SCORE_BEST_A, SCORE_BEST_E, SCORE_M_A, SCORE_M_E, SCORE_RECORD, SCORE_S_A, SCORE_S_E, SCORE_TARGET, SCORE_W_A,
} from "./layout";

// @ts-ignore: decorator
@inline function at(base: usize, i: i32): usize {
  return base + (<usize>i << 2);
}

/** Resets `rows` score records (maxima to −∞, sums to 0, argmaxes to −1). */
export function scoreReset(state: usize, rows: i32): void {
  for (let r = 0; r < rows; r++) {
    const s = state + <usize>r * SCORE_RECORD;
    memory.fill(s, 0, SCORE_RECORD);
    store<f64>(s + SCORE_M_E, -Infinity);
    store<f64>(s + SCORE_M_A, -Infinity);
    store<f64>(s + SCORE_BEST_E, -1);
    store<f64>(s + SCORE_BEST_A, -1);
    store<f64>(s + SCORE_TARGET, NaN);
  }
}

/** Largest value of n floats and its first index. */
// @ts-ignore: decorator
@inline function rowMax(z: usize, n: i32): f32 {
  let mv = f32x4.splat(-Infinity);
  let i = 0;
  for (; i + 4 <= n; i += 4) mv = f32x4.max(mv, v128.load(at(z, i)));
  let m = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
  for (; i < n; i++) m = max(m, load<f32>(at(z, i)));
  return m;
}

function firstIndexOf(z: usize, n: i32, value: f32): i32 {
  for (let i = 0; i < n; i++) if (load<f32>(at(z, i)) == value) return i;
  return -1;
}

/** Σ exp(z − m) over n floats, lanes in float32, accumulated in float64. */
// @ts-ignore: decorator
@inline function sumExp(z: usize, n: i32, m: f32): f64 {
  const mv = f32x4.splat(m);
  let acc = f64x2.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const e = expf4(f32x4.sub(v128.load(at(z, i)), mv));
    acc = f64x2.add(acc, f64x2.add(f64x2.promote_low_f32x4(e), f64x2.promote_low_f32x4(v128.shuffle<f32>(e, e, 2, 3, 0, 1))));
  }
  let s = f64x2.extract_lane(acc, 0) + f64x2.extract_lane(acc, 1);
  for (; i < n; i++) s += <f64>expf1(load<f32>(at(z, i)) - m);
  return s;
}

/** Σ exp(za − m)(za − ze) over n floats. */
// @ts-ignore: decorator
@inline function sumExpDiff(za: usize, ze: usize, n: i32, m: f32): f64 {
  const mv = f32x4.splat(m);
  let acc = f64x2.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const a = v128.load(at(za, i));
    const t = f32x4.mul(expf4(f32x4.sub(a, mv)), f32x4.sub(a, v128.load(at(ze, i))));
    acc = f64x2.add(acc, f64x2.add(f64x2.promote_low_f32x4(t), f64x2.promote_low_f32x4(v128.shuffle<f32>(t, t, 2, 3, 0, 1))));
  }
  let s = f64x2.extract_lane(acc, 0) + f64x2.extract_lane(acc, 1);
  for (; i < n; i++) {
    const a = load<f32>(at(za, i));
    s += <f64>(expf1(a - m) * (a - load<f32>(at(ze, i))));
  }
  return s;
}

/**
 * Folds one chunk of logits into the records: ze (rows × n, the evaluated model) and, unless za is 0,
 * za (rows × n, the model compared against), for vocabulary entries v0..v0+n−1. targets (i32 per
 * row, −1 for none) pick the logit whose NLL is wanted.
 */
export function scoreChunk(ze: usize, za: usize, rows: i32, n: i32, v0: i32, targets: usize, state: usize): void {
  for (let r = 0; r < rows; r++) {
    const s = state + <usize>r * SCORE_RECORD;
    const er = at(ze, r * n);
    const target = load<i32>(at(targets, r));
    if (target >= v0 && target < v0 + n) store<f64>(s + SCORE_TARGET, <f64>load<f32>(at(er, target - v0)));
    // Evaluated model: running maximum, rescaled sum, argmax.
    const me = rowMax(er, n);
    const oldMe = load<f64>(s + SCORE_M_E);
    if (<f64>me > oldMe) {
      store<f64>(s + SCORE_S_E, load<f64>(s + SCORE_S_E) * Math.exp(oldMe - <f64>me) + sumExp(er, n, me));
      store<f64>(s + SCORE_M_E, <f64>me);
      store<f64>(s + SCORE_BEST_E, <f64>(v0 + firstIndexOf(er, n, me)));
    } else {
      store<f64>(s + SCORE_S_E, load<f64>(s + SCORE_S_E) + sumExp(er, n, <f32>oldMe));
    }
    if (za == 0) continue;
    const ar = at(za, r * n);
    const ma = rowMax(ar, n);
    const oldMa = load<f64>(s + SCORE_M_A);
    if (<f64>ma > oldMa) {
      const k = Math.exp(oldMa - <f64>ma);
      store<f64>(s + SCORE_S_A, load<f64>(s + SCORE_S_A) * k + sumExp(ar, n, ma));
      store<f64>(s + SCORE_W_A, load<f64>(s + SCORE_W_A) * k + sumExpDiff(ar, er, n, ma));
      store<f64>(s + SCORE_M_A, <f64>ma);
      store<f64>(s + SCORE_BEST_A, <f64>(v0 + firstIndexOf(ar, n, ma)));
    } else {
      store<f64>(s + SCORE_S_A, load<f64>(s + SCORE_S_A) + sumExp(ar, n, <f32>oldMa));
      store<f64>(s + SCORE_W_A, load<f64>(s + SCORE_W_A) + sumExpDiff(ar, er, n, <f32>oldMa));
    }
  }
}
