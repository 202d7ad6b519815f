// Independent scalar float conversions for the test reference (SPEC.md section 1).
// Written from the IEEE 754 binary16 / bfloat16 definitions; no Math.f16round, no Float16Array.
//
// binary32: 1 sign bit, 8 exponent bits (bias 127), 23 mantissa bits.
// binary16: 1 sign bit, 5 exponent bits (bias 15), 10 mantissa bits.
// bfloat16: the top 16 bits of a binary32 (1 sign, 8 exponent, 7 mantissa bits).

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** The 32-bit pattern of a float32 value (x is rounded to float32 first if it is not one). */
export function f32ToBits(x: number): number {
  f32Scratch[0] = x;
  return u32Scratch[0]!;
}

/** The float32 value with the given 32-bit pattern. */
export function bitsToF32(bits: number): number {
  u32Scratch[0] = bits >>> 0;
  return f32Scratch[0]!;
}

// ---------------------------------------------------------------------------------------------
// bfloat16

/** Decode a bfloat16 bit pattern (exact: bf16 is the upper half of a float32). */
export function bf16BitsToF32(bits: number): number {
  return bitsToF32(((bits & 0xffff) << 16) >>> 0);
}

/**
 * Encode a float32 value as bfloat16 bits, round-to-nearest-even on the 16 dropped bits.
 * NaN -> quiet NaN 0x7FC0 with the sign kept; ±Inf stay; overflow rounds up to ±Inf naturally
 * (the carry out of the mantissa increments the exponent to 0xFF with a zero mantissa).
 */
export function f32ToBf16Bits(x: number): number {
  const b = f32ToBits(x);
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff && mant !== 0) return sign | 0x7fc0;
  const upper = b >>> 16; // truncated result
  const lower = b & 0xffff; // dropped bits
  let r = upper;
  if (lower > 0x8000 || (lower === 0x8000 && (upper & 1) === 1)) r = upper + 1;
  return r & 0xffff;
}

// ---------------------------------------------------------------------------------------------
// binary16

/** Decode an IEEE binary16 bit pattern exactly (normals, subnormals, ±0, ±Inf, NaN). */
export function f16BitsToF32(bits: number): number {
  const sign = (bits >>> 15) & 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  let v: number;
  if (exp === 0) {
    v = mant * 2 ** -24; // subnormal: mant * 2^(1-15) * 2^-10
  } else if (exp === 0x1f) {
    v = mant === 0 ? Infinity : NaN;
  } else {
    v = (1024 + mant) * 2 ** (exp - 25); // (1 + mant/1024) * 2^(exp-15)
  }
  return sign ? -v : v;
}

/**
 * Encode a float32 value as IEEE binary16 bits with round-to-nearest-even, computed with integer
 * arithmetic on the float32 bit pattern (one rounding only).
 * Overflow -> ±Inf; results below half the smallest subnormal -> ±0; subnormals are produced;
 * NaN -> quiet NaN 0x7E00 with the sign kept.
 */
export function f32ToF16Bits(x: number): number {
  const b = f32ToBits(x);
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff; // biased float32 exponent
  const mant = b & 0x7fffff;

  if (exp === 0xff) return sign | (mant !== 0 ? 0x7e00 : 0x7c00);
  // float32 zeros and subnormals (< 2^-126) are far below 2^-25: they round to ±0.
  if (exp === 0) return sign;

  const e16 = exp - 127 + 15; // binary16 biased exponent if the result is normal
  if (e16 >= 31) return sign | 0x7c00; // |x| >= 2^16: overflow

  if (e16 >= 1) {
    // Normal result: keep the top 10 of 23 mantissa bits, round on the 13 dropped bits.
    let m = mant >>> 13;
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && (m & 1) === 1)) m += 1;
    // A carry out of m (m == 0x400) correctly bumps the exponent; e16=30 carrying gives 0x7C00 (Inf).
    return sign | ((e16 << 10) + m);
  }

  // Subnormal (or zero) result: value = sig * 2^(exp-150), sig = 1.mant as a 24-bit integer.
  // In units of the smallest subnormal 2^-24: n = sig * 2^(exp-126) = sig / 2^shift.
  const sig = mant | 0x800000;
  const shift = 126 - exp; // >= 14 because exp <= 112 here
  if (shift >= 25) return sign; // sig / 2^25 < 0.5: rounds to zero
  let q = sig >>> shift;
  const rem = sig & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rem > half || (rem === half && (q & 1) === 1)) q += 1;
  // q == 0x400 is the smallest normal (0x0400), which is the correct encoding.
  return sign | q;
}

export type FloatDtype = "F32" | "F16" | "BF16";

/** Round a number to float32 and then to `dtype` (RNE), and return the decoded float32 value. */
export function roundToDtype(x: number, dtype: FloatDtype): number {
  const f = Math.fround(x);
  switch (dtype) {
    case "F32":
      return f;
    case "F16":
      return f16BitsToF32(f32ToF16Bits(f));
    case "BF16":
      return bf16BitsToF32(f32ToBf16Bits(f));
    default:
      throw new Error(`roundToDtype: unsupported dtype ${String(dtype)}`);
  }
}
