/**
 * @file The worker side of the geometric methods and arcee_fusion: their passes and finals over one
 * loaded chunk (called from ChunkWorkspace). Results are [pointer, count] of float64 in wasm memory,
 * allocated in the pass's arena frame.
 */
import { FUSION_RANGE_RECORD, RANGE_ABOVE, RANGE_BYTES, RANGE_INSIDE, SUM_RECORD, TILE } from "../../assembly/layout";
import type { Kernels } from "../kernels/kernels";
import type { VectorLayout } from "../plan/geometric";
import type { FinalRequest, KeySource } from "./job";

/** What these functions need of a loaded chunk. */
export interface ChunkView {
  start: number;
  count: number;
  inputs: { ptr: number; code: number }[];
  quant: number;
}

function operandTable(k: Kernels, chunk: ChunkView): number {
  const table = k.arena.alloc(chunk.inputs.length * SUM_RECORD);
  const v = k.arena.view();
  chunk.inputs.forEach((input, i) => {
    v.setUint32(table + i * SUM_RECORD, input.ptr, true);
    v.setUint32(table + i * SUM_RECORD + 4, input.code, true);
  });
  return table;
}

const pairsOf = (m: number) => (m * (m + 1)) / 2;

/** Gram entries: per tile (flat), per row (rows) or one tree node per column (columns). */
export function gramPass(k: Kernels, chunk: ChunkView, request: { layout: VectorLayout; cols: number; offsets: boolean }): [number, number] {
  const { arena, exports } = k;
  const { count, quant } = chunk;
  const m = chunk.inputs.length - (request.offsets ? 1 : 0);
  const pairs = pairsOf(m);
  const table = operandTable(k, chunk);
  const offsets = request.offsets ? 1 : 0;
  if (request.layout === "flat") {
    const n = Math.ceil(count / TILE) * pairs;
    const partials = arena.alloc(n * 8);
    exports.gramTiles(table, chunk.inputs.length, count, quant, offsets, partials);
    return [partials, n];
  }
  const { cols } = request;
  if (request.layout === "rows") {
    const n = (count / cols) * pairs;
    const partials = arena.alloc(n * 8);
    exports.gramRows(table, chunk.inputs.length, count, cols, quant, offsets, partials);
    return [partials, n];
  }
  const rows = count / cols;
  const levels = Math.ceil(Math.log2(Math.max(1, rows))) + 2;
  const n = pairs * cols;
  const stack = arena.alloc(levels * n * 8);
  const out = arena.alloc(n * 8);
  exports.gramColumns(table, chunk.inputs.length, count, cols, quant, offsets, stack, out);
  return [out, n];
}

/** arcee_fusion: KL of each of the chunk's rows. */
export function fusionKLPass(k: Kernels, chunk: ChunkView, cols: number): [number, number] {
  const { arena, exports } = k;
  const [a, b] = chunk.inputs as [ChunkView["inputs"][0], ChunkView["inputs"][0]];
  const rows = chunk.count / cols;
  const scratch = arena.alloc(((cols + 3) & ~3) * 16); // two float64 rows padded to whole f32x4 loads
  const out = arena.alloc(rows * 8);
  exports.fusionRowKL(a.ptr, a.code, b.ptr, b.code, chunk.count, cols, chunk.quant, scratch, out);
  return [out, rows];
}

/** The chunk's rows of a per-row float32 array, copied into wasm memory. */
function rowSlice(k: Kernels, chunk: ChunkView, cols: number, values: Float32Array): number {
  const first = chunk.start / cols, rows = chunk.count / cols;
  const ptr = k.arena.alloc(rows * 4);
  k.arena.f32(ptr, rows).set(values.subarray(first, first + rows));
  return ptr;
}

/** A key range of one radix-select round and what the chunk's importances put in it. */
export interface FusionRange {
  lo: number;
  hi: number;
  shift: number;
}

/** Key ranges one fusionRange pass serves: the three quartiles'. */
const FUSION_RANGES = 3;

