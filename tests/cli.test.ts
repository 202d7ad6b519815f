// The command line: usage errors exit 2, a non-empty OUT_DIR needs --force, inspect describes a model,
// and a successful merge exits 0 with a complete Hugging Face folder.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { baseModel, CLI, fineTune, removeDir, tempDir, writeCase } from "./helpers/fixtures";

let dir: string;
const RECIPE = "merge_method: dare_ties\nbase_model: ./base\nmodels:\n  - {model: ./a, parameters: {weight: 1, density: 0.5}}\n  - {model: ./b, parameters: {weight: 1, density: 0.5}}\ndtype: bfloat16\n";
before(async () => {
  dir = await tempDir();
  const base = baseModel(81, "F32");
  await writeCase(dir, { base, a: fineTune(base, 82, 0.1), b: fineTune(base, 83, 0.1) }, {});
  await writeFile(join(dir, "recipe.yml"), RECIPE);
});
after(async () => { await removeDir(dir); });

const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });

test("usage errors exit 2", () => {
  for (const args of [[], ["merge"], ["merge", "only-one-arg"], ["frobnicate"], ["merge", "r.yml", "out", "--workers", "zero"], ["merge", "r.yml", "out", "--bogus"], ["merge", "r.yml", "out", "--out-shard-size", "lots"]]) {
    const r = run(...args);
    assert.equal(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
  }
});

test("a negative number after a flag that takes a value is that flag's value, refused in the flag's own words (not parseArgs' \"ambiguous\" and the whole usage)", () => {
  for (const [args, message] of [
    [["merge", "r.yml", "out", "--workers", "-1"], /^weightsoup: .*--workers must be an integer from \d+ to \d+, got "-1"/m],
    [["merge", "r.yml", "out", "--out-shard-size", "-5"], /--out-shard-size: "-5" is not a size/],
    [["extract-lora", "ft", "base", "x", "--rank", "-.5"], /--rank must be an integer from 1 to \d+, got "-\.5"/],
  ] as const) {
    const r = run(...args);
    assert.equal(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message, r.stderr);
    assert.doesNotMatch(r.stderr, /ambiguous|Usage:/i, r.stderr);
  }
  // After "--" everything is an argument, a negative number included.
  const r = run("merge", "r.yml", "--", "-1");
  assert.notEqual(r.status, 0);
  assert.doesNotMatch(r.stderr, /ambiguous/);
});

test("--help and --version exit 0", () => {
  assert.equal(run("--help").status, 0);
  assert.match(run("--version").stdout, /^\d+\.\d+\.\d+/);
});

test("merge writes a complete model folder, then refuses to overwrite it without --force", async () => {
  const out = join(dir, "out");
  const ok = run("merge", join(dir, "recipe.yml"), out, "--seed", "5", "--workers", "2", "--json");
  assert.equal(ok.status, 0, ok.stderr);
  const summary = JSON.parse(ok.stdout);
  assert.equal(summary.method, "dare_ties");
  const files = (await readdir(out)).sort();
  assert.deepEqual(files, ["README.md", "config.json", "generation_config.json", "mergekit_config.yml", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]);
  const config = JSON.parse(await readFile(join(out, "config.json"), "utf8"));
  assert.equal(config.torch_dtype, "bfloat16");
  assert.equal(await readFile(join(out, "mergekit_config.yml"), "utf8"), RECIPE);
  const card = await readFile(join(out, "README.md"), "utf8");
  assert.match(card, /DARE TIES/);
  assert.ok(card.includes(RECIPE.trim()));

  const again = run("merge", join(dir, "recipe.yml"), out, "--quiet");
  assert.equal(again.status, 1);
  assert.match(again.stderr, /E_OUTPUT_EXISTS/);
  const forced = run("merge", join(dir, "recipe.yml"), out, "--quiet", "--force", "--out-shard-size", "3000");
  assert.equal(forced.status, 0, forced.stderr);
  const after = await readdir(out);
  assert.ok(!after.includes("model.safetensors"), "the old single-file weights were replaced by shards");
  assert.ok(after.includes("model.safetensors.index.json"));
});

test("Node started with V8 options (--max-old-space-size, --stack-size) still starts its workers, and merges the same bytes (found by the stop 37 audit: E_WORKER)", async () => {
  const plain = join(dir, "out-plain"), flagged = join(dir, "out-v8-options");
  assert.equal(run("merge", join(dir, "recipe.yml"), plain, "--workers", "2").status, 0);
  const r = spawnSync(process.execPath, ["--max-old-space-size=2048", "--stack-size=2000", CLI, "merge", join(dir, "recipe.yml"), flagged, "--workers", "2", "--json"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).workers, 2, "merged on two workers");
  assert.deepEqual(await readFile(join(flagged, "model.safetensors")), await readFile(join(plain, "model.safetensors")));
});

test("inspect lists tensors, dtypes, shapes and totals", async () => {
  const r = run("inspect", join(dir, "base"), "--json");
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  const q = report.tensors.find((t: { name: string }) => t.name === "model.layers.0.self_attn.q_proj.weight");
  assert.deepEqual(q, { name: "model.layers.0.self_attn.q_proj.weight", dtype: "F32", shape: [16, 16], parameters: 256, bytes: 1024, file: `${join(dir, "base")}/model.safetensors` });
  assert.equal(report.parameters, report.tensors.reduce((s: number, t: { parameters: number }) => s + t.parameters, 0));
  assert.equal(report.layers, 3);
  const text = run("inspect", join(dir, "base", "model.safetensors"));
  assert.equal(text.status, 0);
  assert.match(text.stdout, /model\.norm\.weight\s+F32\s+\[16\]/);
  const missing = run("inspect", join(dir, "nope"));
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /E_MODEL_NOT_FOUND/);
});

