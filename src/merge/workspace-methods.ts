/**
 * @file The worker side of the task-vector family's newer methods (issue 10): DELLA's (and DARE's) keep
 * bits and sce's variances, each computed once per loaded chunk and kept for its later passes, sce's
 * select passes and merge, ram's counts and merge, and the operand-table fields of the newer trim modes.
 * ChunkWorkspace (workspace.ts) calls these with its loaded chunk.
 */
import {
  RANGE_ABOVE, RANGE_BYTES, RANGE_INSIDE, SCE_ALL, SCE_CUT, SCE_CUT_ABOVE, SCE_CUT_BYTES, SCE_CUT_EQUAL, SCE_HIGH, SCE_LOW, SCE_MODE, SCE_NONE, SCE_RECORD, SCE_TIES, SCE_TOP, TILE,
  TRIM_BAND, TRIM_BITS, TRIM_ZERO, TV_COUNT_VOTE, TV_DTYPE, TV_MASK, TV_MODE, TV_PTR, TV_RECORD, TV_THRESHOLD, TV_THRESHOLD2,
  TV_TIES, TV_TIES2, TV_UNWEIGHTED_VOTE, SCE_SAMPLE_STRIDE,
} from "../../assembly/layout";
import type { Kernels } from "../kernels/kernels";
import type { FinalRequest, SceSelection, SelectKey, Trim } from "./job";
import type { LoadedChunk } from "./workspace";
import { ALL_BITS, bracketRanks, NO_BITS, type Bits } from "./sce-cut";

/**
 * Keep bits of the loaded chunk, per task input: DELLA's, and DARE's as its L1 pass draws them (the
 * merge then reads the bits instead of drawing every element's number again).
 */
export class KeepBits {
  private readonly masks = new Map<number, number>();
  private readonly draws = new Map<number, { ptr: number; key: number; threshold: number; drawn: boolean }>();
  constructor(private readonly k: Kernels) {}

  clear(): void {
    this.masks.clear();
    this.draws.clear();
  }

  /** Room for the bits of every DARE-trimmed task, which the L1 pass about to run fills (see drawn). */
  reserveDraws(chunk: LoadedChunk, trims: Trim[]): void {
    trims.forEach((trim, i) => {
      if (trim.mode !== "random" || this.draws.has(i)) return;
      this.draws.set(i, { ptr: this.k.arena.alloc(Math.ceil(chunk.count / 8)), key: trim.key, threshold: trim.threshold, drawn: false });
    });
  }

  /** The L1 pass has filled every reserved draw. */
  drawn(): void {
    for (const d of this.draws.values()) d.drawn = true;
  }

  /** Task `task`'s draw for this random trim: its bits and whether they are filled (undefined without room). */
  draw(task: number, trim: Extract<Trim, { mode: "random" }>): { ptr: number; drawn: boolean } | undefined {
    const d = this.draws.get(task);
    return d && d.key === trim.key && d.threshold === trim.threshold ? d : undefined;
  }

  /** The keep bits of task `task` (0 when it has none). */
  mask(task: number): number {
    return this.masks.get(task) ?? 0;
  }

  /** Computes the keep bits of every DELLA-trimmed task not done yet (they stay until the next load). */
  ensure(chunk: LoadedChunk, trims: Trim[], quant: number): void {
    const { arena, exports } = this.k;
    trims.forEach((trim, i) => {
      if (trim.mode !== "della" || this.masks.has(i)) return;
      if (chunk.start % trim.rowLength !== 0 || chunk.count % trim.rowLength !== 0) {
        throw new Error(`della: chunk [${chunk.start}, ${chunk.start + chunk.count}) of "${chunk.job.name}" does not hold whole rows of ${trim.rowLength}`);
      }
      const mask = arena.alloc(Math.ceil(chunk.count / 8));
      const mark = arena.mark();
      const work = arena.alloc(exports.dellaWorkBytes(trim.fiber));
      const x = chunk.inputs[i + 1]!, b = chunk.inputs[0]!;
      const [startLo, startHi] = [chunk.start >>> 0, Math.floor(chunk.start / 2 ** 32)];
      if (trim.fiber === trim.rowLength) {
        exports.dellaMask(x.ptr, x.code, b.ptr, b.code, chunk.count, quant, trim.rowLength, startLo, startHi, trim.key, trim.density, trim.epsilon, mask, work);
      } else {
        const scratch = arena.alloc(exports.dellaFiberScratchBytes(chunk.count, x.code, b.code));
        exports.dellaMaskFibers(x.ptr, x.code, b.ptr, b.code, chunk.count, quant, trim.fiber, trim.rowLength / trim.fiber, startLo, startHi,
          trim.key, trim.density, trim.epsilon, mask, work, scratch);
      }
      arena.release(mark);
      this.masks.set(i, mask);
    });
  }
}

