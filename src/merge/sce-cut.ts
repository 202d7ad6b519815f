/**
 * @file sce's cut: the exact k-th largest variance of a tensor (its float64 bits: non-negative doubles
 * order like their bits), how many positions equal to it are kept, and in which chunks.
 *
 * A resident tensor finds it inside its worker (sceSelect in workspace-methods.ts). A chunked one (or
 * one held in several kernel instances) brackets it from the chunks' samples of the variances, which
 * come with the nonzero count's pass; one pass then counts the variances above the bracket and sends
 * back those inside, and the k-th is ranked among them here: its tensor is read for the count, the
 * bracket, the squares and the merge. A bracket that misses, or holds more variances than a chunk's
 * memory allows, falls back to radix passes over the high words, then the low words (TIES's select),
 * which give the same cut in more reads. Exact either way, whatever the chunking.
 */
import { concatChunks, type PassResult, type SceSelection, type TensorExecutor, type TensorJob } from "./job";
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
 * The cut from the chunks' samples (the results of an `sceNonzero` pass with `sample`), or undefined
 * when the bracket misses or a chunk could not send the variances inside it. Variances are compared
 * as doubles here; a NaN (from a NaN or infinite input) among the samples or candidates leaves it to
 * the radix passes, which rank bits.
 */
export async function sampledCut(exec: TensorExecutor, numel: number, k: number, counted: PassResult[]): Promise<SceSelection | undefined> {
  const sample = concatChunks(counted.map((r) => (r.kind === "sceNonzero" && r.sample ? r.sample : unexpected())));
  const m = sample.length;
  if (m === 0 || hasNaN(sample)) return undefined;
  sample.sort();
  const { top, bottom, expected } = bracketRanks(k, numel, m);
  const hi = top >= 1 ? bitsOf(sample[m - top]!) : ALL_BITS, lo = bottom <= m ? bitsOf(sample[m - bottom]!) : NO_BITS;
  const results = await exec.pass({ kind: "sceBracket", lo, hi, capacity: Math.ceil(expected * 1.25) + 4096 });
  const chunks = results.map((r) => (r.kind === "sceBracket" ? r : unexpected()));
  const above = chunks.reduce((s, r) => s + r.above, 0), inside = chunks.reduce((s, r) => s + r.inside, 0);
  if (k <= above || k > above + inside || chunks.some((r) => !r.candidates)) return undefined;
  const candidates = concatChunks(chunks.map((r) => r.candidates!));
  if (hasNaN(candidates)) return undefined;
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
  return { mode: "top", high, low, ties: tiesPerChunk({ threshold: 0, above: kept, equal, ties: k - kept, equalByChunk }, chunks.length) };
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
