/**
 * @file sce's cut: the exact k-th largest variance of a tensor (its float64 bits: non-negative doubles
 * order like their bits), how many positions equal to it are kept, and in which chunks.
 *
 * A resident tensor finds it inside its worker (sceSelect in workspace-methods.ts). A chunked one (or
 * one held in several kernel instances) brackets it from a sample of the variances read run by run (a
 * 64th of the tensor); one pass then counts the nonzero variances and those above the bracket and sends
 * back those inside, and the k-th is ranked among them here: the tensor is read for the bracket, the
 * squares and the merge, plus the 64th. A bracket that misses, or holds more variances than a chunk's
 * memory allows, falls back to radix passes over the high words, then the low words (TIES's select),
 * which give the same cut in more reads. Exact either way, whatever the chunking.
 */
import { concatChunks, type SceSelection, type TensorExecutor, type TensorJob } from "./job";
import { selectTopK, tiesPerChunk, unexpected } from "./select";

/** Variance bits as [high, low] words. */
export type Bits = [number, number];
export const NO_BITS: Bits = [0, 0];
export const ALL_BITS: Bits = [0xffffffff, 0xffffffff];

/**
 * The sample ranks (1 = largest) that bracket the `rank`-th largest of `n` values from a sample of `m`
 * of them: the sample rank rank * m / n widened by four standard deviations of that rank plus a small
 * fixed slack, as TIES's select does. `top` < 1 or `bottom` > m: the bracket is open on that side.
 * `expected` is how many of the n values the bracket should hold.
 */
export function bracketRanks(rank: number, n: number, m: number): { top: number; bottom: number; expected: number } {
  const q = rank / n, at = q * m, margin = 4 * Math.sqrt(m * q * (1 - q)) + 0.002 * m + 8;
  const top = Math.floor(at - margin), bottom = Math.ceil(at + margin);
  return { top, bottom, expected: ((Math.min(bottom, m) - Math.max(top, 0) + 1) * n) / m };
}

const scratch = new DataView(new ArrayBuffer(8));
function bitsOf(x: number): Bits {
  scratch.setFloat64(0, x, true);
  return [scratch.getUint32(4, true), scratch.getUint32(0, true)];
}

/**
 * sce's k: the share `selectTopk` of the positions whose variance is not zero. mergekit multiplies the
 * count (torch.count_nonzero, an int64 tensor) by the Python float, which torch computes in float32:
 * 400003 nonzero at 0.3333 is float32 133321.0, one more than the float64 product's 133320.998.
 */
export function topCount(nonzero: number, selectTopk: number): number {
  return Math.trunc(Math.fround(Math.fround(nonzero) * Math.fround(selectTopk)));
}

/**
 * k and the cut of a chunked (or held) tensor. The chunks' variance samples (their sampled runs: a
 * 64th of the tensor, read run by run) bound k, through the sample's share of nonzero variances (four
 * standard deviations each way), and the ranks around it bracket the cut; one pass then counts the
 * nonzero variances (the exact k) and those above the bracket, and sends back those inside it, among
 * which the k-th is ranked. No cut when the bracket misses or a chunk could not send its variances:
 * the caller then runs the radix passes. Variances are compared as doubles here, so a NaN among the
 * samples (from a NaN or infinite input) leaves the cut to the radix passes, which rank bits.
 */