test("a stale staging folder from an interrupted run does not count as output", async () => {
  const out = join(dir, "out-stale");
  await mkdir(join(out, ".weightsoup-partial-dead"), { recursive: true });
  await writeFile(join(out, ".weightsoup-partial-dead", "model.safetensors"), "junk");
  const r = run("merge", join(dir, "recipe.yml"), out, "--quiet");
  assert.equal(r.status, 0, r.stderr);
  assert.ok(!(await readdir(out)).some((f) => f.startsWith(".weightsoup")));
});

test("an OUT_DIR or report name near the file system's 255-byte limit merges: the names kept beside it are shortened", async () => {
  // 250 bytes: "." + name + ".weightsoup-partial-XXXXXXXX" would be 279, past NAME_MAX.
  const long = "m".repeat(240) + "é".repeat(5);
  assert.equal(Buffer.byteLength(long), 250);
  const out = join(dir, long);
  const r = run("merge", join(dir, "recipe.yml"), out, "--quiet", "--ledger", join(dir, long.slice(0, 240) + ".json"));
  assert.equal(r.status, 0, r.stderr);
  assert.ok((await readdir(out)).includes("model.safetensors"));
  assert.deepEqual((await readdir(dir)).filter((f) => f.includes("weightsoup")), [], "no lock, staging or temporary file is left beside it");
  // A second merge with --force replaces it (the old folder is set aside under a shortened name too).
  const again = run("merge", join(dir, "recipe.yml"), out, "--quiet", "--force");
  assert.equal(again.status, 0, again.stderr);
  assert.deepEqual((await readdir(dir)).filter((f) => f.includes("weightsoup")), []);
  // A name that differs from it only past the shortened part is another output: it gets its own lock.
  const twin = run("merge", join(dir, "recipe.yml"), join(dir, "m".repeat(240) + "é".repeat(4) + "e"), "--quiet");
  assert.equal(twin.status, 0, twin.stderr);
});

test("an OUT_DIR under a regular file is E_IO naming OUT_DIR and the file in its way", async () => {
  await writeFile(join(dir, "a-file"), "x");
  const out = join(dir, "a-file", "sub", "out");
  const r = run("merge", join(dir, "recipe.yml"), out, "--quiet");
  assert.equal(r.status, 1, r.stderr);
  assert.ok(r.stderr.includes(`[E_IO] ${out}: cannot be created, since ${join(dir, "a-file")} is a file, not a folder`), r.stderr);
});
