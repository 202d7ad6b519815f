// Hostile and broken inputs: each gives its typed error naming the file and tensor (or recipe key),
// the CLI exits 1, and OUT_DIR holds nothing that looks like a finished model. Aborting a merge
// midway leaves the same.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { merge } from "../src/node";
import { AbortError, WeightsoupError } from "../src/errors";
import { baseModel, CLI, fineTune, removeDir, tempDir, TINY, WORKER_URL, writeCase, writeModel, type Shape } from "./helpers/fixtures";

let root: string;
before(async () => { root = await tempDir(); });
after(async () => { await removeDir(root); });

const RECIPE = "merge_method: ties\nbase_model: ./base\nmodels:\n  - {model: ./a, parameters: {weight: 1, density: 0.5}}\n  - {model: ./b, parameters: {weight: 1, density: 0.5}}\n";
let n = 0;

/** A fresh valid case; `spoil` breaks it. Returns the case folder. */
async function makeCase(spoil: (dir: string) => Promise<void>, recipe = RECIPE, shape: Shape = TINY): Promise<string> {
  const dir = join(root, `h${n++}`);
  const base = baseModel(71, "F32", shape);
  await writeCase(dir, { base, a: fineTune(base, 72, 0.1), b: fineTune(base, 73, 0.1) }, {}, { b: 2 });
  await writeFile(join(dir, "recipe.yml"), recipe);
  await spoil(dir);
  return dir;
}

/** Rewrites the header of a safetensors file (keeping its data). */
async function editHeader(path: string, edit: (header: Record<string, any>) => void, data?: (d: Uint8Array) => Uint8Array): Promise<void> {
  const bytes = new Uint8Array(await readFile(path));
  const len = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + len)));
  edit(header);
  const json = new TextEncoder().encode(JSON.stringify(header));
  let body: Uint8Array = bytes.subarray(8 + len);
  if (data) body = data(body);
  const out = new Uint8Array(8 + json.length + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(body, 8 + json.length);
  await writeFile(path, out);
}

const firstTensor = (h: Record<string, any>) => Object.keys(h).filter((k) => k !== "__metadata__").sort((x, y) => h[x].data_offsets[0] - h[y].data_offsets[0])[0]!;

/** Runs the CLI and the API on a broken case and checks both failures. */
async function expectFailure(dir: string, code: string, mentions: string[]): Promise<void> {
  const out = join(dir, "out");
  const cli = spawnSync(process.execPath, [CLI, "merge", join(dir, "recipe.yml"), out, "--quiet"], { encoding: "utf8" });
  assert.equal(cli.status, 1, `exit status (stderr: ${cli.stderr})`);
  assert.ok(cli.stderr.includes(code), `stderr names the code ${code}: ${cli.stderr}`);
  for (const m of mentions) assert.ok(cli.stderr.includes(m), `stderr mentions ${m}: ${cli.stderr}`);
  assert.ok(!existsSync(out) || (await readdir(out)).length === 0, "the CLI left no output");

  await assert.rejects(merge(join(dir, "recipe.yml"), { out, workerUrl: WORKER_URL }), (e: unknown) => {
    assert.ok(e instanceof WeightsoupError, String(e));
    const codes = "problems" in e ? (e as { problems: WeightsoupError[] }).problems.map((p) => p.code) : [e.code];
    assert.ok(codes.includes(code as never), `codes ${codes} include ${code}`);
    for (const m of mentions) assert.ok(e.message.includes(m), `message mentions ${m}: ${e.message}`);
    return true;
  });
  assert.ok(!existsSync(out) || (await readdir(out)).length === 0, "the API left no output");
}

