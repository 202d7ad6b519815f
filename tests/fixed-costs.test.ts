// Issue 12, fixed costs: a merge small enough runs in this thread (no worker started) when the worker
// count is left to weightsoup, writing what the reference and any number of workers write; a larger one
// starts workers; the kernels compile once per thread and instantiate from the compiled module; a merge
// leaves nothing running behind it; --profile (WEIGHTSOUP_PROFILE) prints the merge's timeline.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { merge } from "../src/node";
import { IN_THREAD_BYTES } from "../src/api/merge";
import { compileKernels, loadKernels } from "../src/kernels/kernels";
import { DTYPE_BF16 } from "../assembly/layout";
import { WeightsoupError } from "../src/errors";
import type { MergeEvent } from "../src/events";
import { referenceMerge, type RefModel } from "./reference/merge";
import { baseModel, CLI, compareTensor, fineTune, readOutput, removeDir, tempDir, WORKER_URL, writeCase, type Shape } from "./helpers/fixtures";

/** A worker script that does not exist: a merge that starts a worker fails with E_WORKER. */
const NO_WORKER = new URL("file:///nonexistent/weightsoup-worker.js");
// Tensors of 40 x 512 elements: five 4096-element chunks at the smallest chunk size.
const SHAPE: Shape = { vocab: 512, hidden: 40, intermediate: 512, layers: 2, heads: 4, kvHeads: 2 };
const TIES = {
  merge_method: "ties", base_model: "./base",
  models: [{ model: "./a", parameters: { weight: 1, density: 0.3 } }, { model: "./b", parameters: { weight: 0.5, density: 0.6 } }],
  parameters: { normalize: true },
};

let root: string, recipe: string;
const models: Record<string, RefModel> = {};
before(async () => {
  root = await tempDir();
  models.base = baseModel(71, "BF16", SHAPE);
  models.a = fineTune(models.base, 72, 0.05, { quantum: 2 ** -8 }); // many equal |tau|: ties decided by counts
  models.b = fineTune(models.base, 73, 0.05);
  recipe = await writeCase(join(root, "ties"), models, TIES);
});
after(async () => { await removeDir(root); });

async function weights(out: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const f of (await readdir(out)).filter((f) => f.endsWith(".safetensors"))) files.set(f, await readFile(join(out, f)));
  return files;
}

describe("a small merge runs in this thread", { timeout: 120_000 }, () => {
  test("with the worker count left to weightsoup: 0 workers in the plan event and the summary, no worker script loaded", async () => {
    const events: MergeEvent[] = [];
    const summary = await merge(recipe, { out: join(root, "in-thread"), workerUrl: NO_WORKER, onProgress: (e) => events.push(e) });
    assert.equal(summary.workers, 0);
    const plan = events.find((e): e is Extract<MergeEvent, { type: "plan" }> => e.type === "plan");
    assert.equal(plan?.workers, 0);
    assert.ok(summary.inputBytes + summary.outputBytes <= IN_THREAD_BYTES, "the fixture is below the threshold");
  });

  test("it writes the reference's numbers (bf16 within 1 ulp)", async () => {
    const out = join(root, "in-thread-reference");
    await merge(recipe, { out, workerUrl: NO_WORKER });
    const expected = referenceMerge(TIES, new Map(Object.entries(models).map(([k, v]) => [`./${k}`, v])));
    const ours = await readOutput(out);
    assert.deepEqual([...ours.tensors.keys()].sort(), [...expected.tensors.keys()].sort());
    for (const [name, ref] of expected.tensors) {
      const { maxUlp, at } = compareTensor(ours.tensors.get(name)!, ref);
      assert.ok(maxUlp <= 1, `${name}: ${maxUlp} ulps from the reference at ${at}`);
    }
  });

  test("its bytes are those of 1 and 3 workers, whole and in 4096-element chunks", async () => {
    const reference = join(root, "in-thread-whole");
    assert.equal((await merge(recipe, { out: reference, workerUrl: NO_WORKER })).workers, 0);
    const inThread = await weights(reference);
    const runs: [string, { workers?: number; chunkElements?: number }][] = [
      ["in this thread, chunked", { chunkElements: 4096 }], ["1 worker", { workers: 1 }], ["3 workers", { workers: 3 }], ["3 workers, chunked", { workers: 3, chunkElements: 4096 }],
    ];
    for (const [i, [label, options]] of runs.entries()) {
      const out = join(root, `compared-${i}`);
      const summary = await merge(recipe, { out, workerUrl: options.workers ? WORKER_URL : NO_WORKER, ...options });
      assert.equal(summary.workers, options.workers ?? 0);
      const got = await weights(out);
      assert.deepEqual([...got.keys()], [...inThread.keys()]);
      for (const [file, bytes] of inThread) assert.ok(bytes.equals(got.get(file)!), `${file} differs in this thread and with ${label}`);
    }
  });

  test("a merge above IN_THREAD_BYTES starts workers (a missing worker script is an E_WORKER)", async () => {
    // Two F32 models of 5.9 M parameters each: inputs and output about 71 MB, above the 64 MiB threshold.
    const shape: Shape = { vocab: 16384, hidden: 160, intermediate: 512, layers: 2, heads: 4, kvHeads: 2 };
    const base = baseModel(81, "F32", shape);
    const big = await writeCase(join(root, "big"), { base, a: fineTune(base, 82, 0.05) }, {
      merge_method: "linear", models: [{ model: "./base", parameters: { weight: 0.5 } }, { model: "./a", parameters: { weight: 0.5 } }],
    });
    await assert.rejects(merge(big, { out: join(root, "big-out"), workerUrl: NO_WORKER }), (e: unknown) => e instanceof WeightsoupError && e.code === "E_WORKER");
    const summary = await merge(big, { out: join(root, "big-out"), workerUrl: WORKER_URL });
    assert.ok(summary.inputBytes + summary.outputBytes > IN_THREAD_BYTES, `the case is above the threshold (${summary.inputBytes + summary.outputBytes} bytes)`);
    assert.ok(summary.workers >= 1);
  });

  test("a merge leaves no worker, port or timer running, in this thread or with workers", async () => {
    const running = () => process.getActiveResourcesInfo().filter((r) => r !== "TTYWrap" && r !== "FSReqPromise");
    const before = running();
    await merge(recipe, { out: join(root, "leftovers-in-thread") });
    assert.deepEqual(running(), before, "after a merge in this thread");
    await merge(recipe, { out: join(root, "leftovers-workers"), workers: 2, workerUrl: WORKER_URL });
    assert.deepEqual(running(), before, "after a merge with 2 workers");
  });
});

