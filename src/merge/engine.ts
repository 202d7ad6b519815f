/**
 * @file Running a plan: shards planned up front, every tensor computed by the worker pool (a tensor
 * that fits in one chunk entirely inside one worker, a larger one chunk by chunk across all workers),
 * progress reported, and the output committed only when everything is written.
 */
import { TILE } from "../../assembly/layout";
import { AbortError, OptionError, WorkerError } from "../errors";
import type { MergeEvent, ProgressCallback } from "../events";
import { DTYPES, type FloatDtype } from "../format/dtypes";
import { sha256Hex } from "../format/sha256";
import type { OutputFolder } from "../io/output";
import type { SourceRef } from "../io/source";
import { KERNEL_OVERHEAD_BYTES } from "../kernels/budget";
import { isNotCopiedToOutput } from "../model/model";
import type { MergePlan, PlannedTensor } from "../plan/plan";
import { indexJson, INDEX_FILE, planShards } from "../plan/shards";
import { WorkerPool } from "../pool/pool";
import { PoolExecutor } from "./pool-executor";
import { cutVocabularyRows, modelCard, outputConfig, VERSION } from "./card";
import { chunkCount, chunkRange, storedTensor, type FinalRequest, type OutputTarget, type PassRequest, type PassResult, type TensorExecutor, type TensorJob } from "./job";
import { runTensor } from "./run-tensor";
import { chunkUnit, extraBytesPerElement, needsPasses } from "./chunk-unit";
import { geometricExtraBytes, isGeometricMultiPass, geometricRowAlignment } from "../plan/geometric";
import { nowMs } from "../clock";

export interface EngineOptions {
  /** Worker count. */
  workers: number;
  workerUrl: URL | string;
  /** Wasm memory budget of each worker (bytes), shared by its JOBS_PER_WORKER jobs in flight. */
  memoryBudget: number;
  /** Largest chunk of input+output data a worker holds at once (bytes); capped by the budget. */
  chunkBytes: number;
  /** Elements per chunk, overriding chunkBytes (tests use it to force chunking). */
  chunkElements?: number;
  seed: number;
  /** Largest output shard (bytes of tensor data). */
  outShardSize: number;
  signal?: AbortSignal;
  onProgress?: ProgressCallback;
  /** Starts (or finishes starting) the pool of `size` workers the plan needs (default: WorkerPool.create). */
  startPool?: (size: number) => Promise<WorkerPool>;
  /**
   * Benchmarks only: read every input and write each output tensor's bytes (copied from its first
   * input, which must have the output's dtype) with the same I/O path, but compute nothing.
   */
  ioOnly?: boolean;
}

export interface MergeSummary {
  method: string;
  tensors: number;
  inputBytes: number;
  outputBytes: number;
  seconds: number;
  files: string[];
  workers: number;
  /** Largest wasm memory any worker reached (bytes). */
  peakWorkerMemory: number;
  /** Bytes the workers read from input files: inputBytes when every input is read once. */
  bytesRead: number;
  /** Multi-stage recipes: each stage's own summary, in the order they ran (the rest describes the final one). */
  stages?: { name: string | undefined; method: string; tensors: number; inputBytes: number; outputBytes: number; seconds: number }[];
}

/**
 * Elements per chunk: the whole tensor when it fits, else as many tiles as the limit allows. A tensor
 * whose operation needs several passes (statistics, TIES's select, rescaling) may stay resident in one
 * worker up to 1.5 times the streaming chunk size: reading it once beats reading it once per pass, and
 * the bound keeps a worker's memory, and so the process's, independent of the model's size (with the
 * defaults, 2 jobs per worker of at most 96 MiB each). A larger one is read once per pass, unless the
 * pool can hold all its chunks at once (see PoolExecutor); given `workers`, it takes one chunk per worker
 * when that fits the resident bound (chunkPerWorker), else, when it needs more chunks than the pool
 * holds, that many, when they fit (heldChunk).
 */
