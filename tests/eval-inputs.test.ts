// What `weightsoup eval` and `generate` take from outside: a text tokenized by the model's own
// tokenizer (BOS included), bits per byte over its UTF-8 bytes, pre-tokenized ids files, and every bad
// input the issue names as a typed error naming the file or key, with exit status 1 from the CLI.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { evaluate, generate, loadTokenizer } from "../src/node";
import { WeightsoupError } from "../src/errors";
import { NodeFolder } from "../src/io/node-folder";
import { writeLlamaModel } from "../src/example/models";
import { CLI, removeDir, tempDir, WORKER_URL } from "./helpers/fixtures";
import { type DecoderModel, decoderIds, decoderModel, readDecoderModel, writeDecoderModel } from "./helpers/decoder-models";
import { referenceEvaluation } from "./reference/decoder";
import { windowStartBytes } from "./helpers/window-bytes";

let root: string, model: string;
const TEXT = "We hold these truths to be self-evident, that all men are created equal.\nFour score and seven years ago… ünïcödé ✓\n";
const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 120_000, killSignal: "SIGKILL" });

before(async () => {
  root = await tempDir("ws-eval-in-");
  // A small Llama with the example's byte-level BPE tokenizer (1157 tokens, BOS <s>): vocab 1200.
  model = join(root, "small");
  await writeLlamaModel(model, { vocab: 1200, hidden: 32, intermediate: 64, layers: 2, heads: 4, kvHeads: 2 });
  await writeFile(join(root, "text.txt"), TEXT);
  await writeFile(join(root, "three.json"), "[1, 2, 3]");
});
after(async () => { await removeDir(root); });

