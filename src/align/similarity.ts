/**
 * @file Similarity matrices for weight matching: S = Σ over tensors of U_A · U_Bᵀ, where U is a tensor
 * unfolded so the permuted units index rows. Unfoldings are produced a column chunk at a time straight
 * into wasm memory, so a tensor of any size passes through a bounded window (CHUNK_BYTES per operand);
 * the product is assembly/gemm.ts, run in the alignment kernel instance (./kernels.ts).
 */
import { AlignmentError } from "../errors";
import { alignmentKernels } from "./kernels";

/**
 * n units of `width * steps` values each, in both models, produced in chunks of whole steps. Column
 * order inside an unfolding is free (S sums over columns) as long as A and B use the same one.
 */
export interface Unfolding {
  n: number;
  steps: number;
  width: number;
  /** Writes steps [step0, step1) of A's and B's units into `a` and `b`, each n x ((step1 - step0) * width). */
  fill(step0: number, step1: number, a: Float32Array, b: Float32Array): void;
}

/** Bytes of each operand's window in wasm memory. */
const CHUNK_BYTES = 4 << 20;

/** S (n x n, f32, row-major): S[i][j] = Σ over the unfoldings of <unit i of A, unit j of B>. */
export async function similarityMatrix(n: number, unfoldings: Unfolding[]): Promise<Float32Array> {
  const { exports, arena } = await alignmentKernels();
  arena.reset();
  const s = arena.alloc(n * n * 4);
  arena.f32(s, n * n).fill(0);
  for (const u of unfoldings) {
    if (u.n !== n) throw new AlignmentError("E_COST_INVALID", `similarity: an unfolding has ${u.n} units, expected ${n}`, {});
    const stepsPerChunk = Math.max(1, Math.floor(CHUNK_BYTES / 4 / (n * u.width)));
    const mark = arena.mark();
    const chunk = Math.min(u.steps, stepsPerChunk) * u.width * n;
    const a = arena.alloc(chunk * 4), b = arena.alloc(chunk * 4);
    for (let step0 = 0; step0 < u.steps; step0 += stepsPerChunk) {
      const step1 = Math.min(u.steps, step0 + stepsPerChunk), k = (step1 - step0) * u.width;
      // Views are taken after the allocations: growing memory would detach earlier ones.
      u.fill(step0, step1, arena.f32(a, n * k), arena.f32(b, n * k));
      exports.accumulateProduct(a, b, n, n, k, s);
    }
    arena.release(mark);
  }
  const out = new Float32Array(n * n);
  out.set(arena.f32(s, n * n));
  return out;
}

/** Σ of <unit i of A, unit i of B> and the squared norms, over the unfoldings (no matrix). */
export function diagonalSums(unfoldings: Unfolding[]): { dot: number; normA: number; normB: number } {
  let dot = 0, normA = 0, normB = 0;
  for (const u of unfoldings) {
    const stepsPerChunk = Math.max(1, Math.floor(CHUNK_BYTES / 4 / (u.n * u.width)));
    const size = Math.min(u.steps, stepsPerChunk) * u.width * u.n;
    const a = new Float32Array(size), b = new Float32Array(size);
    for (let step0 = 0; step0 < u.steps; step0 += stepsPerChunk) {
      const step1 = Math.min(u.steps, step0 + stepsPerChunk), k = (step1 - step0) * u.width * u.n;
      u.fill(step0, step1, a.subarray(0, k), b.subarray(0, k));
      for (let i = 0; i < k; i++) { dot += a[i]! * b[i]!; normA += a[i]! * a[i]!; normB += b[i]! * b[i]!; }
    }
  }
  return { dot, normA, normB };
}

export interface TensorBlock {
  /** Tensor shape, [L] or [R, C]. */
  shape: readonly number[];
  a: Float32Array;
  b: Float32Array;
  /** The permuted axis. */
  axis: number;
  /** The block of that axis the units live in: unit i spans positions start + i*inner .. + inner. */
  start: number;
  n: number;
  inner: number;
  /** B's source index per position of each axis (null: identity); A is read as it is. */
  mapsB: (Int32Array | null)[];
}

/**
 * Unfolds a block of a tensor along `axis`. Columns are (other-axis index, position inside the unit),
 * the other axis chunked in steps, so a chunk reads whole rows (axis 0) or whole row ranges (axis 1).
 */
export function tensorUnfolding(t: TensorBlock): Unfolding {
  const { shape, a, b, axis, start, n, inner, mapsB } = t;
  if (shape.length === 1) {
    const map = mapsB[0];
    return {
      n, steps: 1, width: inner,
      fill(_s0, _s1, outA, outB) {
        for (let u = 0; u < n * inner; u++) {
          outA[u] = a[start + u]!;
          outB[u] = b[map ? map[start + u]! : start + u]!;
        }
      },
    };
  }
  const [rows, cols] = shape as [number, number];
  const [rowMap, colMap] = mapsB;
  if (axis === 0) {
    // Unit i, step c (a column), position q: element (start + i*inner + q, c).
    return {
      n, steps: cols, width: inner,
      fill(c0, c1, outA, outB) {
        const k = (c1 - c0) * inner;
        for (let i = 0; i < n; i++) {
          for (let q = 0; q < inner; q++) {
            const row = start + i * inner + q;
            const fromA = row * cols, fromB = (rowMap ? rowMap[row]! : row) * cols;
            const to = i * k + q;
            if (inner === 1 && !colMap) {
              outA.set(a.subarray(fromA + c0, fromA + c1), to);
              outB.set(b.subarray(fromB + c0, fromB + c1), to);
              continue;
            }
            for (let c = c0; c < c1; c++) {
              outA[to + (c - c0) * inner] = a[fromA + c]!;
              outB[to + (c - c0) * inner] = b[fromB + (colMap ? colMap[c]! : c)]!;
            }
          }
        }
      },
    };
  }
  // Axis 1. Unit i, step r (a row), position q: element (r, start + i*inner + q). Rows are read in
  // order; the scattered writes stay inside the chunk window.
  return {
    n, steps: rows, width: inner,
    fill(r0, r1, outA, outB) {
      const k = (r1 - r0) * inner, span = n * inner;
      for (let r = r0; r < r1; r++) {
        const fromA = r * cols, fromB = (rowMap ? rowMap[r]! : r) * cols, column = (r - r0) * inner;
        for (let u = 0; u < span; u++) {
          const i = (u / inner) | 0, q = u - i * inner, col = start + u;
          const to = i * k + column + q;
          outA[to] = a[fromA + col]!;
          outB[to] = b[fromB + (colMap ? colMap[col]! : col)]!;
        }
      }
    },
  };
}

/** A whole-axis unfolding of a 1- or 2-axis tensor pair, nothing permuted: the simple case. */
export function wholeAxis(shape: readonly number[], a: Float32Array, b: Float32Array, axis: 0 | 1): Unfolding {
  const size = shape.reduce((x, y) => x * y, 1);
  if (a.length !== size || b.length !== size || shape.length > 2 || axis >= shape.length) {
    throw new AlignmentError("E_COST_INVALID", `similarity: a tensor of shape [${shape.join(", ")}] with ${a.length}/${b.length} values cannot be unfolded on axis ${axis}`, {});
  }
  return tensorUnfolding({ shape, a, b, axis, start: 0, n: shape[axis]!, inner: 1, mapsB: shape.map(() => null) });
}
