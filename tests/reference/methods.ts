// The issue 10 merge methods of the test reference: plain scalar TypeScript written from
// tests/reference/SPEC.md section 5 (and mergekit-semantics.md sections 1.4-1.12), never from src/ or
// assembly/. The task-vector pipeline (task_arithmetic ... della_linear, with the TIES vote variants)
// rounds every element step to float32 like the core methods; the other methods compute each element
// in float64 and round once at the end. Whole-tensor scalars are float64.

import { dareKeepThreshold, dareStreamKey, dareU } from "./rng";
import { asBool, asNumber, dareKeepMask, magnitudeKeepMask, paramValue, type Ctx, type FloatInput, type PlannedTensor } from "./merge";

const fr = Math.fround;

/** Methods whose non-base embeddings are cut to the base's shape (the task-vector family's rule). */
export const CUT_TO_BASE_METHODS: ReadonlySet<string> = new Set(["breadcrumbs", "breadcrumbs_ties", "della", "della_linear"]);
/** Methods whose embeddings are cut to the common top-left block (linear's and slerp's rule). */
export const CUT_TO_COMMON_METHODS: ReadonlySet<string> = new Set(["nuslerp", "model_stock", "arcee_fusion"]);

// ---------------------------------------------------------------------------------------------
// Orders and rows

/** Flat indices in rank order descending: larger |v| first, NaN first, equal values by lower index. */
export function rankOrderDescending(v: Float32Array): number[] {
  const idx = Array.from({ length: v.length }, (_, j) => j);
  idx.sort((a, b) => {
    const ma = Math.abs(v[a]!);
    const mb = Math.abs(v[b]!);
    const an = ma !== ma;
    const bn = mb !== mb;
    if (an || bn) return an && bn ? a - b : an ? -1 : 1;
    return ma > mb ? -1 : ma < mb ? 1 : a - b;
  });
  return idx;
}

/** Indices (0..n-1) of a row in rank order ascending: smaller |v| first, NaN last, equal values by lower index. */
function rankOrderAscending(get: (i: number) => number, n: number): number[] {
  const idx = Array.from({ length: n }, (_, j) => j);
  idx.sort((a, b) => {
    const ma = Math.abs(get(a));
    const mb = Math.abs(get(b));
    const an = ma !== ma;
    const bn = mb !== mb;
    if (an || bn) return an && bn ? a - b : an ? 1 : -1;
    return ma < mb ? -1 : ma > mb ? 1 : a - b;
  });
  return idx;
}

/** della's rows: 1-D/0-D one row; 2-D [r, c]; more dimensions [shape[0], numel/shape[0]]. */
export function dellaRows(shape: readonly number[], numel: number): { rows: number; cols: number } {
  if (shape.length <= 1) return { rows: 1, cols: numel };
  return { rows: shape[0]!, cols: shape[0]! === 0 ? 0 : numel / shape[0]! };
}

/** Rows along the last axis: [numel/shape[-1], shape[-1]]; 1-D/0-D one row. */
export function lastAxisRows(shape: readonly number[], numel: number): { rows: number; cols: number } {
  if (shape.length <= 1) return { rows: 1, cols: numel };
  const cols = shape[shape.length - 1]!;
  return { rows: cols === 0 ? 0 : numel / cols, cols };
}

// ---------------------------------------------------------------------------------------------
// Sparsifiers of the task-vector pipeline

/**
 * breadcrumbs (magnitude_outliers): keep = floor(d*N), top = floor(g*N), bot = N - keep - top, and
 * if bot < 0 then top += bot; keep the ranks top <= r < top + keep of the descending order.
 * Called only for density < 1.
 */
export function breadcrumbsKeepMask(tau: Float32Array, density: number, gamma: number): Uint8Array {
  const n = tau.length;
  const keepCount = Math.floor(density * n);
  let top = Math.floor(gamma * n);
  const bot = n - keepCount - top;
  if (bot < 0) top = top + bot;
  const keep = new Uint8Array(n);
  const order = rankOrderDescending(tau);
  for (let r = 0; r < n; r++) if (r >= top && r < top + keepCount) keep[order[r]!] = 1;
  return keep;
}

/** della's keep probability of the element of ascending rank `rank` (1-based) in a row of n. */
export function dellaProbability(density: number, epsilon: number, rank: number, n: number): number {
  if (n === 1) return density;
  return density - epsilon + (2 * epsilon * (rank - 1)) / (n - 1);
}

/**
 * della (della_magprune) for 0 < density < 1 (the caller validates density -/+ epsilon): per row,
 * ascending ranks give keep probabilities; element j is kept iff u(j) < T(p).
 */
