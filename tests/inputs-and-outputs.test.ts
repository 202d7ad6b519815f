// Real-world inputs and the files a merge writes (issue 8, items 4, 15, 16, 21, 22, 24-26, 33):
// library options checked up front, a Hugging Face cache laid out with symbolic links as
// huggingface_hub makes it, FIFOs, git-lfs pointers and web pages saved as .safetensors, headers read
// once, the model card's front matter, and config.json changed only where it must be.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { align, evaluate, inspect, merge, openModel, parseRecipe, plan, sweep } from "../src/node";
import { inspect as inspectFolder } from "../src/api/inspect";
import { ModelError, WeightsoupError } from "../src/errors";
import { BlobFolder, type ModelFolder } from "../src/io/folder";
import { NodeFolder } from "../src/io/node-folder";
import { baseModel, CLI, fineTune, readOutput, removeDir, tempDir, TINY, WORKER_URL, writeCase, writeModel } from "./helpers/fixtures";
import { encodeTensor, writeSafetensors } from "./reference/safetensors";
import type { RefModel } from "./reference/merge";

let root: string, recipe: string;
let n = 0;
const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
before(async () => {
  root = await tempDir();
  const base = baseModel(101);
  recipe = await writeCase(join(root, "case"), { base, a: fineTune(base, 102, 0.1) }, {
    merge_method: "task_arithmetic", base_model: "./base", models: [{ model: "./a", parameters: { weight: 0.5 } }],
  });
});
after(async () => { await removeDir(root); });

describe("library options are checked before anything runs", () => {
  for (const [key, value] of [
    ["workers", NaN], ["workers", 0], ["workers", 1.5], ["workers", -1], ["workers", "2"], ["workers", Infinity],
    ["seed", NaN], ["seed", -1], ["seed", 2 ** 32], ["memoryBudget", NaN], ["memoryBudget", 2 ** 33], ["chunkBytes", 0],
    ["chunkBytes", NaN], ["outShardSize", NaN], ["outShardSize", 0], ["chunkElements", 0.5],
  ] as const) {
    test(`${key}: ${String(typeof value === "string" ? `"${value}"` : value)} is an OptionError naming ${key}, and nothing is written`, async () => {
      const out = join(root, `opt-${n++}`);
      await assert.rejects(merge(recipe, { out, workerUrl: WORKER_URL, [key]: value }), (e: unknown) => {
        assert.ok(e instanceof WeightsoupError && e.code === "E_OPTION", String(e));
        assert.ok(e.message.includes(key) && e.message.includes(typeof value === "string" ? `"${value}"` : String(value)), e.message);
        return true;
      });
      assert.ok(!existsSync(out));
    });
  }
  // Found by an audit: from plain JavaScript these failed deep inside as TypeErrors with no code.
  test("a models lookup that finds nothing (a Map's get) is E_MODEL_NOT_FOUND naming the model, and nothing is written", async () => {
    const { merge: mergeWith } = await import("../src/api/merge");
    const { MemoryOutputFolder } = await import("../src/io/memory-output");
    const folders = new Map([["./base", await NodeFolder.open(join(root, "case", "base"))]]);
    let opened = false;
    const out = async () => { opened = true; return new MemoryOutputFolder("m"); };
    await assert.rejects(mergeWith(await readFile(recipe, "utf8"), { models: (name) => folders.get(name), out, workerUrl: WORKER_URL }), (e: unknown) => {
      assert.ok(e instanceof WeightsoupError && e.code === "E_MODEL_NOT_FOUND", String(e));
      assert.match(e.message, /model "\.\/a": the models option found no folder for it/);
      return true;
    });
    assert.equal(opened, false, "no output was opened");
  });

  test("arguments and options of the wrong kind are OptionErrors naming them, from merge, plan, evaluate, sweep, align and parseRecipe", async () => {
    const out = join(root, `opt-${n++}`);
    for (const [call, key] of [
      [() => merge(recipe, undefined as never), "options"],
      [() => merge(recipe, { out: 42 as never }), "out"],
      [() => merge(recipe, { out, signal: {} as never }), "signal"],
      [() => merge(recipe, { out, force: "yes" as never }), "force"],
      [() => merge(null as never, { out }), "recipe"],
      [() => plan(null as never), "recipe"],
      [() => evaluate([join(root, "case", "base")], { text: 5 as never }), "text"],
      [() => evaluate([join(root, "case", "base")], { ids: { length: 3 } as never }), "ids"],
      [() => evaluate(join(root, "case", "base") as never, { text: "the cat" }), "subjects"],
      [() => sweep(recipe, null as never, { text: "the cat" }), "vary"],
      [async () => parseRecipe(null as never), "text"],
      [() => align(join(root, "case", "base"), join(root, "case", "a"), { out, spec: "Llama" as never }), "spec"],
      [() => align(join(root, "case", "base"), join(root, "case", "a"), { out, spec: null as never }), "spec"],
    ] as const) {
      await assert.rejects(call(), (e: unknown) => {
        assert.ok(e instanceof WeightsoupError && e.code === "E_OPTION" && e.details.key === key, String(e));
        return true;
      });
    }
    assert.ok(!existsSync(out));
  });
  test("out-of-range CLI flags are usage errors (exit 2) before anything is read", () => {
    for (const flags of [["--workers", "0"], ["--workers", "1000"], ["--memory-budget", "8GiB"], ["--memory-budget", "1000"], ["--chunk-size", "0.5"], ["--seed", "4294967296"], ["--out-shard-size", "0"]]) {
      const r = cli("merge", join(root, "no-such-recipe.yml"), join(root, "never"), ...flags);
      assert.equal(r.status, 2, `${flags.join(" ")}: ${r.stderr}`);
      assert.ok(r.stderr.includes(flags[0]!), r.stderr);
    }
  });
});

