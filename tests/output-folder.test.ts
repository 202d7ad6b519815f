// The output folder's guarantees (issue 8, items 18-20): a merge killed at any point of its commit
// leaves OUT_DIR absent or complete (old or new, never a mix or a folder without weights); a second
// merge into the same OUT_DIR is refused while the first runs; an output that is, contains or is
// inside an input is refused even with --force.
//
// The kill points are exact: a child process runs the built library with fs.promises.rename wrapped
// (node:module's syncBuiltinESMExports makes the wrapper what the library imports) so that it sends
// itself SIGKILL just before or just after the k-th rename, for every k the commit makes.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { cp, mkdir, readdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { merge } from "../src/node";
import { WeightsoupError } from "../src/errors";
import { NodeOutputFolder } from "../src/io/node-output";
import { NodeFolder } from "../src/io/node-folder";
import { merge as mergeInto } from "../src/api/merge";
import { baseModel, CLI, fineTune, readOutput, removeDir, tempDir, WORKER_URL, writeCase } from "./helpers/fixtures";

const LIBRARY = new URL("../../dist/index.js", import.meta.url).href;

let root: string, recipe: string, script: string;
before(async () => {
  root = await tempDir();
  const base = baseModel(91);
  recipe = await writeCase(join(root, "case"), { base, a: fineTune(base, 92, 0.1), b: fineTune(base, 93, 0.1) }, {
    merge_method: "ties", base_model: "./base",
    models: [{ model: "./a", parameters: { weight: 1, density: 0.5 } }, { model: "./b", parameters: { weight: 1, density: 0.5 } }],
  });
  script = join(root, "merge-with-faults.mjs");
  await writeFile(script, `
import { createRequire, syncBuiltinESMExports } from "node:module";
import { existsSync } from "node:fs";
const require = createRequire(import.meta.url);
const fs = require("node:fs");
const real = fs.promises.rename;
const [recipe, out, force, at, when, gate] = process.argv.slice(2);
let count = 0;
fs.promises.rename = async (from, to) => {
  count++;
  if (count === Number(at) && when === "before") process.kill(process.pid, "SIGKILL");
  if (count === Number(at) && when === "pause") while (!existsSync(gate)) await new Promise((ok) => setTimeout(ok, 20));
  await real(from, to);
  if (count === Number(at) && when === "after") process.kill(process.pid, "SIGKILL");
};
syncBuiltinESMExports();
const { merge } = await import(${JSON.stringify(LIBRARY)});
await merge(recipe, { out, force: force === "force", workerUrl: new URL(${JSON.stringify(WORKER_URL.href)}) });
console.log("renames=" + count);
`);
});
after(async () => { await removeDir(root); });

