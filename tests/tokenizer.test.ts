// Tokenizers against transformers: every fixture in tests/fixtures/tokenizers was made with the exact
// structure of a real family's tokenizer files, and its expected.json holds what transformers 5.18's
// AutoTokenizer gave for each test string (ids with and without special tokens, decoded text with and
// without them), for the default evaluation text, and what apply_chat_template rendered
// (make_fixtures.py; Python is not needed here). Also: the streaming decoder against decode(), typed
// errors for bad files, pre-tokenized ids files, the example's tokenizer and the default text.
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { ModelError } from "../src/errors";
import { DEFAULT_TEXT } from "../src/eval/default-text";
import { EXAMPLE_SHAPE, exampleTokenizerFiles } from "../src/example/models";
import { planFile } from "../src/format/safetensors";
import { BlobFolder } from "../src/io/folder";
import { NodeFolder } from "../src/io/node-folder";
import { readTokenIds } from "../src/tokenizer/token-ids";
import { loadTokenizer, type Tokenizer } from "../src/tokenizer/tokenizer";
import { removeDir, tempDir } from "./helpers/fixtures";

const FIXTURES = fileURLToPath(new URL("../../tests/fixtures/tokenizers/", import.meta.url));
const STYLES = ["llama3", "llama2", "llama2-legacy", "mistral", "metaspace-split", "qwen2", "gpt2", "wordlevel", "example"];

interface Expected {
  transformers: string;
  tokenizerClass: string;
  vocabSize: number;
  bosTokenId: number | null;
  eosTokenId: number | null;
  generationEosTokenIds: number[];
  defaultTextIds: number[];
  cases: { text: string; ids: number[]; idsNoSpecial: number[]; decoded: string; decodedSkipSpecial: string }[];
  decodes: { ids: number[]; decoded: string; decodedSkipSpecial: string }[];
  chats: { messages: { role: string; content: string }[]; prompt: string }[];
}

async function fixture(style: string): Promise<{ tokenizer: Tokenizer; expected: Expected }> {
  const dir = join(FIXTURES, style);
  const tokenizer = await loadTokenizer(await NodeFolder.open(dir));
  assert.ok(tokenizer, `${style}: no tokenizer loaded`);
  return { tokenizer, expected: JSON.parse(await readFile(join(dir, "expected.json"), "utf8")) as Expected };
}

/** Pushes ids one by one through a stream decoder; returns the pieces (flush last). */
function streamed(tokenizer: Tokenizer, ids: readonly number[], skipSpecialTokens: boolean): string[] {
  const stream = tokenizer.streamDecoder({ skipSpecialTokens });
  const pieces = ids.map((id) => stream.push(id));
  pieces.push(stream.flush());
  return pieces;
}