describe("broken safetensors files", () => {
  test("truncated file", async () => {
    const dir = await makeCase(async (d) => {
      const p = join(d, "a/model.safetensors");
      const bytes = await readFile(p);
      await writeFile(p, bytes.subarray(0, bytes.length - 100));
    });
    await expectFailure(dir, "E_INCOMPLETE_BUFFER", ["a/model.safetensors"]);
  });
  test("header length beyond the file", async () => {
    const dir = await makeCase(async (d) => {
      const p = join(d, "a/model.safetensors");
      const bytes = new Uint8Array(await readFile(p));
      new DataView(bytes.buffer).setBigUint64(0, BigInt(bytes.length), true);
      await writeFile(p, bytes);
    });
    await expectFailure(dir, "E_HEADER_LENGTH", ["a/model.safetensors"]);
  });
  test("absurd header length", async () => {
    const dir = await makeCase(async (d) => {
      const p = join(d, "base/model.safetensors");
      const bytes = new Uint8Array(await readFile(p));
      new DataView(bytes.buffer).setBigUint64(0, 0xffffffffffffn, true);
      await writeFile(p, bytes);
    });
    await expectFailure(dir, "E_HEADER_TOO_LARGE", ["base/model.safetensors"]);
  });
  test("invalid JSON", async () => {
    const dir = await makeCase(async (d) => {
      const p = join(d, "a/model.safetensors");
      const bytes = new Uint8Array(await readFile(p));
      bytes[8 + 1] = 0x3a; // '{:' cannot start a JSON object
      await writeFile(p, bytes);
    });
    await expectFailure(dir, "E_HEADER_JSON", ["a/model.safetensors"]);
  });
  test("overlapping offsets", async () => {
    let victim = "";
    const dir = await makeCase((d) => editHeader(join(d, "a/model.safetensors"), (h) => {
      const names = Object.keys(h).filter((k) => k !== "__metadata__").sort((x, y) => h[x].data_offsets[0] - h[y].data_offsets[0]);
      victim = names[1]!;
      h[victim].data_offsets = [h[victim].data_offsets[0] - 4, h[victim].data_offsets[1] - 4];
    }));
    await expectFailure(dir, "E_OFFSETS", ["a/model.safetensors", victim]);
  });
  test("gapped offsets", async () => {
    let victim = "";
    const dir = await makeCase((d) => editHeader(join(d, "a/model.safetensors"), (h) => {
      const names = Object.keys(h).filter((k) => k !== "__metadata__").sort((x, y) => h[x].data_offsets[0] - h[y].data_offsets[0]);
      for (const name of names.slice(1)) h[name].data_offsets = h[name].data_offsets.map((o: number) => o + 8);
      victim = names[1]!;
    }, (d) => { const out = new Uint8Array(d.length + 8); out.set(d); return out; }));
    await expectFailure(dir, "E_OFFSETS", ["a/model.safetensors", victim]);
  });
  test("unknown dtype", async () => {
    let victim = "";
    const dir = await makeCase((d) => editHeader(join(d, "a/model.safetensors"), (h) => { victim = firstTensor(h); h[victim].dtype = "F12"; }));
    await expectFailure(dir, "E_UNKNOWN_DTYPE", ["a/model.safetensors", victim, "F12"]);
  });
  test("shape and byte size disagree", async () => {
    let victim = "";
    const dir = await makeCase((d) => editHeader(join(d, "a/model.safetensors"), (h) => { victim = firstTensor(h); h[victim].shape = [...h[victim].shape, 2]; }));
    await expectFailure(dir, "E_TENSOR_SIZE", ["a/model.safetensors", victim]);
  });
  test("non-string metadata", async () => {
    const dir = await makeCase((d) => editHeader(join(d, "a/model.safetensors"), (h) => { h.__metadata__ = { format: "pt", epochs: 3 }; }));
    await expectFailure(dir, "E_METADATA", ["a/model.safetensors", "epochs"]);
  });
});

