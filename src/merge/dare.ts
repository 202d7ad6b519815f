/**
 * @file DARE's counter-based generator, TypeScript half: the per-(seed, tensor, model) stream key and
 * the keep threshold. The kernel (assembly/taskvector.ts) computes u(j) = mix(mix(lo ^ key) ^ (hi +
 * 0x9e3779b9)) for flat element j = hi * 2^32 + lo and keeps the element iff u(j) < threshold, so a mask
 * depends only on the seed, the output tensor's name, the model's position and the element index:
 * never on chunking, worker count or scheduling.
 */

export function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x21f0aaad);
  x ^= x >>> 15;
  x = Math.imul(x, 0x735a2d97);
  x ^= x >>> 15;
  return x >>> 0;
}

export function fnv1a32(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193);
  return h >>> 0;
}

/** Key of the stream for task model `task` (0-based among the non-base inputs) of tensor `name`. */
export function dareStreamKey(seed: number, name: string, task: number): number {
  const k0 = mix32((seed ^ 0x6a09e667) >>> 0);
  const k1 = mix32((fnv1a32(new TextEncoder().encode(name)) ^ k0) >>> 0);
  return mix32(((task + 1) ^ k1) >>> 0);
}

/** Keep an element iff u < threshold: a fraction `density` of the 2^32 possible u values. */
export function dareThreshold(density: number): number {
  return Math.min(Math.floor(density * 4294967296), 4294967295);
}