/** A small deterministic generator (xorshift32), for random id sequences. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x / 4294967296;
  };
}

for (const style of STYLES) {
  test(`${style}: encode gives transformers' ids for every test string, with and without special tokens`, async () => {
    const { tokenizer, expected } = await fixture(style);
    assert.ok(expected.cases.length >= 20);
    for (const c of expected.cases) {
      assert.deepEqual(tokenizer.encode(c.text), c.ids, `encode(${JSON.stringify(c.text)})`);
      assert.deepEqual(tokenizer.encode(c.text, { addSpecialTokens: false }), c.idsNoSpecial, `encode(${JSON.stringify(c.text)}, no specials)`);
    }
  });

  test(`${style}: the default evaluation text tokenizes to transformers' ids`, async () => {
    const { tokenizer, expected } = await fixture(style);
    const ids = tokenizer.encode(DEFAULT_TEXT);
    assert.equal(ids.length, expected.defaultTextIds.length);
    assert.deepEqual(ids, expected.defaultTextIds);
  });

  test(`${style}: decode equals transformers' decode, with and without special tokens`, async () => {
    const { tokenizer, expected } = await fixture(style);
    for (const c of [...expected.cases, ...expected.decodes]) {
      assert.equal(tokenizer.decode(c.ids), c.decoded, `decode(${JSON.stringify(c.ids)})`);
      assert.equal(tokenizer.decode(c.ids, { skipSpecialTokens: true }), c.decodedSkipSpecial, `decode(${JSON.stringify(c.ids)}, skip)`);
    }
  });

  test(`${style}: vocabulary size, BOS, EOS ids and the transformers class are transformers'`, async () => {
    const { tokenizer, expected } = await fixture(style);
    assert.equal(tokenizer.vocabSize, expected.vocabSize);
    assert.equal(tokenizer.transformersClass, expected.tokenizerClass);
    assert.equal(tokenizer.bosTokenId, expected.bosTokenId ?? undefined);
    // What generate() stops on: the generation config's eos ids (transformers' GenerationConfig from generation_config.json).
    assert.deepEqual([...tokenizer.eosTokenIds], expected.generationEosTokenIds);
  });

  test(`${style}: the streaming decoder's pieces join to decode() of all the ids`, async () => {
    const { tokenizer, expected } = await fixture(style);
    const sequences = [...expected.cases.map((c) => c.ids), ...expected.decodes.map((d) => d.ids), expected.defaultTextIds.slice(0, 400)];
    const random = rng(style.length * 7919);
    for (let n = 0; n < 40; n++) {
      sequences.push(Array.from({ length: 1 + Math.floor(random() * 30) }, () => Math.floor(random() * expected.vocabSize)));
    }
    for (const ids of sequences) {
      for (const skip of [false, true]) {
        const pieces = streamed(tokenizer, ids, skip);
        assert.equal(pieces.join(""), tokenizer.decode(ids, { skipSpecialTokens: skip }), `stream of ${JSON.stringify(ids)} (skip ${skip})`);
      }
    }
  });

  test(`${style}: the chat prompt is transformers' apply_chat_template (add_generation_prompt)`, async () => {
    const { tokenizer, expected } = await fixture(style);
    if (expected.chats.length === 0) {
      assert.equal(tokenizer.hasChatTemplate, false);
      assert.equal(tokenizer.chatPrompt([{ role: "user", content: "hi" }]), undefined);
      return;
    }
    assert.equal(tokenizer.hasChatTemplate, true);
    for (const chat of expected.chats) assert.equal(tokenizer.chatPrompt(chat.messages), chat.prompt);
  });
}

test("each fixture was made by the transformers version the tokenizers follow", async () => {
  for (const style of STYLES) assert.equal((await fixture(style)).expected.transformers, "5.18.0", style);
});

interface AddedTokensVariant {
  base: string;
  name: string;
  addedTokens: Record<string, unknown>[];
  configSet: Record<string, unknown>;
  configRemove: string[];
  /** Other files the variant has (special_tokens_map.json), by name. */
  files: Record<string, unknown>;
  vocabSize: number;
  cases: { text: string; ids: number[]; idsNoSpecial: number[]; decoded: string; decodedSkipSpecial: string }[];
  decodes: { ids: number[]; decoded: string; decodedSkipSpecial: string }[];
}

// added-tokens.json (make_added_tokens.py): variants of the fixtures above with added tokens of every
// kind and tokenizer_config.json special tokens, and what transformers 5.18's AutoTokenizer made of them.
test("added tokens split, number and decode as transformers' do: single_word, lstrip/rstrip, normalized, ids, config special tokens, special_tokens_map.json", async () => {
  const { transformers, variants } = JSON.parse(await readFile(join(FIXTURES, "added-tokens.json"), "utf8")) as { transformers: string; variants: AddedTokensVariant[] };
  assert.equal(transformers, "5.18.0");
  assert.ok(variants.length >= 30);
  const mismatches: string[] = [];
  for (const v of variants) {
    const dir = await tempDir("ws-added-");
    try {
      const base = join(FIXTURES, v.base);
      const tokenizerJson = JSON.parse(await readFile(join(base, "tokenizer.json"), "utf8")) as { added_tokens: unknown[] };
      const config = JSON.parse(await readFile(join(base, "tokenizer_config.json"), "utf8")) as Record<string, unknown>;
      for (const key of v.configRemove) delete config[key];
      await writeFile(join(dir, "tokenizer.json"), JSON.stringify({ ...tokenizerJson, added_tokens: [...tokenizerJson.added_tokens, ...v.addedTokens] }));
      await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify({ ...config, ...v.configSet }));
      for (const file of ["config.json", "generation_config.json"]) await writeFile(join(dir, file), await readFile(join(base, file)));
      for (const [file, content] of Object.entries(v.files)) await writeFile(join(dir, file), JSON.stringify(content));
      const tokenizer = (await loadTokenizer(await NodeFolder.open(dir)))!;
      const where = `${v.base}/${v.name}`;
      if (tokenizer.vocabSize !== v.vocabSize) mismatches.push(`${where}: len ${tokenizer.vocabSize}, transformers ${v.vocabSize}`);
      const check = (what: string, got: unknown, want: unknown) => {
        if (JSON.stringify(got) !== JSON.stringify(want)) mismatches.push(`${where} ${what}: ${JSON.stringify(got)}, transformers ${JSON.stringify(want)}`);
      };
      for (const c of v.cases) {
        check(`encode ${JSON.stringify(c.text)}`, tokenizer.encode(c.text), c.ids);
        check(`encode ${JSON.stringify(c.text)} without special tokens`, tokenizer.encode(c.text, { addSpecialTokens: false }), c.idsNoSpecial);
        check(`decode ${JSON.stringify(c.ids)}`, tokenizer.decode(c.ids), c.decoded);
        check(`decode ${JSON.stringify(c.ids)} skipping special tokens`, tokenizer.decode(c.ids, { skipSpecialTokens: true }), c.decodedSkipSpecial);
      }
      for (const d of v.decodes) {
        check(`decode ${JSON.stringify(d.ids)}`, tokenizer.decode(d.ids), d.decoded);
        check(`decode ${JSON.stringify(d.ids)} skipping special tokens`, tokenizer.decode(d.ids, { skipSpecialTokens: true }), d.decodedSkipSpecial);
      }
    } finally {
      await removeDir(dir);
    }
  }
  assert.deepEqual(mismatches, [], `${mismatches.length} differences from transformers:\n${mismatches.slice(0, 40).join("\n")}`);
});

