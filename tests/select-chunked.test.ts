// TIES's exact top-k on chunked tensors (src/merge/select.ts): a sparse sample brackets the k-th |tau|
// and one pass histograms the bracket key by key, so a tensor is read twice in all (that pass and the
// merge). Checked here in-process, chunk by chunk as the pool runs them: the selection against a sort
// of the keys (heavy ties, NaN and infinities, a sample that misses), the bytes read, and the output
// against the same tensor computed whole in one worker.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { loadKernels } from "../src/kernels/kernels";
import { ChunkWorkspace, ResidentExecutor } from "../src/merge/workspace";
import { selectTopK, SPARSE_SAMPLE_SHARE, sparseSampleStride } from "../src/merge/select";
import { runTensor } from "../src/merge/run-tensor";
import { sampledCut } from "../src/merge/sce-cut";
import { chunkCount, chunkRange, type FinalRequest, type PassRequest, type PassResult, type TensorExecutor, type TensorJob } from "../src/merge/job";
import type { TensorOp } from "../src/plan/plan";
import { removeDir, tempDir, uniform } from "./helpers/fixtures";
import { roundToDtype } from "./reference/float16";

const N = 1 << 20;
const TASKS = 3;
let dir: string;

/** Each data set: base and three task models, float32. */
const DATA: Record<string, (m: number, i: number) => number> = {
  // Smooth random deltas: the sample brackets the k-th key.
  smooth: (m, i) => (m === 0 ? uniform(1, i) - 0.5 : uniform(1, i) - 0.5 + 0.02 * (uniform(m + 10, i) - 0.5)),
  // A bf16 checkpoint's values (as the bench's models): few distinct |tau|, far apart in key space.
  bf16: (m, i) => roundToDtype(m === 0 ? 0.05 * (uniform(1, i) - 0.5) : roundToDtype(0.05 * (uniform(1, i) - 0.5), "BF16") + 0.004 * (uniform(m + 10, i) - 0.5), "BF16"),
  // Deltas in steps of 1/256 from a base in steps of 1/2: most |tau| are equal (as in bf16 checkpoints).
  ties: (m, i) => (m === 0 ? Math.round(uniform(1, i) * 8) / 2 : Math.round(uniform(1, i) * 8) / 2 + Math.round((uniform(m + 10, i) - 0.5) * 6) / 256),
  // Two positions in five unchanged by every task model: sce's variance is zero there, and its k counts the rest.
  unchanged: (m, i) => (m === 0 || uniform(30, i) < 0.4 ? uniform(1, i) - 0.5 : uniform(1, i) - 0.5 + 0.01 * (uniform(m + 10, i) - 0.5)),
  // NaN and infinities in the task models (NaN ranks above every number, as torch's descending sort).
  special: (m, i) => {
    const b = uniform(1, i) - 0.5;
    if (m === 0) return b;
    const u = uniform(m + 20, i);
    return u < 0.001 ? NaN : u < 0.002 ? Infinity : u < 0.003 ? -Infinity : b + 0.01 * (uniform(m + 10, i) - 0.5);
  },
  // The sampled runs hold tiny deltas, every other element large ones: the sample's bracket misses.
  miss: (m, i) => {
    const b = uniform(1, i) - 0.5;
    if (m === 0) return b;
    const stride = sparseSampleStride(N);
    const sampled = i % stride < stride / SPARSE_SAMPLE_SHARE;
    return b + (sampled ? 1e-6 : 0.1) * (uniform(m + 10, i) - 0.5);
  },
};
const arrays = new Map<string, Float32Array[]>();

before(async () => {
  dir = await tempDir();
  for (const [name, f] of Object.entries(DATA)) {
    const models: Float32Array[] = [];
    for (let m = 0; m <= TASKS; m++) {
      const a = Float32Array.from({ length: N }, (_, i) => f(m, i));
      models.push(a);
      await writeFile(join(dir, `${name}-${m}.f32`), new Uint8Array(a.buffer));
    }
    arrays.set(name, models);
  }
});
after(async () => { await removeDir(dir); });

