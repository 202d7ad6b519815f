/**
 * @file Computing one output tensor: the sequence of passes each operation needs, and the statistics
 * that flow between them. The same code drives a resident tensor inside one worker and a chunked tensor
 * across all workers; only the executor differs. Whole-tensor sums are added up tile by tile in tile
 * order, so results do not depend on chunking.
 */
import type { TaskSpec, TensorOp } from "../plan/plan";
import { dareStreamKey, dareThreshold } from "./dare";
import { geometricRequest } from "./geometric";
import type { FinalRequest, PassResult, TensorExecutor, TensorJob, Trim } from "./job";
import { chunkCount } from "./job";
import { selectTopK } from "./select";

export async function runTensor(job: TensorJob, exec: TensorExecutor): Promise<void> {
  await exec.final(await finalRequest(job, job.op, exec));
}

async function finalRequest(job: TensorJob, op: TensorOp, exec: TensorExecutor): Promise<FinalRequest> {
  switch (op.kind) {
    case "copy":
      return { kind: "copy" };
    case "sum":
      return { kind: "sum", weights: op.weights, normalize: op.normalize, divisor: op.divisor };
    case "slerp":
      return slerp(op.t, await exec.pass({ kind: "slerpStats" }));
    case "taskVector":
      return taskVector(job, op, exec);
    case "nuslerp": case "multislerp": case "karcher": case "modelStock": case "nearswap": case "arceeFusion":
      return geometricRequest(job, op, exec);
  }
}

/** Sum of the i-th of every `stride` values of per-tile partials, over all chunks in order. */
function tileSum(results: PassResult[], stride: number, i: number): number {
  let sum = 0;
  for (const r of results) {
    const partials = r.kind === "slerpStats" || r.kind === "maskedL1" ? r.partials : undefined;
    if (!partials) throw new Error("executor returned a result of the wrong kind");
    for (let p = i; p < partials.length; p += stride) sum += partials[p]!;
  }
  return sum;
}

/**
 * mergekit's slerp: the angle between the two tensors (as flat vectors, each normalised unless its norm
 * is below 1e-8) decides the coefficients; nearly colinear tensors (|cos| > 0.9995) are lerped.
 */
function slerp(t: number, stats: PassResult[]): FinalRequest {
  const n0 = Math.sqrt(tileSum(stats, 3, 0));
  const n1 = Math.sqrt(tileSum(stats, 3, 1));
  const dot = tileSum(stats, 3, 2);
  const d = dot / ((n0 > 1e-8 ? n0 : 1) * (n1 > 1e-8 ? n1 : 1));
  let s0: number, s1: number;
  if (Math.abs(d) > 0.9995) {
    [s0, s1] = [1 - t, t];
  } else {
    const theta = Math.acos(d);
    const thetaT = theta * t;
    const sinTheta = Math.sin(theta);
    [s0, s1] = [Math.sin(theta - thetaT) / sinTheta, Math.sin(thetaT) / sinTheta];
  }
  return { kind: "sum", weights: [Math.fround(s0), Math.fround(s1)], normalize: false, divisor: 1 };
}

async function taskVector(job: TensorJob, op: Extract<TensorOp, { kind: "taskVector" }>, exec: TensorExecutor): Promise<FinalRequest> {
  const chunks = chunkCount(job);
  const trims: Trim[] = op.tasks.map((task, i) => {
    if (task.density >= 1 || !op.sparsify) return { mode: "none" };
    if (op.sparsify === "random") return { mode: "random", threshold: dareThreshold(task.density), key: dareStreamKey(job.seed, job.name, i) };
    return { mode: "magnitude", threshold: 0, ties: [] }; // filled in below
  });

  const magnitude = op.tasks.flatMap((task, i) => (trims[i]!.mode === "magnitude" ? [{ task: i, k: Math.floor(task.density * job.numel) }] : []));
  if (magnitude.length > 0) {
    const selections = await selectTopK(exec, job.numel, magnitude);
    // Elements equal to the threshold are kept lowest index first, so a chunk needs to know how many of
    // them the chunks before it hold (the select's last round counted them per chunk).
    for (const [task, s] of selections) {
      const equalPerChunk = s.equalByChunk;
      let left = s.ties;
      const ties = Array.from({ length: chunks }, (_, c) => {
        if (s.ties === s.equal) return s.equal; // every equal element is kept
        if (chunks === 1) return s.ties;
        const take = Math.min(left, equalPerChunk![c]!);
        left -= take;
        return take;
      });
      trims[task] = { mode: "magnitude", threshold: s.threshold, ties };
    }
  }

  const rescales = op.tasks.map(() => 1);
  if (op.rescale && trims.some((t) => t.mode !== "none")) {
    const norms = await exec.pass({ kind: "maskedL1", trims });
    const tasks = op.tasks.length;
    trims.forEach((trim, i) => {
      if (trim.mode === "none") return;
      const all = tileSum(norms, 2 * tasks, 2 * i), kept = tileSum(norms, 2 * tasks, 2 * i + 1);
      if (all >= 1e-7 && kept >= 1e-7) rescales[i] = Math.fround(all / kept);
    });
  }

  return {
    kind: "taskVector", trims, rescales, weights: op.tasks.map((t: TaskSpec) => t.weight), consensus: op.consensus,
    normalize: op.normalize, divisor: op.divisor, lambda: op.lambda,
  };
}

