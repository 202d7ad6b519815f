/**
 * @file Similarity matrices for weight matching: S = Σ over tensors of U_A · U_Bᵀ, where U is a tensor
 * unfolded so the permuted units index rows. Unfoldings are produced a column chunk at a time straight
 * into wasm memory, so a tensor of any size passes through a bounded window (CHUNK_BYTES per operand);
 * the product is the forward pass's GEMM (assembly/matmul.ts `linear`, accumulating), run in whatever
 * kernel instance the caller gives (./kernels.ts on the calling thread, a worker's own on the pool).
 *
 * Rows of S can be computed separately (./pool-engine.ts splits them over workers) and come out the
 * same bit for bit: `linear` sums every output from its own row of A and row of B alone (its
 * determinism contract), and the chunking of the columns depends only on n and the tensor, never on
 * which rows are asked for.
 */
import { DTYPE_F32, MATMUL_SCRATCH_BYTES } from "../../assembly/layout";
import { AlignmentError } from "../errors";
import type { Kernels } from "../kernels/kernels";
import { alignmentKernels } from "./kernels";

/**
 * n units of `width * steps` values each, in both models, produced in chunks of whole steps. Column
 * order inside an unfolding is free (S sums over columns) as long as A and B use the same one.
 */
export interface Unfolding {
  n: number;
  steps: number;
  width: number;
  /**
   * Writes steps [step0, step1) of A's units [u0, u1) into `a` ((u1 - u0) x k) and of all n of B's
   * units into `b` (n x k), k = (step1 - step0) * width.
   */
  fill(step0: number, step1: number, a: Float32Array, b: Float32Array, u0?: number, u1?: number): void;
}

/** Bytes of each operand's window in wasm memory. */
const CHUNK_BYTES = 4 << 20;

/** Steps per chunk of an unfolding: fixed by n and the width, so any row range sums the same chunks. */
const stepsPerChunk = (n: number, width: number) => Math.max(1, Math.floor(CHUNK_BYTES / 4 / (n * width)));

/**
 * Rows [u0, u1) of S (n columns, f32, row-major) in `kernels`' memory (its arena is reset):
 * S[i][j] = Σ over the unfoldings of <unit i of A, unit j of B>. `unfoldings` are produced one at a
 * time, so a caller that reads tensors on demand holds one tensor pair at a time; it must not use
 * the arena itself between them except under its own mark. Given a plain iterable it runs without
 * yielding, so calls on the calling thread's instance cannot interleave.
 */
export async function similarityRows(kernels: Kernels, n: number, unfoldings: Iterable<Unfolding> | AsyncIterable<Unfolding>, u0 = 0, u1 = n): Promise<Float32Array> {
  const { exports, arena } = kernels;
  const rows = u1 - u0;
  arena.reset();
  const s = arena.alloc(rows * n * 4), scratch = arena.alloc(MATMUL_SCRATCH_BYTES);
  arena.f32(s, rows * n).fill(0);
  const add = (u: Unfolding) => {
    if (u.n !== n) throw new AlignmentError("E_COST_INVALID", `similarity: an unfolding has ${u.n} units, expected ${n}`, {});
    const per = stepsPerChunk(n, u.width);
    const mark = arena.mark();
    const chunk = Math.min(u.steps, per) * u.width;
    const a = arena.alloc(rows * chunk * 4), b = arena.alloc(n * chunk * 4);
    for (let step0 = 0; step0 < u.steps; step0 += per) {
      const step1 = Math.min(u.steps, step0 + per), k = (step1 - step0) * u.width;
      // Views are taken after the allocations: growing memory would detach earlier ones.
      u.fill(step0, step1, arena.f32(a, rows * k), arena.f32(b, n * k), u0, u1);
      exports.linear(a, rows, k, b, DTYPE_F32, n, s, 1, scratch);
    }
    arena.release(mark);
  };
  if (Symbol.asyncIterator in unfoldings) for await (const u of unfoldings) add(u);
  else for (const u of unfoldings) add(u);
  return arena.f32(s, rows * n).slice();
}

/** S (n x n, f32, row-major) on the calling thread: S[i][j] = Σ over the unfoldings of <unit i of A, unit j of B>. */
export async function similarityMatrix(n: number, unfoldings: Unfolding[]): Promise<Float32Array> {
  return similarityRows(await alignmentKernels(), n, unfoldings);
}

