/**
 * @file A worker's side of alignment on the pool (./pool-engine.ts): rows of similarity matrices,
 * diagonal sums and assignments over tensors the worker reads from the models' files itself, widened
 * to float32 in its own kernel instance. Decoded tensors are kept, least recently used first out, up to a byte
 * budget, so memory stays bounded whatever the model's size. A tensor larger than a quarter of the
 * budget is used and dropped: the large ones (embeddings) serve one group, and keeping them would push
 * out a layer's tensors, which the head and MLP groups read again and again. Calls run one at a time:
 * they share the instance's arena.
 */
import type { Kernels } from "../kernels/kernels";
import type { TensorInfo } from "../model/model";
import { AlignmentError } from "../errors";
import { readFloatTensor } from "./checkpoint";
import { assignMax, responseOf, type GroupResponse } from "./engine";
import { unfoldBlocks, type BlockRef, type TensorPair } from "./group-similarity";
import { diagonalSums, similarityRows, type DiagonalSums } from "./similarity";

/**
 * The tensors a worker may read: the spec's, in the reference model (a) and the model to align (b), by
 * name (Maps: a tensor may be called anything, "__proto__" included).
 */
export interface AlignmentTensors {
  a: Map<string, TensorInfo>;
  b: Map<string, TensorInfo>;
}

export interface AlignmentStats {
  /** Largest wasm memory of the alignment instance, in bytes. */
  peakMemory: number;
  /** Most bytes of decoded tensors kept at once. */
  peakCached: number;
  /** Tensors read from the files (a tensor read again after being dropped counts again). */
  reads: number;
  /** Assignments solved here (best responses and joint solves). */
  assignments: number;
}

export class AlignmentWorker {
  private readonly cache = new Map<string, Float32Array>();
  private cached = 0;
  private peakCached = 0;
  private reads = 0;
  private assignments = 0;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly kernels: Kernels, private readonly tensors: AlignmentTensors, private readonly cacheBytes: number) {}

  /** Rows [u0, u1) of the blocks' similarity matrix (n columns). */
  rows(n: number, blocks: BlockRef[], u0: number, u1: number): Promise<Float32Array> {
    return this.serial(() => similarityRows(this.kernels, n, unfoldBlocks(blocks, (t) => this.pair(t)), u0, u1));
  }

  /** The blocks' whole similarity matrix (n x n) and its best assignment, with the totals under `current` and under it. */
  bestResponse(n: number, blocks: BlockRef[], current: Int32Array): Promise<GroupResponse> {
    return this.serial(async () => {
      const s = await similarityRows(this.kernels, n, unfoldBlocks(blocks, (t) => this.pair(t)));
      return responseOf(s, n, current, await this.solve(n, s));
    });
  }

  /** The best assignment of `scores` (n x n). */
  assign(n: number, scores: Float32Array | Float64Array): Promise<Int32Array> {
    return this.serial(() => this.solve(n, scores));
  }

  private solve(n: number, scores: Float32Array | Float64Array): Promise<Int32Array> {
    this.assignments++;
    return assignMax(n, scores, this.kernels);
  }

  diagonal(blocks: BlockRef[]): Promise<DiagonalSums> {
    return this.serial(() => diagonalSums(unfoldBlocks(blocks, (t) => this.pair(t))));
  }

  stats(): AlignmentStats {
    return { peakMemory: this.kernels.arena.peak, peakCached: this.peakCached, reads: this.reads, assignments: this.assignments };
  }

  private serial<T>(call: () => Promise<T>): Promise<T> {
    const run = this.queue.then(call, call);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async pair(name: string): Promise<TensorPair> {
    const info = this.tensors.a.get(name);
    if (!info || !this.tensors.b.has(name)) throw new AlignmentError("E_TENSOR_MISSING", `alignment worker: no tensor "${name}" in ${info ? "the model to align" : "the reference model"}`, { tensor: name });
    const a = await this.tensor("a", name), b = await this.tensor("b", name);
    return { shape: info.shape, a, b };
  }

  private async tensor(side: "a" | "b", name: string): Promise<Float32Array> {
    const key = `${side}\u0000${name}`;
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    const data = await readFloatTensor(this.kernels, this.tensors[side].get(name)!);
    this.reads++;
    if (data.byteLength <= this.cacheBytes / 4) {
      for (const [old, t] of this.cache) {
        if (this.cached + data.byteLength <= this.cacheBytes) break;
        this.cache.delete(old);
        this.cached -= t.byteLength;
      }
      this.cache.set(key, data);
      this.cached += data.byteLength;
      this.peakCached = Math.max(this.peakCached, this.cached);
    }
    return data;
  }
}
