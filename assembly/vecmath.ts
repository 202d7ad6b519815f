// exp on four float32 lanes at once, for softmax, SiLU and tanh-GELU: wasm SIMD has no exp, and the
// scalar Mathf.exp per score would cost more than the matrix products of a layer.
//
// exp(x) = 2^n · e^r with n = round(x / ln 2) and r = x − n·ln 2, |r| ≤ ln 2 / 2. ln 2 is split in a
// high part with few mantissa bits (n·LN2_HI is exact for |n| < 2^9) and a low correction, so r keeps
// float32 precision. e^r is its Taylor series to r^7 (the first dropped term is below 2^-25 of the
// result), evaluated by Horner's rule; 2^n is built in the exponent field. Inputs are clamped to
// [−87.3, 88.7], where float32 exp is finite and normal: below that the result is the smallest
// normal's neighbourhood instead of 0 (a softmax weight of 1e-38 instead of 0 changes no sum).

const LOG2E: f32 = 1.44269504088896341;
const LN2_HI: f32 = 0.693145751953125; // 11 significant bits
const LN2_LO: f32 = 1.42860682030941723212e-6;
const X_MIN: f32 = -87.3;
const X_MAX: f32 = 88.7;

/** e^r for |r| <= ln2/2, four lanes: the Taylor series to r^7 by Horner's rule (see above). */
// @ts-ignore: decorator
@inline
export function expTaylor(r: v128): v128 {
  let p = f32x4.splat(1.0 / 5040.0);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 720.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 120.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 24.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 6.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(0.5));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0));
  return f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0));
}

// @ts-ignore: decorator
@inline
export function expf4(x0: v128): v128 {
  const x = f32x4.max(f32x4.min(x0, f32x4.splat(X_MAX)), f32x4.splat(X_MIN));
  const n = f32x4.nearest(f32x4.mul(x, f32x4.splat(LOG2E)));
  const r = f32x4.sub(f32x4.sub(x, f32x4.mul(n, f32x4.splat(LN2_HI))), f32x4.mul(n, f32x4.splat(LN2_LO)));
  const p = expTaylor(r);
  // 2^n: n + 127 in the exponent field. n is in [−126, 128] after the clamp; 2^128 would overflow, so
  // split it as 2^(n−1) · 2 when n > 127 (only x near X_MAX).
  const ni = i32x4.trunc_sat_f32x4_s(n);
  const big = i32x4.gt_s(ni, i32x4.splat(127));
  const e = i32x4.shl(i32x4.add(i32x4.sub(ni, v128.and(big, i32x4.splat(1))), i32x4.splat(127)), 23);
  const scaled = f32x4.mul(p, e);
  return v128.bitselect(f32x4.mul(scaled, f32x4.splat(2)), scaled, big);
}

/** One lane of expf4 (tails), with the same steps so a value does not depend on its position. */
// @ts-ignore: decorator
@inline
export function expf1(x: f32): f32 {
  return f32x4.extract_lane(expf4(f32x4.splat(x)), 0);
}