describe("text in, numbers out", () => {
  test("the text is tokenized once by the model's tokenizer (BOS included), windowed, and bits per byte counts the UTF-8 bytes of the predicted tokens", async () => {
    const tokenizer = (await loadTokenizer(await NodeFolder.open(model)))!;
    const ids = tokenizer.encode(TEXT);
    assert.equal(ids[0], tokenizer.bosTokenId, "the post-processor's BOS comes first");
    const { results } = await evaluate([model], { text: TEXT, context: 16, workerUrl: WORKER_URL });
    const unscored = windowStartBytes(tokenizer, ids, 16);
    assert.ok(unscored > 0, "some window starts on a token with text");
    const reference = referenceEvaluation(await readDecoderModel(model), ids, { context: 16 });
    const bitsPerByte = reference.nllSum / Math.LN2 / (new TextEncoder().encode(TEXT).length - unscored);
    const r = results[0]!;
    assert.equal(r.tokens, ids.length);
    assert.equal(r.predicted, reference.predicted);
    assert.ok(Math.abs(r.nll - reference.nllMean) < 1e-5, `${r.nll} vs ${reference.nllMean}`);
    assert.ok(Math.abs(r.bitsPerByte! - bitsPerByte) < 1e-5, `${r.bitsPerByte} vs ${bitsPerByte}`);
    assert.notEqual(new TextEncoder().encode(TEXT).length, TEXT.length, "the text has multi-byte characters, so counting characters would differ");
  });

  test("--max-tokens cuts the tokens before windowing; bits per byte then counts the bytes of what was kept and predicted", async () => {
    const { results } = await evaluate([model], { text: TEXT, context: 8, maxTokens: 20, workerUrl: WORKER_URL });
    const tokenizer = (await loadTokenizer(await NodeFolder.open(model)))!;
    const kept = tokenizer.encode(TEXT).slice(0, 20);
    const reference = referenceEvaluation(await readDecoderModel(model), kept, { context: 8 });
    assert.equal(results[0]!.tokens, 20);
    assert.equal(results[0]!.predicted, 7 + 7 + 3);
    const bytes = new TextEncoder().encode(tokenizer.decode(kept, { skipSpecialTokens: true })).length - windowStartBytes(tokenizer, kept, 8);
    assert.ok(Math.abs(results[0]!.bitsPerByte! - reference.nllSum / Math.LN2 / bytes) < 1e-6);
  });

  test("the CLI prints the same numbers as JSON, and a table", async () => {
    const json = cli("eval", model, "--text", join(root, "text.txt"), "--context", "16", "--json", "--quiet");
    assert.equal(json.status, 0, json.stderr);
    const { results } = await evaluate([model], { text: TEXT, context: 16, workerUrl: WORKER_URL });
    assert.deepEqual(JSON.parse(json.stdout), { results: results.map((r) => ({ ...r })) });
    const table = cli("eval", model, "--text", join(root, "text.txt"), "--context", "16", "--quiet");
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, new RegExp(`${results[0]!.perplexity.toFixed(3)}`));
  });

  test("bits per byte are each model's own, whichever models share the run and in any order", async () => {
    // Found by the stop 37 audit: models run together when they tokenize alike, and the group kept the
    // first model's bytes; a model without a tokenizer (no bytes: null) gave its null to the next, or took
    // the bytes the other decoded.
    const bare = join(root, "small-no-tokenizer");
    await mkdir(bare);
    for (const file of ["config.json", "model.safetensors"]) await copyFile(join(model, file), join(bare, file));
    const ids = Array.from({ length: 300 }, (_, i) => 3 + ((i * 7) % 1100));
    const alone = new Map<string, unknown>();
    for (const dir of [model, bare]) alone.set(dir, (await evaluate([dir], { ids, context: 64, workers: 1, workerUrl: WORKER_URL })).results[0]);
    assert.equal((alone.get(bare) as { bitsPerByte: number | null }).bitsPerByte, null, "no tokenizer: no bytes");
    assert.ok(Number.isFinite((alone.get(model) as { bitsPerByte: number | null }).bitsPerByte), "its tokenizer decodes the ids to bytes");
    for (const order of [[model, bare], [bare, model]]) {
      const { results } = await evaluate(order, { ids, context: 64, workers: 1, workerUrl: WORKER_URL });
      for (const [i, dir] of order.entries()) assert.deepEqual(results[i], alone.get(dir), `${dir} after ${order.slice(0, i).join(", ") || "nothing"}`);
    }
  });

  test("pre-tokenized ids from a JSON file and from a .safetensors file give the same numbers", async () => {
    const tokenizer = (await loadTokenizer(await NodeFolder.open(model)))!;
    const ids = tokenizer.encode(TEXT);
    await writeFile(join(root, "ids.json"), JSON.stringify(ids));
    const bytes = new Uint8Array(ids.length * 4);
    new Int32Array(bytes.buffer).set(ids);
    const header = new TextEncoder().encode(JSON.stringify({ ids: { dtype: "I32", shape: [ids.length], data_offsets: [0, bytes.length] } }));
    const file = new Uint8Array(8 + header.length + bytes.length);
    new DataView(file.buffer).setBigUint64(0, BigInt(header.length), true);
    file.set(header, 8);
    file.set(bytes, 8 + header.length);
    await writeFile(join(root, "ids.safetensors"), file);
    const fromJson = JSON.parse(cli("eval", model, "--ids", join(root, "ids.json"), "--context", "16", "--json", "--quiet").stdout);
    const fromSafetensors = JSON.parse(cli("eval", model, "--ids", join(root, "ids.safetensors"), "--context", "16", "--json", "--quiet").stdout);
    const fromText = await evaluate([model], { text: TEXT, context: 16, workerUrl: WORKER_URL });
    assert.equal(fromJson.results[0].nll, fromText.results[0]!.nll);
    assert.deepEqual(fromSafetensors, fromJson);
  });

  test("generate streams the same text the tokenizer decodes from the ids it returns", async () => {
    const streamed: string[] = [];
    const out = await generate(model, { prompt: "We hold these", maxNewTokens: 10, onToken: (t) => streamed.push(t.text), workerUrl: WORKER_URL });
    const tokenizer = (await loadTokenizer(await NodeFolder.open(model)))!;
    assert.equal(streamed.join(""), tokenizer.decode(out.ids, { skipSpecialTokens: true }));
    assert.equal(out.text, streamed.join(""));
    const r = cli("generate", model, "--prompt", "We hold these", "--max-new-tokens", "10", "--json");
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).ids, out.ids, "the CLI's greedy tokens are the library's");
  });
});

