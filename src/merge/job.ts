/**
 * @file What a worker is asked to do. A TensorJob describes one output tensor completely (inputs as
 * file references and offsets, the operation, where the output bytes go), so any worker can read its
 * inputs itself and write its output itself. Tensors larger than one chunk are driven pass by pass:
 * each PassRequest runs over every chunk and returns one result per chunk.
 */
import type { FloatDtype } from "../format/dtypes";
import type { SourceRef } from "../io/source";
import type { TensorOp } from "../plan/plan";
import type { LoraDelta } from "../lora/delta";

export interface JobInput {
  source: SourceRef;
  /** For messages. */
  file: string;
  tensor: string;
  /** Absolute offset of the tensor's data in the file. */
  offset: number;
  dtype: string;
  shape: number[];
  /** Read only this top-left block of a 2-D tensor. */
  block?: { rows: number; cols: number };
  /** A LoRA delta added after reading (src/lora/apply.ts). */
  lora?: LoraDelta;
}

/**
 * Where output bytes go: a file the worker opens and writes at offsets (a path in Node, a file of the
 * browser's origin-private file system), back to the caller, or nowhere (they stay in the worker's
 * memory: benchmarks use it to time computation alone).
 */
export type OutputTarget =
  | { kind: "path"; path: string; /** The file as the person will find it (path is where it is staged), for messages. */ file: string }
  | { kind: "opfs"; handle: FileSystemFileHandle; /** Unique among the merge's files, for messages and caching. */ file: string }
  | { kind: "return" }
  | { kind: "memory" };

export interface TensorJob {
  /** Position in the plan. */
  index: number;
  name: string;
  numel: number;
  op: TensorOp;
  inputs: JobInput[];
  output: { target: OutputTarget; offset: number; dtype: string };
  loadDtype: FloatDtype | undefined;
  seed: number;
  /** Elements per chunk: a multiple of TILE; numel when the tensor is one chunk. */
  chunkElements: number;
}

export function chunkCount(job: TensorJob): number {
  return Math.max(1, Math.ceil(job.numel / job.chunkElements));
}

/** [start, end) elements of chunk c. */
export function chunkRange(job: TensorJob, c: number): [number, number] {
  const start = c * job.chunkElements;
  return [start, Math.min(job.numel, start + job.chunkElements)];
}

/** How one task vector is sparsified. `ties` gives, per chunk, how many elements equal to the threshold to keep. */
export type Trim =
  | { mode: "none" }
  | { mode: "magnitude"; threshold: number; ties: number[] }
  | { mode: "random"; threshold: number; key: number };

export type PassRequest =
  /** Per tile: sum v0^2, sum v1^2, sum v0*v1 (inputs 0 and 1). */
  | { kind: "slerpStats" }
  /** Sample histograms of |tau| for these task indices (0 = first input after the base). */
  | { kind: "sample"; tasks: number[] }
  /**
   * One radix-select pass per entry. `compact` (a key count, 0 for none) lets a resident chunk keep up
   * to that many of the keys inside for later passes.
   */
  | { kind: "range"; ranges: { task: number; lo: number; hi: number; shift: number; compact: number }[] }
  /** Per tile and task: sum |tau| and sum |masked tau|. */
  | { kind: "maskedL1"; trims: Trim[] };

export interface SampleResult { hist: Uint32Array; sampled: number }
export interface RangeResult { hist: Uint32Array; above: number; inside: number }

export type PassResult =
  | { kind: "slerpStats"; partials: Float64Array }
  | { kind: "sample"; samples: SampleResult[] }
  | { kind: "range"; ranges: RangeResult[] }
  | { kind: "maskedL1"; partials: Float64Array };

export type FinalRequest =
  | { kind: "copy" }
  | { kind: "sum"; weights: number[]; normalize: boolean; divisor: number }
  | {
      kind: "taskVector"; trims: Trim[]; rescales: number[]; weights: number[]; consensus: boolean;
      normalize: boolean; divisor: number; lambda: number;
    };

/** Runs passes over a tensor's chunks (in a worker for a resident tensor, across workers otherwise). */
export interface TensorExecutor {
  readonly chunks: number;
  /** One chunk holding the whole tensor in memory across passes. */
  readonly resident: boolean;
  pass(request: PassRequest): Promise<PassResult[]>;
  final(request: FinalRequest): Promise<void>;
}
