// Runs fuzz cases in a worker thread, so a hang is caught even when it is a synchronous loop (a
// config.json claiming 1e12 layers): the test thread waits for a verdict with a deadline and, past it,
// terminates the runner (and with it any merge workers it started) and starts a fresh one for the next
// case. The runner also has a heap limit, so a memory blow-up is a failed case, not a dead test run.
import { parentPort, Worker } from "node:worker_threads";
import { describeError, type Verdict } from "./fuzz-oracle";

interface Request<C> {
  id: number;
  c: C;
}

interface Reply {
  id: number;
  verdict: Verdict;
}

/** Heap of the runner thread: far above what a case over the tiny fixtures needs. */
const RUNNER_HEAP_MB = 2048;
/** Cases per runner thread: a fresh one now and then keeps one case's leftovers from slowing the next. */
const CASES_PER_RUNNER = 40;

export class CaseRunner<C> {
  private worker: Worker | undefined;
  private nextId = 0;
  private served = 0;

  /** `script` is a module that calls serveCases when started with `workerData`. */
  constructor(private readonly script: URL, private readonly workerData: unknown, private readonly timeoutMs: number) {}

  async run(c: C): Promise<Verdict> {
    if (this.served++ % CASES_PER_RUNNER === CASES_PER_RUNNER - 1) await this.close();
    const worker = (this.worker ??= new Worker(this.script, { workerData: this.workerData, resourceLimits: { maxOldGenerationSizeMb: RUNNER_HEAP_MB } }));
    const id = this.nextId++;
    return new Promise((resolve) => {
      const finish = (verdict: Verdict, discard: boolean) => {
        clearTimeout(timer);
        worker.off("message", onMessage).off("error", onError).off("exit", onExit);
        if (discard) {
          if (this.worker === worker) this.worker = undefined;
          void worker.terminate();
        }
        resolve(verdict);
      };
      const onMessage = (reply: Reply) => {
        if (reply.id === id) finish(reply.verdict, false);
      };
      const onError = (e: unknown) => finish({ ok: false, outcome: "crash", problem: `the runner thread died: ${describeError(e)}` }, true);
      const onExit = (code: number) => finish({ ok: false, outcome: "crash", problem: `the runner thread exited with code ${code}` }, true);
      const timer = setTimeout(
        () => finish({ ok: false, outcome: "hang", problem: `no outcome within ${this.timeoutMs / 1000} s (a hang); the runner thread was terminated` }, true),
        this.timeoutMs,
      );
      worker.on("message", onMessage).on("error", onError).on("exit", onExit);
      worker.postMessage({ id, c } satisfies Request<C>);
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }
}

/**
 * The runner side: judges each case it is sent. A promise the library leaves rejected without a
 * handler during a case fails that case (after a turn of the event loop, so it has surfaced).
 */
export function serveCases<C>(judge: (c: C) => Promise<Verdict>): void {
  const unhandled: unknown[] = [];
  process.on("unhandledRejection", (reason) => unhandled.push(reason));
  parentPort!.on("message", async ({ id, c }: Request<C>) => {
    let verdict: Verdict;
    try {
      verdict = await judge(c);
    } catch (e) {
      verdict = { ok: false, outcome: "oracle-error", problem: `judging the case threw ${describeError(e)}` };
    }
    await new Promise((resolve) => setImmediate(resolve));
    if (unhandled.length) {
      verdict = { ok: false, outcome: "unhandled-rejection", problem: `an unhandled rejection: ${describeError(unhandled[0])}` };
      unhandled.length = 0;
    }
    parentPort!.postMessage({ id, verdict } satisfies Reply);
  });
}
