// One evaluation fuzz case: a valid tiny decoder (fuzz-eval-fixtures.ts) with its config.json, tensors
// and tokenizer files edited, token ids or a text, models to compare against, options, and how it is
// run (evaluate, logits, generate, or `weightsoup eval|generate --json`). Cases are plain data, as in
// fuzz-cases.ts; `materializeEval` writes one into a folder.
import fc from "fast-check";
import { cp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { DTYPE_SIZE, decodeFloat, encodeTensor, isFloatDtype, readSafetensors, writeSafetensors, type RefDtype, type RefTensorBytes } from "../reference/safetensors";
import { EVAL_MODELS, fixtureDir, fixtureHasTokenizer, fixtureTensorNames, fixtureVocab, TOKENIZER_MODEL, type EvalModelName } from "./fuzz-eval-fixtures";
import { deepJsonArb, emitJson, hostileJsonArb, hostileStringArb, isPairs, PROTOTYPE_NAMES, setPair, toJson, type Json } from "./fuzz-json";

export type EvalRun = "evaluate" | "logits" | "generate" | "cli-eval" | "cli-generate";

/** Sets (value) or deletes (undefined) a key, `path` deep (missing or non-object levels become objects). */
export type ConfigEdit =
  | { op: "set"; path: string[]; value: Json | undefined }
  /** The whole file: text that is not a config (or not JSON), or no file at all (null). */
  | { op: "replace"; text: string | null };

export type TensorEdit =
  | { op: "drop"; tensor: string }
  /** Replaces any tensor already called `to`. */
  | { op: "rename"; tensor: string; to: string }
  /** transpose (the data too), flatten, unsqueeze, or one row fewer / one more (a copy of the last). */
  | { op: "reshape"; tensor: string; how: "transpose" | "flatten" | "unsqueeze" | "rowFewer" | "rowMore" }
  /** The values re-encoded in another dtype (integers rounded). */
  | { op: "retype"; tensor: string; dtype: RefDtype }
  /** Every value times `by` (0, −1, 100; NaN and Infinity poison the weights). */
  | { op: "scale"; tensor: string; by: number }
  /** A copy of `like` under a new name (an extra layer, a stale buffer, lm_head beside tied embeddings). */
  | { op: "add"; name: string; like: string };

export type TokenizerFile = "tokenizer.json" | "tokenizer_config.json" | "generation_config.json";
export type TokenizerEdit =
  | { op: "set"; file: TokenizerFile; path: string[]; value: Json | undefined }
  | { op: "replace"; file: TokenizerFile; text: string | null };

export type IdValue = number | string | null;

/** What is scored or continued: token ids, a text (a prompt for generate), both or neither (must be refused). */
export type EvalInput = { ids: IdValue[] } | { text: string } | { ids: IdValue[]; text: string } | { none: true };

export type OptionValue = number | string | boolean | null;

export interface EvalCase {
  kind: "eval";
  run: EvalRun;
  model: EvalModelName;
  /** The subject is a linear recipe over the edited model and its (equally edited) sibling, merged in memory. */
  recipe: boolean;
  config: ConfigEdit[];
  tensors: TensorEdit[];
  tokenizer: TokenizerEdit[];
  input: EvalInput;
  /** Pristine fixtures to compare against (evaluate only). */
  against: EvalModelName[];
  /** Library options, or for the CLI runs flag values by option name (strings). */
  options: Record<string, OptionValue>;
}

// ---------------------------------------------------------------------------------------------------
// Arbitraries

const hostileOptionArb = fc.constantFrom<OptionValue>(NaN, -1, 0, 0.5, 1.5, Infinity, -Infinity, "2", "", null, true, 1e30, 2 ** 53, 2 ** 32);

/** Mostly one of the plain values, now and then a hostile one (several options are set at once). */
function optionArb(...plain: OptionValue[]): fc.Arbitrary<OptionValue> {
  return fc.oneof({ weight: 10, arbitrary: fc.constantFrom(...plain) }, { weight: 1, arbitrary: hostileOptionArb });
}

const MiB = 2 ** 20;

const evaluateOptionsArb = fc.record({
  context: optionArb(2, 3, 5, 16), maxTokens: optionArb(2, 4, 9), workers: optionArb(1, 2), memoryBudget: optionArb(64 * MiB, 256 * MiB, MiB, 17 * MiB),
  seed: optionArb(0, 7), chunkBytes: optionArb(4096, 65536),
}, { requiredKeys: [] });

const logitsOptionsArb = fc.record({ workers: optionArb(1, 2), memoryBudget: optionArb(64 * MiB, MiB), seed: optionArb(0, 3) }, { requiredKeys: [] });

/** A callback option given a value that is no function, now and then (a function cannot cross to the runner thread). */
const notACallbackArb = fc.option(fc.constantFrom<OptionValue>("print", 1, true, null), { freq: 20, nil: undefined });

/** maxNewTokens is given most of the time: the default (64) makes slow cases. */
const generateOptionsArb = fc.record({
  maxNewTokens: optionArb(1, 2, 3), temperature: optionArb(0, 0.7, 1.5), seed: optionArb(0, 9),
  memoryBudget: optionArb(64 * MiB, 256 * MiB, MiB), chat: fc.boolean(), onToken: notACallbackArb, onWarning: notACallbackArb,
}, { requiredKeys: ["maxNewTokens", "onToken", "onWarning"] })
  .map((o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Record<string, OptionValue>);

/** Flag values: plain ones, and strings no numeric flag accepts or only some do. */
function flagArb(...plain: string[]): fc.Arbitrary<string> {
  return fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...plain) }, {
    weight: 1, arbitrary: fc.constantFrom("", "-1", "0", "0.5", "NaN", "Infinity", "x", "1e3", " 2", "0x10", "１", "__proto__", "99999999999999999999", "64MiB"),
  });
}

