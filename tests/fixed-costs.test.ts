// Issue 12, fixed costs: a merge small enough runs in this thread (no worker started) when the worker
// count is left to weightsoup, writing what the reference and any number of workers write; one with more
// work (bytes over its method's rate, so a heavier method sooner) starts workers; the kernels compile once per thread and instantiate from the compiled module; a merge
// leaves nothing running behind it; --profile (WEIGHTSOUP_PROFILE) prints the merge's timeline.
// The built CLI loads the code of the commands a merge does not run only when needed, and the kernels from
// the .wasm files beside it (its embedded copies only without them).
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { appendFile, chmod, copyFile, mkdir, readFile, readdir, readlink, stat, symlink, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { merge } from "../src/node";
import { compileKernels, loadKernels } from "../src/kernels/kernels";
import { DTYPE_BF16 } from "../assembly/layout";
import { WeightsoupError } from "../src/errors";
import type { MergeEvent } from "../src/events";
import { EXAMPLE_SKILLS, writeLlamaModel } from "../src/example/models";
import exampleRecipe from "../src/example/recipe.yml";
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
    // At the ties rate (2.0 GB/s of input, src/ledger/estimate.ts), 0.1 s of work is 200 MB.
    assert.ok(summary.inputBytes < 20e6, `the fixture (${summary.inputBytes} bytes) is far below the threshold`);
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

  test("a heavy method starts workers where a light one on the same models runs in this thread (a missing worker script is an E_WORKER)", async () => {
    // Three F32 models of 5.9 M parameters each: 71 MB of inputs. At the measured rates (src/ledger/estimate.ts)
    // della's tensors take 71 MB / 0.53 GB/s = 0.13 s, above the 0.1 s that pays for workers; linear's
    // 71 MB / 7.8 GB/s = 0.009 s. (Until stop 36 both started workers: inputs and output above 64 MiB.)
    const shape: Shape = { vocab: 16384, hidden: 160, intermediate: 512, layers: 2, heads: 4, kvHeads: 2 };
    const base = baseModel(81, "F32", shape);
    const three = { base, a: fineTune(base, 82, 0.05), b: fineTune(base, 83, 0.05) };
    const della = await writeCase(join(root, "della"), three, {
      merge_method: "della", base_model: "./base", models: ["a", "b"].map((m) => ({ model: `./${m}`, parameters: { weight: 1, density: 0.5, epsilon: 0.1 } })),
    });
    await assert.rejects(merge(della, { out: join(root, "della-out"), workerUrl: NO_WORKER }), (e: unknown) => e instanceof WeightsoupError && e.code === "E_WORKER");
    const summary = await merge(della, { out: join(root, "della-out"), workerUrl: WORKER_URL });
    assert.ok(summary.inputBytes > 70e6, `the case reads ${summary.inputBytes} bytes`);
    assert.ok(summary.workers >= 1);
    const linear = await writeCase(join(root, "linear"), three, {
      merge_method: "linear", models: ["base", "a", "b"].map((m) => ({ model: `./${m}`, parameters: { weight: 1 } })),
    });
    const inThread = await merge(linear, { out: join(root, "linear-out"), workerUrl: NO_WORKER });
    assert.equal(inThread.workers, 0);
    assert.equal(inThread.inputBytes, summary.inputBytes);
  });

  test("a merge leaves no worker, port or timer running, in this thread or with workers", async () => {
    const running = () => process.getActiveResourcesInfo().filter((r) => r !== "TTYWrap" && r !== "FSReqPromise");
    const before = running();
    await merge(recipe, { out: join(root, "leftovers-in-thread") });
    assert.deepEqual(running(), before, "after a merge in this thread");
    await merge(recipe, { out: join(root, "leftovers-workers"), workers: 2, workerUrl: WORKER_URL });
    assert.deepEqual(running(), before, "after a merge with 2 workers");
  });

  test("a merge in this thread aborted mid-way leaves no file open (the job in flight finishes before the files close)", async () => {
    // Found by an audit: the job running when the pool was aborted went on, opened the staging output
    // after the host had closed its files, and left it open (closed only by garbage collection). The
    // example's recipe on four 10 MB models (in this thread: little work), as the audit ran it.
    const dir = join(root, "abort-in-thread");
    const shape = { vocab: 4096, hidden: 256, intermediate: 512, layers: 4, heads: 4, kvHeads: 4 };
    await writeLlamaModel(join(dir, "base"), shape);
    for (const skill of EXAMPLE_SKILLS) await writeLlamaModel(join(dir, skill.name), shape, skill);
    await writeFile(join(dir, "recipe.yml"), exampleRecipe);
    const open = async () => {
      const links = await Promise.all((await readdir("/proc/self/fd")).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => "")));
      return links.filter((l) => l.startsWith(dir));
    };
    for (const k of [5, 10, 20, 30]) {
      const controller = new AbortController();
      let started = 0;
      const run = merge(join(dir, "recipe.yml"), {
        out: join(dir, `aborted-${k}`), workerUrl: NO_WORKER, signal: controller.signal,
        onProgress: (e) => { if (e.type === "tensor-start" && ++started === k) controller.abort(); },
      });
      await assert.rejects(run, (e: unknown) => e instanceof WeightsoupError && e.code === "E_ABORTED");
      // Time for a job still running to reach its write (with the fix, none is left running).
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(await open(), [], `aborted at tensor ${k}: no file of the fixture is open`);
    }
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

  test("a command that times no phases (inspect, plan) still prints its start-up and its own time, once; merge prints its timeline only (found by the stop 38 README audit: nothing)", () => {
    for (const args of [["inspect", recipe.replace(/recipe\.yml$/, "base")], ["plan", recipe]]) {
      const r = run([...args, "--profile"], quiet);
      assert.equal(r.status, 0, r.stderr);
      const lines = r.stderr.split("\n").filter((l) => l.startsWith("profile "));
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, new RegExp(`^profile ${args[0]}: [\\d.]+ s after this thread started$`));
      assert.match(r.stderr, /^  start Node, load weightsoup +[\d.]+ s\n  the command \(no phases timed\) +[\d.]+ s$/m);
    }
    const merged = run(["merge", recipe, join(root, "profiled-once"), "--quiet", "--profile"], quiet);
    assert.equal(merged.stderr.split("\n").filter((l) => l.startsWith("profile ")).length, 1, merged.stderr);
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

describe("the built CLI", { timeout: 120_000 }, () => {
  const LAZY = ["align", "barrier", "eval", "generate", "extract-lora", "path", "soup", "diagnose", "sweep"] as const;

  test("dist/cli.cjs is a small entry (no wasm build, no command's code): the commands are in the script beside it, the wasm builds in scripts of their own", async () => {
    const entry = await readFile(CLI, "utf8"), script = await readFile(join(dirname(CLI), "cli-script.js"), "utf8");
    assert.ok(!entry.includes("AGFzbQ"), "dist/cli.cjs embeds a wasm build (base64 of \"\\0asm\")");
    assert.ok(!entry.includes("weightsoup merge RECIPE.yml"), "dist/cli.cjs holds command code");
    assert.ok(script.includes("weightsoup merge RECIPE.yml"), "the script holds the commands");
    assert.ok(!script.includes("AGFzbQ"), "the script embeds a wasm build");
    for (const file of ["cli-embedded.js", "cli-embedded-relaxed.js"]) assert.ok((await readFile(join(dirname(CLI), file), "utf8")).includes("AGFzbQ"), `${file} holds its build`);
  });

  test("the CLI's scripts are ASCII (the entry reads them as latin1) and each is one function expression", async () => {
    for (const file of ["cli-script.js", "cli-embedded.js", "cli-embedded-relaxed.js"]) {
      const bytes = await readFile(join(dirname(CLI), file));
      const at = bytes.findIndex((b) => b > 0x7f);
      assert.equal(at, -1, `${file}: a byte above 0x7f at ${at}`);
      const text = bytes.toString("latin1");
      assert.ok(text.startsWith("(function (exports, require, module, weightsoupScriptUrl) {") && text.trimEnd().endsWith("})"), `${file} is not wrapped`);
    }
  });

  for (const command of LAZY) {
    test(`${command} works from the built CLI (--help, and a usage error exits 2)`, () => {
      const help = spawnSync(process.execPath, [CLI, command, "--help"], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
      assert.equal(help.status, 0, help.stderr);
      assert.ok(help.stdout.startsWith(`usage: weightsoup ${command} `), help.stdout);
      const bad = spawnSync(process.execPath, [CLI, command, "--no-such-flag"], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
      assert.equal(bad.status, 2, bad.stderr);
      assert.match(bad.stderr, new RegExp(`^weightsoup: .*--no-such-flag[^]*usage: weightsoup ${command} `, "m"));
    });
  }

  test("the CLI compiles the kernels from the kernels.wasm beside it, and from its embedded copy where there is none", async () => {
    const lone = join(root, "cli-without-wasm");
    await mkdir(lone);
    for (const file of (await readdir(dirname(CLI))).filter((f) => /^(cli-.*\.js|cli\.cjs|worker\.js)$/.test(f))) await copyFile(join(dirname(CLI), file), join(lone, file));
    const mergeWith = (cli: string, out: string) => spawnSync(process.execPath, [cli, "merge", recipe, out, "--quiet"], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
    const beside = mergeWith(CLI, join(root, "wasm-beside")), embedded = mergeWith(join(lone, "cli.cjs"), join(root, "wasm-embedded"));
    assert.equal(beside.status, 0, beside.stderr);
    assert.equal(embedded.status, 0, embedded.stderr);
    const [a, b] = [await weights(join(root, "wasm-beside")), await weights(join(root, "wasm-embedded"))];
    assert.deepEqual([...a.keys()], [...b.keys()]);
    for (const [file, bytes] of a) assert.ok(bytes.equals(b.get(file)!), `${file} differs between the file beside and the embedded copy`);
    // The file beside is the one compiled: one that is not wasm fails the merge (a broken install).
    await writeFile(join(lone, "kernels.wasm"), "not wasm");
    const broken = mergeWith(join(lone, "cli.cjs"), join(root, "wasm-broken"));
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

// The CLI's code cache (src/cli/code-cache.ts): V8's code for the script beside dist/cli.cjs, one entry per
// command in $XDG_CACHE_HOME/weightsoup (each test has a folder of its own). Whatever the cache holds or
// whether it can be written, a merge writes the same bytes and nothing about the cache on stderr.
describe("the CLI's code cache", { timeout: 300_000 }, () => {
  const SCRIPT = join(dirname(CLI), "cli-script.js");
  const cacheEnv = (home: string, extra: NodeJS.ProcessEnv = {}) => {
    const { WEIGHTSOUP_NO_CACHE: _, WEIGHTSOUP_PROFILE: __, ...env } = process.env;
    return { ...env, XDG_CACHE_HOME: home, ...extra };
  };
  let reference: Map<string, Buffer>;
  let runs = 0;
  /** Merges the TIES case with `cli` into a new folder; checks the exit status and a quiet stderr, returns the weights. */
  const mergeWith = async (env: NodeJS.ProcessEnv, cli = CLI) => {
    const out = join(root, `cached-${runs++}`);
    const r = spawnSync(process.execPath, [cli, "merge", recipe, out, "--quiet"], { encoding: "utf8", env, timeout: 60_000, killSignal: "SIGKILL" });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, "", "nothing on stderr");
    return weights(out);
  };
  const sameBytes = (got: Map<string, Buffer>, label: string) => {
    assert.deepEqual([...got.keys()], [...reference.keys()]);
    for (const [file, bytes] of reference) assert.ok(bytes.equals(got.get(file)!), `${file}: ${label} differs from the merge without a cache`);
  };
  /** The cache entries in a folder (name -> bytes), temporary files included. */
  const entries = async (folder: string) => {
    const found = new Map<string, Buffer>();
    for (const f of await readdir(folder).catch(() => [] as string[])) found.set(f, await readFile(join(folder, f)));
    return found;
  };
  /**
   * Whether the entry `cache` is whole ("WSC1", the CRC-32 of the rest, little-endian) and V8 in a fresh
   * Node process takes the rest for `script` (the file's text: a function expression around the module).
   */
  const accepted = (script: string, cache: string) => {
    const check = `const vm = require("node:vm"), fs = require("node:fs"), zlib = require("node:zlib");
      const entry = fs.readFileSync(${JSON.stringify(cache)}), data = entry.subarray(8);
      if (entry.toString("latin1", 0, 4) !== "WSC1" || entry.readUInt32LE(4) !== zlib.crc32(data)) { process.stdout.write("not whole"); process.exit(); }
      const s = new vm.Script(fs.readFileSync(${JSON.stringify(script)}, "utf8"), { filename: ${JSON.stringify(script)}, cachedData: data });
      process.stdout.write(String(!s.cachedDataRejected));`;
    const r = spawnSync(process.execPath, ["-e", check], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout === "true";
  };

  before(async () => {
    const off = join(root, "cache-off");
    reference = await mergeWith(cacheEnv(off, { WEIGHTSOUP_NO_CACHE: "1" }));
  });

  test("WEIGHTSOUP_NO_CACHE=1: nothing is created", async () => {
    await assert.rejects(stat(join(root, "cache-off")), { code: "ENOENT" });
  });

  test("a merge stores its command's cache (a folder 0700, an entry 0600), the next one uses it as it is; same bytes", async () => {
    const home = join(root, "cache-used"), folder = join(home, "weightsoup");
    sameBytes(await mergeWith(cacheEnv(home)), "the first merge");
    const first = await entries(folder);
    assert.equal(first.size, 1, `one entry: ${[...first.keys()].join(", ")}`);
    const [name, bytes] = [...first][0]!;
    assert.match(name, /^merge-.*\.v8cache$/);
    if (process.platform !== "win32") {
      assert.equal((await stat(folder)).mode & 0o777, 0o700);
      assert.equal((await stat(join(folder, name))).mode & 0o777, 0o600);
    }
    assert.ok(accepted(SCRIPT, join(folder, name)), "V8 takes the stored cache for the script");
    const file = await stat(join(folder, name), { bigint: true });
    sameBytes(await mergeWith(cacheEnv(home)), "the merge with the cache");
    const second = await entries(folder);
    assert.deepEqual([...second.keys()], [name], "the same entry, nothing added");
    // Written again, it would be another file (a temporary one renamed over it), if with the same bytes.
    const again = await stat(join(folder, name), { bigint: true });
    assert.ok(second.get(name)!.equals(bytes) && again.ino === file.ino && again.mtimeNs === file.mtimeNs, "the entry was used, not rejected and written again");
  });

  test("a command that fails or prints its help stores nothing", async () => {
    const home = join(root, "cache-failed");
    const help = spawnSync(process.execPath, [CLI, "merge", "--help"], { encoding: "utf8", env: cacheEnv(home) });
    assert.equal(help.status, 0, help.stderr);
    const failed = spawnSync(process.execPath, [CLI, "merge", join(root, "no-such-recipe.yml"), join(root, "never"), "--quiet"], { encoding: "utf8", env: cacheEnv(home) });
    assert.equal(failed.status, 1, failed.stderr);
    assert.equal((await entries(join(home, "weightsoup"))).size, 0);
  });

  test("a corrupt, truncated, empty or damaged entry is the run without it, and is replaced by a good one", async () => {
    const home = join(root, "cache-corrupt"), folder = join(home, "weightsoup");
    await mergeWith(cacheEnv(home));
    const [name, good] = [...await entries(folder)][0]!;
    const flipped = Buffer.from(good);
    flipped[flipped.length >> 1]! ^= 0xff; // V8 does not check its payload in release builds: this one would crash Node
    for (const [label, bad] of [["not a cache", Buffer.from("not a V8 code cache")], ["truncated", good.subarray(0, good.length >> 1)], ["empty", Buffer.alloc(0)], ["with a byte flipped", flipped]] as const) {
      await writeFile(join(folder, name), bad);
      sameBytes(await mergeWith(cacheEnv(home)), `the merge with a cache ${label}`);
      const now = await entries(folder);
      assert.deepEqual([...now.keys()], [name], label);
      assert.ok(!now.get(name)!.equals(bad), `the ${label} entry was replaced`);
      assert.ok(accepted(SCRIPT, join(folder, name)), `V8 takes the entry written after the ${label} one`);
    }
  });

  test("a stale entry (made for another build of the script) is rejected and replaced; a rebuilt script gets a new entry, the old one removed", async () => {
    const home = join(root, "cache-stale"), folder = join(home, "weightsoup");
    const build = join(root, "cli-rebuilt");
    await mkdir(build);
    for (const file of (await readdir(dirname(CLI))).filter((f) => /^(cli-.*\.js|cli\.cjs|worker\.js)$|\.wasm$/.test(f))) await copyFile(join(dirname(CLI), file), join(build, file));
    const cli = join(build, "cli.cjs");
    await mergeWith(cacheEnv(home), cli);
    const [before] = [...(await entries(folder)).keys()];
    // Another build: the same script with a comment more (another length, another file on disk).
    await appendFile(join(build, "cli-script.js"), "\n// another build\n");
    sameBytes(await mergeWith(cacheEnv(home), cli), "the rebuilt script's merge");
    const after = [...(await entries(folder)).keys()];
    assert.equal(after.length, 1, `one entry: ${after.join(", ")}`);
    assert.notEqual(after[0], before, "the rebuilt script has an entry of its own");
    assert.ok(accepted(join(build, "cli-script.js"), join(folder, after[0]!)));
    // The other build's cache under this build's name: V8 rejects it (its source had another length).
    const other = join(root, "cache-stale-other");
    await mergeWith(cacheEnv(other));
    const [otherName] = [...(await entries(join(other, "weightsoup"))).keys()];
    const stale = await readFile(join(folder, after[0]!));
    await writeFile(join(other, "weightsoup", otherName!), stale);
    assert.ok(!accepted(SCRIPT, join(other, "weightsoup", otherName!)), "the stale entry does not fit dist/cli-script.js");
    sameBytes(await mergeWith(cacheEnv(other)), "the merge with a stale entry");
    assert.ok(!(await readFile(join(other, "weightsoup", otherName!))).equals(stale), "the stale entry was replaced");
    assert.ok(accepted(SCRIPT, join(other, "weightsoup", otherName!)), "by one V8 takes");
  });

  test("no folder that can be written (a file in the way): the run without a cache", async () => {
    const file = join(root, "cache-a-file");
    await writeFile(file, "not a folder");
    sameBytes(await mergeWith(cacheEnv(join(file, "home"))), "the merge with no cache folder");
    // Without XDG_CACHE_HOME the folder is in os.tmpdir(): one under a file cannot be created either.
    const { XDG_CACHE_HOME: _, ...env } = cacheEnv(file);
    sameBytes(await mergeWith({ ...env, TMPDIR: join(file, "tmp") }), "the merge with TMPDIR under a file");
  });

  test("a folder others can write to, or a link, is neither read nor written", { skip: process.platform === "win32" || process.getuid?.() === undefined }, async () => {
    const safe = join(root, "cache-safe");
    await mergeWith(cacheEnv(safe));
    const [name] = [...(await entries(join(safe, "weightsoup"))).keys()];
    const planted = Buffer.from("planted: if read, V8 rejects it and the CLI replaces it");
    const open_ = join(root, "cache-open"), folder = join(open_, "weightsoup");
    await mkdir(folder, { recursive: true });
    await chmod(folder, 0o777);
    await writeFile(join(folder, name!), planted);
    sameBytes(await mergeWith(cacheEnv(open_)), "the merge with a folder others can write to");
    assert.deepEqual([...(await entries(folder))], [[name, planted]], "left as it was");
    const linked = join(root, "cache-linked");
    await mkdir(linked);
    await symlink(folder, join(linked, "weightsoup"));
    await chmod(folder, 0o700);
    sameBytes(await mergeWith(cacheEnv(linked)), "the merge with a link as the folder");
    assert.deepEqual([...(await entries(folder))], [[name, planted]], "left as it was, through the link");
  });

  test("two merges racing on an empty cache both succeed, and leave one whole entry V8 takes", async () => {
    const home = join(root, "cache-race"), folder = join(home, "weightsoup");
    const one = (i: number) => new Promise<number | null>((done) => {
      const child = spawn(process.execPath, [CLI, "merge", recipe, join(root, `race-${i}`), "--quiet"], { env: cacheEnv(home), stdio: "ignore" });
      child.on("exit", (code) => done(code));
    });
    for (let round = 0; round < 3; round++) {
      await removeDir(home);
      await Promise.all([0, 1].map((i) => removeDir(join(root, `race-${i}`))));
      assert.deepEqual(await Promise.all([one(0), one(1)]), [0, 0]);
      for (const i of [0, 1]) sameBytes(await weights(join(root, `race-${i}`)), `racing merge ${i}`);
      const left = [...(await entries(folder)).keys()];
      assert.equal(left.length, 1, `one entry and no temporary file: ${left.join(", ")}`);
      assert.ok(accepted(SCRIPT, join(folder, left[0]!)));
    }
  });
});
