// Kernel throughput of the newer merge methods (issue 10) for `npm run bench`'s section 2: each entry
// is a tensor operation the run times with the wasm kernels (runTensor on a resident tensor) next to
// `plain`, the same math as plain TypeScript loops over Float32Arrays (radix selects, per-row sorts,
// DARE's generator: the same algorithms, no SIMD, no tiling).
//
// Interface: methodBenchCases(ctx) returns a list of { name, inputs, op, plain }; bench/run.ts appends
// it to its own list and times every entry the same way (inputs: how many of ctx.arrays, base first,
// the op reads; plain() writes ctx.dst). Add entries to the list to bench more methods.
import type { TensorOp } from "../src/plan/plan";

export interface MethodBenchContext {
  /** Float32 tensors of equal length: the base first, then the fine-tunes. */
  arrays: Float32Array[];
  /** Where plain() writes. */
  dst: Float32Array;
  /** The job's seed and tensor name (DARE/DELLA streams depend on them). */
  seed: number;
  name: string;
}

export interface MethodBenchCase {
  name: string;
  inputs: number;
  op: TensorOp;
  plain: () => void;
}

/** Row length della ranks within (the tensors are timed as [numel / ROW, ROW]). */
const ROW = 4096;

export function methodBenchCases(ctx: MethodBenchContext): MethodBenchCase[] {
  const [b, ...xs] = ctx.arrays as [Float32Array, ...Float32Array[]];
  const two = xs.slice(0, 2);
  const w = [1, Math.fround(0.7)];
  const tv = { normalize: false, rescale: false, lambda: 1, divisor: 1 } as const;
  return [
    {
      name: "breadcrumbs_ties", inputs: 3,
      op: { kind: "taskVector", consensus: true, sparsify: "breadcrumbs", ...tv, tasks: [{ weight: 1, density: 0.5, gamma: 0.01 }, { weight: 0.7, density: 0.3, gamma: 0.01 }] },
      plain: () => breadcrumbsTies(b, two, w, [0.5, 0.3], 0.01, ctx.dst),
    },
    {
      name: "della", inputs: 3,
      op: { kind: "taskVector", consensus: true, sparsify: "della", ...tv, normalize: true, rescale: true, rowLength: ROW, tasks: [{ weight: 1, density: 0.5, epsilon: 0.15 }, { weight: 0.7, density: 0.5, epsilon: 0.15 }] },
      plain: () => della(b, two, w, 0.5, 0.15, [streamKey(ctx.seed, ctx.name, 0), streamKey(ctx.seed, ctx.name, 1)], ctx.dst),
    },
    {
      name: "ties (count vote)", inputs: 3,
      op: { kind: "taskVector", consensus: true, sparsify: "magnitude", ...tv, normalize: true, consensusMethod: "count", voteWeighted: false, tasks: [{ weight: 1, density: 0.5 }, { weight: 0.7, density: 0.3 }] },
      plain: () => breadcrumbsTies(b, two, w, [0.5, 0.3], 0, ctx.dst, true),
    },
    { name: "sce (topk 0.5)", inputs: 3, op: { kind: "sce", selectTopk: 0.5 }, plain: () => sce(b, two, 0.5, ctx.dst) },
    { name: "ram", inputs: 3, op: { kind: "ram", epsilon: 1e-5 }, plain: () => ram(b, two, 1e-5, undefined, ctx.dst) },
    { name: "ramplus_tl", inputs: 3, op: { kind: "ram", epsilon: 1e-5, plus: { r: 0.1, alpha: 0.2 } }, plain: () => ram(b, two, 1e-5, { r: 0.1, alpha: 0.2 }, ctx.dst) },
  ];
}

const f32 = Math.fround;

function mix(x: number): number {
  x ^= x >>> 16; x = Math.imul(x, 0x21f0aaad); x ^= x >>> 15; x = Math.imul(x, 0x735a2d97); x ^= x >>> 15;
  return x >>> 0;
}

function streamKey(seed: number, name: string, task: number): number {
  let h = 0x811c9dc5;
  for (const c of new TextEncoder().encode(name)) h = Math.imul(h ^ c, 0x01000193);
  const k0 = mix((seed ^ 0x6a09e667) >>> 0);
  return mix(((task + 1) ^ mix(((h >>> 0) ^ k0) >>> 0)) >>> 0);
}