export function chunkElementsFor(t: PlannedTensor, options: Pick<EngineOptions, "memoryBudget" | "chunkBytes" | "chunkElements"> & { workers?: number }): number {
  const instanceBudget = Math.floor(options.memoryBudget / JOBS_PER_WORKER / 65536) * 65536;
  const rows = geometricRowAlignment(t.op);
  const unit = rows ? rows.cols : chunkUnit(t.op);
  if (options.chunkElements && rows) return Math.min(rowChunk(options.chunkElements, rows), Math.max(t.numel, 1));
  if (options.chunkElements) return Math.min(Math.max(unit, Math.floor(options.chunkElements / unit) * unit), Math.max(t.numel, 1));
  const perElement = t.inputs.reduce((s, i) => s + DTYPES[i.tensor.dtype]!.bits / 8, 0) + DTYPES[t.dtype]!.bits / 8 + extraBytesPerElement(t.op);
  const op = t.op;
  const trimmed = op.kind === "taskVector" && op.sparsify !== undefined ? op.tasks.filter((x) => x.density < 1).length : 0;
  const multiPass = op.kind === "slerp" || trimmed > 0 || needsPasses(op) || isGeometricMultiPass(op);
  // A resident TIES tensor also keeps candidate keys, about numel/8 per trimmed model.
  const candidates = (op.kind === "taskVector" && op.sparsify === "magnitude" ? trimmed * 0.5 : 0) + geometricExtraBytes(op);
  const available = instanceBudget - KERNEL_OVERHEAD_BYTES;
  // One pass over the data: stream it in cache-sized blocks (see STREAM_CHUNK_BYTES); several passes:
  // chunks of at most MULTI_PASS_CHUNK_BYTES; rows, and tensors read from picked files (readsInPieces),
  // keep the chunk limit. A chunk holds at least one unit.
  const cap = rows || t.inputs.some((i) => readsInPieces(i.tensor.source)) ? Infinity : multiPass ? MULTI_PASS_CHUNK_BYTES : STREAM_CHUNK_BYTES;
  const stream = Math.min(options.chunkBytes, available, Math.max(cap, unit * perElement));
  const resident = multiPass ? Math.min(1.5 * options.chunkBytes, available) : stream;
  if (t.numel * (perElement + candidates) <= resident) return Math.max(t.numel, 1);
  const fit = Math.floor(stream / (perElement + candidates));
  const elements = rows ? (fit < rows.cols ? 0 : rowChunk(fit, rows)) : Math.floor(stream / perElement / unit) * unit;
  const shared = multiPass && !rows && options.workers ? chunkPerWorker(t.numel, unit, options.workers) : 0;
  if (shared > 0 && shared * (perElement + candidates) <= resident) return shared;
  const held = multiPass && !rows && options.workers ? heldChunk(t.numel, elements, unit, options.workers * JOBS_PER_WORKER) : 0;
  if (held * perElement <= resident && held > 0) return held;
  if (elements < unit && !rows && unit > TILE) {
    // A tensor smaller than one unit (rows of odd length make lcm(TILE, row) large) is one chunk.
    const least = Math.min(unit, t.numel);
    const what = least < unit ? `the whole tensor, ${least} elements` : `${unit} elements`;
    throw new OptionError("E_OPTION", `tensor "${t.name}": della ranks within rows, so a chunk holds whole rows that also fill whole tiles: ${what} (${Math.ceil(least * perElement)} bytes) at least, more than the chunk size of ${options.chunkBytes} bytes (--chunk-size, option chunkBytes) and the memory budget allow; raise them`,
      { tensor: t.name, key: "chunkBytes", value: options.chunkBytes, needed: Math.ceil(least * perElement) });
  }
  if (elements < unit) {
    // Say which limit is too small: the chunk size when it is the smaller one, else the budget. Only
    // rows count the candidate keys (fit); a streamed chunk of tiles needs its inputs and output.
    // A tensor smaller than one unit is one chunk: the whole tensor must fit the resident bound above.
    const least = Math.min(unit, t.numel);
    const whole = least < unit;
    // Bytes one chunk holds; a whole multi-pass tensor may use 1.5 times the chunk size (resident, above).
    const held = whole ? Math.ceil(least * (perElement + candidates)) : unit * (perElement + (rows ? candidates : 0));
    const tile = whole && multiPass ? Math.ceil(held / 1.5) : held;
    if (options.chunkBytes < available) {
      const what = whole ? `this tensor is one chunk of ${least} elements, which needs a chunk size of at least ${tile} bytes` : `a chunk holds at least ${rows ? `one row of ${unit}` : unit} elements, ${tile} bytes of this tensor's inputs and output`;
      throw new OptionError("E_OPTION", `tensor "${t.name}": the chunk size of ${options.chunkBytes} bytes (--chunk-size, option chunkBytes) is too small; ${what}`,
        { tensor: t.name, key: "chunkBytes", value: options.chunkBytes, needed: tile });
    }
    const needed = JOBS_PER_WORKER * (held + KERNEL_OVERHEAD_BYTES);
    throw new WorkerError("E_MEMORY_BUDGET", `tensor "${t.name}": the memory budget of ${options.memoryBudget} bytes per worker (--memory-budget, option memoryBudget) is too small; this tensor needs at least ${Math.ceil(needed / 1048576)} MiB (${JOBS_PER_WORKER} kernel instances, each holding one chunk of ${least} elements)`,
      { tensor: t.name, key: "memoryBudget", value: options.memoryBudget, needed });
  }
  return elements;
}

