// Tensors computed in one pass over their data are streamed in cache-sized chunks (STREAM_CHUNK_BYTES,
// src/merge/engine.ts): the chunking rule against hand-worked sizes, and a merge with the default
// options of a tensor that the rule cuts into three chunks, spread over two workers, against the
// scalar computation (tests/reference/SPEC.md section 5, task_arithmetic).
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { merge } from "../src/node";
import { chunkElementsFor } from "../src/merge/engine";
import type { PlannedTensor, TensorOp } from "../src/plan/plan";
import type { SourceRef } from "../src/io/source";
import type { MergeEvent } from "../src/events";
import { decodeFloat } from "./reference/safetensors";
import type { RefModel } from "./reference/merge";
import { readOutput, removeDir, tempDir, uniform, writeModel, WORKER_URL } from "./helpers/fixtures";

const MiB = 1048576;
const DEFAULTS = { memoryBudget: 256 * MiB, chunkBytes: 64 * MiB };
const taskArithmetic: TensorOp = { kind: "taskVector", consensus: false, sparsify: undefined, normalize: false, rescale: false, lambda: 1, divisor: 1, tasks: [{ weight: 1, density: 1 }, { weight: 0.5, density: 1 }] };
const ties: TensorOp = { ...taskArithmetic, consensus: true, sparsify: "magnitude", tasks: [{ weight: 1, density: 0.5 }, { weight: 0.5, density: 0.5 }] };
const linear: TensorOp = { kind: "sum", weights: [1, 1, 1, 1], normalize: true, divisor: 1 };

const onDisk: SourceRef = { kind: "path", path: "model.safetensors" };
const blob = new Blob([new Uint8Array(8)]);

function planned(op: TensorOp, numel: number, dtype: string, inputs: number, source: SourceRef = onDisk): PlannedTensor {
  return { name: "t", shape: [numel], numel, dtype, op, inputs: Array.from({ length: inputs }, () => ({ tensor: { dtype, source } })), inputBytes: 0, outputBytes: 0 } as unknown as PlannedTensor;
}

test("one-pass tensors are cut into chunks of at most 8 MiB of inputs and output, in whole 4096-element tiles", () => {
  // F32, 3 inputs + output = 16 bytes per element: 8 MiB / 16 = 524288 = 128 tiles.
  assert.equal(chunkElementsFor(planned(taskArithmetic, 1_200_000, "F32", 3), DEFAULTS), 524288);
  // BF16, 4 inputs + output = 10 bytes per element: 8388608 / 10 = 838860.8, 204 whole tiles = 835584.
  assert.equal(chunkElementsFor(planned(linear, 4_000_000, "BF16", 4), DEFAULTS), 835584);
  // A smaller --chunk-size still wins: 2 MiB / 16 = 131072.
  assert.equal(chunkElementsFor(planned(taskArithmetic, 1_200_000, "F32", 3), { ...DEFAULTS, chunkBytes: 2 * MiB }), 131072);
  // Under 8 MiB: one chunk. 100000 x 16 = 1.6 MB.
  assert.equal(chunkElementsFor(planned(taskArithmetic, 100_000, "F32", 3), DEFAULTS), 100_000);
});

test("multi-pass tensors keep the larger resident chunk (each chunk is read once per pass)", () => {
  // TIES: 1.2M x (16 + 2 trimmed models x 0.5 candidate bytes) = 20.4 MB <= 1.5 x 64 MiB: whole.
  assert.equal(chunkElementsFor(planned(ties, 1_200_000, "F32", 3), DEFAULTS), 1_200_000);
  // 8M x 17 = 136 MB > 96 MiB: chunked at MULTI_PASS_CHUNK_BYTES (32 MiB, under the 64 MiB --chunk-size),
  // 32 MiB / 16 = 2097152 (candidates are not counted there), not at 8 MiB.
  assert.equal(chunkElementsFor(planned(ties, 8_000_000, "F32", 3), DEFAULTS), 2097152);
  // A smaller --chunk-size still wins: 16 MiB / 16 = 1048576.
  assert.equal(chunkElementsFor(planned(ties, 8_000_000, "F32", 3), { ...DEFAULTS, chunkBytes: 16 * MiB }), 1048576);
});

