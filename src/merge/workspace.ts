/**
 * @file The worker side of a merge: one chunk of one tensor in wasm memory, and the passes over it.
 * Inputs are read straight into wasm memory (Node), outputs written straight from it, at the offsets
 * the plan gave them.
 */
import {
  DTYPE_NONE, RANGE_ABOVE, RANGE_BYTES, RANGE_INSIDE, RANGE_KEPT, SAMPLE_BUCKETS, SAMPLE_SHIFT, SUM_RECORD, TILE, TRIM_BITS, TRIM_MAGNITUDE,
  TRIM_NONE, TRIM_RANDOM, TV_CONSENSUS, TV_DTYPE, TV_KEY, TV_MASK, TV_MODE, TV_NORMALIZE, TV_PTR, TV_RECORD, TV_RESCALE, TV_THRESHOLD,
  TV_TIES, TV_WEIGHT, TASK_RANGE_CAND, TASK_RANGE_CAPACITY, TASK_RANGE_DTYPE, TASK_RANGE_HI, TASK_RANGE_HIST, TASK_RANGE_LO,
  TASK_RANGE_RECORD, TASK_RANGE_SHIFT, TASK_RANGE_STATS, TASK_RANGE_X,
} from "../../assembly/layout";
import { KeepBits, SceVariances, ramCounts, ramFinal, sceBracket, sceFinal, sceRange, sceSelect, sceSquares, sceVarianceSample, trimFields, voteFlags } from "./workspace-methods";
import { DTYPES } from "../format/dtypes";
import { WorkerError } from "../errors";
import { openSink, sinkKey, type OutputSink, type SinkTarget } from "../io/sink";
import { openSource, sourceKey, type ByteSource, type SourceRef } from "../io/source";
import type { Kernels } from "../kernels/kernels";
import { fusionKLPass, fusionRangePass, geometricFinal, gramPass, type ChunkView, type FusionRange } from "./geometric-chunk";
import { readMappedRows } from "../vocab/row-map";
import { applyLoraDelta } from "../lora/apply";
import { diagnoseChunk } from "../diagnose/chunk-stats";
import { chunkRange, type Counts, type FinalOutcome, type FinalRequest, type JobInput, type NonFinite, type KeySource, type PassRequest, type PassResult, type SelectKey, type TensorExecutor, type TensorJob, type Trim } from "./job";
import { SPARSE_SAMPLE_SHARE, sparseSampleStride } from "./select";

export interface LoadedChunk {
  job: TensorJob;
  chunk: number;
  start: number;
  count: number;
  inputs: { ptr: number; code: number; bytes: number }[];
  out: number;
}

/** Keys of |tau| inside [lo, hi) kept from a full pass, so later select rounds skip the full tensor. */
interface Candidates {
  ptr: number;
  capacity: number;
  count: number;
  lo: number;
  hi: number;
  /** Elements of the whole tensor with key >= hi. */
  above: number;
  complete: boolean;
}

export class ChunkWorkspace {
  private readonly sources = new Map<string, ByteSource>();
  private readonly outputs = new Map<string, OutputSink>();
  private loaded: LoadedChunk | undefined;
  private candidates = new Map<number, Candidates>();
  /** Arena top after the chunk's data: candidate buffers start here. */
  private dataTop = 0;
  /** DELLA's and DARE's keep bits and sce's variances of the loaded chunk, computed once for all its passes. */
  private readonly keepBits: KeepBits;
  /** Bytes read from input files so far (tests count them to bound the reads per tensor). */
  bytesRead = 0;
  private readonly variances: SceVariances;

  constructor(private readonly k: Kernels) {
    this.keepBits = new KeepBits(k);
    this.variances = new SceVariances(k);
  }

  /**
   * One pass over chunk `chunk` of a tensor too large for one worker. A sample pass (TIES's, sce's)
   * reads only the sampled runs of its inputs (a 64th of them): the select's bracket then costs no
   * full read.
   */
  async chunkPass(job: TensorJob, chunk: number, request: PassRequest): Promise<PassResult> {
    if ((request.kind === "sample" || request.kind === "sceSample") && job.inputs.every(readsAsPrefix)) {
      const wanted = request.kind === "sample" ? [0, ...request.tasks.map((t) => t + 1)] : job.inputs.map((_, i) => i);
      const runs = await this.readSampleRuns(job, chunk, wanted);
      return request.kind === "sample" ? this.sparseSample(job, runs, request.tasks) : this.sparseSceSample(job, chunk, runs);
    }
    await this.load(job, chunk);
    return this.pass(request);
  }