test("the streaming decoder never emits part of a character split over byte tokens", async () => {
  for (const style of ["llama2", "gpt2", "qwen2", "llama3"]) {
    const { tokenizer } = await fixture(style);
    const ids = tokenizer.encode("😀 ok 日本", { addSpecialTokens: false });
    const pieces = streamed(tokenizer, ids, false);
    assert.ok(ids.length >= 6, `${style}: the emoji and CJK are spelled with byte tokens (${ids.length} ids)`);
    assert.ok(pieces.every((p) => !p.includes("\uFFFD")), `${style}: ${JSON.stringify(pieces)}`);
    assert.ok(pieces.some((p) => p.includes("😀")), `${style}: the emoji arrives whole in one piece`);
    assert.equal(pieces.join(""), tokenizer.decode(ids), style);
  }
});

test("the streaming decoder keeps spaces between words where decoding each id alone would drop them", async () => {
  const { tokenizer } = await fixture("llama2");
  const ids = tokenizer.encode("Hello world again", { addSpecialTokens: false });
  const alone = ids.map((id) => tokenizer.decode([id])).join("");
  assert.notEqual(alone, "Hello world again", "the Strip decoder drops each token's leading space");
  assert.equal(streamed(tokenizer, ids, false).join(""), "Hello world again");
});

test("a template that refuses the conversation is a typed error naming the file", async () => {
  const { tokenizer } = await fixture("mistral");
  assert.throws(() => tokenizer.chatPrompt([{ role: "system", content: "be brief" }, { role: "user", content: "hi" }]), (e: unknown) => {
    assert.ok(e instanceof ModelError);
    assert.equal(e.code, "E_TOKENIZER");
    assert.match(e.message, /mistral\/tokenizer_config\.json/);
    assert.match(e.message, /Conversation roles must alternate/);
    return true;
  });
});

test("a malformed part the library reads only when used (a post-processor template that is no list) is E_TOKENIZER naming the file", async () => {
  // Found by an audit: encoding failed with a TypeError from inside the library, reported as E_INTERNAL.
  const dir = join(FIXTURES, "llama3");
  const json = JSON.parse(await readFile(join(dir, "tokenizer.json"), "utf8"));
  const processors = json.post_processor.type === "Sequence" ? json.post_processor.processors : [json.post_processor];
  const template = processors.find((p: { type: string }) => p.type === "TemplateProcessing");
  assert.ok(template, "the fixture has a TemplateProcessing post-processor");
  template.single = "x";
  const folder = new BlobFolder("broken", new Map([["tokenizer.json", new Blob([JSON.stringify(json)])], ["tokenizer_config.json", new Blob([await readFile(join(dir, "tokenizer_config.json"))])]]));
  const tokenizer = await loadTokenizer(folder);
  assert.throws(() => tokenizer!.encode("the cat"), (e: unknown) => {
    assert.ok(e instanceof ModelError && e.code === "E_TOKENIZER", String(e));
    assert.match(e.message, /^broken\/tokenizer\.json: /);
    return true;
  });
});

test("GPT-2's byte-level split takes Rust's whitespace: a BOM is not whitespace, U+0085 is", async () => {
  // JavaScript's \s holds U+FEFF and not U+0085; Rust's regex \s is Unicode's White_Space (the other way
  // round). So Rust splits "\uFEFF's" as "\uFEFF'" + "s" and "a\u0085's" as "a" + "\u0085" + "'s".
  const { tokenizer } = await fixture("gpt2");
  const ids = (text: string) => tokenizer.encode(text, { addSpecialTokens: false });
  assert.deepEqual(ids("\uFEFF's"), [...ids("\uFEFF'"), ...ids("s")]);
  assert.notDeepEqual(ids("\uFEFF's"), [...ids("\uFEFF"), ...ids("'s")]);
  assert.deepEqual(ids("a\u0085's"), [...ids("a"), ...ids("\u0085"), ...ids("'s")]);
});

