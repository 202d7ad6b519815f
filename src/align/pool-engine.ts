/**
 * @file Similarity matrices and assignments on a worker pool: every worker reads the two models'
 * tensors from their files itself (./worker-tensors.ts), so the calling thread holds no weights; in
 * browsers the workers solve the assignments too, so a page's main thread does no heavy work. A
 * large matrix is cut into row blocks, one per worker; the rows of S come out the same bit for bit
 * however they are cut (./similarity.ts), so the permutations do not depend on the number of workers.
 */
import type { Remote } from "comlink";
import type { LoadedModel } from "../model/model";
import type { WorkerApi } from "../pool/worker-api";
import type { WorkerPool } from "../pool/pool";
import { IS_NODE } from "../env";
import { nameHash } from "../name-hash";
import { assignMax, responseOf, type SimilarityEngine } from "./engine";
import type { BlockRef } from "./group-similarity";
import type { AlignmentStats, AlignmentTensors } from "./worker-tensors";

/** A worker for a tensor name, the same every time. */
function workerOf(name: string, workers: number): number {
  return nameHash(name) % workers;
}

/** Below this many rows a matrix is not split: the product is too small to pay for reading B twice. */
const MIN_BLOCK_ROWS = 128;

export interface PoolEngine extends SimilarityEngine {
  /** Every worker's alignment figures. */
  stats(): Promise<AlignmentStats[]>;
  /** Drops the workers' alignment state (the pool stays up). */
  close(): Promise<void>;
}

/**
 * Opens alignment in every worker of `pool`: a kernel instance of `memoryBudget` bytes each, and up
 * to `cacheBytes` of decoded tensors kept, read from `reference` (A) and `model` (B) by name.
 */
export async function openPoolEngine(pool: WorkerPool, reference: LoadedModel, model: LoadedModel, names: Iterable<string>, options: { memoryBudget: number; cacheBytes: number }): Promise<PoolEngine> {
  const tensors: AlignmentTensors = { a: new Map(), b: new Map() };
  for (const name of names) {
    tensors.a.set(name, reference.tensors.get(name)!);
    tensors.b.set(name, model.tensors.get(name)!);
  }
  await pool.each((api) => api.alignOpen(options.memoryBudget, options.cacheBytes, tensors));
  let busy = 0;
  // Where the assignments are solved. A page's main thread must stay free, so its workers solve them;
  // in Node the calling thread has nothing else to do, and solving there overlaps the workers' next
  // similarity matrices (bench section 7: 2 workers 29.5 s this way, 36.5 s with the workers solving).
  // Either way gives the same permutations: the solver is the same wasm, run on the same matrix.
  const solveOnWorkers = !IS_NODE;
  // Split only a matrix asked for alone: with others in flight the workers are busy already, and
  // a split costs each worker a full read of B. (How a matrix is split never changes its bits.)
  const parts = (n: number) => busy > 0 ? 1 : Math.max(1, Math.min(pool.size, Math.floor(n / MIN_BLOCK_ROWS)));
  // A small matrix goes to the worker its first tensor belongs to: the joint head solves ask for
  // hundreds of them over one layer's tensors, which that worker then keeps.
  const onOneWorker = <T>(n: number, blocks: BlockRef[], call: (api: Remote<WorkerApi>) => Promise<T>): Promise<T> =>
    n < MIN_BLOCK_ROWS ? pool.on(workerOf(blocks[0]?.tensor ?? "", pool.size), call) : pool.run(call);
  const engine: PoolEngine = {
    parallel: pool.size,
    async similarity(n: number, blocks: BlockRef[]) {
      if (parts(n) === 1 && n < MIN_BLOCK_ROWS) return onOneWorker(n, blocks, (api) => api.alignRows(n, blocks, 0, n));
      // Row blocks start at multiples of 4 (the GEMM's register block), though any split sums alike.
      const step = Math.ceil(n / parts(n) / 4) * 4;
      const out = new Float32Array(n * n);
      const jobs: Promise<void>[] = [];
      busy++;
      try {
        for (let u0 = 0; u0 < n; u0 += step) {
          const u1 = Math.min(n, u0 + step);
          jobs.push(pool.run((api) => api.alignRows(n, blocks, u0, u1)).then((rows) => out.set(rows, u0 * n)));
        }
        await Promise.all(jobs);
      } finally {
        busy--;
      }
      return out;
    },
    diagonal(blocks: BlockRef[]) {
      return pool.run((api) => api.alignDiagonal(blocks));
    },
    assign(n, scores) {
      return solveOnWorkers ? pool.run((api) => api.alignAssign(n, scores)) : assignMax(n, scores);
    },
    async bestResponse(n, blocks, current) {
      // A matrix one worker computes is solved there too; a split one is solved by a worker once gathered.
      if (solveOnWorkers && parts(n) === 1) return onOneWorker(n, blocks, (api) => api.alignBestResponse(n, blocks, current));
      const s = await engine.similarity(n, blocks);
      return responseOf(s, n, current, await engine.assign(n, s));
    },
    stats() {
      return pool.each((api) => api.alignStats());
    },
    async close() {
      await pool.each((api) => api.alignClose());
    },
  };
  return engine;
}