/** Each flag's plain values: every one is valid for its own flag (a value plain for one flag may be refused by another). */
export const PLAIN_FLAG_VALUES = {
  eval: { context: ["2", "5", "16"], maxTokens: ["2", "6"], workers: ["1", "2"], memoryBudget: ["64MiB", "256MiB", "1MiB"], seed: ["0", "7"] },
  generate: { maxNewTokens: ["1", "2", "3"], temperature: ["0", "0.7", "1.5"], seed: ["0", "9"], memoryBudget: ["64MiB", "1MiB"] },
} as const;

const evalFlagsArb = fc.record({
  context: flagArb(...PLAIN_FLAG_VALUES.eval.context), maxTokens: flagArb(...PLAIN_FLAG_VALUES.eval.maxTokens), workers: flagArb(...PLAIN_FLAG_VALUES.eval.workers),
  memoryBudget: flagArb(...PLAIN_FLAG_VALUES.eval.memoryBudget), seed: flagArb(...PLAIN_FLAG_VALUES.eval.seed),
}, { requiredKeys: [] });

const generateFlagsArb = fc.record({
  maxNewTokens: flagArb(...PLAIN_FLAG_VALUES.generate.maxNewTokens), temperature: flagArb(...PLAIN_FLAG_VALUES.generate.temperature), seed: flagArb(...PLAIN_FLAG_VALUES.generate.seed),
  memoryBudget: flagArb(...PLAIN_FLAG_VALUES.generate.memoryBudget), chat: fc.boolean(),
}, { requiredKeys: ["maxNewTokens"] });

const SIZE_KEYS = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
  "n_embd", "n_head", "n_layer", "n_inner", "n_positions", "max_position_embeddings", "original_max_position_embeddings", "max_window_layers", "sliding_window"] as const;
const BOOL_KEYS = ["tie_word_embeddings", "attention_bias", "mlp_bias", "use_sliding_window", "scale_attn_weights", "scale_attn_by_inverse_layer_idx", "add_cross_attention"] as const;
const ROPE_FIELDS = ["rope_type", "type", "factor", "rope_theta", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings", "partial_rotary_factor"] as const;

const sizeValueArb: fc.Arbitrary<Json> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom<Json>(1, 2, 3, 4, 5, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 160, 2048) },
  { weight: 2, arbitrary: fc.constantFrom<Json>(0, -1, 2.5, 1e12, 2 ** 53, null, "4", true, [4], { raw: "1e400" }, { raw: "4.0" }) },
  { weight: 1, arbitrary: hostileJsonArb },
);

