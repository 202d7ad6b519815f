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
 * Whole-merge throughput, bytes of input per second, with 2 workers on the 2-core development VM, the
 * inputs in the page cache (stop 36, 2026-12-05): the bench's base and three 1.08 GB BF16 Llama-shaped
 * fine-tunes, `weightsoup merge RECIPE OUT --workers 2 --json`, the median of three runs per method
 * (seconds below; two-model methods read 2.17 GB, karcher 3.25, the rest 4.34), less the fixed costs
 * below. Measured: passthrough 0.31 s, linear 0.93, task_arithmetic 0.78 (one rate for both), slerp
 * 2.22, ties 2.43, dare_ties 2.99, breadcrumbs_ties 3.83, della 8.42, sce 5.23, ram 1.55, ramplus_tl
 * 3.02, nuslerp 1.83, multislerp 2.38, karcher 3.38, model_stock 1.99, nearswap 1.03, arcee_fusion 3.98.
 * Inputs read from a disk add its time (on that VM about 1.5 s for the 4.34 GB).
 */
export const RATES = {
  copy: 6.8e9,
  sum: 7.8e9,
  slerp: 1.1e9,
  taskVector: 7.8e9,
  magnitude: 2.0e9,
  random: 1.6e9,
  breadcrumbs: 1.2e9,
  della: 0.53e9,
  sce: 0.88e9,
  ram: 3.5e9,
  ramplus: 1.6e9,
  nuslerp: 1.4e9,
  multislerp: 2.1e9,
  karcher: 1.1e9,
  modelStock: 2.6e9,
  nearswap: 3.0e9,
  arceeFusion: 0.59e9,
} as const;

export type RateFamily = keyof typeof RATES;

/** Seconds a merge spends besides its tensors (headers, planning, config and card, committing). */
export const FIXED_SECONDS = 0.15;

/**
 * Seconds a merge that computes spends starting its kernels and workers: the example's TIES merge (103 MB
 * of inputs) took 0.385–0.401 s by its summary, of which its bytes at the ties rate are 0.05 s.
 */
export const KERNEL_START_SECONDS = 0.15;

/** Memory of the process besides the workers' wasm memory (Node, the worker threads, headers), bytes. */
export const BASELINE_BYTES = 90e6;

export function rateFamily(t: PlannedTensor): RateFamily {
  const op = t.op;
  switch (op.kind) {
    case "taskVector": return op.sparsify === undefined ? "taskVector" : op.sparsify;
    case "ram": return op.plus ? "ramplus" : "ram";
    default: return op.kind;
  }
}

/** Seconds a plan's tensors take at RATES (with 2 workers), fixed costs left out. */
export function tensorSeconds(plan: MergePlan): number {
  return plan.tensors.reduce((s, t) => s + t.inputBytes / RATES[rateFamily(t)], 0);
}

/** The fastest of RATES: no plan's tensors take less per byte. */
export const FASTEST_RATE = Math.max(...Object.values(RATES));

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

/** `workers` 0: the merge runs on the calling thread, in one kernel instance (api/merge.ts runsInThread). */
export function estimatePlan(plan: MergePlan, options: { workers: number; memoryBudget: number; chunkBytes: number }): PlanEstimate {
  // Each kernel instance keeps the largest chunk it ever held (wasm memory only grows): a worker's two
  // instances reach at most the two largest tensors' chunks, or twice the largest when it is chunked
  // (its chunks go to every instance).
  const sizes: number[] = [];
  let chunked = 0;
  const inThread = options.workers === 0;
  const workers = inThread ? 0 : poolSize(plan, options.workers);
  const families = new Map<RateFamily, { tensors: number; inputBytes: number }>();
  for (const t of plan.tensors) {
    const f = families.get(rateFamily(t)) ?? { tensors: 0, inputBytes: 0 };
    f.tensors++;
    f.inputBytes += t.inputBytes;
    families.set(rateFamily(t), f);
    if (t.outputBytes === 0) continue;
    const elements = chunkElementsFor(t, { ...options, workers: Math.max(1, workers) });
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
  const held = Array.from({ length: inThread ? 1 : JOBS_PER_WORKER }, (_, i) => Math.max(chunked, sizes[i] ?? 0)).filter((b) => b > 0);
  const instance = (bytes: number) => Math.ceil(Math.min(options.memoryBudget / JOBS_PER_WORKER, KERNEL_OVERHEAD_BYTES + bytes) / 65536) * 65536;
  const peakWorkerMemory = held.reduce((s, b) => s + instance(b), 0);
  const byFamily = [...families].map(([family, f]) => ({ family, ...f, rate: RATES[family] }));
  const computes = byFamily.some((f) => f.family !== "copy");
  const seconds = FIXED_SECONDS + (computes ? KERNEL_START_SECONDS : 0) + tensorSeconds(plan);
  return {
    workers,
    outputBytes: plan.tensors.reduce((s, t) => s + t.outputBytes, 0),
    inputBytes: plan.tensors.reduce((s, t) => s + t.inputBytes, 0),
    peakWorkerMemory, peakMemory: Math.max(1, workers) * peakWorkerMemory + BASELINE_BYTES, seconds, byFamily,
  };
}