export function dellaKeepMask(
  tau: Float32Array,
  shape: readonly number[],
  density: number,
  epsilon: number,
  seed: number,
  outName: string,
  nonBaseIndex: number,
): Uint8Array {
  const n = tau.length;
  const keep = new Uint8Array(n);
  const key = dareStreamKey(seed, outName, nonBaseIndex);
  const { rows, cols } = dellaRows(shape, n);
  for (let r = 0; r < rows; r++) {
    const off = r * cols;
    const order = rankOrderAscending((i) => tau[off + i]!, cols);
    for (let pos = 0; pos < cols; pos++) {
      const j = off + order[pos]!;
      const p = dellaProbability(density, epsilon, pos + 1, cols);
      keep[j] = dareU(key, j) < dareKeepThreshold(p) ? 1 : 0;
    }
  }
  return keep;
}

// ---------------------------------------------------------------------------------------------
// The task-vector pipeline: task_arithmetic, ties, dare_linear, dare_ties, breadcrumbs,
// breadcrumbs_ties, della, della_linear (SPEC section 5)

type Sparsifier = "none" | "magnitude" | "random" | "breadcrumbs" | "della";

interface FamilyMember {
  sparsifier: Sparsifier;
  consensus: boolean;
  normalize: boolean;
  rescale: boolean;
}

const FAMILY: ReadonlyMap<string, FamilyMember> = new Map([
  ["task_arithmetic", { sparsifier: "none", consensus: false, normalize: false, rescale: false }],
  ["ties", { sparsifier: "magnitude", consensus: true, normalize: true, rescale: false }],
  ["dare_linear", { sparsifier: "random", consensus: false, normalize: false, rescale: true }],
  ["dare_ties", { sparsifier: "random", consensus: true, normalize: false, rescale: true }],
  ["breadcrumbs", { sparsifier: "breadcrumbs", consensus: false, normalize: false, rescale: false }],
  ["breadcrumbs_ties", { sparsifier: "breadcrumbs", consensus: true, normalize: false, rescale: false }],
  ["della", { sparsifier: "della", consensus: true, normalize: true, rescale: true }],
  ["della_linear", { sparsifier: "della", consensus: false, normalize: false, rescale: true }],
]);

