/**
 * @file The API a weightsoup worker exposes (implemented in web-worker/worker.ts). Calls carry whole
 * job descriptions; inputs are read and outputs written by the worker itself.
 */
import type { FinalRequest, PassRequest, PassResult, TensorJob } from "../merge/job";

export interface WorkerStats {
  /** Largest wasm memory this worker has had (all its instances together), in bytes. */
  peakMemory: number;
}

export interface WorkerApi {
  /**
   * Loads `jobs` kernel instances, each with an equal share of the worker's wasm memory budget (bytes),
   * so that many jobs can be in flight in this worker at once.
   */
  init(memoryBudget: number, jobs: number, wasm?: Uint8Array): Promise<void>;
  /** Computes a whole single-chunk tensor: every pass on data read once. */
  runTensor(job: TensorJob): Promise<Uint8Array | undefined>;
  /** One pass over one chunk of a larger tensor (the chunk is read again). */
  runPass(job: TensorJob, chunk: number, request: PassRequest): Promise<PassResult>;
  /** The final pass over one chunk: computes and writes (or returns) its output. */
  runFinal(job: TensorJob, chunk: number, request: FinalRequest): Promise<Uint8Array | undefined>;
  /** Closes every file the worker opened. */
  release(): Promise<void>;
  stats(): WorkerStats;
}
