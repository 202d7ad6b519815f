/**
 * @file A pool of kernel workers (Web Workers or worker_threads, the same script) driven through
 * comlink. Jobs queue in order and go to whichever worker is free; a caller can also hold kernel
 * instances across calls (hold), taken together when enough are free. A worker that dies fails the
 * pool; abort() rejects everything at once and terminates the workers, since wasm cannot be
 * interrupted mid-kernel (squoosh does the same). The kernels are compiled once, on this thread, and each worker
 * is sent the compiled module; a pool can grow (a merge starts its first worker while it plans) or,
 * for a merge too small to repay a worker's start-up, be one kernel host on this thread.
 */
import { wrap, type Remote } from "comlink";
import { AbortError, WeightsoupError, WorkerError } from "../errors";
import { compileKernels, type CompiledKernels } from "../kernels/kernels";
import { IS_NODE } from "../env";
import { nodeEndpoint } from "./endpoint";
import { sharingEndpoint } from "./shared-handles";
import { installErrorTransfer } from "./protocol";
import type { WorkerApi } from "./worker-api";

export interface PoolOptions {
  size: number;
  workerUrl: URL | string;
  /** Wasm memory budget of each worker, in bytes. */
  memoryBudget: number;
  /** Jobs in flight per worker (each in its own share of the budget). */
  jobsPerWorker: number;
  /** The kernels the workers instantiate (default: the embedded build, compiled once on this thread). */
  kernels?: Promise<CompiledKernels>;
}

interface Pending {
  task: (api: Remote<WorkerApi>) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (reason: unknown) => void;
}

/** A request for `count` kernel instances held together (see WorkerPool.hold). */
interface PendingHold {
  count: number;
  resolve: (holds: Hold[]) => void;
  reject: (reason: unknown) => void;
}

/**
 * One kernel instance reserved between calls: the chunk a merge loads into it stays there for every
 * pass over it, so it is read once. It counts as a job in flight on its worker until released.
 */
export interface Hold {
  /** Unique in its pool: the name the worker keeps the instance under. */
  readonly id: number;
  /** Runs `task` on the hold's worker at once (the instance is already reserved). */
  run<T>(task: (api: Remote<WorkerApi>) => Promise<T>): Promise<T>;
  /** Gives the instance back to the pool (the worker must have let it go, see MergeApi.releaseHold). */
  release(): void;
}

interface Slot {
  api: Remote<WorkerApi>;
  terminate: () => Promise<unknown>;
  running: Set<Pending>;
}

/** The calls a merge makes, which a kernel host on the calling thread answers too. */
type MergeApi = Pick<WorkerApi, "runTensor" | "runPass" | "runFinal" | "releaseHold" | "release" | "stats">;

export class WorkerPool {
  private readonly queue: (Pending | PendingHold)[] = [];
  private nextHold = 0;
  /** Calls on held instances in flight: a failure rejects them with everything else. */
  private readonly holdCalls = new Set<Pending>();
  private failure: Error | undefined;
  /** Workers that have loaded their kernels: the ones jobs go to. */
  private readonly slots: Slot[] = [];
  /** Every worker started (or starting), ready or not: what terminate() stops. */
  private readonly started: Promise<Slot | undefined>[] = [];
  private readonly ready: Promise<void>[] = [];
  private readonly kernels: Promise<CompiledKernels>;
  private terminated = false;
  /** Rejects with the pool's failure: what a start-up waits on beside its workers. */
  private readonly failed: Promise<never>;
  private rejectFailed!: (error: Error) => void;

  private constructor(private readonly options: Omit<PoolOptions, "size">) {
    this.failed = new Promise<never>((_, reject) => (this.rejectFailed = reject));
    this.failed.catch(() => undefined);
    // Compiled once, here, while the workers start: each worker instantiates the module it is sent.
    this.kernels = options.kernels ?? compileKernels();
    this.kernels.catch(() => undefined); // reported by the first worker that needs them
  }

  /**
   * Starts the workers and loads their kernels. A worker that cannot start (its script missing or
   * failing to load, an exit) rejects this at once with a WorkerError rather than leaving the
   * loading call waiting for an answer that never comes.
   */
  static async create(options: PoolOptions): Promise<WorkerPool> {
    const pool = WorkerPool.empty(options);
    try {
      await pool.grow(options.size);
    } catch (e) {
      await pool.terminate();
      throw e;
    }
    return pool;
  }

