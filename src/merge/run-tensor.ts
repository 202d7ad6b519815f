/**
 * @file Computing one output tensor: the sequence of passes each operation needs, and the statistics
 * that flow between them. The same code drives a resident tensor inside one worker and a chunked tensor
 * across all workers; only the executor differs. Whole-tensor sums are added up tile by tile in tile
 * order, so results do not depend on chunking.
 */
import { scalarMath, type ScalarMath } from "../kernels/scalar-math";
import type { TaskSpec, TensorOp } from "../plan/plan";
import { dareStreamKey, dareThreshold } from "./dare";
import { geometricRequest } from "./geometric";
import type { FinalRequest, PassResult, SceSelection, TensorExecutor, TensorJob, Trim } from "./job";
import { chunkCount, nanThroughout, nonFiniteCarried } from "./job";
import { selectTopK, tiesPerChunk, unexpected } from "./select";
import { nonzeroVariances, radixCut, residentCut, sampledCut, topCount } from "./sce-cut";

/**
 * A magnitude cut's threshold that keeps nothing: above every |tau| bit pattern (the kernels clamp
 * thresholds of 2^31 and above so that no magnitude, NaN's included, passes them).
 */
const NOTHING_KEPT = 0xffffffff;

/**
 * Computes the tensor; returns a warning for the person when its output is not the method's usual
 * result: NaN throughout (the method spread an input's NaN or infinity to every element), or some NaN or
 * infinite values (carried element by element from inputs that hold them, or beyond the output's range).
 */
export async function runTensor(job: TensorJob, exec: TensorExecutor): Promise<string | undefined> {
  const request = await finalRequest(job, job.op, exec);
  const nonFinite = await exec.final(request);
  const throughout = request.kind === "sum" || request.kind === "combine" ? request.warning : undefined;
  return throughout ?? (nonFinite ? nonFiniteCarried(job, nonFinite) : undefined);
}

async function finalRequest(job: TensorJob, op: TensorOp, exec: TensorExecutor): Promise<FinalRequest> {
  switch (op.kind) {
    case "copy":
      return { kind: "copy" };
    case "sum":
      return { kind: "sum", weights: op.weights, normalize: op.normalize, divisor: op.divisor };
    case "slerp":
      return slerp(job, op.t, await exec.pass({ kind: "slerpStats" }), await scalarMath());
    case "taskVector": {
      // A rescale by a NaN or infinite ratio (a NaN or infinite tau) reaches every element of the task
      // vector in mergekit (NaN * 0 is NaN where it is masked), and through the weighted sum or the
      // vote every element of the output.
      const request = await taskVectorRequest(job, op, exec);
      const task = request.rescales.findIndex((r) => !Number.isFinite(r));
      return task < 0 ? request : allNaN(job, task);
    }
    case "sce":
      return sce(job, op, exec);
    case "ram":
      return ram(job, op, exec);
    case "nuslerp": case "multislerp": case "karcher": case "modelStock": case "nearswap": case "arceeFusion":
      return geometricRequest(job, op, exec);
  }
}

/** Sum of the i-th of every `stride` values of per-tile partials, over all chunks in order. */
export function tileSum(results: PassResult[], stride: number, i: number): number {
  let sum = 0;
  for (const r of results) {
    const partials = r.kind === "slerpStats" || r.kind === "maskedL1" || r.kind === "sceSquares" || r.kind === "ramCounts" ? r.partials : undefined;
    if (!partials) throw new Error("executor returned a result of the wrong kind");
    for (let p = i; p < partials.length; p += stride) sum += partials[p]!;
  }
  return sum;
}

/**
 * mergekit's slerp: the angle between the two tensors (as flat vectors, each normalised unless its norm
 * is below 1e-8) decides the coefficients; nearly colinear tensors (|cos| > 0.9995) are lerped. acos
 * and sin are the kernels' (the same bits in every runtime).
 */
function slerp(job: TensorJob, t: number, stats: PassResult[], math: ScalarMath): FinalRequest {
  const n0 = Math.sqrt(tileSum(stats, 3, 0));
  const n1 = Math.sqrt(tileSum(stats, 3, 1));
  const dot = tileSum(stats, 3, 2);
  const d = dot / ((n0 > 1e-8 ? n0 : 1) * (n1 > 1e-8 ? n1 : 1));
  let s0: number, s1: number;
  if (Math.abs(d) > 0.9995) {
    [s0, s1] = [1 - t, t];
  } else {
    const theta = math.acos(d);
    const thetaT = theta * t;
    const sinTheta = math.sin(theta);
    [s0, s1] = [math.sin(theta - thetaT) / sinTheta, math.sin(thetaT) / sinTheta];
  }
  const weights = [Math.fround(s0), Math.fround(s1)];
  // A non-finite norm (an infinite or NaN input) makes both coefficients NaN, so every element.
  const culprit = weights.some(Number.isNaN) ? (Number.isFinite(n0) ? 1 : 0) : undefined;
  return { kind: "sum", weights, normalize: false, divisor: 1, ...(culprit !== undefined ? { warning: nanThroughout(job, culprit, false) } : {}) };
}

