/**
 * @file What runs merge jobs: kernel instances, each with its chunk workspace, and the calls the pool
 * sends (whole tensors, passes over chunks, final passes), some on instances it holds between calls.
 * A worker (web-worker/worker.ts) hosts one; a merge small enough to finish before a worker could start
 * hosts one on the calling thread (WorkerPool.inThisThread): the same kernels and code, so the same bytes.
 */
import { loadKernels, type CompiledKernels, type Kernels } from "../kernels/kernels";
import { runTensor } from "../merge/run-tensor";
import { ChunkWorkspace, ResidentExecutor } from "../merge/workspace";
import type { FinalOutcome, FinalRequest, PassRequest, PassResult, TensorJob } from "../merge/job";
import { WeightsoupError, WorkerError } from "../errors";
import type { TensorOutcome } from "./worker-api";

export class MergeHost {
  /**
   * Each kernel instance (its own wasm memory) holds one job; with two, one job's reads and writes
   * proceed while the other computes. Together they stay within the host's memory budget.
   */
  private readonly instances: { kernels: Kernels; workspace: ChunkWorkspace }[] = [];
  private readonly free: ChunkWorkspace[] = [];
  /** Instances reserved by the pool between calls (WorkerPool.hold), by hold id, with the chunk they hold. */
  private readonly held = new Map<number, ChunkWorkspace>();
  /** The jobs in flight (see release). */
  private readonly running = new Set<Promise<unknown>>();

  /** Loads `jobs` kernel instances, each with an equal share of `memoryBudget` bytes. */
  async init(memoryBudget: number, jobs: number, code?: Uint8Array | CompiledKernels): Promise<void> {
    try {
      for (let i = 0; i < jobs; i++) {
        const kernels = await loadKernels(Math.floor(memoryBudget / jobs / 65536) * 65536, code);
        const workspace = new ChunkWorkspace(kernels);
        this.instances.push({ kernels, workspace });
        this.free.push(workspace);
      }
    } catch (e) {
      if (e instanceof WeightsoupError) throw e;
      throw new WorkerError("E_WORKER", `the worker could not load its kernels: ${e instanceof Error ? e.message : String(e)}`, {}, { cause: e });
    }
  }

  /** Computes a whole single-chunk tensor: every pass on data read once. */
  runTensor(job: TensorJob): Promise<TensorOutcome> {
    return this.withWorkspace(job, async (ws) => {
      await ws.load(job, 0);
      const exec = new ResidentExecutor(ws);
      const warning = await runTensor(job, exec);
      return { ...(exec.output ? { bytes: exec.output } : {}), ...(warning ? { warning } : {}) };
    });
  }

  /**
   * One pass over one chunk of a larger tensor. With `hold`, the chunk stays loaded in the instance
   * kept under that id: loaded by the hold's first call, read by its later passes as they are.
   */
  runPass(job: TensorJob, chunk: number, request: PassRequest, hold?: number): Promise<PassResult> {
    if (hold === undefined) return this.withWorkspace(job, (ws) => ws.chunkPass(job, chunk, request));
    return this.withWorkspace(job, async (ws, fresh) => {
      if (fresh) await ws.load(job, chunk);
      return ws.pass(request);
    }, hold);
  }

  /** The final pass over one chunk: computes and writes (or returns) its output; a hold's instance is then free. */
  async runFinal(job: TensorJob, chunk: number, request: FinalRequest, hold?: number): Promise<FinalOutcome> {
    try {
      return await this.withWorkspace(job, async (ws, fresh) => {
        if (fresh) await ws.load(job, chunk);
        return ws.final(request);
      }, hold);
    } finally {
      if (hold !== undefined) this.releaseHold(hold);
    }
  }

  /** Frees the instance kept under `hold` (nothing if there is none). */
  releaseHold(hold: number): void {
    const ws = this.held.get(hold);
    if (!ws) return;
    this.held.delete(hold);
    this.free.push(ws);
  }

  /**
   * Closes every file the instances opened, once the jobs in flight have settled. On the calling thread a
   * pool's abort cannot stop a job that is running (there is no worker to terminate): it goes on to its
   * end, and a file it opened after the close would stay open.
   */
  async release(): Promise<void> {
    await Promise.allSettled(this.running);
    await Promise.all(this.instances.map((i) => i.workspace.release()));
  }

  /** Bytes the instances have read from input files. */
  bytesRead(): number {
    return this.instances.reduce((sum, i) => sum + i.workspace.bytesRead, 0);
  }

  /** Largest wasm memory the instances have had, together (bytes). */
  peakMemory(): number {
    return this.instances.reduce((sum, i) => sum + i.kernels.arena.peak, 0);
  }

  /**
   * Runs `fn` for a job with a workspace of its own (the pool never sends more jobs than there are):
   * with `hold`, the one kept under it, taken from the free ones on the hold's first call (`fresh`).
   * Whatever fails comes back typed: an error that is not already a WeightsoupError is a bug, reported
   * as E_WORKER with the tensor it happened on and its own stack (for --debug).
   */
  private withWorkspace<T>(job: TensorJob, fn: (ws: ChunkWorkspace, fresh: boolean) => Promise<T>, hold?: number): Promise<T> {
    const run = this.runInWorkspace(job, fn, hold);
    this.running.add(run);
    void run.catch(() => undefined).finally(() => this.running.delete(run));
    return run;
  }

  private async runInWorkspace<T>(job: TensorJob, fn: (ws: ChunkWorkspace, fresh: boolean) => Promise<T>, hold?: number): Promise<T> {
    const kept = hold === undefined ? undefined : this.held.get(hold);
    const ws = kept ?? this.free.pop();
    try {
      if (!ws) throw new Error(this.instances.length ? "more jobs in flight than workspaces" : "worker used before init()");
      if (hold !== undefined) this.held.set(hold, ws);
      return await fn(ws, !kept);
    } catch (e) {
      if (e instanceof WeightsoupError) throw e;
      const error = new WorkerError("E_WORKER", `tensor "${job.name}": the worker failed: ${e instanceof Error ? e.message : String(e)}`, { tensor: job.name }, { cause: e });
      if (e instanceof Error && e.stack) error.stack = e.stack;
      throw error;
    } finally {
      if (ws && hold === undefined) this.free.push(ws);
    }
  }
}