test("a Metaspace decoder drops every ▁ of the first token, as Rust's does, and turns later ones into spaces", async () => {
  // The JS decoder turned them into spaces and dropped one: a generation starting "▁▁" decoded to " ".
  const { tokenizer } = await fixture("metaspace-split");
  const twoSpaces = tokenizer.vocabulary().get("▁▁")!;
  assert.equal(tokenizer.decode([twoSpaces]), "");
  assert.equal(tokenizer.decode([twoSpaces, twoSpaces]), "  ");
});

test("generation stops where transformers' generate() does: generation_config.json's eos ids, else config.json's, else the tokenizer's eos", async () => {
  // They were the union of all three: a tokenizer eos that generation_config.json leaves out stopped weightsoup early.
  const dir = join(FIXTURES, "llama3");
  const files = async (generation: object | undefined, model: object) => new BlobFolder("eos", new Map([
    ["tokenizer.json", new Blob([await readFile(join(dir, "tokenizer.json"))])],
    ["tokenizer_config.json", new Blob([await readFile(join(dir, "tokenizer_config.json"))])],
    ["config.json", new Blob([JSON.stringify(model)])],
    ...(generation ? [["generation_config.json", new Blob([JSON.stringify(generation)])] as [string, Blob]] : []),
  ]));
  const eos = async (generation: object | undefined, model: object) => [...(await loadTokenizer(await files(generation, model)))!.eosTokenIds];
  const tokenizerEos = (await fixture("llama3")).expected.eosTokenId!;
  assert.deepEqual(await eos({ eos_token_id: [557, 564] }, { eos_token_id: 1 }), [557, 564]);
  assert.deepEqual(await eos({ eos_token_id: 564 }, {}), [564]);
  assert.deepEqual(await eos({ max_new_tokens: 8 }, { eos_token_id: [3, 3] }), [3]);
  assert.deepEqual(await eos(undefined, {}), [tokenizerEos]);
});

/** The fixture tokenizer `base` with its tokenizer_config.json edited and this chat template, prompted with one user message. */
async function templatePrompt(base: string, template: string, content = "hi", edit: (config: Record<string, unknown>) => void = () => {}): Promise<string | undefined> {
  const dir = join(FIXTURES, base);
  const config = JSON.parse(await readFile(join(dir, "tokenizer_config.json"), "utf8"));
  edit(config);
  config.chat_template = template;
  const folder = new BlobFolder(base, new Map([["tokenizer.json", new Blob([await readFile(join(dir, "tokenizer.json"))])], ["tokenizer_config.json", new Blob([JSON.stringify(config)])]]));
  return (await loadTokenizer(folder))!.chatPrompt([{ role: "user", content }]);
}

test("a chat template sees tools and documents as None, as transformers passes them: defined, and none", async () => {
  // They were undefined here, so `tools is not none` was true and `tools is defined` false.
  const template = "{% if tools is not none %}[tools]{% endif %}{% if tools is defined %}D{% endif %}{% if documents is none %}N{% endif %}{% for m in messages %}{{ m.content }}{% endfor %}";
  assert.equal(await templatePrompt("mistral", template), "DNhi");
});

test("a chat template sees the named special tokens transformers passes: the class's defaults where the config names none, other *_token keys, no list of extra ones", async () => {
  // GPT2Tokenizer names <|endoftext|> and LlamaTokenizer <s>, </s>, <unk> in their __init__; the
  // template saw them undefined (a Llama-2 template refused the conversation), and saw
  // additional_special_tokens, which transformers 5 does not pass.
  const template = "{{ bos_token }}|{{ eos_token }}|{{ unk_token }}|{{ pad_token }}|{{ image_token }}|{% if additional_special_tokens is defined %}A{% endif %}{% if extra_special_tokens is defined %}E{% endif %}{% for m in messages %}{{ m.content }}{% endfor %}";
  assert.equal(await templatePrompt("gpt2", template, "hi", (c) => Object.assign(c, { tokenizer_class: "GPT2Tokenizer", image_token: "<img>", additional_special_tokens: ["<x>"] })), "<|endoftext|>|<|endoftext|>|<|endoftext|>||<img>|hi");
  assert.equal(await templatePrompt("llama2", template, "hi", (c) => { for (const k of ["bos_token", "eos_token", "unk_token", "pad_token"]) delete c[k]; }), "<s>|</s>|<unk>|||hi");
  assert.equal(await templatePrompt("llama2", template, "hi", (c) => { c.bos_token = null; }), "|</s>|<unk>|||hi", "an explicit null is no token, not the class's default");
});

