// Conversions between the stored element types and float32, the type every kernel computes in.
//
// Decoding BF16, F16 and F32 to float32 is exact. Encoding rounds to nearest, ties to even, the way
// PyTorch's `.to()` does; NaN becomes a quiet NaN that keeps its sign, and F16 overflows to infinity and
// produces subnormals. The SIMD paths handle 8 elements per step and a scalar path does the tail; both
// use the same bit recipes.

import { DTYPE_BF16, DTYPE_F16, DTYPE_F32, DTYPE_F64 } from "./layout";

/** Bytes per element of a dtype code (0 for an unknown code). */
// @ts-ignore: decorator
@inline
export function elementBytes(dtype: i32): i32 {
  if (dtype == DTYPE_F32) return 4;
  if (dtype == DTYPE_F16 || dtype == DTYPE_BF16) return 2;
  if (dtype == DTYPE_F64) return 8;
  return 0;
}

// ---------------------------------------------------------------------------------------------------
// Bit recipes, one lane at a time (tails) and four lanes at a time (i32x4 holding one value per lane).

/** bf16 is the top half of a float32: widening is a shift. */
// @ts-ignore: decorator
@inline
function bf16ToF32Scalar(h: u32): u32 {
  return h << 16;
}

/**
 * float32 -> bf16 with round-to-nearest-even: add 0x7FFF plus the lowest kept bit, then truncate. The
 * add carries into the exponent exactly when rounding up crosses a power of two (and into infinity past
 * the largest finite bf16). NaN must not go through the add (it could carry into the sign), so it maps to
 * the quiet NaN 0x7FC0 with its sign.
 */
// @ts-ignore: decorator
@inline
function f32ToBf16Scalar(x: u32): u32 {
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) & 0x8000) | 0x7fc0;
  return (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
}

/**
 * f16 -> float32. Shifting the 15 magnitude bits left by 13 lines the f16 exponent and mantissa up with
 * float32's; adding (127 - 15) << 23 rebiases the exponent. Infinity/NaN (f16 exponent 31) need the
 * exponent pushed to 255, another (128 - 16) << 23. Zero and subnormals (f16 exponent 0) are built as
 * the float 2^-14 * (1 + m/1024) and then 2^-14 is subtracted, which leaves m * 2^-24 exactly.
 */
// @ts-ignore: decorator
@inline
function f16ToF32Scalar(h: u32): u32 {
  const sign = (h & 0x8000) << 16;
  let o = (h & 0x7fff) << 13;
  const exp = o & 0x0f800000;
  o += 112 << 23;
  if (exp == 0x0f800000) {
    o += 112 << 23;
  } else if (exp == 0) {
    o = reinterpret<u32>(reinterpret<f32>(o + (1 << 23)) - reinterpret<f32>(<u32>113 << 23));
  }
  return o | sign;
}

/**
 * float32 -> f16, round-to-nearest-even.
 * - Normal results: rebias the exponent by subtracting (127 - 15) << 23, then round the 13 dropped
 *   mantissa bits like bf16 does. Past the largest finite f16 the rounded value lands on or beyond the
 *   infinity pattern 0x7C00, so it is clamped there.
 * - Subnormal results (|x| < 2^-14): adding 0.5 makes the float32 adder round |x| to a multiple of
 *   2^-24 (the f16 subnormal step) with ties to even; the low bits of the sum are then the f16 pattern,
 *   up to 0x400 (the smallest normal) when rounding carries.
 * - NaN becomes the quiet NaN 0x7E00 with its sign.
 */
// @ts-ignore: decorator
@inline
function f32ToF16Scalar(x: u32): u32 {
  const sign = (x >>> 16) & 0x8000;
  const a = x & 0x7fffffff;
  let h: u32;
  if (a > 0x7f800000) {
    h = 0x7e00;
  } else if (a < 0x38800000) {
    h = reinterpret<u32>(reinterpret<f32>(a) + 0.5) - 0x3f000000;
  } else {
    h = (a - 0x38000000 + 0xfff + ((a >>> 13) & 1)) >>> 13;
    if (h > 0x7c00) h = 0x7c00;
  }
  return h | sign;
}

// @ts-ignore: decorator
@inline
function f16ToF32x4(h: v128): v128 {
  const sign = i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16);
  let o = i32x4.shl(v128.and(h, i32x4.splat(0x7fff)), 13);
  const exp = v128.and(o, i32x4.splat(0x0f800000));
  o = i32x4.add(o, i32x4.splat(112 << 23));
  const special = i32x4.eq(exp, i32x4.splat(0x0f800000));
  o = i32x4.add(o, v128.and(special, i32x4.splat(112 << 23)));
  const tiny = i32x4.eq(exp, i32x4.splat(0));
  const fixed = f32x4.sub(i32x4.add(o, i32x4.splat(1 << 23)), f32x4.splat(reinterpret<f32>(<u32>113 << 23)));
  o = v128.bitselect(fixed, o, tiny);
  return v128.or(o, sign);
}

