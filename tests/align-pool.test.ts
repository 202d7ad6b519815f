// Alignment on the worker pool (src/align/pool-engine.ts): the workers read both models' tensors from
// the files themselves and split each similarity matrix by rows. The permutations and the recorded
// similarities must not depend on the number of workers or on how many decoded tensors a worker may
// keep, and must be those of weight matching on the same tensors in memory; the planted permutation
// must come back (checked by applying the result by hand and comparing with the reference).
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { matchModels } from "../src/align/align-model";
import { llamaSpec } from "../src/align/architectures";
import { readFloatTensors } from "../src/align/checkpoint";
import { memoryEngine } from "../src/align/engine";
import { groupBlocks } from "../src/align/group-similarity";
import { openPoolEngine } from "../src/align/pool-engine";
import { checkSpec, type Permutations } from "../src/align/spec";
import { WorkerPool } from "../src/pool/pool";
import { applyPermutations, weightMatching, type Tensor } from "../src/align/weight-matching";
import { openModel, type LoadedModel } from "../src/model/model";
import { resolveModel } from "../src/model/resolve";
import { baseModel, removeDir, tempDir, uniform, WORKER_URL, writeModel } from "./helpers/fixtures";

// Wide enough that the pool splits the residual (256) and MLP (384) matrices over 2 and 3 workers, and
// with a vocabulary long enough that the embeddings pass through the similarity GEMM in several chunks.
const SHAPE = { vocab: 5000, hidden: 256, intermediate: 384, layers: 2, heads: 4, kvHeads: 2 };
const NOISE = 0.02;

let dir: string, reference: LoadedModel, model: LoadedModel, a: Map<string, Tensor>;

function shuffled(n: number, seed: number): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(uniform(seed, i) * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

before(async () => {
  dir = await tempDir("ws-align-pool-");
  const ref = baseModel(23, "BF16", SHAPE);
  a = new Map([...ref.tensors].map(([name, t]) => [name, { shape: t.shape, data: t.values! }]));
  const spec = llamaSpec(ref.config!, new Map([...a].map(([k, t]) => [k, t.shape])));
  const planted: Permutations = new Map([...checkSpec(spec, new Map([...a].map(([k, t]) => [k, t.shape]))).sizes].map(([g, n], i) => [g, shuffled(n, 300 + i)]));
  const moved = applyPermutations(spec, a, planted);
  let k = 0;
  const noisy = new Map([...moved].map(([name, t]) => [name, { dtype: "F32", shape: t.shape, values: t.data.map((v, i) => v + NOISE * (uniform(900 + k++, i) - 0.5)) }]));
  await writeModel(join(dir, "a"), ref);
  await writeModel(join(dir, "b"), { config: ref.config, tensors: noisy }, { shards: 2 });
  [reference, model] = await Promise.all(["a", "b"].map(async (m) => openModel(await resolveModel(join(dir, m), dir))));
});
after(async () => { await removeDir(dir); });

const match = (workers: number, memoryBudget?: number) => matchModels(reference, model, { seed: 4, workers, workerUrl: WORKER_URL, ...(memoryBudget ? { memoryBudget } : {}) });

test("1, 2 and 3 workers give the same permutations and similarities bit for bit, equal to matching in memory, and undo the planted permutation", async () => {
  const one = await match(1);
  assert.ok(one.groups.length > 10 && one.sweeps >= 2, `${one.groups.length} groups, ${one.sweeps} sweeps`);
  for (const workers of [2, 3]) {
    const many = await match(workers);
    assert.equal(many.sweeps, one.sweeps, `${workers} workers: sweeps`);
    for (const [g, p] of one.permutations) assert.deepEqual(many.permutations.get(g), p, `${workers} workers: group ${g}`);
    assert.deepEqual(many.groups, one.groups, `${workers} workers: recorded similarities`);
  }
  const b = await readFloatTensors(model, a.keys());
  const inMemory = await weightMatching(one.spec, a, b, { seed: 4 });
  assert.deepEqual(inMemory.permutations, one.permutations);
  assert.deepEqual([...inMemory.similarity].map(([name, s]) => ({ name, ...s })), one.groups.map(({ size: _, ...g }) => g));
  // The aligned model is the reference up to the noise.
  const aligned = applyPermutations(one.spec, b, one.permutations);
  for (const [name, t] of a) {
    const u = aligned.get(name)!.data;
    const worst = t.data.reduce((m, v, i) => Math.max(m, Math.abs(v - u[i]!)), 0);
    assert.ok(worst <= NOISE / 2 + 1e-6, `${name}: aligned differs from the reference by ${worst}`);
  }
});

test("a worker budget far below one tensor still gives the same answer: tensors are read again instead of kept", async () => {
  const budget = 64 * 1024;
  const largest = Math.max(...[...a.values()].map((t) => t.data.byteLength));
  assert.ok(largest > 2 * budget, "every MLP matrix is larger than the budget");
  const small = await match(2, budget), roomy = await match(2, 64 * 1048576);
  for (const [g, p] of roomy.permutations) assert.deepEqual(small.permutations.get(g), p, `group ${g}`);
  assert.deepEqual(small.groups, roomy.groups);
  for (const s of small.workerStats) assert.ok(s.peakCached <= budget, `kept ${s.peakCached} bytes, budget ${budget}`);
  const reads = (m: typeof small) => m.workerStats.reduce((n, s) => n + s.reads, 0);
  assert.ok(roomy.workerStats.some((s) => s.peakCached > budget), "with room, workers keep tensors");
  assert.ok(reads(small) > reads(roomy), `reads: ${reads(small)} with the small budget, ${reads(roomy)} with room`);
});

test("every similarity matrix the pool builds (rows split over 1, 2 or 3 workers) is the in-memory one bit for bit", async () => {
  const b = await readFloatTensors(model, a.keys());
  const checked = checkSpec(llamaSpec(reference.config!, new Map([...a].map(([k, t]) => [k, t.shape]))), new Map([...a].map(([k, t]) => [k, t.shape])));
  // Every group permuted at random, so B is read through permutations on every other axis.
  const perms: Permutations = new Map([...checked.sizes].map(([g, n], i) => [g, shuffled(n, 700 + i)]));
  const local = memoryEngine(a, b);
  const expected = new Map<string, Float32Array>();
  for (const g of checked.sizes.keys()) expected.set(g, await local.similarity(checked.sizes.get(g)!, groupBlocks(checked, g, perms, g)));
  for (const workers of [1, 2, 3]) {
    const pool = await WorkerPool.create({ size: workers, workerUrl: WORKER_URL, memoryBudget: 16 * 1048576, jobsPerWorker: 1 });
    try {
      const engine = await openPoolEngine(pool, reference, model, checked.tensors.keys(), { memoryBudget: 256 * 1048576, cacheBytes: 1048576 });
      for (const [g, n] of checked.sizes) {
        const s = await engine.similarity(n, groupBlocks(checked, g, perms, g));
        assert.ok(s.every((x, i) => Object.is(x, expected.get(g)![i])), `${workers} workers: group ${g} (${n} units)`);
      }
    } finally {
      await pool.terminate();
    }
  }
});