test("a chat template's string methods are Python's: strip/lstrip/rstrip take the characters to remove, capitalize lowers the rest", async () => {
  // @huggingface/jinja ignored the argument and stripped all whitespace, so Qwen3's template rendered
  // an earlier assistant turn's reasoning without its spaces. Expected: jinja2's rendering.
  const template = "{{ ' hmm \n'.strip('\n') }}|{{ 'xxhixx'.rstrip('x') }}|{{ 'xxhixx'.lstrip('x') }}|{{ '\x1c a \ufeff'.strip() }}|{{ ' a '.strip(none) }}|{{ 'hELLO wORLD'.capitalize() }}|{{ 'ab\n '.rstrip() }}|{{ 'abcba'.strip('ab') }}|{% for m in messages %}{{ m.content.split('</think>')[-1].lstrip('\n') }}{% endfor %}";
  assert.equal(await templatePrompt("mistral", template, "<think>x</think>\n\n hi"), " hmm |xxhi|hixx|a \ufeff|a|Hello world|ab|c| hi");
  // Python's strip takes a str or None: anything else is jinja2's TypeError, a typed error here.
  await assert.rejects(templatePrompt("mistral", "{{ 'ab'.strip(1) }}"), (e: unknown) => e instanceof ModelError && e.code === "E_TOKENIZER" && /strip/.test(e.message));
});

test("a chat template's range() is jinja2's sandboxed one: Python's arguments, and more than 100000 items refused as transformers refuses them", async () => {
  // Expected values: jinja2 3's ImmutableSandboxedEnvironment, which transformers renders templates in.
  const template = "{% for i in range(3) %}{{ i }}{% endfor %}|{{ range(10, 0, -3)|list }}|{{ range(5, 5)|length }}|{{ range(100000)|length }}|{{ range(True)|list }}|{% for m in messages %}{{ m.content }}{% endfor %}";
  assert.equal(await templatePrompt("mistral", template), "012|[10, 7, 4, 1]|0|100000|[0]|hi");
  // range(10**8) filled the heap (V8's fatal out-of-memory abort, no error); jinja2 raises OverflowError.
  for (const huge of ["range(100000000)", "range(0, 200001, 2)", "range(100001)"]) {
    await assert.rejects(templatePrompt("mistral", `{% for i in ${huge} %}x{% endfor %}`), (e: unknown) =>
      e instanceof ModelError && e.code === "E_TOKENIZER" && /tokenizer_config\.json/.test(e.message) && /Range too big/.test(e.message));
  }
  await assert.rejects(templatePrompt("mistral", "{{ range(1, 2, 0)|list }}"), (e: unknown) => e instanceof ModelError && e.code === "E_TOKENIZER");
});

test("a special token skipped in streamed decoding does not cut a run of byte tokens that decoding joins across it", async () => {
  // The stream emitted the run's first bytes when the skipped token came, and decode() of all the ids
  // then joined them with the bytes after it into other text.
  const { tokenizer } = await fixture("llama2");
  const vocab = tokenizer.vocabulary();
  const id = (token: string) => vocab.get(token)!;
  const e2 = id("<0xE2>"), x9c = id("<0x9C>"), x93 = id("<0x93>"), eos = id("</s>");
  assert.ok([e2, x9c, x93, eos].every((i) => Number.isInteger(i)));
  const ids = [e2, x9c, eos, x93, id("▁the")]; // U+2713 "✓" is E2 9C 93, cut by </s>
  const whole = tokenizer.decode(ids, { skipSpecialTokens: true });
  assert.equal(whole, "\u2713 the");
  const stream = tokenizer.streamDecoder({ skipSpecialTokens: true });
  const pieces = ids.map((i) => stream.push(i));
  pieces.push(stream.flush());
  assert.equal(pieces.join(""), whole, JSON.stringify(pieces));
});

test("ids outside the vocabulary are skipped when decoding, as the Rust library does", async () => {
  const { tokenizer } = await fixture("gpt2");
  const hello = tokenizer.encode("Hello world");
  assert.equal(tokenizer.decode([...hello.slice(0, 2), tokenizer.vocabSize, 10 ** 9, ...hello.slice(2)]), "Hello world");
  assert.equal(tokenizer.decode([]), "");
});

// ---- bad tokenizer files ---------------------------------------------------------------------------

async function folderWith(files: Record<string, string>): Promise<BlobFolder> {
  return new BlobFolder("bad", new Map(Object.entries(files).map(([name, text]) => [name, new Blob([text])])));
}

