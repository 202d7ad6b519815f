// The worker-side workspace: pass results stay valid when a pass grows wasm memory, the exact top-k
// select (sample bracket, compaction, radix rounds) agrees with a brute-force sort, and DARE's merge
// reads the keep bits its L1 pass drew instead of drawing them again.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { TRIM_BITS, TRIM_RANDOM, TV_MASK, TV_MODE, TV_RECORD } from "../assembly/layout";
import { loadKernels } from "../src/kernels/kernels";
import { runTensor } from "../src/merge/run-tensor";
import { ChunkWorkspace, ResidentExecutor } from "../src/merge/workspace";
import { selectTopK } from "../src/merge/select";
import type { TensorJob } from "../src/merge/job";
import { removeDir, tempDir, uniform } from "./helpers/fixtures";
import { roundToDtype } from "./reference/float16";

let dir: string;
const N = 300_000; // large enough for the sample bracket
const arrays: Float32Array[] = [];
let job: TensorJob;

before(async () => {
  dir = await tempDir();
  for (let m = 0; m < 4; m++) {
    const a = new Float32Array(N);
    for (let i = 0; i < N; i++) {
      const base = uniform(1, i) - 0.5;
      // Model 3 moves in coarse steps, so many |tau| are equal (as in bf16 checkpoints).
      a[i] = m === 0 ? base : m === 3 ? Math.fround(base + Math.round((uniform(m + 10, i) - 0.5) * 64) / 1024) : roundToDtype(base + 0.02 * (uniform(m + 10, i) - 0.5), "F32");
    }
    arrays.push(a);
    await writeFile(join(dir, `m${m}.f32`), new Uint8Array(a.buffer));
  }
  job = {
    index: 0, name: "t", numel: N, op: { kind: "copy" }, loadDtype: undefined, seed: 0, chunkElements: N,
    inputs: arrays.map((_, m) => ({ source: { kind: "path", path: join(dir, `m${m}.f32`) }, file: `m${m}`, tensor: "t", offset: 0, dtype: "F32", shape: [N] })),
    output: { target: { kind: "memory" }, offset: 0, dtype: "F32" },
  };
});
after(async () => { await removeDir(dir); });

test("every result of a multi-task pass is readable even when the pass grew wasm memory", async () => {
  const k = await loadKernels(512 << 20);
  const ws = new ChunkWorkspace(k);
  await ws.load(job, 0);
  const before = k.exports.memory.buffer.byteLength;
  const [result] = await new ResidentExecutor(ws).pass({ kind: "sample", tasks: [0, 1, 2] });
  assert.ok(k.exports.memory.buffer.byteLength > before, "the three 256 KiB sample histograms grew the memory");
  assert.equal(result!.kind, "sample");
  // A sample's histogram comes back as its nonzero buckets when they are few (the select walks those),
  // else dense: either way its counts, read after the growth, add up to the elements sampled.
  for (const s of result!.kind === "sample" ? result!.samples : []) {
    if ("hist" in s) {
      assert.equal(s.hist.length, 65536);
      assert.equal(s.hist.reduce((a, b) => a + b, 0), s.sampled);
    } else {
      assert.equal(s.buckets, 65536);
      const buckets = s.pairs.filter((_, i) => i % 2 === 0), counts = s.pairs.filter((_, i) => i % 2 === 1);
      assert.ok(buckets.every((b, i) => b < 65536 && (i === 0 || b > buckets[i - 1]!)), "buckets in order, each once");
      assert.ok(counts.every((c) => c > 0), "only nonzero buckets");
      assert.equal(counts.reduce((a, b) => a + b, 0), s.sampled);
    }
    assert.ok(s.sampled > 0);
  }
  await ws.release();
});

