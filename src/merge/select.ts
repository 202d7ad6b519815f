/**
 * @file TIES's exact top-k: for each task vector, the k-th largest |tau| and how many elements equal
 * to it belong to the top k. A radix select over the float bits (see assembly/select.ts): every round
 * is one pass over the data that histograms a key range into buckets; the bucket holding the k-th key
 * becomes the next range, until it is a single key. All task vectors advance together, so every pass
 * gathers the histograms of every task vector of the tensor.
 *
 * A sample of 1/64 of the elements first brackets the answer. A resident tensor (in one worker) then
 * compacts the keys inside the bracket in its first pass, and later rounds only look at those. A
 * chunked tensor is read from disk for every pass, so its sample reads only the sampled runs and its
 * one pass over the bracket histograms it key by key: the k-th key is known after that pass, and the
 * tensor is read twice in all (the bracket pass, then the merge). A bracket that misses (which the
 * counts reveal) costs more passes of the radix select. The result is exact either way, and identical
 * however the tensor is chunked.
 */
import { SAMPLE_SHIFT } from "../../assembly/layout";
import type { Counts, KeySource, RangeResult, SelectKey, TensorExecutor } from "./job";

export interface Selection {
  /** Bits of the k-th largest |tau|. */
  threshold: number;
  /** Elements with |tau| above the threshold. */
  above: number;
  /** Elements equal to it. */
  equal: number;
  /** How many of those equal elements are kept: k - above. */
  ties: number;
  /** Elements equal to the threshold in each chunk, when the last round counted them per chunk. */
  equalByChunk?: number[];
}

const KEY_END = 0x80000000; // one past the largest 31-bit key
/**
 * Histogram size per round. Resident data is cheap to rescan, so small (L1-resident) histograms and
 * three rounds; chunked data is re-read from disk each round, so 2^16 buckets and two rounds.
 */
const BUCKETS_LOG2_RESIDENT = 11;
const BUCKETS_LOG2_CHUNKED = 16;
/**
 * Below this many elements a sample does not pay for itself: it costs a 65536-bucket histogram per task
 * (and, in a short process, the first touch of that memory: ~12 us a page on this bench's VM), and it
 * saves two of the three radix rounds over the tensor.
 */
const SAMPLE_MIN = 1 << 18;
/**
 * A chunked tensor's sample: the runs [i * stride, + stride / 64) of elements, a 64th of the tensor, with
 * `stride` the largest power of two that still gives 64 runs, from 131072 (runs of 2048 elements) to
 * 524288 (runs of 8192). Every run is one read per input, and a read of a picked file in Chromium costs
 * about a millisecond however small: runs of 2048 every 131072 made the bench's embedding and `lm_head`
 * (65.5M elements) 2000 reads each, 2.3-3.4 s of a TIES merge; they take 125 runs of 8192 now. Smaller
 * tensors keep more, shorter runs (neighbouring elements vary together: the more places sampled, the
 * tighter the bracket).
 */
export function sparseSampleStride(numel: number): number {
  return Math.min(SPARSE_STRIDE_MAX, Math.max(SPARSE_STRIDE_MIN, 2 ** Math.floor(Math.log2(Math.max(1, numel / 64)))));
}
/** The sample's share of a chunked tensor: a run of stride / SPARSE_SAMPLE_SHARE elements per stride. */
export const SPARSE_SAMPLE_SHARE = 64;
const SPARSE_STRIDE_MIN = 131072;
const SPARSE_STRIDE_MAX = 524288;
/** A chunked tensor's bracket pass histograms at most 2^20 keys per selection... */
const BRACKET_BUCKETS_LOG2 = 20;
/** ...and at most this many buckets in all the chunks' results of one pass (the caller holds them all at once). */
const BRACKET_BUCKETS_PER_PASS = 1 << 24;

interface State {
  id: number;
  task: number;
  key: SelectKey;
  /** One past the largest key. */
  end: number;
  k: number;
  lo: number;
  hi: number;
  /** The range is a guess from a sample and must be verified by the next pass. */
  guess: boolean;
  /** Expected keys inside the guessed range (from the sample): how many candidates to keep. */
  expected: number;
  result?: Selection;
}

function shiftFor(lo: number, hi: number, bucketsLog2: number): number {
  return Math.max(0, Math.ceil(Math.log2(hi - lo)) - bucketsLog2);
}

/**
 * The k-th largest key of each wanted selection (k >= 1), by `id` (default: the task). Keys are |tau|
 * of `task` unless `key` says otherwise: the same radix select ranks sce's variances (31-bit high words,
 * then 32-bit low words), without sampling or candidate buffers. With `keys`, every selection ranks
 * those keys instead (non-negative float bits, one per element; arcee_fusion's importances).
 */