/**
 * One radix-select round over the chunk's arcee_fusion importances (computed once, in the kernel) for
 * up to FUSION_RANGES key ranges; returns per range its histogram's pointer and bucket count, above and inside.
 */
export function fusionRangePass(k: Kernels, chunk: ChunkView, keys: KeySource, ranges: FusionRange[]): { hist: number; buckets: number; above: number; inside: number }[] {
  const { arena } = k;
  const [a, b] = chunk.inputs as [ChunkView["inputs"][0], ChunkView["inputs"][0]];
  const kl = rowSlice(k, chunk, keys.cols, keys.kl);
  if (ranges.length > FUSION_RANGES) throw new Error(`fusionRange serves at most ${FUSION_RANGES} key ranges, not ${ranges.length}`);
  // Three records always: the ones past the ranges asked for match no key (all keys are below 2^31).
  const padded = [...ranges, ...Array.from({ length: FUSION_RANGES - ranges.length }, () => ({ lo: 0xffffffff, hi: 0xffffffff, shift: 0 }))];
  const table = arena.alloc(FUSION_RANGES * FUSION_RANGE_RECORD);
  const hists = padded.map(({ lo, hi, shift }) => {
    const buckets = Math.ceil((hi - lo) / 2 ** shift);
    const hist = arena.alloc(Math.max(1, buckets) * 4);
    arena.u32(hist, buckets).fill(0);
    return { hist, buckets };
  });
  const stats = arena.alloc(ranges.length * RANGE_BYTES);
  const v = arena.view();
  padded.forEach(({ lo, hi, shift }, i) => {
    const rec = table + i * FUSION_RANGE_RECORD;
    v.setUint32(rec, lo, true);
    v.setUint32(rec + 4, hi, true);
    v.setUint32(rec + 8, shift, true);
    v.setUint32(rec + 12, hists[i]!.hist, true);
  });
  k.exports.fusionRange(a.ptr, a.code, b.ptr, b.code, chunk.count, keys.cols, chunk.quant, kl, table, ranges.length, stats);
  const counts = arena.f64(stats, ranges.length * 3);
  return ranges.map((_, i) => ({ ...hists[i]!, above: counts[i * 3 + RANGE_ABOVE / 8]!, inside: counts[i * 3 + RANGE_INSIDE / 8]! }));
}

/** Runs one of the finals of this file into `out` (encoded as `outCode`). */
export function geometricFinal(k: Kernels, chunk: ChunkView, request: Extract<FinalRequest, { kind: "combine" | "nearswap" | "fusion" }>, out: number, outCode: number): void {
  const { arena, exports } = k;
  const { count, quant } = chunk;
  if (request.kind === "nearswap") {
    const [a, b] = chunk.inputs as [ChunkView["inputs"][0], ChunkView["inputs"][0]];
    exports.nearswap(a.ptr, a.code, b.ptr, b.code, count, quant, Math.fround(request.t), out, outCode);
    return;
  }
  if (request.kind === "fusion") {
    const [a, b] = chunk.inputs as [ChunkView["inputs"][0], ChunkView["inputs"][0]];
    const kl = rowSlice(k, chunk, request.cols, request.kl);
    exports.fusionMerge(a.ptr, a.code, b.ptr, b.code, count, request.cols, quant, kl, Math.fround(request.threshold), out, outCode);
    return;
  }
  const { layout, cols, coefs } = request;
  // The coefficients this chunk uses: one per vector, its rows' (rows), or every column's (columns).
  const first = layout === "rows" ? chunk.start / cols : 0;
  const perVector = layout === "flat" ? 1 : layout === "rows" ? count / cols : cols;
  const ptr = arena.alloc(coefs.length * perVector * 4 + 16);
  const view = arena.f32(ptr, coefs.length * perVector);
  coefs.forEach((c, i) => view.set(c.subarray(first, first + perVector), i * perVector));
  const table = operandTable(k, chunk);
  const code = layout === "flat" ? 0 : layout === "rows" ? 1 : 2;
  exports.combine(table, chunk.inputs.length, count, cols, quant, request.offsets ? 1 : 0, code, ptr, perVector, out, outCode);
}