const ropeObjectArb: fc.Arbitrary<Json> = fc.constantFrom<Json>(
  { pairs: [] },
  { pairs: [["type", "linear"], ["factor", 2]] },
  { pairs: [["rope_type", "linear"], ["factor", 0.5]] },
  { pairs: [["rope_type", "linear"]] },
  { pairs: [["rope_type", "llama3"], ["factor", 8], ["low_freq_factor", 1], ["high_freq_factor", 4], ["original_max_position_embeddings", 32]] },
  { pairs: [["rope_type", "llama3"], ["factor", 8]] },
  { pairs: [["rope_type", "llama3"], ["factor", 2], ["low_freq_factor", 4], ["high_freq_factor", 4], ["original_max_position_embeddings", 16]] },
  { pairs: [["rope_type", "dynamic"], ["factor", 2]] },
  { pairs: [["rope_type", "dynamic"]] },
  { pairs: [["rope_type", "yarn"], ["factor", 2], ["original_max_position_embeddings", 32]] },
  { pairs: [["rope_type", "default"], ["rope_theta", 1000]] },
  { pairs: [["rope_type", "default"], ["rope_theta", 10000], ["partial_rotary_factor", 0.5]] },
  { pairs: [["full_attention", { pairs: [["rope_type", "default"]] }]] },
  null, "linear", [], 5, true, false,
);

const ropeFieldValueArb: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>("linear", "llama3", "dynamic", "default", "yarn", "longrope", "", 0.5, 1, 2, 4, 8, 0, -1, 16, 32, 2048, 1e6, null, "2", { raw: "1e400" }),
  hostileJsonArb,
);

