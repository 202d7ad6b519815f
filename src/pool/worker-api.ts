/**
 * @file The API a weightsoup worker exposes (implemented in web-worker/worker.ts). Calls carry whole
 * job descriptions; inputs are read and outputs written by the worker itself.
 */
import type { FinalOutcome, FinalRequest, PassRequest, PassResult, TensorJob } from "../merge/job";
import type { DecoderSpec } from "../eval/architecture";
import type { LayerWeights, SequenceScores, WeightRef } from "../eval/protocol";
import type { GenerationWeights, Sampling } from "../eval/generator";
import type { CompiledKernels } from "../kernels/kernels";
import type { BlockRef } from "../align/group-similarity";
import type { DiagonalSums } from "../align/similarity";
import type { GroupResponse } from "../align/engine";
import type { AlignmentStats, AlignmentTensors } from "../align/worker-tensors";

export interface WorkerStats {
  /** Largest wasm memory this worker has had (all its instances together), in bytes. */
  peakMemory: number;
  /** Bytes its merge jobs have read from input files. */
  bytesRead: number;
}

/** A whole tensor computed in a worker: its bytes when they come back, and a warning for the person (runTensor). */
export interface TensorOutcome {
  bytes?: Uint8Array;
  warning?: string;
}

export interface WorkerApi {
  /**
   * Loads `jobs` kernel instances, each with an equal share of the worker's wasm memory budget (bytes),
   * so that many jobs can be in flight in this worker at once: from `wasm`, the kernels the pool
   * compiled (or other bytes), else the worker's embedded build.
   */
  init(memoryBudget: number, jobs: number, wasm?: Uint8Array | CompiledKernels): Promise<void>;
  /** Computes a whole single-chunk tensor: every pass on data read once. */
  runTensor(job: TensorJob): Promise<TensorOutcome>;
  /**
   * One pass over one chunk of a larger tensor: the chunk is read again, unless `hold` names the
   * instance it was loaded into by an earlier call with that hold (the pool reserved it, see
   * WorkerPool.hold), where it stays until the final pass or releaseHold.
   */
  runPass(job: TensorJob, chunk: number, request: PassRequest, hold?: number): Promise<PassResult>;
  /**
   * The final pass over one chunk: computes and writes (or returns) its output, then lets `hold` go.
   * Says what NaN or infinite values the chunk's output holds.
   */
  runFinal(job: TensorJob, chunk: number, request: FinalRequest, hold?: number): Promise<FinalOutcome>;
  /** Lets a hold's instance go without a final pass (a tensor that failed or needs no output). */
  releaseHold(hold: number): void;
  /** Closes every file the worker opened. */
  release(): Promise<void>;

  // Evaluation (src/eval/session.ts): one more kernel instance holding this worker's sequences.
  /** Creates the evaluation instance with `memoryBudget` bytes of wasm memory. */
  evalOpen(memoryBudget: number): Promise<void>;
  /** The token sequences this worker evaluates (every model's states are dropped). */
  evalSequences(sequences: Int32Array[]): Promise<void>;
  evalEmbed(model: string, spec: DecoderSpec, embed: WeightRef, positions: WeightRef | undefined): Promise<void>;
  evalLayer(model: string, spec: DecoderSpec, layer: number, weights: LayerWeights): Promise<void>;
  evalFinalNorm(model: string, spec: DecoderSpec, norm: WeightRef, bias: WeightRef | undefined): Promise<void>;
  /** `to`'s hidden states start as a copy of `from`'s (a sweep's points that share their first layers). */
  evalFork(from: string, to: string, hidden: number): Promise<void>;
  evalScore(model: string, lmHead: WeightRef, against: { model: string; lmHead: WeightRef }[]): Promise<SequenceScores>;
  /** Every position's logits of `model` for this worker's sequences, in order ([rows × vocab]). */
  evalLogits(model: string, lmHead: WeightRef): Promise<Float32Array>;

  // Generation (src/eval/generator.ts): the whole model resident in one more kernel instance.
  /** Loads every weight of a model for sequences of up to maxLength tokens, within memoryBudget bytes. */
  genLoad(memoryBudget: number, spec: DecoderSpec, weights: GenerationWeights, maxLength: number): Promise<void>;
  /** Generates after `prompt`; `onToken` (a comlink proxy) hears each token. Returns the new tokens. */
  genRun(prompt: Int32Array, maxNew: number, sampling: Sampling, stop: number[], onToken: (id: number) => void): Promise<Int32Array>;
  stats(): WorkerStats;

  // The model library (src/io/model-library.ts): a picked file copied into the origin-private file system.
  /**
   * Copies `blob` into `target` through a sync access handle, or with `part` its bytes [start, end)
   * into a new file other workers write the rest of; `onProgress` (a comlink proxy) hears the bytes copied.
   */
  copyToLibrary(blob: Blob, target: FileSystemFileHandle, name: string, onProgress: (bytes: number) => void, part?: { start: number; end: number }): Promise<void>;
  /** Whether several workers can write `target` at once (see io/library-copy.ts). */
  librarySharesWrites(target: FileSystemFileHandle): Promise<boolean>;

  // Alignment (src/align/pool-engine.ts): one more kernel instance, reading the models' tensors itself.
  /** Creates the alignment instance (`memoryBudget` bytes of wasm memory) over these tensors, keeping up to `cacheBytes` of them decoded. */
  alignOpen(memoryBudget: number, cacheBytes: number, tensors: AlignmentTensors): Promise<void>;
  /** Rows [u0, u1) of the similarity matrix (n columns) of these blocks. */
  alignRows(n: number, blocks: BlockRef[], u0: number, u1: number): Promise<Float32Array>;
  /** Σ <unit i of A, unit i of B> and the squared norms over these blocks. */
  alignDiagonal(blocks: BlockRef[]): Promise<DiagonalSums>;
  /** The whole similarity matrix (n x n) of these blocks, its best assignment, and the totals under `current` and under it. */
  alignBestResponse(n: number, blocks: BlockRef[], current: Int32Array): Promise<GroupResponse>;
  /** The best assignment of `scores` (n x n, row-major). */
  alignAssign(n: number, scores: Float32Array | Float64Array): Promise<Int32Array>;
  alignStats(): AlignmentStats;
  /** Drops the alignment instance and its tensors. */
  alignClose(): Promise<void>;
}
