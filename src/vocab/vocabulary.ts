/**
 * @file The output vocabulary of a recipe with `tokenizer_source` or `tokenizer:` (mergekit's
 * tokenizer/build.py), from each model's tokenizer.json as @huggingface/tokenizers reads it:
 *
 * - `base`: the base model's tokens (the first model's without a base); `model:X`: X's tokens.
 * - `union`: the base's tokens at their own ids, then every token of the other inputs that the base
 *   lacks, appended: first the regular tokens of every model (models in recipe order, each in id
 *   order), then their added tokens (an added token's settings come from the first model that has it).
 *   The regular ones are written into the tokenizer model's vocabulary where that keeps every id, else
 *   as added tokens (mergekit's add_tokens).
 * - A model's tokens whose id is at or past its config.json `vocab_size` are stripped first: they have
 *   no embedding row (mergekit does the same).
 * - Tokens named under `tokens:` that the vocabulary lacks are appended as added tokens.
 *
 * For each model it also gives the id map output id -> the model's own id (or -1), which the embedding
 * rebuild (embeddings.ts) follows.
 */
import { ModelError, RecipeError } from "../errors";
import type { LoadedModel } from "../model/model";
import { vocabSize } from "../model/roles";
import { isJsonObject } from "../format/json";
import { readTokenizerFiles, type JsonObject, type TokenizerFiles } from "../tokenizer/files";
import { tokenKey, type TokenizerSettings } from "./settings";

/** One input model's tokenizer, after stripping. */
export interface ModelVocabulary {
  model: string;
  files: TokenizerFiles;
  /** Token -> id, only ids below `limit`. */
  ids: Map<string, number>;
  /** Every token -> id, as the file has it (model_token sources by text look here, as mergekit does). */
  originalIds: Map<string, number>;
  /** Added tokens (tokenizer.json's added_tokens entries) by content, only ids below `limit`. */
  added: Map<string, JsonObject>;
  /** config.json vocab_size, when it states one. */
  limit: number | undefined;
}

export interface OutputVocabulary {
  settings: TokenizerSettings;
  /** The model whose tokenizer files the output's are built from. */
  sourceModel: string;
  /** Token text per output id (undefined for an id no token has). */
  tokens: (string | undefined)[];
  ids: Map<string, number>;
  /** Output ids of tokens that the output tokenizer holds as added tokens, with their settings. */
  added: Map<number, JsonObject>;
  /** Regular tokens appended to the source's model vocabulary (union, where that keeps ids), by output id. */
  appended: Map<number, string>;
  /** Source ids stripped (at or past its vocab_size). */
  stripped: Set<string>;
  /** Rows with tokens: the tokenizer's length. */
  size: number;
  /** Rows of the rebuilt embeddings: size rounded up to pad_to_multiple_of. */
  paddedSize: number;
  /** Per model: output id -> that model's id, or -1. */
  idMaps: Map<string, Int32Array>;
  models: Map<string, ModelVocabulary>;
  /** Things worth telling the person (tokens no model has ...). */
  warnings: string[];
}

/** Reads every model's tokenizer and builds the output vocabulary. `order` is the recipe's models, base first. */
export async function buildVocabulary(
  settings: TokenizerSettings, file: string, order: string[], base: string | undefined, models: ReadonlyMap<string, LoadedModel>,
): Promise<OutputVocabulary> {
  for (const { model, key } of namedModels(settings)) {
    if (!models.has(model)) {
      throw new RecipeError("E_RECIPE", `${file}: ${key}: "${model}" is not one of the recipe's models (${order.join(", ")})`, { file, key, model });
    }
  }
  const vocabularies = new Map<string, ModelVocabulary>();
  for (const name of order) vocabularies.set(name, await readModelVocabulary(name, models.get(name)!));
  const sourceModel = settings.source.kind === "model" ? settings.source.model : base ?? order[0]!;
  const source = vocabularies.get(sourceModel)!;

  const tokens: (string | undefined)[] = [];
  const ids = new Map<string, number>();
  const put = (token: string, id: number) => {
    ids.set(token, id);
    tokens[id] = token;
  };
  for (const [token, id] of source.ids) put(token, id);
  const added = new Map<number, JsonObject>();
  for (const [token, entry] of source.added) added.set(source.ids.get(token)!, entry);
  const stripped = new Set([...source.originalIds.keys()].filter((t) => !source.ids.has(t)));
  const appended = new Map<number, string>();
  let next = tokens.length;

  if (settings.source.kind === "union") {
    const all = order.map((n) => vocabularies.get(n)!);
    // mergekit checks a token against every model's added tokens, not only its own model's: a token any
    // model lists as added goes with the added tokens, with the first such model's settings, even where
    // another model has it as a regular token; one the base has as a regular token is registered as
    // added at the base's id (what transformers' add_tokens does with a token already in the vocabulary).
    const addedAnywhere = new Map<string, JsonObject>();
    for (const v of all) {
      for (const [token] of byId(v.ids)) {
        const entry = v.added.get(token);
        if (entry && !addedAnywhere.has(token)) addedAnywhere.set(token, entry);
      }
    }
    // A regular token written into the tokenizer model's own vocabulary keeps its id only where every
    // added token of the source is in that vocabulary too (GPT-2, WordLevel): the Rust library numbers
    // the other added tokens from the vocabulary's size, so past a Llama-3 or Qwen2 vocabulary its
    // <|eot_id|> would take the first new token's id. There the new tokens are added tokens, as
    // mergekit's add_tokens makes them.
    const modelVocab = (source.files.tokenizer.model as JsonObject | undefined)?.vocab;
    const intoModelVocab = isJsonObject(modelVocab) && [...source.added.keys()].every((t) => Object.hasOwn(modelVocab, t));
    for (const v of all) {
      for (const [token] of byId(v.ids)) {
        if (addedAnywhere.has(token) || ids.has(token)) continue;
        if (intoModelVocab) appended.set(next, token);
        else added.set(next, addedByAddTokens(token));
        put(token, next++);
      }
    }
    for (const [token, entry] of addedAnywhere) {
      const id = ids.get(token);
      if (id === undefined) {
        added.set(next, { ...entry });
        put(token, next++);
      } else if (!added.has(id)) {
        added.set(id, { ...entry });
      }
    }
  }
  // Tokens the recipe names are added if absent (transformers' add_tokens: not special, normalized).
  for (const token of settings.tokens.keys()) {
    if (ids.has(token)) continue;
    added.set(next, addedByAddTokens(token));
    put(token, next++);
  }

  const size = tokens.length;
  const pad = settings.padToMultipleOf;
  const paddedSize = pad && size % pad ? (Math.floor(size / pad) + 1) * pad : size;
  const warnings: string[] = [];
  const gaps = tokens.reduce((n, t) => n + (t === undefined ? 1 : 0), 0);
  if (gaps > 0) warnings.push(`${source.files.tokenizerPath}: ${gaps} ids below ${size} belong to no token; their embedding rows are zero`);

  const idMaps = new Map<string, Int32Array>();
  for (const [name, v] of vocabularies) {
    const map = new Int32Array(size).fill(-1);
    for (let id = 0; id < size; id++) {
      const token = tokens[id];
      const own = token === undefined ? undefined : v.ids.get(token);
      if (own !== undefined) map[id] = own;
    }
    idMaps.set(name, map);
  }
  checkTokenSources(settings, file, vocabularies);
  return { settings, sourceModel, tokens, ids, added, appended, stripped, size, paddedSize, idMaps, models: vocabularies, warnings };
}