test("a multi-pass tensor needing more chunks than the pool's instances takes as many chunks as they hold, when those fit the resident bound", () => {
  const sce: TensorOp = { kind: "sce", selectTopk: 0.3 };
  // sce on the bench's MLP weights: 11534336 BF16 elements x (4 inputs + output) x 2 bytes + 8 bytes of
  // variance = 18 bytes each. At 32 MiB: 1864135.1, 455 tiles = 1863680 elements, 7 chunks.
  assert.equal(chunkElementsFor(planned(sce, 11534336, "BF16", 4), DEFAULTS), 1863680);
  // 2 workers hold 4 chunks: 11534336 / 4 = 2883584 (704 tiles), 51.9 MB each <= 96 MiB.
  assert.equal(chunkElementsFor(planned(sce, 11534336, "BF16", 4), { ...DEFAULTS, workers: 2 }), 2883584);
  // 1 worker holds 2: 5767168 x 18 = 103.8 MB > 96 MiB (100.7 MB), so the 32 MiB chunks stay.
  assert.equal(chunkElementsFor(planned(sce, 11534336, "BF16", 4), { ...DEFAULTS, workers: 1 }), 1863680);
  // 11534337 elements: 2883585 per instance rounds up to 705 tiles (2887680), still 4 chunks.
  assert.equal(chunkElementsFor(planned(sce, 11534337, "BF16", 4), { ...DEFAULTS, workers: 2 }), 2887680);
  // One-pass tensors stream whatever the pool: 8 MiB chunks.
  assert.equal(chunkElementsFor(planned(linear, 4_000_000, "BF16", 4), { ...DEFAULTS, workers: 2 }), 835584);
});

test("a multi-pass tensor takes one chunk per worker when that fits the resident bound, candidate keys counted", () => {
  // TIES, 8M F32 elements, 16 bytes each and 1 of candidate keys: 2 workers, 4000000 per worker rounds up
  // to 977 tiles (4001792), 68.0 MB <= 96 MiB; without workers, 32 MiB chunks (2097152).
  assert.equal(chunkElementsFor(planned(ties, 8_000_000, "F32", 3), { ...DEFAULTS, workers: 2 }), 4001792);
  // 3 workers: 2666666.7 rounds up to 652 tiles (2670592).
  assert.equal(chunkElementsFor(planned(ties, 8_000_000, "F32", 3), { ...DEFAULTS, workers: 3 }), 2670592);
  // 1 worker: nothing to share; four 32 MiB chunks are more than its 2 instances hold, so 2 held chunks
  // (the rule above) of the same 4001792 elements, 64.0 MB each without candidate keys.
  assert.equal(chunkElementsFor(planned(ties, 8_000_000, "F32", 3), { ...DEFAULTS, workers: 1 }), 4001792);
  assert.equal(chunkElementsFor(planned(ties, 8_000_000, "F32", 3), DEFAULTS), 2097152);
  // 12.2M elements on 2 workers: 6103040 per worker x 17 = 103.8 MB > 96 MiB (100.7 MB) with the candidate
  // keys (x 16 alone would fit); 32 MiB chunks would be 6, more than the pool's 4 instances, so 4 held
  // chunks of 745 tiles (3051520).
  assert.equal(chunkElementsFor(planned(ties, 12_200_000, "F32", 3), { ...DEFAULTS, workers: 2 }), 3051520);
});