export interface DiagonalSums {
  dot: number;
  normA: number;
  normB: number;
}

/** Σ of <unit i of A, unit i of B> and the squared norms, over the unfoldings (no matrix). */
export async function diagonalSums(unfoldings: Iterable<Unfolding> | AsyncIterable<Unfolding>): Promise<DiagonalSums> {
  let dot = 0, normA = 0, normB = 0;
  for await (const u of unfoldings) {
    const per = stepsPerChunk(u.n, u.width);
    const size = Math.min(u.steps, per) * u.width * u.n;
    const a = new Float32Array(size), b = new Float32Array(size);
    for (let step0 = 0; step0 < u.steps; step0 += per) {
      const step1 = Math.min(u.steps, step0 + per), k = (step1 - step0) * u.width * u.n;
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
 * Units [u0, u1) of one model's block (`maps`: its source index per position of each axis, null for
 * identity), steps [step0, step1), into `out` as (u1 - u0) rows of k values.
 * Columns are (other-axis index, position inside the unit), the other axis chunked in steps, so a
 * chunk reads whole rows (axis 0) or whole row ranges (axis 1).
 */
function unfoldInto(t: TensorBlock, data: Float32Array, maps: (Int32Array | null)[], step0: number, step1: number, u0: number, u1: number, out: Float32Array): void {
  const { shape, axis, start, inner } = t;
  if (shape.length === 1) {
    const map = maps[0];
    for (let u = u0 * inner, to = 0; u < u1 * inner; u++, to++) out[to] = data[map ? map[start + u]! : start + u]!;
    return;
  }
  const cols = shape[1]!;
  const [rowMap, colMap] = maps;
  const k = (step1 - step0) * inner;
  if (axis === 0) {
    // Unit i, step c (a column), position q: element (start + i*inner + q, c).
    for (let i = u0; i < u1; i++) {
      for (let q = 0; q < inner; q++) {
        const row = start + i * inner + q;
        const from = (rowMap ? rowMap[row]! : row) * cols, to = (i - u0) * k + q;
        if (inner === 1 && !colMap) {
          out.set(data.subarray(from + step0, from + step1), to);
          continue;
        }
        for (let c = step0; c < step1; c++) out[to + (c - step0) * inner] = data[from + (colMap ? colMap[c]! : c)]!;
      }
    }
    return;
  }
  // Axis 1. Unit i, step r (a row), position q: element (r, start + i*inner + q). Rows are read in
  // order; the scattered writes stay inside the chunk window.
  if (inner === 1) {
    // One position per unit (a residual stream's columns): a transpose, in tiles of rows so the
    // strided writes of a tile land in few cache lines.
    for (let r0 = step0; r0 < step1; r0 += 16) {
      const r1 = Math.min(step1, r0 + 16);
      for (let i = u0; i < u1; i++) {
        const col = start + i, c = colMap ? colMap[col]! : col, to = (i - u0) * k - step0;
        for (let r = r0; r < r1; r++) out[to + r] = data[(rowMap ? rowMap[r]! : r) * cols + c]!;
      }
    }
    return;
  }
  for (let r = step0; r < step1; r++) {
    const from = (rowMap ? rowMap[r]! : r) * cols, column = (r - step0) * inner;
    for (let u = u0 * inner; u < u1 * inner; u++) {
      const i = (u / inner) | 0, q = u - i * inner, col = start + u;
      out[(i - u0) * k + column + q] = data[from + (colMap ? colMap[col]! : col)]!;
    }
  }
}

/** Unfolds a block of a tensor along `axis`: A as it is, B through `mapsB`. */
export function tensorUnfolding(t: TensorBlock): Unfolding {
  const { shape, axis, n, inner } = t;
  const identity = shape.map(() => null);
  return {
    n, steps: shape.length === 1 ? 1 : shape[1 - axis]!, width: inner,
    fill(step0, step1, outA, outB, u0 = 0, u1 = n) {
      unfoldInto(t, t.a, identity, step0, step1, u0, u1, outA);
      unfoldInto(t, t.b, t.mapsB, step0, step1, 0, n, outB);
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