export async function selectTopK(exec: TensorExecutor, numel: number, wanted: { id?: number; task: number; k: number; key?: SelectKey }[], keys?: KeySource): Promise<Map<number, Selection>> {
  const states: State[] = wanted.map(({ id, task, k, key }) => {
    const sel: SelectKey = key ?? { kind: "absTau", task };
    const end = sel.kind === "varianceLow" ? 2 ** 32 : KEY_END;
    return { id: id ?? task, task, key: sel, end, k, lo: 0, hi: end, guess: false, expected: 0 };
  });
  const sampled = keys ? [] : states.filter((s) => s.key.kind === "absTau");
  if (numel >= SAMPLE_MIN && sampled.length > 0) await bracketFromSample(exec, numel, sampled);
  // Keys other than |tau| are computed afresh by every pass: fewer, larger rounds, as for chunked data.
  const bucketsLog2 = exec.resident && !keys ? BUCKETS_LOG2_RESIDENT : BUCKETS_LOG2_CHUNKED;

  for (let round = 0; states.some((s) => !s.result); round++) {
    if (round > 8) throw new Error("radix select did not converge"); // 31 bits need at most 3 rounds plus a missed bracket
    const active = states.filter((s) => !s.result);
    // A chunked tensor's bracket is histogrammed as finely as the results' memory allows, to finish in this pass.
    const guesses = active.filter((s) => s.guess).length;
    const bracketLog2 = Math.min(BRACKET_BUCKETS_LOG2, Math.floor(Math.log2(BRACKET_BUCKETS_PER_PASS / Math.max(1, exec.chunks * guesses))));
    const shifts = active.map((s) => shiftFor(s.lo, s.hi, !exec.resident && s.guess ? Math.max(bucketsLog2, bracketLog2) : bucketsLog2));
    const results = await exec.pass({
      kind: "range",
      // Compacting pays once a range holds a part of the keys (a bracket), not on a pass over all of them.
      ranges: active.map((s, i) => ({ task: s.task, id: s.id, key: s.key, lo: s.lo, hi: s.hi, shift: shifts[i]!, compact: exec.resident && s.guess ? Math.ceil(s.expected * 1.25) + 4096 : 0 })),
      ...(keys ? { keys } : {}),
    });
    active.forEach((s, i) => {
      const perChunk = results.map((r) => (r.kind === "range" ? r.ranges[i]! : unexpected()));
      narrow(s, sumRanges(perChunk), shifts[i]!, perChunk);
    });
  }
  return new Map(states.map((s) => [s.id, s.result!]));
}

function narrow(s: State, r: SummedRange, shift: number, perChunk: RangeResult[]): void {
  if (s.guess) {
    s.guess = false;
    if (s.k <= r.above) { // the k-th key is at or above the bracket
      s.lo = s.hi;
      s.hi = s.end;
      return;
    }
    if (s.k > r.above + r.inside) { // below it
      s.hi = s.lo;
      s.lo = 0;
      return;
    }
  }
  // Only a nonzero bucket can hold the k-th key (the keys above the range are fewer than k).
  let cum = r.above;
  for (let i = 0; i < r.nonzero.length; i += 2) {
    const b = r.nonzero[i]!, count = r.nonzero[i + 1]!;
    if (cum + count >= s.k) {
      const lo = s.lo + b * 2 ** shift;
      if (shift === 0) {
        s.result = { threshold: lo, above: cum, equal: count, ties: s.k - cum, equalByChunk: perChunk.map((c) => countAt(c, b)) };
      } else {
        s.lo = lo;
        s.hi = Math.min(s.hi, lo + 2 ** shift);
      }
      return;
    }
    cum += count;
  }
  throw new Error(`radix select lost the k-th element (k=${s.k}, counted ${cum})`);
}

/** A range pass's counts summed over the chunks: the nonzero buckets, largest bucket first (see nonzeroBuckets). */
interface SummedRange { nonzero: number[]; above: number; inside: number }

/**
 * Sum of per-chunk results (integer counts: the order does not matter). Chunks that sent their nonzero
 * buckets are added bucket by bucket, never as a dense histogram of the whole bracket.
 */
function sumRanges(parts: RangeResult[]): SummedRange {
  const above = parts.reduce((sum, p) => sum + p.above, 0), inside = parts.reduce((sum, p) => sum + p.inside, 0);
  return { nonzero: nonzeroBuckets(parts), above, inside };
}

/**
 * The nonzero buckets of the sum of histograms of one size (dense or sparse, see Counts), largest
 * bucket first, as one flat list: bucket, count, bucket, count, ... Walks skip the empty buckets this
 * way: a sample histogram of |tau| has 65536 buckets, of which small weights' deltas fill a few thousand
 * near the bottom. Flat, because a pair per bucket was an allocation per bucket: a small model's select
 * (three rounds of 2048 buckets per task and tensor) spent more time collecting that garbage than
 * scanning.
 */