const configEditArb: fc.Arbitrary<ConfigEdit> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant("set" as const), path: fc.constantFrom(...SIZE_KEYS).map((k) => [k]), value: fc.option(sizeValueArb, { nil: undefined }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("set" as const), path: fc.constant<string[]>(["model_type"]),
    value: fc.option(fc.oneof(fc.constantFrom<Json>("llama", "mistral", "qwen2", "qwen3", "gpt2", "gemma3", "phi3", "mamba", "LLAMA", "", ...PROTOTYPE_NAMES), hostileJsonArb), { nil: undefined }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("set" as const), path: fc.constantFrom<string[]>(["rope_scaling"], ["rope_parameters"]), value: fc.option(fc.oneof(ropeObjectArb, hostileJsonArb), { nil: undefined }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("set" as const), path: fc.tuple(fc.constantFrom("rope_scaling", "rope_parameters"), fc.constantFrom(...ROPE_FIELDS)).map((p) => [...p]), value: fc.option(ropeFieldValueArb, { nil: undefined }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("set" as const), path: fc.constantFrom<string[]>(["rope_theta"], ["partial_rotary_factor"]),
    value: fc.option(fc.oneof(fc.constantFrom<Json>(10000, 500000, 1e6, 1, 0.5, 0, -1, null, "10000", { raw: "1e400" }), hostileJsonArb), { nil: undefined }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("set" as const), path: fc.constantFrom<string[]>(["hidden_act"], ["activation_function"]),
    value: fc.option(fc.oneof(fc.constantFrom<Json>("silu", "swish", "gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu", "tanh", "", "SILU", null), hostileJsonArb), { nil: undefined }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("set" as const), path: fc.constantFrom<string[]>(["rms_norm_eps"], ["layer_norm_epsilon"]),
    value: fc.option(fc.oneof(fc.constantFrom<Json>(1e-5, 1e-6, 0, -1e-5, -1, 1, 1e308, null, "1e-5", { raw: "1e400" }), hostileJsonArb), { nil: undefined }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("set" as const), path: fc.constantFrom(...BOOL_KEYS).map((k) => [k]),
    value: fc.option(fc.oneof(fc.constantFrom<Json>(true, false, null, "true", 0, 1)), { nil: undefined }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("set" as const), path: fc.constant<string[]>(["layer_types"]),
    value: fc.option(fc.oneof(fc.constantFrom<Json>(["full_attention", "sliding_attention"], ["sliding_attention", "sliding_attention"], ["full_attention"], [], ["x", "y"], null, "full_attention"), hostileJsonArb), { nil: undefined }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("set" as const), path: fc.constantFrom<string[]>(["text_config"], ["bos_token_id"], ["eos_token_id"], ["torch_dtype"], ...PROTOTYPE_NAMES.map((k) => [k])), value: fc.option(hostileJsonArb, { nil: undefined }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("replace" as const), text: fc.constantFrom<string | null>(null, "", "{", "[]", "5", "null", '"llama"', "{}", "\ufeff{}", '{"model_type": "llama", "hidden_size": NaN}') }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("replace" as const), text: deepJsonArb.map(emitJson) }) },
);

const TOKENIZER_PATHS: Record<TokenizerFile, string[][]> = {
  "tokenizer.json": [["model", "type"], ["model", "vocab"], ["model", "merges"], ["model", "byte_fallback"], ["added_tokens"], ["post_processor"], ["pre_tokenizer"], ["normalizer"], ["decoder"], ["model"]],
  "tokenizer_config.json": [["bos_token"], ["eos_token"], ["unk_token"], ["chat_template"], ["tokenizer_class"], ["add_bos_token"], ["add_eos_token"], ["model_max_length"], ["added_tokens_decoder"]],
  "generation_config.json": [["eos_token_id"], ["bos_token_id"], ["pad_token_id"]],
};

const tokenizerValueArb: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(2, [2, 5], -1, 1e9, 299, 300, 0.5, "2", "</s>", "<s>", "", "LlamaTokenizer", "GPT2Tokenizer", "Qwen2Tokenizer", "Unigram", "WordLevel",
    "{{ messages[0].content }}", "{% for m in messages %}{{ m.content }}{% endfor %}", "{% for %}", "{{ raise_exception('no') }}", true, false, null, [], { pairs: [] }),
  hostileJsonArb,
);

const tokenizerFileArb = fc.constantFrom<TokenizerFile>("tokenizer.json", "tokenizer_config.json", "generation_config.json");
const tokenizerEditArb: fc.Arbitrary<TokenizerEdit> = fc.oneof(
  { weight: 5, arbitrary: tokenizerFileArb.chain((file) => fc.record({ op: fc.constant("set" as const), file: fc.constant(file), path: fc.constantFrom(...TOKENIZER_PATHS[file]), value: fc.option(tokenizerValueArb, { nil: undefined }) })) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("replace" as const), file: tokenizerFileArb, text: fc.constantFrom<string | null>(null, "", "{", "[]", "{}", "5") }) },
);

/** Extra tensor names: an extra layer, stale buffers transformers ignores, lm_head beside tied embeddings, oddities. */
const EXTRA_NAMES = ["model.layers.2.mlp.up_proj.weight", "transformer.h.2.mlp.c_fc.weight", "h.2.mlp.c_fc.weight", "lm_head.weight", "model.rotary_emb.inv_freq",
  "model.layers.0.self_attn.rotary_emb.inv_freq", "transformer.h.0.attn.masked_bias", "extra.weight", "model.layers.0.self_attn.q_proj.bias", "__proto__"];

function tensorEditArb(names: readonly string[]): fc.Arbitrary<TensorEdit> {
  const tensor = fc.constantFrom(...names);
  return fc.oneof(
    fc.record({ op: fc.constant("drop" as const), tensor }),
    fc.record({ op: fc.constant("rename" as const), tensor, to: fc.oneof(fc.constantFrom(...names), fc.constantFrom(...EXTRA_NAMES), hostileStringArb) }),
    { weight: 2, arbitrary: fc.record({ op: fc.constant("reshape" as const), tensor, how: fc.constantFrom("transpose" as const, "flatten" as const, "unsqueeze" as const, "rowFewer" as const, "rowMore" as const) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("retype" as const), tensor, dtype: fc.constantFrom<RefDtype>("BF16", "F16", "F32", "F64", "I32", "I64", "U8", "BOOL") }) },
    fc.record({ op: fc.constant("scale" as const), tensor, by: fc.constantFrom(0, -1, 100, NaN, Infinity) }),
    fc.record({ op: fc.constant("add" as const), name: fc.constantFrom(...EXTRA_NAMES), like: tensor }),
  );
}

/** Ids for a vocabulary of V: mostly in range; some lists hold one id that is V itself, beyond it, negative, fractional or not a number. */
function idsArb(V: number): fc.Arbitrary<IdValue[]> {
  const valid = fc.array(fc.nat(V - 1), { minLength: 2, maxLength: 12 });
  const hostile = fc.constantFrom<IdValue>(V, V + 1, -1, 1e9, 0.5, NaN, Infinity, 2 ** 53, 2 ** 31, "1", null);
  return fc.oneof(
    { weight: 8, arbitrary: valid },
    { weight: 2, arbitrary: fc.tuple(valid, fc.nat(), hostile).map(([ids, at, id]) => ids.map((x, i) => (i === at % ids.length ? id : x))) },
    { weight: 1, arbitrary: fc.array(fc.nat(V - 1), { maxLength: 1 }) },
  );
}

const textArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom("We hold these truths to be self-evident", "Four score and seven years ago", "The capital of France is", "and the", "a\nb\tc  d") },
  { weight: 2, arbitrary: fc.constantFrom("", " ", "x", "\u0000", "\ud800", "\udc00a", "🦙 ünïcödé ✓", "<s>", "</s>", "<unk>", "<s></s><s>", "\ufeffhi", "a".repeat(300)) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 24 }) },
);