describe("the Hugging Face cache, as huggingface_hub lays it out", () => {
  test("org/name and org/name@revision resolve to a snapshot whose files are symbolic links into blobs/", async () => {
    const hub = join(root, "hub");
    const repo = join(hub, "models--acme--tiny-llama");
    const commit = "0123456789abcdef0123456789abcdef01234567";
    const staging = join(root, "hub-staging");
    const base = baseModel(103);
    await writeModel(staging, { ...base, config: { ...base.config, _name_or_path: "/home/someone/checkpoints/tiny" } });
    await mkdir(join(repo, "blobs"), { recursive: true });
    await mkdir(join(repo, "snapshots", commit), { recursive: true });
    await mkdir(join(repo, "refs"), { recursive: true });
    await writeFile(join(repo, "refs", "main"), commit);
    for (const [i, file] of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"].entries()) {
      const blob = join(repo, "blobs", `blob${i}`);
      await rename(join(staging, file), blob);
      await symlink(`../../blobs/blob${i}`, join(repo, "snapshots", commit, file));
    }
    const dir = join(root, `hubcase-${n++}`);
    await writeModel(join(dir, "local-ft"), fineTune(base, 104, 0.1));
    await writeFile(join(dir, "r.yml"), `merge_method: task_arithmetic\nbase_model: acme/tiny-llama\nmodels:\n  - {model: ./local-ft, parameters: {weight: 1}}\n  - {model: "acme/tiny-llama@${commit}", parameters: {weight: 0.1}}\n`);
    const out = join(dir, "out");
    const r = spawnSync(process.execPath, [CLI, "merge", join(dir, "r.yml"), out, "--quiet"], { encoding: "utf8", env: { ...process.env, HF_HUB_CACHE: hub } });
    assert.equal(r.status, 0, r.stderr);
    // The model card names the cache's repo id in its front matter, and no local path there.
    const card = await readFile(join(out, "README.md"), "utf8");
    const front = card.split("---")[1]!;
    assert.match(front, /base_model:\n- "acme\/tiny-llama"\n/);
    assert.doesNotMatch(front, /local-ft|\/home\/|\.\//);
    assert.ok(card.includes("./local-ft (a local model)"), "local models are named in the text");
  });

  // Found by an audit: a weight file's link into a blob never downloaded was passed over, and the model
  // reported as having no weights ("it holds config.json") without naming the link.
  test("a .safetensors link to a missing blob is E_MODEL_NOT_FOUND naming the link", async () => {
    const dir = join(root, `dangling-${n++}`);
    const base = baseModel(107);
    await writeModel(join(dir, "m"), base);
    await rename(join(dir, "m", "model.safetensors"), join(dir, "blob"));
    await symlink(join(dir, "missing-blob"), join(dir, "m", "model.safetensors"));
    const r = cli("inspect", join(dir, "m"));
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`\\[E_MODEL_NOT_FOUND\\] ${join(dir, "m", "model.safetensors").replaceAll(".", "\\.")}: cannot follow its symbolic link: no such file`));
  });

  test('a local path that does not exist ("./nope") is reported as such, not looked up in the cache', async () => {
    const dir = join(root, `nope-${n++}`);
    await mkdir(dir);
    await writeFile(join(dir, "r.yml"), "merge_method: linear\nmodels:\n  - {model: ./nope, parameters: {weight: 1}}\n");
    const r = cli("merge", join(dir, "r.yml"), join(dir, "out"));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /\[E_MODEL_NOT_FOUND\]/);
    assert.ok(r.stderr.includes(join(dir, "nope")) && r.stderr.includes("does not exist"), r.stderr);
    assert.doesNotMatch(r.stderr, /models--/);
  });

  test("a config naming a repo id as _name_or_path puts it in the card's front matter", async () => {
    const dir = join(root, `named-${n++}`);
    const base = baseModel(105);
    const recipePath = await writeCase(dir, { base: { ...base, config: { ...base.config, _name_or_path: "acme/base-1b" } }, a: fineTune(base, 106, 0.1) }, {
      merge_method: "task_arithmetic", base_model: "./base", models: [{ model: "./a", parameters: { weight: 1 } }],
    });
    await merge(recipePath, { out: join(dir, "out"), workerUrl: WORKER_URL });
    const front = (await readFile(join(dir, "out", "README.md"), "utf8")).split("---")[1]!;
    assert.match(front, /base_model:\n- "acme\/base-1b"\n/);
  });
});