/** The k-th largest of n 31-bit keys by three histogram passes; ties: how many equal to it are in the top k. */
function kthLargest(key: (i: number) => number, n: number, k: number): { threshold: number; ties: number } {
  let lo = 0, shift = 20, above = 0;
  for (;;) {
    const hist = new Uint32Array(2048);
    const width = 2 ** (shift + 11);
    for (let i = 0; i < n; i++) {
      const v = key(i);
      if (v >= lo && v - lo < width) hist[Math.floor((v - lo) / 2 ** shift)]!++;
    }
    let cum = above, bucket = 2047;
    for (; bucket >= 0; bucket--) {
      if (cum + hist[bucket]! >= k) break;
      cum += hist[bucket]!;
    }
    lo += bucket * 2 ** shift;
    above = cum;
    if (shift === 0) return { threshold: lo, ties: k - cum };
    shift = Math.max(0, shift - 11);
  }
}

/** breadcrumbs_ties (gamma 0: ties), sum or count vote. */
function breadcrumbsTies(b: Float32Array, xs: Float32Array[], w: number[], density: number[], gamma: number, out: Float32Array, countVote = false): void {
  const n = b.length;
  const tau = new Float32Array(1), bits = new Uint32Array(tau.buffer);
  const cuts = xs.map((x, m) => {
    const keyOf = (i: number) => { tau[0] = x[i]! - b[i]!; return bits[0]! & 0x7fffffff; };
    const keep = Math.floor(density[m]! * n), top = Math.floor(gamma * n);
    const inner = kthLargest(keyOf, n, keep + top);
    const outer = top > 0 ? kthLargest(keyOf, n, top) : { threshold: 0x7fffffff, ties: 0 };
    return { inner, outer, innerLeft: inner.ties, outerLeft: outer.ties };
  });
  const p = new Float32Array(xs.length);
  for (let i = 0; i < n; i++) {
    let vote = 0;
    for (let m = 0; m < xs.length; m++) {
      tau[0] = xs[m]![i]! - b[i]!;
      const key = bits[0]! & 0x7fffffff, c = cuts[m]!;
      let inner = key > c.inner.threshold, outer = key > c.outer.threshold;
      if (key === c.inner.threshold && c.innerLeft > 0) { inner = true; c.innerLeft--; }
      if (key === c.outer.threshold && c.outerLeft > 0) { outer = true; c.outerLeft--; }
      const q = inner && !outer ? tau[0]! : 0;
      p[m] = f32(q * w[m]!);
      vote = countVote ? vote + Math.sign(q) : m === 0 ? p[m]! : f32(vote + p[m]!);
    }
    let mixed = 0;
    for (let m = 0; m < xs.length; m++) if (vote >= 0 ? p[m]! > 0 : p[m]! < 0) mixed = f32(mixed + p[m]!);
    out[i] = f32(b[i]! + mixed);
  }
}

/** della: per-row ranks by a sort, keep probabilities drawn with DARE's generator, L1 rescale, consensus, normalize. */
function della(b: Float32Array, xs: Float32Array[], w: number[], density: number, epsilon: number, keys: number[], out: Float32Array): void {
  const n = b.length;
  const masks = xs.map((x, m) => {
    const keep = new Uint8Array(n);
    const order = new Float64Array(ROW);
    for (let row = 0; row < n; row += ROW) {
      // |tau| (a float32, so exact in a double) times 2^13 plus the index: one sortable number per element.
      for (let j = 0; j < ROW; j++) order[j] = Math.abs(f32(x[row + j]! - b[row + j]!)) * 8192 * 4096 + j;
      order.sort();
      for (let r = 0; r < ROW; r++) {
        const j = row + (order[r]! % 4096);
        const pr = (density - epsilon) + 2 * epsilon * r / (ROW - 1);
        if (mix((mix((j ^ keys[m]!) >>> 0) ^ 0x9e3779b9) >>> 0) < Math.floor(pr * 4294967296)) keep[j] = 1;
      }
    }
    return keep;
  });
  const scale = xs.map((x, m) => {
    let all = 0, kept = 0;
    for (let i = 0; i < n; i++) { const t = Math.abs(f32(x[i]! - b[i]!)); all += t; if (masks[m]![i]) kept += t; }
    return f32(all / kept);
  });
  const p = new Float32Array(xs.length);
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let m = 0; m < xs.length; m++) {
      p[m] = masks[m]![i] ? f32(f32(f32(xs[m]![i]! - b[i]!) * scale[m]!) * w[m]!) : 0;
      sum = m === 0 ? p[m]! : f32(sum + p[m]!);
    }
    let mixed = 0, div = 0;
    for (let m = 0; m < xs.length; m++) if (sum >= 0 ? p[m]! > 0 : p[m]! < 0) { mixed = f32(mixed + p[m]!); div = f32(div + w[m]!); }
    out[i] = f32(b[i]! + f32(mixed / (div === 0 ? 1 : div)));
  }
}

