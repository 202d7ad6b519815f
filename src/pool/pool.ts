/**
 * @file A pool of kernel workers (Web Workers or worker_threads, the same script) driven through
 * comlink. Jobs queue in order and go to whichever worker is free. A worker that dies fails the pool;
 * abort() rejects everything at once and terminates the workers, since wasm cannot be interrupted
 * mid-kernel (squoosh does the same).
 */
import { wrap, type Remote } from "comlink";
import { AbortError, WeightsoupError, WorkerError } from "../errors";
import { IS_NODE } from "../env";
import { nodeEndpoint } from "./endpoint";
import { installErrorTransfer } from "./protocol";
import type { WorkerApi } from "./worker-api";

export interface PoolOptions {
  size: number;
  workerUrl: URL | string;
  /** Wasm memory budget of each worker, in bytes. */
  memoryBudget: number;
  /** Jobs in flight per worker (each in its own share of the budget). */
  jobsPerWorker: number;
}

interface Pending {
  task: (api: Remote<WorkerApi>) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (reason: unknown) => void;
}

interface Slot {
  api: Remote<WorkerApi>;
  terminate: () => Promise<unknown>;
  running: Set<Pending>;
}

export class WorkerPool {
  private readonly queue: Pending[] = [];
  private failure: Error | undefined;

  private constructor(private readonly slots: Slot[], private readonly depth: number) {}

  /**
   * Starts the workers and loads their kernels. A worker that cannot start (its script missing or
   * failing to load, an exit) rejects this at once with a WorkerError rather than leaving the
   * loading call waiting for an answer that never comes.
   */
  static async create(options: PoolOptions): Promise<WorkerPool> {
    installErrorTransfer();
    const slots: Slot[] = [];
    const pool = new WorkerPool(slots, options.jobsPerWorker);
    let started = false;
    let firstError: WorkerError | undefined;
    let startFailed!: (e: Error) => void;
    const failure = new Promise<never>((_, reject) => (startFailed = reject));
    failure.catch(() => undefined); // a worker failing after start-up is the pool's failure, not this promise's
    const onFailure = (detail: unknown) => {
      const error = new WorkerError("E_WORKER", started
        ? `a worker stopped unexpectedly: ${describe(detail)}`
        : `could not start a worker from ${String(options.workerUrl)}: ${describe(detail)}`, { file: String(options.workerUrl) }, { cause: detail });
      firstError ??= error;
      pool.fail(error);
      startFailed(error);
    };
    try {
      for (let i = 0; i < options.size; i++) slots.push(await startWorker(options.workerUrl, onFailure));
      await Promise.race([Promise.all(slots.map((s) => s.api.init(options.memoryBudget, options.jobsPerWorker))), failure]);
      started = true;
    } catch (e) {
      await pool.terminate();
      throw e instanceof WeightsoupError ? e : (firstError ?? e);
    }
    return pool;
  }

  get size(): number {
    return this.slots.length;
  }

  /** Runs `task` on the next free worker. */
  run<T>(task: (api: Remote<WorkerApi>) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      this.queue.push({ task, resolve: resolve as (v: unknown) => void, reject });
      this.pump();
    });
  }

  /**
   * Runs `task` on worker `index` at once, beside its queued jobs: evaluation keeps sequences in a
   * worker between calls. It fails with the pool like any job.
   */
  on<T>(index: number, task: (api: Remote<WorkerApi>) => Promise<T>): Promise<T> {
    const slot = this.slots[index]!;
    return new Promise<T>((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      const job: Pending = { task, resolve: resolve as (v: unknown) => void, reject };
      slot.running.add(job);
      task(slot.api).then(job.resolve, job.reject).finally(() => slot.running.delete(job));
    });
  }

  /** Runs `task` on every worker at once (for release/stats). */
  async each<T>(task: (api: Remote<WorkerApi>) => Promise<T>): Promise<T[]> {
    return Promise.all(this.slots.map((s) => task(s.api)));
  }

  private pump(): void {
    // Fill the least busy worker first, so jobs spread over workers before they double up.
    for (let depth = 1; depth <= this.depth; depth++) {
      for (const slot of this.slots) {
        if (slot.running.size >= depth || this.queue.length === 0 || this.failure) continue;
        const job = this.queue.shift()!;
        slot.running.add(job);
        job.task(slot.api).then(job.resolve, job.reject).finally(() => {
          slot.running.delete(job);
          this.pump();
        });
      }
    }
  }

  /** Rejects every queued and running job with `error`; later runs reject at once. */
  fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    for (const job of this.queue.splice(0)) job.reject(error);
    for (const slot of this.slots) {
      for (const job of slot.running) job.reject(error);
      slot.running.clear();
    }
  }

  abort(reason?: unknown): void {
    this.fail(reason instanceof AbortError ? reason : new AbortError(undefined, reason === undefined ? undefined : { cause: reason }));
  }

  async terminate(): Promise<void> {
    await Promise.allSettled(this.slots.map((s) => s.terminate()));
  }
}

function describe(detail: unknown): string {
  return detail instanceof Error ? detail.message : String(detail);
}

/**
 * Node options a worker must not inherit: a parent started with `node -e CODE` (or `--input-type`)
 * would have every worker evaluate that code instead of the worker script.
 */
function workerExecArgv(parent: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < parent.length; i++) {
    const arg = parent[i]!;
    if (["-e", "--eval", "-p", "--print", "--input-type"].includes(arg)) i++; // and its value
    else if (!/^(--eval|--print|--input-type)=/.test(arg) && arg !== "-i" && arg !== "--interactive") out.push(arg);
  }
  return out;
}

async function startWorker(url: URL | string, onFailure: (detail: unknown) => void): Promise<Slot> {
  if (IS_NODE) {
    const { Worker } = await import("node:worker_threads");
    let worker: import("node:worker_threads").Worker;
    try {
      worker = new Worker(url, { execArgv: workerExecArgv(process.execArgv) });
    } catch (cause) {
      onFailure(cause);
      throw cause;
    }
    worker.on("error", onFailure);
    worker.on("exit", (code) => onFailure(`exit code ${code}`));
    return { api: wrap<WorkerApi>(nodeEndpoint(worker)), terminate: () => { worker.removeAllListeners("exit"); return worker.terminate(); }, running: new Set() };
  }
  const worker = new Worker(url, { type: "module" });
  worker.addEventListener("error", (e) => onFailure(e.message || "the worker script could not be loaded"));
  worker.addEventListener("messageerror", () => onFailure("a message from the worker could not be read"));
  return { api: wrap<WorkerApi>(worker), terminate: async () => worker.terminate(), running: new Set() };
}