describe("files that are not what they seem", () => {
  test("a FIFO as a model path, as model.safetensors, or as the recipe is refused at once", async () => {
    const dir = join(root, `fifo-${n++}`);
    const base = baseModel(107);
    await writeModel(join(dir, "base"), base);
    await mkdir(join(dir, "piped"));
    assert.equal(spawnSync("mkfifo", [join(dir, "pipe.safetensors"), join(dir, "piped", "model.safetensors"), join(dir, "recipe-pipe.yml")]).status, 0);
    for (const [model, where] of [["./pipe.safetensors", "pipe.safetensors"], ["./piped", "piped/model.safetensors"]]) {
      await writeFile(join(dir, "r.yml"), `merge_method: task_arithmetic\nbase_model: ./base\nmodels:\n  - {model: ${model}, parameters: {weight: 1}}\n`);
      const r = cli("merge", join(dir, "r.yml"), join(dir, "out"));
      assert.notEqual(r.signal, "SIGKILL", "blocked on the FIFO");
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /\[E_NOT_REGULAR_FILE\]/);
      assert.ok(r.stderr.includes(where), r.stderr);
    }
    const r = cli("merge", join(dir, "recipe-pipe.yml"), join(dir, "out"));
    assert.notEqual(r.signal, "SIGKILL", "blocked on the FIFO");
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /\[E_NOT_REGULAR_FILE\]/);
  });

  // Found by an audit: a folder named config.json counted as no config, and the merge wrote an output without one.
  test("a folder named config.json is refused, naming it, and nothing is written", async () => {
    const dir = join(root, `folder-config-${n++}`);
    const base = baseModel(108);
    await writeModel(join(dir, "base"), base);
    await writeModel(join(dir, "a"), fineTune(base, 109, 0.1));
    await rm(join(dir, "a", "config.json"));
    await mkdir(join(dir, "a", "config.json"));
    await writeFile(join(dir, "r.yml"), "merge_method: task_arithmetic\nbase_model: ./base\nmodels:\n  - {model: ./a, parameters: {weight: 1}}\n");
    const r = cli("merge", join(dir, "r.yml"), join(dir, "out"));
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`\\[E_NOT_REGULAR_FILE\\] ${join(dir, "a", "config.json").replaceAll(".", "\\.")}: is a folder`));
    assert.equal(existsSync(join(dir, "out")), false);
  });

  for (const [label, content, code, words] of [
    ["a git-lfs pointer", "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n", "E_LFS_POINTER", "git lfs pull"],
    ["an HTML page", "<!DOCTYPE html>\n<html><head><title>Hugging Face</title></head><body>...</body></html>\n", "E_NOT_SAFETENSORS", "HTML page"],
    ["a zip (PyTorch) archive", "PK\x03\x04\x14\x00\x00\x00\x08\x00archive/data.pkl", "E_NOT_SAFETENSORS", "PyTorch"],
  ] as const) {
    test(`${label} saved as .safetensors says what it is`, async () => {
      const file = join(root, `impostor-${n++}.safetensors`);
      await writeFile(file, content);
      await assert.rejects(inspect(file), (e: unknown) => {
        assert.ok(e instanceof WeightsoupError && e.code === code, String(e));
        assert.ok(e.message.includes(words) && e.message.includes(file), e.message);
        assert.doesNotMatch(e.message, /declared header length/);
        return true;
      });
    });
  }

  test("a PyTorch-only folder names the files it holds and says only safetensors is read", async () => {
    const dir = join(root, `torch-${n++}`);
    await mkdir(dir);
    for (const f of ["pytorch_model.bin", "config.json", "tokenizer.json"]) await writeFile(join(dir, f), f === "config.json" ? "{}" : "x");
    await assert.rejects(inspect(dir), (e: unknown) => {
      assert.ok(e instanceof WeightsoupError && e.code === "E_NO_WEIGHTS", String(e));
      for (const w of ["pytorch_model.bin", "config.json", "tokenizer.json", "safetensors only"]) assert.ok(e.message.includes(w), `${w}: ${e.message}`);
      return true;
    });
  });
});

