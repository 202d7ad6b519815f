// Vocabularies and tokenizers (issue 10 item 2): tokenizer_source / tokenizer: / chat_template. Three
// tiny models with their own hand-written tokenizers (WordLevel and BPE tokenizer.json files made
// here) are merged; the output vocabulary, every embedding and lm_head row and the tokenizer files are
// checked against expectations worked out by hand below (which model's row each output token takes),
// with the values computed by a plain scalar loop here, not by the code under test.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Template } from "@huggingface/jinja";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { RecipeError, ValidationError, WeightsoupError } from "../src/errors";
import { NodeFolder } from "../src/io/node-folder";
import { evaluate, merge, sweep } from "../src/node";
import { parseRecipe } from "../src/recipe/recipe";
import { loadTokenizer } from "../src/tokenizer/tokenizer";
import { BUILTIN_CHAT_TEMPLATES } from "../src/vocab/chat-templates";
import { baseModel, readOutput, removeDir, tempDir, TINY, WORKER_URL, writeCase, type Shape } from "./helpers/fixtures";
import { special, wordLevel, writeTokenizer } from "./helpers/tokenizer-files";
import { decodeFloat } from "./reference/safetensors";
import { roundToDtype } from "./reference/float16";
import type { RefModel } from "./reference/merge";

let root: string;
before(async () => { root = await tempDir("ws-vocab-"); });
after(async () => { await removeDir(root); });

// Hidden size 184 (head size 46) makes the padded 24-row embedding 4416 elements: with chunks of 4096 elements, the
// chunk boundary falls inside row 22.
const SHAPE: Shape = { ...TINY, hidden: 184, heads: 4, kvHeads: 2, intermediate: 8, layers: 1 };

const BASE_TOKENS = ["<unk>", "<s>", "</s>", "the", "cat", "sat", "on", "mat", "a", "dog"];
const B_TOKENS = ["<unk>", "<s>", "</s>", "a", "dog", "ran", "fast", "the", "bird", "cat", "<|im_start|>", "<|im_end|>"];
// config.json of c says vocab_size 10: its token 10 ("hidden") has no row and is stripped.
const C_TOKENS = ["<unk>", "<s>", "</s>", "ran", "bird", "fly", "the", "sky", "<|im_end|>", "blue", "hidden"];

function model(seed: number, dtype: "F32" | "BF16", vocab: number, tied = false): RefModel {
  const m = baseModel(seed, dtype, { ...SHAPE, vocab });
  if (tied) {
    m.tensors.delete("lm_head.weight");
    m.config = { ...m.config, tie_word_embeddings: true };
  }
  return m;
}

interface Case { dir: string; recipe: string; models: Record<string, RefModel> }

let counter = 0;
/** base (F32), b (BF16), c (F32, tied, 10 rows for 11 tokens), their tokenizers, and the recipe. */
async function threeModels(recipe: Record<string, unknown>): Promise<Case> {
  const dir = join(root, `case-${counter++}`);
  const models = { base: model(1, "F32", 10), b: model(2, "BF16", 12), c: model(3, "F32", 10, true) };
  const path = await writeCase(dir, models, recipe);
  await writeTokenizer(join(dir, "base"), wordLevel(BASE_TOKENS, [0, 1, 2]), { chat_template: "{{ 'base template' }}{% for m in messages %}{{ m.content }}{% endfor %}" });
  await writeTokenizer(join(dir, "b"), wordLevel(B_TOKENS, [0, 1, 2, 10, 11]), { chat_template: "{% for m in messages %}<|im_start|>{{ m.content }}{% endfor %}" });
  await writeTokenizer(join(dir, "c"), wordLevel(C_TOKENS, [0, 1, 2, 8]), { chat_template: "{% for m in messages %}<|im_start|>{{ m.content }}{% endfor %}" });
  return { dir, recipe: path, models };
}

/** Rows of a model's tensor as float64 (values as stored). */
function rowsOf(m: RefModel, name: string): number[][] {
  const t = m.tensors.get(name) ?? m.tensors.get("model.embed_tokens.weight")!; // tied: lm_head is the embedding
  const [rows, cols] = t.shape as [number, number];
  return Array.from({ length: rows }, (_, r) => Array.from(t.values!.subarray(r * cols, (r + 1) * cols)));
}

/** Where a rebuilt row comes from: the model's own row, another model's row, the mean of rows, or zero. */
type RowSource = { own: number } | { mean: [string, number][] } | "zero";

/**
 * A model's rebuilt matrix (rounded to its dtype, padded rows = mean of the real rows), by the plain
 * rules: `sources[id]` says where row id comes from for this model.
 */
function rebuild(models: Record<string, RefModel>, name: string, tensor: string, sources: RowSource[], padded: number): number[][] {
  const dtype = models[name]!.tensors.get("model.embed_tokens.weight")!.dtype as "F32" | "BF16";
  const cols = SHAPE.hidden;
  const out: number[][] = sources.map((s) => {
    if (s === "zero") return new Array(cols).fill(0);
    if ("own" in s) return rowsOf(models[name]!, tensor)[s.own]!;
    const sum = new Array(cols).fill(0);
    for (const [m, r] of s.mean) rowsOf(models[m]!, tensor)[r]!.forEach((v, c) => (sum[c] += v));
    return sum.map((v) => roundToDtype(v / s.mean.length, dtype));
  });
  const real = out.length;
  const mean = new Array(cols).fill(0);
  for (const row of out) row.forEach((v, c) => (mean[c] += v));
  while (out.length < padded) out.push(mean.map((v) => roundToDtype(v / real, dtype)));
  return out;
}

/** Linear merge of rebuilt matrices: sum w_i x_i / sum w_i, in float64, rounded to float32. */
function linear(matrices: number[][][], weights: number[]): number[] {
  const total = weights.reduce((a, b) => a + b, 0);
  const out: number[] = [];
  matrices[0]!.forEach((row, r) => row.forEach((_, c) => out.push(Math.fround(matrices.reduce((s, m, i) => s + weights[i]! * m[r]![c]!, 0) / total))));
  return out;
}