  /**
   * The elements of chunk `chunk` in the runs of sparseSampleStride (select.ts), a fixed pattern of the
   * whole tensor, read run by run into wasm memory, one packed region per wanted input.
   */
  private async readSampleRuns(job: TensorJob, chunk: number, wanted: number[]): Promise<{ ptrs: Map<number, number>; sampled: number }> {
    const { arena } = this.k;
    arena.reset();
    this.loaded = undefined;
    this.candidates.clear();
    this.keepBits.clear();
    this.variances.clear();
    const [start, end] = chunkRange(job, chunk);
    const runs: [number, number][] = [];
    const stride = sparseSampleStride(job.numel), run = stride / SPARSE_SAMPLE_SHARE;
    for (let s = Math.ceil(start / stride) * stride; s < end; s += stride) runs.push([s, Math.min(end, s + run)]);
    const sampled = runs.reduce((sum, [a, b]) => sum + b - a, 0);
    const ptrs = new Map(wanted.map((i) => [i, arena.alloc(Math.max(1, sampled) * (DTYPES[job.inputs[i]!.dtype]!.bits / 8))]));
    // Every region exists before the first read starts (see load).
    await Promise.all([...ptrs].map(async ([i, ptr]) => {
      const input = job.inputs[i]!;
      const eb = DTYPES[input.dtype]!.bits / 8;
      const source = this.source(input.source);
      let at = ptr;
      const reads = runs.map(([a, b]) => {
        const into = arena.u8(at, (b - a) * eb);
        at += (b - a) * eb;
        return source.readInto(input.offset + a * eb, into);
      });
      await Promise.all(reads);
      this.bytesRead += sampled * eb;
    }));
    return { ptrs, sampled };
  }

  /** Sample histograms of |tau| (as the "sample" pass) from the sampled runs of the base and the wanted tasks. */
  private sparseSample(job: TensorJob, { ptrs, sampled }: { ptrs: Map<number, number>; sampled: number }, tasks: number[]): PassResult {
    const { arena, exports } = this.k;
    const hists = tasks.map(() => arena.alloc(SAMPLE_BUCKETS * 4));
    const stats = arena.alloc(RANGE_BYTES);
    const code = (i: number) => DTYPES[job.inputs[i]!.dtype]!.code ?? DTYPE_NONE;
    const quant = job.loadDtype ? DTYPES[job.loadDtype]!.code! : DTYPE_NONE;
    tasks.forEach((t, i) => {
      arena.u32(hists[i]!, SAMPLE_BUCKETS).fill(0);
      // A radix pass over every key at the sample's resolution is the sample histogram.
      exports.absDeltaRange(ptrs.get(t + 1)!, code(t + 1), ptrs.get(0)!, code(0), sampled, quant, 0, KEY_END, SAMPLE_SHIFT, hists[i]!, 0, 0, stats);
    });
    return { kind: "sample", samples: hists.map((hist) => ({ ...this.countsOut(hist, SAMPLE_BUCKETS, sampled), sampled })) };
  }

  /** sce's variances at every sampled position (and how many are not zero), from the sampled runs of every input. */
  private sparseSceSample(job: TensorJob, chunk: number, { ptrs, sampled }: { ptrs: Map<number, number>; sampled: number }): PassResult {
    const inputs = job.inputs.map((input, i) => ({ ptr: ptrs.get(i)!, code: DTYPES[input.dtype]!.code ?? DTYPE_NONE, bytes: 0 }));
    const variances = new SceVariances(this.k);
    variances.ensure({ job, chunk, start: 0, count: sampled, inputs, out: 0 }, job.loadDtype ? DTYPES[job.loadDtype]!.code! : DTYPE_NONE);
    return { kind: "sceSample", sampled, nonzero: variances.nonzero, sample: this.k.arena.copyF64(variances.ptr, sampled) };
  }