export function mergeTaskVectorFamily(
  ctx: Ctx,
  p: PlannedTensor,
  inputs: FloatInput[],
  vals: Float32Array[],
  baseIdx: number,
  shape: readonly number[],
): Float32Array {
  const method = ctx.method;
  const member = FAMILY.get(method);
  if (member === undefined) throw new Error(`${method} is not a task-vector method`);
  if (baseIdx < 0) throw new Error(`${method}: base_model is required and must be an input of ${p.outName}`);
  const b = vals[baseIdx]!;
  const n = b.length;
  const others: number[] = [];
  for (let i = 0; i < inputs.length; i++) if (i !== baseIdx) others.push(i);
  if (others.length === 0) return b.slice();

  const g = (name: string): unknown => paramValue(name, undefined, p.slice, ctx.top, p.outName, p.t);
  const normalize = asBool(g("normalize"), member.normalize, "normalize");
  const rescale = asBool(g("rescale"), member.rescale, "rescale");
  const lambdaRaw = g("lambda");
  const lambda = lambdaRaw === undefined ? 1 : asNumber(lambdaRaw, "lambda");
  const consensusRaw = g("consensus_method");
  const consensusMethod = consensusRaw === undefined ? "sum" : consensusRaw;
  if (consensusMethod !== "sum" && consensusMethod !== "count") {
    throw new Error(`${method}: consensus_method must be "sum" or "count", got ${JSON.stringify(consensusRaw)}`);
  }
  const voteWeighted = asBool(g("vote_weighted"), true, "vote_weighted");

  const w: number[] = [];
  const qs: Float32Array[] = [];
  const ps: Float32Array[] = [];
  for (let k = 0; k < others.length; k++) {
    const x = inputs[others[k]!]!;
    const xv = vals[others[k]!]!;
    const pm = (name: string): unknown => paramValue(name, x.model, p.slice, ctx.top, x.name, p.t);
    const wRaw = pm("weight");
    if (wRaw === undefined) throw new Error(`${method}: weight is required for model ${x.model} (tensor ${x.name})`);
    const wi = fr(asNumber(wRaw, `weight of ${x.model} for ${x.name}`));
    w.push(wi);

    const tau = new Float32Array(n);
    for (let j = 0; j < n; j++) tau[j] = fr(xv[j]! - b[j]!);

    // 1. sparsify (and rescale)
    let m = tau;
    if (member.sparsifier !== "none") {
      const dRaw = pm("density");
      const d = dRaw === undefined ? 1 : asNumber(dRaw, `density of ${x.model} for ${x.name}`);
      if (d < 1) {
        let keep: Uint8Array;
        switch (member.sparsifier) {
          case "magnitude":
            keep = magnitudeKeepMask(tau, Math.floor(d * n));
            break;
          case "random":
            keep = dareKeepMask(n, d, ctx.seed, p.outName, k);
            break;
          case "breadcrumbs": {
            const gRaw = pm("gamma");
            const gamma = gRaw === undefined ? 0.01 : asNumber(gRaw, `gamma of ${x.model} for ${x.name}`);
            keep = breadcrumbsKeepMask(tau, d, gamma);
            break;
          }
          case "della": {
            const eRaw = pm("epsilon");
            const eps = eRaw === undefined ? 0.15 : asNumber(eRaw, `epsilon of ${x.model} for ${x.name}`);
            if (d <= 0) keep = new Uint8Array(n);
            else {
              if (!(d - eps > 0 && d + eps < 1)) {
                throw new Error(`${method}: model ${x.model}, tensor ${x.name}: epsilon ${eps} with density ${d} needs density - epsilon > 0 and density + epsilon < 1`);
              }
              keep = dellaKeepMask(tau, shape, d, eps, ctx.seed, p.outName, k);
            }
            break;
          }
        }
        m = new Float32Array(n);
        for (let j = 0; j < n; j++) m[j] = keep[j] ? tau[j]! : 0;
        if (rescale) {
          let A = 0;
          let B = 0;
          for (let j = 0; j < n; j++) {
            A += Math.abs(tau[j]!);
            B += Math.abs(m[j]!);
          }
          if (A >= 1e-7 && B >= 1e-7) {
            const r = fr(A / B);
            for (let j = 0; j < n; j++) m[j] = fr(m[j]! * r);
          }
        }
      }
    }
    qs.push(m);

    // 2. p = m * w
    const pi = new Float32Array(n);
    for (let j = 0; j < n; j++) pi[j] = fr(m[j]! * wi);
    ps.push(pi);
  }

  const lambda32 = fr(lambda);
  let divPlain = w[0]!;
  for (let i = 1; i < w.length; i++) divPlain = fr(divPlain + w[i]!);
  if (Math.abs(divPlain) < 1e-8) divPlain = 1;

  const votes = voteWeighted ? ps : qs;
  const out = new Float32Array(n);
  const N = ps.length;
  for (let j = 0; j < n; j++) {
    let mixed: number;
    let div: number;
    if (member.consensus) {
      let positive: boolean;
      if (consensusMethod === "sum") {
        let S = votes[0]![j]!;
        for (let i = 1; i < N; i++) S = fr(S + votes[i]![j]!);
        positive = S >= 0;
      } else {
        let count = 0;
        for (let i = 0; i < N; i++) count += votes[i]![j]! > 0 ? 1 : votes[i]![j]! < 0 ? -1 : 0;
        positive = count >= 0;
      }
      mixed = 0;
      div = 0;
      for (let i = 0; i < N; i++) {
        const v = votes[i]![j]!;
        const agree = positive ? v > 0 : v < 0;
        const term = agree ? ps[i]![j]! : 0;
        const wterm = agree ? w[i]! : 0;
        if (i === 0) {
          mixed = term;
          div = wterm;
        } else {
          mixed = fr(mixed + term);
          div = fr(div + wterm);
        }
      }
      if (div === 0) div = 1;
    } else {
      mixed = ps[0]![j]!;
      for (let i = 1; i < N; i++) mixed = fr(mixed + ps[i]![j]!);
      div = divPlain;
    }
    if (normalize) mixed = fr(mixed / div);
    if (lambda !== 1) mixed = fr(mixed * lambda32);
    out[j] = fr(b[j]! + mixed);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// sce, ram, ramplus_tl

function baseAndTaskVectors(method: string, p: PlannedTensor, vals: Float32Array[], baseIdx: number): { b: Float32Array; taus: Float32Array[] } {
  if (baseIdx < 0) throw new Error(`${method}: base_model is required and must be an input of ${p.outName}`);
  const b = vals[baseIdx]!;
  const taus: Float32Array[] = [];
  for (let i = 0; i < vals.length; i++) {
    if (i === baseIdx) continue;
    const x = vals[i]!;
    const tau = new Float32Array(b.length);
    for (let j = 0; j < b.length; j++) tau[j] = fr(x[j]! - b[j]!);
    taus.push(tau);
  }
  return { b, taus };
}

/** sce's Select step: the positions kept (k of largest variance across models, ties by lower index). */
export function sceSelectMask(taus: Float32Array[], selectTopk: number): Uint8Array {
  const n = taus[0]!.length;
  const K = taus.length;
  const variance = new Float64Array(n);
  let nonzero = 0;
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let i = 0; i < K; i++) s += taus[i]![j]!;
    const mu = s / K;
    let q = 0;
    for (let i = 0; i < K; i++) q += (taus[i]![j]! - mu) * (taus[i]![j]! - mu);
    variance[j] = q / K;
    if (variance[j] !== 0) nonzero++;
  }
  const k = Math.floor(nonzero * selectTopk);
  const keep = new Uint8Array(n);
  if (k <= 0) return keep;
  const idx = Array.from({ length: n }, (_, j) => j);
  idx.sort((a, b) => (variance[a]! > variance[b]! ? -1 : variance[a]! < variance[b]! ? 1 : a - b));
  for (let r = 0; r < Math.min(k, n); r++) keep[idx[r]!] = 1;
  return keep;
}

