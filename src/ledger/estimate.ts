/**
 * @file What a plan will cost before it runs: output size, peak memory and time. Memory follows the
 * engine's own chunking (chunkElementsFor), so it is what the workers will allocate; time is input
 * bytes over a throughput measured on the development VM per kind of operation (RATES), so it is a
 * rough guide on other machines.
 */
import { DTYPES } from "../format/dtypes";
import { KERNEL_OVERHEAD_BYTES } from "../kernels/budget";
import { chunkElementsFor, JOBS_PER_WORKER, poolSize } from "../merge/engine";
import { extraBytesPerElement } from "../merge/chunk-unit";
import { sceSelectBytes } from "../merge/workspace-methods";
import type { MergePlan, PlannedTensor } from "../plan/plan";

/**
 * Whole-merge throughput, bytes of input per second, with 2 workers on the 2-core development VM while
 * other jobs shared it: BF16, a base and three fine-tunes of 259 MB each (Llama-shaped, vocab 16000,
 * hidden 1024, 8 layers), `weightsoup merge RECIPE OUT --workers 2 --json`, the mean of two runs per
 * method (passthrough 38 MB/s, linear 71, task_arithmetic 78, slerp 43, ties 28.5, dare_ties 32.8).
 * Operations added later fall back to `other`, the slowest measured.
 */
export const RATES = {
  copy: 38e6,
  sum: 71e6,
  slerp: 43e6,
  taskVector: 78e6,
  magnitude: 28.5e6,
  random: 32.8e6,
  other: 28.5e6,
} as const;

export type RateFamily = keyof typeof RATES;

/** Seconds a merge spends besides its tensors (starting workers, writing config and card, committing). */
export const FIXED_SECONDS = 0.5;

/** Memory of the process besides the workers' wasm memory (Node, the worker threads, headers), bytes. */
export const BASELINE_BYTES = 90e6;

export function rateFamily(t: PlannedTensor): RateFamily {
  const op = t.op;
  switch (op.kind) {
    case "copy": return "copy";
    case "sum": return "sum";
    case "slerp": return "slerp";
    case "taskVector": return op.sparsify === "magnitude" ? "magnitude" : op.sparsify === "random" ? "random" : "taskVector";
    default: return "other";
  }
}

export interface PlanEstimate {
  workers: number;
  /** Bytes the output's tensors take (headers excluded). */
  outputBytes: number;
  inputBytes: number;
  /** Largest wasm memory one worker will reach: its kernel instances, each sized for the largest chunk it may hold. */
  peakWorkerMemory: number;
  /** The whole process: every worker's peak plus BASELINE_BYTES. */
  peakMemory: number;
  seconds: number;
  /** Input bytes and the rate used, per kind of operation. */
  byFamily: { family: RateFamily; tensors: number; inputBytes: number; rate: number }[];
}

export function estimatePlan(plan: MergePlan, options: { workers: number; memoryBudget: number; chunkBytes: number }): PlanEstimate {
  // Each kernel instance keeps the largest chunk it ever held (wasm memory only grows): a worker's two
  // instances reach at most the two largest tensors' chunks, or twice the largest when it is chunked
  // (its chunks go to every instance).
  const sizes: number[] = [];
  let chunked = 0;
  const workers = poolSize(plan, options.workers);
  const families = new Map<RateFamily, { tensors: number; inputBytes: number }>();
  for (const t of plan.tensors) {
    const f = families.get(rateFamily(t)) ?? { tensors: 0, inputBytes: 0 };
    f.tensors++;
    f.inputBytes += t.inputBytes;
    families.set(rateFamily(t), f);
    if (t.outputBytes === 0) continue;
    const elements = chunkElementsFor(t, { ...options, workers });
    // DARE's and della's keep bits and sce's variances, as chunkElementsFor counts them.
    const perElement = t.inputs.reduce((s, i) => s + DTYPES[i.tensor.dtype]!.bits / 8, 0) + DTYPES[t.dtype]!.bits / 8 + extraBytesPerElement(t.op);
    const op = t.op;
    const candidates = op.kind === "taskVector" && op.sparsify === "magnitude" ? 0.5 * op.tasks.filter((x) => x.density < 1).length : 0;
    // sce's bracket copies: a resident tensor's as sceSelect sizes them; a chunk's never more than its variances.
    const sce = op.kind === "sce" && op.selectTopk < 1 ? (elements < t.numel ? elements * 8 : sceSelectBytes(elements)) : 0;
    const bytes = elements * (perElement + candidates) + sce;
    sizes.push(bytes);
    if (elements < t.numel) chunked = Math.max(chunked, bytes);
  }
  sizes.sort((a, b) => b - a);
  const held = Array.from({ length: JOBS_PER_WORKER }, (_, i) => Math.max(chunked, sizes[i] ?? 0)).filter((b) => b > 0);
  const instance = (bytes: number) => Math.ceil(Math.min(options.memoryBudget / JOBS_PER_WORKER, KERNEL_OVERHEAD_BYTES + bytes) / 65536) * 65536;
  const peakWorkerMemory = held.reduce((s, b) => s + instance(b), 0);
  const byFamily = [...families].map(([family, f]) => ({ family, ...f, rate: RATES[family] }));
  const seconds = FIXED_SECONDS + byFamily.reduce((s, f) => s + f.inputBytes / f.rate, 0);
  return {
    workers,
    outputBytes: plan.tensors.reduce((s, t) => s + t.outputBytes, 0),
    inputBytes: plan.tensors.reduce((s, t) => s + t.inputBytes, 0),
    peakWorkerMemory, peakMemory: workers * peakWorkerMemory + BASELINE_BYTES, seconds, byFamily,
  };
}
