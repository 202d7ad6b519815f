/**
 * @file The geometric methods' math (mergekit-semantics.md sections 1.4-1.6, 1.10-1.12), driven pass
 * by pass like run-tensor.ts. nuslerp, multislerp, karcher and model_stock gather the Gram matrix of
 * their vectors in one pass (float64, in tile/row order or a fixed tree over rows, so chunking never
 * changes a bit); every norm, cosine and Karcher iteration is then scalar math on that small matrix,
 * and the output is a combination of the inputs with the coefficients found (acos, sin and cos are the
 * kernels', kernels/scalar-math.ts: the same bits in every runtime). arcee_fusion computes each
 * row's KL divergence, selects the exact quartiles of the importances and masks.
 */
import { RecipeError } from "../errors";
import { scalarMath, type ScalarMath } from "../kernels/scalar-math";
import type { GeometricOp, VectorLayout } from "../plan/geometric";
import { concatChunks, nanThroughout, type FinalRequest, type TensorExecutor, type TensorJob } from "./job";
import { selectTopK } from "./select";

export async function geometricRequest(job: TensorJob, op: GeometricOp, exec: TensorExecutor): Promise<FinalRequest> {
  switch (op.kind) {
    case "nearswap":
      return { kind: "nearswap", t: op.t };
    case "arceeFusion":
      return arceeFusion(job, op.cols, exec);
    case "nuslerp": {
      const grams = await gramPass(job, exec, op.layout, op.cols, op.offsets, 2);
      const math = await scalarMath();
      return combine(job, op.layout, op.cols, op.offsets, 2, grams, (g) => nuslerpCoefficients(op.t, g, math));
    }
    case "multislerp": {
      const m = op.weights.length;
      const grams = await gramPass(job, exec, "flat", 1, op.offsets, m);
      const math = await scalarMath();
      return combine(job, "flat", 1, op.offsets, m, grams, (g) => multislerpCoefficients(op.weights, op.normalizeWeights, op.eps, g, job.name, math));
    }
    case "karcher": {
      const m = job.inputs.length;
      const grams = await gramPass(job, exec, "flat", 1, false, m);
      const math = await scalarMath();
      return combine(job, "flat", 1, false, m, grams, (g) => karcherCoefficients(op.maxIter, op.tol, g, m, math));
    }
    case "modelStock": {
      const m = job.inputs.length - 1;
      const grams = await gramPass(job, exec, op.layout, op.cols, true, m);
      return combine(job, op.layout, op.cols, true, m, grams, modelStockCoefficients);
    }
  }
}

/** A symmetric m x m Gram matrix: g(i, j) = v_i . v_j. */
export type Gram = (i: number, j: number) => number;

/** Index of pair (i <= j) in the kernels' upper-triangle order. */
function pairIndex(m: number, i: number, j: number): number {
  if (i > j) [i, j] = [j, i];
  return i * m - (i * (i - 1)) / 2 + (j - i);
}

/** Per vector: the m(m+1)/2 Gram entries, as one array with `groups` consecutive entries' sets. */
interface Grams {
  /** Number of vectors per input (1, rows or columns). */
  groups: number;
  at(group: number): Gram;
}

async function gramPass(job: TensorJob, exec: TensorExecutor, layout: VectorLayout, cols: number, offsets: boolean, m: number): Promise<Grams> {
  const results = await exec.pass({ kind: "gram", layout, cols, offsets });
  const pairs = (m * (m + 1)) / 2;
  const totals = gramTotals(results.map((r) => (r.kind === "gram" ? r.partials : unexpected())), layout, cols, pairs);
  if (layout === "flat") return { groups: 1, at: () => (i, j) => totals[pairIndex(m, i, j)]! };
  if (layout === "rows") return { groups: job.numel / cols, at: (r) => (i, j) => totals[r * pairs + pairIndex(m, i, j)]! };
  return { groups: cols, at: (c) => (i, j) => totals[pairIndex(m, i, j) * cols + c]! };
}

/**
 * The Gram entries of the whole tensor from the chunks' pass results (in chunk order): flat, `pairs`
 * sums (tile sums in tile order, chunk after chunk: the same additions however the tensor is chunked);
 * rows, `pairs` entries per row; columns, `pairs` runs of `cols` (the chunks' tree nodes added up).
 */
export function gramTotals(parts: Float64Array[], layout: VectorLayout, cols: number, pairs: number): Float64Array {
  if (layout === "flat") {
    const sums = new Float64Array(pairs);
    for (const partials of parts) for (let p = 0; p < partials.length; p++) sums[p % pairs] += partials[p]!;
    return sums;
  }
  if (layout === "rows") return concatChunks(parts);
  return treeSum(parts);
}

/**
 * The chunks' column nodes added as the kernel adds rows (assembly/geometry.ts gramColumns): a binary
 * counter over equal subtrees, then what is left from the right. Chunks hold a power of two rows, so
 * this reproduces the one-chunk sums exactly.
 */
