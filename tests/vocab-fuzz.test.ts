// Randomized vocabulary merges: 2-3 tiny models with WordLevel tokenizers drawn from one small pool of
// token strings (so their vocabularies overlap in part), some added tokens (special or not), a
// config.json vocab_size below the tokenizer's length (its last tokens are stripped) or above it (the
// checkpoint has padding rows), now and then an embedding with rows past vocab_size (refused), F32 or BF16, tied or not; a recipe with `tokenizer_source:` (base, union,
// model:NAME, a bare NAME) or a `tokenizer:` block (source, `tokens:` entries with force and every kind
// of source, some naming a token no model has, pad_to_multiple_of), merged with linear or
// task_arithmetic by weightsoup's merge(), whole or in chunks that end inside a row. The output
// vocabulary (token -> id, which ids are added tokens), config.json's vocab_size and every embed_tokens /
// lm_head element must match the independent scalar reference in helpers/vocab-reference.ts (written
// from README "Vocabularies and tokenizers", not from src/vocab); a recipe the reference refuses
// (a source naming a model outside the recipe or a token the named model lacks) must be refused with a
// WeightsoupError, and a recipe it accepts must merge.
// Runs and seeds as the other fuzz suites (helpers/fuzz-settings.ts): FUZZ_LONG=1 for ten times the
// runs and a random seed, FUZZ_SEED / FUZZ_RUNS / FUZZ_PATH to replay or lengthen.
import assert from "node:assert/strict";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import fc from "fast-check";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { WeightsoupError } from "../src/errors";
import { merge } from "../src/node";
import { baseModel, readOutput, removeDir, tempDir, TINY, WORKER_URL, writeCase, type Shape } from "./helpers/fixtures";
import { wordLevel, writeTokenizer } from "./helpers/tokenizer-files";
import { fuzzSettings } from "./helpers/fuzz-settings";
import {
  referenceLinear, referenceTaskArithmetic, referenceVocab, VocabRefusal,
  type TokenEntry, type TokenSource, type VocabDtype, type VocabInputs, type VocabModel, type VocabResult, type VocabSource,
} from "./helpers/vocab-reference";
import { decodeFloat } from "./reference/safetensors";
import { f32ToBf16Bits, roundToDtype } from "./reference/float16";
import type { RefModel } from "./reference/merge";

let root: string;
before(async () => { root = await tempDir("ws-vocab-fuzz-"); });
after(async () => { await removeDir(root); });

const settings = fuzzSettings();

// The token pool. Words are always regular tokens, the bracketed ones added tokens, except in a model
// that draws one as regular (so a token can be added in one model and regular in another, as union's
// rule for such tokens needs); every model has <unk> at id 0 (WordLevel's unk_token). NOVEL tokens are in no model: only `tokens:` names them.
const WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", "fast", "bird", "sky", "blue", "red"];
const SPECIALS = ["<s>", "</s>", "<|im_start|>", "<|im_end|>", "<pad>", "<sep>"];
const NOVEL = ["<extra_0>", "zebra"];
const POOL = [...WORDS, ...SPECIALS];
const NAMEABLE = [...POOL, ...NOVEL, "<unk>"];
const GHOST = "./ghost";

interface ModelDraw {
  picks: string[];
  /** `special: false` for these pool tokens when the model has them as added tokens. */
  notSpecial: boolean[];
  /** Bracketed tokens (SPECIALS, by index) this model has as regular tokens. */
  regular: boolean[];
  /** vocab_size minus the tokenizer's length: < 0 strips tokens, > 0 pads the checkpoint. */
  sizeDelta: number;
  dtype: VocabDtype;
  tied: boolean;
  seed: number;
  /** Embedding rows past vocab_size (Mllama's image tokens): tokenizer keys must be refused. */
  extraRows: number;
}

const modelArb: fc.Arbitrary<ModelDraw> = fc.record({
  picks: fc.shuffledSubarray(POOL, { minLength: 3, maxLength: 11 }),
  notSpecial: fc.array(fc.boolean(), { minLength: POOL.length, maxLength: POOL.length }),
  regular: fc.array(fc.constantFrom(false, false, false, true), { minLength: SPECIALS.length, maxLength: SPECIALS.length }),
  sizeDelta: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: -3, max: -1 }) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 4 }) }),
  dtype: fc.constantFrom<VocabDtype>("F32", "BF16"),
  tied: fc.boolean(),
  seed: fc.integer({ min: 1, max: 100_000 }),
  extraRows: fc.oneof({ weight: 15, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) }),
});