/** Workers a merge starts: as asked, but no more than there are tensors to compute. */
export function poolSize(plan: MergePlan, workers: number): number {
  return Math.max(1, Math.min(workers, plan.tensors.filter((t) => t.outputBytes > 0).length));
}

/**
 * A multi-pass tensor too large for one kernel instance is cut into one chunk per worker when such a
 * chunk fits the resident bound (checked by the caller; 0: one worker, nothing to share). Its chunks are
 * held from the first pass to the last (see PoolExecutor), and a hold waits until that many instances
 * are free: a tensor held on the whole pool drains the pool before it starts, and each of its passes
 * ends with every instance waiting for the slowest chunk. Held on one instance per worker, it leaves
 * each worker's other instance to the next tensors meanwhile. On the bench's four 1 GiB models (MLP
 * weights of 11.5M elements, 2 workers: 2 chunks instead of 4 of 32 MiB) alternated runs of TIES and
 * DARE-TIES were 0.1–0.5 s faster in two series (medians 2.93 → 2.71 s, 3.58 → 3.15 s), DARE-TIES 0.1 s
 * in a third, TIES no faster in a fourth; a peak RSS of 350 MB instead of 282 MB (README, stop 36).
 */
function chunkPerWorker(numel: number, unit: number, workers: number): number {
  const chunk = Math.ceil(numel / workers / unit) * unit;
  return chunk < numel ? chunk : 0;
}

/**
 * A multi-pass tensor cut into more chunks than the pool holds at once is read once per pass (see
 * PoolExecutor); cut into as many chunks as it holds (`holdable` kernel instances), it is read once.
 * sce's chunks carry 8 bytes of variance per element, so on the bench's models its MLP weights (11.5M
 * BF16 elements) took 7 chunks of 32 MiB and seven reads each (the nonzero count, four radix rounds,
 * the squares, the merge). The chunks this returns (0: none) are as large as the resident bound allows
 * (checked by the caller), so a worker's memory stays within what a resident tensor may use.
 */
function heldChunk(numel: number, streamed: number, unit: number, holdable: number): number {
  if (streamed <= 0 || Math.ceil(numel / streamed) <= holdable) return 0;
  return Math.ceil(numel / holdable / unit) * unit;
}

/**
 * Largest chunk (bytes of inputs and output) of a tensor computed in one pass over its data. Such a
 * chunk is read, computed and written once, so nothing is gained by holding more; in blocks this small
 * the page-cache copies land in memory already mapped and in cache, and the kernel reads its inputs
 * back from cache rather than DRAM. On the bench's 1 GiB linear merge (bench/io-floor.ts) 64 MiB chunks
 * took about 1.7x the CPU time of 8 MiB ones and 2.5x the resident memory. Multi-pass tensors keep
 * larger chunks (MULTI_PASS_CHUNK_BYTES): each of their chunks is read once per pass.
 */
export const STREAM_CHUNK_BYTES = 8 * 1048576;

/**
 * A picked file (a Blob with no sync access handle behind it) is read through Blob.slice, and Chromium
 * hands a slice's bytes over at a rate that grows with the slice: on bench section 4's four 1 GiB
 * models, two workers reading them whole took 28-29 s in 1.6 MiB slices (what 8 MiB chunks of four
 * inputs and an output ask for), 18 s in 8 MiB ones and 13.4-15.2 s in 16-64 MiB ones. Tensors read
 * from one take chunks up to the chunk limit, whatever their passes.
 */