  /** Reads chunk `chunk` of a job's inputs into wasm memory. */
  async load(job: TensorJob, chunk: number): Promise<void> {
    const { arena } = this.k;
    arena.reset();
    this.candidates.clear();
    this.keepBits.clear();
    this.variances.clear();
    const [start, end] = chunkRange(job, chunk);
    const count = end - start;
    const inputs = job.inputs.map((input) => {
      const bytes = count * (DTYPES[input.dtype]!.bits / 8);
      return { ptr: arena.alloc(bytes), code: DTYPES[input.dtype]!.code ?? DTYPE_NONE, bytes };
    });
    const out = arena.alloc(count * (DTYPES[job.output.dtype]!.bits / 8));
    // Every region exists before the first read starts: a memory.grow during a read would detach its view.
    await Promise.all(job.inputs.map((input, i) => this.read(input, start, end, inputs[i]!.ptr)));
    this.bytesRead += inputs.reduce((sum, i) => sum + i.bytes, 0);
    for (const [i, input] of job.inputs.entries()) {
      if (input.lora) await applyLoraDelta(this.k, input.lora, { ptr: inputs[i]!.ptr, dtype: input.dtype, start, end, cols: input.block?.cols ?? input.shape[1] ?? 1 }, (ref) => this.source(ref));
    }
    this.loaded = { job, chunk, start, count, inputs, out };
    this.dataTop = arena.mark();
  }

  /** Starts a new computation over the loaded chunk: select candidates of an earlier one are dropped. */
  beginTensor(): void {
    this.candidates.clear();
    this.keepBits.clear();
    this.variances.clear();
    this.k.arena.release(this.dataTop);
  }

  private source(ref: SourceRef): ByteSource {
    // Files on disk and library files (a sync access handle each) stay open for the worker's later reads.
    const key = sourceKey(ref);
    if (key === undefined) return openSource(ref);
    let s = this.sources.get(key);
    if (!s) this.sources.set(key, (s = openSource(ref)));
    return s;
  }

  /** Elements [start, end) of an input (in the output's row-major order) into wasm memory at ptr. */
  private async read(input: JobInput, start: number, end: number, ptr: number): Promise<void> {
    const eb = DTYPES[input.dtype]!.bits / 8;
    if (input.rows) {
      await readMappedRows({ ...input, rows: input.rows }, start, end, this.k.arena.u8(ptr, (end - start) * eb), (ref) => this.source(ref));
      return;
    }
    const source = this.source(input.source);
    const storedCols = input.shape[1] ?? 1;
    if (!input.block || input.block.cols === storedCols) {
      // A top-left block with all columns is a prefix of the tensor: one read.
      await source.readInto(input.offset + start * eb, this.k.arena.u8(ptr, (end - start) * eb));
      return;
    }
    const cols = input.block.cols;
    const reads: Promise<void>[] = [];
    for (let i = start; i < end;) {
      const row = Math.floor(i / cols);
      const stop = Math.min(end, (row + 1) * cols);
      const physical = row * storedCols + (i - row * cols);
      reads.push(source.readInto(input.offset + physical * eb, this.k.arena.u8(ptr + (i - start) * eb, (stop - i) * eb)));
      i = stop;
    }
    await Promise.all(reads);
  }

  private get chunk(): LoadedChunk {
    if (!this.loaded) throw new Error("no chunk loaded");
    return this.loaded;
  }