type SourceDraw =
  | { t: "none" }
  | { t: "zero" }
  | { t: "model"; model: number; ghost: boolean; valid: boolean }
  | { t: "token"; model: number; ghost: boolean; valid: boolean; pick: number }
  | { t: "id"; model: number; ghost: boolean; valid: boolean; pick: number };

// `valid` only biases the draw toward recipes that merge (a holder of the token, a token the model
// has); the reference decides independently whether the recipe is valid.
const biasArb = fc.record({ model: fc.nat(5), ghost: fc.integer({ min: 0, max: 11 }).map((x) => x === 0), valid: fc.integer({ min: 0, max: 7 }).map((x) => x !== 0) });
const sourceArb: fc.Arbitrary<SourceDraw> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ t: "none" as const }) },
  { weight: 1, arbitrary: fc.constant({ t: "zero" as const }) },
  { weight: 2, arbitrary: biasArb.map((b) => ({ t: "model" as const, ...b })) },
  { weight: 2, arbitrary: fc.tuple(biasArb, fc.nat(40)).map(([b, pick]) => ({ t: "token" as const, ...b, pick })) },
  { weight: 1, arbitrary: fc.tuple(biasArb, fc.nat(40)).map(([b, pick]) => ({ t: "id" as const, ...b, pick })) },
);

interface EntryDraw { token: string; force: boolean | undefined; source: SourceDraw }

const entryArb = (token: string): fc.Arbitrary<EntryDraw> => fc.record({
  token: fc.constant(token),
  force: fc.constantFrom(undefined, true, false),
  source: sourceArb,
});

interface Drawn {
  models: ModelDraw[];
  hidden: 8 | 16;
  method: "linear" | "task_arithmetic";
  /** linear: whether base_model is declared; task_arithmetic always has one. */
  declareBase: boolean;
  baseIndex: number;
  weights: number[];
  normalize: boolean | undefined;
  form: "legacy" | "block";
  source: "default" | "base" | "union" | "model" | "model-prefixed";
  sourceModel: number;
  sourceGhost: boolean;
  entries: EntryDraw[];
  pad: number | undefined;
  workers: 1 | 2;
  chunkElements: number | undefined;
}

const WEIGHTS = [0.25, 0.5, 1, 2, 0.3, -0.5];

const drawnArb: fc.Arbitrary<Drawn> = fc.record({
  models: fc.array(modelArb, { minLength: 2, maxLength: 3 }),
  hidden: fc.constantFrom<8 | 16>(8, 16),
  method: fc.constantFrom<"linear" | "task_arithmetic">("linear", "task_arithmetic"),
  declareBase: fc.boolean(),
  baseIndex: fc.nat(2),
  /** Picks from WEIGHTS (linear: positive ones only, so that normalize never divides by 0). */
  weights: fc.array(fc.nat(5), { minLength: 3, maxLength: 3 }),
  normalize: fc.constantFrom(undefined, true, false),
  form: fc.constantFrom<"legacy" | "block">("legacy", "block", "block"),
  source: fc.constantFrom<Drawn["source"]>("default", "base", "union", "union", "model", "model-prefixed"),
  sourceModel: fc.nat(2),
  sourceGhost: fc.integer({ min: 0, max: 15 }).map((x) => x === 0),
  entries: fc.uniqueArray(fc.constantFrom(...NAMEABLE), { maxLength: 4 }).chain((tokens) => fc.tuple(...tokens.map(entryArb)).map((e) => e as EntryDraw[])),
  pad: fc.constantFrom(undefined, undefined, 1, 3, 4, 8, 16),
  workers: fc.constantFrom<1 | 2>(1, 2),
  chunkElements: fc.constantFrom(undefined, undefined, 24, 100),
});

/** A drawn case made concrete: the models (reference view and checkpoint), the recipe, and the reference's inputs. */
interface Case {
  checkpoints: Record<string, RefModel>;
  tokenizers: Map<string, { tokens: string[]; added: number[]; notSpecial: number[] }>;
  recipe: Record<string, unknown>;
  inputs: VocabInputs;
  /** Recipe-order names as merged: linear's models, or task_arithmetic's base then the others. */
  order: string[];
}