function job(data: string, chunkElements: number, op: TensorOp = { kind: "copy" }): TensorJob {
  return {
    index: 0, name: "t", numel: N, op, loadDtype: undefined, seed: 5, chunkElements,
    inputs: Array.from({ length: TASKS + 1 }, (_, m) => ({ source: { kind: "path" as const, path: join(dir, `${data}-${m}.f32`) }, file: `m${m}`, tensor: "t", offset: 0, dtype: "F32", shape: [N] })),
    output: { target: { kind: "return" }, offset: 0, dtype: "F32" },
  };
}

/** Runs a chunked tensor's passes chunk by chunk in one workspace, as the pool's workers would. */
class ChunkExecutor implements TensorExecutor {
  readonly resident = false;
  readonly chunks: number;
  /** Full reads of a chunk's inputs (every pass but the sparse samples, and the merge). */
  loads = 0;
  rangePasses = 0;
  output: Uint8Array;
  constructor(private readonly ws: ChunkWorkspace, private readonly job: TensorJob) {
    this.chunks = chunkCount(job);
    this.output = new Uint8Array(job.numel * 4);
  }
  async pass(request: PassRequest): Promise<PassResult[]> {
    if (request.kind !== "sample" && request.kind !== "sceSample") this.loads += this.chunks;
    if (request.kind === "range") this.rangePasses++;
    const results: PassResult[] = [];
    for (let c = 0; c < this.chunks; c++) results.push(await this.ws.chunkPass(this.job, c, request));
    return results;
  }
  async final(request: FinalRequest): Promise<undefined> {
    for (let c = 0; c < this.chunks; c++) {
      await this.ws.load(this.job, c);
      this.loads++;
      this.output.set((await this.ws.final(request)).bytes!, chunkRange(this.job, c)[0] * 4);
    }
    return undefined;
  }
}

const f = new Float32Array(1), u = new Uint32Array(f.buffer);
const keysCache = new Map<string, { keys: Uint32Array; sorted: Uint32Array }>();
/** The |tau| key of every element of task `task`: the float32 bits of |x - b| (NaN stays NaN), and the keys sorted. */
function keysOf(data: string, task: number): { keys: Uint32Array; sorted: Uint32Array } {
  const id = `${data}/${task}`;
  let hit = keysCache.get(id);
  if (!hit) {
    const [b, ...xs] = arrays.get(data)!;
    const keys = Uint32Array.from(xs[task]!, (x, i) => ((f[0] = x - b![i]!), u[0]! & 0x7fffffff));
    hit = { keys, sorted: keys.slice().sort() };
    keysCache.set(id, hit);
  }
  return hit;
}

/** The k-th largest key by sorting, with the count above it, equal to it, and equal to it per chunk. */
function sortedSelection({ keys, sorted }: { keys: Uint32Array; sorted: Uint32Array }, k: number, chunkElements: number) {
  const threshold = sorted[N - k]!;
  let above = 0, equal = 0;
  const equalByChunk = Array.from({ length: Math.ceil(N / chunkElements) }, () => 0);
  keys.forEach((key, i) => {
    if (key > threshold) above++;
    if (key === threshold) {
      equal++;
      equalByChunk[Math.floor(i / chunkElements)]!++;
    }
  });
  return { threshold, above, equal, ties: k - above, equalByChunk };
}

const CHUNKS = [16384, 65536, 4096 * 37];

test("chunked: the k-th largest |tau|, its ties and their split by chunk match a sort, for smooth, tied, NaN/inf data and a missed bracket", async () => {
  const ws = new ChunkWorkspace(await loadKernels(256 << 20));
  for (const data of Object.keys(DATA)) {
    for (const chunkElements of CHUNKS) {
      const wanted = [{ task: 0, k: 1 }, { task: 1, k: Math.floor(0.3 * N) }, { task: 2, k: N }, { id: 3, task: 0, k: Math.floor(0.9 * N) }];
      const exec = new ChunkExecutor(ws, job(data, chunkElements));
      const got = await selectTopK(exec, N, wanted);
      for (const { id, task, k } of wanted) {
        assert.deepEqual(got.get(id ?? task), sortedSelection(keysOf(data, task), k, chunkElements), `${data}, ${chunkElements}-element chunks, task ${task}, k ${k}`);
      }
      if (data === "miss") assert.ok(exec.rangePasses > 1, "the sample's bracket missed and the select went on");
    }
  }
  await ws.release();
});