test("tensors read from picked files (Blobs) take chunks up to the chunk limit, one pass or several", () => {
  const picked: SourceRef = { kind: "blob", blob, name: "picked/model.safetensors" };
  // BF16, 4 inputs + output = 10 bytes per element: 64 MiB / 10 = 6710886.4, 1638 whole tiles = 6709248.
  assert.equal(chunkElementsFor(planned(linear, 20_000_000, "BF16", 4, picked), DEFAULTS), 6709248);
  // TIES, 8M F32 elements: over the resident bound as before, chunked at 64 MiB / 16 = 4194304.
  assert.equal(chunkElementsFor(planned(ties, 8_000_000, "F32", 3, picked), DEFAULTS), 4194304);
  // A smaller --chunk-size still wins: 16 MiB / 10 = 1677721.6, 409 tiles.
  assert.equal(chunkElementsFor(planned(linear, 20_000_000, "BF16", 4, picked), { ...DEFAULTS, chunkBytes: 16 * MiB }), 1675264);
  // Library files (a Blob with its file handle: workers read them through sync access handles) stream at 8 MiB.
  const library = { kind: "blob", blob, name: "library/model.safetensors", handle: {} as FileSystemFileHandle } as SourceRef;
  assert.equal(chunkElementsFor(planned(linear, 20_000_000, "BF16", 4, library), DEFAULTS), 835584);
  // One picked input among files on disk is enough.
  const mixed = planned(linear, 20_000_000, "BF16", 4);
  mixed.inputs[2] = { ...mixed.inputs[2]!, tensor: { ...mixed.inputs[2]!.tensor, source: picked } };
  assert.equal(chunkElementsFor(mixed, DEFAULTS), 6709248);
});

const ROWS = 1200, COLS = 1000, NAME = "big.weight";
let dir: string;
before(async () => {
  dir = await tempDir("ws-stream-");
});
after(async () => removeDir(dir));

function model(seed: number, base?: Float32Array): RefModel {
  const values = Float32Array.from({ length: ROWS * COLS }, (_, i) => (base ? base[i]! + (uniform(seed, i) - 0.5) * 0.02 : uniform(seed, i) * 2 - 1));
  return { config: null, tensors: new Map([[NAME, { dtype: "F32", shape: [ROWS, COLS], values }]]) };
}

test("a 19 MB task_arithmetic tensor merged in three streamed chunks on two workers equals the scalar computation", async () => {
  const base = model(1), a = model(2, base.tensors.get(NAME)!.values), b = model(3, base.tensors.get(NAME)!.values);
  for (const [name, m] of Object.entries({ base, a, b })) await writeModel(join(dir, name), m);
  const recipe = join(dir, "recipe.yml");
  await writeFile(recipe, "merge_method: task_arithmetic\nbase_model: ./base\nmodels:\n  - {model: ./a, parameters: {weight: 1}}\n  - {model: ./b, parameters: {weight: 0.5}}\n");
  const events: MergeEvent[] = [];
  await merge(recipe, { out: join(dir, "out"), workerUrl: WORKER_URL, workers: 2, onProgress: (e) => events.push(e) });
  const plan = events.find((e) => e.type === "plan");
  assert.equal(plan?.type === "plan" && plan.chunkedTensors, 1, "the tensor went through the chunked path");
  const chunkStarts = events.filter((e) => e.type === "tensor-start");
  assert.deepEqual(chunkStarts.map((e) => e.type === "tensor-start" && e.chunks), [3], "1.2M elements in chunks of 524288");

  const got = decodeFloat("F32", (await readOutput(join(dir, "out"))).tensors.get(NAME)!.data);
  const [vb, va, vbb] = [base, a, b].map((m) => m.tensors.get(NAME)!.values!) as [Float32Array, Float32Array, Float32Array];
  assert.equal(got.length, ROWS * COLS);
  let mismatches = 0, first = -1;
  for (let i = 0; i < got.length; i++) {
    const pa = Math.fround(Math.fround(va[i]! - vb[i]!) * 1);
    const pb = Math.fround(Math.fround(vbb[i]! - vb[i]!) * 0.5);
    const want = Math.fround(vb[i]! + Math.fround(pa + pb));
    if (!Object.is(got[i], want)) { mismatches++; if (first < 0) first = i; }
  }
  assert.equal(mismatches, 0, `first mismatch at element ${first} (chunk ${Math.floor(first / 524288)})`);
});