  /**
   * Runs one pass over the loaded chunk. With `copy` false the typed arrays in the result are views of
   * wasm memory, valid only until the next pass: for a caller in this worker that reads them at once.
   */
  pass(request: PassRequest, copy = true): PassResult {
    const { arena } = this.k;
    if (request.kind === "range") this.reserveCandidates(request.ranges.filter((r) => !r.key || r.key.kind === "absTau"));
    // Buffers kept for the chunk's later passes are made below this pass's temporaries.
    if (request.kind === "maskedL1" || request.kind === "diagnose") this.keepBits.ensure(this.chunk, request.trims, this.quant());
    if (request.kind === "maskedL1") this.keepBits.reserveDraws(this.chunk, request.trims);
    if (request.kind === "sceNonzero" || request.kind === "sceSample" || request.kind === "sceSelect" || request.kind === "sceBracket" || (request.kind === "sceSquares" && request.selection.mode === "top") || (request.kind === "range" && request.ranges.some((r) => r.key && r.key.kind !== "absTau"))) {
      this.variances.ensure(this.chunk, this.quant());
    }
    const mark = arena.mark();
    // Kernels write results into wasm memory; typed arrays over them are made only after the pass's
    // last allocation, since growing the memory detaches every view made before.
    const u32 = (ptr: number, n: number) => (copy ? arena.copyU32(ptr, n) : arena.u32(ptr, n));
    const f64 = ([ptr, n]: [number, number]) => (copy ? arena.copyF64(ptr, n) : arena.f64(ptr, n));
    try {
      switch (request.kind) {
        case "slerpStats":
          return { kind: "slerpStats", partials: f64(this.slerpStats()) };
        case "sample": {
          const samples = request.tasks.map((t) => this.sample(t));
          // As nonzero buckets even for a caller in this worker: the select walks them, not 65536 buckets.
          return { kind: "sample", samples: samples.map((s) => ({ ...this.countsOut(s.hist, SAMPLE_BUCKETS, s.sampled), sampled: s.sampled })) };
        }
        case "range": {
          const ranges = request.keys ? this.fusionRanges(request.ranges, request.keys) : this.ranges(request.ranges);
          return {
            kind: "range",
            ranges: ranges.map(({ hist, buckets, above, inside }) => {
              if (typeof hist !== "number") return { hist, above, inside };
              return { ...(copy ? this.countsOut(hist, buckets, inside) : { hist: u32(hist, buckets) }), above, inside };
            }),
          };
        }
        case "maskedL1":
          return { kind: "maskedL1", partials: f64(this.maskedL1(request.trims)) };
        case "sceNonzero":
          return { kind: "sceNonzero", count: this.variances.nonzero };
        case "sceSample":
          return { kind: "sceSample", sampled: this.chunk.count, nonzero: this.variances.nonzero, sample: f64(sceVarianceSample(this.k, this.variances, this.chunk.count)) };
        case "sceBracket": {
          const { above, inside, candidates } = sceBracket(this.k, this.variances, this.chunk.count, request.lo, request.hi, request.capacity);
          return { kind: "sceBracket", nonzero: this.variances.nonzero, above, inside, ...(candidates ? { candidates: f64(candidates) } : {}) };
        }
        case "sceSelect":
          return { kind: "sceSelect", cut: sceSelect(this.k, this.variances, this.chunk.count, request.k) };
        case "sceSquares":
          return { kind: "sceSquares", partials: f64(sceSquares(this.k, this.chunk, this.taskTable([]), this.quant(), this.variances, request.selection)) };
        case "ramCounts":
          return { kind: "ramCounts", partials: f64(ramCounts(this.k, this.chunk, this.taskTable([]), this.quant(), request.epsilon)) };
        case "gram":
          return { kind: "gram", partials: f64(gramPass(this.k, this.view(), request)) };
        case "fusionKL":
          return { kind: "fusionKL", kl: f64(fusionKLPass(this.k, this.view(), request.cols)) };
        case "diagnose":
          return { kind: "diagnose", partials: diagnoseChunk(this.k, this.chunk, request, (t, w, r) => this.taskTable(t, w, r), this.quant()) };
      }
      throw new Error(`unknown pass ${(request as { kind: string }).kind}`);
    } finally {
      arena.release(mark);
    }
  }

  /**
   * A copy of the histogram of `buckets` u32 counts at `hist` (summing to `total`) for the caller: a
   * large one as its nonzero buckets when they are few (a chunk's bracket over bf16 keys holds a few
   * thousand distinct keys in 2^18 buckets), which is what the worker sends and the caller adds up.
   */
  private countsOut(hist: number, buckets: number, total: number): Counts {
    const { arena } = this.k;
    if (buckets < SPARSE_MIN_BUCKETS) return { hist: arena.copyU32(hist, buckets) };
    const mark = arena.mark();
    try {
      const pairs = arena.alloc(Math.max(1, Math.min(total, buckets)) * 8);
      const n = this.k.exports.nonzeroBuckets(hist, buckets, pairs);
      return 4 * n > buckets ? { hist: arena.copyU32(hist, buckets) } : { pairs: arena.copyU32(pairs, 2 * n), buckets };
    } finally {
      arena.release(mark);
    }
  }

