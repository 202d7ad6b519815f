/**
 * @file What a worker is asked to do. A TensorJob describes one output tensor completely (inputs as
 * file references and offsets, the operation, where the output bytes go), so any worker can read its
 * inputs itself and write its output itself. Tensors larger than one chunk are driven pass by pass:
 * each PassRequest runs over every chunk and returns one result per chunk.
 */
import type { FloatDtype } from "../format/dtypes";
import type { SourceRef } from "../io/source";
import type { TensorOp } from "../plan/plan";
import type { VectorLayout } from "../plan/geometric";
import type { RowMap } from "../vocab/row-map";
import type { LoraDelta } from "../lora/delta";
import type { DiagnoseRequest } from "../diagnose/chunk-stats";
import type { TensorInfo } from "../model/model";

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
  /** An embedding rebuilt to the output vocabulary: read row by row through this map. */
  rows?: RowMap;
  /** A LoRA delta added after reading (src/lora/apply.ts). */
  lora?: LoraDelta;
}

/** Where a worker finds a stored tensor: what a job input and a LoRA factor (src/lora/delta.ts) share. */
export type StoredTensor = Pick<JobInput, "source" | "file" | "tensor" | "offset" | "dtype" | "shape">;

/** A checkpoint's tensor as a worker finds it. */
export function storedTensor(t: TensorInfo): StoredTensor {
  return { source: t.source, file: t.file, tensor: t.name, offset: t.offset, dtype: t.dtype, shape: t.shape };
}

/**
 * Where output bytes go: a file the worker opens and writes at offsets (a path in Node, a file of the
 * browser's origin-private file system), back to the caller, into memory the caller shares with the
 * workers (a SharedArrayBuffer the size of the tensor, written at the job's offsets: nothing is copied
 * on the way back), or nowhere (they stay in the worker's memory: benchmarks use it to time
 * computation alone).
 */
export type OutputTarget =
  | { kind: "path"; path: string; /** The file as the person will find it (path is where it is staged), for messages. */ file: string }
  | { kind: "opfs"; handle: FileSystemFileHandle; /** Unique among the merge's files, for messages and caching. */ file: string }
  | { kind: "return" }
  | { kind: "shared"; bytes: Uint8Array }
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
  /** Zeros whatever tau is (della at density <= 0, where mergekit returns zeros_like). */
  | { mode: "zero" }
  | { mode: "magnitude"; threshold: number; ties: number[] }
  | { mode: "random"; threshold: number; key: number }
  /** Breadcrumbs: the top-k set of (threshold, ties) minus the top-k set of (outlierThreshold, outlierTies). */
  | { mode: "band"; threshold: number; ties: number[]; outlierThreshold: number; outlierTies: number[] }
  /** DELLA: ranked keep probabilities per row (fibers along dim 1 of blocks of rowLength), drawn with DARE's generator (stream `key`). */
  | { mode: "della"; key: number; density: number; epsilon: number; rowLength: number; fiber: number };

/** What a radix-select pass ranks: |tau| of a task input, or sce's variance bits (high word, or low word among equal high words). */
export type SelectKey =
  | { kind: "absTau"; task: number }
  | { kind: "varianceHigh" }
  | { kind: "varianceLow"; high: number };

/** sce's selection (see assembly/sce.ts): all, none, or the positions above (high, low) plus `ties` per chunk equal to it. */
export type SceSelection =
  | { mode: "all" }
  | { mode: "none" }
  | { mode: "top"; high: number; low: number; ties: number[] };

