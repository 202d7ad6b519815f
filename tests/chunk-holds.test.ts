// Held chunks (WorkerPool.hold, src/merge/engine.ts's PoolExecutor): a multi-pass tensor whose chunks
// the pool can hold at once keeps each chunk loaded in its own kernel instance from its first pass to
// its final one, so it is read once. Checked here: the pool's holds (granted together, waiting at the
// head of the queue, counted as jobs in flight, failed with the pool), and merges whose tensors are held
// reading each input byte exactly once and giving the bytes of the unchunked merge.
import assert from "node:assert/strict";
import { existsSync, truncateSync } from "node:fs";
import { cp, readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { merge } from "../src/node";
import { WorkerPool } from "../src/pool/pool";
import type { MergeEvent } from "../src/events";
import { AbortError, WeightsoupError } from "../src/errors";
import { baseModel, fineTune, removeDir, tempDir, WORKER_URL, writeCase, type Shape } from "./helpers/fixtures";

function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
const settle = () => new Promise((r) => setTimeout(r, 20));

test("pool holds: granted together once enough instances are free, nothing overtakes a waiting hold, a hold counts until released", async () => {
  const pool = await WorkerPool.inThisThread({ memoryBudget: 3 * (16 << 20), jobsPerWorker: 3 });
  try {
    assert.equal(pool.capacity, 3);
    const first = deferred<number>();
    const running = pool.run(() => first.promise);
    let holds: Awaited<ReturnType<WorkerPool["hold"]>> | undefined;
    const held = pool.hold(3).then((h) => (holds = h));
    let laterStarted = false;
    const later = pool.run(async () => { laterStarted = true; return 2; });
    await settle();
    assert.equal(holds, undefined, "two instances free: a hold of three waits");
    assert.equal(laterStarted, false, "a job behind a waiting hold does not overtake it, though instances are free");
    first.resolve(1);
    assert.equal(await running, 1);
    await held;
    assert.equal(holds!.length, 3);
    assert.equal(new Set(holds!.map((h) => h.id)).size, 3, "each hold has its own id");
    await settle();
    assert.equal(laterStarted, false, "three instances held: no room for another job");
    assert.equal(await holds![1]!.run(async () => 42), 42, "a call on a held instance runs at once");
    holds![0]!.release();
    assert.equal(await later, 2, "a released instance takes the next job");
    holds![0]!.release(); // a second release changes nothing
    holds![1]!.release();
    holds![2]!.release();
    assert.throws(() => pool.hold(4), /hold of 4 instances in a pool of 3/);
  } finally {
    await pool.terminate();
  }
});

test("pool holds: a call on one worker (pool.on: an evaluation's layer) counts while it runs, and a hold waiting behind it is granted when it ends", async () => {
  // Found by the stop 37 audit: a sweep whose points' tensors are held in chunks hung for good after
  // sweep-plan, its next point's holds waiting for instances the finished evaluation calls had freed.
  const pool = await WorkerPool.inThisThread({ memoryBudget: 2 * (16 << 20), jobsPerWorker: 2 });
  try {
    const call = deferred<number>();
    const running = pool.on(0, () => call.promise);
    let holds: Awaited<ReturnType<WorkerPool["hold"]>> | undefined;
    const held = pool.hold(2).then((h) => (holds = h));
    await settle();
    assert.equal(holds, undefined, "one instance taken by the call: a hold of two waits");
    call.resolve(1);
    assert.equal(await running, 1);
    await Promise.race([held, new Promise((_, reject) => setTimeout(() => reject(new Error("the hold was never granted")), 5000))]);
    assert.equal(holds!.length, 2);
    for (const h of holds!) h.release();
  } finally {
    await pool.terminate();
  }
});

test("pool holds: a failing pool rejects calls in flight on held instances, waiting holds and later calls", async () => {
  const pool = await WorkerPool.inThisThread({ memoryBudget: 2 * (16 << 20), jobsPerWorker: 2 });
  try {
    const [hold] = await pool.hold(2);
    const never = hold!.run(() => new Promise<void>(() => undefined));
    const waiting = pool.hold(1);
    const error = new Error("a worker stopped");
    pool.fail(error);
    await assert.rejects(never, /a worker stopped/);
    await assert.rejects(waiting, /a worker stopped/);
    await assert.rejects(hold!.run(async () => 1), /a worker stopped/);
  } finally {
    await pool.terminate();
  }
});

// Eight tensors of 40 x 400 = 16000 elements (embeddings, lm_head, six MLP weights: four 4096-element tiles,
// the last partial), the rest one chunk at any size used below; below the select's sampling size, so a
// pass over a chunk reads all of it.
const SHAPE: Shape = { vocab: 400, hidden: 40, intermediate: 400, layers: 2, heads: 4, kvHeads: 2 };
const RECIPES: Record<string, string> = {
  ties: "merge_method: ties\nbase_model: ./base\nmodels:\n  - {model: ./a, parameters: {weight: 1, density: 0.3}}\n  - {model: ./b, parameters: {weight: 0.5, density: 0.6}}\n  - {model: ./c, parameters: {weight: 0.8, density: 0.45}}\nparameters: {rescale: true}\n",
  dare_ties: "merge_method: dare_ties\nbase_model: ./base\nmodels:\n  - {model: ./a, parameters: {weight: 1, density: 0.3}}\n  - {model: ./b, parameters: {weight: 0.5, density: 0.6}}\n",
  sce: "merge_method: sce\nbase_model: ./base\nmodels:\n  - {model: ./a}\n  - {model: ./b}\n  - {model: ./c}\nparameters: {select_topk: 0.3}\n",
};
let dir: string;
before(async () => {
  dir = await tempDir();
  const base = baseModel(71, "BF16", SHAPE);
  const ft = (seed: number) => fineTune(base, seed, 0.05, { quantum: 2 ** -8 });
  await writeCase(dir, { base, a: ft(72), b: ft(73), c: ft(74) }, {}, {});
  for (const [name, text] of Object.entries(RECIPES)) await writeFile(join(dir, `${name}.yml`), text);
});
after(async () => { await removeDir(dir); });

async function run(name: string, options: { workers: number; chunkElements?: number; onProgress?: (e: MergeEvent) => void }) {
  const out = join(dir, `out-${name}-${options.workers}-${options.chunkElements ?? 0}`);
  const summary = await merge(join(dir, `${name}.yml`), { out, seed: 5, workerUrl: WORKER_URL, force: true, ...options });
  const files = new Map<string, Buffer>();
  for (const f of (await readdir(out)).filter((f) => f.endsWith(".safetensors"))) files.set(f, await readFile(join(out, f)));
  return { summary, files };
}

for (const name of Object.keys(RECIPES)) {
  test(`${name}: held chunks are read once and give the unchunked bytes; chunks beyond the pool's instances are read once per pass`, async () => {
    const whole = await run(name, { workers: 1 });
    assert.equal(whole.summary.bytesRead, whole.summary.inputBytes, "unchunked: every input read once");
    // 2 chunks on 1 worker (2 instances), 4 chunks on 2 workers (the whole pool per tensor, every
    // chunked tensor waiting for all of it), and 4 chunks on 1 worker (more chunks than instances).
    for (const [options, held] of [[{ workers: 1, chunkElements: 8192 }, true], [{ workers: 2, chunkElements: 4096 }, true], [{ workers: 1, chunkElements: 4096 }, false]] as const) {
      const chunked = await run(name, options);
      for (const [file, bytes] of whole.files) assert.ok(bytes.equals(chunked.files.get(file)!), `${name}, ${JSON.stringify(options)}: ${file} has the unchunked merge's bytes`);
      const { bytesRead, inputBytes } = chunked.summary;
      if (held) assert.equal(bytesRead, inputBytes, `${name}, ${JSON.stringify(options)}: every input byte read once`);
      // Eight tensors of 16000 elements with four BF16 inputs (three for dare_ties) are read once per pass.
      else assert.ok(bytesRead >= inputBytes + 8 * 16000 * 2 * (name === "dare_ties" ? 3 : 4), `${name}, ${JSON.stringify(options)}: ${bytesRead} bytes read for ${inputBytes} of inputs`);
    }
  });
}

test("tensors of several chunks start before single-chunk ones, the most chunks first; the rest in file order", async () => {
  // Embeddings and lm_head of 800 x 40 = 32000 elements (4 chunks of 8192), MLP weights of 16000 (2 chunks).
  const wide = join(dir, "wide");
  const base = baseModel(81, "BF16", { ...SHAPE, vocab: 800 });
  await writeCase(wide, { base, a: fineTune(base, 82, 0.05), b: fineTune(base, 83, 0.05), c: fineTune(base, 84, 0.05) }, {}, {});
  await writeFile(join(wide, "ties.yml"), RECIPES.ties!);
  const starts: { name: string; chunks: number; index: number }[] = [];
  await merge(join(wide, "ties.yml"), { out: join(wide, "out"), seed: 5, workerUrl: WORKER_URL, workers: 2, chunkElements: 8192, onProgress: (e: MergeEvent) => { if (e.type === "tensor-start") starts.push(e); } });
  assert.deepEqual(starts.slice(0, 8).map((s) => s.chunks), [4, 4, 2, 2, 2, 2, 2, 2], "the embeddings and lm_head, then the six MLP weights");
  assert.deepEqual(starts.slice(0, 2).map((s) => s.name).sort(), ["lm_head.weight", "model.embed_tokens.weight"]);
  const singles = starts.slice(8);
  assert.ok(singles.every((s) => s.chunks === 1), "single-chunk tensors after every chunked one");
  assert.deepEqual(singles.map((s) => s.index), singles.map((s) => s.index).sort((a, b) => a - b), "single-chunk tensors in file order");
});

test("a merge aborted or failing while its chunks are held ends at once with its typed error and no output", async () => {
  // Abort once the first tensor is done: every chunked tensor (started first) holds the whole pool.
  const controller = new AbortController();
  const aborted = join(dir, "out-aborted");
  await assert.rejects(merge(join(dir, "ties.yml"), {
    out: aborted, seed: 5, workerUrl: WORKER_URL, workers: 2, chunkElements: 4096, signal: controller.signal,
    onProgress: (e) => { if (e.type === "tensor-done") controller.abort(); },
  }), (e: unknown) => e instanceof AbortError && e.code === "E_ABORTED");
  assert.ok(!existsSync(aborted) || (await readdir(aborted)).length === 0, "nothing left in the output folder");

  // An input cut short once the merge has planned: the held chunks' first read fails.
  const cut = await tempDir();
  after(() => removeDir(cut));
  await cp(dir, cut, { recursive: true, filter: (p) => !p.includes("/out-") && !p.includes("/wide") });
  const file = join(cut, "b", "model.safetensors");
  const failing = join(cut, "out");
  await assert.rejects(merge(join(cut, "ties.yml"), {
    out: failing, seed: 5, workerUrl: WORKER_URL, workers: 2, chunkElements: 4096,
    onProgress: (e) => { if (e.type === "plan") truncateSync(file, 1000); },
  }), (e: unknown) => e instanceof WeightsoupError && e.code === "E_IO" && e.message.includes("model.safetensors"));
  assert.ok(!existsSync(failing) || (await readdir(failing)).length === 0, "nothing left in the output folder");
});
