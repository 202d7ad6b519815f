/**
 * @file How a library call ends under its AbortSignal. Once the signal is aborted, whatever the call
 * fails with (the signal's own DOMException, a worker terminated mid-job, a read cut short) reaches the
 * caller as one AbortError with the signal's reason as its cause. A call that runs a worker pool starts
 * it through the slot it is given: aborting the signal then aborts the pool at once (wasm cannot be
 * interrupted mid-kernel), and the pool is terminated however the call ends.
 */
import { AbortError } from "../errors";
import { WorkerPool, type PoolOptions } from "../pool/pool";

/** The call's one worker pool, none until started. */
export interface PoolSlot {
  /** The pool once started: sources that merge on demand reach it through `() => slot.pool!`. */
  readonly pool: WorkerPool | undefined;
  /** Starts the pool, unless the signal is aborted already; from then on aborting the signal aborts the pool. */
  start(options: PoolOptions): Promise<WorkerPool>;
}

/** Runs `call` so that it rejects with AbortError once `signal` is aborted and leaves no worker of its pool running. */
export async function abortable<T>(signal: AbortSignal | undefined, call: (slot: PoolSlot) => Promise<T>): Promise<T> {
  let pool: WorkerPool | undefined;
  const onAbort = () => pool?.abort(signal?.reason);
  const slot: PoolSlot = {
    get pool() {
      return pool;
    },
    async start(options) {
      signal?.throwIfAborted();
      signal?.addEventListener("abort", onAbort, { once: true });
      pool = await WorkerPool.create(options);
      // Aborted while the workers started: onAbort found no pool to abort then.
      signal?.throwIfAborted();
      return pool;
    },
  };
  try {
    return await call(slot);
  } catch (e) {
    if (signal?.aborted && !(e instanceof AbortError)) throw new AbortError(undefined, { cause: signal.reason });
    throw e;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    await pool?.terminate();
  }
}