function readsInPieces(source: SourceRef): boolean {
  return source.kind === "blob" && !source.handle;
}

/**
 * Largest chunk of a multi-pass tensor too large to stay resident (TIES's select, DARE's rescaling,
 * ...): unless the pool holds them all (PoolExecutor), its chunks are read once per pass, so they stay
 * large, but not as large as the chunk limit. On
 * the bench's four 1 GiB models (bench section 3b) 32 MiB chunks against 64 MiB ones took TIES from
 * 3.85-4.00 s to 3.47-3.70 s and DARE-TIES from 4.43-4.60 s to 4.16-4.24 s (five alternations each),
 * with less system time (page-cache copies into smaller, reused buffers) and a third fewer page faults.
 * The resident bound (1.5 times the chunk limit) is unchanged.
 */
export const MULTI_PASS_CHUNK_BYTES = 32 * 1048576;

/**
 * Elements of as many whole rows as fit in `elements` (at least one row) for operations that work row
 * by row: a power of two rows when the rows are summed as a tree (assembly/geometry.ts).
 */
function rowChunk(elements: number, rows: { cols: number; powerOfTwo: boolean }): number {
  let n = Math.max(1, Math.floor(elements / rows.cols));
  if (rows.powerOfTwo) n = 2 ** Math.floor(Math.log2(n));
  return n * rows.cols;
}

/**
 * Jobs each worker holds at once, each in its own kernel instance with an equal share of the budget:
 * one job's reads and writes overlap the other's computation.
 */
export const JOBS_PER_WORKER = 2;