function rowsOf(values: Float32Array, rows: number, cols: number): number[][] {
  return Array.from({ length: rows }, (_, r) => Array.from(values.subarray(r * cols, (r + 1) * cols)));
}

function concrete(d: Drawn): Case {
  const shape: Shape = { ...TINY, hidden: d.hidden, heads: d.hidden / 4, kvHeads: d.hidden / 8, intermediate: 8, layers: 1 };
  const n = d.models.length;
  const names = d.models.map((_, i) => `./m${i}`);
  const checkpoints: Record<string, RefModel> = {};
  const tokenizers: Case["tokenizers"] = new Map();
  const refModels: VocabModel[] = d.models.map((m, i) => {
    const tokens = ["<unk>", ...m.picks];
    const added = tokens.map((t, id) => (t === "<unk>" || (SPECIALS.includes(t) && !m.regular[SPECIALS.indexOf(t)]) ? id : -1)).filter((id) => id >= 0);
    const notSpecial = added.filter((id) => id > 0 && m.notSpecial[POOL.indexOf(tokens[id]!)]);
    const vocabSize = Math.max(2, tokens.length + m.sizeDelta);
    const ckpt = baseModel(m.seed, m.dtype, { ...shape, vocab: vocabSize });
    if (m.tied) {
      ckpt.tensors.delete("lm_head.weight");
      ckpt.config = { ...ckpt.config, tie_word_embeddings: true };
    }
    if (m.extraRows > 0) {
      const t = ckpt.tensors.get("model.embed_tokens.weight")!;
      const values = new Float32Array((vocabSize + m.extraRows) * d.hidden);
      values.set(t.values!);
      ckpt.tensors.set("model.embed_tokens.weight", { ...t, shape: [vocabSize + m.extraRows, d.hidden], values });
    }
    checkpoints[`m${i}`] = ckpt;
    tokenizers.set(`m${i}`, { tokens, added, notSpecial });
    const embed = ckpt.tensors.get("model.embed_tokens.weight")!.values!;
    const head = ckpt.tensors.get("lm_head.weight")?.values;
    return {
      name: names[i]!, tokens, added: new Map(added.map((id) => [id, !notSpecial.includes(id)])), vocabSize, embedRows: vocabSize + m.extraRows, dtype: m.dtype,
      embed: rowsOf(embed, vocabSize, d.hidden), lmHead: head ? rowsOf(head, vocabSize, d.hidden) : undefined,
    };
  });
  const kept = (name: string) => {
    const m = refModels[names.indexOf(name)]!;
    return m.tokens.slice(0, Math.min(m.tokens.length, m.vocabSize));
  };

  // The merge: linear over every model (the declared base among them, at its place), or
  // task_arithmetic from the base.
  const baseName = d.method === "task_arithmetic" || d.declareBase ? names[d.baseIndex % n]! : undefined;
  const listed = d.method === "linear" ? names : names.filter((x) => x !== baseName);
  const order = d.method === "linear" ? names : [baseName!, ...listed];
  const recipe: Record<string, unknown> = {
    merge_method: d.method,
    ...(baseName ? { base_model: baseName } : {}),
    models: listed.map((model, i) => ({ model, parameters: { weight: WEIGHTS[d.method === "linear" ? d.weights[i]! % 5 : d.weights[i]!]! } })),
    ...(d.method === "linear" && d.normalize !== undefined ? { parameters: { normalize: d.normalize } } : {}),
  };

  const modelRef = (index: number, ghost: boolean) => (ghost ? GHOST : order[index % order.length]!);
  const sourceModel = modelRef(d.sourceModel, d.sourceGhost);
  let source: VocabSource;
  let written: string | undefined;
  switch (d.source) {
    case "default": source = { kind: "union" }; written = d.form === "legacy" ? "union" : undefined; break;
    case "base": source = { kind: "base" }; written = "base"; break;
    case "union": source = { kind: "union" }; written = "union"; break;
    case "model": source = { kind: "model", model: sourceModel }; written = sourceModel; break;
    case "model-prefixed": source = { kind: "model", model: sourceModel }; written = d.form === "legacy" ? `model:${sourceModel}` : sourceModel; break;
  }

  const entries: TokenEntry[] = [];
  const yamlTokens: Record<string, unknown> = {};
  if (d.form === "block") {
    for (const e of d.entries) {
      const s = e.source;
      let ref: TokenSource | undefined, yaml: unknown;
      if (s.t === "zero") {
        ref = { kind: "zero" };
        yaml = { kind: "zero" };
      } else if (s.t !== "none") {
        let model = modelRef(s.model, s.ghost);
        if (s.t === "model") {
          const holders = order.filter((x) => kept(x).includes(e.token));
          if (s.valid && !s.ghost && holders.length) model = holders[s.model % holders.length]!;
          ref = { kind: "model", model };
          yaml = model;
        } else if (s.t === "token") {
          const own = model === GHOST ? [] : kept(model);
          const token = s.valid && own.length ? own[s.pick % own.length]! : NAMEABLE[s.pick % NAMEABLE.length]!;
          ref = { kind: "model_token", model, token };
          yaml = { kind: "model_token", model, token };
        } else {
          const size = model === GHOST ? 1 : kept(model).length;
          const tokenId = s.valid ? s.pick % size : 40 + (s.pick % 5);
          ref = { kind: "model_token", model, tokenId };
          yaml = { kind: "model_token", model, token_id: tokenId };
        }
      }
      entries.push({ token: e.token, ...(ref ? { source: ref } : {}), ...(e.force !== undefined ? { force: e.force } : {}) });
      yamlTokens[e.token] = { ...(yaml !== undefined ? { source: yaml } : {}), ...(e.force !== undefined ? { force: e.force } : {}) };
    }
  }
  if (d.form === "legacy") {
    recipe.tokenizer_source = written;
  } else {
    recipe.tokenizer = {
      ...(written !== undefined ? { source: written } : {}),
      ...(entries.length ? { tokens: yamlTokens } : {}),
      ...(d.pad !== undefined ? { pad_to_multiple_of: d.pad } : {}),
    };
  }
  const inputs: VocabInputs = {
    models: order.map((x) => refModels[names.indexOf(x)]!),
    ...(baseName ? { base: baseName } : {}),
    settings: { source, tokens: entries, ...(d.form === "block" && d.pad !== undefined ? { padToMultipleOf: d.pad } : {}) },
  };
  return { checkpoints, tokenizers, recipe, inputs, order };
}