export async function sampledCut(exec: TensorExecutor, numel: number, selectTopk: number): Promise<{ k: number; nonzero: number; cut?: SceSelection }> {
  const samples = (await exec.pass({ kind: "sceSample" })).map((r) => (r.kind === "sceSample" ? r : unexpected()));
  const sample = concatChunks(samples.map((r) => r.sample));
  const m = sample.length, sampled = samples.reduce((s, r) => s + r.sampled, 0);
  if (m === 0 || hasNaN(sample)) {
    const nonzero = await nonzeroVariances(exec);
    return { k: topCount(nonzero, selectTopk), nonzero };
  }
  const p = samples.reduce((s, r) => s + r.nonzero, 0) / sampled;
  const sd = numel * Math.sqrt(((p * (1 - p)) / sampled) * (1 - sampled / numel));
  const kLo = Math.max(1, Math.floor(selectTopk * (p * numel - 4 * sd - 1)));
  const kHi = Math.max(kLo, Math.min(numel, Math.ceil(selectTopk * (p * numel + 4 * sd + 1))));
  const { top } = bracketRanks(kLo, numel, m), { bottom } = bracketRanks(kHi, numel, m);
  const hiValue = top >= 1 ? nthSmallest(sample, m - top) : Infinity, loValue = bottom <= m ? nthSmallest(sample, m - bottom) : 0;
  // How many variances the bracket should hold, from the sample values inside it: with quantized
  // checkpoints its ends can be values that many positions share.
  let insideSample = 0;
  for (let i = 0; i < m; i++) insideSample += sample[i]! >= loValue && sample[i]! <= hiValue ? 1 : 0;
  const capacity = Math.ceil(((insideSample + 1) * numel / m) * 1.25) + 4096;
  const results = await exec.pass({ kind: "sceBracket", lo: bitsOf(loValue), hi: top >= 1 ? bitsOf(hiValue) : ALL_BITS, capacity });
  const chunks = results.map((r) => (r.kind === "sceBracket" ? r : unexpected()));
  const nonzero = chunks.reduce((s, r) => s + r.nonzero, 0), k = topCount(nonzero, selectTopk);
  const above = chunks.reduce((s, r) => s + r.above, 0), inside = chunks.reduce((s, r) => s + r.inside, 0);
  if (k <= above || k > above + inside || chunks.some((r) => !r.candidates)) return { k, nonzero };
  const candidates = concatChunks(chunks.map((r) => r.candidates!));
  if (hasNaN(candidates)) return { k, nonzero };
  const cut = nthSmallest(candidates, inside - (k - above));
  let kept = above, equal = 0;
  const equalByChunk = chunks.map((r) => {
    const a = r.candidates!;
    let e = 0;
    for (let i = 0; i < a.length; i++) {
      kept += a[i]! > cut ? 1 : 0;
      e += a[i] === cut ? 1 : 0;
    }
    equal += e;
    return e;
  });
  const [high, low] = bitsOf(cut);
  return { k, nonzero, cut: { mode: "top", high, low, ties: tiesPerChunk({ threshold: 0, above: kept, equal, ties: k - kept, equalByChunk }, chunks.length) } };
}

/** How many positions of the tensor have a nonzero variance (a NaN one counts, as in torch's count_nonzero). */
export async function nonzeroVariances(exec: TensorExecutor): Promise<number> {
  const counts = await exec.pass({ kind: "sceNonzero" });
  return counts.reduce((s, r) => s + (r.kind === "sceNonzero" ? r.count : unexpected()), 0);
}

/** The cut of a resident tensor, found in the worker from the variance histogram (undefined when it lacks the memory). */
export async function residentCut(exec: TensorExecutor, k: number): Promise<SceSelection | undefined> {
  const [result] = await exec.pass({ kind: "sceSelect", k });
  if (result?.kind !== "sceSelect") unexpected();
  const cut = result.cut;
  return cut && { mode: "top", high: cut.high, low: cut.low, ties: [k - cut.above] };
}

/** The cut by radix passes over the variances: the high word first, then the low word among equal high words. */
export async function radixCut(exec: TensorExecutor, job: TensorJob, k: number, chunks: number): Promise<SceSelection> {
  const high = (await selectTopK(exec, job.numel, [{ id: 0, task: 0, k, key: { kind: "varianceHigh" } }])).get(0)!;
  if (high.ties === high.equal) {
    // Every position sharing the cut's high word is kept: no need to look at low words.
    return { mode: "top", high: high.threshold, low: 0, ties: Array.from({ length: chunks }, () => 0xffffffff) };
  }
  const low = (await selectTopK(exec, job.numel, [{ id: 0, task: 0, k, key: { kind: "varianceLow", high: high.threshold } }])).get(0)!;
  return { mode: "top", high: high.threshold, low: low.threshold, ties: tiesPerChunk(low, chunks) };
}

function hasNaN(a: Float64Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== a[i]) return true;
  return false;
}

/**
 * The r-th smallest (from 0) of `a`, which it reorders: quickselect with a three-way partition, so
 * that the many equal variances of quantized checkpoints shrink the range instead of slowing it down.
 */
function nthSmallest(a: Float64Array, r: number): number {
  if (!(r >= 0 && r < a.length)) throw new RangeError(`rank ${r} of ${a.length} values`);
  let lo = 0, hi = a.length - 1;
  for (;;) {
    const x = a[lo]!, y = a[(lo + hi) >>> 1]!, z = a[hi]!;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y; // median of three
    let lt = lo, i = lo, gt = hi;
    while (i <= gt) {
      const v = a[i]!;
      if (v < pivot) {
        a[i++] = a[lt]!;
        a[lt++] = v;
      } else if (v > pivot) {
        a[i] = a[gt]!;
        a[gt--] = v;
      } else i++;
    }
    if (r < lt) hi = lt - 1;
    else if (r > gt) lo = gt + 1;
    else return pivot;
  }
}
