// The library's functions called from plain JavaScript: an argument or option of the wrong kind (or
// none at all) is an OptionError naming it before any work, not a TypeError from deep inside; a callback
// that throws is the caller's error, reported (E_OPTION, the throw as its cause), never a call that
// waits forever; ids outside a vocabulary are a DataError. Found by the stop 39 library audit.
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { DataError, OptionError, WeightsoupError } from "../src/errors";
import { align, diagnose, evaluate, extractLora, generate, greedySoup, lossPath, plan } from "../src/node";
import { decoderModel, writeDecoderModel } from "./helpers/decoder-models";
import { removeDir, tempDir, WORKER_URL } from "./helpers/fixtures";

let root: string, a: string, b: string;
before(async () => {
  root = await tempDir("ws-api-args-");
  [a, b] = [join(root, "a"), join(root, "b")];
  await writeDecoderModel(a, decoderModel("llama-gqa-untied", { seed: 1 }));
  await writeDecoderModel(b, decoderModel("llama-gqa-untied", { seed: 2 }));
});
after(async () => removeDir(root));

/** `call` rejects with an OptionError E_OPTION whose message matches `pattern`. */
async function refused(call: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(call(), (e: unknown) => {
    assert.ok(e instanceof OptionError && e.code === "E_OPTION", `expected E_OPTION, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

/** Settles within `seconds`, or fails saying it hung. */
function settles<T>(promise: Promise<T>, seconds: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`still pending after ${seconds} s`)), seconds * 1000); });
  return Promise.race([promise, hung]).finally(() => clearTimeout(timer));
}

test("generate(): an onToken that throws rejects with E_OPTION (its throw the cause), in a fresh process's first call and after one that ran; it waited forever", async () => {
  const boom = new Error("tok-boom");
  const call = () => settles(generate(a, { ids: [3, 14, 15], maxNewTokens: 6, workerUrl: WORKER_URL, onToken: () => { throw boom; } }), 60);
  for (const round of ["first", "after a call that ran"]) {
    await assert.rejects(call(), (e: unknown) => {
      assert.ok(e instanceof OptionError && e.code === "E_OPTION", `${round}: ${String(e)}`);
      assert.match(e.message, /^option onToken threw: tok-boom$/);
      assert.equal((e as Error & { cause?: unknown }).cause, boom);
      return true;
    });
    if (round === "first") assert.equal((await generate(a, { ids: [3, 14, 15], maxNewTokens: 3, workerUrl: WORKER_URL })).ids.length, 3);
  }
});

test("options of the wrong kind, or none, are E_OPTION naming them before any work; nothing is written", async () => {
  const notASignal = { signal: 5 as unknown as AbortSignal };
  await refused(() => generate(a, undefined as never), /^generate: the options must be an object, got undefined/);
  await refused(() => lossPath(a, b, undefined as never), /^lossPath: the options must be an object/);
  await refused(() => greedySoup([a, b], undefined as never), /^greedySoup: the options must be an object/);
  await refused(() => align(a, b, undefined as never), /^align: the options must be an object/);
  await refused(() => greedySoup("x" as never, { text: "hello" }), /^greedySoup: the models must be an array, got "x"/);
  await refused(() => generate(a, { ids: [1], ...notASignal }), /^generate: option signal must be an AbortSignal, got 5/);
  await refused(() => plan(join(root, "r.yml"), notASignal), /^plan: option signal must be an AbortSignal/);
  await refused(() => diagnose(join(root, "r.yml"), notASignal), /^diagnose: option signal must be an AbortSignal/);
  await refused(() => align(a, b, { out: join(root, "aligned"), ...notASignal }), /^align: option signal must be an AbortSignal/);
  await refused(() => align(a, b, { out: join(root, "aligned"), onGroup: 5 as never }), /^option onGroup must be a function, got 5/);
  await refused(() => extractLora(a, b, { out: join(root, "lora"), rank: 2, ...notASignal }), /^extractLora: option signal must be an AbortSignal/);
  await refused(() => lossPath(a, b, { ids: [1, 2, 3], slerp: "yes" as never }), /^lossPath: option slerp must be true or false, got "yes"/);
  await refused(() => generate(a, { ids: "abc" as never }), /^generate: option ids must be an array, got "abc"/);
  // out: 5 was found only after every ingredient had been evaluated.
  await refused(() => greedySoup([a, b], { ids: [1, 2, 3, 4], out: 5 as never, workerUrl: WORKER_URL }), /^greedySoup: option out must be a folder path or an OutputFolder, got 5/);
  assert.deepEqual((await readdir(root)).sort(), ["a", "b"], "nothing written");
});

test("evaluate(): an id outside the vocabulary is a DataError, as DataError's documentation says", async () => {
  await assert.rejects(evaluate([a], { ids: [1, 10_000, 3], workers: 1, workerUrl: WORKER_URL }), (e: unknown) => {
    assert.ok(e instanceof DataError && e instanceof WeightsoupError && e.code === "E_DATA", String(e));
    assert.match(e.message, /token id 10000 is outside its vocabulary/);
    return true;
  });
});
