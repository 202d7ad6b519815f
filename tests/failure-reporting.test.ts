// How failures reach a person (issue 8, items 10, 11, 23, 27 and the CLI's error format): workers that
// cannot start fail fast with a typed error; a full disk or a read-only file system is an E_IO naming
// the path and the real cause; every command has --help; errors print as `[E_CODE] message` without a
// stack unless --debug; the progress line shows no time left before it means something.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { inspect, merge } from "../src/node";
import { writeExampleFolder } from "../src/example/models";
import { WeightsoupError } from "../src/errors";
import { etaText } from "../src/cli/progress";
import { baseModel, CLI, fineTune, removeDir, tempDir, WORKER_URL, writeCase } from "./helpers/fixtures";

const LIBRARY = new URL("../../dist/index.js", import.meta.url).href;
let root: string, recipe: string;
const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
before(async () => {
  root = await tempDir();
  const base = baseModel(121);
  recipe = await writeCase(join(root, "case"), { base, a: fineTune(base, 122, 0.1), b: fineTune(base, 123, 0.1) }, {
    merge_method: "ties", base_model: "./base",
    models: [{ model: "./a", parameters: { weight: 1, density: 0.5 } }, { model: "./b", parameters: { weight: 1, density: 0.5 } }],
  });
});
after(async () => { await removeDir(root); });

// A merge this small runs in the calling thread unless the worker count is given: these set it.
describe("workers that cannot start", { timeout: 60_000 }, () => {
  test("a missing worker script rejects with E_WORKER naming it, and writes nothing", async () => {
    const out = join(root, "no-worker");
    const url = new URL("file:///nonexistent/weightsoup-worker.js");
    await assert.rejects(merge(recipe, { out, workers: 1, workerUrl: url }), (e: unknown) => {
      assert.ok(e instanceof WeightsoupError && e.code === "E_WORKER", String(e));
      assert.ok(e.message.includes("nonexistent/weightsoup-worker.js"), e.message);
      return true;
    });
    assert.ok(!existsSync(out));
  });

  test("a worker script that throws while loading rejects with E_WORKER and its message", async () => {
    const script = join(root, "throwing-worker.mjs");
    await writeFile(script, 'throw new Error("the worker broke while loading");\n');
    await assert.rejects(merge(recipe, { out: join(root, "throwing"), workers: 1, workerUrl: new URL(`file://${script}`) }), (e: unknown) =>
      e instanceof WeightsoupError && e.code === "E_WORKER" && e.message.includes("the worker broke while loading"));
  });

  test("a worker script that exits at once rejects with E_WORKER", async () => {
    const script = join(root, "exiting-worker.mjs");
    await writeFile(script, "process.exit(0);\n");
    await assert.rejects(merge(recipe, { out: join(root, "exiting"), workers: 1, workerUrl: new URL(`file://${script}`) }), (e: unknown) =>
      e instanceof WeightsoupError && e.code === "E_WORKER");
  });

  test("the library works from `node --input-type=module -e` (workers do not inherit -e)", () => {
    const out = join(root, "from-eval");
    const code = `import { merge } from ${JSON.stringify(LIBRARY)}; const s = await merge(${JSON.stringify(recipe)}, { out: ${JSON.stringify(out)}, workers: 2 }); console.log("tensors=" + s.tensors);`;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", code], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /tensors=\d+/);
    assert.ok(existsSync(join(out, "model.safetensors")));
  });

  test("`weightsoup example` without its worker script fails with exit 1, not a silent 0", async () => {
    const lonely = join(root, "lonely");
    await mkdir(lonely);
    // dist/cli.cjs and the scripts it loads (dist/cli-*.js) bundle everything but worker.js.
    for (const file of (await readdir(dirname(CLI))).filter((f) => /^cli(-.*\.js|\.cjs)$/.test(f))) await copyFile(join(dirname(CLI), file), join(lonely, file));
    const r = spawnSync(process.execPath, [join(lonely, "cli.cjs"), "example", join(root, "example-out")], { encoding: "utf8", timeout: 120_000, killSignal: "SIGKILL" });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /\[E_WORKER\]/);
    // Its merge has little work and runs in the CLI's own thread (stop 36), so it is whole; the
    // evaluation after it needs the workers.
    assert.match(r.stdout, /Done: ties merged .* no workers \(in this thread\)/);
    assert.match(r.stdout, /Evaluating the merge/);
    assert.ok(existsSync(join(root, "example-out", "merged", "model.safetensors")));
  });
});