/** The expected merged tensor (flat, float32 values) from the reference's rebuilt rows. */
function expectedMerge(d: Drawn, c: Case, rebuilt: Map<string, number[][]>, baseDtype: VocabDtype): number[] {
  const models = (c.recipe.models as { model: string; parameters: { weight: number } }[]);
  const weights = models.map((m) => m.parameters.weight);
  if (d.method === "linear") return referenceLinear(models.map((m) => rebuilt.get(m.model)!), weights, d.normalize ?? true);
  // mergekit's task arithmetic casts each model to the base's dtype before taking x - b.
  const cast = (rows: number[][]) => (baseDtype === "F32" ? rows : rows.map((row) => row.map((v) => roundToDtype(v, baseDtype))));
  return referenceTaskArithmetic(rebuilt.get(c.recipe.base_model as string)!, models.map((m) => cast(rebuilt.get(m.model)!)), weights);
}

const bf16Key = (bits: number) => (bits & 0x8000 ? -(bits & 0x7fff) : bits & 0x7fff);

/** Every element within 1e-6 relative (bf16: within 1 ulp of the reference rounded to bf16, or that float32 bound). */
function assertTensor(name: string, got: { dtype: string; shape: number[]; data: Uint8Array }, want: number[], dtype: VocabDtype, rows: number, hidden: number, vocab: [string, number][]): void {
  assert.equal(got.dtype, dtype, `${name}: dtype`);
  assert.deepEqual(got.shape, [rows, hidden], `${name}: shape`);
  const values = decodeFloat(got.dtype, got.data);
  const view = new DataView(got.data.buffer, got.data.byteOffset, got.data.byteLength);
  const tokenOf = (r: number) => vocab.find(([, id]) => id === r)?.[0] ?? "(padding)";
  for (let i = 0; i < want.length; i++) {
    const a = values[i]!, b = want[i]!;
    const close = Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b));
    const ulps = dtype === "BF16" ? Math.abs(bf16Key(view.getUint16(2 * i, true)) - bf16Key(f32ToBf16Bits(b))) : Infinity;
    if (!(close || ulps <= 1)) {
      const r = Math.floor(i / hidden);
      assert.fail(`${name}: row ${r} (${JSON.stringify(tokenOf(r))}) column ${i % hidden}: weightsoup ${a}, reference ${b}` +
        `\n  weightsoup row ${JSON.stringify(Array.from(values.subarray(r * hidden, (r + 1) * hidden)))}` +
        `\n  reference  row ${JSON.stringify(want.slice(r * hidden, (r + 1) * hidden))}`);
    }
  }
}

