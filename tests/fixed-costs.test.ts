// Issue 12, fixed costs: a merge small enough runs in this thread (no worker started) when the worker
// count is left to weightsoup, writing what the reference and any number of workers write; a larger one
// starts workers; the kernels compile once per thread and instantiate from the compiled module; a merge
// leaves nothing running behind it; --profile (WEIGHTSOUP_PROFILE) prints the merge's timeline.
// The built CLI loads the code of the commands a merge does not run only when needed, and the kernels from
// the .wasm files beside it (its embedded copies only without them).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFile, mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
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

/**
 * The files the CLI loads whatever its command: the static imports of dist/cli.js, transitively (./name.js
 * in the same folder), and the command dispatcher it imports at start-up (once the compile cache is on).
 */
async function startupClosure(file: string): Promise<string[]> {
  const seen = [basename(file)];
  for (let i = 0; i < seen.length; i++) {
    const text = await readFile(join(dirname(file), seen[i]!), "utf8");
    for (const m of text.matchAll(/^(?:import|export)\s[^;]*?from\s*"\.\/([^"]+)"|^import\s*"\.\/([^"]+)"|^var \{ main \} = await import\("\.\/([^"]+)"\)/gm)) {
      const name = m[1] ?? m[2] ?? m[3]!;
      if (!seen.includes(name)) seen.push(name);
    }
  }
  return seen;
}

describe("the CLI loads only what its command needs", { timeout: 120_000 }, () => {
  const LAZY = ["align", "barrier", "eval", "generate", "extract-lora", "path", "soup", "diagnose", "sweep"] as const;

  test("starting the CLI parses neither wasm build nor the code of the commands a merge does not run", async () => {
    const loaded = await startupClosure(CLI);
    assert.ok(loaded.some((f) => f.startsWith("cli-main-")), `dist/cli.js imports the command dispatcher: ${loaded.join(", ")}`);
    for (const file of loaded) {
      const text = await readFile(join(dirname(CLI), file), "utf8");
      assert.ok(!text.includes("AGFzbQ"), `${file} (loaded at start-up) embeds a wasm build (base64 of "\\0asm")`);
      assert.doesNotMatch(file, /^cli-(align|eval|lora|measure|diagnose|sweep)-/, `${file} is loaded at start-up`);
    }
    // Each build is there, in a chunk of its own, imported when a thread first compiles it.
    const chunks = (await readdir(dirname(CLI))).filter((f) => /^cli-.*\.js$/.test(f) && !loaded.includes(f));
    const embedding = [];
    for (const f of chunks) if ((await readFile(join(dirname(CLI), f), "utf8")).includes("AGFzbQ")) embedding.push(f);
    assert.equal(embedding.length, 2, `the plain and relaxed builds, each in a chunk of its own: ${embedding.join(", ")}`);
  });

  for (const command of LAZY) {
    test(`${command}, loaded when it runs, works from the built CLI (--help, and a usage error exits 2)`, () => {
      const help = spawnSync(process.execPath, [CLI, command, "--help"], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
      assert.equal(help.status, 0, help.stderr);
      assert.ok(help.stdout.startsWith(`usage: weightsoup ${command} `), help.stdout);
      const bad = spawnSync(process.execPath, [CLI, command, "--no-such-flag"], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
      assert.equal(bad.status, 2, bad.stderr);
      assert.match(bad.stderr, new RegExp(`^weightsoup: .*--no-such-flag[^]*usage: weightsoup ${command} `, "m"));
    });
  }

  test("with no writable folder for the compile cache (Node >= 22.1 keeps one in os.tmpdir()), the CLI runs as without it", async () => {
    const file = join(root, "a-file");
    await writeFile(file, "not a folder");
    const env = { ...process.env, TMPDIR: join(file, "cache"), NODE_COMPILE_CACHE: undefined };
    const out = join(root, "no-cache-folder");
    const r = spawnSync(process.execPath, [CLI, "merge", recipe, out, "--quiet", "--json"], { encoding: "utf8", env, timeout: 60_000, killSignal: "SIGKILL" });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, "", "nothing about the cache on stderr");
    assert.equal((JSON.parse(r.stdout) as { tensors: number }).tensors, (await readOutput(out)).tensors.size);
  });

  test("the CLI compiles the kernels from the kernels.wasm beside it, and from its embedded copy where there is none", async () => {
    const lone = join(root, "cli-without-wasm");
    await mkdir(lone);
    for (const file of (await readdir(dirname(CLI))).filter((f) => /^(cli(-.*)?|worker)\.js$/.test(f))) await copyFile(join(dirname(CLI), file), join(lone, file));
    const mergeWith = (cli: string, out: string) => spawnSync(process.execPath, [cli, "merge", recipe, out, "--quiet"], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
    const beside = mergeWith(CLI, join(root, "wasm-beside")), embedded = mergeWith(join(lone, "cli.js"), join(root, "wasm-embedded"));
    assert.equal(beside.status, 0, beside.stderr);
    assert.equal(embedded.status, 0, embedded.stderr);
    const [a, b] = [await weights(join(root, "wasm-beside")), await weights(join(root, "wasm-embedded"))];
    assert.deepEqual([...a.keys()], [...b.keys()]);
    for (const [file, bytes] of a) assert.ok(bytes.equals(b.get(file)!), `${file} differs between the file beside and the embedded copy`);
    // The file beside is the one compiled: one that is not wasm fails the merge (a broken install).
    await writeFile(join(lone, "kernels.wasm"), "not wasm");
    const broken = mergeWith(join(lone, "cli.js"), join(root, "wasm-broken"));
    assert.equal(broken.status, 1);
    assert.match(broken.stderr, /WebAssembly\.compile\(\): expected magic word/);
  });

  test("the CLI exits as soon as its command is done, with all of its output through a pipe and its exit status", () => {
    const r = spawnSync(process.execPath, [CLI, "inspect", join(root, "ties", "a"), "--json"], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { tensors: unknown[] };
    assert.equal(report.tensors.length, models.a!.tensors.size, "every tensor of the model is listed");
    const failed = spawnSync(process.execPath, [CLI, "merge", join(root, "no-such-recipe.yml"), join(root, "never"), "--quiet"], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
    assert.equal(failed.status, 1, failed.stderr);
    assert.match(failed.stderr, /\[E_MODEL_NOT_FOUND\]/);
  });
});