/**
 * Runs the CLI in a private mount namespace with a small tmpfs at `mountPoint` (read-only if asked):
 * a full disk and a read-only file system for real, without touching the machine's own mounts.
 */
function inSmallFilesystem(mountPoint: string, options: string, args: string[]) {
  const command = `mkdir -p '${mountPoint}' && mount -t tmpfs -o ${options} tmpfs '${mountPoint}' && exec '${process.execPath}' '${CLI}' ${args.map((a) => `'${a}'`).join(" ")}`;
  const root = spawnSync("unshare", ["-m", "sh", "-c", command], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
  // Without root, a user namespace grants the mount.
  return root.status === 0 || !/mount|unshare/.test(root.stderr) ? root : spawnSync("unshare", ["-Urm", "sh", "-c", command], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
}

describe("I/O failures are typed, name the path and say the real cause", () => {
  test("a full disk: [E_IO] ... the disk is full (ENOSPC), exit 1, no stack trace, nothing left behind", () => {
    const mnt = join(root, "full");
    const r = inSmallFilesystem(mnt, "size=16k", ["merge", recipe, join(mnt, "out"), "--quiet"]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^weightsoup: \[E_IO\] /);
    assert.ok(r.stderr.includes(join(mnt, "out", "model.safetensors")), r.stderr);
    assert.match(r.stderr, /the disk is full \(ENOSPC\)/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  });

  test("a read-only file system: [E_IO] ... read-only (EROFS), not ENOENT", () => {
    const mnt = join(root, "readonly");
    const r = inSmallFilesystem(mnt, "ro,size=64k", ["merge", recipe, join(mnt, "sub", "out"), "--quiet"]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /\[E_IO\]/);
    assert.match(r.stderr, /read-only \(EROFS\)/);
    assert.doesNotMatch(r.stderr, /ENOENT/);
  });

  test("--debug adds the stack trace", () => {
    const r = cli("merge", join(root, "missing.yml"), join(root, "never"), "--debug");
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^weightsoup: \[E_MODEL_NOT_FOUND\] /);
    assert.match(r.stderr, /\n\s+at /);
    const plain = cli("merge", join(root, "missing.yml"), join(root, "never"));
    assert.doesNotMatch(plain.stderr, /\n\s+at /);
  });
});

describe("weightsoup example's folder", () => {
  // Found by an audit: it wrote into any folder (an input model's too), left half-written models on
  // Ctrl-C, crashed untyped on a file or an unwritable place, and spun forever under /proc.
  const codeOf = (p: Promise<unknown>) => p.then(() => "resolved", (e: unknown) => (e instanceof WeightsoupError ? e.code : `untyped ${String(e)}`));
  test("a file, a folder it did not write and a place it cannot create are typed errors, and nothing is written there", async () => {
    const dir = join(root, "example-refusals");
    await mkdir(join(dir, "model"), { recursive: true });
    await writeFile(join(dir, "model", "config.json"), "{}");
    await writeFile(join(dir, "file"), "x");
    assert.equal(await codeOf(writeExampleFolder(join(dir, "file"))), "E_OUTPUT_EXISTS");
    assert.equal(await codeOf(writeExampleFolder(join(dir, "model"))), "E_OUTPUT_EXISTS");
    assert.deepEqual(await readdir(join(dir, "model")), ["config.json"]);
    assert.equal(await codeOf(writeExampleFolder(join(dir, "file", "inside"))), "E_IO");
    if (existsSync("/proc/self")) assert.equal(await codeOf(writeExampleFolder("/proc/weightsoup-example/x")), "E_IO");
  });
  test("an earlier example's folder is written again, and what an interrupted run left is removed", async () => {
    const dir = join(root, "example-again", "nested");
    assert.equal(await codeOf(writeExampleFolder(dir)), "resolved", "missing parents are created");
    await mkdir(join(dir, ".math.weightsoup-0badc0de.tmp"));
    await writeFile(join(dir, "base", "model.safetensors"), "cut short");
    await writeExampleFolder(dir);
    assert.deepEqual((await readdir(dir)).sort(), [".weightsoup-example", "base", "chat", "code", "math", "recipe.yml"].sort());
    assert.equal((await inspect(join(dir, "base"))).tensors.length > 0, true, "the base is whole again");
  });
  test("a folder of the user's own that happens to hold base, math, ... is not an earlier example's: refused, nothing touched (found by the stop 38 audit: overwritten)", async () => {
    const dir = join(root, "example-lookalike");
    await mkdir(join(dir, "base"), { recursive: true });
    await mkdir(join(dir, "math"));
    await writeFile(join(dir, "base", "model.safetensors"), "precious");
    await writeFile(join(dir, "math", "NOTES.txt"), "notes");
    await assert.rejects(writeExampleFolder(dir), (e: unknown) => e instanceof WeightsoupError && e.code === "E_OUTPUT_EXISTS" && /\.weightsoup-example/.test(e.message));
    assert.deepEqual((await readdir(dir)).sort(), ["base", "math"]);
    assert.equal(await readFile(join(dir, "base", "model.safetensors"), "utf8"), "precious");
    assert.deepEqual(await readdir(join(dir, "math")), ["NOTES.txt"]);
    // An empty folder (dot-files aside) is taken.
    const empty = join(root, "example-empty");
    await mkdir(empty);
    await writeFile(join(empty, ".DS_Store"), "");
    assert.equal(await codeOf(writeExampleFolder(empty)), "resolved");
  });
});

describe("help", () => {
  for (const command of ["merge", "inspect", "align", "barrier", "example"]) {
    test(`weightsoup ${command} --help prints its usage and options, exit 0`, () => {
      const r = cli(command, "--help");
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^usage: weightsoup ${command}`));
      assert.match(r.stdout, /--help/);
      assert.equal(r.stderr, "");
    });
  }
  test("weightsoup --version prints the version", () => {
    const r = cli("--version");
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^\d+\.\d+\.\d+\n$/);
  });
  test("an unknown option is a usage error with the command's help, exit 2", () => {
    const r = cli("merge", "--frobnicate");
    assert.equal(r.status, 2);
    assert.match(r.stderr, /frobnicate/);
    assert.match(r.stderr, /usage: weightsoup merge/);
  });
});

describe("the progress line's time left", () => {
  test("no ETA before a second has passed or 2% is done; then the remaining time at the rate so far", () => {
    assert.equal(etaText(0.2, 0.5), "");
    assert.equal(etaText(30, 0.001), "");
    assert.equal(etaText(10, 0.5), "  ETA 10s");
    assert.equal(etaText(2, 0.2), "  ETA 8.0s");
    assert.equal(etaText(5, 1), "");
  });

  test("a non-interactive merge's first progress line has no ETA", async () => {
    const r = cli("merge", recipe, join(root, "progress-out"));
    assert.equal(r.status, 0, r.stderr);
    const first = r.stderr.split("\n").find((l) => l.includes("tensors"))!;
    assert.ok(first, r.stderr);
    assert.doesNotMatch(first, /ETA/);
    assert.ok((await readdir(join(root, "progress-out"))).includes("model.safetensors"));
  });
});