const TIES: TensorOp = {
  kind: "taskVector", consensus: true, sparsify: "magnitude", normalize: true, rescale: false, lambda: 1, divisor: 1,
  tasks: [{ weight: 1, density: 0.5 }, { weight: 0.7, density: 0.2 }, { weight: 0.4, density: 1 }],
};
const BREADCRUMBS: TensorOp = { ...TIES, sparsify: "breadcrumbs", tasks: [{ weight: 1, density: 0.5, gamma: 0.05 }, { weight: 0.7, density: 0.9, gamma: 0 }, { weight: 0.4, density: 0.3, gamma: 0.01 }] };

test("chunked ties and breadcrumbs_ties give the bytes of the whole tensor in one worker; ties reads a bf16 checkpoint's tensor twice (plus the 1/64 sample)", async () => {
  const ws = new ChunkWorkspace(await loadKernels(256 << 20));
  const inputBytes = N * 4 * (TASKS + 1);
  for (const [name, op] of [["ties", TIES], ["breadcrumbs_ties", BREADCRUMBS]] as const) {
    for (const data of ["bf16", "smooth", "ties", "special"]) {
      const whole = job(data, N, op);
      await ws.load(whole, 0);
      const resident = new ResidentExecutor(ws);
      await runTensor(whole, resident);
      for (const chunkElements of [16384, N / 2]) {
        const j = job(data, chunkElements, op);
        const exec = new ChunkExecutor(ws, j);
        const before = ws.bytesRead;
        await runTensor(j, exec);
        const read = ws.bytesRead - before;
        assert.ok(Buffer.from(exec.output).equals(Buffer.from(resident.output!)), `${name}, ${data}, ${chunkElements}-element chunks: the same bytes as the whole tensor`);
        // A bracket wider than the histograms of all chunks can hold (few samples of float32 data, many
        // chunks, the sparse tail of breadcrumbs' outliers) takes one more pass; ties on a bf16 tensor in
        // two chunks (as the bench's MLP weights) does not.
        const passes = name === "ties" && data === "bf16" && chunkElements === N / 2 ? 2 : 3;
        assert.ok(exec.loads <= passes * exec.chunks, `${name}, ${data}, ${chunkElements}-element chunks: ${exec.loads} chunk reads for ${exec.chunks} chunks`);
        assert.ok(read <= passes * inputBytes + inputBytes / 32, `${name}, ${data}: ${read} bytes read for ${inputBytes} bytes of inputs`);
      }
    }
  }
  await ws.release();
});

test("nonzeroBuckets lists exactly the nonzero counts of a histogram, in bucket order (what a chunk's large histograms travel as)", async () => {
  const k = await loadKernels(16 << 20);
  for (const buckets of [1, 7, 4096, 65536 + 3]) {
    const hist = k.arena.alloc(buckets * 4), pairs = k.arena.alloc(buckets * 8);
    const counts = k.arena.u32(hist, buckets);
    // Runs of zeros longer and shorter than a vector, isolated counts, the first and last buckets.
    counts.forEach((_, b) => { counts[b] = uniform(3, b) < 0.03 || b === buckets - 1 || b === 0 ? 1 + Math.floor(uniform(4, b) * 1000) : 0; });
    const expected: number[] = [];
    counts.forEach((c, b) => { if (c !== 0) expected.push(b, c); });
    const n = k.exports.nonzeroBuckets(hist, buckets, pairs);
    assert.deepEqual([...k.arena.u32(pairs, 2 * n)], expected, `${buckets} buckets`);
    k.arena.reset();
  }
});