describe("broken models and recipes", () => {
  test("missing shard", async () => {
    const dir = await makeCase((d) => rm(join(d, "b/model-00002-of-00002.safetensors")));
    await expectFailure(dir, "E_SHARD_MISSING", ["model-00002-of-00002.safetensors"]);
  });
  test("shape mismatch between models", async () => {
    const dir = await makeCase(async (d) => {
      const other = baseModel(74, "F32", { ...TINY, intermediate: 32 });
      await rm(join(d, "b"), { recursive: true });
      await writeModel(join(d, "b"), other);
    });
    await expectFailure(dir, "E_SHAPE_MISMATCH", ["mlp", "b"]);
  });
  test("missing tensor", async () => {
    const name = "model.layers.1.self_attn.v_proj.weight";
    const dir = await makeCase(async (d) => {
      const base = baseModel(71, "F32");
      const a = fineTune(base, 72, 0.1);
      a.tensors.delete(name);
      await rm(join(d, "a"), { recursive: true });
      await writeModel(join(d, "a"), a);
    });
    await expectFailure(dir, "E_TENSOR_MISSING", [name, "./a"]);
  });
  test("unknown method", async () => {
    const dir = await makeCase(async () => {}, RECIPE.replace("merge_method: ties", "merge_method: tie"));
    await expectFailure(dir, "E_METHOD_UNKNOWN", ["recipe.yml", "tie"]);
  });
  test("unknown parameter: a warning naming the file and parameter, exit 0, and the merge mergekit makes of it (the parameter ignored: ./a untrimmed)", async () => {
    const dir = await makeCase(async () => {}, RECIPE.replace("density: 0.5}}\n  - {model: ./b", "densty: 0.5}}\n  - {model: ./b"));
    const cli = spawnSync(process.execPath, [CLI, "merge", join(dir, "recipe.yml"), join(dir, "out"), "--quiet"], { encoding: "utf8" });
    assert.equal(cli.status, 0, cli.stderr);
    assert.match(cli.stderr, /weightsoup: warning: .*recipe\.yml: models\[0\]\.parameters\.densty: ties has no parameter "densty"/);
    await writeFile(join(dir, "same.yml"), RECIPE.replace("weight: 1, density: 0.5}}\n  - {model: ./b", "weight: 1}}\n  - {model: ./b"));
    assert.equal(spawnSync(process.execPath, [CLI, "merge", join(dir, "same.yml"), join(dir, "same"), "--quiet"], { encoding: "utf8" }).status, 0);
    const [ours, ref] = [await readFile(join(dir, "out", "model.safetensors")), await readFile(join(dir, "same", "model.safetensors"))];
    // The shard metadata carries the recipe's hash; the tensors after the header are the same bytes.
    const dataOf = (b: Buffer) => b.subarray(8 + Number(b.readBigUInt64LE(0)));
    assert.ok(dataOf(ours).equals(dataOf(ref)), "the same tensors as the recipe without the parameter");
  });
  test("missing required parameter", async () => {
    const dir = await makeCase(async () => {}, RECIPE.replace("weight: 1, density: 0.5}}\n  - {model: ./b", "density: 0.5}}\n  - {model: ./b"));
    await expectFailure(dir, "E_PARAMETER_MISSING", ["recipe.yml", "weight", "./a"]);
  });
  test("model folder that does not exist", async () => {
    const dir = await makeCase(async () => {}, RECIPE.replace("./b", "./nowhere"));
    await expectFailure(dir, "E_MODEL_NOT_FOUND", ["nowhere"]);
  });
});

describe("interrupting a merge", () => {
  test("aborting midway leaves no output that looks complete", async () => {
    const dir = await makeCase(async () => {}, RECIPE, { vocab: 512, hidden: 64, intermediate: 256, layers: 6, heads: 4, kvHeads: 2 });
    const out = join(dir, "out");
    const controller = new AbortController();
    let done = 0;
    await assert.rejects(merge(join(dir, "recipe.yml"), {
      out, workers: 2, workerUrl: WORKER_URL, signal: controller.signal,
      onProgress: (e) => { if (e.type === "tensor-done" && ++done === 3) controller.abort(); },
    }), (e: unknown) => e instanceof AbortError && e.name === "AbortError" && e.code === "E_ABORTED");
    assert.ok(done >= 3 && done < 6 * 9, `aborted midway (after ${done} tensors)`);
    assert.ok(!existsSync(out) || (await readdir(out)).length === 0, "nothing left in OUT_DIR");
  });
});