describe("kernels compile once per thread", () => {
  test("compileKernels keeps one module per build, and loadKernels instantiates it with its own memory", async () => {
    const first = await compileKernels({ simd: "plain" });
    assert.ok((await compileKernels({ simd: "plain" })).module === first.module, "the same module, not compiled again");
    const a = await loadKernels(16 << 20, first), b = await loadKernels(16 << 20, first);
    assert.equal(a.simd, "plain");
    assert.notEqual(a.exports.memory, b.exports.memory, "each instance has its own memory");
    // Both instances compute: float32 -> bf16 -> float32 of a value bf16 holds exactly.
    for (const k of [a, b]) {
      const src = k.arena.alloc(16), mid = k.arena.alloc(16), dst = k.arena.alloc(16);
      k.arena.f32(src, 4).set([1.5, -2, 0.25, 3]);
      k.exports.encode(src, DTYPE_BF16, mid, 4);
      k.exports.decode(mid, DTYPE_BF16, dst, 4);
      assert.deepEqual([...k.arena.f32(dst, 4)], [1.5, -2, 0.25, 3]);
    }
  });
});

describe("--profile and WEIGHTSOUP_PROFILE", { timeout: 120_000 }, () => {
  const run = (args: string[], env: NodeJS.ProcessEnv) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", env, timeout: 60_000, killSignal: "SIGKILL" });
  const { WEIGHTSOUP_PROFILE: _, ...quiet } = process.env;

  test("merge --profile prints the timeline on stderr: start-up, planning, kernels, tensors, commit", () => {
    const r = run(["merge", recipe, join(root, "profiled"), "--quiet", "--profile"], quiet);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /^profile merge: [\d.]+ s wall/m);
    for (const phase of ["start Node, load weightsoup", "read headers, plan", "load the kernels in this thread", "merge the tensors", "stop workers, other files, commit"]) {
      assert.match(r.stderr, new RegExp(`^  ${phase.replace(/[(),]/g, "\\$&")} +[\\d.]+ +[\\d.]+ +[\\d.]+ s  1$`, "m"), `${phase} in\n${r.stderr}`);
    }
  });

  test("WEIGHTSOUP_PROFILE=1 prints the same; neither prints nothing", async () => {
    const on = run(["merge", recipe, join(root, "profiled-env"), "--quiet", "--workers", "1"], { ...quiet, WEIGHTSOUP_PROFILE: "1" });
    assert.equal(on.status, 0, on.stderr);
    assert.match(on.stderr, /^profile merge: /m);
    assert.match(on.stderr, /^  workers ready \(1\) /m);
    const off = run(["merge", recipe, join(root, "not-profiled"), "--quiet"], quiet);
    assert.equal(off.status, 0, off.stderr);
    assert.doesNotMatch(off.stderr, /profile/);
  });
});
