/**
 * @file Similarity matrices for weight matching, on their own: S = Σ over tensors of U_A · U_Bᵀ,
 * where U is a tensor unfolded so the permuted axis indexes rows. The kernel is
 * assembly/similarity.ts, run in the alignment kernel instance (./kernels.ts).
 */
import { AlignmentError } from "../errors";
import { alignmentKernels } from "./kernels";


export interface UnfoldedPair {
  /** Reference model's tensor and the other model's, same shape, row-major f32. */
  a: Float32Array;
  b: Float32Array;
  /** The tensor's shape: [n] (a vector), [n, k] with axis 0, or [k, n] with axis 1. */
  shape: number[];
  /** The axis the permutation acts on. */
  axis: 0 | 1;
}

/** S (n x n, f32, row-major): S[i][j] = Σ over the pairs of <unit i of A, unit j of B>. */
export async function similarityMatrix(n: number, pairs: UnfoldedPair[]): Promise<Float32Array> {
  const { exports, arena } = await alignmentKernels();
  arena.reset();
  const s = arena.alloc(n * n * 4);
  arena.f32(s, n * n).fill(0);
  for (const [index, p] of pairs.entries()) {
    const size = p.shape.reduce((x, y) => x * y, 1);
    if (p.a.length !== size || p.b.length !== size || (p.shape[p.axis] ?? 1) !== n || p.shape.length > 2) {
      throw new AlignmentError("E_COST_INVALID", `similarity: pair ${index} has shape [${p.shape.join(", ")}] and ${p.a.length}/${p.b.length} values; expected ${n} units on axis ${p.axis}`, { pair: index });
    }
    const k = size / n;
    const mark = arena.mark();
    const a = arena.alloc(size * 4), b = arena.alloc(size * 4);
    if (p.axis === 1 && p.shape.length === 2 && k > 1) {
      // Columns are the units: transpose both into n x k first.
      const ta = arena.alloc(size * 4), tb = arena.alloc(size * 4);
      arena.f32(ta, size).set(p.a);
      arena.f32(tb, size).set(p.b);
      exports.transpose(ta, k, n, a);
      exports.transpose(tb, k, n, b);
    } else {
      arena.f32(a, size).set(p.a);
      arena.f32(b, size).set(p.b);
    }
    exports.accumulateSimilarity(a, b, n, k, s);
    arena.release(mark);
  }
  const out = new Float32Array(n * n);
  out.set(arena.f32(s, n * n));
  return out;
}