// @ts-ignore: decorator
@inline
function f32ToF16x4(x: v128): v128 {
  const sign = i32x4.shr_u(v128.and(x, i32x4.splat(0x80000000)), 16);
  const a = v128.and(x, i32x4.splat(0x7fffffff));
  const lsb = v128.and(i32x4.shr_u(a, 13), i32x4.splat(1));
  let normal = i32x4.sub(a, i32x4.splat(0x38000000));
  normal = i32x4.shr_u(i32x4.add(normal, i32x4.add(lsb, i32x4.splat(0xfff))), 13);
  normal = i32x4.min_s(normal, i32x4.splat(0x7c00));
  const sub = i32x4.sub(f32x4.add(a, f32x4.splat(0.5)), i32x4.splat(0x3f000000));
  let h = v128.bitselect(sub, normal, i32x4.lt_s(a, i32x4.splat(0x38800000)));
  h = v128.bitselect(i32x4.splat(0x7e00), h, i32x4.gt_s(a, i32x4.splat(0x7f800000)));
  return v128.or(h, sign);
}

// @ts-ignore: decorator
@inline
function f32ToBf16x4(x: v128): v128 {
  const high = i32x4.shr_u(x, 16);
  const rounded = i32x4.shr_u(i32x4.add(x, i32x4.add(v128.and(high, v128.load(BF16_ROUNDING)), v128.load(BF16_ROUNDING, 16))), 16);
  const quiet = v128.or(v128.and(high, v128.load(BF16_ROUNDING, 32)), v128.load(BF16_ROUNDING, 48));
  return v128.bitselect(quiet, rounded, f32x4.ne(x, x));
}

/**
 * f32ToBf16x4's constants (1, 0x7fff, 0x8000 and 0x7fc0 in every lane), read from memory: inside a loop
 * V8 materializes a v128 constant at every use (three instructions), a load is one. encode to BF16 13%
 * faster (16M elements, in alternation: 4.40 -> 3.82 ms).
 */
const BF16_ROUNDING = memory.data<u32>([1, 1, 1, 1, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x8000, 0x8000, 0x8000, 0x8000, 0x7fc0, 0x7fc0, 0x7fc0, 0x7fc0], 16);

// ---------------------------------------------------------------------------------------------------
// Element access in place, for kernels that read stored values directly instead of decoding a tile.

/** Four float32 lanes from elements i..i+3 of an F32, BF16 or F16 array. */
// @ts-ignore: decorator
@inline
export function loadLanes(ptr: usize, dtype: i32, i: i32): v128 {
  if (dtype == DTYPE_F32) return v128.load(ptr + (<usize>i << 2));
  const h = v128.load16x4_u(ptr + (<usize>i << 1));
  return dtype == DTYPE_BF16 ? i32x4.shl(h, 16) : f16ToF32x4(h);
}

/**
 * Lanes 0-3 of eight BF16 values (one 16-byte load) as float32: a BF16 value is its float32's high half,
 * so the values interleaved with zeros below them are the float32s: one instruction (punpcklwd), where
 * widening then shifting took two, and three for the high lanes.
 */