function namedModels(settings: TokenizerSettings): { model: string; key: string }[] {
  const named: { model: string; key: string }[] = [];
  if (settings.source.kind === "model") named.push({ model: settings.source.model, key: settings.key === "tokenizer" ? "tokenizer.source" : "tokenizer_source" });
  for (const [token, setting] of settings.tokens) {
    const s = setting.source;
    if (s && s.kind !== "zero") named.push({ model: s.model, key: `${tokenKey(token)}.source${s.kind === "model_token" ? ".model" : ""}` });
  }
  return named;
}


/** A token source that names a token its model does not have is refused before any data is read. */
function checkTokenSources(settings: TokenizerSettings, file: string, vocabularies: Map<string, ModelVocabulary>): void {
  for (const [token, setting] of settings.tokens) {
    const s = setting.source;
    if (!s || s.kind === "zero") continue;
    const v = vocabularies.get(s.model)!;
    const key = `${tokenKey(token)}.source`;
    if (s.kind === "model" && !v.ids.has(token)) {
      throw new RecipeError("E_RECIPE", `${file}: ${key}: model ${s.model} has no token ${JSON.stringify(token)} (${v.files.tokenizerPath}), so it has no row to give`, { file, key, model: s.model });
    }
    if (s.kind === "model_token" && "token" in s && !v.originalIds.has(s.token)) {
      throw new RecipeError("E_RECIPE", `${file}: ${key}.token: model ${s.model} has no token ${JSON.stringify(s.token)} (${v.files.tokenizerPath})`, { file, key: `${key}.token`, model: s.model });
    }
  }
}

/** A token as transformers' add_tokens adds a string: not special, normalized. */
function addedByAddTokens(token: string): JsonObject {
  return { content: token, single_word: false, lstrip: false, rstrip: false, normalized: true, special: false };
}

/** Entries sorted by id. */
function byId(ids: Map<string, number>): [string, number][] {
  return [...ids].sort((a, b) => a[1] - b[1]);
}

async function readModelVocabulary(name: string, model: LoadedModel): Promise<ModelVocabulary> {
  const files = await readTokenizerFiles(model.folder);
  if (!files) {
    throw new ModelError("E_TOKENIZER", `${model.location}: has no tokenizer.json; building an output vocabulary (tokenizer_source / tokenizer:) reads every model's tokenizer`, { file: model.location, model: name });
  }
  // The tokenizer loader (with @huggingface/tokenizers) is imported by the merges that build a vocabulary only.
  const { tokenizerFromFiles } = await import("../tokenizer/tokenizer");
  const tokenizer = tokenizerFromFiles(files);
  const originalIds = new Map<string, number>();
  for (const [token, id] of tokenizer.vocabulary()) if (typeof token === "string") originalIds.set(token, id);
  const limit = vocabSize(model.config); // the embedding's rows (a multimodal model's in its text section)
  const ids = new Map([...originalIds].filter(([, id]) => limit === undefined || id < limit));
  // The added tokens transformers has (tokenizer.json's, and the special tokens tokenizer_config.json names).
  const added = new Map<string, JsonObject>();
  for (const { id: _id, ...settings } of tokenizer.addedTokens()) {
    if (ids.has(settings.content) && !added.has(settings.content)) added.set(settings.content, settings);
  }
  return { model: name, files, ids, originalIds, added, limit };
}
