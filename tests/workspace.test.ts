// The worker-side workspace: pass results stay valid when a pass grows wasm memory, and the exact
// top-k select (sample bracket, compaction, radix rounds) agrees with a brute-force sort.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { loadKernels } from "../src/kernels/kernels";
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