export function treeSum(nodes: Float64Array[]): Float64Array {
  const stack: Float64Array[] = [];
  nodes.forEach((node, i) => {
    stack.push(node.slice());
    for (let c = i + 1; c % 2 === 0; c /= 2) addInto(stack, stack.pop()!);
  });
  while (stack.length > 1) addInto(stack, stack.pop()!);
  return stack[0]!;
}

function addInto(stack: Float64Array[], top: Float64Array): void {
  const below = stack[stack.length - 1]!;
  for (let k = 0; k < below.length; k++) below[k] += top[k]!;
}

/** The final request: coefficients per vector from `solve`, rounded to float32. */
function combine(job: TensorJob, layout: VectorLayout, cols: number, offsets: boolean, m: number, grams: Grams, solve: (g: Gram, m: number) => number[]): FinalRequest {
  const coefs = Array.from({ length: m }, () => new Float32Array(grams.groups));
  let nanGroups = 0, culprit = -1;
  for (let k = 0; k < grams.groups; k++) {
    const g = grams.at(k);
    const c = solve(g, m);
    for (let i = 0; i < m; i++) coefs[i]![k] = c[i]!;
    if (!c.some(Number.isNaN)) continue;
    nanGroups++;
    if (culprit < 0) culprit = Array.from({ length: m }, (_, i) => i).find((i) => !Number.isFinite(g(i, i))) ?? 0;
  }
  // Every vector's coefficients NaN (a non-finite input value in each, as one flat vector has): the
  // output is NaN throughout, which the person is told, naming the input (vector i: inputs[i + 1] minus
  // the base with offsets, else inputs[i]).
  const warning = grams.groups > 0 && nanGroups === grams.groups ? nanThroughout(job, offsets ? culprit + 1 : culprit, offsets) : undefined;
  return { kind: "combine", layout, cols, offsets, coefs, ...(warning ? { warning } : {}) };
}

const sqrt0 = (x: number) => Math.sqrt(Math.max(0, x));

/** c^T G c: the squared norm of sum_i c_i v_i. */
function quadratic(g: Gram, c: number[]): number {
  let s = 0;
  for (let i = 0; i < c.length; i++) {
    if (c[i] === 0) continue;
    for (let j = 0; j < c.length; j++) if (c[j] !== 0) s += c[i]! * c[j]! * g(i, j);
  }
  return s;
}

/** (G c)_i: v_i . sum_j c_j v_j. */
function dotWith(g: Gram, c: number[], i: number): number {
  let s = 0;
  for (let j = 0; j < c.length; j++) if (c[j] !== 0) s += c[j]! * g(i, j);
  return s;
}

/**
 * nuslerp (section 1.4): both vectors normalised with norms clamped to >= 1e-7, the angle from their
 * clamped cosine, spherical coefficients on the original vectors; lerp where |sin theta| < 1e-8.
 */
export function nuslerpCoefficients(t: number, g: Gram, math: ScalarMath): number[] {
  const n0 = Math.max(sqrt0(g(0, 0)), 1e-7), n1 = Math.max(sqrt0(g(1, 1)), 1e-7);
  const cos = Math.min(1, Math.max(-1, g(0, 1) / (n0 * n1)));
  const theta = math.acos(cos);
  const sin = math.sin(theta);
  if (Math.abs(sin) < 1e-8) return [1 - t, t];
  return [math.sin((1 - t) * theta) / sin, math.sin(t * theta) / sin];
}

/** multislerp (section 1.5): the weighted spherical mean of the unit vectors, scaled by the mean norm. */
export function multislerpCoefficients(weights: number[], normalize: boolean, eps: number, g: Gram, tensor: string, math: ScalarMath): number[] {
  const m = weights.length;
  let w = weights;
  if (normalize) {
    const sum = w.reduce((a, b) => a + b, 0);
    w = w.map((x) => x / sum);
  }
  const norms = w.map((_, i) => sqrt0(g(i, i)));
  // A task vector with an infinite or NaN value has a non-finite norm; mergekit's unit vector v/|v| is
  // then NaN at that value, and so its mean, the mean's norm and the whole output. (As coefficients, w/|v|
  // would be 0 and drop the model, or send two models to the linear fallback: finite numbers where
  // mergekit writes NaN.)
  if (norms.some((x) => !Number.isFinite(x))) return new Array<number>(m).fill(NaN);
  const mean = w.map((wi, i) => wi / (norms[i]! + eps)); // sum_i w_i u_i, u_i = v_i / (|v_i| + eps)
  const meanNorm = sqrt0(quadratic(g, mean));
  if (meanNorm < eps) {
    if (m === 2) return w.slice();
    throw new RecipeError("E_PARAMETER_INVALID", `tensor "${tensor}": multislerp's weighted mean of the ${m} unit vectors is zero (the models' task vectors cancel out, e.g. antipodal); change the weights`,
      { tensor, key: "weight" });
  }
  const unitMean = mean.map((x) => x / meanNorm);
  // Tangent vectors at the mean: g_i = u_i - (u_i . mean) mean, combined with the weights.
  const tangent = new Array<number>(m).fill(0);
  for (let i = 0; i < m; i++) {
    const ui = 1 / (norms[i]! + eps);
    const d = ui * dotWith(g, unitMean, i);
    tangent[i] += w[i]! * ui;
    for (let j = 0; j < m; j++) tangent[j] -= w[i]! * d * unitMean[j]!;
  }
  const tNorm = sqrt0(quadratic(g, tangent)) + eps;
  const avgNorm = w.reduce((s, wi, i) => s + wi * norms[i]!, 0);
  return unitMean.map((u, i) => avgNorm * (u * math.cos(tNorm) + tangent[i]! * (math.sin(tNorm) / tNorm)));
}