export type PassRequest =
  /** Per tile: sum v0^2, sum v1^2, sum v0*v1 (inputs 0 and 1). */
  | { kind: "slerpStats" }
  /** Sample histograms of |tau| for these task indices (0 = first input after the base). */
  | { kind: "sample"; tasks: number[] }
  /**
   * One radix-select pass per entry. `id` names the selection (candidate buffers belong to it), `key`
   * what is ranked (|tau| of `task` when absent). `compact` (a key count, 0 for none) lets a resident
   * chunk keep up to that many of the keys inside for later passes (|tau| keys only).
   */
  | { kind: "range"; ranges: { task: number; id?: number; key?: SelectKey; lo: number; hi: number; shift: number; compact: number }[]; keys?: KeySource }
  /** Per tile and task: sum |tau| and sum |masked tau|. */
  | { kind: "maskedL1"; trims: Trim[] }
  /** sce: positions whose variance across the task vectors is not zero (one count per chunk). */
  | { kind: "sceNonzero" }
  /**
   * sce, chunked tensors: a sample of the variances, and how many of the sampled positions are not
   * zero. A chunk read run by run gives every position of its sampled runs (a 64th, see select.ts's
   * sparse sample); a loaded chunk, one position in SCE_SAMPLE_STRIDE and its whole nonzero count.
   */
  | { kind: "sceSample" }
  /**
   * sce: the variances in [lo, hi] ([high, low] words of their bits, both ends included), counted, and
   * in position order when at most `capacity` (and the chunk's memory allows); those above, and those
   * not zero, counted.
   */
  | { kind: "sceBracket"; lo: [number, number]; hi: [number, number]; capacity: number }
  /** sce, resident chunk only: the exact k-th largest variance, bracketed by a sample. */
  | { kind: "sceSelect"; k: number }
  /** sce: per tile and task, sum tau^2 over the selected positions. */
  | { kind: "sceSquares"; selection: SceSelection }
  /** ramplus_tl: per tile and task, positions where the task is active and shared, and active alone. */
  | { kind: "ramCounts"; epsilon: number }
  /** Gram matrices of the vectors (inputs, or task vectors with `offsets`): see assembly/geometry.ts. */
  | { kind: "gram"; layout: VectorLayout; cols: number; offsets: boolean }
  /** arcee_fusion: KL divergence of each row (inputs 0 and 1). */
  | { kind: "fusionKL"; cols: number }
  /** `diagnose` (src/diagnose/): per-tile statistics of the task vectors as the merge trims and votes on them. */
  | DiagnoseRequest;

/**
 * Select keys other than |tau| (see select.ts): arcee_fusion's importances |b - a| * KL_row, given
 * the float32 KL of every row of the tensor.
 */
export type KeySource = { kind: "fusion"; cols: number; kl: Float32Array };

/**
 * A histogram: dense (`hist`, one count per bucket) or, when a large and mostly empty one leaves a
 * worker, only its nonzero buckets as (bucket, count) pairs in bucket order (`pairs`, of `buckets`).
 */
export type Counts = { hist: Uint32Array } | { pairs: Uint32Array; buckets: number };
/** A sample pass's histogram of |tau| >>> SAMPLE_SHIFT, over `sampled` elements. */
export type SampleResult = Counts & { sampled: number };
/** One range pass's counts: keys at or above the range, keys inside it, and the histogram of those. */
export type RangeResult = Counts & { above: number; inside: number };

export type PassResult =
  | { kind: "slerpStats"; partials: Float64Array }
  | { kind: "sample"; samples: SampleResult[] }
  | { kind: "range"; ranges: RangeResult[] }
  | { kind: "maskedL1"; partials: Float64Array }
  | { kind: "sceNonzero"; count: number }
  | { kind: "sceSample"; sampled: number; nonzero: number; sample: Float64Array }
  | { kind: "sceBracket"; nonzero: number; above: number; inside: number; candidates?: Float64Array }
  /** The cut's bits (high, low words) and the variances above it; none when the sample's bracket missed or memory was short. */
  | { kind: "sceSelect"; cut?: { high: number; low: number; above: number } }
  | { kind: "sceSquares"; partials: Float64Array }
  | { kind: "ramCounts"; partials: Float64Array }
  | { kind: "gram"; partials: Float64Array }
  | { kind: "fusionKL"; kl: Float64Array }
  | { kind: "diagnose"; partials: Float64Array };