function inputArb(model: EvalModelName): fc.Arbitrary<EvalInput> {
  const text = fixtureHasTokenizer(model) ? 6 : 1;
  return fc.oneof(
    { weight: 8, arbitrary: idsArb(fixtureVocab(model)).map((ids) => ({ ids })) },
    { weight: text, arbitrary: textArb.map((t) => ({ text: t })) },
    { weight: 1, arbitrary: fc.oneof(fc.constant({ none: true as const }), fc.record({ ids: idsArb(fixtureVocab(model)), text: textArb })) },
  );
}

/** How many edits of a kind: none about half the time, so the success path stays well trodden. */
function editsArb<T>(arb: fc.Arbitrary<T>, noneWeight: number): fc.Arbitrary<T[]> {
  return fc.oneof({ weight: noneWeight, arbitrary: fc.constant([] as T[]) }, { weight: 3, arbitrary: fc.array(arb, { minLength: 1, maxLength: 3 }) });
}

const runArb = fc.oneof(
  { weight: 6, arbitrary: fc.constant<EvalRun>("evaluate") },
  { weight: 2, arbitrary: fc.constant<EvalRun>("logits") },
  { weight: 3, arbitrary: fc.constant<EvalRun>("generate") },
  { weight: 1, arbitrary: fc.constant<EvalRun>("cli-eval") },
  { weight: 1, arbitrary: fc.constant<EvalRun>("cli-generate") },
);

function optionsFor(run: EvalRun): fc.Arbitrary<Record<string, OptionValue>> {
  switch (run) {
    case "evaluate": return evaluateOptionsArb;
    case "logits": return logitsOptionsArb;
    case "generate": return generateOptionsArb;
    case "cli-eval": return evalFlagsArb;
    case "cli-generate": return generateFlagsArb;
  }
}

export const evalCaseArb: fc.Arbitrary<EvalCase> = fc.tuple(fc.constantFrom(...EVAL_MODELS), runArb).chain(([model, run]) => fc.record({
  kind: fc.constant("eval" as const),
  run: fc.constant(run),
  model: fc.constant(model),
  recipe: fc.oneof({ weight: 6, arbitrary: fc.constant(false) }, { weight: run === "cli-generate" ? 0 : 1, arbitrary: fc.constant(true) }),
  config: editsArb(configEditArb, 3),
  tensors: editsArb(tensorEditArb(fixtureTensorNames(model)), 5),
  tokenizer: model === TOKENIZER_MODEL ? editsArb(tokenizerEditArb, 5) : fc.constant<TokenizerEdit[]>([]),
  input: inputArb(model),
  against: run === "evaluate" || run === "cli-eval"
    ? fc.oneof({ weight: 3, arbitrary: fc.constant<EvalModelName[]>([]) }, { weight: 1, arbitrary: fc.uniqueArray(fc.constantFrom(...EVAL_MODELS), { minLength: 1, maxLength: 2 }) })
    : fc.constant<EvalModelName[]>([]),
  options: optionsFor(run),
}));