/** The task-vector family's final request: each task's trim (exact cuts, seeded masks) and rescale. */
export async function taskVectorRequest(job: TensorJob, op: Extract<TensorOp, { kind: "taskVector" }>, exec: TensorExecutor): Promise<Extract<FinalRequest, { kind: "taskVector" }>> {
  const chunks = chunkCount(job);
  // Magnitude cuts to find: selection 2i is task i's top-k (k = keep + top for breadcrumbs), 2i + 1 its
  // breadcrumbs outliers (the top `top`).
  const cuts: { id: number; task: number; k: number }[] = [];
  const trims: Trim[] = op.tasks.map((task, i) => {
    if (task.density >= 1 || !op.sparsify) return { mode: "none" };
    if (op.sparsify === "random") return { mode: "random", threshold: dareThreshold(task.density), key: dareStreamKey(job.seed, job.name, i) };
    if (op.sparsify === "della") {
      if (task.density <= 0) return { mode: "zero" };
      return { mode: "della", key: dareStreamKey(job.seed, job.name, i), density: task.density, epsilon: task.epsilon ?? 0.15, rowLength: op.rowLength ?? job.numel, fiber: op.fiber ?? op.rowLength ?? job.numel };
    }
    if (op.sparsify === "breadcrumbs") {
      const { keep, top } = breadcrumbsCounts(job.numel, task.density, task.gamma ?? 0.01);
      // Nothing kept: mergekit's mask is all zeros, and it multiplies it in (a NaN or infinite tau stays NaN
      // there, and its L1 rescale sees it): a magnitude cut above every |tau|.
      if (keep === 0) return { mode: "magnitude", threshold: NOTHING_KEPT, ties: new Array<number>(chunks).fill(0) };
      cuts.push({ id: 2 * i, task: i, k: keep + top });
      if (top > 0) cuts.push({ id: 2 * i + 1, task: i, k: top });
      return { mode: "magnitude", threshold: 0, ties: [] }; // filled in below
    }
    cuts.push({ id: 2 * i, task: i, k: Math.floor(task.density * job.numel) });
    return { mode: "magnitude", threshold: 0, ties: [] }; // filled in below
  });

  if (cuts.length > 0) {
    const selections = await selectTopK(exec, job.numel, cuts);
    trims.forEach((trim, i) => {
      if (trim.mode !== "magnitude" || trim.threshold === NOTHING_KEPT) return;
      const inner = selections.get(2 * i)!, outer = selections.get(2 * i + 1);
      trims[i] = outer
        ? { mode: "band", threshold: inner.threshold, ties: tiesPerChunk(inner, chunks), outlierThreshold: outer.threshold, outlierTies: tiesPerChunk(outer, chunks) }
        : { mode: "magnitude", threshold: inner.threshold, ties: tiesPerChunk(inner, chunks) };
    });
  }

  const rescales = op.tasks.map(() => 1);
  if (op.rescale && trims.some((t) => t.mode !== "none")) {
    const norms = await exec.pass({ kind: "maskedL1", trims });
    const tasks = op.tasks.length;
    trims.forEach((trim, i) => {
      if (trim.mode === "none" || trim.mode === "zero") return; // mergekit returns zeros there, unscaled
      const all = tileSum(norms, 2 * tasks, 2 * i), kept = tileSum(norms, 2 * tasks, 2 * i + 1);
      // mergekit skips the rescale when either norm is below 1e-7; a NaN or infinite tau makes both
      // non-finite there (its masked norm counts NaN * 0 = NaN where the tau is masked), so it rescales.
      if (!Number.isFinite(all)) rescales[i] = NaN;
      else if (all >= 1e-7 && kept >= 1e-7) rescales[i] = Math.fround(all / kept);
    });
  }

  return {
    kind: "taskVector", trims, rescales, weights: op.tasks.map((t: TaskSpec) => t.weight), consensus: op.consensus,
    normalize: op.normalize, divisor: op.divisor, lambda: op.lambda,
    ...(op.consensus ? { countVote: op.consensusMethod === "count", unweightedVote: op.voteWeighted === false } : {}),
  };
}