/** Pointer and dtype records of every input (a task-vector operand table with no trims). */
function inputTable(k: Kernels, chunk: LoadedChunk): number {
  const table = k.arena.alloc(chunk.inputs.length * TV_RECORD);
  const v = k.arena.view();
  chunk.inputs.forEach((input, i) => {
    v.setUint32(table + i * TV_RECORD + TV_PTR, input.ptr, true);
    v.setUint32(table + i * TV_RECORD + TV_DTYPE, input.code, true);
  });
  return table;
}

/** sce's per-position variances (f64) of the loaded chunk, and how many are not zero. */
export class SceVariances {
  ptr = 0;
  nonzero = 0;
  constructor(private readonly k: Kernels) {}

  clear(): void {
    this.ptr = 0;
  }

  ensure(chunk: LoadedChunk, quant: number): void {
    if (this.ptr !== 0) return;
    const { arena, exports } = this.k;
    const ptr = arena.alloc(chunk.count * 8);
    const mark = arena.mark();
    this.nonzero = exports.sceVariance(inputTable(this.k, chunk), chunk.inputs.length, chunk.count, quant, ptr);
    arena.release(mark);
    this.ptr = ptr;
  }
}

/** Below this many positions a sample does not pay for itself: every variance is a candidate. */
const SCE_SAMPLE_MIN = 1 << 15;

/** The loaded chunk's sample of its variances (see sceSample): [pointer, count of f64]. */
export function sceVarianceSample(k: Kernels, variances: SceVariances, n: number): [number, number] {
  const sample = k.arena.alloc((Math.ceil(n / SCE_SAMPLE_STRIDE) + 1) * 8);
  return [sample, k.exports.sceSample(variances.ptr, n, sample)];
}

/**
 * The loaded chunk's variances in [lo, hi] (bits, ends included), counted, and copied out in position
 * order ([pointer, count of f64]) when there are at most `capacity` and the memory left holds them; the
 * variances above the bracket, counted.
 */
export function sceBracket(k: Kernels, variances: SceVariances, n: number, lo: Bits, hi: Bits, capacity: number): { above: number; inside: number; candidates?: [number, number] } {
  const { arena, exports } = k;
  const result = arena.alloc(SCE_CUT_BYTES);
  const room = Math.floor((arena.budget - arena.mark() - (1 << 20)) / 8) - 1;
  const fits = Math.max(0, Math.min(n, capacity, room));
  const cand = arena.alloc((fits + 1) * 8);
  exports.sceCollect(variances.ptr, n, lo[0], lo[1], hi[0], hi[1], cand, fits, result);
  const v = arena.view();
  const inside = v.getFloat64(result + SCE_CUT_EQUAL, true), above = v.getFloat64(result + SCE_CUT_ABOVE, true);
  return { above, inside, ...(inside <= fits ? { candidates: [cand, inside] as [number, number] } : {}) };
}

/**
 * The most memory sceSelect takes for a resident chunk of n positions (its 65536-bucket work area, the
 * sample and the bracket's copies), at the widest bracket (the median: the rank's spread is largest there).
 */
export function sceSelectBytes(n: number): number {
  const m = n >= SCE_SAMPLE_MIN ? Math.ceil(n / SCE_SAMPLE_STRIDE) : 0;
  const expected = m > 0 ? bracketRanks(Math.ceil(n / 2), n, m).expected : n;
  return 65536 * 4 + SCE_CUT_BYTES * 2 + (m + 1) * 8 + (Math.min(n, Math.ceil(expected * 1.25) + 4096) + 1) * 8 + 64;
}

/**
 * The exact k-th largest variance of a resident chunk (k >= 1): a sample brackets it (bracketRanks),
 * one pass copies out the variances inside the bracket and counts those above (sceBracket), and the k-th
 * is ranked among the copies. Undefined when the bracket misses or the memory left cannot hold the
 * copies: the caller then uses the radix passes, which give the same cut.
 */
export function sceSelect(k: Kernels, variances: SceVariances, n: number, rank: number): { high: number; low: number; above: number } | undefined {
  const { arena, exports } = k;
  const work = arena.alloc(65536 * 4);
  const result = arena.alloc(SCE_CUT_BYTES);
  const v = () => arena.view();
  /** The r-th largest of the m sample bits at `sample` (which it reorders). */
  const nth = (sample: number, m: number, r: number): Bits => {
    exports.sceSelectCandidates(sample, m, r, work, result);
    return [v().getUint32(result + SCE_CUT + 4, true), v().getUint32(result + SCE_CUT, true)];
  };
  let lo = NO_BITS, hi = ALL_BITS, expected = n;
  if (n >= SCE_SAMPLE_MIN) {
    const [sample, m] = sceVarianceSample(k, variances, n);
    const ranks = bracketRanks(rank, n, m);
    if (ranks.top >= 1) hi = nth(sample, m, ranks.top);
    if (ranks.bottom <= m) {
      exports.sceSample(variances.ptr, n, sample); // nth reordered it
      lo = nth(sample, m, ranks.bottom);
    }
    expected = ranks.expected;
  }
  const { above, inside, candidates } = sceBracket(k, variances, n, lo, hi, Math.ceil(expected * 1.25) + 4096);
  if (!candidates || rank <= above || rank > above + inside) return undefined;
  const [high, low] = nth(candidates[0], inside, rank - above);
  return { high, low, above: above + v().getFloat64(result + SCE_CUT_ABOVE, true) };
}