function runScript(out: string, options: { force?: boolean; at?: number; when?: "before" | "after" | "none" } = {}) {
  return spawnSync(process.execPath, [script, recipe, out, options.force ? "force" : "", String(options.at ?? 0), options.when ?? "none", ""], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
}

/**
 * Hashes of every file of a finished output (the reference reader must read every shard). The model
 * card is titled with the folder's name, so of it only its presence counts.
 */
async function snapshot(dir: string): Promise<Map<string, string>> {
  await readOutput(dir);
  JSON.parse(await readFile(join(dir, "config.json"), "utf8"));
  const files = new Map<string, string>();
  for (const f of (await readdir(dir)).sort()) {
    files.set(f, f === "README.md" ? "present" : createHash("sha256").update(await readFile(join(dir, f))).digest("hex"));
  }
  return files;
}

describe("publishing is atomic", () => {
  test("killed before or after any rename of the commit, OUT_DIR is absent or the complete output", async () => {
    const reference = join(root, "reference");
    const clean = runScript(reference);
    assert.equal(clean.status, 0, clean.stderr);
    const renames = Number(/renames=(\d+)/.exec(clean.stdout)![1]);
    const complete = await snapshot(reference);
    for (let at = 1; at <= renames; at++) {
      for (const when of ["before", "after"] as const) {
        const out = join(root, `kill-${at}-${when}`);
        const r = runScript(out, { at, when });
        assert.equal(r.signal, "SIGKILL", `killed ${when} rename ${at}: ${r.stderr}`);
        if (!existsSync(out)) continue;
        assert.deepEqual(await snapshot(out), complete, `killed ${when} rename ${at} of ${renames}: OUT_DIR exists, so it must be complete`);
      }
    }
  });

  test("with --force over an earlier output, a kill leaves the complete old output, the complete new one, or (between the two renames) none", async () => {
    const old = join(root, "old-reference");
    await mkdir(old);
    await writeFile(join(old, "model.safetensors"), "an earlier output");
    await writeFile(join(old, "notes.txt"), "kept until the new output is in place");
    const oldFiles = new Map<string, string>();
    for (const f of await readdir(old)) oldFiles.set(f, createHash("sha256").update(await readFile(join(old, f))).digest("hex"));
    const clean = runScript(join(root, "force-clean"), { force: true });
    assert.equal(clean.status, 0, clean.stderr);
    const complete = await snapshot(join(root, "force-clean"));
    for (let at = 1; at <= 3; at++) {
      for (const when of ["before", "after"] as const) {
        const out = join(root, `force-${at}-${when}`);
        await mkdir(out);
        for (const f of oldFiles.keys()) await writeFile(join(out, f), await readFile(join(old, f)));
        const r = runScript(out, { force: true, at, when });
        if (r.status === 0) continue; // fewer renames than `at`: the merge finished
        assert.equal(r.signal, "SIGKILL", r.stderr);
        if (!existsSync(out)) {
          const aside = (await readdir(root)).filter((e) => e.startsWith(`.force-${at}-${when}.weightsoup-old-`));
          assert.equal(aside.length, 1, "the old output is kept aside while OUT_DIR is briefly absent");
          continue;
        }
        const files = new Map<string, string>();
        for (const f of (await readdir(out)).sort()) files.set(f, createHash("sha256").update(await readFile(join(out, f))).digest("hex"));
        const isOld = [...files].length === oldFiles.size && [...files].every(([f, h]) => oldFiles.get(f) === h);
        if (!isOld) assert.deepEqual(await snapshot(out), complete, `killed ${when} rename ${at}: OUT_DIR is neither the old output nor the new one`);
      }
    }
  });

  test("the next merge into a killed merge's OUT_DIR cleans what the killed one left beside it", async () => {
    const out = join(root, "leftovers");
    const r = runScript(out, { at: 1, when: "before" });
    assert.equal(r.signal, "SIGKILL");
    assert.ok((await readdir(root)).some((e) => e.startsWith(".leftovers.weightsoup-")), "staging folder and lock left beside OUT_DIR");
    const again = spawnSync(process.execPath, [CLI, "merge", recipe, out, "--quiet"], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual((await readdir(root)).filter((e) => e.startsWith(".leftovers.")), [], "no staging folder or lock remains");
    await snapshot(out);
  });
});

describe("one writer per output", () => {
  test("a second merge into an OUT_DIR being written is refused, and the first one completes", async () => {
    const out = join(root, "contended");
    const gate = join(root, "contended.go");
    const first = spawn(process.execPath, [script, recipe, out, "", "1", "pause", gate], { stdio: ["ignore", "pipe", "pipe"] });
    const firstDone = new Promise<number | null>((ok) => first.on("exit", ok));
    let stderr = "";
    first.stderr.on("data", (d) => (stderr += d));
    // Wait until the first merge holds the lock and reached its commit (the paused rename).
    const deadline = Date.now() + 30_000;
    while (!(await readdir(root)).some((e) => e.startsWith(".contended.weightsoup-partial-"))) {
      if (Date.now() > deadline) {
        first.kill("SIGKILL");
        assert.fail("the first merge never staged its output beside OUT_DIR");
      }
      await new Promise((ok) => setTimeout(ok, 20));
    }
    await new Promise((ok) => setTimeout(ok, 300));
    const second = spawnSync(process.execPath, [CLI, "merge", recipe, out, "--quiet"], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
    const forced = spawnSync(process.execPath, [CLI, "merge", recipe, out, "--quiet", "--force"], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
    await writeFile(gate, "");
    assert.equal(await firstDone, 0, stderr);
    for (const r of [second, forced]) {
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /\[E_OUTPUT_LOCKED\]/);
      assert.match(r.stderr, new RegExp(`pid ${first.pid}`));
    }
    await snapshot(out);
  });

  test("a lock left by a process that is gone is taken over", async () => {
    const out = join(root, "stale");
    const dead = spawnSync(process.execPath, ["-e", "console.log(process.pid)"], { encoding: "utf8" });
    await writeFile(join(root, ".stale.weightsoup-lock"), dead.stdout);
    const r = spawnSync(process.execPath, [CLI, "merge", recipe, out, "--quiet"], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(!existsSync(join(root, ".stale.weightsoup-lock")));
  });
});

describe("clean-up after a failure", () => {
  test("a clean-up the file system refuses (read-only) does not replace the failure: the merge rejects with its typed error", async () => {
    // Found by an audit: the output's file system turned read-only mid-merge; the write failed with
    // E_IO, then removing the staging folder failed too, and that raw error (no code) was reported as
    // a bug in weightsoup. Here the commit's rename and every rm fail with EROFS.
    const faults = join(root, "read-only.mjs");
    await writeFile(faults, `
import { createRequire, syncBuiltinESMExports } from "node:module";
const require = createRequire(import.meta.url);
const fs = require("node:fs");
const erofs = (path) => Object.assign(new Error("EROFS: read-only file system, " + path), { code: "EROFS" });
fs.promises.rename = async (from) => { throw erofs(from); };
fs.promises.rm = async (path) => { throw erofs(path); };
syncBuiltinESMExports();
const { merge, WeightsoupError } = await import(${JSON.stringify(LIBRARY)});
const e = await merge(process.argv[2], { out: process.argv[3], workerUrl: new URL(${JSON.stringify(WORKER_URL.href)}) }).then(() => undefined, (e) => e);
console.log(JSON.stringify({ typed: e instanceof WeightsoupError, code: e?.code, message: e?.message }));
`);
    const r = spawnSync(process.execPath, [faults, recipe, join(root, "read-only")], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
    assert.equal(r.status, 0, r.stderr);
    const result = JSON.parse(r.stdout) as { typed: boolean; code: string; message: string };
    assert.equal(result.typed, true, result.message);
    assert.equal(result.code, "E_IO");
    assert.match(result.message, /read-only \(EROFS\)/);
    assert.ok(!existsSync(join(root, ".read-only.weightsoup-lock")), "the lock was removed (unlink still worked)");
  });

  test("a lock file created on a full disk (its pid not written) is closed and removed: E_IO names it", async () => {
    // Found by an audit: the empty lock file stayed beside OUT_DIR and its handle stayed open.
    const faults = join(root, "full-disk.mjs");
    await writeFile(faults, `
import { createRequire, syncBuiltinESMExports } from "node:module";
const require = createRequire(import.meta.url);
const fs = require("node:fs");
const open = fs.promises.open;
let closed = 0;
fs.promises.open = async (path, flags, mode) => {
  const fh = await open(path, flags, mode);
  if (!String(path).endsWith(".weightsoup-lock")) return fh;
  fh.writeFile = async () => { throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" }); };
  const close = fh.close.bind(fh);
  fh.close = async () => { closed++; return close(); };
  return fh;
};
syncBuiltinESMExports();
const { merge } = await import(${JSON.stringify(LIBRARY)});
const e = await merge(process.argv[2], { out: process.argv[3], workerUrl: new URL(${JSON.stringify(WORKER_URL.href)}) }).then(() => undefined, (e) => e);
console.log(JSON.stringify({ code: e?.code, message: e?.message, closed }));
`);
    const r = spawnSync(process.execPath, [faults, recipe, join(root, "full-disk")], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
    assert.equal(r.status, 0, r.stderr);
    const result = JSON.parse(r.stdout) as { code: string; message: string; closed: number };
    assert.equal(result.code, "E_IO");
    assert.match(result.message, /weightsoup-lock: cannot create the output's lock file: the disk is full \(ENOSPC\)/);
    assert.equal(result.closed, 1, "the lock file's handle was closed");
    assert.deepEqual((await readdir(root)).filter((f) => f.includes("full-disk") && !f.endsWith(".mjs")), [], "no lock file or staging folder is left");
  });

  test("an output folder the caller opened is discarded when the merge fails before the engine runs (a missing model, an abort while planning)", async () => {
    // Found by an audit (in browsers, where the caller opens the folder): the staging folder and its lock
    // stayed for the rest of the page's life.
    // The library's own merge(), which takes an opened folder (the Node entry takes a path).
    const models = (name: string) => NodeFolder.open(join(root, "case", name));
    const missing = "merge_method: linear\nmodels:\n  - {model: ./a, parameters: {weight: 1}}\n  - {model: ./nope, parameters: {weight: 1}}\n";
    const opened = await NodeOutputFolder.open(join(root, "caller-opened"));
    await assert.rejects(mergeInto(missing, { out: opened, models, workerUrl: WORKER_URL }), (e: unknown) => e instanceof WeightsoupError && e.code === "E_MODEL_NOT_FOUND");
    assert.deepEqual((await readdir(root)).filter((f) => f.includes("caller-opened")), [], "no staging folder or lock is left");
    const controller = new AbortController();
    controller.abort();
    const again = await NodeOutputFolder.open(join(root, "caller-opened"));
    await assert.rejects(mergeInto(await readFile(recipe, "utf8"), { out: again, models, signal: controller.signal, workerUrl: WORKER_URL }), (e: unknown) => e instanceof WeightsoupError && e.code === "E_ABORTED");
    assert.deepEqual((await readdir(root)).filter((f) => f.includes("caller-opened")), []);
    // The Node entry takes an opened folder too, as the README says ("a folder path, or any OutputFolder"):
    // a merge into it publishes it; a failing one discards it.
    const done = await merge(recipe, { out: await NodeOutputFolder.open(join(root, "caller-opened")), workerUrl: WORKER_URL });
    assert.equal(done.method, "ties");
    await snapshot(join(root, "caller-opened"));
    await assert.rejects(merge(join(root, "case", "nope.yml"), { out: await NodeOutputFolder.open(join(root, "caller-failed")), workerUrl: WORKER_URL }), (e: unknown) => e instanceof WeightsoupError);
    assert.deepEqual((await readdir(root)).filter((f) => f.includes("caller-failed")), []);
  });

  test("a progress callback that throws: before publishing, the merge stops with E_OPTION and publishes nothing; on done, the merge resolves and the error is thrown on its own", async () => {
    // Found by an audit: a throw on "done" made merge() reject with the raw error after the output was
    // published (a retry then met E_OUTPUT_EXISTS); a throw before it rejected with no code.
    const script = join(root, "throwing-progress.mjs");
    await writeFile(script, `
const { merge } = await import(${JSON.stringify(LIBRARY)});
const [recipe, out, on] = process.argv.slice(2);
const seen = [];
process.on("uncaughtException", (e) => seen.push(e.message));
const r = await merge(recipe, { out, workerUrl: new URL(${JSON.stringify(WORKER_URL.href)}), onProgress: (e) => { if (e.type === on) throw new Error("callback bug on " + on); } })
  .then((s) => ({ resolved: s.method }), (e) => ({ code: e.code, message: e.message, cause: e.cause?.message }));
await new Promise((ok) => setTimeout(ok, 50));
console.log(JSON.stringify({ ...r, uncaught: seen }));
`);
    const run = (on: string) => {
      const r = spawnSync(process.execPath, [script, recipe, join(root, `throwing-${on}`), on], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout) as { resolved?: string; code?: string; message?: string; cause?: string; uncaught: string[] };
    };
    const early = run("tensor-done");
    assert.equal(early.code, "E_OPTION");
    assert.match(early.message!, /option onProgress threw on a "tensor-done" event: callback bug on tensor-done/);
    assert.equal(early.cause, "callback bug on tensor-done");
    assert.ok(!existsSync(join(root, "throwing-tensor-done")), "nothing published");
    const late = run("done");
    assert.equal(late.resolved, "ties", "the published merge resolves");
    assert.deepEqual(late.uncaught, ["callback bug on done"], "the callback's error is thrown on its own");
    await snapshot(join(root, "throwing-done"));
  });

  test("a lock naming this process that this process does not hold (an earlier merge could not remove it) is taken over; one it holds is not", async () => {
    const stale = join(root, "own-stale");
    await writeFile(join(root, ".own-stale.weightsoup-lock"), `${process.pid}\n`);
    await merge(recipe, { out: stale, workerUrl: WORKER_URL });
    assert.ok(!existsSync(join(root, ".own-stale.weightsoup-lock")));
    const twice = join(root, "own-twice");
    const results = await Promise.allSettled([merge(recipe, { out: twice, workerUrl: WORKER_URL }), merge(recipe, { out: twice, workerUrl: WORKER_URL })]);
    assert.deepEqual(results.map((r) => r.status).sort(), ["fulfilled", "rejected"]);
    const refused = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    assert.equal(refused.reason.code, "E_OUTPUT_LOCKED");
    assert.match(refused.reason.message, /another merge in this process/);
    await snapshot(twice);
  });
});

describe("an input that changes during the merge", () => {
  test("a weights file replaced after its header was read is refused (E_IO naming it), not read at the old offsets; nothing is published", async () => {
    // Found by an audit: an unlink and a new file of the same size (a re-download, an rsync) between
    // planning and reading gave a published output computed from the new file's bytes.
    for (const workers of [1, 2]) {
      const dir = join(root, `replaced-${workers}`);
      await cp(join(root, "case"), dir, { recursive: true });
      const victim = join(dir, "a", "model.safetensors");
      const size = (await stat(victim)).size;
      const out = join(dir, "out");
      const run = merge(join(dir, "recipe.yml"), {
        out, workers, workerUrl: WORKER_URL,
        onProgress: (e) => {
          if (e.type !== "plan") return;
          rmSync(victim);
          writeFileSync(victim, Buffer.alloc(size));
        },
      });
      await assert.rejects(run, (e: unknown) => e instanceof WeightsoupError && e.code === "E_IO" && e.message.includes(victim) && /changed since its header was read/.test(e.message));
      assert.ok(!existsSync(out), "nothing published");
    }
  });
});

describe("the output is never an input", () => {
  const hashes = async (dir: string) => {
    const out = new Map<string, string>();
    for (const f of (await readdir(dir)).sort()) out.set(f, createHash("sha256").update(await readFile(join(dir, f))).digest("hex"));
    return out;
  };
  for (const [label, out, how] of [
    ["an input model's folder", "case/a", "is"],
    ["a symbolic link to an input model", "link-to-a", "is"],
    ["the folder holding the models and the recipe", "case", "contains"],
    ["a folder inside an input model", "case/a/sub", "is inside"],
  ] as const) {
    test(`OUT_DIR = ${label} is refused, even with --force, and the input is untouched`, async () => {
      if (out === "link-to-a" && !existsSync(join(root, out))) await symlink(join(root, "case", "a"), join(root, out));
      const before = await hashes(join(root, "case", "a"));
      const r = spawnSync(process.execPath, [CLI, "merge", recipe, join(root, out), "--force", "--quiet"], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /\[E_OUTPUT_IS_INPUT\]/);
      assert.match(r.stderr, new RegExp(`output folder ${how} `));
      assert.deepEqual(await hashes(join(root, "case", "a")), before);
      assert.ok(!existsSync(join(root, "case", "a", "sub")));
    });
  }
});

test("the library refuses the same", async () => {
  await assert.rejects(merge(recipe, { out: join(root, "case"), force: true, workerUrl: WORKER_URL }), (e: unknown) => (e as { code?: string }).code === "E_OUTPUT_IS_INPUT");
});