// ---------------------------------------------------------------------------------------------------
// Writing a case

/** Where a materialized case's inputs are. */
export interface EvalCaseFiles {
  /** The edited model folder. */
  model: string;
  /** Its edited sibling (recipe cases). */
  sibling: string | undefined;
  /** The recipe file (recipe cases). */
  recipe: string | undefined;
  /** What is evaluated: the model folder or the recipe file. */
  subject: string;
  against: string[];
  /** Some float weight holds NaN or ±Infinity after the edits (so may the results). */
  poisoned: boolean;
}

export const RECIPE_TEXT = "merge_method: linear\nmodels:\n  - model: ./m\n    parameters: {weight: 0.5}\n  - model: ./m2\n    parameters: {weight: 0.5}\n";

/** Writes the case's models (and recipe) into dir, an empty folder; `pristine` holds the fixtures. */
export async function materializeEval(c: EvalCase, pristine: string, dir: string): Promise<EvalCaseFiles> {
  const model = join(dir, "m");
  let poisoned = await writeEdited(fixtureDir(pristine, c.model), model, c);
  let sibling: string | undefined, recipe: string | undefined;
  if (c.recipe) {
    sibling = join(dir, "m2");
    poisoned = (await writeEdited(fixtureDir(pristine, c.model, true), sibling, c)) || poisoned;
    recipe = join(dir, "recipe.yml");
    await writeFile(recipe, RECIPE_TEXT);
  }
  const against: string[] = [];
  for (const [i, name] of c.against.entries()) {
    const link = join(dir, `against-${i}`);
    await symlink(fixtureDir(pristine, name), link, "dir");
    against.push(link);
  }
  return { model, sibling, recipe, subject: recipe ?? model, against, poisoned };
}

async function writeEdited(from: string, to: string, c: EvalCase): Promise<boolean> {
  await cp(from, to, { recursive: true });
  const poisoned = c.tensors.length ? await editTensors(join(to, "model.safetensors"), c.tensors) : false;
  for (const edit of c.config) await editJsonFile(join(to, "config.json"), edit.op === "set" ? { path: edit.path, value: edit.value } : { text: edit.text });
  for (const edit of c.tokenizer) await editJsonFile(join(to, edit.file), edit.op === "set" ? { path: edit.path, value: edit.value } : { text: edit.text });
  return poisoned;
}

type Pairs = { pairs: [string, Json][] };

/** Applies one edit to a JSON file: a (deep) key set or deleted, or the whole text replaced or the file removed. */
async function editJsonFile(path: string, edit: { path: string[]; value: Json | undefined } | { text: string | null }): Promise<void> {
  if ("text" in edit) {
    if (edit.text === null) await rm(path, { force: true });
    else await writeFile(path, edit.text);
    return;
  }
  let root: Json;
  try {
    root = toJson(JSON.parse(await readFile(path, "utf8")));
  } catch {
    return; // an earlier edit removed the file or made it something else: leave it so
  }
  if (!isPairs(root)) return;
  setPath(root, edit.path, edit.value);
  await writeFile(path, emitJson(root));
}

function setPath(map: Pairs, path: string[], value: Json | undefined): void {
  const [key, ...rest] = path;
  if (rest.length === 0) return setPair(map, key!, value);
  let child = map.pairs.find(([k]) => k === key)?.[1];
  if (!isPairs(child)) {
    if (value === undefined) return;
    child = { pairs: [] };
    setPair(map, key!, child);
  }
  setPath(child, rest, value);
}

interface EditableTensor {
  name: string;
  dtype: RefDtype;
  shape: number[];
  values: Float64Array;
}