  /**
   * Candidate buffers live below every pass's temporaries, for the rest of this tensor. Each gets the
   * count asked for, if a fair share of the memory left in the budget allows it (else less, and later
   * rounds fall back to scanning the tensor).
   */
  private reserveCandidates(ranges: { task: number; id?: number; compact: number }[]): void {
    const wanted = ranges.filter((r) => r.compact > 0 && !this.candidates.has(r.id ?? r.task));
    for (const [i, { task, id, compact }] of wanted.entries()) {
      const free = this.k.arena.budget - this.k.arena.mark() - (4 << 20); // keep room for the pass itself
      const share = Math.floor(free / 4 / (wanted.length - i));
      const capacity = Math.max(0, Math.min(this.chunk.count, compact, share));
      if (capacity === 0) continue;
      this.candidates.set(id ?? task, { ptr: this.k.arena.alloc(capacity * 4), capacity, count: 0, lo: 0, hi: 0, above: 0, complete: false });
    }
  }

  private view(): ChunkView {
    const { start, count, inputs } = this.chunk;
    return { start, count, inputs, quant: this.quant() };
  }

  private tiles(): number {
    return Math.ceil(this.chunk.count / TILE);
  }

  private quant(): number {
    const d = this.chunk.job.loadDtype;
    return d ? DTYPES[d]!.code! : DTYPE_NONE;
  }

  /** Per-tile partials: [pointer, count of f64]. */
  private slerpStats(): [number, number] {
    const { inputs, count } = this.chunk;
    const partials = this.k.arena.alloc(this.tiles() * 24);
    this.k.exports.slerpStats(inputs[0]!.ptr, inputs[0]!.code, inputs[1]!.ptr, inputs[1]!.code, count, this.quant(), partials);
    return [partials, this.tiles() * 3];
  }

  private sample(task: number): { hist: number; sampled: number } {
    const { inputs, count } = this.chunk;
    const x = inputs[task + 1]!, b = inputs[0]!;
    const hist = this.k.arena.alloc(SAMPLE_BUCKETS * 4);
    this.k.arena.u32(hist, SAMPLE_BUCKETS).fill(0);
    const sampled = this.k.exports.absDeltaSample(x.ptr, x.code, b.ptr, b.code, count, this.quant(), hist);
    return { hist, sampled };
  }

  /**
   * arcee_fusion's ranges (computed keys, see KeySource): one kernel pass computes the importances and
   * counts them into every distinct range; selections asking for the same range share its histogram.
   */
  private fusionRanges(ranges: { lo: number; hi: number; shift: number }[], keys: KeySource) {
    const distinct = new Map<string, FusionRange>();
    for (const { lo, hi, shift } of ranges) distinct.set(`${lo}:${hi}:${shift}`, { lo, hi, shift });
    const results = fusionRangePass(this.k, this.view(), keys, [...distinct.values()]);
    const byId = new Map([...distinct.keys()].map((id, i) => [id, results[i]!]));
    return ranges.map(({ lo, hi, shift }) => byId.get(`${lo}:${hi}:${shift}`)!);
  }

