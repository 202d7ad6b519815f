/**
 * @file Where weight matching gets its similarity matrices from: the models' tensors in memory on the
 * calling thread (this file), or read from their files by the workers of a pool (./pool-engine.ts).
 * Both compute every entry the same way, so they give the same matrices bit for bit.
 */
import { AlignmentError } from "../errors";
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
}

/** An engine over two models' tensors held in memory, computing on the calling thread. */
export function memoryEngine(a: ReadonlyMap<string, Tensor>, b: ReadonlyMap<string, Tensor>): SimilarityEngine {
  const load = (name: string): TensorPair => {
    const ta = a.get(name), tb = b.get(name);
    if (!ta || !tb) throw new AlignmentError("E_TENSOR_MISSING", `no tensor "${name}" in ${ta ? "the model to align" : "the reference model"}`, { tensor: name });
    return { shape: ta.shape, a: ta.data, b: tb.data };
  };
  return {
    parallel: 1,
    async similarity(n, blocks) {
      return similarityRows(await alignmentKernels(), n, unfoldLoaded(blocks, load));
    },
    diagonal(blocks) {
      return diagonalSums(unfoldLoaded(blocks, load));
    },
  };
}