test("a chunked tensor's sample reads each input in a few long runs, one read per run (a picked file's read costs about a millisecond however small)", async () => {
  const ws = new ChunkWorkspace(await loadKernels(256 << 20));
  const slices: number[][] = [];
  /** A Blob whose reads (slices) are recorded, as the page's picked files are read. */
  class CountingBlob extends Blob {
    constructor(parts: BlobPart[], private readonly log: number[]) { super(parts); }
    override slice(start?: number, end?: number): Blob {
      this.log.push((end ?? this.size) - (start ?? 0));
      return super.slice(start, end);
    }
  }
  const models = arrays.get("smooth")!;
  const stride = sparseSampleStride(N), run = stride / SPARSE_SAMPLE_SHARE;
  for (const chunkElements of [65536, N / 2]) {
    slices.length = 0;
    const j = job("smooth", chunkElements);
    j.inputs = j.inputs.map((input, m) => {
      const log: number[] = [];
      slices.push(log);
      return { ...input, source: { kind: "blob" as const, name: `m${m}`, blob: new CountingBlob([models[m]!.buffer as ArrayBuffer], log) } };
    });
    const exec = new ChunkExecutor(ws, j);
    const results = await exec.pass({ kind: "sample", tasks: [0, 1, 2] });
    const sampled = results.reduce((s, r) => s + (r.kind === "sample" ? r.samples[0]!.sampled : 0), 0);
    assert.equal(sampled, N / 64, `${chunkElements}-element chunks: a 64th of the elements sampled`);
    for (const [m, log] of slices.entries()) {
      assert.equal(log.length, N / stride, `${chunkElements}-element chunks, input ${m}: one read per run`);
      assert.ok(log.every((bytes) => bytes === run * 4), `${chunkElements}-element chunks, input ${m}: whole runs of ${run} elements (${log.join(", ")} bytes)`);
    }
  }
  await ws.release();
});

test("the sample's runs: a 64th of the tensor in at least 64 runs where runs of 2048 allow it, and longer runs only where there are 64 of them", () => {
  // The bench's embedding and lm_head (65.5M elements) were 500 runs of 2048 elements per input; now 125 of 8192.
  const cases: [numel: number, runs: number, run: number][] = [[1 << 18, 2, 2048], [1 << 20, 8, 2048], [11534336, 88, 2048], [1 << 24, 64, 4096], [1 << 25, 64, 8192], [65536000, 125, 8192], [525336576, 1002, 8192]];
  for (const [numel, runs, run] of cases) {
    const stride = sparseSampleStride(numel);
    assert.equal(stride / SPARSE_SAMPLE_SHARE, run, `${numel} elements: runs of ${run}`);
    assert.equal(Math.ceil(numel / stride), runs, `${numel} elements: ${runs} runs`);
    assert.ok(Math.ceil(numel / stride) >= Math.min(64, Math.ceil(numel / 131072)), `${numel} elements: 64 runs, or as many as runs of 2048 give`);
    assert.ok(run === 2048 || numel / stride >= 64, `${numel} elements: runs longer than 2048 only with 64 of them`);
  }
});

/** sce's variance of every position, as the scalar reference computes it (float32 tau, float64 mean and squares). */
function variancesOf(data: string): Float64Array {
  const [b, ...xs] = arrays.get(data)!;
  return Float64Array.from({ length: N }, (_, j) => {
    const taus = xs.map((x) => Math.fround(x[j]! - b![j]!));
    const mu = taus.reduce((s, t) => s + t, 0) / taus.length;
    return taus.reduce((s, t) => s + (t - mu) * (t - mu), 0) / taus.length;
  });
}

/** Drops every chunk's copied variances, as a chunk whose bracket holds more than its memory would. */
class OverflowingExecutor extends ChunkExecutor {
  override async pass(request: PassRequest): Promise<PassResult[]> {
    const results = await super.pass(request);
    return results.map((r) => (r.kind === "sceBracket" ? { kind: "sceBracket", nonzero: r.nonzero, above: r.above, inside: r.inside } : r));
  }
}

