/**
 * @file A pool of kernel workers (Web Workers or worker_threads, the same script) driven through
 * comlink. Jobs queue in order and go to whichever worker is free. A worker that dies fails the pool;
 * abort() rejects everything at once and terminates the workers, since wasm cannot be interrupted
 * mid-kernel (squoosh does the same).
 */
import { wrap, type Remote } from "comlink";
import { AbortError, WorkerError } from "../errors";
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

  static async create(options: PoolOptions): Promise<WorkerPool> {
    installErrorTransfer();
    const slots: Slot[] = [];
    const pool = new WorkerPool(slots, options.jobsPerWorker);
    for (let i = 0; i < options.size; i++) slots.push(await startWorker(options.workerUrl, (e) => pool.fail(e)));
    try {
      await Promise.all(slots.map((s) => s.api.init(options.memoryBudget, options.jobsPerWorker)));
    } catch (e) {
      await pool.terminate();
      throw e;
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

async function startWorker(url: URL | string, onFailure: (e: Error) => void): Promise<Slot> {
  const died = (detail: unknown) => onFailure(new WorkerError("E_WORKER", `a worker stopped unexpectedly: ${detail instanceof Error ? detail.message : String(detail)}`, {}, { cause: detail }));
  if (IS_NODE) {
    const { Worker } = await import("node:worker_threads");
    const worker = new Worker(url);
    worker.on("error", died);
    worker.on("exit", (code) => code !== 0 && died(`exit code ${code}`));
    return { api: wrap<WorkerApi>(nodeEndpoint(worker)), terminate: () => { worker.removeAllListeners("exit"); return worker.terminate(); }, running: new Set() };
  }
  const worker = new Worker(url, { type: "module" });
  worker.addEventListener("error", (e) => died(e.message || "script error"));
  return { api: wrap<WorkerApi>(worker), terminate: async () => worker.terminate(), running: new Set() };
}