async function rejectsTokenizer(files: Record<string, string>, pattern: RegExp, file = "bad/tokenizer.json"): Promise<void> {
  await assert.rejects(loadTokenizer(await folderWith(files)), (e: unknown) => {
    assert.ok(e instanceof ModelError, `expected a ModelError, got ${String(e)}`);
    assert.equal(e.code, "E_TOKENIZER");
    assert.equal(e.details.file, file);
    assert.ok(e.message.startsWith(file + ": "), e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

const gpt2Json = async () => JSON.parse(await readFile(join(FIXTURES, "gpt2", "tokenizer.json"), "utf8")) as Record<string, unknown>;

test("a folder without tokenizer.json has no tokenizer (undefined, not an error)", async () => {
  assert.equal(await loadTokenizer(await folderWith({ "config.json": "{}" })), undefined);
});

test("malformed tokenizer files are typed errors naming the file", async () => {
  await rejectsTokenizer({ "tokenizer.json": "{ not json" }, /not valid JSON/);
  await rejectsTokenizer({ "tokenizer.json": "[1, 2]" }, /JSON object/);
  await rejectsTokenizer({ "tokenizer.json": "{}" }, /empty object/);
  await rejectsTokenizer({ "tokenizer.json": JSON.stringify({ version: "1.0", added_tokens: [] }) }, /no "model"/);
  await rejectsTokenizer({ "tokenizer.json": JSON.stringify(await gpt2Json()), "tokenizer_config.json": "\"a string\"" }, /JSON object/, "bad/tokenizer_config.json");
  await rejectsTokenizer({ "tokenizer.json": JSON.stringify(await gpt2Json()), "tokenizer_config.json": "{" }, /not valid JSON/, "bad/tokenizer_config.json");
  await rejectsTokenizer({ "tokenizer.json": JSON.stringify(await gpt2Json()), "generation_config.json": "[]" }, /JSON object/, "bad/generation_config.json");
});

test("an unsupported model type or pipeline component is refused, naming it", async () => {
  const json = await gpt2Json();
  await rejectsTokenizer({ "tokenizer.json": JSON.stringify({ ...json, model: { type: "WordPieceX", vocab: { a: 0 } } }) }, /model type "WordPieceX" is not supported \(supported: BPE, Unigram, WordPiece, WordLevel\)/);
  await rejectsTokenizer({ "tokenizer.json": JSON.stringify({ ...json, pre_tokenizer: { type: "UnicodeScripts" } }) }, /PreTokenizer type "UnicodeScripts" is not supported/);
  await rejectsTokenizer({ "tokenizer.json": JSON.stringify({ ...json, normalizer: { type: "ByteLevel" } }) }, /Normalizer type "ByteLevel" is not supported/);
  await rejectsTokenizer({
    "tokenizer.json": JSON.stringify({ ...json, pre_tokenizer: { type: "Split", pattern: { Regex: "\\s+" }, behavior: "MergedWithNext", invert: false } }),
  }, /pre_tokenizer: a Split with behavior "MergedWithNext" is not supported/);
  // Found by an audit: the library warned and split on nothing, so the text tokenized differently.
  for (const pattern of ["x", { Regexp: "\\s" }, { String: 5 }, null]) {
    await rejectsTokenizer({
      "tokenizer.json": JSON.stringify({ ...json, pre_tokenizer: { type: "Sequence", pretokenizers: [{ type: "Split", pattern, behavior: "Isolated", invert: false }] } }),
    }, /pre_tokenizer\.pretokenizers\[0\]: a Split's pattern must be \{"String": text\} or \{"Regex": text\}/);
  }
  await rejectsTokenizer({ "tokenizer.json": JSON.stringify({ ...json, model: { type: "BPE", vocab: { a: 0 } } }) }, /no list of merges/);
});

test("a vocabulary the tokenizers library would not read is refused, naming the token: ids that are not whole numbers from 0, Unigram entries that are not [token, score]", async () => {
  // Found by the stop 39 audit: an id written "3" or -5 was dropped by the JavaScript library and the next
  // token renumbered, so a union merge gave that token another token's row without a word.
  for (const [id, shown] of [["3", "\"3\""], [-5, "-5"], [1.5, "1.5"], [null, "null"], [2 ** 32, String(2 ** 32)]] as const) {
    const vocab = { a: 0, b: 1, n1: id, c: 2 };
    await rejectsTokenizer({ "tokenizer.json": JSON.stringify({ version: "1.0", model: { type: "WordLevel", vocab, unk_token: "a" } }) }, new RegExp(`model\\.vocab gives token "n1" the id ${shown.replace(".", "\\.")}; ids are whole numbers from 0`));
  }
  await rejectsTokenizer({ "tokenizer.json": JSON.stringify({ version: "1.0", model: { type: "WordLevel", vocab: ["a", "b"], unk_token: "a" } }) }, /the WordLevel model's vocabulary is a list, not a map of tokens to ids/);
  await rejectsTokenizer({ "tokenizer.json": JSON.stringify({ version: "1.0", model: { type: "Unigram", vocab: [["a", -1], ["b"]], unk_id: 0 } }) }, /entry 1 of the Unigram model's vocabulary is \["b"\], not a \[token, score\] pair/);
});

// ---- pre-tokenized input ---------------------------------------------------------------------------

/** A safetensors file holding one tensor, built by hand. */
function safetensors(dtype: string, shape: number[], data: ArrayBufferView, extra = false): Uint8Array {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const tensors = [{ name: "input_ids", dtype, shape, bytes: bytes.length }];
  if (extra) tensors.push({ name: "attention_mask", dtype, shape, bytes: bytes.length });
  const layout = planFile(tensors, {});
  const out = new Uint8Array(layout.size);
  out.set(layout.head, 0);
  out.set(bytes, layout.offsets.get("input_ids")!);
  if (extra) out.set(bytes, layout.offsets.get("attention_mask")!);
  return out;
}

async function rejectsIds(name: string, content: string | Uint8Array, pattern: RegExp): Promise<void> {
  const folder = new BlobFolder(name, new Map([[name, new Blob([content as BlobPart])]]));
  await assert.rejects(readTokenIds(folder), (e: unknown) => {
    assert.ok(e instanceof ModelError, String(e));
    assert.equal(e.code, "E_TOKENIZER");
    assert.match(e.message, new RegExp(`^${name.replace(".", "\\.")}`));
    assert.match(e.message, pattern);
    return true;
  });
}

test("a .json list of token ids is read as written", async () => {
  const folder = new BlobFolder("ids.json", new Map([["ids.json", new Blob(["[1, 15043, 0, 3186, 29889]"])]]));
  assert.deepEqual(await readTokenIds(folder), [1, 15043, 0, 3186, 29889]);
});

test("a .safetensors ids tensor of any integer dtype, [N] or [1, N] (as transformers saves it), is read in order", async () => {
  const dir = await tempDir();
  try {
    const cases: [string, ArrayBufferView, number[]][] = [
      ["I64", new BigInt64Array([1n, 2n, 3n, 4n, 5n, 6n]), [1, 2, 3, 4, 5, 6]],
      ["I32", new Int32Array([7, 0, 65535]), [7, 0, 65535]],
      ["U16", new Uint16Array([65535, 1]), [65535, 1]],
      ["U8", new Uint8Array([9]), [9]],
    ];
    for (const [dtype, data, want] of cases) {
      const shape = dtype === "I64" ? [1, 6] : [want.length];
      await writeFile(join(dir, `ids-${dtype}.safetensors`), safetensors(dtype, shape, data));
      // A Node folder opened on the file itself, as the CLI opens an --ids path.
      assert.deepEqual(await readTokenIds(await NodeFolder.open(join(dir, `ids-${dtype}.safetensors`))), want, dtype);
    }
  } finally {
    await removeDir(dir);
  }
});

test("ids files that are not lists of non-negative integers are typed errors naming the file and entry", async () => {
  await rejectsIds("ids.json", "[1, 2, -3]", /entry 2 is -3, not a non-negative integer/);
  await rejectsIds("ids.json", "[1, 2.5]", /entry 1 is 2\.5/);
  await rejectsIds("ids.json", "[1, \"2\"]", /entry 1 is "2"/);
  await rejectsIds("ids.json", "{\"input_ids\": [1]}", /JSON list of token ids/);
  await rejectsIds("ids.json", "[1,", /not valid JSON/);
  await rejectsIds("ids.safetensors", safetensors("F32", [2], new Float32Array([1, 2])), /dtype F32; token ids need an integer dtype/);
  await rejectsIds("ids.safetensors", safetensors("I64", [2], new BigInt64Array([5n, -1n])), /element 1 of tensor "input_ids" is -1/);
  await rejectsIds("ids.safetensors", safetensors("I32", [1], new Int32Array([1]), true), /exactly one tensor of token ids, not 2/);
  // A batch of sequences was read row after row, each row scored as the previous one's continuation (stop 39 audit).
  await rejectsIds("ids.safetensors", safetensors("I64", [2, 3], new BigInt64Array([1n, 2n, 3n, 4n, 5n, 6n])), /tensor "input_ids" has shape \[2, 3\], several sequences; it must hold one \(\[N\] or \[1, N\]\)/);
  await rejectsIds("ids.txt", "1 2 3", /not a token-ids file/);
});

// ---- the example's tokenizer and the default text -----------------------------------------------

test("the example writes exactly the tokenizer whose transformers ids the example fixture records", async () => {
  const files = exampleTokenizerFiles(EXAMPLE_SHAPE.vocab);
  for (const name of ["tokenizer.json", "tokenizer_config.json"]) {
    assert.equal(files.get(name), await readFile(join(FIXTURES, "example", name), "utf8"), name);
  }
  const vocab = Object.keys((JSON.parse(files.get("tokenizer.json")!) as { model: { vocab: object } }).model.vocab).length;
  assert.ok(vocab > 1000 && vocab <= EXAMPLE_SHAPE.vocab, `vocab ${vocab}`);
});

test("the example's tokenizer maps English to real tokens, not <unk>", async () => {
  const { tokenizer } = await fixture("example");
  const ids = tokenizer.encode("We hold these truths to be self-evident, that all men are created equal.");
  assert.equal(ids[0], 1, "BOS <s> first");
  assert.ok(!ids.slice(1).includes(0), "no <unk>");
  assert.ok(ids.length < 40, `${ids.length} tokens: common words are single tokens`);
  assert.equal(tokenizer.decode(ids, { skipSpecialTokens: true }), "We hold these truths to be self-evident, that all men are created equal.");
});

test("the default text is the public-domain English it claims, a few thousand tokens long", async () => {
  assert.ok(DEFAULT_TEXT.startsWith("The Declaration of Independence\n\nIN CONGRESS, July 4, 1776.\n"));
  assert.ok(DEFAULT_TEXT.includes("shall not perish from the earth."));
  assert.ok(DEFAULT_TEXT.trimEnd().endsWith("a just and lasting peace among ourselves and with all nations."));
  assert.ok(!DEFAULT_TEXT.includes("\r"));
  const words = DEFAULT_TEXT.split(/\s+/).filter(Boolean).length;
  assert.ok(words > 2000 && words < 2600, `${words} words`);
  for (const style of ["llama3", "gpt2"]) {
    const n = (await fixture(style)).expected.defaultTextIds.length;
    assert.ok(n >= 2000 && n <= 8000, `${style}: ${n} tokens`);
  }
});

// ---- in a browser ----------------------------------------------------------------------------------

test("in Chromium, the browser bundle of the tokenizer gives the same ids and chat prompts", { timeout: 120_000 }, async () => {
  const { chromium } = await import("playwright-core");
  const { execFile } = await import("node:child_process");
  const { promisify } = await import("node:util");
  const { CHROMIUM_ARGS, CHROMIUM_PATH } = await import("./helpers/browser");
  const dir = await tempDir("ws-tok-browser-");
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true });
  try {
    // Bundled as the browser build is (platform neutral, node:* external and never reached).
    const root = fileURLToPath(new URL("../../", import.meta.url));
    const entry = join(dir, "entry.ts");
    await writeFile(entry, `
      import { BlobFolder } from ${JSON.stringify(join(root, "src/io/folder"))};
      import { loadTokenizer } from ${JSON.stringify(join(root, "src/tokenizer/tokenizer"))};
      (globalThis as any).tokenize = async (files: Record<string, string>, texts: string[], chats: any[]) => {
        const tok = await loadTokenizer(new BlobFolder("picked", new Map(Object.entries(files).map(([n, t]) => [n, new Blob([t])]))));
        return { ids: texts.map((t) => tok!.encode(t)), prompts: chats.map((c) => tok!.chatPrompt(c.messages)) };
      };`);
    await promisify(execFile)(join(root, "node_modules/.bin/esbuild"), [
      entry, "--bundle", "--format=esm", "--target=es2022", "--platform=neutral", "--main-fields=module,main",
      "--external:node:*", "--loader:.txt=text", "--log-level=warning", `--outfile=${join(dir, "bundle.js")}`,
    ]);
    const bundle = await readFile(join(dir, "bundle.js"), "utf8");
    assert.ok(!/from\s*["']node:/.test(bundle), "no static node: imports in the browser bundle");
    const page = await browser.newPage();
    const requests: string[] = [];
    page.on("request", (r) => requests.push(r.url()));
    await page.addScriptTag({ content: bundle, type: "module" });
    await page.waitForFunction(() => typeof (globalThis as { tokenize?: unknown }).tokenize === "function");
    for (const style of ["llama3", "qwen2", "llama2", "gpt2"]) {
      const files: Record<string, string> = {};
      for (const name of ["tokenizer.json", "tokenizer_config.json", "config.json", "generation_config.json", "chat_template.jinja"]) {
        files[name] = await readFile(join(FIXTURES, style, name), "utf8").catch(() => undefined as unknown as string);
        if (files[name] === undefined) delete files[name];
      }
      const { expected } = await fixture(style);
      const out = await page.evaluate(
        ([f, t, c]) => (globalThis as unknown as { tokenize(...a: unknown[]): Promise<{ ids: number[][]; prompts: string[] }> }).tokenize(f, t, c),
        [files, expected.cases.map((c) => c.text), expected.chats] as const,
      );
      expected.cases.forEach((c, i) => assert.deepEqual(out.ids[i], c.ids, `${style}: ${JSON.stringify(c.text)}`));
      expected.chats.forEach((c, i) => assert.equal(out.prompts[i], c.prompt, `${style}: chat ${i}`));
    }
    assert.deepEqual(requests, [], "the tokenizer makes no requests");
  } finally {
    await browser.close();
    await removeDir(dir);
  }
});
