/**
 * @file Merged tensors shared between a sweep's points. A tensor job (src/merge/job.ts) is everything
 * a worker uses to compute a merged tensor: inputs, method, effective parameters, dtypes, seed and
 * chunking; the kernels are deterministic, so two points whose jobs for a tensor are equal get equal
 * bytes, and the tensor is computed once. Each key is announced once per expected use and dropped
 * after its last use, so memory holds only what is still to be used.
 */
import { chunkElementsFor, computeTensorBytes, tensorJob, type EngineOptions } from "../merge/engine";
import type { MergePlan, PlannedTensor } from "../plan/plan";
import type { WorkerPool } from "../pool/pool";
import { ModelError } from "../errors";
import type { TensorJob } from "../merge/job";

export class SharedTensors {
  private readonly entries = new Map<string, { bytes?: Promise<Uint8Array>; uses: number }>();
  /** Tensors merged, and tensor uses served by an earlier merge of the same job. */
  computed = 0;
  shared = 0;

  /** One more use of `key` is coming. */
  expect(key: string): void {
    const e = this.entries.get(key);
    if (e) e.uses++;
    else this.entries.set(key, { uses: 1 });
  }

  /** The bytes for `key`: computed on its first use, the same bytes after; dropped after the last announced use. */
  take(key: string, compute: () => Promise<Uint8Array>): Promise<Uint8Array> {
    const e = this.entries.get(key);
    if (!e) {
      this.computed++;
      return compute();
    }
    if (e.bytes) this.shared++;
    else {
      this.computed++;
      e.bytes = compute();
    }
    if (--e.uses === 0) this.entries.delete(key);
    return e.bytes;
  }
}

/** Object identities for job fields that are not plain data (a Blob, bytes held in memory). */
const identities = new WeakMap<object, number>();
let nextIdentity = 0;

/** The job's identity as text: plain data as JSON, anything else by object identity. */
export function jobKey(job: TensorJob): string {
  const { index: _index, output, ...rest } = job;
  return JSON.stringify({ ...rest, output: { dtype: output.dtype } }, (_, v: unknown) => {
    if (v === null || typeof v !== "object") return v;
    const proto = Object.getPrototypeOf(v);
    if (Array.isArray(v) || proto === Object.prototype || proto === null) return v;
    let id = identities.get(v);
    if (id === undefined) identities.set(v, (id = nextIdentity++));
    return `#object${id}`;
  });
}

/** One point's merged tensors: each tensor's job key, and its bytes through `shared`. */
export class PointTensors {
  private readonly tensors: Map<string, PlannedTensor>;
  private readonly indexOf: Map<PlannedTensor, number>;
  private readonly keys = new Map<string, string>();
  private readonly jobs = new Map<string, TensorJob>();

  /** `onWarning` hears a tensor's warning (merged NaN throughout) when this point computes it; a point served the same job's bytes does not hear it again. */
  constructor(private readonly plan: MergePlan, private readonly pool: () => WorkerPool, private readonly options: Pick<EngineOptions, "memoryBudget" | "chunkBytes" | "chunkElements" | "seed">, private readonly shared: SharedTensors, private readonly onWarning?: (message: string) => void) {
    this.tensors = new Map(plan.tensors.map((t) => [t.name, t]));
    this.indexOf = new Map(plan.tensors.map((t, i) => [t, i]));
  }

  private job(name: string): TensorJob {
    let job = this.jobs.get(name);
    if (!job) {
      const t = this.tensors.get(name);
      if (!t) throw new ModelError("E_TENSOR_MISSING", `${this.plan.recipe.file}: the merged model has no tensor "${name}"`, { file: this.plan.recipe.file, tensor: name });
      // Exactly the job recipeSource (src/eval/sources.ts) and the written merge compute.
      job = tensorJob(this.plan, t, this.indexOf.get(t)!, { target: { kind: "return" }, offset: 0 }, chunkElementsFor(t, this.options), this.options.seed);
      this.jobs.set(name, job);
    }
    return job;
  }

  key(name: string): string {
    let k = this.keys.get(name);
    if (k === undefined) this.keys.set(name, (k = jobKey(this.job(name))));
    return k;
  }

  expect(name: string): void {
    this.shared.expect(this.key(name));
  }

  bytes(name: string): Promise<Uint8Array> {
    const job = this.job(name);
    return this.shared.take(this.key(name), () => computeTensorBytes(this.pool(), job, this.tensors.get(name)!.outputBytes, this.onWarning));
  }
}