function nonzeroBuckets(parts: Counts[]): number[] {
  const nonzero: number[] = [];
  if (parts.some((p) => "hist" in p)) {
    const hist = sumCounts(parts);
    for (let b = hist.length - 1; b >= 0; b--) if (hist[b]! !== 0) nonzero.push(b, hist[b]!);
    return nonzero;
  }
  const counts = new Map<number, number>();
  for (const p of parts as { pairs: Uint32Array }[]) {
    for (let i = 0; i < p.pairs.length; i += 2) counts.set(p.pairs[i]!, (counts.get(p.pairs[i]!) ?? 0) + p.pairs[i + 1]!);
  }
  for (const b of [...counts.keys()].sort((x, y) => y - x)) nonzero.push(b, counts.get(b)!);
  return nonzero;
}

/** The dense sum of histograms of one size, dense or sparse (see Counts). */
function sumCounts(parts: Counts[]): Uint32Array {
  const first = parts[0]!;
  if (parts.length === 1 && "hist" in first) return first.hist;
  const hist = new Uint32Array("hist" in first ? first.hist.length : first.buckets);
  for (const p of parts) {
    if ("hist" in p) {
      for (let i = 0; i < hist.length; i++) hist[i]! += p.hist[i]!;
    } else {
      for (let i = 0; i < p.pairs.length; i += 2) hist[p.pairs[i]!]! += p.pairs[i + 1]!;
    }
  }
  return hist;
}

/** One chunk's count in bucket b (pairs are in bucket order: a binary search). */
function countAt(r: RangeResult, b: number): number {
  if ("hist" in r) return r.hist[b]!;
  let lo = 0, hi = r.pairs.length / 2;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (r.pairs[2 * mid]! < b) lo = mid + 1;
    else hi = mid;
  }
  return lo < r.pairs.length / 2 && r.pairs[2 * lo] === b ? r.pairs[2 * lo + 1]! : 0;
}


/**
 * Turn a sample histogram into a bracket [lo, hi) that very likely holds the k-th key: the sample rank
 * k * m / n, widened by four standard deviations of that rank plus a small fixed slack.
 */
async function bracketFromSample(exec: TensorExecutor, numel: number, states: State[]): Promise<void> {
  const results = await exec.pass({ kind: "sample", tasks: states.map((s) => s.task) });
  states.forEach((s, i) => {
    const parts = results.map((r) => (r.kind === "sample" ? r.samples[i]! : unexpected()));
    const m = parts.reduce((sum, p) => sum + p.sampled, 0);
    if (m === 0) return;
    const q = s.k / numel;
    const rank = q * m;
    // A chunked tensor's sample comes in runs of neighbouring elements, which vary together more than
    // elements drawn one by one: its margin is wider (a wider bracket costs it histogram buckets, not reads).
    const margin = exec.resident ? 4 * Math.sqrt(m * q * (1 - q)) + 0.002 * m + 8 : 4 * Math.sqrt(2 * m * q * (1 - q)) + 0.003 * m + 8;
    const topRank = rank - margin, bottomRank = rank + margin;
    if (bottomRank >= m) return; // the bracket would reach the smallest keys: no gain
    // Walking down the nonzero buckets: the bracket's top is the bucket where the count passes topRank,
    // its bottom the one where it reaches bottomRank (both nonzero, since both ranks are passed by adding
    // a bucket's count; topRank <= 0 leaves the bracket open upwards).
    const nonzero = nonzeroBuckets(parts);
    let cum = 0, hiBucket = -1, loBucket = -1, inBracket = 0;
    for (let i = 0; i < nonzero.length; i += 2) {
      const b = nonzero[i]!, count = nonzero[i + 1]!;
      if (hiBucket < 0 && cum + count > topRank) hiBucket = b;
      if (hiBucket >= 0) inBracket += count;
      cum += count;
      if (cum >= bottomRank) {
        loBucket = b;
        break;
      }
    }
    if (loBucket < 0) return;
    s.expected = (inBracket * numel) / m;
    s.lo = loBucket * 2 ** SAMPLE_SHIFT;
    s.hi = topRank <= 0 ? s.end : (hiBucket + 1) * 2 ** SAMPLE_SHIFT;
    s.guess = true;
  });
}

export function unexpected(): never {
  throw new Error("executor returned a result of the wrong kind");
}

/**
 * Elements equal to a selection's threshold each chunk keeps: they are kept lowest index first, so a
 * chunk needs to know how many of them the chunks before it hold (the select's last round counted them
 * per chunk).
 */
export function tiesPerChunk(s: Selection, chunks: number): number[] {
  let left = s.ties;
  return Array.from({ length: chunks }, (_, c) => {
    if (s.ties === s.equal) return s.equal; // every equal element is kept
    if (chunks === 1) return s.ties;
    const take = Math.min(left, s.equalByChunk![c]!);
    left -= take;
    return take;
  });
}