  /**
   * The range passes of one request. sce's keys have their own pass; a |tau| range whose keys are all
   * among its candidates scans those; every other |tau| range is counted in one walk over the chunk
   * for all of them (absDeltaRanges: the base is read and decoded once, not once per task).
   */
  private ranges(requested: { task: number; id?: number; key?: SelectKey; lo: number; hi: number; shift: number }[]): RangeCounts[] {
    const { arena, exports } = this.k;
    const { inputs, count } = this.chunk;
    const walk: { at: number; task: number; lo: number; hi: number; shift: number; hist: number; buckets: number; stats: number; cand: Candidates | undefined }[] = [];
    const results: (RangeCounts | undefined)[] = requested.map((r, at) => {
      const { task, lo, hi, shift } = r;
      if (r.key && r.key.kind !== "absTau") return sceRange(this.k, this.variances, count, r.key, lo, hi, shift);
      const buckets = Math.max(1, Math.ceil((hi - lo) / 2 ** shift));
      const cand = this.candidates.get(r.id ?? task);
      if (!cand && arena.budget - arena.mark() < buckets * 4 + PASS_ROOM) return this.rangeInPieces(task, lo, hi, shift, buckets);
      const hist = arena.alloc(buckets * 4);
      arena.u32(hist, buckets).fill(0);
      const stats = arena.alloc(RANGE_BYTES);
      if (cand?.complete && lo >= cand.lo && hi <= cand.hi) {
        // Every key of [lo, hi) is among the candidates: scan them instead of the tensor, and keep only these.
        exports.keyRange(cand.ptr, cand.count, lo, hi, shift, hist, 1, stats);
        const v = arena.f64(stats, 3);
        const above = cand.above + v[RANGE_ABOVE / 8]!;
        Object.assign(cand, { count: v[RANGE_KEPT / 8]!, lo, hi, above });
        return { hist, buckets, above, inside: v[RANGE_INSIDE / 8]! };
      }
      walk.push({ at, task, lo, hi, shift, hist, buckets, stats, cand });
      return undefined;
    });
    if (walk.length > 0) {
      const table = arena.alloc(walk.length * TASK_RANGE_RECORD);
      const v = arena.view();
      walk.forEach((w, i) => {
        const rec = table + i * TASK_RANGE_RECORD, x = inputs[w.task + 1]!;
        const fields: [number, number][] = [
          [TASK_RANGE_X, x.ptr], [TASK_RANGE_DTYPE, x.code], [TASK_RANGE_LO, w.lo], [TASK_RANGE_HI, w.hi], [TASK_RANGE_SHIFT, w.shift],
          [TASK_RANGE_HIST, w.hist], [TASK_RANGE_CAND, w.cand?.ptr ?? 0], [TASK_RANGE_CAPACITY, w.cand?.capacity ?? 0], [TASK_RANGE_STATS, w.stats],
        ];
        for (const [offset, value] of fields) v.setUint32(rec + offset, value, true);
      });
      exports.absDeltaRanges(table, walk.length, inputs[0]!.ptr, inputs[0]!.code, count, this.quant());
      for (const w of walk) {
        const stats = arena.f64(w.stats, 3);
        const above = stats[RANGE_ABOVE / 8]!, inside = stats[RANGE_INSIDE / 8]!, kept = stats[RANGE_KEPT / 8]!;
        if (w.cand) Object.assign(w.cand, { count: kept, lo: w.lo, hi: w.hi, above, complete: kept === inside });
        results[w.at] = { hist: w.hist, buckets: w.buckets, above, inside };
      }
    }
    return results as RangeCounts[];
  }

  /**
   * The same pass when its histogram does not fit in the memory left (a chunked tensor's fine bracket
   * histogram, with a tight budget): the range is scanned piece by piece, each piece's histogram copied
   * out before the next. The chunk is in memory: this costs scans, not reads.
   */
  private rangeInPieces(task: number, lo: number, hi: number, shift: number, buckets: number) {
    const { arena, exports } = this.k;
    const { inputs, count } = this.chunk;
    const x = inputs[task + 1]!, b = inputs[0]!;
    // This pass's only other temporary is its stats record (each allocation rounds up to 16 bytes). The
    // chunk may leave less than PASS_ROOM: a budget of 16 MiB left 1 MiB, which did for 4 pieces.
    const piece = Math.floor((arena.budget - align16(arena.mark()) - align16(RANGE_BYTES) - 16) / 4);
    if (piece < MIN_PIECE_BUCKETS) {
      throw new WorkerError("E_MEMORY_BUDGET", `tensor "${this.chunk.job.name}": no memory left for a select pass over its chunk of ${count} elements (${arena.budget - arena.mark()} bytes free of ${arena.budget}); raise the memory budget or lower the chunk size`,
        { tensor: this.chunk.job.name, budget: arena.budget });
    }
    const hist = new Uint32Array(buckets);
    // The counts leave wasm memory piece by piece, so the next task's pass gets this memory back.
    const mark = arena.mark();
    const stats = arena.alloc(RANGE_BYTES), part = arena.alloc(piece * 4);
    let above = 0, inside = 0;
    for (let first = 0; first < buckets; first += piece) {
      const n = Math.min(piece, buckets - first);
      const pieceLo = lo + first * 2 ** shift, pieceHi = Math.min(hi, pieceLo + n * 2 ** shift);
      arena.u32(part, n).fill(0);
      exports.absDeltaRange(x.ptr, x.code, b.ptr, b.code, count, this.quant(), pieceLo, pieceHi, shift, part, 0, 0, stats);
      const v = arena.f64(stats, 3);
      inside += v[RANGE_INSIDE / 8]!;
      if (pieceHi === hi) above = v[RANGE_ABOVE / 8]!;
      hist.set(arena.u32(part, n), first);
    }
    arena.release(mark);
    return { hist, buckets, above, inside };
  }