/** The output tokenizer.json's vocabulary: model.vocab with added_tokens over it (ids must agree where both list a token). */
function outputVocabulary(tj: { model: { vocab: Record<string, number> }; added_tokens: { id: number; content: string; special: boolean }[] }): { vocab: Map<string, number>; added: Map<number, { content: string; special: boolean }> } {
  const vocab = new Map(Object.entries(tj.model.vocab));
  const added = new Map<number, { content: string; special: boolean }>();
  for (const t of tj.added_tokens) {
    const had = vocab.get(t.content);
    assert.ok(had === undefined || had === t.id, `added token ${JSON.stringify(t.content)} has id ${t.id} but the model's vocabulary says ${had}`);
    vocab.set(t.content, t.id);
    added.set(t.id, { content: t.content, special: t.special });
  }
  return { vocab, added };
}

const sortById = <T>(m: Map<string, number>): [string, number][] => [...m].sort((x, y) => x[1] - y[1] || (x[0] < y[0] ? -1 : 1));

const counts = { cases: 0, refused: 0, bySource: new Map<string, number>(), refusedBy: new Map<string, number>(), padded: 0, stripped: 0, bigger: 0, tied: 0, allTied: 0, bf16: 0, entries: new Map<string, number>() };
const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

async function runCase(d: Drawn): Promise<void> {
  const index = counts.cases++;
  const c = concrete(d);
  const dir = join(root, `case-${index}`);
  const recipePath = await writeCase(dir, c.checkpoints, c.recipe);
  for (const [name, t] of c.tokenizers) await writeTokenizer(join(dir, name), wordLevel(t.tokens, t.added, t.notSpecial), { bos_token: "<unk>", eos_token: "<unk>" });
  const out = join(dir, "out");
  const label = `case ${index}: recipe ${JSON.stringify(c.recipe)}\n  tokenizers ${JSON.stringify(Object.fromEntries([...c.tokenizers].map(([k, t]) => [k, { tokens: t.tokens, added: t.added, notSpecial: t.notSpecial, vocab_size: c.checkpoints[k]!.config!.vocab_size, tied: !c.checkpoints[k]!.tensors.has("lm_head.weight"), dtype: c.checkpoints[k]!.tensors.get("model.embed_tokens.weight")!.dtype }]))) }`;
  const sourceKey = `${d.form}:${d.source}`;
  counts.bySource.set(sourceKey, (counts.bySource.get(sourceKey) ?? 0) + 1);

  let ref: VocabResult | undefined, refusal: unknown;
  try {
    ref = referenceVocab(c.inputs);
  } catch (e) {
    if (!(e instanceof VocabRefusal)) throw e;
    refusal = e;
  }
  const run = { out, workers: d.workers, workerUrl: WORKER_URL, ...(d.chunkElements ? { chunkElements: d.chunkElements } : {}) };
  if (!ref) {
    counts.refused++;
    bump(counts.refusedBy, (refusal as Error).message.replace(/".*?"|\.\/\w+|\d+/g, "_"));
    await assert.rejects(merge(recipePath, run), (e: unknown) => {
      assert.ok(e instanceof WeightsoupError, `${label}\n  the reference refuses it (${(refusal as Error).message}); weightsoup threw ${String(e)}`);
      return true;
    }, `${label}\n  the reference refuses it (${(refusal as Error).message}); weightsoup merged it`);
    await rm(dir, { recursive: true, force: true });
    return;
  }
  try {
    await merge(recipePath, run);
  } catch (e) {
    assert.fail(`${label}\n  the reference merges it; weightsoup refused it: ${String(e)}`);
  }
  if (ref.rows > ref.vocab.size) counts.padded++;
  if (c.inputs.models.some((m) => m.vocabSize < m.tokens.length)) counts.stripped++;
  if (c.inputs.models.some((m) => m.vocabSize > m.tokens.length)) counts.bigger++;
  if (c.inputs.models.some((m) => m.lmHead === undefined)) counts.tied++;
  if (!ref.lmHead) counts.allTied++;
  if (ref.dtype === "BF16") counts.bf16++;
  for (const e of c.inputs.settings.tokens) bump(counts.entries, `${e.source ? (e.source.kind === "model_token" ? ("token" in e.source ? "model_token/token" : "model_token/token_id") : e.source.kind) : "automatic"}${e.force ? " forced" : ""}`);

  // The vocabulary: token -> id and the added tokens (with the `special` flag of the model they came from).
  const tj = JSON.parse(await readFile(join(out, "tokenizer.json"), "utf8"));
  const got = outputVocabulary(tj);
  const wantVocab = sortById(ref.vocab);
  assert.deepEqual(sortById(got.vocab), wantVocab, `${label}\n  output vocabulary`);
  assert.deepEqual([...got.added].map(([id, t]) => [id, t.content]).sort((x, y) => (x[0] as number) - (y[0] as number)),
    [...ref.added].map(([id, t]) => [id, t.content]).sort((x, y) => (x[0] as number) - (y[0] as number)), `${label}\n  added tokens`);
  for (const [id, t] of ref.added) if (t.special !== undefined) assert.equal(got.added.get(id)!.special, t.special, `${label}\n  special flag of added token ${JSON.stringify(t.content)}`);
  // The file loads in @huggingface/tokenizers with the same ids.
  const hf = new HfTokenizer(tj, { unk_token: "<unk>" });
  for (const [token, id] of ref.vocab) assert.equal(hf.token_to_id(token), id, `${label}\n  @huggingface/tokenizers id of ${JSON.stringify(token)}`);

  const config = JSON.parse(await readFile(join(out, "config.json"), "utf8"));
  assert.equal(config.vocab_size, ref.rows, `${label}\n  config.json vocab_size`);

  const tensors = (await readOutput(out)).tensors;
  for (const [name, rebuilt] of [["model.embed_tokens.weight", ref.embed], ["lm_head.weight", ref.lmHead]] as const) {
    const t = tensors.get(name);
    if (!rebuilt) {
      assert.equal(t, undefined, `${label}\n  every model is tied: no ${name} expected`);
      continue;
    }
    assert.ok(t, `${label}\n  ${name} missing from the output`);
    assertTensor(`${label}\n  ${name}`, t, expectedMerge(d, c, rebuilt, ref.dtype), ref.dtype, ref.rows, d.hidden, wantVocab);
  }
  await rm(dir, { recursive: true, force: true });
}

