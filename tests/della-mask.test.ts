// DELLA's keep mask kernel (assembly/della.ts) against a plain scalar ranking written here from SPEC
// section 5 (ascending |tau|, NaN last, equal values by lower index; p from the reference's
// dellaProbability; u and T from the reference generator), on the cases where a bucketed or sorted
// ranking could go wrong: awkward row lengths (rows not starting on a byte or word of the mask), many
// equal keys, whole rows of one value, quantized deltas (as BF16 fine-tunes have), zeros, NaN,
// infinities and subnormals, epsilon 0 and negative, and flat indices whose high word changes inside a
// row. Rows of a few thousand elements reach every way the kernel ranks undecided elements (over the
// row, within buckets, by sorting the row).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DTYPE_F32, DTYPE_NONE } from "../assembly/layout";
import { loadKernels, type Kernels } from "../src/kernels/kernels";
import { dellaKeepMask, dellaProbability } from "./reference/methods";
import { dareKeepThreshold, dareStreamKey, dareU } from "./reference/rng";
import { uniform } from "./helpers/fixtures";

const fr = Math.fround;

/** Keep bits (one byte per element) of rows of `cols` whose first flat index is `start`. */
function scalarMask(tau: Float32Array, cols: number, start: number, density: number, epsilon: number, key: number): Uint8Array {
  const keep = new Uint8Array(tau.length);
  for (let off = 0; off < tau.length; off += cols) {
    const order = Array.from({ length: cols }, (_, i) => i).sort((a, b) => {
      const ma = Math.abs(tau[off + a]!), mb = Math.abs(tau[off + b]!);
      if (Number.isNaN(ma) || Number.isNaN(mb)) return Number.isNaN(ma) && Number.isNaN(mb) ? a - b : Number.isNaN(ma) ? 1 : -1;
      return ma - mb || a - b;
    });
    order.forEach((i, pos) => {
      const p = dellaProbability(density, epsilon, pos + 1, cols);
      keep[off + i] = dareU(key, start + off + i) < dareKeepThreshold(p) ? 1 : 0;
    });
  }
  return keep;
}

/** The kernel's keep bits, unpacked to one byte per element; bytes after the mask must stay untouched. */
function kernelMask(k: Kernels, x: Float32Array, b: Float32Array, cols: number, start: number, density: number, epsilon: number, key: number): Uint8Array {
  const { arena, exports } = k;
  const mark = arena.mark();
  const n = x.length, bytes = Math.ceil(n / 8);
  const xp = arena.alloc(n * 4), bp = arena.alloc(n * 4), mask = arena.alloc(bytes + 8), work = arena.alloc(exports.dellaWorkBytes(cols));
  new Float32Array(exports.memory.buffer, xp, n).set(x);
  new Float32Array(exports.memory.buffer, bp, n).set(b);
  arena.u8(mask, bytes + 8).fill(0xa5);
  exports.dellaMask(xp, DTYPE_F32, bp, DTYPE_F32, n, DTYPE_NONE, cols, start >>> 0, Math.floor(start / 2 ** 32), key, density, epsilon, mask, work);
  const packed = arena.u8(mask, bytes + 8).slice();
  arena.release(mark);
  assert.deepEqual([...packed.subarray(bytes)], new Array(8).fill(0xa5), "nothing written after the mask");
  return Uint8Array.from({ length: n }, (_, i) => (packed[i >>> 3]! >>> (i & 7)) & 1);
}

/** Task-vector values of one kind, `n` of them, from seed `s`. */
function values(kind: string, n: number, s: number): number[] {
  return Array.from({ length: n }, (_, i) => {
    const u = uniform(s, i), v = uniform(s + 1, i);
    switch (kind) {
      case "binades": return (u - 0.5) * 2 ** Math.floor(40 * v - 30);
      case "few levels": return [0, 0.25, -0.25, 0.5, -1][Math.floor(u * 5)]!;
      case "one value": return 0.125;
      // A BF16 fine-tune's deltas: whole steps of a small quantum, so each row holds a few dozen values, each many times.
      case "quantized": return Math.round((u - 0.5) * 48) * 2 ** -14 * (v < 0.9 ? 1 : 4);
      case "zeros": return v < 0.5 ? 0 : -0;
      default: return [NaN, Infinity, -Infinity, 1e-40, -3e-45, 0, -0, 2, -2][Math.floor(u * 9)]! * (v < 0.8 ? 1 : v);
    }
  });
}

const KINDS = ["binades", "few levels", "quantized", "one value", "zeros", "special"];
const PARAMS: [number, number][] = [[0.5, 0.15], [0.5, 0], [0.3, -0.2], [0.6, 0.39]];

describe("della keep mask kernel", () => {
  for (const simd of ["plain", "auto"] as const) {
    test(`${simd} build: rows of awkward lengths, ties, one-value rows and special values match the scalar ranking`, async () => {
      const k = await loadKernels(256 * 2 ** 20, undefined, { simd });
      let seed = 10;
      for (const cols of [1, 2, 3, 5, 8, 31, 33, 4095, 4096, 4097]) {
        const rows = cols > 4000 ? 2 : 3;
        for (const kind of KINDS) {
          const t = values(kind, rows * cols, seed += 2);
          // x = b + t in float32, so tau = fround(x - b) as the SPEC defines it (b is 0 for the special values).
          const b = Float32Array.from(t, (_, i) => (kind === "special" ? 0 : (uniform(seed + 7, i) - 0.5) * 0.1));
          const x = Float32Array.from(t, (v, i) => fr(b[i]! + v));
          const tau = Float32Array.from(x, (v, i) => fr(v - b[i]!));
          for (const [density, epsilon] of PARAMS) {
            // Flat starts: the tensor's first row, and rows whose flat indices cross 2^32 and lie above it.
            for (const start of [cols * 5, 2 ** 32 - cols - 3, 2 ** 33 + cols]) {
              const key = (seed * 2654435761) >>> 0;
              assert.deepEqual(kernelMask(k, x, b, cols, start, density, epsilon, key), scalarMask(tau, cols, start, density, epsilon, key),
                `${cols} columns, ${kind}, density ${density}, epsilon ${epsilon}, start ${start}`);
            }
          }
        }
      }
    });
  }
  test("the scalar ranking above is the reference's dellaKeepMask (whole tensors from flat index 0)", async () => {
    const k = await loadKernels(64 * 2 ** 20);
    for (const [cols, kind] of [[33, "binades"], [4097, "few levels"], [100, "special"]] as const) {
      const t = Float32Array.from(values(kind, 3 * cols, 77));
      const key = dareStreamKey(9, "w", 1);
      const expected = dellaKeepMask(t, [3, cols], 0.4, 0.3, 9, "w", 1);
      assert.deepEqual(scalarMask(t, cols, 0, 0.4, 0.3, key), expected);
      assert.deepEqual(kernelMask(k, t, new Float32Array(t.length), cols, 0, 0.4, 0.3, key), expected);
    }
  });
});
