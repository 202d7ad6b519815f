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

/**
 * della's ranking units, mergekit's argsort along dim 1: 1-D/0-D one row; 2-D [r, c] r rows of c; more
 * dimensions: under each index of dim 0 a block of shape[1] x inner elements, ranked along dim 1 (fibers
 * of shape[1] elements, `inner` apart).
 */
export function dellaFibers(shape: readonly number[], numel: number): { blocks: number; fiber: number; inner: number } {
  if (shape.length <= 1) return { blocks: 1, fiber: numel, inner: 1 };
  if (shape[0]! === 0) return { blocks: 0, fiber: 0, inner: 1 };
  const block = numel / shape[0]!;
  if (shape.length === 2 || block <= 1) return { blocks: shape[0]!, fiber: block, inner: 1 };
  return { blocks: shape[0]!, fiber: shape[1]!, inner: block / shape[1]! };
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
  const { blocks, fiber, inner } = dellaFibers(shape, n);
  for (let r = 0; r < blocks; r++) {
    const off = r * fiber * inner;
    for (let k = 0; k < inner; k++) {
      const order = rankOrderAscending((i) => tau[off + i * inner + k]!, fiber);
      for (let pos = 0; pos < fiber; pos++) {
        const j = order[pos]!;
        const p = dellaProbability(density, epsilon, pos + 1, fiber);
        // The draw of the element's place in its fiber order (off + k*fiber + j): SPEC section 5.
        keep[off + j * inner + k] = dareU(key, off + k * fiber + j) < dareKeepThreshold(p) ? 1 : 0;
      }
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
  let poisoned = false; // a rescale by a NaN or infinite ratio: every output element is NaN (SPEC step 1)
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
          case "magnitude": {
            const kept = Math.floor(d * n);
            // mergekit's magnitude sparsifier asserts k > 0 ("not gonna zero out the whole tensor").
            if (kept <= 0) throw new Error(`${method}: density ${d} of ${x.model} keeps ${kept} of the ${n} elements of ${x.name}`);
            keep = magnitudeKeepMask(tau, kept);
            break;
          }
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
        // Times the 0/1 mask, as mergekit does: a NaN or infinite tau stays NaN where it is dropped. della at
        // density <= 0 is mergekit's zeros_like instead: zeros whatever tau is, never rescaled.
        const zeroed = member.sparsifier === "della" && d <= 0;
        m = new Float32Array(n);
        if (!zeroed) for (let j = 0; j < n; j++) m[j] = fr(tau[j]! * (keep[j] ? 1 : 0));
        if (rescale && !zeroed) {
          let A = 0;
          let B = 0;
          for (let j = 0; j < n; j++) {
            A += Math.abs(tau[j]!);
            B += Math.abs(m[j]!);
          }
          if (!Number.isFinite(A)) poisoned = true;
          else if (A >= 1e-7 && B >= 1e-7) {
            const r = fr(A / B);
            if (!Number.isFinite(r)) poisoned = true;
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

  if (poisoned) return new Float32Array(n).fill(NaN);
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
        for (let i = 0; i < N; i++) count += Math.sign(votes[i]![j]!); // torch.sign: NaN for NaN, so the count is NaN and - is elected
        positive = count >= 0;
      }
      mixed = 0;
      div = 0;
      for (let i = 0; i < N; i++) {
        const v = votes[i]![j]!;
        const agree = positive ? v > 0 : v < 0;
        const term = fr(ps[i]![j]! * (agree ? 1 : 0)); // times the 0/1 mask: an outvoted NaN or infinity is NaN
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
  // mergekit: int(abs(density) * torch.count_nonzero(variance)), a float32 tensor product.
  const k = Math.trunc(new Float32Array([new Float32Array([nonzero])[0]! * new Float32Array([selectTopk])[0]!])[0]!);
  const keep = new Uint8Array(n);
  if (k <= 0) return keep;
  const idx = Array.from({ length: n }, (_, j) => j);
  const nan = (j: number) => Number.isNaN(variance[j]!);
  idx.sort((a, b) => (nan(a) || nan(b) ? (nan(a) && nan(b) ? a - b : nan(a) ? -1 : 1) : variance[a]! > variance[b]! ? -1 : variance[a]! < variance[b]! ? 1 : a - b));
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
    // Times the 0/1 mask, as mergekit does: a NaN or infinite tau is NaN where it is not kept.
    for (const tau of taus) for (let j = 0; j < n; j++) if (!keep[j]) tau[j] = tau[j]! * 0;
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
      const erased = weights[i]! * ((positive ? v > 0 : v < 0) ? 1 : 0); // a NaN weight stays NaN
      num += v * erased;
      den += erased;
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
    // mergekit multiplies tau by its 0/1 masks: a non-finite tau makes the element NaN, zeroed or not.
    out[j] = taus.some((tau) => !Number.isFinite(tau[j]!)) ? NaN : fr(b[j]! + uniqueSum + (count[j]! > 1 ? sharedSum / count[j]! : 0));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Geometric methods: nuslerp, multislerp, karcher, model_stock, nearswap, arcee_fusion

/**
 * Per output element, the largest magnitude among the terms of the linear combination a method's output
 * is (for methods whose coefficients can exceed 1 by far): merge.ts hands it on as the output tensor's
 * `termScale`, which the float32 tolerance is relative to as well.
 */
export const TERM_SCALES = new WeakMap<Float32Array, Float64Array>();

function nonBase(vals: Float32Array[], baseIdx: number): Float32Array[] {
  return vals.filter((_, i) => i !== baseIdx);
}

function nonBaseInputs(inputs: FloatInput[], baseIdx: number): FloatInput[] {
  return inputs.filter((_, i) => i !== baseIdx);
}

function globalNumber(ctx: Ctx, p: PlannedTensor, name: string, dflt: number | undefined): number {
  const v = paramValue(name, undefined, p.slice, ctx.top, p.outName, p.t);
  if (v === undefined) {
    if (dflt === undefined) throw new Error(`${ctx.method}: parameter ${name} is required (tensor ${p.outName})`);
    return dflt;
  }
  return asNumber(v, name);
}

function requiredWeight(ctx: Ctx, p: PlannedTensor, x: FloatInput): number {
  const v = paramValue("weight", x.model, p.slice, ctx.top, x.name, p.t);
  if (v === undefined) throw new Error(`${ctx.method}: weight is required for model ${x.model} (tensor ${x.name})`);
  return asNumber(v, `weight of ${x.model} for ${x.name}`);
}

/** Flat-index lists of the vectors nuslerp works on (see SPEC: flatten, rows, or columns). */
export function nuslerpVectors(shape: readonly number[], numel: number, flatten: boolean, rowWise: boolean): number[][] {
  const range = (count: number, at: (k: number) => number): number[] => Array.from({ length: count }, (_, k) => at(k));
  if (flatten || shape.length <= 1) return [range(numel, (k) => k)];
  if (!rowWise) {
    const { rows, cols } = lastAxisRows(shape, numel);
    return range(rows, (r) => r).map((r) => range(cols, (k) => r * cols + k));
  }
  const len = shape[0]!;
  const stride = len === 0 ? 0 : numel / len;
  return range(stride, (c) => c).map((c) => range(len, (k) => k * stride + c));
}

function norm(v: ArrayLike<number>): number {
  let s = 0;
  for (let j = 0; j < v.length; j++) s += v[j]! * v[j]!;
  return Math.sqrt(s);
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let j = 0; j < a.length; j++) s += a[j]! * b[j]!;
  return s;
}

/** nuslerp's coefficients (c1, c2) for two vectors at t. */
export function nuslerpCoefficients(v1: ArrayLike<number>, v2: ArrayLike<number>, t: number): [number, number] {
  const n1 = Math.max(norm(v1), 1e-7);
  const n2 = Math.max(norm(v2), 1e-7);
  const cos = Math.min(Math.max(dot(v1, v2) / (n1 * n2), -1), 1);
  const theta = Math.acos(cos);
  const sin = Math.sin(theta);
  if (Math.abs(sin) < 1e-8) return [1 - t, t];
  return [Math.sin((1 - t) * theta) / sin, Math.sin(t * theta) / sin];
}

function mergeNuslerp(ctx: Ctx, p: PlannedTensor, inputs: FloatInput[], vals: Float32Array[], baseIdx: number, shape: readonly number[]): Float32Array {
  const xs = nonBase(vals, baseIdx);
  const xin = nonBaseInputs(inputs, baseIdx);
  if (inputs.length === 1) return vals[0]!.slice(); // mergekit returns a lone input as it is
  if (xs.length !== 2) throw new Error(`nuslerp: needs exactly two non-base models, ${p.outName} has ${xs.length}`);
  const w1 = requiredWeight(ctx, p, xin[0]!);
  const w2 = requiredWeight(ctx, p, xin[1]!);
  const t = Math.abs(w1 + w2) < 1e-6 ? 0.5 : w2 / (w1 + w2);
  const g = (name: string, dflt: boolean): boolean => asBool(paramValue(name, undefined, p.slice, ctx.top, p.outName, p.t), dflt, name);
  const flatten = g("nuslerp_flatten", true);
  const rowWise = g("nuslerp_row_wise", false);
  const b = baseIdx >= 0 ? vals[baseIdx]! : undefined;
  const n = xs[0]!.length;
  const v = xs.map((x) => (b === undefined ? x : x.map((xv, j) => fr(xv - b[j]!))));
  const out = new Float32Array(n);
  for (const idx of nuslerpVectors(shape, n, flatten, rowWise)) {
    const a1 = idx.map((j) => v[0]![j]!);
    const a2 = idx.map((j) => v[1]![j]!);
    const [c1, c2] = nuslerpCoefficients(a1, a2, t);
    for (const j of idx) out[j] = fr((b === undefined ? 0 : b[j]!) + c1 * v[0]![j]! + c2 * v[1]![j]!);
  }
  return out;
}

function mergeMultislerp(ctx: Ctx, p: PlannedTensor, inputs: FloatInput[], vals: Float32Array[], baseIdx: number): Float32Array {
  const xs = nonBase(vals, baseIdx);
  const xin = nonBaseInputs(inputs, baseIdx);
  const K = xs.length;
  if (K === 0) throw new Error(`multislerp: ${p.outName} has no non-base inputs`);
  if (K === 1) return xs[0]!.slice();
  let w = xin.map((x) => requiredWeight(ctx, p, x));
  const normalizeWeights = asBool(paramValue("normalize_weights", undefined, p.slice, ctx.top, p.outName, p.t), true, "normalize_weights");
  const eps = globalNumber(ctx, p, "eps", 1e-8);
  if (normalizeWeights) {
    let s = 0;
    for (const wi of w) s += wi;
    w = w.map((wi) => wi / s);
  }
  const b = baseIdx >= 0 ? vals[baseIdx]! : undefined;
  const n = xs[0]!.length;
  const ys = xs.map((x) => (b === undefined ? x : x.map((xv, j) => fr(xv - b[j]!))));
  const norms = ys.map(norm);
  const units = ys.map((y, i) => Float64Array.from(y, (v) => v / (norms[i]! + eps)));
  const m = new Float64Array(n);
  for (let i = 0; i < K; i++) for (let j = 0; j < n; j++) m[j] += w[i]! * units[i]![j]!;
  const mNorm = norm(m);
  const out = new Float32Array(n);
  const base = (j: number): number => (b === undefined ? 0 : b[j]!);
  if (mNorm < eps) {
    if (K !== 2) throw new Error(`multislerp: ${p.outName}: the directions cancel out (antipodal vectors)`);
    for (let j = 0; j < n; j++) out[j] = fr(w[0]! * ys[0]![j]! + w[1]! * ys[1]![j]! + base(j));
    return out;
  }
  const mh = m.map((v) => v / mNorm);
  const g = new Float64Array(n);
  for (let i = 0; i < K; i++) {
    const d = dot(units[i]!, mh);
    for (let j = 0; j < n; j++) g[j] += w[i]! * (units[i]![j]! - d * mh[j]!);
  }
  const a = norm(g) + eps;
  const ca = Math.cos(a);
  const sa = Math.sin(a) / a;
  let scale = 0;
  for (let i = 0; i < K; i++) scale += w[i]! * norms[i]!;
  for (let j = 0; j < n; j++) out[j] = fr(scale * (mh[j]! * ca + g[j]! * sa) + base(j));
  // g is 0 but for rounding (sum_i w_i d_i = |m|), so out - b = sum_i k_i y_i with k_i = scale w_i /
  // ((n_i + eps) |m|): a linear combination whose terms can be far larger than the inputs and the output
  // where the directions nearly cancel (small |m|). float32 evaluation of it is accurate to its terms.
  const k = w.map((wi, i) => (scale * wi) / ((norms[i]! + eps) * mNorm));
  const terms = new Float64Array(n);
  for (let i = 0; i < K; i++) for (let j = 0; j < n; j++) terms[j] = Math.max(terms[j]!, Math.abs(k[i]! * ys[i]![j]!));
  TERM_SCALES.set(out, terms);
  return out;
}

/** The Karcher mean direction and scale of flat vectors with equal weights (SPEC: karcher). */
export function karcherMean(xs: ArrayLike<number>[], maxIter: number, tol: number): Float64Array {
  const count = xs.length;
  const n = xs[0]!.length;
  const norms = xs.map(norm);
  const units = xs.map((x, i) => Float64Array.from({ length: n }, (_, j) => (norms[i] === 0 ? 0 : x[j]! / norms[i]!)));
  const valid = units.filter((_, i) => norms[i]! > tol);
  if (valid.length === 0) return new Float64Array(n);
  const a = 1 / valid.length;
  let u = new Float64Array(n);
  for (const ui of valid) for (let j = 0; j < n; j++) u[j] += a * ui[j]!;
  const un = norm(u);
  if (un < tol) u = valid[0]!.slice();
  else u = u.map((v) => v / un);
  for (let it = 0; it < maxIter; it++) {
    const T = new Float64Array(n);
    for (const ui of valid) {
      const c = Math.min(Math.max(dot(u, ui), -1), 1);
      const th = Math.acos(c);
      if (th < tol) continue;
      const f = th / Math.sin(th);
      for (let j = 0; j < n; j++) T[j] += a * f * (ui[j]! - c * u[j]!);
    }
    const tn = norm(T);
    if (tn < tol) break;
    const cs = Math.cos(tn);
    const sn = Math.sin(tn);
    u = u.map((v, j) => cs * v + (sn * T[j]!) / tn);
    const nu = norm(u);
    if (nu > tol) u = u.map((v) => v / nu);
  }
  let scale = 0;
  for (const nr of norms) scale += nr / count;
  return u.map((v) => scale * v);
}

function mergeKarcher(ctx: Ctx, p: PlannedTensor, vals: Float32Array[]): Float32Array {
  if (vals.length === 1) return vals[0]!.slice();
  const maxIter = globalNumber(ctx, p, "max_iter", 10);
  if (!Number.isInteger(maxIter) || maxIter < 0) throw new Error(`karcher: max_iter must be a non-negative integer, got ${maxIter}`);
  const tol = globalNumber(ctx, p, "tol", 1e-5);
  return Float32Array.from(karcherMean(vals, maxIter, tol), fr);
}

/** model_stock's t for N fine-tunes whose mean pairwise cosine is c. */
export function modelStockT(N: number, c: number): number {
  return (N * c) / (1 + (N - 1) * c);
}

function mergeModelStock(ctx: Ctx, p: PlannedTensor, vals: Float32Array[], baseIdx: number, shape: readonly number[]): Float32Array {
  if (baseIdx < 0) throw new Error(`model_stock: base_model is required and must be an input of ${p.outName}`);
  const b = vals[baseIdx]!;
  const xs = nonBase(vals, baseIdx);
  const N = xs.length;
  if (N === 0) return b.slice();
  if (N === 1) throw new Error(`model_stock: needs the base and at least two other models, ${p.outName} has one other`);
  const filterWise = asBool(paramValue("filter_wise", undefined, p.slice, ctx.top, p.outName, p.t), false, "filter_wise");
  const n = b.length;
  const deltas = xs.map((x) => x.map((v, j) => fr(v - b[j]!)));
  const { rows, cols } = filterWise ? lastAxisRows(shape, n) : { rows: 1, cols: n };
  const out = new Float32Array(n);
  for (let r = 0; r < rows; r++) {
    const off = r * cols;
    const vec = deltas.map((d) => d.subarray(off, off + cols));
    let sum = 0;
    let pairs = 0;
    for (let i = 0; i < N; i++) {
      for (let k = i + 1; k < N; k++) {
        const c = dot(vec[i]!, vec[k]!) / Math.max(norm(vec[i]!) * norm(vec[k]!), 1e-6);
        sum += Math.min(Math.max(c, -1), 1);
        pairs++;
      }
    }
    const t = modelStockT(N, sum / pairs);
    for (let j = off; j < off + cols; j++) {
      let s = 0;
      for (const x of xs) s += x[j]!;
      out[j] = fr((t * s) / N + (1 - t) * b[j]!);
    }
  }
  return out;
}

function baseAndOther(method: string, p: PlannedTensor, vals: Float32Array[], baseIdx: number): { a: Float32Array; b: Float32Array } {
  if (baseIdx < 0) throw new Error(`${method}: base_model is required and must be an input of ${p.outName}`);
  const others = nonBase(vals, baseIdx);
  if (others.length !== 1) throw new Error(`${method}: needs the base and exactly one other model, ${p.outName} has ${others.length} others`);
  return { a: vals[baseIdx]!, b: others[0]! };
}

/** nearswap's interpolation factor s of one element (float32, exact). */
export function nearswapFactor(a: number, b: number, t: number): number {
  const d = Math.abs(fr(a - b));
  const floor = fr(1e-6);
  const s = fr(fr(t) / (d > floor ? d : floor));
  return s < 0 ? 0 : s > 1 ? 1 : s;
}

function mergeNearswap(ctx: Ctx, p: PlannedTensor, vals: Float32Array[], baseIdx: number): Float32Array {
  const { a, b } = baseAndOther("nearswap", p, vals, baseIdx);
  const t = globalNumber(ctx, p, "t", undefined);
  const out = new Float32Array(a.length);
  for (let j = 0; j < a.length; j++) {
    const s = nearswapFactor(a[j]!, b[j]!, t);
    out[j] = fr(s * b[j]! + (1 - s) * a[j]!);
  }
  return out;
}

/** KL(softmax(b)+1e-8 || softmax(a)+1e-8) of one row, float64. */
export function rowKl(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const soft = (x: ArrayLike<number>): number[] => {
    let mx = -Infinity;
    for (let k = 0; k < x.length; k++) if (x[k]! > mx) mx = x[k]!;
    const e = Array.from(x, (v) => Math.exp(v - mx));
    let s = 0;
    for (const v of e) s += v;
    return e.map((v) => v / s + 1e-8);
  };
  const p = soft(b);
  const q = soft(a);
  let kl = 0;
  for (let k = 0; k < p.length; k++) kl += p[k]! * Math.log(p[k]! / q[k]!);
  return kl;
}

/** arcee_fusion's importances and Tukey-fence threshold (exact quantiles). */
export function arceeFusionMask(a: Float32Array, b: Float32Array, shape: readonly number[]): { importance: Float32Array; threshold: number; mask: Uint8Array } {
  const n = a.length;
  const { rows, cols } = lastAxisRows(shape, n);
  const importance = new Float32Array(n);
  for (let r = 0; r < rows; r++) {
    const off = r * cols;
    const kl = fr(rowKl(a.subarray(off, off + cols), b.subarray(off, off + cols)));
    for (let j = off; j < off + cols; j++) importance[j] = fr(fr(Math.abs(fr(b[j]! - a[j]!))) * kl);
  }
  const sorted = importance.slice().sort();
  const Q = (q: number): number => sorted[Math.floor(q * (n - 1))]!;
  const threshold = fr(Q(0.5) + 1.5 * (Q(0.75) - Q(0.25)));
  const mask = new Uint8Array(n);
  for (let j = 0; j < n; j++) mask[j] = importance[j]! >= threshold ? 1 : 0;
  return { importance, threshold, mask };
}

function mergeArceeFusion(p: PlannedTensor, vals: Float32Array[], baseIdx: number, shape: readonly number[]): Float32Array {
  const { a, b } = baseAndOther("arcee_fusion", p, vals, baseIdx);
  const { mask } = arceeFusionMask(a, b, shape);
  // mergekit's a + mask (b - a): NaN where b - a is not finite, unless taken and infinite (then b).
  return a.map((v, j) => {
    const d = fr(b[j]! - v);
    return !Number.isFinite(d) && (Number.isNaN(d) || !mask[j]) ? NaN : mask[j] ? b[j]! : v;
  });
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
    case "nuslerp":
      return mergeNuslerp(ctx, p, inputs, vals, baseIdx, shape);
    case "multislerp":
      return mergeMultislerp(ctx, p, inputs, vals, baseIdx);
    case "karcher":
      return mergeKarcher(ctx, p, vals);
    case "model_stock":
      return mergeModelStock(ctx, p, vals, baseIdx, shape);
    case "nearswap":
      return mergeNearswap(ctx, p, vals, baseIdx);
    case "arcee_fusion":
      return mergeArceeFusion(p, vals, baseIdx, shape);
    default:
      throw new Error(`the reference has no merge method ${ctx.method}`);
  }
}