/**
 * Breadcrumbs' band over ranks by |tau| descending: drop the `top` largest, keep the next `keep`
 * (mergekit's magnitude_outliers, without its bug of keeping nothing when top = 0).
 */
export function breadcrumbsCounts(n: number, density: number, gamma: number): { keep: number; top: number } {
  const keep = Math.floor(density * n);
  let top = Math.floor(gamma * n);
  const bot = n - keep - top;
  if (bot < 0) top += bot;
  return { keep, top: Math.max(0, top) };
}

/**
 * sce: select the positions of largest variance across the task vectors (an exact top-k over the
 * float64 variance bits), weight each task by its mean square over the kept positions, and merge with
 * a sum-consensus sign mask. A NaN or infinite tau anywhere in the tensor (its variance is NaN, which
 * ranks above every number) makes the whole output NaN, as in mergekit: it multiplies the task vectors
 * by the 0/1 selection (NaN * 0 is NaN), so such a tau reaches some c_i's mean square whether it is
 * kept or not, and a NaN c_i reaches every element through the erased weights.
 */
async function sce(job: TensorJob, op: Extract<TensorOp, { kind: "sce" }>, exec: TensorExecutor): Promise<FinalRequest> {
  const chunks = chunkCount(job);
  const tasks = job.inputs.length - 1;
  let selection: SceSelection = { mode: "all" };
  let nonzero = job.numel; // unknown without a selection: the squares pass looks at every position anyway
  if (op.selectTopk < 1) {
    let k: number, cut: SceSelection | undefined;
    if (exec.resident) {
      nonzero = await nonzeroVariances(exec);
      k = topCount(nonzero, op.selectTopk);
      cut = k > 0 ? await residentCut(exec, k) : undefined;
    } else ({ k, nonzero, cut } = await sampledCut(exec, job.numel, op.selectTopk));
    selection = k <= 0 ? { mode: "none" } : cut ?? await radixCut(exec, job, k, chunks);
  }
  // A NaN variance ranks above every number, so one is kept if any is (k > 0), and its tau puts a NaN or
  // an infinity in the kept squares' sums; with nothing kept, the squares of every position are summed
  // to look for one. No variance other than 0 (finite, equal task vectors): nothing to look for.
  let coefficients = Array.from({ length: tasks }, () => 1 / tasks);
  if (nonzero > 0) {
    const squares = await exec.pass({ kind: "sceSquares", selection: selection.mode === "none" ? { mode: "all" } : selection });
    const means = coefficients.map((_, i) => tileSum(squares, tasks, i) / job.numel);
    const nonFinite = means.findIndex((m) => !Number.isFinite(m));
    if (nonFinite >= 0) return allNaN(job, nonFinite);
    const total = means.reduce((a, b) => a + b, 0);
    if (selection.mode !== "none" && total >= 1e-6) coefficients = means.map((m) => m / total);
  }
  return { kind: "sce", coefficients: coefficients.map(Math.fround), selection };
}

/**
 * Every element NaN, because task `task` (inputs[task + 1] minus the base, inputs[0]) has a NaN or
 * infinite value: a weighted sum whose weights are all NaN (NaN * x is NaN for every x).
 */
function allNaN(job: TensorJob, task: number): FinalRequest {
  return { kind: "sum", weights: job.inputs.map(() => NaN), normalize: false, divisor: 1, warning: nanThroughout(job, task + 1, true) };
}

/** ram / ramplus_tl: ramplus_tl's per-model lambda comes from counts over the whole tensor. */
async function ram(job: TensorJob, op: Extract<TensorOp, { kind: "ram" }>, exec: TensorExecutor): Promise<FinalRequest> {
  const tasks = job.inputs.length - 1;
  const epsilon = Math.fround(op.epsilon);
  const lambdas = Array.from({ length: tasks }, () => 1);
  if (op.plus) {
    const { r, alpha } = op.plus;
    const counts = await exec.pass({ kind: "ramCounts", epsilon });
    for (let i = 0; i < tasks; i++) {
      const shared = tileSum(counts, 2 * tasks, 2 * i), unique = tileSum(counts, 2 * tasks, 2 * i + 1);
      const rho = shared / Math.max(unique, op.epsilon);
      lambdas[i] = Math.fround(1 + r * Math.min(Math.max(rho, 0), alpha));
    }
  }
  return { kind: "ram", epsilon, lambdas };
}