function mergeSce(ctx: Ctx, p: PlannedTensor, vals: Float32Array[], baseIdx: number): Float32Array {
  const { b, taus } = baseAndTaskVectors("sce", p, vals, baseIdx);
  const n = b.length;
  const K = taus.length;
  if (K === 0) return b.slice();
  const topRaw = paramValue("select_topk", undefined, p.slice, ctx.top, p.outName, p.t);
  const selectTopk = topRaw === undefined ? 1 : asNumber(topRaw, "select_topk");
  if (selectTopk < 1) {
    const keep = sceSelectMask(taus, selectTopk);
    for (const tau of taus) for (let j = 0; j < n; j++) if (!keep[j]) tau[j] = 0;
  }
  // Calculate
  const c = taus.map((tau) => {
    let s = 0;
    for (let j = 0; j < n; j++) s += tau[j]! * tau[j]!;
    return s / n;
  });
  let sum = 0;
  for (const ci of c) sum += ci;
  const weights = c.map((ci) => (sum < 1e-6 ? 1 / K : ci / sum));
  // Erase and merge
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    let S = taus[0]![j]!;
    for (let i = 1; i < K; i++) S = fr(S + taus[i]![j]!);
    const positive = S >= 0;
    let num = 0;
    let den = 0;
    for (let i = 0; i < K; i++) {
      const v = taus[i]![j]!;
      if (positive ? v > 0 : v < 0) {
        num += weights[i]! * v;
        den += weights[i]!;
      }
    }
    out[j] = fr(b[j]! + num / Math.max(den, 1e-6));
  }
  return out;
}

/** ram and ramplus_tl: unique changes summed (ramplus_tl: times lambda_i), shared ones averaged. */
function mergeRam(ctx: Ctx, p: PlannedTensor, vals: Float32Array[], baseIdx: number): Float32Array {
  const method = ctx.method;
  const { b, taus } = baseAndTaskVectors(method, p, vals, baseIdx);
  const n = b.length;
  const K = taus.length;
  if (K === 0) return b.slice();
  const g = (name: string, dflt: number): number => {
    const v = paramValue(name, undefined, p.slice, ctx.top, p.outName, p.t);
    return v === undefined ? dflt : asNumber(v, name);
  };
  const epsilon = g("epsilon", 1e-5);
  const eps32 = fr(epsilon);
  const count = new Int32Array(n);
  for (const tau of taus) for (let j = 0; j < n; j++) if (Math.abs(tau[j]!) > eps32) count[j]!++;
  const lambdas = taus.map(() => 1);
  if (method === "ramplus_tl") {
    const r = g("r", 0.1);
    const alpha = g("alpha", 0.2);
    taus.forEach((tau, i) => {
      let shared = 0;
      let unique = 0;
      for (let j = 0; j < n; j++) {
        if (!(Math.abs(tau[j]!) > eps32)) continue;
        if (count[j]! > 1) shared++;
        else unique++;
      }
      const rho = shared / Math.max(unique, epsilon);
      lambdas[i] = 1 + r * Math.min(Math.max(rho, 0), alpha);
    });
  }
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    let uniqueSum = 0;
    let sharedSum = 0;
    for (let i = 0; i < K; i++) {
      const v = taus[i]![j]!;
      if (!(Math.abs(v) > eps32)) continue;
      if (count[j] === 1) uniqueSum += lambdas[i]! * v;
      else sharedSum += v;
    }
    out[j] = fr(b[j]! + uniqueSum + (count[j]! > 1 ? sharedSum / count[j]! : 0));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Dispatch of the methods that are not in the task-vector pipeline

export function mergeNewMethod(
  ctx: Ctx,
  p: PlannedTensor,
  inputs: FloatInput[],
  vals: Float32Array[],
  baseIdx: number,
  shape: readonly number[],
): Float32Array {
  switch (ctx.method) {
    case "breadcrumbs":
    case "breadcrumbs_ties":
    case "della":
    case "della_linear":
      return mergeTaskVectorFamily(ctx, p, inputs, vals, baseIdx, shape);
    case "sce":
      return mergeSce(ctx, p, vals, baseIdx);
    case "ram":
    case "ramplus_tl":
      return mergeRam(ctx, p, vals, baseIdx);
    default:
      throw new Error(`the reference has no merge method ${ctx.method}`);
  }
}