function assertClose(got: Float32Array, want: number[], what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-6, `${what}: element ${i} (row ${Math.floor(i / SHAPE.hidden)}): ${got[i]} vs ${want[i]}`);
  }
}

describe("tokenizer: union of three tokenizers with forced tokens", () => {
  const recipe = {
    merge_method: "linear", base_model: "./base",
    models: [{ model: "./base", parameters: { weight: 1 } }, { model: "./b", parameters: { weight: 0.5 } }, { model: "./c", parameters: { weight: 0.25 } }],
    tokenizer: {
      source: "union", pad_to_multiple_of: 8,
      tokens: {
        cat: { source: { kind: "model_token", model: "./b", token: "dog" }, force: true },
        "<|im_end|>": { source: "./c", force: true },
        "<pad>": { source: { kind: "zero" } },
        sky: { source: { kind: "model_token", model: "./b", token_id: 6 } },
      },
    },
    chat_template: "chatml",
  };
  // The output vocabulary, worked out by hand: the base's ten tokens at their ids; the other models'
  // regular tokens the base lacks (b's in id order, then c's; c's "hidden" is past its vocab_size);
  // their added tokens; then <pad>, named under tokens:. 19 tokens, padded to 24 rows.
  const VOCAB = [...BASE_TOKENS, "ran", "fast", "bird", "fly", "sky", "blue", "<|im_start|>", "<|im_end|>", "<pad>"];
  const W = [1, 0.5, 0.25];
  let c: Case, out: string;
  before(async () => {
    c = await threeModels(recipe);
    out = join(c.dir, "out");
    await merge(c.recipe, { out, workers: 2, workerUrl: WORKER_URL });
  });

  // Row sources per output id, by hand. b = [<unk>0 <s>1 </s>2 a3 dog4 ran5 fast6 the7 bird8 cat9
  // <|im_start|>10 <|im_end|>11], c = [<unk>0 <s>1 </s>2 ran3 bird4 fly5 the6 sky7 <|im_end|>8 blue9].
  const base = (r: number): RowSource => ({ mean: [["base", r]] });
  const b = (r: number): RowSource => ({ mean: [["b", r]] });
  const cc = (r: number): RowSource => ({ mean: [["c", r]] });
  const own = (r: number): RowSource => ({ own: r });
  const cat = b(4), imEnd = cc(8); // forced: b's row of "dog"; c's row of <|im_end|>
  const ran: RowSource = { mean: [["b", 5], ["c", 3]] }, bird: RowSource = { mean: [["b", 8], ["c", 4]] }; // base lacks them, two models have them
  const SOURCES: Record<string, RowSource[]> = {
    //        <unk>   <s>     </s>    the     cat  sat     on      mat     a       dog     ran     fast    bird    fly     sky     blue    <|im_start|> <|im_end|> <pad>
    base: [own(0), own(1), own(2), own(3), cat, own(5), own(6), own(7), own(8), own(9), ran, b(6), bird, cc(5), b(6), cc(9), b(10), imEnd, "zero"],
    b: [own(0), own(1), own(2), own(7), cat, base(5), base(6), base(7), own(3), own(4), own(5), own(6), own(8), cc(5), b(6), cc(9), own(10), imEnd, "zero"],
    c: [own(0), own(1), own(2), own(6), cat, base(5), base(6), base(7), base(8), base(9), own(3), b(6), own(4), own(5), own(7), own(9), b(10), imEnd, "zero"],
  };

  test("the output vocabulary: base ids kept, new tokens appended, stripped ids gone, named tokens added", async () => {
    const tokenizer = await loadTokenizer(await NodeFolder.open(out));
    assert.ok(tokenizer);
    assert.deepEqual([...tokenizer.vocabulary()].sort((x, y) => x[1] - y[1]), VOCAB.map((t, i) => [t, i]));
    const config = JSON.parse(await readFile(join(out, "config.json"), "utf8"));
    assert.equal(config.vocab_size, 24);
  });

  for (const tensor of ["model.embed_tokens.weight", "lm_head.weight"]) {
    test(`${tensor}: every row is the linear merge of the hand-derived rebuilt rows (padding = mean of real rows)`, async () => {
      const got = (await readOutput(out)).tensors.get(tensor)!;
      assert.deepEqual(got.shape, [24, SHAPE.hidden]);
      const rebuilt = ["base", "b", "c"].map((m) => rebuild(c.models, m, tensor, SOURCES[m]!, 24));
      assertClose(decodeFloat(got.dtype, got.data), linear(rebuilt, W), tensor);
    });
  }

  test("a few rows worked out directly: cat forced from b's 'dog', <pad> zero, ran = weighted mix of b/c means", async () => {
    const got = decodeFloat("F32", (await readOutput(out)).tensors.get("model.embed_tokens.weight")!.data);
    const h = SHAPE.hidden, col = 7;
    const bEmbed = c.models.b!.tensors.get("model.embed_tokens.weight")!.values!;
    const cEmbed = c.models.c!.tensors.get("model.embed_tokens.weight")!.values!;
    // Every model's "cat" row is b's "dog" row (id 4), so the merge is that row.
    assert.ok(Math.abs(got[4 * h + col]! - bEmbed[4 * h + col]!) <= 1e-6);
    // Nobody has <pad> (id 18) and it is set to zero.
    for (let i = 0; i < h; i++) assert.equal(got[18 * h + i], 0);
    // ran (id 10): base gets mean(b[5], c[3]) (f32), b and c their own rows.
    const mean = Math.fround((bEmbed[5 * h + col]! + cEmbed[3 * h + col]!) / 2);
    const want = (1 * mean + 0.5 * bEmbed[5 * h + col]! + 0.25 * cEmbed[3 * h + col]!) / 1.75;
    assert.ok(Math.abs(got[10 * h + col]! - want) <= 1e-6, `${got[10 * h + col]} vs ${want}`);
  });

  test("tokenizer files: re-serialised tokenizer.json, tokenizer_config.json with added_tokens_decoder and the template, special_tokens_map.json", async () => {
    const tj = JSON.parse(await readFile(join(out, "tokenizer.json"), "utf8"));
    assert.deepEqual(tj.added_tokens.map((t: { id: number; content: string; special: boolean }) => [t.id, t.content, t.special]),
      [[0, "<unk>", true], [1, "<s>", true], [2, "</s>", true], [16, "<|im_start|>", true], [17, "<|im_end|>", true], [18, "<pad>", false]]);
    assert.equal(tj.model.vocab.ran, 10);
    assert.equal(tj.model.vocab.blue, 15);
    assert.equal(tj.model.vocab.hidden, undefined);
    const config = JSON.parse(await readFile(join(out, "tokenizer_config.json"), "utf8"));
    assert.deepEqual(Object.keys(config.added_tokens_decoder), ["0", "1", "2", "16", "17", "18"]);
    assert.equal(config.added_tokens_decoder["17"].content, "<|im_end|>");
    assert.equal(config.chat_template, BUILTIN_CHAT_TEMPLATES.chatml);
    const map = JSON.parse(await readFile(join(out, "special_tokens_map.json"), "utf8"));
    assert.deepEqual(map, { bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>" });
  });

  test("the output tokenizer round-trips text through @huggingface/tokenizers", async () => {
    const text = "the cat ran fast <|im_start|> blue sky <|im_end|> a bird";
    const hf = new HfTokenizer(JSON.parse(await readFile(join(out, "tokenizer.json"), "utf8")), { unk_token: "<unk>" });
    const ids = hf.encode(text).ids;
    assert.deepEqual(ids, [3, 4, 10, 11, 16, 15, 14, 17, 8, 12]);
    assert.equal(hf.decode(ids), text);
    const ours = (await loadTokenizer(await NodeFolder.open(out)))!;
    assert.deepEqual(ours.encode(text), ids);
    assert.equal(ours.decode(ids), text);
    assert.equal(ours.chatPrompt([{ role: "user", content: "hi" }]), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  });

  test("the recipe evaluated without writing it tokenizes with the rebuilt tokenizer, as the written merge does", async () => {
    // "ran fast bird" are <unk> to the base's tokenizer and tokens 10-12 of the union's.
    const text = "the cat ran fast <|im_start|> blue sky <|im_end|> a bird";
    const [fromRecipe, fromFolder] = [await evaluate([c.recipe], { text, workers: 1, workerUrl: WORKER_URL }), await evaluate([out], { text, workers: 1, workerUrl: WORKER_URL })];
    assert.equal(fromFolder.results[0]!.tokens, 10);
    assert.deepEqual(fromRecipe.results.map((r) => ({ ...r, model: "" })), fromFolder.results.map((r) => ({ ...r, model: "" })));
  });

  test("a sweep's points tokenize with the rebuilt tokenizer too: a point equal to the recipe scores as the written merge", async () => {
    // As above: the base's tokenizer reads "ran fast bird" as <unk>; the sweep used to tokenize with it.
    const text = "the cat ran fast <|im_start|> blue sky <|im_end|> a bird";
    const { points } = await sweep(c.recipe, ["models[1].parameters.weight=0.5"], { text, workers: 1, workerUrl: WORKER_URL });
    const [r] = (await evaluate([out], { text, workers: 1, workerUrl: WORKER_URL })).results;
    assert.deepEqual({ nll: points[0]!.nll, perplexity: points[0]!.perplexity, bitsPerByte: points[0]!.bitsPerByte }, { nll: r!.nll, perplexity: r!.perplexity, bitsPerByte: r!.bitsPerByte });
  });

  test("results do not depend on chunking: chunks of 4096 elements (a boundary inside row 22) give the same bytes", async () => {
    const chunked = join(c.dir, "out-chunked");
    await merge(c.recipe, { out: chunked, workers: 2, chunkElements: 4096, workerUrl: WORKER_URL });
    const [x, y] = [await readOutput(out), await readOutput(chunked)];
    for (const name of ["model.embed_tokens.weight", "lm_head.weight"]) assert.deepEqual(y.tensors.get(name)!.data, x.tensors.get(name)!.data, name);
  });
});

/** A tiny BPE tokenizer: a b c ab abc ca, merges "a b", "ab c", "c a". */
function bpe(): Record<string, unknown> {
  return {
    version: "1.0", truncation: null, padding: null, added_tokens: [special(0, "<unk>")],
    normalizer: null, pre_tokenizer: { type: "Whitespace" }, post_processor: null, decoder: null,
    model: { type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false,
      vocab: { "<unk>": 0, a: 1, b: 2, c: 3, ab: 4, abc: 5, ca: 6 }, merges: ["a b", "ab c", "c a"] },
  };
}

describe("union over a base whose added tokens lie past its model vocabulary (Llama-3, Qwen2 layout)", () => {
  // base: model vocabulary <unk> the cat (0-2), added <|eot|> at 3 outside it. ft: the same plus a
  // regular "dog" at 3 and <|eot|> at 4. The union plans dog at 4. Written into the model vocabulary,
  // "dog" would make the Rust library number <|eot|> from the vocabulary's size (4: the same id as dog),
  // so it is written as an added token, as mergekit's add_tokens does: not special, normalized.
  test("a new regular token becomes an added token, and every id reads back as planned", async () => {
    const dir = join(root, `case-${counter++}`);
    const path = await writeCase(dir, { base: model(11, "F32", 4), ft: model(12, "F32", 5) }, {
      merge_method: "linear", tokenizer_source: "union", models: [{ model: "./base", parameters: { weight: 1 } }, { model: "./ft", parameters: { weight: 1 } }],
    });
    const file = (vocab: string[], eot: number) => ({
      version: "1.0", truncation: null, padding: null, normalizer: null, pre_tokenizer: { type: "Whitespace" }, post_processor: null, decoder: null,
      added_tokens: [special(eot, "<|eot|>")],
      model: { type: "WordLevel", vocab: Object.fromEntries(vocab.map((t, i) => [t, i])), unk_token: "<unk>" },
    });
    await writeTokenizer(join(dir, "base"), file(["<unk>", "the", "cat"], 3));
    await writeTokenizer(join(dir, "ft"), file(["<unk>", "the", "cat", "dog"], 4));
    await merge(path, { out: join(dir, "out"), workerUrl: WORKER_URL });
    const tj = JSON.parse(await readFile(join(dir, "out", "tokenizer.json"), "utf8"));
    assert.deepEqual(tj.model.vocab, { "<unk>": 0, the: 1, cat: 2 });
    assert.deepEqual(tj.added_tokens.map((t: { id: number; content: string; special: boolean; normalized: boolean }) => [t.id, t.content, t.special, t.normalized]),
      [[0, "<unk>", true, false], [3, "<|eot|>", true, false], [4, "dog", false, true]]); // tokenizer_config.json's unk_token is special
    const tokenizer = (await loadTokenizer(await NodeFolder.open(join(dir, "out"))))!;
    assert.deepEqual(tokenizer.encode("the cat <|eot|> dog"), [1, 2, 3, 4]);
    // The rows follow: dog's row is ft's row 3, <|eot|>'s the mean of base row 3 and ft row 4.
    const got = decodeFloat("F32", (await readOutput(join(dir, "out"))).tensors.get("model.embed_tokens.weight")!.data);
    const h = SHAPE.hidden;
    const base = (await readOutput(join(dir, "base"))).tensors.get("model.embed_tokens.weight")!, ft = (await readOutput(join(dir, "ft"))).tensors.get("model.embed_tokens.weight")!;
    const [b, f] = [decodeFloat("F32", base.data), decodeFloat("F32", ft.data)];
    for (let i = 0; i < h; i++) {
      assert.ok(Math.abs(got[4 * h + i]! - f[3 * h + i]!) <= 1e-6, "dog");
      assert.ok(Math.abs(got[3 * h + i]! - (b[3 * h + i]! + f[4 * h + i]!) / 2) <= 1e-6, "<|eot|>");
    }
  });
});

describe("task_arithmetic over rebuilt embeddings", () => {
  test("the base is rebuilt too: out = base' + w (b' - base') row by row", async () => {
    const c = await threeModels({ merge_method: "task_arithmetic", base_model: "./base", models: [{ model: "./b", parameters: { weight: 0.75 } }], tokenizer_source: "union" });
    const out = join(c.dir, "out");
    await merge(c.recipe, { out, workers: 2, workerUrl: WORKER_URL });
    // Union of base and b: base's 10, then ran fast bird (10-12), then <|im_start|> <|im_end|> (13, 14).
    // Rows by hand: base takes b's rows for b-only tokens; b takes base's for sat on mat.
    const b = (r: number): RowSource => ({ mean: [["b", r]] }), base = (r: number): RowSource => ({ mean: [["base", r]] });
    const own = (r: number): RowSource => ({ own: r });
    const baseRows = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map(own).concat([b(5), b(6), b(8), b(10), b(11)]);
    const bRows = [own(0), own(1), own(2), own(7), own(9), base(5), base(6), base(7), own(3), own(4), own(5), own(6), own(8), own(10), own(11)];
    for (const tensor of ["model.embed_tokens.weight", "lm_head.weight"]) {
      const x = rebuild(c.models, "base", tensor, baseRows, 15), y = rebuild(c.models, "b", tensor, bRows, 15);
      const want = x.flatMap((row, r) => row.map((v, col) => Math.fround(v + Math.fround(0.75) * (y[r]![col]! - v))));
      const got = (await readOutput(out)).tensors.get(tensor)!;
      assertClose(decodeFloat(got.dtype, got.data), want, tensor);
    }
  });
});

describe("the recipe's dtype and the rows weightsoup computes", () => {
  // mergekit casts every tensor to the recipe's dtype as it loads it, so a row it computes (the mean of the
  // models that have a token, the padding rows' mean) is made from rounded rows. Three float32 models,
  // dtype bfloat16: base lacks "ran", which b (id 5) and c (id 3) have, so base's rebuilt row is their mean;
  // the linear merge with weights 1, 0, 0 writes base's rebuilt rows, which the padding rows then follow.
  test("a mean row and the padding rows are computed from the rows rounded to bf16", async () => {
    const dir = join(root, `case-${counter++}`);
    const models = { base: model(1, "F32", 10), b: model(2, "F32", 12), c: model(3, "F32", 10, true) };
    const recipe = await writeCase(dir, models, {
      merge_method: "linear", dtype: "bfloat16", models: [["./base", 1], ["./b", 0], ["./c", 0]].map(([model, weight]) => ({ model, parameters: { weight } })),
      tokenizer: { source: "union", pad_to_multiple_of: 8 },
    });
    await writeTokenizer(join(dir, "base"), wordLevel(BASE_TOKENS, [0, 1, 2]));
    await writeTokenizer(join(dir, "b"), wordLevel(B_TOKENS, [0, 1, 2, 10, 11]));
    await writeTokenizer(join(dir, "c"), wordLevel(C_TOKENS, [0, 1, 2, 8]));
    await merge(recipe, { out: join(dir, "out"), workerUrl: WORKER_URL });
    const { tensors } = await readOutput(join(dir, "out"));
    const got = tensors.get("model.embed_tokens.weight")!;
    const values = decodeFloat(got.dtype, got.data);
    const cols = SHAPE.hidden, rows = values.length / cols;
    const rounded = (m: RefModel, r: number) => rowsOf(m, "model.embed_tokens.weight")[r]!.map((v) => roundToDtype(v, "BF16"));
    const ran = BASE_TOKENS.length; // the union's first token past base's: b's "ran"
    assert.equal(rows % 8, 0, "padded to a multiple of 8");
    // The mean of the two rows rounded to bf16 (exact in float64), rounded once to bf16.
    const [x, y] = [rounded(models.b, 5), rounded(models.c, 3)];
    const mean = x.map((v, c) => roundToDtype((v + y[c]!) / 2, "BF16"));
    const unrounded = rowsOf(models.b, "model.embed_tokens.weight")[5]!.map((v, c) => roundToDtype((v + rowsOf(models.c, "model.embed_tokens.weight")[3]![c]!) / 2, "BF16"));
    assert.ok(mean.some((v, c) => v !== unrounded[c]), "rounding the rows first changes the mean here (else this case could not tell)");
    assert.deepEqual(Array.from(values.subarray(ran * cols, (ran + 1) * cols)), mean, "ran: the mean of b's and c's rows as bf16");
    // Padding: the mean of base's rebuilt real rows (bf16 values), rounded to bf16.
    const real = Array.from({ length: rows }, (_, r) => Array.from(values.subarray(r * cols, (r + 1) * cols)));
    const realRows = real.findIndex((row, r) => r > ran && row.every((v, c) => v === real[rows - 1]![c]));
    assert.ok(realRows > ran && realRows < rows, `padding rows start after the real ones (${realRows} of ${rows})`);
    const pad = real[0]!.map((_, c) => roundToDtype(real.slice(0, realRows).reduce((sum, row) => sum + row[c]!, 0) / realRows, "BF16"));
    for (let r = realRows; r < rows; r++) assert.deepEqual(real[r], pad, `padding row ${r}`);
  });
});

describe("a special token the vocabulary strips", () => {
  // Found by the stop 39 audit: base's tokenizer has <pad> at id 10 but its config.json says vocab_size 10,
  // so the vocabulary strips it; tokenizer_config.json still names it pad_token, and the tokenizer that
  // loads the output adds it back past the rows. The base has the same flaw, so the merge runs and says so.
  test("is a warning naming the token, its stripped id and the id the output's tokenizer gives it", async () => {
    const dir = join(root, `case-${counter++}`);
    const models = { base: model(1, "F32", 10), b: model(2, "BF16", 12) };
    const recipe = await writeCase(dir, models, { merge_method: "linear", models: ["./base", "./b"].map((m) => ({ model: m, parameters: { weight: 1 } })), tokenizer_source: "union" });
    await writeTokenizer(join(dir, "base"), wordLevel([...BASE_TOKENS, "<pad>"], [0, 1, 2, 10]), { pad_token: "<pad>" });
    await writeTokenizer(join(dir, "b"), wordLevel(B_TOKENS, [0, 1, 2, 10, 11]));
    const warnings: string[] = [];
    await merge(recipe, { out: join(dir, "out"), workerUrl: WORKER_URL, onProgress: (e) => { if (e.type === "warning") warnings.push(e.message); } });
    const rows = JSON.parse(await readFile(join(dir, "out", "config.json"), "utf8")).vocab_size as number;
    const tokenizer = JSON.parse(await readFile(join(dir, "out", "tokenizer.json"), "utf8"));
    assert.ok(!("<pad>" in tokenizer.model.vocab) && !tokenizer.added_tokens.some((t: { content: string }) => t.content === "<pad>"), "<pad> is not in the output vocabulary");
    const config = JSON.parse(await readFile(join(dir, "out", "tokenizer_config.json"), "utf8"));
    assert.equal(config.pad_token, "<pad>", "the source's tokenizer_config.json names it");
    const forPad = warnings.filter((w) => w.includes('"<pad>"'));
    assert.equal(forPad.length, 1, warnings.join("\n"));
    assert.match(forPad[0]!, new RegExp(`base/tokenizer\\.json: "<pad>" was stripped \\(its id here, 10, is at or past config\\.json's vocab_size, 10\\), but the tokenizer files still name it as a special token, so the output's tokenizer adds it back as id ${rows}, which has no embedding row \\(the output has ${rows}\\)`));
  });
});

describe("a named token no model has", () => {
  test("gets a zero row in every model, and the merge says so in a warning event", async () => {
    const c = await threeModels({ merge_method: "linear", base_model: "./base", models: ["./base", "./b"].map((model) => ({ model, parameters: { weight: 1 } })), tokenizer: { tokens: { "<extra>": {} } } });
    const out = join(c.dir, "out");
    const warnings: string[] = [];
    await merge(c.recipe, { out, workers: 1, workerUrl: WORKER_URL, onProgress: (e) => { if (e.type === "warning") warnings.push(e.message); } });
    // base's 10, b's ran fast bird <|im_start|> <|im_end|>, then <extra>: id 15.
    const tokenizer = (await loadTokenizer(await NodeFolder.open(out)))!;
    assert.equal(tokenizer.vocabulary().get("<extra>"), 15);
    const got = (await readOutput(out)).tensors;
    for (const name of ["model.embed_tokens.weight", "lm_head.weight"]) {
      const t = got.get(name)!;
      assert.deepEqual(t.shape, [16, SHAPE.hidden]);
      assert.ok(decodeFloat(t.dtype, t.data).subarray(15 * SHAPE.hidden).every((v) => v === 0), name);
      assert.ok(warnings.some((w) => w.startsWith(`${name}: none of the models it is merged from has token "<extra>"`)), warnings.join("; "));
    }
  });
});

/**
 * base (10 WordLevel tokens) and x (a BPE tokenizer, 7 tokens for 6 rows) merged linearly, weight 1 each,
 * with x's vocabulary (tokenizer_source: model:./x); `as` changes how the two are written (names, config).
 * Returns the models as computed with and the output folder.
 */
async function mergeOntoX(as: (m: RefModel) => RefModel = (m) => m): Promise<{ models: Record<"base" | "x", RefModel>; out: string }> {
  const dir = join(root, `case-${counter++}`);
  const models = { base: model(1, "F32", 10), x: model(4, "F32", 6) };
  const recipe = { merge_method: "linear", base_model: "./base", models: [{ model: "./base", parameters: { weight: 1 } }, { model: "./x", parameters: { weight: 1 } }], tokenizer_source: "model:./x" };
  const path = await writeCase(dir, { base: as(models.base), x: as(models.x) }, recipe);
  await writeTokenizer(join(dir, "base"), wordLevel(["<unk>", "<s>", "</s>", "b", "zzz", "q", "r", "s", "t", "u"], [0, 1, 2]));
  await writeTokenizer(join(dir, "x"), bpe(), { bos_token: "<unk>", eos_token: "<unk>" });
  const out = join(dir, "out");
  await merge(path, { out, workers: 1, workerUrl: WORKER_URL });
  return { models, out };
}

/** mergeOntoX's expected matrix: base has <unk> (0) and b (its 3); x's a, c, ab, abc exist only in x, so base takes x's rows. */
function ontoX(models: Record<"base" | "x", RefModel>, tensor: string): number[] {
  const rebuiltBase = rebuild(models, "base", tensor, [{ own: 0 }, { mean: [["x", 1]] }, { own: 3 }, { mean: [["x", 3]] }, { mean: [["x", 4]] }, { mean: [["x", 5]] }], 6);
  const rebuiltX = rebuild(models, "x", tensor, [0, 1, 2, 3, 4, 5].map((r) => ({ own: r })), 6);
  return linear([rebuiltBase, rebuiltX], [1, 1]);
}

describe("tokenizer_source: model:X, with a BPE tokenizer stripped to its vocab_size", () => {
  test("the output takes X's vocabulary (id 6 'ca' past X's vocab_size is stripped with its merge), other models' rows rebuilt to it", async () => {
    const { models, out } = await mergeOntoX();
    const tj = JSON.parse(await readFile(join(out, "tokenizer.json"), "utf8"));
    assert.deepEqual(tj.model.vocab, { "<unk>": 0, a: 1, b: 2, c: 3, ab: 4, abc: 5 });
    assert.deepEqual(tj.model.merges, ["a b", "ab c"]);
    const hf = new HfTokenizer(tj, {});
    assert.deepEqual(hf.encode("abc ab ca").ids, [5, 4, 3, 1]);
    assert.equal(JSON.parse(await readFile(join(out, "config.json"), "utf8")).vocab_size, 6);
    const got = (await readOutput(out)).tensors.get("model.embed_tokens.weight")!;
    assertClose(decodeFloat(got.dtype, got.data), ontoX(models, "model.embed_tokens.weight"), "embed");
  });
});

describe("a post_processor token the output vocabulary does not have", () => {
  // Found by an audit: a tokenizer whose BOS (added by its post_processor to every encoding) was stripped
  // as past vocab_size gave an output whose tokenizer still added that id, which no embedding row had.
  async function withTemplate(bos: string, id: number): Promise<unknown> {
    const dir = join(root, `case-${counter++}`);
    const models = { base: model(1, "F32", 10), x: model(4, "F32", 6) };
    const recipe = { merge_method: "linear", base_model: "./base", models: [{ model: "./base", parameters: { weight: 1 } }, { model: "./x", parameters: { weight: 1 } }], tokenizer_source: "model:./x" };
    const path = await writeCase(dir, models, recipe);
    await writeTokenizer(join(dir, "base"), wordLevel(["<unk>", "<s>", "</s>", "b", "zzz", "q", "r", "s", "t", "u"], [0, 1, 2]));
    const processor = { type: "TemplateProcessing", single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }], pair: [{ Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }], special_tokens: { [bos]: { id: bos, ids: [id], tokens: [bos] } } };
    await writeTokenizer(join(dir, "x"), { ...bpe(), post_processor: { type: "Sequence", processors: [{ type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true }, processor] } }, { bos_token: "<unk>", eos_token: "<unk>" });
    return merge(path, { out: join(dir, "out"), workers: 1, workerUrl: WORKER_URL }).then(() => undefined, (e: unknown) => e);
  }
  test("a stripped one (past vocab_size) or one at another id is refused, naming the file and token; one at its id merges", async () => {
    const stripped = await withTemplate("ca", 6);
    assert.ok(stripped instanceof WeightsoupError && stripped.code === "E_TOKENIZER", String(stripped));
    assert.match(stripped.message, /x\/tokenizer\.json.*post_processor adds "ca" as id 6.*its id here, 6, is at or past config\.json's vocab_size \(6\)/);
    const moved = await withTemplate("ab", 3);
    assert.ok(moved instanceof WeightsoupError && moved.code === "E_TOKENIZER", String(moved));
    assert.match(moved.message, /post_processor adds "ab" as id 3 .*gives it id 4/);
    assert.equal(await withTemplate("ab", 4), undefined);
  });
});

describe("embeddings under other architectures' names", () => {
  // Found by an audit: isEmbedding knew transformers' names only, so Mamba's backbone.embeddings was cut
  // to the common top-left block (ids mixed across tokenizers) while config.json said the new vocab_size.
  test("Mamba's backbone.embeddings (by name) and an RWKV-style head.weight (by shape) are rebuilt to the output vocabulary", async () => {
    const renamed = (m: RefModel): RefModel => ({ ...m, tensors: new Map([...m.tensors].map(([name, t]) => [name === "model.embed_tokens.weight" ? "backbone.embeddings.weight" : name === "lm_head.weight" ? "head.weight" : name, t])) });
    const { models, out } = await mergeOntoX(renamed);
    const got = (await readOutput(out)).tensors;
    for (const [tensor, as] of [["backbone.embeddings.weight", "model.embed_tokens.weight"], ["head.weight", "lm_head.weight"]] as const) {
      const t = got.get(tensor)!;
      assert.deepEqual(t.shape, [6, SHAPE.hidden], tensor);
      assertClose(decodeFloat(t.dtype, t.data), ontoX(models, as), tensor);
    }
  });
});

describe("a multimodal config (text_config)", () => {
  // Found by an audit: the new vocab_size went to a new top-level key while text_config.vocab_size, which
  // transformers builds the language model from, kept the old count (loading then fails on the shapes).
  test("the rebuilt vocabulary's size is written where the config states it, text_config.vocab_size, and the strip limit is read there", async () => {
    const multimodal = (m: RefModel): RefModel => {
      const { vocab_size, ...rest } = m.config as Record<string, unknown>;
      return { ...m, config: { ...rest, model_type: "llava", text_config: { model_type: "llama", vocab_size }, vision_config: { hidden_size: 8 } } };
    };
    const { out } = await mergeOntoX(multimodal);
    const config = JSON.parse(await readFile(join(out, "config.json"), "utf8"));
    assert.equal(config.text_config.vocab_size, 6);
    assert.equal(config.vocab_size, undefined, "no new top-level key");
    // x's tokenizer has 7 tokens for 6 rows: "ca" (id 6) is stripped by text_config's limit.
    assert.deepEqual(JSON.parse(await readFile(join(out, "tokenizer.json"), "utf8")).model.vocab, { "<unk>": 0, a: 1, b: 2, c: 3, ab: 4, abc: 5 });
    assert.deepEqual((await readOutput(out)).tensors.get("model.embed_tokens.weight")!.shape, [6, SHAPE.hidden]);
  });
});

describe("chat_template", () => {
  test("a literal template is written into tokenizer_config.json; the tokenizer is re-serialised, the vocabulary unchanged", async () => {
    const literal = "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}";
    const c = await threeModels({ merge_method: "linear", models: [{ model: "./base", parameters: { weight: 1 } }], chat_template: literal });
    const out = join(c.dir, "out");
    await merge(c.recipe, { out, workers: 1, workerUrl: WORKER_URL });
    const config = JSON.parse(await readFile(join(out, "tokenizer_config.json"), "utf8"));
    assert.equal(config.chat_template, literal);
    assert.equal(JSON.parse(await readFile(join(out, "config.json"), "utf8")).vocab_size, 10);
    const tokenizer = (await loadTokenizer(await NodeFolder.open(out)))!;
    assert.equal(tokenizer.chatPrompt([{ role: "user", content: "hi" }]), "[user]hi");
    assert.equal(tokenizer.vocabulary().size, 10);
  });

  test("auto picks the template most inputs share", async () => {
    const c = await threeModels({ merge_method: "linear", base_model: "./base", models: ["./base", "./b", "./c"].map((model) => ({ model, parameters: { weight: 1 } })), tokenizer_source: "union", chat_template: "auto" });
    const out = join(c.dir, "out");
    await merge(c.recipe, { out, workers: 1, workerUrl: WORKER_URL });
    const config = JSON.parse(await readFile(join(out, "tokenizer_config.json"), "utf8"));
    assert.equal(config.chat_template, "{% for m in messages %}<|im_start|>{{ m.content }}{% endfor %}");
  });

  test("every built-in template parses and renders a conversation in its format", () => {
    const messages = [{ role: "user", content: "Hi" }];
    const render = (name: string) => new Template(BUILTIN_CHAT_TEMPLATES[name]!).render({ messages, add_generation_prompt: true, bos_token: "<s>", eos_token: "</s>" });
    assert.equal(render("chatml"), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    assert.equal(render("llama3"), "<s><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
    assert.equal(render("mistral"), "<s>[INST] Hi [/INST]");
    assert.equal(render("alpaca"), "### Instruction:\nHi\n\n### Response:\n");
    assert.equal(render("exaone"), "[|system|][|endofturn|]\n[|user|]Hi\n[|assistant|]");
  });
});

describe("an embedding with rows past config.json's vocab_size (Mllama's 8 image-token rows)", () => {
  // Found by an audit: a union rebuilt embed_tokens to the tokenizer's rows, dropping the 8 rows
  // transformers builds from the config beyond vocab_size, and the folder did not load.
  test("tokenizer keys are refused naming the tensor, the model and the count, before anything is written", async () => {
    const dir = join(root, `case-${counter++}`);
    const extraRows = (m: RefModel): RefModel => {
      const t = m.tensors.get("model.embed_tokens.weight")!, cols = t.shape[1]!;
      const values = new Float32Array((t.shape[0]! + 8) * cols);
      values.set(t.values!);
      return { ...m, tensors: new Map([...m.tensors, ["model.embed_tokens.weight", { ...t, shape: [t.shape[0]! + 8, cols], values }]]) };
    };
    const recipe = { merge_method: "linear", base_model: "./base", models: [{ model: "./base", parameters: { weight: 1 } }, { model: "./x", parameters: { weight: 1 } }], tokenizer_source: "union" };
    const path = await writeCase(dir, { base: extraRows(model(1, "F32", 10)), x: extraRows(model(4, "F32", 6)) }, recipe);
    await writeTokenizer(join(dir, "base"), wordLevel(["<unk>", "<s>", "</s>", "b", "zzz", "q", "r", "s", "t", "u"], [0, 1, 2]));
    await writeTokenizer(join(dir, "x"), bpe(), { bos_token: "<unk>", eos_token: "<unk>" });
    await assert.rejects(merge(path, { out: join(dir, "out"), workers: 1, workerUrl: WORKER_URL }), (e: unknown) => {
      const problems = e instanceof ValidationError ? e.problems : [e as WeightsoupError];
      assert.ok(problems.length > 0 && problems.every((p) => p.code === "E_SHAPE_MISMATCH"), problems.map((p) => p.message).join("; "));
      assert.match(problems[0]!.message, /tensor "model\.embed_tokens\.weight" has 18 rows, 8 more than model \.\/base's config\.json vocab_size \(10\)/);
      return true;
    });
    assert.ok(!existsSync(join(dir, "out")), "nothing written");
  });
});

describe("typed errors", () => {
  const base = { merge_method: "linear", models: [{ model: "./a", parameters: { weight: 1 } }] };
  const parseError = (extra: Record<string, unknown>) => {
    try {
      parseRecipe(JSON.stringify({ ...base, ...extra }), "r.yml");
    } catch (e) {
      return e as WeightsoupError;
    }
    assert.fail("no error");
  };

  test("tokenizer_source and tokenizer.source read base, union, model:NAME and a bare model name", () => {
    const read = (extra: Record<string, unknown>) => parseRecipe(JSON.stringify({ ...base, ...extra }), "r.yml").tokenizer!;
    assert.deepEqual(read({ tokenizer_source: "base" }).source, { kind: "base" });
    assert.deepEqual(read({ tokenizer_source: "union" }).source, { kind: "union" });
    assert.deepEqual(read({ tokenizer_source: "model:./a" }).source, { kind: "model", model: "./a" });
    assert.deepEqual(read({ tokenizer_source: "./a" }).source, { kind: "model", model: "./a" });
    assert.deepEqual(read({ tokenizer: {} }).source, { kind: "union" });
    assert.deepEqual(read({ tokenizer: { source: "org/model" } }).source, { kind: "model", model: "org/model" });
    assert.equal(parseRecipe(JSON.stringify(base), "r.yml").tokenizer, undefined);
  });

  test("tokenizer and tokenizer_source together", () => {
    const e = parseError({ tokenizer_source: "union", tokenizer: { source: "union" } });
    assert.ok(e instanceof RecipeError);
    assert.equal(e.code, "E_RECIPE");
    assert.equal(e.details.key, "tokenizer");
  });

  test("a bad chat template: too short, no '{', or Jinja that does not parse", () => {
    for (const template of ["short {", "no braces here at all, just text", "{% for m in messages %}{{ m.content }}"]) {
      const e = parseError({ chat_template: template });
      assert.equal(e.code, "E_CHAT_TEMPLATE", template);
      assert.equal(e.details.key, "chat_template");
    }
  });

  test("a malformed tokens entry and a bad pad_to_multiple_of", () => {
    assert.equal(parseError({ tokenizer: { tokens: { x: { source: { kind: "model_token", model: "./a" } } } } }).details.key, 'tokenizer.tokens."x".source');
    assert.equal(parseError({ tokenizer: { pad_to_multiple_of: 0 } }).details.key, "tokenizer.pad_to_multiple_of");
  });

  test("an unknown model in tokens, and a token the named model lacks, fail before any tensor is read", async () => {
    for (const [source, key] of [["./nowhere", 'tokenizer.tokens."cat".source'], ["./c", 'tokenizer.tokens."cat".source']] as const) {
      const c = await threeModels({ merge_method: "linear", base_model: "./base", models: ["./base", "./b", "./c"].map((model) => ({ model, parameters: { weight: 1 } })), tokenizer: { tokens: { cat: { source } } } });
      const out = join(c.dir, "out");
      await assert.rejects(merge(c.recipe, { out, workers: 1, workerUrl: WORKER_URL }), (e: WeightsoupError) => {
        assert.equal(e.code, "E_RECIPE");
        assert.equal(e.details.key, key);
        return true;
      });
      await rm(out, { recursive: true, force: true });
    }
  });

  test("a token_id past the named model's rows is refused even where no model needs the source (every model has the token)", async () => {
    const c = await threeModels({ merge_method: "linear", base_model: "./base", models: ["./base", "./b", "./c"].map((model) => ({ model, parameters: { weight: 1 } })), tokenizer: { tokens: { the: { source: { kind: "model_token", model: "./b", token_id: 40 } } } } });
    const out = join(c.dir, "out");
    // Planning collects its problems: one per rebuilt tensor (embedding and lm_head).
    await assert.rejects(merge(c.recipe, { out, workers: 1, workerUrl: WORKER_URL }), (e: ValidationError) => {
      assert.equal(e.code, "E_VALIDATION");
      assert.deepEqual(e.problems.map((p) => [p.code, p.details.key, p.details.tensor]), [
        ["E_RECIPE", 'tokenizer.tokens."the".source', "model.embed_tokens.weight"],
        ["E_RECIPE", 'tokenizer.tokens."the".source', "lm_head.weight"],
      ]);
      assert.match(e.message, /row 40 is outside \.\/b's tensor "model\.embed_tokens\.weight" \(12 rows\)/);
      return true;
    });
    await assert.rejects(stat(join(out, "model.safetensors")));
  });

  test("a model without tokenizer.json", async () => {
    const c = await threeModels({ merge_method: "linear", base_model: "./base", models: ["./base", "./b"].map((model) => ({ model, parameters: { weight: 1 } })), tokenizer_source: "union" });
    await rm(join(c.dir, "b", "tokenizer.json"));
    await assert.rejects(merge(c.recipe, { out: join(c.dir, "out"), workers: 1, workerUrl: WORKER_URL }), (e: WeightsoupError) => e.code === "E_TOKENIZER" && /tokenizer\.json/.test(e.message));
  });
});

describe("without tokenizer keys", () => {
  test("the donor's tokenizer files are copied byte for byte", async () => {
    const c = await threeModels({ merge_method: "linear", base_model: "./base", models: ["./base"].map((model) => ({ model, parameters: { weight: 1 } })) });
    const out = join(c.dir, "out");
    await merge(c.recipe, { out, workers: 1, workerUrl: WORKER_URL });
    for (const file of ["tokenizer.json", "tokenizer_config.json"]) assert.equal(await readFile(join(out, file), "utf8"), await readFile(join(c.dir, "base", file), "utf8"));
  });

  test("vocabularies of different sizes keep the rows every model has, and config.json says so (with a warning), so transformers loads the folder", async () => {
    // b (12 rows, first, the donor) and base (10 rows): mergekit's rule keeps the top 10 rows of both.
    const c = await threeModels({ merge_method: "linear", models: ["./b", "./base"].map((model) => ({ model, parameters: { weight: 1 } })) });
    const out = join(c.dir, "out");
    const warnings: string[] = [];
    await merge(c.recipe, { out, workers: 1, workerUrl: WORKER_URL, onProgress: (e) => { if (e.type === "warning") warnings.push(e.message); } });
    const tensors = (await readOutput(out)).tensors;
    assert.deepEqual(tensors.get("model.embed_tokens.weight")!.shape, [10, SHAPE.hidden]);
    assert.deepEqual(tensors.get("lm_head.weight")!.shape, [10, SHAPE.hidden]);
    assert.equal(JSON.parse(await readFile(join(out, "config.json"), "utf8")).vocab_size, 10);
    assert.ok(warnings.some((w) => /vocabularies differ in size/.test(w) && /vocab_size is set to 10/.test(w) && /tokenizer_source/.test(w)), warnings.join("; "));
    // The same models with the smaller one first keep its config as it was: nothing was cut from it.
    const d = await threeModels({ merge_method: "linear", models: ["./base", "./b"].map((model) => ({ model, parameters: { weight: 1 } })) });
    const quiet: string[] = [];
    await merge(d.recipe, { out: join(d.dir, "out"), workers: 1, workerUrl: WORKER_URL, onProgress: (e) => { if (e.type === "warning") quiet.push(e.message); } });
    assert.deepEqual(JSON.parse(await readFile(join(d.dir, "out", "config.json"), "utf8")), JSON.parse(await readFile(join(d.dir, "base", "config.json"), "utf8")));
    assert.deepEqual(quiet, []);
  });
});
