/**
 * @file Float rows in a tensor's stored dtype, to and from float64, for the few embedding rows that are
 * computed rather than read (means of other models' rows, padding). Rounding is round-to-nearest-even
 * through float32, the way the kernels store results.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Bytes per element of a float dtype rows are computed in. */
export function rowElementBytes(dtype: string): number {
  switch (dtype) {
    case "F64": return 8;
    case "F32": return 4;
    case "F16": case "BF16": return 2;
  }
  throw new Error(`rows of dtype ${dtype} are not computed`);
}

/**
 * Adds the `cols` values of a stored row to `sum`, each first rounded to `roundTo` when it is given (the
 * recipe's dtype: mergekit casts every tensor to it as it loads it, before any row is computed).
 */
export function addRow(dtype: string, bytes: Uint8Array, cols: number, sum: Float64Array, roundTo?: string): void {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let c = 0; c < cols; c++) {
    let x: number;
    switch (dtype) {
      case "F64": x = v.getFloat64(8 * c, true); break;
      case "F32": x = v.getFloat32(4 * c, true); break;
      case "BF16": u32[0] = v.getUint16(2 * c, true) << 16; x = f32[0]!; break;
      case "F16": x = halfToNumber(v.getUint16(2 * c, true)); break;
      default: throw new Error(`rows of dtype ${dtype} are not computed`);
    }
    sum[c]! += roundTo === undefined || roundTo === dtype ? x : roundNumber(x, roundTo);
  }
}

/** x rounded (through float32, as torch's casts) to `dtype`. */
function roundNumber(x: number, dtype: string): number {
  switch (dtype) {
    case "F32": return Math.fround(x);
    case "BF16": u32[0] = numberToBf16(x) << 16; return f32[0]!;
    case "F16": return halfToNumber(numberToHalf(x));
  }
  throw new Error(`rows are not rounded to dtype ${dtype}`);
}

/** values (float64) stored as `dtype`, rounded through float32. */
export function encodeRow(dtype: string, values: Float64Array): Uint8Array {
  const out = new Uint8Array(values.length * rowElementBytes(dtype));
  const v = new DataView(out.buffer);
  values.forEach((x, c) => {
    const r = Math.fround(x);
    switch (dtype) {
      case "F64": v.setFloat64(8 * c, r, true); break;
      case "F32": v.setFloat32(4 * c, r, true); break;
      case "BF16": v.setUint16(2 * c, numberToBf16(r), true); break;
      case "F16": v.setUint16(2 * c, numberToHalf(r), true); break;
    }
  });
  return out;
}

function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f, mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

function numberToBf16(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) & 0x8000) | 0x7fc0;
  return (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
}

function numberToHalf(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rest = mant & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rest > half || (rest === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++; // a carry into the exponent gives the next power (or inf)
  return sign | h;
}