test("the k-th largest |tau| and its tie count match a sort, for several k, run after run", async () => {
  const k = await loadKernels(512 << 20);
  const ws = new ChunkWorkspace(k);
  await ws.load(job, 0);
  const wanted = [{ task: 0, k: 1 }, { task: 1, k: Math.floor(0.3 * N) }, { task: 2, k: Math.floor(0.5 * N) }];
  const wanted3 = [{ task: 2, k: N - 1 }, { task: 0, k: Math.floor(0.9 * N) }];
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  const keysOf = (task: number) => Uint32Array.from(arrays[task + 1]!, (x, i) => ((f[0] = x - arrays[0]![i]!), u[0]! & 0x7fffffff));
  for (let rep = 0; rep < 2; rep++) {
    for (const list of [wanted, wanted3]) {
      const got = await selectTopK(new ResidentExecutor(ws), N, list);
      for (const { task, k: kk } of list) {
        const keys = keysOf(task).sort();
        const threshold = keys[N - kk]!;
        const above = keys.filter((x) => x > threshold).length, equal = keys.filter((x) => x === threshold).length;
        const { equalByChunk, ...selection } = got.get(task)!;
        assert.deepEqual(selection, { threshold, above, equal, ties: kk - above }, `task ${task}, k ${kk}`);
        assert.deepEqual(equalByChunk, [equal], "one chunk holds every equal element");
      }
    }
  }
  await ws.release();
});

test("DARE's merge stages the keep bits its L1 pass drew: each bit decides its element's output", async () => {
  assert.ok([0, 7, 8, 4099, N - 1].every((e) => arrays[1]![e] !== arrays[0]![e]), "the first task moves every flipped element");
  const loaded = await loadKernels(512 << 20);
  const merge = loaded.exports.taskVectorMerge;
  let modes: number[] = [];
  let flip: number | undefined; // an element whose first task's keep bit is flipped before the merge
  const spy: typeof merge = (table, nInputs, ...rest) => {
    const v = loaded.arena.view();
    modes = Array.from({ length: nInputs - 1 }, (_, i) => v.getUint32(table + (i + 1) * TV_RECORD + TV_MODE, true));
    if (flip !== undefined) {
      const at = v.getUint32(table + TV_RECORD + TV_MASK, true) + (flip >> 3);
      v.setUint8(at, v.getUint8(at) ^ (1 << (flip & 7)));
    }
    merge(table, nInputs, ...rest);
  };
  // The workspace's kernels with the merge seen through the spy (wasm exports are read-only: the spy
  // shadows the export in an object that inherits every other one).
  const k = { ...loaded, exports: Object.create(loaded.exports, { taskVectorMerge: { value: spy } }) as typeof loaded.exports };
  const ws = new ChunkWorkspace(k);
  const tasks = [{ weight: 1, density: 0.4 }, { weight: 0.6, density: 0.7 }, { weight: 0.8, density: 0.5 }];
  // dare_linear (no vote, so a kept value always counts) with its usual L1 rescaling, or without.
  const dare = (rescale: boolean): TensorJob => ({
    ...job, seed: 5, output: { target: { kind: "return" }, offset: 0, dtype: "F32" },
    op: { kind: "taskVector", consensus: false, sparsify: "random", normalize: false, rescale, lambda: 1, divisor: 1, tasks },
  });
  const run = async (j: TensorJob) => {
    await ws.load(j, 0);
    const exec = new ResidentExecutor(ws);
    await runTensor(j, exec);
    return new Float32Array(exec.output!.slice().buffer);
  };
  try {
    const drawn = await run(dare(true));
    assert.deepEqual(modes, [TRIM_BITS, TRIM_BITS, TRIM_BITS], "rescaled DARE: the merge reads keep bits");
    const differing = (a: Float32Array, b: Float32Array) => Array.from(a.keys()).filter((i) => !Object.is(a[i], b[i]));
    for (const e of [0, 7, 8, 4099, N - 1]) {
      flip = e;
      const flipped = await run(dare(true));
      assert.deepEqual(differing(flipped, drawn), [e], `flipping element ${e}'s bit changes that element only`);
    }
    flip = undefined;
    await run(dare(false));
    assert.deepEqual(modes, [TRIM_RANDOM, TRIM_RANDOM, TRIM_RANDOM], "without rescaling there is no L1 pass: the merge draws");
  } finally {
    await ws.release();
  }
});
