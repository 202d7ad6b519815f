// abortable(): how a library call (evaluate, generate, ...) ends under its AbortSignal. Whatever the
// call fails with once the signal is aborted becomes one AbortError caused by the signal's reason; other
// failures pass through as they are; the pool it started is aborted with the signal, and the call leaves
// no listener on the signal behind.
import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { describe, test } from "node:test";
import { abortable } from "../src/api/abortable";
import { AbortError, DataError } from "../src/errors";
import { JOBS_PER_WORKER } from "../src/merge/engine";
import { WORKER_URL } from "./helpers/fixtures";

const POOL = { size: 1, workerUrl: WORKER_URL, memoryBudget: 16 * 2 ** 20, jobsPerWorker: JOBS_PER_WORKER };

describe("abortable", () => {
  test("a call that succeeds resolves with its value", async () => {
    assert.equal(await abortable(new AbortController().signal, async () => 42), 42);
    assert.equal(await abortable(undefined, async () => "no signal"), "no signal");
  });

  test("a failure after the signal aborted becomes an AbortError caused by the signal's reason", async () => {
    const controller = new AbortController();
    const reason = new Error("the person pressed Cancel");
    await assert.rejects(abortable(controller.signal, async () => {
      controller.abort(reason);
      throw new TypeError("a read cut short");
    }), (e: unknown) => e instanceof AbortError && e.code === "E_ABORTED" && e.name === "AbortError" && e.cause === reason);
  });

  test("an AbortError and a failure without an abort pass through as they are", async () => {
    const own = new AbortError("already an AbortError");
    const controller = new AbortController();
    await assert.rejects(abortable(controller.signal, async () => {
      controller.abort();
      throw own;
    }), (e: unknown) => e === own);
    const failure = new DataError("E_DATA", "bad input", {});
    await assert.rejects(abortable(new AbortController().signal, async () => { throw failure; }), (e: unknown) => e === failure);
    await assert.rejects(abortable(undefined, async () => { throw failure; }), (e: unknown) => e === failure);
  });

  test("a signal aborted before the pool starts refuses to start it", async () => {
    const controller = new AbortController();
    controller.abort();
    let started = false;
    await assert.rejects(abortable(controller.signal, async (slot) => {
      await slot.start(POOL);
      started = true;
    }), (e: unknown) => e instanceof AbortError);
    assert.equal(started, false);
  });

  test("a signal aborted while the pool starts: the start rejects, and the pool is terminated", async () => {
    // Found by an audit: the abort came while the workers started, found no pool to abort, and
    // generate() went on to produce every token.
    const controller = new AbortController();
    let started = false;
    const call = abortable(controller.signal, async (slot) => {
      const starting = slot.start(POOL);
      controller.abort();
      await starting;
      started = true;
    });
    await assert.rejects(call, (e: unknown) => e instanceof AbortError);
    assert.equal(started, false, "the call did not go on with the pool");
  });

  test("aborting the signal aborts a running pool job, and no listener stays on the signal", async () => {
    const controller = new AbortController();
    let poolSeen = false;
    await assert.rejects(abortable(controller.signal, async (slot) => {
      assert.equal(slot.pool, undefined, "no pool before start");
      const pool = await slot.start(POOL);
      poolSeen = slot.pool === pool;
      assert.equal(getEventListeners(controller.signal, "abort").length, 1, "the pool listens once started");
      // A job that only the pool's abort can end.
      const hanging = pool.on(0, () => new Promise<never>(() => undefined));
      controller.abort();
      await hanging;
    }), (e: unknown) => e instanceof AbortError && e.code === "E_ABORTED");
    assert.ok(poolSeen, "slot.pool is the started pool");
    assert.equal(getEventListeners(controller.signal, "abort").length, 0);
  });

  test("a call that ends normally removes its listener too", async () => {
    const controller = new AbortController();
    await abortable(controller.signal, async (slot) => {
      await slot.start(POOL);
    });
    assert.equal(getEventListeners(controller.signal, "abort").length, 0);
  });
});

describe("every library call under an aborted signal", () => {
  test("rejects with AbortError (E_ABORTED), not the signal's DOMException, and writes nothing", async () => {
    // Found by an audit: plan, align and extractLora rejected with the DOMException itself.
    const { writeLlamaModel } = await import("../src/example/models");
    const ws = await import("../src/node");
    const { readdir, writeFile } = await import("node:fs/promises");
    const { join } = await import("node:path");
    const { removeDir, tempDir } = await import("./helpers/fixtures");
    const dir = await tempDir();
    try {
      const shape = { vocab: 600, hidden: 32, intermediate: 64, layers: 1, heads: 4, kvHeads: 2 };
      await writeLlamaModel(join(dir, "base"), shape);
      await writeLlamaModel(join(dir, "tuned"), shape, { name: "tuned", seed: 3, touches: ["mlp"], strength: 0.05, background: 0.005 });
      const recipe = join(dir, "recipe.yml");
      await writeFile(recipe, "merge_method: task_arithmetic\nbase_model: ./base\nmodels:\n  - {model: ./tuned, parameters: {weight: 0.5}}\n");
      const controller = new AbortController();
      controller.abort();
      const signal = controller.signal, text = "hello world, hello world, hello world";
      const calls: Record<string, () => Promise<unknown>> = {
        plan: () => ws.plan(recipe, { signal }),
        merge: () => ws.merge(recipe, { out: join(dir, "out-merge"), signal, workerUrl: WORKER_URL }),
        evaluate: () => ws.evaluate([join(dir, "base")], { text, signal, workerUrl: WORKER_URL }),
        generate: () => ws.generate(join(dir, "base"), { prompt: "hello", maxNewTokens: 2, signal, workerUrl: WORKER_URL }),
        sweep: () => ws.sweep(recipe, ["models[0].parameters.weight=0.1,0.2"], { text, signal, workerUrl: WORKER_URL }),
        diagnose: () => ws.diagnose(recipe, { signal, workerUrl: WORKER_URL }),
        lossPath: () => ws.lossPath(join(dir, "base"), join(dir, "tuned"), { text, points: 3, signal, workerUrl: WORKER_URL }),
        greedySoup: () => ws.greedySoup([join(dir, "base"), join(dir, "tuned")], { text, signal, workerUrl: WORKER_URL }),
        align: () => ws.align(join(dir, "base"), join(dir, "tuned"), { out: join(dir, "out-align"), signal, workerUrl: WORKER_URL }),
        extractLora: () => ws.extractLora(join(dir, "tuned"), join(dir, "base"), { out: join(dir, "out-lora"), rank: 2, signal }),
      };
      for (const [name, call] of Object.entries(calls)) {
        await assert.rejects(call(), (e: unknown) => {
          assert.ok(e instanceof AbortError, `${name}: ${String(e)}`);
          assert.equal(e.code, "E_ABORTED");
          return true;
        });
      }
      assert.deepEqual((await readdir(dir)).sort(), ["base", "recipe.yml", "tuned"], "no output, staging folder or lock is left");
    } finally {
      await removeDir(dir);
    }
  });
});
