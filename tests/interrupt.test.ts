// Interrupting the CLI: SIGINT (Ctrl-C), SIGTERM and SIGHUP (the terminal closed, an ssh session
// dropped) during a merge end it with status 130, "aborted; no output was kept", and nothing beside
// OUT_DIR: no lock file, no staging folder. A second Ctrl-C during that clean-up does not cut it short.
// Found by an audit: SIGHUP killed the process (status 129) and left the lock and the staging folder
// (hundreds of MB); so did a second Ctrl-C 30 ms after the first. `weightsoup example` (what `npm start`
// runs) stops the same way; it had no handler, so Ctrl-C killed it wherever it was.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { writeLlamaModel } from "../src/example/models";
import { CLI, removeDir, tempDir } from "./helpers/fixtures";

let dir: string;
before(async () => {
  dir = await tempDir();
  // Four 25 MB models merged on one worker in 1 MiB chunks: well over a second of work.
  const shape = { vocab: 8192, hidden: 512, intermediate: 1536, layers: 4, heads: 8, kvHeads: 4 };
  await writeLlamaModel(join(dir, "base"), shape);
  for (const [i, name] of ["a", "b", "c"].entries()) await writeLlamaModel(join(dir, name), shape, { name, seed: 7 + i, touches: ["mlp"], strength: 0.05, background: 0.01 });
  await writeFile(join(dir, "recipe.yml"), "merge_method: ties\nbase_model: ./base\nmodels:\n" + ["a", "b", "c"].map((m) => `  - {model: ./${m}, parameters: {weight: 1, density: 0.5}}\n`).join(""));
});
after(async () => { await removeDir(dir); });

/** Starts a merge into `outName`, sends `signals` (ms apart) once its staging folder exists; its status and stderr. */
async function interrupt(outName: string, signals: NodeJS.Signals[]): Promise<{ status: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  const child = spawn(process.execPath, [CLI, "merge", join(dir, "recipe.yml"), join(dir, outName), "--workers", "1", "--chunk-size", "1MiB", "--quiet"], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<{ status: number | null; signal: NodeJS.Signals | null }>((r) => child.on("exit", (status, signal) => r({ status, signal })));
  // Once the weights are being written (the workers are busy), so the clean-up has workers to stop.
  for (;;) {
    const staging = (await readdir(dir)).find((f) => f.startsWith(`.${outName}.weightsoup-partial-`));
    if (staging && (await readdir(join(dir, staging)).catch((): string[] => [])).includes("model.safetensors")) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  await new Promise((r) => setTimeout(r, 100));
  for (const [i, s] of signals.entries()) {
    if (i > 0) await new Promise((r) => setTimeout(r, 2));
    child.kill(s);
  }
  return { ...(await exited), stderr };
}

for (const signals of [["SIGINT"], ["SIGTERM"], ["SIGHUP"], ["SIGINT", "SIGINT"]] as NodeJS.Signals[][]) {
  test(`${signals.join(" then ")} during a merge: status 130, no output, no lock or staging folder left`, async () => {
    const out = `out-${signals.join("-").toLowerCase()}`;
    const r = await interrupt(out, signals);
    assert.equal(r.signal, null, `the process cleaned up and exited itself, not killed by ${r.signal}`);
    assert.equal(r.status, 130, r.stderr);
    assert.match(r.stderr, /weightsoup: aborted; no output was kept/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
    assert.deepEqual((await readdir(dir)).filter((f) => f.includes(out)), [], "nothing of the merge is left");
  });
}

/** Runs `weightsoup example DIR`, sends SIGINT once `ready(stdout, entries of DIR)` holds; its status, stderr and DIR's entries. */
async function interruptExample(name: string, ready: (stdout: string, entries: string[]) => boolean) {
  const target = join(dir, name);
  const child = spawn(process.execPath, [CLI, "example", target], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "", stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<{ status: number | null; signal: NodeJS.Signals | null }>((r) => child.on("exit", (status, signal) => r({ status, signal })));
  let sent = false;
  while (!sent) {
    const entries = await readdir(target).catch((): string[] => []);
    if (ready(stdout, entries)) { child.kill("SIGINT"); sent = true; }
    else if (child.exitCode !== null) break;
    else await new Promise((r) => setTimeout(r, 5));
  }
  const result = await exited;
  assert.ok(sent, `the example ended before the moment to interrupt it: ${stdout}${stderr}`);
  return { ...result, stderr, entries: await readdir(target) };
}

test("SIGINT while the example writes its models: status 130, the model being written is finished or removed, no temporary left", async () => {
  const r = await interruptExample("example-writing", (_, entries) => entries.some((f) => /^\.base\.weightsoup-[0-9a-f]{8}\.tmp$/.test(f)));
  assert.equal(r.signal, null, "the process exited itself, not killed by SIGINT");
  assert.equal(r.status, 130, r.stderr);
  assert.deepEqual(r.entries.filter((f) => f.startsWith(".") && f !== ".weightsoup-example"), [], "no temporary model or staging folder left");
  assert.ok(!r.entries.includes("merged"), "nothing merged");
});

test("SIGINT while the example evaluates: status 130, and it says the merged model is complete", async () => {
  const r = await interruptExample("example-evaluating", (stdout) => stdout.includes("Evaluating the merge"));
  assert.equal(r.signal, null, "the process exited itself, not killed by SIGINT");
  assert.equal(r.status, 130, r.stderr);
  assert.match(r.stderr, /interrupted while evaluating; the merged model in .*merged is complete/);
  assert.ok(r.entries.includes("merged"));
  assert.deepEqual(r.entries.filter((f) => f.startsWith(".") && f !== ".weightsoup-example"), [], "no staging folder left");
  const merged = await readdir(join(dir, "example-evaluating", "merged"));
  assert.ok(merged.includes("model.safetensors") && merged.includes("config.json"), merged.join(", "));
});