/** Rewrites a single-file checkpoint with the edits applied; returns whether a float weight became non-finite. */
async function editTensors(path: string, edits: TensorEdit[]): Promise<boolean> {
  const file = readSafetensors(new Uint8Array(await readFile(path)));
  let tensors: EditableTensor[] = [...file.tensors].map(([name, t]) => ({ name, dtype: t.dtype as RefDtype, shape: [...t.shape], values: Float64Array.from(decode(t.dtype, t.data)) }));
  const find = (name: string) => tensors.find((t) => t.name === name);
  for (const e of edits) {
    const t = find(e.op === "add" ? e.like : e.tensor);
    if (!t) continue; // renamed or dropped by an earlier edit
    switch (e.op) {
      case "drop":
        tensors = tensors.filter((x) => x !== t);
        break;
      case "rename":
        tensors = tensors.filter((x) => x.name !== e.to || x === t);
        t.name = e.to;
        break;
      case "reshape":
        reshape(t, e.how);
        break;
      case "retype":
        t.dtype = e.dtype;
        break;
      case "scale":
        t.values = t.values.map((v) => v * e.by);
        break;
      case "add":
        if (!find(e.name)) tensors.push({ ...t, name: e.name, shape: [...t.shape], values: t.values.slice() });
        break;
    }
  }
  const out: RefTensorBytes[] = tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: encode(t.dtype, t.values) }));
  await writeFile(path, writeSafetensors(out, file.metadata));
  return tensors.some((t) => isFloatDtype(t.dtype) && decodeFloat(t.dtype, encode(t.dtype, t.values)).some((v) => !Number.isFinite(v)));
}

function reshape(t: EditableTensor, how: "transpose" | "flatten" | "unsqueeze" | "rowFewer" | "rowMore"): void {
  const [rows = 1, ...rest] = t.shape;
  const width = rest.reduce((a, b) => a * b, 1);
  switch (how) {
    case "transpose":
      if (t.shape.length !== 2) return;
      t.values = Float64Array.from({ length: t.values.length }, (_, i) => t.values[(i % rows) * width + Math.floor(i / rows)]!);
      t.shape = [width, rows];
      return;
    case "flatten":
      t.shape = [t.values.length];
      return;
    case "unsqueeze":
      t.shape = [1, ...t.shape];
      return;
    case "rowFewer":
      if (t.shape.length === 0 || rows === 0) return;
      t.shape = [rows - 1, ...rest];
      t.values = t.values.slice(0, (rows - 1) * width);
      return;
    case "rowMore": {
      if (t.shape.length === 0 || rows === 0) return;
      const more = new Float64Array((rows + 1) * width);
      more.set(t.values);
      more.set(t.values.subarray((rows - 1) * width), rows * width);
      t.shape = [rows + 1, ...rest];
      t.values = more;
      return;
    }
  }
}

function decode(dtype: string, data: Uint8Array): ArrayLike<number> {
  if (isFloatDtype(dtype)) return dtype === "F64" ? new Float64Array(data.slice().buffer) : decodeFloat(dtype, data);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const n = data.byteLength / DTYPE_SIZE[dtype as RefDtype];
  return Array.from({ length: n }, (_, i) => {
    switch (dtype) {
      case "I64": return Number(view.getBigInt64(i * 8, true));
      case "I32": return view.getInt32(i * 4, true);
      default: return view.getUint8(i);
    }
  });
}

/** Values in a dtype: floats rounded by the reference encoder, integers rounded and clamped to the type's range. */
function encode(dtype: RefDtype, values: Float64Array): Uint8Array {
  if (isFloatDtype(dtype)) return encodeTensor(dtype, values);
  const [lo, hi] = dtype === "U8" ? [0, 255] : dtype === "BOOL" ? [0, 1] : dtype === "I32" ? [-(2 ** 31), 2 ** 31 - 1] : [-(2 ** 53), 2 ** 53];
  return encodeTensor(dtype, Array.from(values, (v) => (Number.isNaN(v) ? 0 : Math.min(hi, Math.max(lo, Math.round(v))))));
}