/** One radix pass over the variances (see assembly/sce.ts); the same result shape as a |tau| pass. */
export function sceRange(k: Kernels, variances: SceVariances, count: number, key: SelectKey, lo: number, hi: number, shift: number) {
  const { arena, exports } = k;
  const buckets = Math.max(1, Math.ceil((hi - lo) / 2 ** shift));
  const hist = arena.alloc(4 * buckets * 4); // four copies, added into the first by the kernel
  arena.u32(hist, 4 * buckets).fill(0);
  const stats = arena.alloc(RANGE_BYTES);
  const high = key.kind === "varianceLow" ? key.high : 0;
  exports.sceRange(variances.ptr, count, key.kind === "varianceLow" ? 1 : 0, high, lo, hi - 1, shift, hist, stats);
  const v = arena.f64(stats, 3);
  return { hist, buckets, above: v[RANGE_ABOVE / 8]!, inside: v[RANGE_INSIDE / 8]! };
}

function selectionRecord(k: Kernels, chunk: LoadedChunk, selection: SceSelection): number {
  const sel = k.arena.alloc(SCE_RECORD);
  const v = k.arena.view();
  v.setUint32(sel + SCE_MODE, selection.mode === "all" ? SCE_ALL : selection.mode === "none" ? SCE_NONE : SCE_TOP, true);
  v.setUint32(sel + SCE_HIGH, selection.mode === "top" ? selection.high : 0, true);
  v.setUint32(sel + SCE_LOW, selection.mode === "top" ? selection.low : 0, true);
  v.setUint32(sel + SCE_TIES, selection.mode === "top" ? selection.ties[chunk.chunk]! : 0, true);
  return sel;
}

function tiles(chunk: LoadedChunk): number {
  return Math.ceil(chunk.count / TILE);
}

/** sce's per-tile, per-task sums of squares over the selected positions: [pointer, count of f64]. */
export function sceSquares(k: Kernels, chunk: LoadedChunk, table: number, quant: number, variances: SceVariances, selection: SceSelection): [number, number] {
  const sel = selectionRecord(k, chunk, selection);
  const n = tiles(chunk) * (chunk.inputs.length - 1);
  const partials = k.arena.alloc(n * 8);
  k.exports.sceSquares(table, chunk.inputs.length, chunk.count, quant, variances.ptr, sel, partials);
  return [partials, n];
}

export function sceFinal(k: Kernels, chunk: LoadedChunk, table: number, quant: number, variances: SceVariances, selection: SceSelection, outCode: number): void {
  const sel = selectionRecord(k, chunk, selection);
  k.exports.sceMerge(table, chunk.inputs.length, chunk.count, quant, variances.ptr, sel, chunk.out, outCode);
}

/** ramplus_tl's per-tile, per-task counts (shared, alone): [pointer, count of f64]. */
export function ramCounts(k: Kernels, chunk: LoadedChunk, table: number, quant: number, epsilon: number): [number, number] {
  const n = tiles(chunk) * (chunk.inputs.length - 1) * 2;
  const partials = k.arena.alloc(n * 8);
  k.exports.ramCounts(table, chunk.inputs.length, chunk.count, quant, epsilon, partials);
  return [partials, n];
}

export function ramFinal(k: Kernels, chunk: LoadedChunk, table: number, quant: number, epsilon: number, outCode: number): void {
  k.exports.ramMerge(table, chunk.inputs.length, chunk.count, quant, epsilon, chunk.out, outCode);
}

/** Operand-table fields of the zero, band and della trims (the record is zeroed beforehand). */
export function trimFields(v: DataView, rec: number, trim: Trim, chunk: number, mask: number): void {
  if (trim.mode === "zero") {
    v.setUint32(rec + TV_MODE, TRIM_ZERO, true);
  } else if (trim.mode === "band") {
    v.setUint32(rec + TV_MODE, TRIM_BAND, true);
    v.setUint32(rec + TV_THRESHOLD, trim.threshold, true);
    v.setUint32(rec + TV_TIES, trim.ties[chunk]!, true);
    v.setUint32(rec + TV_THRESHOLD2, trim.outlierThreshold, true);
    v.setUint32(rec + TV_TIES2, trim.outlierTies[chunk]!, true);
  } else if (trim.mode === "della") {
    if (mask === 0) throw new Error("della: keep bits used before they were computed");
    v.setUint32(rec + TV_MODE, TRIM_BITS, true);
    v.setUint32(rec + TV_MASK, mask, true);
  }
}

/** Kernel flags of the TIES vote variants. */
export function voteFlags(request: Extract<FinalRequest, { kind: "taskVector" }>): number {
  return (request.countVote ? TV_COUNT_VOTE : 0) | (request.unweightedVote ? TV_UNWEIGHTED_VOTE : 0);
}
