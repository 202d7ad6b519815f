/**
 * @file A tensor of several chunks computed on the worker pool: each pass is one job per chunk, and the
 * chunks stay loaded between passes when the pool can hold them all.
 */
import { DTYPES } from "../format/dtypes";
import type { Hold, WorkerPool } from "../pool/pool";
import { addNonFinite, chunkCount, chunkRange, type FinalRequest, type NonFinite, type PassRequest, type PassResult, type TensorExecutor, type TensorJob } from "./job";

/**
 * Runs a multi-chunk tensor's passes with one pool job per chunk; results come back in chunk order.
 * A tensor whose chunks the pool can hold all at once (one kernel instance each) takes that many
 * instances at its first pass and keeps every chunk loaded until its final pass: read once, not once
 * per pass. Otherwise every pass reads its chunks again, on whichever instances are free.
 */
export class PoolExecutor implements TensorExecutor {
  readonly resident = false;
  readonly chunks: number;
  private holds: Hold[] | undefined;
  constructor(private readonly pool: WorkerPool, private readonly job: TensorJob, private readonly deliver: (offset: number, bytes: Uint8Array) => Promise<void>, private readonly onChunk: (c: number) => void) {
    this.chunks = chunkCount(job);
  }
  async pass(request: PassRequest): Promise<PassResult[]> {
    this.holds ??= this.chunks <= this.pool.capacity ? await this.pool.hold(this.chunks) : [];
    const holds = this.holds;
    // Every chunk's call settles before a failure is passed on: a hold is let go only once unused.
    const settled = await Promise.allSettled(Array.from({ length: this.chunks }, (_, c) => {
      const hold = holds[c];
      return hold ? hold.run((w) => w.runPass(this.job, c, request, hold.id) as Promise<PassResult>) : this.pool.run((w) => w.runPass(this.job, c, request) as Promise<PassResult>);
    }));
    const failed = settled.find((r) => r.status === "rejected");
    if (failed) {
      this.close();
      throw failed.reason;
    }
    return settled.map((r) => (r as PromiseFulfilledResult<PassResult>).value);
  }
  /** The final pass; each hold is let go once its chunk is done (the worker frees the instance itself). */
  async final(request: FinalRequest): Promise<NonFinite | undefined> {
    const holds = this.holds ?? [];
    this.holds = [];
    return addNonFinite(await Promise.all(Array.from({ length: this.chunks }, async (_, c) => {
      const hold = holds[c];
      const { bytes, nonFinite } = hold
        ? await hold.run((w) => w.runFinal(this.job, c, request, hold.id)).finally(() => hold.release())
        : await this.pool.run((w) => w.runFinal(this.job, c, request));
      if (bytes) await this.deliver(this.job.output.offset + chunkRange(this.job, c)[0] * (DTYPES[this.job.output.dtype]!.bits / 8), bytes);
      this.onChunk(c);
      return nonFinite;
    })));
  }
  /** Lets go of the holds no final pass released (a failed pass; a caller that stops before the final pass). */
  close(): void {
    const holds = this.holds ?? [];
    this.holds = [];
    for (const hold of holds) void hold.run(async (w) => w.releaseHold(hold.id)).catch(() => undefined).finally(() => hold.release());
  }
}