export type FinalRequest =
  | { kind: "copy" }
  /** `warning`: why the merge wrote this instead of the method's result (NaN inputs), for the person. */
  | { kind: "sum"; weights: number[]; normalize: boolean; divisor: number; warning?: string }
  | {
      kind: "taskVector"; trims: Trim[]; rescales: number[]; weights: number[]; consensus: boolean;
      normalize: boolean; divisor: number; lambda: number;
      /** Vote variants (consensus only): count signs instead of summing; vote on unweighted values. */
      countVote?: boolean; unweightedVote?: boolean;
    }
  /** sce: c_i per task (float32), the selection. */
  | { kind: "sce"; coefficients: number[]; selection: SceSelection }
  /** ram / ramplus_tl: lambda_i per task (1 for ram). */
  | { kind: "ram"; epsilon: number; lambdas: number[] }
  /**
   * out = [base +] sum_i coefs[i][k] * v_i: k is 0 (flat), the row, or the column of the element; a
   * vector's coefficients cover the whole tensor (each chunk takes its rows).
   */
  | { kind: "combine"; layout: VectorLayout; cols: number; offsets: boolean; coefs: Float32Array[]; warning?: string }
  | { kind: "nearswap"; t: number }
  /** arcee_fusion: inputs[1] where |x1 - x0| * kl[row] >= threshold, else inputs[0]. */
  | { kind: "fusion"; cols: number; kl: Float32Array; threshold: number };

/** Runs passes over a tensor's chunks (in a worker for a resident tensor, across workers otherwise). */
export interface TensorExecutor {
  readonly chunks: number;
  /** One chunk holding the whole tensor in memory across passes. */
  readonly resident: boolean;
  pass(request: PassRequest): Promise<PassResult[]>;
  /** Computes and writes the output; says what NaN or infinite values it holds (undefined: none). */
  final(request: FinalRequest): Promise<NonFinite | undefined>;
}

/**
 * NaN or infinite values in a merged tensor (or in the chunks of it a final pass computed): how many,
 * and which inputs (indices into job.inputs) hold any in those chunks, as the tensor's warning names them.
 */
export interface NonFinite {
  output: number;
  inputs: number[];
}

/** What one chunk's final pass gives back: its bytes for a "return" target, and its NaN or infinite values. */
export interface FinalOutcome {
  bytes?: Uint8Array;
  nonFinite?: NonFinite;
}

/** Counts of several chunks added up (undefined when no chunk found any). */
export function addNonFinite(parts: (NonFinite | undefined)[]): NonFinite | undefined {
  const found = parts.filter((p): p is NonFinite => p !== undefined);
  if (found.length === 0) return undefined;
  return { output: found.reduce((sum, p) => sum + p.output, 0), inputs: [...new Set(found.flatMap((p) => p.inputs))].sort((x, y) => x - y) };
}

/** Per-chunk arrays of a pass's results, one after the other in chunk order. */
export function concatChunks(parts: Float64Array[]): Float64Array {
  const all = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    all.set(p, offset);
    offset += p.length;
  }
  return all;
}

/**
 * The warning for a merged tensor holding NaN or infinite values that the method did not spread to every
 * element (nanThroughout's case): values carried element by element from the inputs that hold them, or
 * values beyond the output dtype's range.
 */
export function nonFiniteCarried(job: TensorJob, found: NonFinite): string {
  const from = found.inputs.map((i) => `${job.inputs[i]!.file} (tensor ${job.inputs[i]!.tensor})`);
  return `${job.name}: ${found.output} of ${job.numel} merged values are NaN or infinite` + (from.length
    ? `, carried from NaN or infinite values in ${from.join(", ")}; they are written as they are, as mergekit writes them`
    : `, and no input holds any there: the merged values overflow the output's ${job.output.dtype} (or the method's float32 arithmetic)`);
}

/** The tensor a warning of nonFiniteCarried or nanThroughout is about; undefined for any other message. */
export function nonFiniteWarningTensor(message: string): string | undefined {
  return /^(.+?): (?:NaN or infinite values in |\d+ of \d+ merged values are NaN or infinite)/.exec(message)?.[1];
}

/**
 * The warning for a tensor merged NaN throughout because input `input` (minus the base, inputs[0], when
 * `minusBase`) holds a NaN or infinite value that the method's coefficients carry to every element.
 */
export function nanThroughout(job: TensorJob, input: number, minusBase: boolean): string {
  const model = job.inputs[input]!, base = job.inputs[0]!;
  return `${job.name}: NaN or infinite values in ${model.file} (tensor ${model.tensor})${minusBase ? ` minus the base ${base.file} (tensor ${base.tensor})` : ""}; ` +
    `the merged tensor is NaN throughout, as mergekit's would be`;
}