describe("which .safetensors files are the model", () => {
  // Mistral's repositories carry consolidated.safetensors (the same weights under Mistral's own names)
  // beside the transformers files; read as part of the model, its tensors went into the output too, and
  // its `layers.N` stack could be taken for the decoder's.
  test("beside model.safetensors (no index), another .safetensors file is not read, as transformers does not load it; inspect names it", async () => {
    const dir = join(root, `consolidated-${n++}`);
    const base = baseModel(131);
    await writeModel(dir, base);
    const mistral = new Map([["layers.0.attention.wq.weight", base.tensors.get("model.layers.0.self_attn.q_proj.weight")!], ["tok_embeddings.weight", base.tensors.get("model.embed_tokens.weight")!]]);
    await writeFile(join(dir, "consolidated.safetensors"), writeSafetensors([...mistral].map(([name, t]) => ({ name, dtype: "F32", shape: t.shape, data: encodeTensor("F32", t.values!) }))));
    const report = await inspect(dir);
    assert.deepEqual(report.tensors.map((t) => t.name).sort(), [...base.tensors.keys()].sort());
    assert.deepEqual(report.unreadWeightFiles, ["consolidated.safetensors"]);
    assert.deepEqual(report.weightFiles.map((f) => f.file), ["model.safetensors"]);
    const shown = cli("inspect", dir);
    assert.equal(shown.status, 0, shown.stderr);
    assert.match(shown.stdout, /not read, as transformers does not load them either: consolidated\.safetensors/);
    const recipePath = join(dir, "..", `consolidated-${n++}.yml`);
    await writeFile(recipePath, `merge_method: passthrough\nmodels:\n  - model: ./${dir.split("/").pop()}\n`);
    const out = join(root, `out-${n++}`);
    await merge(recipePath, { out, workerUrl: WORKER_URL, workers: 1 });
    assert.deepEqual((await inspect(out)).tensors.map((t) => t.name).sort(), [...base.tensors.keys()].sort(), "the output holds the model's tensors only");
  });

  // transformers loads model.safetensors when a folder has one, even beside an index; mergekit reads the
  // index's shards. Where the two hold different tensors, which one is the model cannot be told.
  test("beside an index naming other shards, a model.safetensors with the same tensors is not read (the shards are, as mergekit reads them); one with other tensors is E_INDEX naming the tensor", async () => {
    const dir = join(root, `both-${n++}`);
    const base = baseModel(151), other = fineTune(base, 152, 0.5);
    await writeModel(join(dir, "same"), base, { shards: 2 });
    const stale = (model: typeof base) => writeSafetensors([...model.tensors].map(([name, t]) => ({ name, dtype: "F32", shape: t.shape, data: encodeTensor("F32", t.values!) })));
    await writeFile(join(dir, "same", "model.safetensors"), stale(other));
    const report = await inspect(join(dir, "same"));
    assert.deepEqual(report.unreadWeightFiles, ["model.safetensors"]);
    assert.deepEqual(report.weightFiles.map((f) => f.file), ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]);
    const shown = cli("inspect", join(dir, "same"));
    assert.equal(shown.status, 0, shown.stderr);
    assert.match(shown.stdout, /not read: model\.safetensors, beside an index/);
    assert.doesNotMatch(shown.stdout, /as transformers does not load them either/);
    await writeFile(join(dir, "r.yml"), "merge_method: passthrough\nmodels:\n  - model: ./same\n");
    const out = join(dir, "out");
    await merge(join(dir, "r.yml"), { out, workerUrl: WORKER_URL, workers: 1 });
    const merged = (await readOutput(out)).tensors;
    for (const [name, t] of base.tensors) {
      assert.deepEqual(merged.get(name)?.data, encodeTensor("F32", t.values!), `${name} is the shards' (the base's), not model.safetensors'`);
    }

    const dropped = [...base.tensors.keys()].sort()[0]!;
    const fewer = { ...base, tensors: new Map([...base.tensors].filter(([name]) => name !== dropped)) };
    for (const [label, single, tensor] of [["a tensor missing", fewer, dropped], ["an extra tensor", { ...base, tensors: new Map([...base.tensors, ["extra.weight", base.tensors.get(dropped)!]]) }, "extra.weight"]] as const) {
      const folder = join(dir, `differ-${n++}`);
      await writeModel(folder, base, { shards: 2 });
      await writeFile(join(folder, "model.safetensors"), stale(single));
      await assert.rejects(NodeFolder.open(folder).then((f) => openModel(f)), (e: unknown) => {
        assert.ok(e instanceof WeightsoupError && e.code === "E_INDEX", `${label}: ${String(e)}`);
        assert.equal(e.details.tensor, tensor, label);
        assert.match(e.message, /holds both model\.safetensors and model\.safetensors\.index\.json.*transformers loads model\.safetensors/, label);
        return true;
      });
    }
  });
});