/** karcher (section 1.6): the Riemannian mean of the directions, equal weights, scaled by the mean norm. */
export function karcherCoefficients(maxIter: number, tol: number, g: Gram, m: number, math: ScalarMath): number[] {
  const alpha = 1 / m;
  const norms = Array.from({ length: m }, (_, i) => sqrt0(g(i, i)));
  const valid = norms.flatMap((x, i) => (x > tol ? [i] : []));
  if (valid.length === 0) return new Array<number>(m).fill(0);
  const w = 1 / valid.length;
  // u = sum_i a_i v_i; unit_i = v_i / n_i.
  let a = new Array<number>(m).fill(0);
  for (const i of valid) a[i] = w / norms[i]!;
  const initial = sqrt0(quadratic(g, a));
  if (initial < tol) {
    a = new Array<number>(m).fill(0);
    a[valid[0]!] = 1 / norms[valid[0]!]!;
  } else {
    a = a.map((x) => x / initial);
  }
  for (let iter = 0; iter < maxIter; iter++) {
    const T = new Array<number>(m).fill(0);
    for (const i of valid) {
      const dot = Math.min(1, Math.max(-1, dotWith(g, a, i) / norms[i]!));
      const theta = math.acos(dot);
      if (theta < tol) continue;
      const f = (w * theta) / math.sin(theta);
      T[i] += f / norms[i]!;
      for (let j = 0; j < m; j++) T[j] -= f * dot * a[j]!;
    }
    const normT = sqrt0(quadratic(g, T));
    if (normT < tol) break;
    const c = math.cos(normT), s = math.sin(normT) / normT;
    a = a.map((x, j) => c * x + s * T[j]!);
    const uNorm = sqrt0(quadratic(g, a));
    if (uNorm > tol) a = a.map((x) => x / uNorm);
  }
  const scale = norms.reduce((sum, x) => sum + alpha * x, 0);
  return a.map((x) => scale * x);
}

/**
 * model_stock (section 1.10): t = N c / (1 + (N - 1) c) from the mean pairwise cosine c of the task
 * vectors (norm products clamped to >= 1e-6, cosines to [-1, 1]); out = b + t/N sum_i tau_i, which is
 * t * mean(x_i) + (1 - t) * b.
 */
export function modelStockCoefficients(g: Gram, n: number): number[] {
  let sum = 0, pairs = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const norms = Math.max(sqrt0(g(i, i)) * sqrt0(g(j, j)), 1e-6);
      sum += Math.min(1, Math.max(-1, g(i, j) / norms));
      pairs++;
    }
  }
  const c = sum / pairs;
  const t = (n * c) / (1 + (n - 1) * c);
  return new Array<number>(n).fill(t / n);
}

/**
 * arcee_fusion (section 1.12, with exact quantiles): importances I = |b - a| * KL_row; the Tukey fence
 * Q(0.5) + 1.5 (Q(0.75) - Q(0.25)) over all of them, Q(q) being the sorted importance at floor(q (N-1)).
 */
async function arceeFusion(job: TensorJob, cols: number, exec: TensorExecutor): Promise<FinalRequest> {
  const results = await exec.pass({ kind: "fusionKL", cols });
  const kl = new Float32Array(job.numel / cols);
  let offset = 0;
  for (const r of results) {
    if (r.kind !== "fusionKL") unexpected();
    kl.set(r.kl, offset); // float64 -> float32, rounded to nearest
    offset += r.kl.length;
  }
  const n = job.numel;
  const quartiles = [0.25, 0.5, 0.75].map((q, task) => ({ task, k: n - Math.floor(q * (n - 1)) }));
  const selected = await selectTopK(exec, n, quartiles, { kind: "fusion", cols, kl });
  const bits = new Uint32Array(1), value = new Float32Array(bits.buffer);
  const q = (task: number) => {
    bits[0] = selected.get(task)!.threshold;
    return value[0]!;
  };
  const threshold = Math.fround(q(1) + 1.5 * (q(2) - q(0)));
  return { kind: "fusion", cols, kl, threshold };
}

function unexpected(): never {
  throw new Error("executor returned a result of the wrong kind");
}