  /** Writes a task-vector operand table (the arena's fresh memory is not zeroed: every field is set); returns its pointer. */
  private taskTable(trims: Trim[], weights?: number[], rescales?: number[]): number {
    const { inputs, chunk } = this.chunk;
    const table = this.k.arena.alloc(inputs.length * TV_RECORD);
    const v = this.k.arena.view();
    this.k.arena.u8(table, inputs.length * TV_RECORD).fill(0);
    inputs.forEach((input, i) => {
      const rec = table + i * TV_RECORD;
      v.setUint32(rec + TV_PTR, input.ptr, true);
      v.setUint32(rec + TV_DTYPE, input.code, true);
      if (i === 0) return;
      const trim = trims[i - 1] ?? { mode: "none" };
      v.setFloat32(rec + TV_WEIGHT, weights?.[i - 1] ?? 1, true);
      v.setFloat32(rec + TV_RESCALE, rescales?.[i - 1] ?? 1, true);
      const draw = trim.mode === "random" ? this.keepBits.draw(i - 1, trim) : undefined;
      if (draw?.drawn) {
        v.setUint32(rec + TV_MODE, TRIM_BITS, true);
        v.setUint32(rec + TV_MASK, draw.ptr, true);
      } else if (trim.mode === "none" || trim.mode === "magnitude" || trim.mode === "random") {
        v.setUint32(rec + TV_MODE, trim.mode === "none" ? TRIM_NONE : trim.mode === "magnitude" ? TRIM_MAGNITUDE : TRIM_RANDOM, true);
        v.setUint32(rec + TV_THRESHOLD, trim.mode === "none" ? 0 : trim.threshold, true);
        v.setUint32(rec + TV_TIES, trim.mode === "magnitude" ? trim.ties[chunk]! : 0, true);
        v.setUint32(rec + TV_KEY, trim.mode === "random" ? trim.key : 0, true);
        v.setUint32(rec + TV_MASK, draw?.ptr ?? 0, true); // random: maskedL1 draws into it
      } else {
        trimFields(v, rec, trim, chunk, this.keepBits.mask(i - 1));
      }
    });
    return table;
  }

  private maskedL1(trims: Trim[]): [number, number] {
    const { inputs, count, start } = this.chunk;
    const table = this.taskTable(trims);
    const n = this.tiles() * (inputs.length - 1) * 2;
    const partials = this.k.arena.alloc(n * 8);
    this.k.exports.maskedL1(table, inputs.length, count, start >>> 0, Math.floor(start / 2 ** 32), this.quant(), partials);
    this.keepBits.drawn();
    return [partials, n];
  }

  /**
   * Computes the chunk's output and writes it (or returns it, for a "return" target), with its NaN or
   * infinite values counted first (and, when there are any, the inputs holding some named).
   */
  async final(request: FinalRequest): Promise<FinalOutcome> {
    const { arena, exports } = this.k;
    const { job, inputs, count, start, out } = this.chunk;
    const outCode = DTYPES[job.output.dtype]!.code ?? DTYPE_NONE;
    let result = out;
    const mark = arena.mark();
    if (request.kind === "copy") {
      result = inputs[0]!.ptr;
    } else if (request.kind === "sum") {
      const table = arena.alloc(inputs.length * SUM_RECORD);
      const v = arena.view();
      inputs.forEach((input, i) => {
        v.setUint32(table + i * SUM_RECORD, input.ptr, true);
        v.setUint32(table + i * SUM_RECORD + 4, input.code, true);
        v.setFloat32(table + i * SUM_RECORD + 8, request.weights[i]!, true);
      });
      exports.weightedSum(table, inputs.length, count, this.quant(), request.normalize ? 1 : 0, request.divisor, out, outCode);
    } else if (request.kind === "sce") {
      if (request.selection.mode === "top") this.variances.ensure(this.chunk, this.quant());
      sceFinal(this.k, this.chunk, this.taskTable([], request.coefficients), this.quant(), this.variances, request.selection, outCode);
    } else if (request.kind === "ram") {
      ramFinal(this.k, this.chunk, this.taskTable([], request.lambdas), this.quant(), request.epsilon, outCode);
    } else if (request.kind === "combine" || request.kind === "nearswap" || request.kind === "fusion") {
      geometricFinal(this.k, this.view(), request, out, outCode);
    } else {
      this.keepBits.ensure(this.chunk, request.trims, this.quant());
      const table = this.taskTable(request.trims, request.weights, request.rescales);
      const flags = (request.normalize ? TV_NORMALIZE : 0) | (request.consensus ? TV_CONSENSUS : 0) | voteFlags(request);
      exports.taskVectorMerge(table, inputs.length, count, start >>> 0, Math.floor(start / 2 ** 32), this.quant(), flags, request.divisor, Math.fround(request.lambda), out, outCode);
    }
    arena.release(mark);
    const nonFinite = this.nonFinite(result, outCode);
    const found = nonFinite ? { nonFinite } : {};
    const bytes = count * (DTYPES[job.output.dtype]!.bits / 8);
    const target = job.output.target;
    if (target.kind === "memory") return found;
    if (target.kind === "return") return { bytes: arena.copyU8(result, bytes), ...found };
    if (target.kind === "shared") {
      target.bytes.set(arena.u8(result, bytes), job.output.offset + start * (DTYPES[job.output.dtype]!.bits / 8));
      return found;
    }
    await this.output(target).write(arena.u8(result, bytes), job.output.offset + start * (DTYPES[job.output.dtype]!.bits / 8));
    return found;
  }