describe("files an output does not take from its donor model", () => {
  // transformers, finding adapter_config.json in a folder (with peft installed), loads the base model the
  // config names with that adapter, not the weights beside it: a merge carrying one would load as something else.
  test("a PEFT adapter_config.json beside a model's weights is not copied into the merge; its other files are", async () => {
    const dir = join(root, `adapter-beside-${n++}`);
    await writeModel(join(dir, "base"), baseModel(141), { extraFiles: { "adapter_config.json": JSON.stringify({ peft_type: "LORA", base_model_name_or_path: "org/other", r: 8 }) } });
    await writeFile(join(dir, "r.yml"), "merge_method: passthrough\nmodels:\n  - model: ./base\n");
    const out = join(dir, "out");
    await merge(join(dir, "r.yml"), { out, workerUrl: WORKER_URL, workers: 1 });
    const files = await readdir(out);
    assert.ok(!files.includes("adapter_config.json"), files.join(", "));
    for (const f of ["tokenizer.json", "generation_config.json", "config.json", "model.safetensors"]) assert.ok(files.includes(f), `${f} in ${files.join(", ")}`);
  });
});

describe("headers", () => {
  test("inspect reads each weight file's header once", async () => {
    const model = join(root, "case", "base");
    const inner = await NodeFolder.open(model);
    const reads = new Map<string, number>();
    const counting: ModelFolder = {
      name: inner.name, list: () => inner.list(), readText: (f) => inner.readText(f),
      source: (f) => { reads.set(f, (reads.get(f) ?? 0) + 1); return inner.source(f); },
    };
    await inspectFolder(counting);
    assert.deepEqual(reads.get("model.safetensors"), 1);
  });

  test("a tensor listed by a 100,000-tensor header is found once each, in data order", async () => {
    const count = 100_000;
    const parts: string[] = [];
    for (let i = 0; i < count; i++) parts.push(`"t${i}":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`);
    const json = new TextEncoder().encode(`{${parts.join(",")}}`);
    const bytes = new Uint8Array(8 + json.length);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
    bytes.set(json, 8);
    const model = await openModel(new BlobFolder("many", new Map([["model.safetensors", new Blob([bytes])]])));
    assert.equal(model.tensors.size, count);
    assert.equal(model.weightFiles[0]!.tensors, count);
  });
});