test("sce chunked: k and the cut from the chunks' sampled runs match a count and a sort of the variances, ties split by chunk", async () => {
  const ws = new ChunkWorkspace(await loadKernels(256 << 20));
  const view = new DataView(new ArrayBuffer(8));
  for (const data of ["bf16", "smooth", "ties", "unchanged"]) {
    const vars = variancesOf(data);
    const sorted = vars.slice().sort();
    const nonzero = vars.reduce((n, v) => n + (v !== 0 ? 1 : 0), 0);
    for (const chunkElements of [16384, 4096 * 37]) {
      for (const selectTopk of [2 / N, 0.3, 1]) {
        const k = Math.floor(selectTopk * nonzero);
        const exec = new ChunkExecutor(ws, job(data, chunkElements, { kind: "sce", selectTopk }));
        const { k: gotK, cut: got } = await sampledCut(exec, N, selectTopk);
        assert.equal(gotK, k, `${data}: k from the nonzero variances`);
        assert.equal(exec.rangePasses, 0, `${data}, ${chunkElements}-element chunks, k ${k}: the bracket held the cut`);
        const cut = sorted[N - k]!;
        const above = vars.reduce((n, v) => n + (v > cut ? 1 : 0), 0);
        const equalByChunk = Array.from({ length: exec.chunks }, (_, c) => vars.subarray(c * chunkElements, (c + 1) * chunkElements).reduce((n, v) => n + (v === cut ? 1 : 0), 0));
        const equal = equalByChunk.reduce((a, b) => a + b, 0);
        // The first k - above positions equal to the cut, in position order; every chunk may keep all when all are kept.
        let left = k - above;
        const ties = equalByChunk.map((e) => {
          if (k - above === equal) return equal;
          const take = Math.min(left, e);
          left -= take;
          return take;
        });
        view.setFloat64(0, cut, true);
        assert.deepEqual(got, { mode: "top", high: view.getUint32(4, true), low: view.getUint32(0, true), ties }, `${data}, ${chunkElements}-element chunks, k ${k}`);
      }
    }
  }
  await ws.release();
});

test("sce chunked: the bytes of the whole tensor in one worker, in three reads of each chunk (bracket, squares, merge) and a 64th; radix passes when the bracket's copies do not fit (and for NaN variances)", async () => {
  const ws = new ChunkWorkspace(await loadKernels(256 << 20));
  // select_topk 0.001 on the special data puts the cut among the NaN variances (NaN bits rank above every number).
  for (const [data, selectTopk] of [["bf16", 0.3], ["smooth", 0.3], ["ties", 0.3], ["unchanged", 0.3], ["special", 0.3], ["special", 0.001]] as const) {
    const op: TensorOp = { kind: "sce", selectTopk };
    const whole = job(data, N, op);
    await ws.load(whole, 0);
    const resident = new ResidentExecutor(ws);
    await runTensor(whole, resident);
    for (const chunkElements of [16384, N / 2]) {
      for (const Executor of [ChunkExecutor, OverflowingExecutor]) {
        const exec: ChunkExecutor = new Executor(ws, job(data, chunkElements, op));
        const before = ws.bytesRead;
        await runTensor(job(data, chunkElements, op), exec);
        const read = ws.bytesRead - before;
        const what = `${data}, select_topk ${selectTopk}, ${chunkElements}-element chunks${Executor === OverflowingExecutor ? ", copies dropped" : ""}`;
        assert.ok(Buffer.from(exec.output).equals(Buffer.from(resident.output!)), `${what}: the same bytes as the whole tensor`);
        if (Executor === OverflowingExecutor) assert.ok(exec.rangePasses > 0, `${what}: radix passes`);
        else if (data !== "special") {
          assert.equal(exec.rangePasses, 0, `${what}: no radix passes`);
          assert.equal(exec.loads, 3 * exec.chunks, `${what}: each chunk read three times`);
          assert.equal(read, 3 * N * 4 * (TASKS + 1) + N * 4 * (TASKS + 1) / SPARSE_SAMPLE_SHARE, `${what}: bytes read`);
        }
      }
    }
  }
  await ws.release();
});
