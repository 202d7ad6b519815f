/**
 * @file The diagnostics pass over a merge plan: every task-vector tensor read by the worker pool (once
 * when the pool holds its chunks between passes, else once per pass), with the merge's own chunking
 * (chunkElementsFor) and the method's own statistics passes (taskVectorRequest: TIES's
 * exact top-k, DARE's and DELLA's seeded masks, rescales), then one diagnostics pass whose per-tile
 * float64 sums are added in tile order, so the sums do not depend on worker count or chunk size.
 */
import { AbortError, RecipeError } from "../errors";
import type { MergePlan, PlannedTensor } from "../plan/plan";
import { WorkerPool } from "../pool/pool";
import { chunkElementsFor, JOBS_PER_WORKER, tensorJob, type EngineOptions } from "../merge/engine";
import type { PassResult } from "../merge/job";
import { PoolExecutor } from "../merge/pool-executor";
import { taskVectorRequest } from "../merge/run-tensor";
import type { DiagnoseRequest } from "./chunk-stats";
import { recordLength } from "./layout";

export type DiagnoseEngineOptions = Pick<EngineOptions, "workers" | "workerUrl" | "memoryBudget" | "chunkBytes" | "chunkElements" | "seed" | "signal">;

/** One tensor's whole-tensor sums (record layout of layout.ts) and what the merge does with it. */
export interface TensorSums {
  tensor: PlannedTensor;
  /** Models in input order: base first, then the task models. */
  models: string[];
  sums: Float64Array;
  /** The method trims or drops task-vector elements for this tensor. */
  sparsified: boolean;
  /** The method elects a sign per element (TIES-style consensus). */
  elected: boolean;
}

/** Tensors with task vectors: a base input first and at least one task input. */
export function diagnosable(t: PlannedTensor): boolean {
  return (t.op.kind === "taskVector" || t.op.kind === "sce" || t.op.kind === "ram") && t.inputs.length >= 2;
}

/**
 * Throws unless the plan's method works on task vectors (a base model and the task-vector family, sce or
 * ram), and unless it is sce selecting by variance (select_topk below 1), whose selection diagnose does
 * not stage: its figures would be those of every position, as if nothing were zeroed.
 */
export function checkDiagnosable(plan: MergePlan): void {
  const file = plan.recipe.file;
  const selecting = plan.tensors.find((t) => diagnosable(t) && t.op.kind === "sce" && t.op.selectTopk < 1);
  if (selecting && selecting.op.kind === "sce") {
    throw new RecipeError("E_METHOD_UNSUPPORTED",
      `${file}: diagnose does not measure sce with select_topk below 1 (${selecting.op.selectTopk} for tensor ${selecting.name}): it does not stage sce's selection of the positions of largest variance, so its trimmed and kept figures would be those of every position. Diagnose the recipe with select_topk: 1 to see its task vectors and sign vote`,
      { file, key: "select_topk", method: plan.method.name, tensor: selecting.name });
  }
  if (plan.tensors.some(diagnosable)) return;
  throw new RecipeError("E_METHOD_UNSUPPORTED",
    `${file}: diagnose measures task vectors (each model minus base_model); method "${plan.method.name}"${plan.recipe.baseModel ? "" : " without a base_model"} has none in any tensor. Use a task-vector method (task_arithmetic, ties, dare_linear, dare_ties, breadcrumbs, breadcrumbs_ties, della, della_linear, sce, ram, ramplus_tl) with a base_model`,
    { file, key: "merge_method", method: plan.method.name });
}

async function tensorSums(pool: WorkerPool, plan: MergePlan, tensor: PlannedTensor, index: number, options: DiagnoseEngineOptions): Promise<TensorSums> {
  const job = tensorJob(plan, tensor, index, { target: { kind: "memory" }, offset: 0 }, chunkElementsFor(tensor, options), options.seed);
  const exec = new PoolExecutor(pool, job, async () => undefined, () => undefined);
  const tasks = tensor.inputs.length - 1;
  let request: DiagnoseRequest = {
    kind: "diagnose", trims: [], weights: Array<number>(tasks).fill(1), rescales: Array<number>(tasks).fill(1), consensus: false, countVote: false, unweightedVote: false,
  };
  const op = tensor.op;
  let results: PassResult[];
  try {
    // sce votes on the unweighted τ with their float32 sum, as TIES's sum vote does (assembly/sce.ts).
    if (op.kind === "sce") request = { ...request, consensus: true, unweightedVote: true };
    if (op.kind === "taskVector") {
      const final = await taskVectorRequest(job, op, exec);
      request = {
        kind: "diagnose", trims: final.trims, weights: final.weights, rescales: final.rescales, consensus: final.consensus,
        countVote: final.countVote === true, unweightedVote: final.unweightedVote === true,
      };
    }
    results = await exec.pass(request);
  } finally {
    exec.close();
  }
  const stride = recordLength(tasks);
  const sums = new Float64Array(stride);
  // Chunk order, then tile order within each chunk: the same additions for any chunking (chunks hold whole tiles).
  for (const r of results) {
    if (r.kind !== "diagnose") throw new Error("executor returned a result of the wrong kind");
    for (let p = 0; p < r.partials.length; p++) sums[p % stride]! += r.partials[p]!;
  }
  return {
    tensor, models: tensor.inputs.map((i) => i.model), sums,
    sparsified: op.kind === "taskVector" && op.sparsify !== undefined && request.trims.some((t) => t.mode !== "none"),
    elected: request.consensus,
  };
}

/** Sums of every diagnosable tensor of the plan, in plan order; `onTensor` hears each one as it finishes. */
export async function diagnoseSums(plan: MergePlan, options: DiagnoseEngineOptions, onTensor?: (done: number, total: number, name: string) => void): Promise<TensorSums[]> {
  checkDiagnosable(plan);
  const { signal } = options;
  const work = plan.tensors.map((t, i) => ({ t, i })).filter(({ t }) => diagnosable(t));
  const results: TensorSums[] = new Array(work.length);
  let pool: WorkerPool | undefined;
  const onAbort = () => pool?.abort(signal?.reason);
  try {
    signal?.throwIfAborted();
    // Chunk sizes first: a budget too small for some tensor fails before any worker starts.
    for (const { t } of work) chunkElementsFor(t, options);
    signal?.addEventListener("abort", onAbort, { once: true });
    const size = Math.max(1, Math.min(options.workers, work.length));
    pool = await WorkerPool.create({ size, workerUrl: options.workerUrl, memoryBudget: options.memoryBudget, jobsPerWorker: JOBS_PER_WORKER });
    signal?.throwIfAborted();
    let next = 0, done = 0;
    let failed: unknown;
    const lane = async () => {
      while (failed === undefined && next < work.length) {
        const k = next++;
        const { t, i } = work[k]!;
        try {
          results[k] = await tensorSums(pool!, plan, t, i, options);
          onTensor?.(++done, work.length, t.name);
        } catch (e) {
          if (failed === undefined) {
            failed = e;
            pool?.fail(e instanceof Error ? e : new Error(String(e)));
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(2 * JOBS_PER_WORKER * size, work.length) }, lane));
    if (failed !== undefined) throw failed;
    await pool.each((w) => w.release());
    await pool.terminate();
    pool = undefined;
    signal?.throwIfAborted();
    return results;
  } catch (error) {
    pool?.abort(error);
    await pool?.terminate();
    throw signal?.aborted && !(error instanceof AbortError) ? new AbortError(undefined, { cause: signal.reason }) : error;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}