describe("streamed text", () => {
  test("text the decoder still holds when generation stops reaches onToken: the pieces told add up to the result's text", async () => {
    // generate() added the decoder's last held-back text to the result but never told onToken, so the
    // CLI's streamed output lost the end of a character cut short by --max-new-tokens.
    const dir = join(root, "held-back");
    await writeLlamaModel(dir, { vocab: 1200, hidden: 32, intermediate: 64, layers: 2, heads: 4, kvHeads: 2 });
    // A zero final norm gives every logit 0, so greedy decoding takes id 0 every time (ties go to the
    // first, as torch's argmax gives them); id 0 is made the byte-level token of byte 0xE2, which starts a
    // three-byte character that never ends: each such byte decodes as one U+FFFD.
    const { config, tensors } = await readDecoderModel(dir);
    tensors.get("model.norm.weight")!.values.fill(0);
    await writeDecoderModel(dir, { variant: "llama", family: "llama", dtype: "BF16", config, tensors } as unknown as DecoderModel);
    const tokenizer = JSON.parse(await readFile(join(dir, "tokenizer.json"), "utf8"));
    const lead = "\u00e2"; // byte 0xE2 in the byte-level alphabet
    const leadId = tokenizer.model.vocab[lead];
    assert.equal(typeof leadId, "number");
    tokenizer.model.vocab[lead] = 0;
    tokenizer.model.vocab["<unk>"] = leadId;
    for (const t of tokenizer.added_tokens) if (t.content === "<unk>") t.id = leadId;
    await writeFile(join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
    const streamed: string[] = [];
    const told: number[] = [];
    const out = await generate(dir, { prompt: "We hold", maxNewTokens: 3, workerUrl: WORKER_URL, onToken: (t) => { streamed.push(t.text); told.push(t.id); } });
    assert.deepEqual(out.ids, [0, 0, 0]);
    assert.equal(out.text, "\uFFFD\uFFFD\uFFFD");
    assert.equal(streamed.join(""), out.text);
    assert.deepEqual(told, out.ids, "every id told once, in order");
    const r = cli("generate", dir, "--prompt", "We hold", "--max-new-tokens", "3");
    assert.equal(r.status, 0, r.stderr);
    assert.ok(r.stdout.includes("\uFFFD\uFFFD\uFFFD"), JSON.stringify(r.stdout));
  });
});

describe("cancelling", () => {
  test("an AbortSignal fired mid-evaluation rejects with AbortError and leaves no worker running", async () => {
    const controller = new AbortController();
    const layers: number[] = [];
    await assert.rejects(evaluate([model], {
      text: TEXT, context: 8, workerUrl: WORKER_URL, signal: controller.signal,
      onProgress: (e) => { if (e.type === "layer-done") { layers.push(e.layer); controller.abort(); } },
    }), (e: unknown) => e instanceof WeightsoupError && e.code === "E_ABORTED");
    assert.deepEqual(layers, [0], "stopped after the first layer");
  });

  test("and mid-generation", async () => {
    const controller = new AbortController();
    await assert.rejects(generate(model, { prompt: "We hold", maxNewTokens: 10_000, workerUrl: WORKER_URL, signal: controller.signal, onToken: () => controller.abort() }),
      (e: unknown) => e instanceof WeightsoupError && e.code === "E_ABORTED");
  });
});

describe("bad input: typed errors naming the file or key, exit status 1", () => {
  const expectFailure = async (run: () => Promise<unknown>, code: string, mentions: string[], argv?: string[]) => {
    await assert.rejects(run(), (e: unknown) => {
      assert.ok(e instanceof WeightsoupError, String(e));
      assert.equal(e.code, code, e.message);
      for (const m of mentions) assert.ok(e.message.includes(m), `${m} in: ${e.message}`);
      return true;
    });
    if (argv) {
      const r = cli(...argv);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`\\[${code}\\]`));
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    }
  };

  test("a text shorter than one token (and one of a single token: nothing to predict)", async () => {
    await writeFile(join(root, "empty.txt"), "");
    await expectFailure(() => evaluate([model], { text: "", workerUrl: WORKER_URL }), "E_DATA", ["token"], ["eval", model, "--text", join(root, "empty.txt")]);
    // Found by an audit: a --text file that is not there was reported as a missing model.
    const missing = cli("eval", model, "--text", join(root, "no-such-text.txt"));
    assert.equal(missing.status, 1, missing.stderr);
    assert.match(missing.stderr, /\[E_DATA\] .*no-such-text\.txt: cannot read the text to evaluate on/);
    const gpt = join(root, "gpt-no-bos");
    await writeDecoderModel(gpt, decoderModel("gpt2-prefixed"));
    await expectFailure(() => evaluate([gpt], { ids: [5], workerUrl: WORKER_URL }), "E_DATA", ["1 token"]);
  });

  test("a tokenizer with tokens past the model's vocab_size: the text or prompt is refused naming tokenizer.json and the token", async () => {
    // Found by an audit: "prompt ids must be integers from 0 to 599", with no file, for a text prompt.
    const short = join(root, "short-vocab");
    await writeLlamaModel(short, { vocab: 600, hidden: 32, intermediate: 64, layers: 1, heads: 4, kvHeads: 2 });
    for (const file of ["tokenizer.json", "tokenizer_config.json"]) await writeFile(join(short, file), await readFile(join(model, file)));
    const tokenizer = (await loadTokenizer(await NodeFolder.open(short)))!;
    const ids = tokenizer.encode(TEXT);
    const past = ids.find((id) => id >= 600)!;
    assert.ok(past !== undefined, "the text has a token past 600");
    const token = [...tokenizer.vocabulary()].find(([, id]) => id === past)![0];
    const mentions = [join(short, "tokenizer.json"), `token id ${past}`, JSON.stringify(token), "600"];
    await expectFailure(() => evaluate([short], { text: TEXT, workerUrl: WORKER_URL }), "E_TOKENIZER", mentions, ["eval", short, "--text", join(root, "text.txt")]);
    await expectFailure(() => generate(short, { prompt: TEXT, maxNewTokens: 2, workerUrl: WORKER_URL }), "E_TOKENIZER", mentions, ["generate", short, "--prompt", TEXT, "--max-new-tokens", "2"]);
    // Ids given as ids are the caller's: still E_DATA.
    await expectFailure(() => generate(short, { ids: [1, past], maxNewTokens: 2, workerUrl: WORKER_URL }), "E_DATA", ["599"]);
  });

  test("chat with prompt ids: the template wraps a text, so the library and the CLI refuse the pair", async () => {
    await writeFile(join(root, "chat-ids.json"), "[1, 2, 3]");
    await expectFailure(() => generate(model, { ids: [1, 2, 3], chat: true, maxNewTokens: 2, workerUrl: WORKER_URL }), "E_OPTION", ["chat", "ids"]);
    const r = cli("generate", model, "--ids", join(root, "chat-ids.json"), "--chat", "--max-new-tokens", "2");
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--chat .*--ids/);
    const plain = await generate(model, { ids: [1, 2, 3], maxNewTokens: 2, workerUrl: WORKER_URL });
    assert.equal(plain.promptTokens, 3, "without chat the same ids are the prompt");
  });

  test("generate()'s callbacks must be functions: anything else is E_OPTION naming the option", async () => {
    for (const key of ["onToken", "onWarning"]) {
      await expectFailure(() => generate(model, { ids: [1, 2, 3], maxNewTokens: 2, workerUrl: WORKER_URL, [key]: "print" }), "E_OPTION", [key, "function"]);
    }
  });

  test("generate()'s seeds are integers from 0 to 2^32 - 1: anything else is E_OPTION naming the option, and --merge-seed out of range exits 2", async () => {
    for (const [key, value] of [["seed", -1], ["mergeSeed", -1], ["mergeSeed", NaN], ["mergeSeed", 2 ** 32], ["mergeSeed", 1.5]] as const) {
      await expectFailure(() => generate(model, { ids: [1, 2, 3], maxNewTokens: 2, workerUrl: WORKER_URL, [key]: value }), "E_OPTION", [key, String(value)]);
    }
    const r = cli("generate", model, "--ids", join(root, "three.json"), "--merge-seed", "-1");
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--merge-seed/);
  });

  test("a model with no tokenizer and no ids file", async () => {
    const bare = join(root, "bare");
    await writeDecoderModel(bare, decoderModel("qwen3-qknorm"));
    await expectFailure(() => evaluate([bare], { text: TEXT, workerUrl: WORKER_URL }), "E_TOKENIZER", [bare, "--ids"], ["eval", bare, "--text", join(root, "text.txt")]);
  });

  test("an unknown architecture names model_type and the supported list", async () => {
    const odd = join(root, "odd");
    const m = decoderModel("llama-gqa-untied");
    await writeDecoderModel(odd, { ...m, config: { ...m.config, model_type: "mamba" } });
    await expectFailure(() => evaluate([odd], { ids: [1, 2, 3], workerUrl: WORKER_URL }), "E_ARCHITECTURE_UNSUPPORTED", ["odd/config.json", "mamba", "llama, mistral, qwen2, qwen3, gpt2"], ["eval", odd, "--ids", join(root, "three.json")]);
  });

  test("a config missing a needed key names the key", async () => {
    const missing = join(root, "missing");
    const m = decoderModel("llama-gqa-untied");
    const { intermediate_size: _, ...config } = m.config;
    await writeDecoderModel(missing, { ...m, config });
    await expectFailure(() => evaluate([missing], { ids: [1, 2, 3], workerUrl: WORKER_URL }), "E_CONFIG", ["missing/config.json", "intermediate_size"], ["eval", missing, "--ids", join(root, "three.json")]);
  });

  test("--against models with a different vocabulary", async () => {
    const a = join(root, "vocab-a"), b = join(root, "vocab-b");
    await writeDecoderModel(a, decoderModel("llama-gqa-untied"));
    await writeDecoderModel(b, decoderModel("llama-tied-headdim"));
    const ids = decoderIds(100, 12);
    await writeFile(join(root, "twelve.json"), JSON.stringify(ids));
    await expectFailure(() => evaluate([a], { ids, against: [b], workerUrl: WORKER_URL }), "E_VOCAB_MISMATCH", [b, "160", "128"], ["eval", a, "--against", b, "--ids", join(root, "twelve.json")]);
  });

  test("--against a model of another vocabulary than any evaluated model, not only the first", async () => {
    // Found by the stop 37 audit: only the first evaluated model was compared, so the second's KL was
    // computed over the first rows of the against model's output projection.
    const a = join(root, "vocab-a2"), b = join(root, "vocab-b2"), c = join(root, "vocab-c2");
    await writeDecoderModel(a, decoderModel("llama-gqa-untied", { seed: 3 }));
    await writeDecoderModel(b, decoderModel("llama-tied-headdim"));
    await writeDecoderModel(c, decoderModel("llama-gqa-untied", { seed: 4 }));
    const ids = decoderIds(100, 12);
    await expectFailure(() => evaluate([c, b], { ids, against: [a], workerUrl: WORKER_URL }), "E_VOCAB_MISMATCH", [a, b, "160", "128"]);
  });

  test("ids outside the vocabulary, a bad ids file, a sequence longer than GPT-2's positions", async () => {
    const small = join(root, "ids-model");
    await writeDecoderModel(small, decoderModel("gpt2-prefixed"));
    await expectFailure(() => evaluate([small], { ids: [1, 2, 100_000], workerUrl: WORKER_URL }), "E_DATA", ["100000"]);
    // Found by an audit: 2^32 + 3 wrapped round to token 3 and was scored as it.
    await expectFailure(() => evaluate([small], { ids: [1, 2, 2 ** 32 + 3], workerUrl: WORKER_URL }), "E_DATA", ["4294967299"]);
    await writeFile(join(root, "bad-ids.json"), '[1, "two", 3]');
    const r = cli("eval", small, "--ids", join(root, "bad-ids.json"));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /\[E_TOKENIZER\].*bad-ids\.json/);
    const positions = Number((JSON.parse(await readFile(join(small, "config.json"), "utf8")) as { n_positions: number }).n_positions);
    await expectFailure(() => evaluate([small], { ids: decoderIds(100, positions + 1), context: positions + 1, workerUrl: WORKER_URL }), "E_DATA", ["positions"]);
  });
});