/** sce: variances in float64, the top-k cut by a sort of a copy, mean-square weights, sign-masked mean. */
function sce(b: Float32Array, xs: Float32Array[], topk: number, out: Float32Array): void {
  const n = b.length, K = xs.length;
  const variance = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (const x of xs) s += f32(x[i]! - b[i]!);
    const mu = s / K;
    let sq = 0;
    for (const x of xs) sq += (f32(x[i]! - b[i]!) - mu) ** 2;
    variance[i] = sq / K;
  }
  const sorted = variance.filter((v) => v !== 0).sort();
  const k = Math.floor(sorted.length * topk);
  const cut = k > 0 ? sorted[sorted.length - k]! : Infinity;
  let left = 0;
  for (let r = sorted.length - k; r < sorted.length && sorted[r] === cut; r++) left++;
  const kept = new Uint8Array(n);
  for (let i = 0; i < n; i++) if (variance[i]! > cut || (variance[i] === cut && left-- > 0)) kept[i] = 1;
  const c = xs.map((x) => { let s = 0; for (let i = 0; i < n; i++) if (kept[i]) s += f32(x[i]! - b[i]!) ** 2; return s / n; });
  const total = c.reduce((a, v) => a + v, 0);
  const c32 = c.map((v) => f32(total < 1e-6 ? 1 / K : v / total));
  for (let i = 0; i < n; i++) {
    if (!kept[i]) { out[i] = b[i]!; continue; }
    let sum = 0;
    for (let m = 0; m < K; m++) sum = m === 0 ? f32(xs[m]![i]! - b[i]!) : f32(sum + f32(xs[m]![i]! - b[i]!));
    let num = 0, den = 0;
    for (let m = 0; m < K; m++) {
      const t = f32(xs[m]![i]! - b[i]!);
      if (sum >= 0 ? t > 0 : t < 0) { num = f32(num + f32(c32[m]! * t)); den = f32(den + c32[m]!); }
    }
    out[i] = f32(b[i]! + f32(num / Math.max(den, f32(1e-6))));
  }
}

/** ram / ramplus_tl. */
function ram(b: Float32Array, xs: Float32Array[], epsilon: number, plus: { r: number; alpha: number } | undefined, out: Float32Array): void {
  const n = b.length, eps = f32(epsilon);
  const counts = new Uint8Array(n);
  for (let i = 0; i < n; i++) for (const x of xs) if (Math.abs(f32(x[i]! - b[i]!)) > eps) counts[i]!++;
  const lambdas = xs.map((x) => {
    if (!plus) return 1;
    let shared = 0, unique = 0;
    for (let i = 0; i < n; i++) if (Math.abs(f32(x[i]! - b[i]!)) > eps) { if (counts[i]! > 1) shared++; else unique++; }
    return f32(1 + plus.r * Math.min(Math.max(shared / Math.max(unique, epsilon), 0), plus.alpha));
  });
  for (let i = 0; i < n; i++) {
    const c = counts[i]!;
    let sum = 0;
    for (let m = 0; m < xs.length; m++) {
      const t = f32(xs[m]![i]! - b[i]!);
      const term = Math.abs(t) > eps ? (c === 1 ? f32(t * lambdas[m]!) : f32(t / c)) : 0;
      sum = m === 0 ? term : f32(sum + term);
    }
    out[i] = f32(b[i]! + sum);
  }
}