  /**
   * The merged chunk's NaN or infinite values (a scan of the output, in cache after the merge), and only
   * when there are some, which inputs hold any in this chunk (a scan of each, stored as it was read).
   */
  private nonFinite(result: number, outCode: number): NonFinite | undefined {
    const { inputs, count } = this.chunk;
    const output = this.k.exports.countNonFinite(result, outCode, count);
    if (output === 0) return undefined;
    return { output, inputs: inputs.flatMap((input, i) => (this.k.exports.countNonFinite(input.ptr, input.code, count) > 0 ? [i] : [])) };
  }

  private output(target: SinkTarget): OutputSink {
    const key = sinkKey(target);
    let sink = this.outputs.get(key);
    if (!sink) this.outputs.set(key, (sink = openSink(target)));
    return sink;
  }

  /** Closes every file this workspace opened. */
  async release(): Promise<void> {
    const closing = [...this.sources.values()].map((s) => s.close());
    closing.push(...[...this.outputs.values()].map((sink) => sink.close()));
    this.sources.clear();
    this.outputs.clear();
    this.loaded = undefined;
    await Promise.allSettled(closing);
  }
}

/** A range pass's counts in one chunk: the histogram in wasm memory (a pointer) or already copied out. */
type RangeCounts = { hist: number | Uint32Array; buckets: number; above: number; inside: number };

/** Histograms from this many buckets up leave a worker as their nonzero buckets. */
const SPARSE_MIN_BUCKETS = 4096;
/** Memory kept free for a pass's other temporaries. */
const PASS_ROOM = 1 << 20;
/** The fewest buckets a piece of a range pass counts: below that, the scans of the chunk would be too many. */
const MIN_PIECE_BUCKETS = 4096;
const align16 = (n: number) => Math.ceil(n / 16) * 16;
/** One past the largest 31-bit |tau| key. */
const KEY_END = 0x80000000;

/** An input read as one byte range per element range: no row map, no LoRA delta, no column block. */
function readsAsPrefix(input: JobInput): boolean {
  return !input.rows && !input.lora && (!input.block || input.block.cols === (input.shape[1] ?? 1));
}

/** A tensor that fits in one chunk, loaded once and kept in this worker's memory for every pass. */
export class ResidentExecutor implements TensorExecutor {
  readonly chunks = 1;
  readonly resident = true;
  output: Uint8Array | undefined;
  constructor(private readonly ws: ChunkWorkspace) {
    ws.beginTensor();
  }
  /** Results are views of wasm memory, valid until the next pass (the tensor drivers read them at once). */
  async pass(request: PassRequest): Promise<PassResult[]> {
    return [this.ws.pass(request, false)];
  }
  async final(request: FinalRequest): Promise<NonFinite | undefined> {
    const { bytes, nonFinite } = await this.ws.final(request);
    this.output = bytes;
    return nonFinite;
  }
}