  /** A pool with no worker yet, its kernels compiling: grow() starts workers (a merge starts its first while it plans). */
  static empty(options: Omit<PoolOptions, "size">): WorkerPool {
    installErrorTransfer();
    return new WorkerPool(options);
  }

  /**
   * A pool of one kernel host on the calling thread, running merge jobs only: for a merge that would
   * be done before a worker had started. The same kernels and job code as a worker's, so the same
   * bytes; while a kernel runs, this thread does nothing else.
   */
  static async inThisThread(options: Omit<PoolOptions, "size" | "workerUrl">): Promise<WorkerPool> {
    const pool = new WorkerPool({ ...options, workerUrl: "(this thread)" });
    const { MergeHost } = await import("./merge-host");
    const host = new MergeHost();
    await host.init(options.memoryBudget, options.jobsPerWorker, await pool.kernels);
    const api: MergeApi = {
      runTensor: (job) => host.runTensor(job),
      runPass: (job, chunk, request, hold) => host.runPass(job, chunk, request, hold),
      runFinal: (job, chunk, request, hold) => host.runFinal(job, chunk, request, hold),
      releaseHold: (hold) => host.releaseHold(hold),
      release: () => host.release(),
      stats: () => ({ peakMemory: host.peakMemory(), bytesRead: host.bytesRead() }),
    };
    // Nothing to stop, but the files the host opened are closed however the merge ends.
    const slot: Slot = { api: api as unknown as Remote<WorkerApi>, terminate: () => host.release(), running: new Set() };
    pool.slots.push(slot);
    pool.started.push(Promise.resolve(slot));
    return pool;
  }

  /**
   * Starts workers until the pool has `size` and resolves once every one has loaded its kernels; jobs
   * go to each as soon as it is ready. A worker that cannot start rejects this (and fails the pool)
   * with a WorkerError naming the script; the caller then terminates the pool.
   */
  async grow(size: number): Promise<void> {
    while (this.started.length < size && !this.failure) this.startOne();
    await Promise.race([Promise.all(this.ready), this.failed]);
  }

