// DARE's counter-based generator, exactly as SPEC.md section 6 describes it.
// All arithmetic is 32-bit: Math.imul for products, `>>> 0` to read the result as unsigned.

/** The 32-bit finaliser: x ^= x>>>16; x*=0x21f0aaad; x ^= x>>>15; x*=0x735a2d97; x ^= x>>>15. */
export function mix32(x: number): number {
  x = x >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x21f0aaad);
  x ^= x >>> 15;
  x = Math.imul(x, 0x735a2d97);
  x ^= x >>> 15;
  return x >>> 0;
}

/** 32-bit FNV-1a over bytes. */
export function fnv1a32(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * The stream key of one non-base input of one output tensor:
 * k0 = mix(seed ^ 0x6a09e667), k1 = mix(fnv1a(utf8(name)) ^ k0), key = mix(((i + 1) ^ k1) >>> 0).
 */
export function dareStreamKey(seed: number, outputTensorName: string, nonBaseIndex: number): number {
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
    throw new Error(`dareStreamKey: seed must be an integer in [0, 2^32), got ${seed}`);
  }
  if (!Number.isInteger(nonBaseIndex) || nonBaseIndex < 0) {
    throw new Error(`dareStreamKey: bad non-base index ${nonBaseIndex}`);
  }
  const k0 = mix32((seed ^ 0x6a09e667) >>> 0);
  const k1 = mix32((fnv1a32(new TextEncoder().encode(outputTensorName)) ^ k0) >>> 0);
  return mix32(((nonBaseIndex + 1) ^ k1) >>> 0);
}

/** u(j) = mix(mix((lo ^ key) >>> 0) ^ ((hi + 0x9e3779b9) >>> 0)), lo = j mod 2^32, hi = floor(j / 2^32). */
export function dareU(key: number, j: number): number {
  const lo = j % 4294967296;
  const hi = Math.floor(j / 4294967296);
  return mix32((mix32((lo ^ key) >>> 0) ^ ((hi + 0x9e3779b9) >>> 0)) >>> 0);
}

/** T = min(floor(density * 2^32), 2^32 - 1); element j is kept iff u(j) < T. */
export function dareKeepThreshold(density: number): number {
  return Math.min(Math.floor(density * 4294967296), 4294967295);
}