export async function runPlan(plan: MergePlan, out: OutputFolder, options: EngineOptions): Promise<MergeSummary> {
  const started = nowMs();
  const { signal } = options;
  const emit = (e: MergeEvent) => options.onProgress?.(e);
  const metadata = {
    format: "pt",
    weightsoup_version: VERSION,
    merge_method: plan.method.name,
    recipe_sha256: sha256Hex(plan.recipe.text),
  };
  const shards = planShards(plan.tensors, options.outShardSize, metadata);
  const jobs: { job: TensorJob; tensor: PlannedTensor; shard: number }[] = [];
  let pool: WorkerPool | undefined;
  const onAbort = () => pool?.abort(signal?.reason);
  try {
    signal?.throwIfAborted();
    // Chunk sizes first: a budget too small for some tensor fails before any file is created.
    // The pool's size bounds how many chunks it can hold at once.
    const size = poolSize(plan, options.workers);
    const chunking = new Map(plan.tensors.map((t) => [t, chunkElementsFor(t, { ...options, workers: size })]));
    const indexOf = new Map(plan.tensors.map((t, i) => [t, i]));
    for (const [s, shard] of shards.entries()) {
      const target: OutputTarget = await out.createFile(shard.file, shard.layout.size, shard.layout.head);
      for (const tensor of shard.tensors) {
        const job = tensorJob(plan, tensor, indexOf.get(tensor)!, { target, offset: shard.layout.offsets.get(tensor.name)! }, chunking.get(tensor)!, options.seed);
        jobs.push({ shard: s, tensor, job: options.ioOnly ? { ...job, op: { kind: "copy" } } : job });
      }
    }
    jobs.sort((a, b) => a.job.index - b.job.index);
    // Tensors of several chunks start first, the most chunks first: they take longest (a picked file's
    // lm_head ran alone for its last 9 s when it came last), and single-chunk tensors fill the
    // instances around them. Each output lands at its own offset, so the order changes no byte.
    const work = jobs.filter((j) => j.tensor.outputBytes > 0).sort((a, b) => chunkCount(b.job) - chunkCount(a.job));
    const inputBytes = plan.tensors.reduce((s, t) => s + t.inputBytes, 0);
    const outputBytes = plan.tensors.reduce((s, t) => s + t.outputBytes, 0);
    emit({
      type: "plan", method: plan.method.name, tensors: plan.tensors.length, shards: shards.length, inputBytes, outputBytes, workers: size,
      chunkedTensors: work.filter((j) => chunkCount(j.job) > 1).length,
    });
    for (const message of [...plan.warnings, ...(plan.tokenizerOutput?.warnings ?? [])]) emit({ type: "warning", message });
    const cutRows = cutVocabularyRows(plan);
    if (cutRows !== undefined) {
      emit({ type: "warning", message: `the models' vocabularies differ in size and the recipe has no tokenizer key: the embedding and output head keep the ${cutRows} rows every model has (mergekit's rule), config.json's vocab_size is set to ${cutRows}, and ${plan.donor}'s tokenizer is copied as it is, so ids from ${cutRows} on have no row; give tokenizer_source (base or union) to rebuild the vocabulary` });
    }

    signal?.throwIfAborted();
    signal?.addEventListener("abort", onAbort, { once: true });
    pool = await (options.startPool?.(size) ?? WorkerPool.create({ size, workerUrl: options.workerUrl, memoryBudget: options.memoryBudget, jobsPerWorker: JOBS_PER_WORKER }));
    signal?.throwIfAborted();

    let tensorsDone = jobs.length - work.length, bytesDone = 0;
    const shardLeft = shards.map((s) => s.tensors.filter((t) => t.outputBytes > 0).length);
    const progress = (bytes: number) => {
      bytesDone += bytes;
      emit({ type: "progress", bytesDone, bytesTotal: inputBytes });
    };
    const runOne = async ({ job, tensor, shard }: (typeof work)[number]) => {
      const chunks = chunkCount(job);
      emit({ type: "tensor-start", index: job.index, name: job.name, inputBytes: tensor.inputBytes, chunks });
      const file = shards[shard]!.file;
      const warning = await computeTensor(pool!, job, (offset, bytes) => out.write(file, offset, bytes), (fraction) => progress(tensor.inputBytes * fraction));
      if (warning) emit({ type: "warning", message: warning });
      tensorsDone++;
      emit({ type: "tensor-done", index: job.index, name: job.name, tensorsDone, tensorsTotal: jobs.length, bytesDone, bytesTotal: inputBytes });
      if (--shardLeft[shard]! === 0) emit({ type: "shard-written", file, index: shard, shards: shards.length, bytes: shards[shard]!.layout.size });
    };
    await runLimited(work, 2 * JOBS_PER_WORKER * size, runOne, (e) => pool?.fail(e instanceof Error ? e : new Error(String(e))));

    const stats = await pool.each((w) => w.stats());
    await pool.each((w) => w.release());
    await pool.terminate();
    pool = undefined;
    signal?.throwIfAborted();

    if (shards.length > 1) await out.writeText(INDEX_FILE, indexJson(shards, { weightsoup_version: VERSION }));
    const config = outputConfig(plan);
    if (config !== null) await out.writeText("config.json", config);
    const donor = plan.models.get(plan.donor)!;
    for (const file of await donor.folder.list()) {
      if (isNotCopiedToOutput(file) || file.startsWith(".") || ["config.json", "README.md", "mergekit_config.yml"].includes(file)) continue;
      if (plan.tokenizerOutput?.omit.has(file)) continue;
      await out.copyFrom(file, donor.folder.source(file));
    }
    for (const [file, text] of plan.tokenizerOutput?.files ?? []) await out.writeText(file, text);
    await out.writeText("README.md", modelCard(plan, out.name.split(/[\\/]/).filter(Boolean).pop() ?? "merged model"));
    await out.writeText("mergekit_config.yml", plan.recipe.text.endsWith("\n") ? plan.recipe.text : plan.recipe.text + "\n");
    signal?.throwIfAborted();
    const files = await out.commit();
    const seconds = (nowMs() - started) / 1000;
    emit({ type: "done", seconds, tensors: plan.tensors.length, inputBytes, outputBytes, files });
    return {
      method: plan.method.name, tensors: plan.tensors.length, inputBytes, outputBytes, seconds, files, workers: size,
      peakWorkerMemory: Math.max(0, ...stats.map((s) => s.peakMemory)), bytesRead: stats.reduce((sum, s) => sum + s.bytesRead, 0),
    };
  } catch (error) {
    pool?.abort(error);
    await pool?.terminate();
    await out.discard();
    throw signal?.aborted && !(error instanceof AbortError) ? new AbortError(undefined, { cause: signal.reason }) : error;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

/** Runs `fn` over items with at most `limit` in flight; stops at the first failure, reported to `onError` at once. */
async function runLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>, onError: (e: unknown) => void): Promise<void> {
  let next = 0;
  let failed: unknown;
  const lane = async () => {
    while (failed === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (e) {
        if (failed === undefined) {
          failed = e;
          onError(e);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failed !== undefined) throw failed;
}

/**
 * The job computing one planned tensor, its output going to `output` (an offset in a target). Jobs are
 * what workers are sent: file references and offsets, never tensor data.
 */
export function tensorJob(plan: MergePlan, tensor: PlannedTensor, index: number, output: { target: OutputTarget; offset: number }, chunkElements: number, seed: number): TensorJob {
  return {
    index, name: tensor.name, numel: tensor.numel, op: tensor.op,
    inputs: tensor.inputs.map((i) => ({
      ...storedTensor(i.tensor),
      ...(i.block ? { block: i.block } : {}),
      ...(i.rows ? { rows: i.rows } : {}),
      ...(i.lora ? { lora: i.lora } : {}),
    })),
    output: { ...output, dtype: tensor.dtype },
    loadDtype: loadDtypeOf(plan, tensor), seed, chunkElements,
  };
}

/**
 * The dtype a tensor's inputs are rounded to as they are read: the recipe's `dtype` (mergekit's load-time
 * cast), else, in the task-arithmetic family, the base's: mergekit casts every model to the base's dtype
 * before taking τ = x - b, so an F32 or F16 fine-tune of a BF16 base is rounded to bf16 first. (Rounding
 * an input to its own dtype changes nothing, and to F32 nothing either: every F16 and BF16 value is one.)
 */
function loadDtypeOf(plan: MergePlan, tensor: PlannedTensor): FloatDtype | undefined {
  if (plan.loadDtype !== undefined || tensor.op.kind !== "taskVector") return plan.loadDtype;
  const base = tensor.inputs[0]!.tensor.dtype;
  return base === "BF16" || base === "F16" ? base : undefined;
}

/**
 * Computes one tensor on the pool: in one worker when it is one chunk, else chunk by chunk across all
 * of them. Bytes that come back (targets of kind "return") go to `deliver` at their absolute offset
 * (job.output.offset + the chunk's start); `onDone` hears what fraction of the tensor each step covered.
 * Returns the tensor's warning, if any (runTensor).
 */
export async function computeTensor(pool: WorkerPool, job: TensorJob, deliver: (offset: number, bytes: Uint8Array) => Promise<void>, onDone: (fraction: number) => void): Promise<string | undefined> {
  if (chunkCount(job) === 1) {
    const { bytes, warning } = await pool.run((w) => w.runTensor(job));
    if (bytes) await deliver(job.output.offset, bytes);
    onDone(1);
    return warning;
  }
  return runTensor(job, new PoolExecutor(pool, job, deliver, (c) => onDone((chunkRange(job, c)[1] - chunkRange(job, c)[0]) / job.numel)));
}

/** SharedArrayBuffer exists here (Node; a cross-origin-isolated page) and can go to workers. */
const sharedMemory = typeof SharedArrayBuffer === "function" && (typeof crossOriginIsolated === "undefined" || crossOriginIsolated);

/**
 * A tensor computed on the pool into memory the caller keeps (`job`'s own output target is ignored;
 * offset 0 is the tensor's first byte). Where memory can be shared with workers, they write their
 * chunks straight into it, and the bytes then go on to other workers (an evaluation's) without a
 * copy; elsewhere each chunk comes back and is copied in. The tensor's warning (computeTensor) goes
 * to `onWarning`.
 */
export async function computeTensorBytes(pool: WorkerPool, job: TensorJob, byteLength: number, onWarning?: (message: string) => void): Promise<Uint8Array> {
  let bytes: Uint8Array, warning: string | undefined;
  if (sharedMemory) {
    bytes = new Uint8Array(new SharedArrayBuffer(byteLength));
    warning = await computeTensor(pool, { ...job, output: { ...job.output, target: { kind: "shared", bytes }, offset: 0 } }, async () => undefined, () => undefined);
  } else {
    const into = bytes = new Uint8Array(byteLength);
    warning = await computeTensor(pool, { ...job, output: { ...job.output, target: { kind: "return" }, offset: 0 } }, async (offset, chunk) => into.set(chunk, offset), () => undefined);
  }
  if (warning) onWarning?.(warning);
  return bytes;
}