test("random vocabulary merges: output vocabulary, vocab_size and every embed_tokens / lm_head element match the reference, or both refuse", { timeout: 30 * 60_000 }, async (t) => {
  const numRuns = settings.runs(200);
  t.diagnostic(`seed ${settings.seed}, ${numRuns} runs (again: FUZZ_SEED=${settings.seed}; one failure: add FUZZ_PATH=<its path>)`);
  const limit = settings.timeLimitMs(numRuns);
  await fc.assert(fc.asyncProperty(drawnArb, runCase), {
    seed: settings.seed, numRuns, includeErrorInReport: true, ...(settings.path ? { path: settings.path } : {}), ...(limit ? { interruptAfterTimeLimit: limit } : {}),
  });
  t.diagnostic(`${counts.cases} cases, ${counts.refused} refused by both; by source ${[...counts.bySource].map(([k, v]) => `${k} ${v}`).join(", ")}; ` +
    `merged: ${counts.padded} padded, ${counts.stripped} with stripped tokens, ${counts.bigger} with padded checkpoints, ${counts.tied} with a tied model (${counts.allTied} all tied), ${counts.bf16} bf16 outputs; tokens: entries ${[...counts.entries].map(([k, v]) => `${k} ${v}`).join(", ")}; ` +
    `refusals: ${[...counts.refusedBy].map(([k, v]) => `${k} ${v}`).join("; ")}`);
});