describe("config.json", () => {
  test("only the keys that must change are changed; numbers keep their formatting", async () => {
    const dir = join(root, `config-${n++}`);
    const base = baseModel(109);
    const recipePath = await writeCase(dir, { base, a: fineTune(base, 110, 0.1) }, {
      merge_method: "task_arithmetic", base_model: "./base", dtype: "bfloat16", models: [{ model: "./a", parameters: { weight: 1 } }],
    });
    const text = `{\n    "architectures": ["LlamaForCausalLM"],\n    "model_type": "llama",\n    "rope_theta": 10000.0,\n    "rms_norm_eps": 1e-05,\n    "attention_dropout": 0.0,\n` +
      `    "vocab_size": ${TINY.vocab}, "hidden_size": ${TINY.hidden},\n    "num_hidden_layers": 3,\n    "torch_dtype": "float32",\n    "note": "keep \\"quoted\\" text, {braces} and [brackets]"\n}\n`;
    await writeFile(join(dir, "base", "config.json"), text);
    await merge(recipePath, { out: join(dir, "out"), workerUrl: WORKER_URL });
    assert.equal(await readFile(join(dir, "out", "config.json"), "utf8"), text.replace('"torch_dtype": "float32"', '"torch_dtype": "bfloat16"'));
  });

  // From an audit: a tied base and untied fine-tunes gave a written lm_head under the base's
  // tie_word_embeddings: true; transformers 4 replaces such a head by the embedding (5 keeps it and warns).
  test("a head merged from untied models under a tied base's config is stated untied; all tied, the config is kept", async () => {
    const tiedOf = (m: RefModel): RefModel => {
      const tensors = new Map(m.tensors);
      tensors.delete("lm_head.weight");
      return { config: { ...m.config, tie_word_embeddings: true }, tensors };
    };
    const base = baseModel(115);
    const untied = { ...fineTune(base, 116, 0.1) };
    untied.config = { ...untied.config, tie_word_embeddings: false };
    for (const [label, a, expected] of [["untied fine-tune", untied, false], ["tied fine-tune", tiedOf(fineTune(base, 117, 0.1)), true]] as const) {
      const dir = join(root, `config-${n++}`);
      const recipePath = await writeCase(dir, { base: tiedOf(base), a }, { merge_method: "linear", models: [{ model: "./base", parameters: { weight: 0.5 } }, { model: "./a", parameters: { weight: 0.5 } }] });
      await merge(recipePath, { out: join(dir, "out"), workerUrl: WORKER_URL });
      const config = JSON.parse(await readFile(join(dir, "out", "config.json"), "utf8"));
      assert.equal(config.tie_word_embeddings, expected, label);
      assert.equal((await readOutput(join(dir, "out"))).tensors.has("lm_head.weight"), !expected, `${label}: the head is written where a model has its own`);
    }
  });

  test("a transformers 5 config with only `dtype` gets `dtype` set, and inspect reports it as dtype", async () => {
    const dir = join(root, `config-${n++}`);
    const base = baseModel(111);
    const { torch_dtype: _, ...v5 } = base.config as Record<string, unknown>;
    const recipePath = await writeCase(dir, { base: { ...base, config: { ...v5, dtype: "float32" } }, a: fineTune(base, 112, 0.1) }, {
      merge_method: "task_arithmetic", base_model: "./base", out_dtype: "float16", models: [{ model: "./a", parameters: { weight: 1 } }],
    });
    await merge(recipePath, { out: join(dir, "out"), workerUrl: WORKER_URL });
    const config = JSON.parse(await readFile(join(dir, "out", "config.json"), "utf8"));
    assert.equal(config.dtype, "float16");
    assert.ok(!("torch_dtype" in config));
    const r = cli("inspect", join(dir, "base"));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /\bdtype="float32"/);
    assert.doesNotMatch(r.stdout, /torch_dtype/);
  });

  test("a passthrough that changes the layers rebuilds layer_types (Qwen2/Qwen3) from each output layer's source", async () => {
    const dir = join(root, `qwen-${n++}`);
    const base = baseModel(113, "F32", { ...TINY, layers: 3 });
    const types = ["full_attention", "sliding_attention", "full_attention"];
    const config = { ...base.config, model_type: "qwen2", architectures: ["Qwen2ForCausalLM"], layer_types: types, max_window_layers: 3, use_sliding_window: true };
    const recipePath = await writeCase(dir, { q: { ...base, config } }, {
      merge_method: "passthrough",
      slices: [{ sources: [{ model: "./q", layer_range: [0, 2] }] }, { sources: [{ model: "./q", layer_range: [1, 3] }] }],
    });
    await merge(recipePath, { out: join(dir, "out"), workerUrl: WORKER_URL });
    const out = JSON.parse(await readFile(join(dir, "out", "config.json"), "utf8"));
    assert.equal(out.num_hidden_layers, 4);
    assert.deepEqual(out.layer_types, [types[0], types[1], types[1], types[2]]);
    assert.deepEqual(out.architectures, ["Qwen2ForCausalLM"]);
  });

  test("a frankenmerge of a BF16 and an F16 model writes each layer in its donor's dtype, byte for byte; out_dtype makes them one", async () => {
    const dir = join(root, `dtypes-${n++}`);
    const b = baseModel(115, "BF16"), f = baseModel(116, "F16");
    const slices = [{ sources: [{ model: "./b", layer_range: [0, 2] }] }, { sources: [{ model: "./f", layer_range: [1, 3] }] }];
    const recipePath = await writeCase(dir, { b, f }, { merge_method: "passthrough", slices });
    await merge(recipePath, { out: join(dir, "out"), workerUrl: WORKER_URL });
    const { tensors } = await readOutput(join(dir, "out"));
    // Output layers 0, 1 are b's 0, 1; output layers 2, 3 are f's 1, 2. Embeddings from the first slice's model, the head from the last's.
    const donor = (name: string): [RefModel, string, string] => {
      const m = /^model\.layers\.(\d+)\.(.*)$/.exec(name);
      if (!m) return name.startsWith("model.embed_tokens") ? [b, name, "BF16"] : [f, name, "F16"];
      const i = Number(m[1]);
      return i < 2 ? [b, name, "BF16"] : [f, `model.layers.${i - 1}.${m[2]}`, "F16"];
    };
    assert.equal(tensors.size, b.tensors.size + 9, "4 layers of 9 tensors, plus embeddings, final norm and head");
    for (const [name, t] of tensors) {
      const [model, source, dtype] = donor(name);
      assert.equal(t.dtype, dtype, name);
      assert.deepEqual(t.data, encodeTensor(dtype as "BF16" | "F16", model.tensors.get(source)!.values!), `${name} is ${source} as stored`);
    }
    const one = await writeCase(join(dir, "one"), { b, f }, { merge_method: "passthrough", out_dtype: "float32", slices });
    await merge(one, { out: join(dir, "one", "out"), workerUrl: WORKER_URL });
    for (const [name, t] of (await readOutput(join(dir, "one", "out"))).tensors) {
      const [model, source] = donor(name);
      assert.deepEqual(t.data, encodeTensor("F32", model.tensors.get(source)!.values!), `${name} widened exactly to F32`);
    }
  });

  // Configs that give a layer its kind by its position (transformers recomputes it from the output
  // layer's index). The slices [0, 2) + [1, 3) of a 3-layer model give the output layers 0, 1, 1, 2.
  const F = "full_attention", S = "sliding_attention";
  const movedLayers = async (extra: Record<string, unknown>) => {
    const dir = join(root, `positional-${n++}`);
    const base = baseModel(114, "F32", { ...TINY, layers: 3 });
    const recipePath = await writeCase(dir, { m: { ...base, config: { ...base.config, ...extra } } }, {
      merge_method: "passthrough",
      slices: [{ sources: [{ model: "./m", layer_range: [0, 2] }] }, { sources: [{ model: "./m", layer_range: [1, 3] }] }],
    });
    return { recipePath, out: join(dir, "out") };
  };
  const mergedConfig = async (extra: Record<string, unknown>) => {
    const { recipePath, out } = await movedLayers(extra);
    await merge(recipePath, { out, workerUrl: WORKER_URL });
    return JSON.parse(await readFile(join(out, "config.json"), "utf8")) as Record<string, unknown>;
  };

  test("moved layers keep the attention kind their position gave them, stated in layer_types where the config left it implied", async () => {
    // Qwen2: layers from max_window_layers on slide. Source [F, F, S]; output [F, F, F, S], where
    // transformers' rule for 4 layers would give [F, F, S, S].
    assert.deepEqual((await mergedConfig({ model_type: "qwen2", use_sliding_window: true, max_window_layers: 2 })).layer_types, [F, F, F, S]);
    // Gemma 2: odd positions slide. Source [S, F, S]; output [S, F, F, S] (the rule: [S, F, S, F]).
    assert.deepEqual((await mergedConfig({ model_type: "gemma2" })).layer_types, [S, F, F, S]);
    // Gemma 3: every sliding_window_pattern-th is full. Source [S, S, F]; output [S, S, S, F] (rule: [S, S, F, S]).
    assert.deepEqual((await mergedConfig({ model_type: "gemma3_text", sliding_window_pattern: 3 })).layer_types, [S, S, S, F]);
    // Where the rule gives the output the same kinds, the config is left as it was.
    assert.ok(!("layer_types" in (await mergedConfig({ model_type: "qwen2", use_sliding_window: false, max_window_layers: 2 }))));
    assert.ok(!("layer_types" in (await mergedConfig({ model_type: "gemma3_text" }))), "pattern 6: all four slide either way");
  });

  test("moved layers keep their MLP kind in a Qwen-MoE config: mlp_only_layers restated from the sources, decoder_sparse_step 1", async () => {
    // mlp_only_layers [1]: source kinds [moe, dense, moe]; output [moe, dense, dense, moe].
    const out = await mergedConfig({ model_type: "qwen3_moe", mlp_only_layers: [1], decoder_sparse_step: 1, num_experts: 4 });
    assert.deepEqual(out.mlp_only_layers, [1, 2]);
    assert.equal(out.decoder_sparse_step, 1);
    // decoder_sparse_step 2: source [dense, moe, dense]; output [dense, moe, moe, dense].
    const stepped = await mergedConfig({ model_type: "qwen2_moe", decoder_sparse_step: 2, num_experts: 4 });
    assert.deepEqual(stepped.mlp_only_layers, [0, 3]);
    assert.equal(stepped.decoder_sparse_step, 1);
  });

  test("moving layers of a config whose positional rule is not known, or of a GPT-2 that scales attention by layer index, is refused", async () => {
    for (const [extra, key] of [
      [{ model_type: "gpt2", scale_attn_by_inverse_layer_idx: true }, /scale_attn_by_inverse_layer_idx/],
      [{ model_type: "deepseek_v3", first_k_dense_replace: 1 }, /first_k_dense_replace: 1/],
      [{ model_type: "exaone4", sliding_window_pattern: 4 }, /sliding_window_pattern: 4/],
      [{ model_type: "lfm2_moe", num_dense_layers: 1 }, /num_dense_layers: 1/],
      [{ model_type: "jamba", attn_layer_period: 2, attn_layer_offset: 1 }, /attn_layer_period: 2/],
      [{ model_type: "recurrent_gemma", block_types: ["recurrent", "attention"] }, /block_types: .*repeats over the layers/],
      // A model_type that names an Object.prototype member is a family like any unknown one.
      [{ model_type: "constructor", max_window_layers: 2 }, /max_window_layers: 2/],
    ] as const) {
      const { recipePath, out } = await movedLayers(extra);
      await assert.rejects(merge(recipePath, { out, workerUrl: WORKER_URL }), (e: unknown) => {
        assert.ok(e instanceof ModelError, String(e));
        assert.equal(e.code, "E_CONFIG");
        assert.match(e.message, key);
        assert.match(e.message, /m\/config\.json/);
        return true;
      });
      await assert.rejects(stat(out), "nothing is written");
    }
    // Whatever the keys: where the donor's layers differ in their tensors (here layer 0 has no gate_proj,
    // as a dense layer among expert ones has other tensors), an output layer must hold what the donor's
    // layer at its index holds. Slices [1, 2) + [0, 1) + [2, 3) put layer 1 first.
    const mixedDir = join(root, `positional-${n++}`);
    const mixed = baseModel(116, "F32", { ...TINY, layers: 3 });
    mixed.tensors.delete("model.layers.0.mlp.gate_proj.weight");
    const mixedRecipe = await writeCase(mixedDir, { m: mixed }, {
      merge_method: "passthrough",
      slices: [[1, 2], [0, 1], [2, 3]].map((range) => ({ sources: [{ model: "./m", layer_range: range }] })),
    });
    await assert.rejects(merge(mixedRecipe, { out: join(mixedDir, "out"), workerUrl: WORKER_URL }), (e: unknown) => {
      assert.ok(e instanceof ModelError, String(e));
      assert.equal(e.code, "E_CONFIG");
      assert.match(e.message, /output layer 0 is layer 1 of \.\/m, whose tensors differ from those of layer 0/);
      return true;
    });
    // The donor's layers all alike, a layer taken from a model whose layer lacks one of their tensors:
    // transformers would build it with that tensor newly initialised (found by the stop 37 audit: written,
    // exit 0, where the slices in the other order were refused).
    const lackingDir = join(root, `positional-${n++}`);
    const lacking = baseModel(117, "F32", { ...TINY, layers: 2 });
    lacking.tensors.delete("model.layers.1.mlp.up_proj.weight");
    const lackingRecipe = await writeCase(lackingDir, { full: baseModel(118, "F32", { ...TINY, layers: 2 }), lacking }, {
      merge_method: "passthrough",
      slices: [{ sources: [{ model: "./full", layer_range: [0, 1] }] }, { sources: [{ model: "./lacking", layer_range: [1, 2] }] }],
    });
    await assert.rejects(merge(lackingRecipe, { out: join(lackingDir, "out"), workerUrl: WORKER_URL }), (e: unknown) => {
      assert.ok(e instanceof ModelError, String(e));
      assert.equal(e.code, "E_CONFIG");
      assert.match(e.message, /output layer 1 is layer 1 of \.\/lacking, which has no "model\.layers\.1\.mlp\.up_proj\.weight"/);
      return true;
    });
    await assert.rejects(stat(join(lackingDir, "out")), "nothing is written");
    // Layers that stay at their index are fine: slices [0, 2) + [2, 3) of the same model.
    const dir = join(root, `positional-${n++}`);
    const base = baseModel(115, "F32", { ...TINY, layers: 3 });
    const recipePath = await writeCase(dir, { m: { ...base, config: { ...base.config, model_type: "deepseek_v3", first_k_dense_replace: 1 } } }, {
      merge_method: "passthrough",
      slices: [{ sources: [{ model: "./m", layer_range: [0, 2] }] }, { sources: [{ model: "./m", layer_range: [2, 3] }] }],
    });
    await merge(recipePath, { out: join(dir, "out"), workerUrl: WORKER_URL });
  });
});