// @ts-ignore: decorator
@inline
export function bf16Low(h: v128): v128 {
  return i8x16.shuffle(i32x4.splat(0), h, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
}

/** Lanes 4-7 of eight BF16 values as float32. */
// @ts-ignore: decorator
@inline
export function bf16High(h: v128): v128 {
  return i8x16.shuffle(i32x4.splat(0), h, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
}

/** Element i of an F32, BF16 or F16 array, as float32. */
// @ts-ignore: decorator
@inline
export function loadOne(ptr: usize, dtype: i32, i: i32): f32 {
  if (dtype == DTYPE_F32) return load<f32>(ptr + (<usize>i << 2));
  const h = <u32>load<u16>(ptr + (<usize>i << 1));
  return reinterpret<f32>(dtype == DTYPE_BF16 ? bf16ToF32Scalar(h) : f16ToF32Scalar(h));
}

/** Stores eight float32 values (two vectors) as elements i..i+7 of an F32, BF16 or F16 array. */
// @ts-ignore: decorator
@inline
export function storeEight(ptr: usize, dtype: i32, i: i32, lo: v128, hi: v128): void {
  if (dtype == DTYPE_F32) {
    v128.store(ptr + (<usize>i << 2), lo);
    v128.store(ptr + (<usize>i << 2), hi, 16);
  } else if (dtype == DTYPE_BF16) {
    v128.store(ptr + (<usize>i << 1), i16x8.narrow_i32x4_u(f32ToBf16x4(lo), f32ToBf16x4(hi)));
  } else {
    v128.store(ptr + (<usize>i << 1), i16x8.narrow_i32x4_u(f32ToF16x4(lo), f32ToF16x4(hi)));
  }
}

/** Stores one float32 value as element i of an F32, BF16 or F16 array. */
// @ts-ignore: decorator
@inline
export function storeOne(ptr: usize, dtype: i32, i: i32, x: f32): void {
  if (dtype == DTYPE_F32) store<f32>(ptr + (<usize>i << 2), x);
  else store<u16>(ptr + (<usize>i << 1), <u16>(dtype == DTYPE_BF16 ? f32ToBf16Scalar(reinterpret<u32>(x)) : f32ToF16Scalar(reinterpret<u32>(x))));
}

// ---------------------------------------------------------------------------------------------------
// Array conversions. Pointers may be unaligned; regions must not overlap unless src == dst.

/** Decode n elements of `dtype` at src into float32 at dst. */
export function decode(src: usize, dtype: i32, dst: usize, n: i32): void {
  let i = 0;
  if (dtype == DTYPE_BF16) {
    for (; i + 8 <= n; i += 8) {
      const h = v128.load(src + (<usize>i << 1));
      v128.store(dst + (<usize>i << 2), bf16Low(h));
      v128.store(dst + (<usize>i << 2), bf16High(h), 16);
    }
    for (; i < n; i++) store<u32>(dst + (<usize>i << 2), bf16ToF32Scalar(load<u16>(src + (<usize>i << 1))));
  } else if (dtype == DTYPE_F16) {
    for (; i + 8 <= n; i += 8) {
      const h = v128.load(src + (<usize>i << 1));
      v128.store(dst + (<usize>i << 2), f16ToF32x4(i32x4.extend_low_i16x8_u(h)));
      v128.store(dst + (<usize>i << 2), f16ToF32x4(i32x4.extend_high_i16x8_u(h)), 16);
    }
    for (; i < n; i++) store<u32>(dst + (<usize>i << 2), f16ToF32Scalar(load<u16>(src + (<usize>i << 1))));
  } else if (dtype == DTYPE_F32) {
    if (src != dst) memory.copy(dst, src, <usize>n << 2);
  } else if (dtype == DTYPE_F64) {
    // Rare (only with an explicit recipe dtype); the f64 -> f32 cast rounds to nearest even.
    for (; i < n; i++) store<f32>(dst + (<usize>i << 2), <f32>load<f64>(src + (<usize>i << 3)));
  } else {
    unreachable();
  }
}

/** Encode n float32 values at src as `dtype` at dst (round to nearest even). */
export function encode(src: usize, dtype: i32, dst: usize, n: i32): void {
  let i = 0;
  if (dtype == DTYPE_BF16) {
    for (; i + 8 <= n; i += 8) {
      const lo = f32ToBf16x4(v128.load(src + (<usize>i << 2)));
      const hi = f32ToBf16x4(v128.load(src + (<usize>i << 2), 16));
      v128.store(dst + (<usize>i << 1), i16x8.narrow_i32x4_u(lo, hi));
    }
    for (; i < n; i++) store<u16>(dst + (<usize>i << 1), <u16>f32ToBf16Scalar(load<u32>(src + (<usize>i << 2))));
  } else if (dtype == DTYPE_F16) {
    for (; i + 8 <= n; i += 8) {
      const lo = f32ToF16x4(v128.load(src + (<usize>i << 2)));
      const hi = f32ToF16x4(v128.load(src + (<usize>i << 2), 16));
      v128.store(dst + (<usize>i << 1), i16x8.narrow_i32x4_u(lo, hi));
    }
    for (; i < n; i++) store<u16>(dst + (<usize>i << 1), <u16>f32ToF16Scalar(load<u32>(src + (<usize>i << 2))));
  } else if (dtype == DTYPE_F32) {
    if (src != dst) memory.copy(dst, src, <usize>n << 2);
  } else {
    unreachable();
  }
}

/**
 * Round n float32 values in place to `dtype` and back: what casting an input to the recipe's `dtype`
 * at load time does to its values before we compute in float32.
 */
export function quantize(buf: usize, dtype: i32, n: i32): void {
  let i = 0;
  if (dtype == DTYPE_BF16) {
    for (; i + 4 <= n; i += 4) {
      const p = buf + (<usize>i << 2);
      v128.store(p, i32x4.shl(f32ToBf16x4(v128.load(p)), 16));
    }
    for (; i < n; i++) {
      const p = buf + (<usize>i << 2);
      store<u32>(p, bf16ToF32Scalar(f32ToBf16Scalar(load<u32>(p))));
    }
  } else if (dtype == DTYPE_F16) {
    for (; i + 4 <= n; i += 4) {
      const p = buf + (<usize>i << 2);
      v128.store(p, f16ToF32x4(f32ToF16x4(v128.load(p))));
    }
    for (; i < n; i++) {
      const p = buf + (<usize>i << 2);
      store<u32>(p, f16ToF32Scalar(f32ToF16Scalar(load<u32>(p))));
    }
  }
  // F32 and NONE: nothing to do.
}