  /** Starts one worker; it joins the slots once its kernels are loaded. */
  private startOne(): void {
    const url = this.options.workerUrl;
    let loaded = false;
    const onFailure = (detail: unknown) => {
      const error = new WorkerError("E_WORKER", loaded
        ? `a worker stopped unexpectedly: ${describe(detail)}`
        : `could not start a worker from ${String(url)}: ${describe(detail)}`, { file: String(url) }, { cause: detail });
      this.fail(error);
    };
    const slot = startWorker(url, onFailure).then(async (s) => {
      if (this.terminated) await s.terminate();
      return s;
    });
    this.started.push(slot.catch(() => undefined));
    this.ready.push(slot.then(async (s) => {
      await s.api.init(this.options.memoryBudget, this.options.jobsPerWorker, await this.kernels);
      loaded = true;
      if (this.terminated) return;
      this.slots.push(s);
      this.pump();
    }).catch((e: unknown) => {
      // A worker that cannot start reports through onFailure (typed); anything else is typed here.
      const error = e instanceof WeightsoupError ? e : new WorkerError("E_WORKER", `could not start a worker from ${String(url)}: ${describe(e)}`, { file: String(url) }, { cause: e });
      this.fail(error);
      throw this.failure ?? error;
    }));
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
      // Ending, it frees its instance for what waits in the queue (a sweep's next point's held chunks
      // waited there for good behind an evaluation's layer).
      task(slot.api).then(job.resolve, job.reject).finally(() => {
        slot.running.delete(job);
        this.pump();
      });
    });
  }

  /** Runs `task` on every worker at once (for release/stats). */
  async each<T>(task: (api: Remote<WorkerApi>) => Promise<T>): Promise<T[]> {
    return Promise.all(this.slots.map((s) => task(s.api)));
  }

  /** Jobs that can be in flight at once once every started worker is ready (holds included). */
  get capacity(): number {
    return this.started.length * this.options.jobsPerWorker;
  }

  /**
   * Reserves `count` kernel instances (at most `capacity`) until each is released; they are granted
   * together, spread over the least busy workers. A request waits at the head of the queue, jobs
   * behind it included, until that many are free: holds taken all at once cannot deadlock each other,
   * and one waiting is never starved by single jobs.
   */
  hold(count: number): Promise<Hold[]> {
    if (count > this.capacity) throw new Error(`hold of ${count} instances in a pool of ${this.capacity}`);
    return new Promise<Hold[]>((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      this.queue.push({ count, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.length > 0 && !this.failure) {
      const head = this.queue[0]!;
      const wanted = "count" in head ? head.count : 1;
      const free = this.slots.reduce((sum, s) => sum + Math.max(0, this.options.jobsPerWorker - s.running.size), 0);
      if (free < wanted) return;
      this.queue.shift();
      if ("count" in head) head.resolve(Array.from({ length: wanted }, () => this.holdOn(this.leastBusy())));
      else this.start(head, this.leastBusy());
    }
  }

  /** The worker with the fewest jobs in flight (the first of them): jobs spread over workers before they double up. */
  private leastBusy(): Slot {
    return this.slots.reduce((best, s) => (s.running.size < best.running.size ? s : best));
  }

  private start(job: Pending, slot: Slot): void {
    slot.running.add(job);
    job.task(slot.api).then(job.resolve, job.reject).finally(() => {
      slot.running.delete(job);
      this.pump();
    });
  }

  private holdOn(slot: Slot): Hold {
    // A placeholder job keeps the instance counted on its worker until release.
    const placeholder: Pending = { task: async () => undefined, resolve: () => undefined, reject: () => undefined };
    slot.running.add(placeholder);
    return {
      id: this.nextHold++,
      run: <T>(task: (api: Remote<WorkerApi>) => Promise<T>) => new Promise<T>((resolve, reject) => {
        if (this.failure) return reject(this.failure);
        const call: Pending = { task, resolve: resolve as (v: unknown) => void, reject };
        this.holdCalls.add(call);
        task(slot.api).then(resolve, reject).finally(() => this.holdCalls.delete(call));
      }),
      release: () => {
        if (slot.running.delete(placeholder)) this.pump();
      },
    };
  }

  /** Rejects every queued and running job with `error`; later runs reject at once. */
  fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    this.rejectFailed(error);
    for (const job of this.queue.splice(0)) job.reject(error);
    for (const call of this.holdCalls) call.reject(error);
    this.holdCalls.clear();
    for (const slot of this.slots) {
      for (const job of slot.running) job.reject(error);
      slot.running.clear();
    }
  }

  abort(reason?: unknown): void {
    this.fail(reason instanceof AbortError ? reason : new AbortError(undefined, reason === undefined ? undefined : { cause: reason }));
  }

  async terminate(): Promise<void> {
    this.terminated = true;
    const slots = await Promise.all(this.started);
    await Promise.allSettled(slots.map((s) => s?.terminate()));
  }
}

function describe(detail: unknown): string {
  return detail instanceof Error ? detail.message : String(detail);
}

/**
 * The Node options a worker is started with, where the parent's must not all be inherited: a parent
 * started with `node -e CODE` (or `--input-type`) would have every worker evaluate that code instead of
 * the worker script. Undefined (inherit, as Node does by default) when there is nothing to leave out:
 * given explicitly, a V8 or process-wide option (`--max-old-space-size`, `--stack-size`,
 * `--experimental-wasm-*`) makes Node refuse the worker (ERR_WORKER_INVALID_EXEC_ARGV), where
 * inherited it is simply the process's.
 */
function workerExecArgv(parent: readonly string[]): string[] | undefined {
  const out: string[] = [];
  for (let i = 0; i < parent.length; i++) {
    const arg = parent[i]!;
    if (["-e", "--eval", "-p", "--print", "--input-type"].includes(arg)) i++; // and its value
    else if (!/^(--eval|--print|--input-type)=/.test(arg) && arg !== "-i" && arg !== "--interactive") out.push(arg);
  }
  return out.length === parent.length ? undefined : out;
}

async function startWorker(url: URL | string, onFailure: (detail: unknown) => void): Promise<Slot> {
  if (IS_NODE) {
    const { Worker } = await import("node:worker_threads");
    let worker: import("node:worker_threads").Worker;
    try {
      const execArgv = workerExecArgv(process.execArgv);
      try {
        worker = new Worker(url, execArgv ? { execArgv } : {});
      } catch (cause) {
        // Left with a V8 or process-wide option beside `-e`: start the worker with no options instead.
        if ((cause as { code?: unknown }).code !== "ERR_WORKER_INVALID_EXEC_ARGV" || !execArgv) throw cause;
        worker = new Worker(url, { execArgv: [] });
      }
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
  return { api: wrap<WorkerApi>(sharingEndpoint(worker)), terminate: async () => worker.terminate(), running: new Set() };
}
