/**
 * @file Where weight matching gets its similarity matrices and solves its assignments: the models'
 * tensors in memory on the calling thread (this file), or read from their files by the workers of a
 * pool, which also solve the assignments (./pool-engine.ts: the calling thread, a page's main thread,
 * then only orders the work). Both compute every entry and every assignment the same way, so they give
 * the same matrices and permutations bit for bit.
 */
import { AlignmentError } from "../errors";
import type { Kernels } from "../kernels/kernels";
import { linearSumAssignment } from "./assignment";
import { unfoldLoaded, type BlockRef, type TensorPair } from "./group-similarity";
import { alignmentKernels } from "./kernels";
import { diagonalSums, similarityRows, type DiagonalSums } from "./similarity";
import type { Tensor } from "./weight-matching";

export interface SimilarityEngine {
  /** How many groups are worth solving at once (the calling thread computes one matrix at a time). */
  readonly parallel: number;
  /** S (n x n, row-major) of the blocks: S[i][j] = Σ <unit i of A, unit j of B>. */
  similarity(n: number, blocks: BlockRef[]): Promise<Float32Array>;
  /** Σ <unit i of A, unit i of B> and the squared norms over the blocks. */
  diagonal(blocks: BlockRef[]): Promise<DiagonalSums>;
  /** The permutation maximising Σ_i scores[i][perm[i]] (n x n, row-major). */
  assign(n: number, scores: Float32Array | Float64Array): Promise<Int32Array>;
  /** A group's best response: its similarity matrix's assignment, and the totals under `current` and under it. */
  bestResponse(n: number, blocks: BlockRef[], current: Int32Array): Promise<GroupResponse>;
}

export interface GroupResponse {
  perm: Int32Array;
  /** Σ_i S[i][current[i]] and Σ_i S[i][perm[i]]. */
  before: number;
  after: number;
}

/** The best assignment of S (n x n), solved in `kernels` (a worker's) or the calling thread's instance. */
export async function assignMax(n: number, s: Float32Array | Float64Array, kernels?: Kernels): Promise<Int32Array> {
  return (await linearSumAssignment({ rows: n, cols: n, data: s }, { maximize: true, ...(kernels ? { kernels } : {}) })).columnIndices;
}

/** S's totals under the current permutation and under the new one. */
export function responseOf(s: Float32Array, n: number, current: Int32Array, perm: Int32Array): GroupResponse {
  let before = 0, after = 0;
  for (let i = 0; i < n; i++) {
    before += s[i * n + current[i]!]!;
    after += s[i * n + perm[i]!]!;
  }
  return { perm, before, after };
}

/** An engine over two models' tensors held in memory, computing on the calling thread. */
export function memoryEngine(a: ReadonlyMap<string, Tensor>, b: ReadonlyMap<string, Tensor>): SimilarityEngine {
  const load = (name: string): TensorPair => {
    const ta = a.get(name), tb = b.get(name);
    if (!ta || !tb) throw new AlignmentError("E_TENSOR_MISSING", `no tensor "${name}" in ${ta ? "the model to align" : "the reference model"}`, { tensor: name });
    return { shape: ta.shape, a: ta.data, b: tb.data };
  };
  const similarity = async (n: number, blocks: BlockRef[]) => similarityRows(await alignmentKernels(), n, unfoldLoaded(blocks, load));
  return {
    parallel: 1,
    similarity,
    diagonal(blocks) {
      return diagonalSums(unfoldLoaded(blocks, load));
    },
    assign: (n, scores) => assignMax(n, scores),
    async bestResponse(n, blocks, current) {
      const s = await similarity(n, blocks);
      return responseOf(s, n, current, await assignMax(n, s));
    },
  };
}
