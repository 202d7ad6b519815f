/**
 * @file The recipe keys that choose the output vocabulary and chat template (mergekit's
 * tokenizer/config.py): the legacy `tokenizer_source`, the `tokenizer:` block, and `chat_template`.
 * Both vocabulary forms are read into one TokenizerSettings; they are mutually exclusive, as in mergekit.
 */
import { describeValue, RecipeError } from "../errors";
import { checkChatTemplate, type ChatTemplateSetting } from "./chat-templates";

/** Where the output vocabulary comes from: the base's, one model's, or the union of every input's. */
export type VocabularySource = { kind: "base" } | { kind: "union" } | { kind: "model"; model: string };

/** Where a token's default row comes from (mergekit's TokenEmbeddingConfig.source). */
export type TokenRowSource =
  | { kind: "zero" }
  /** That model's row for the same token. */
  | { kind: "model"; model: string }
  /** That model's row for another token, named by text or by id. */
  | { kind: "model_token"; model: string; token: string }
  | { kind: "model_token"; model: string; tokenId: number };

export interface TokenSetting {
  /** Undefined: the automatic default (mergekit's assign_embedding_sources). */
  source: TokenRowSource | undefined;
  /** Use the default even for models that have the token. */
  force: boolean;
}

export interface TokenizerSettings {
  source: VocabularySource;
  /** Tokens named under `tokens:`, in the order written (null-prototype keys: token texts come from outside). */
  tokens: Map<string, TokenSetting>;
  padToMultipleOf: number | undefined;
  /** The recipe key it came from, for messages. */
  key: "tokenizer" | "tokenizer_source";
}

type Fail = (key: string, what: string) => RecipeError;

/** Largest pad_to_multiple_of accepted (a vocabulary is padded by less than this many rows). */
const MAX_PAD_MULTIPLE = 1 << 20;

/**
 * Reads `tokenizer_source`, `tokenizer` and `chat_template` from a recipe mapping. Returns undefined
 * members for keys that are absent, so a recipe without them behaves as before (the donor's files copied).
 */
export function readTokenizerKeys(r: Record<string, unknown>, file: string): { tokenizer?: TokenizerSettings; chatTemplate?: ChatTemplateSetting } {
  const fail: Fail = (key, what) => new RecipeError("E_RECIPE", `${file}: ${key}: ${what}`, { file, key });
  const out: { tokenizer?: TokenizerSettings; chatTemplate?: ChatTemplateSetting } = {};
  if (r.tokenizer_source !== undefined && r.tokenizer !== undefined) {
    throw fail("tokenizer", "cannot be used together with tokenizer_source (mergekit refuses both too); keep one: tokenizer: {source: ...} is the newer form");
  }
  if (r.tokenizer_source !== undefined) {
    out.tokenizer = { source: vocabularySource(r.tokenizer_source, "tokenizer_source", fail), tokens: new Map(), padToMultipleOf: undefined, key: "tokenizer_source" };
  } else if (r.tokenizer !== undefined) {
    out.tokenizer = tokenizerBlock(r.tokenizer, fail);
  }
  if (r.chat_template !== undefined) out.chatTemplate = checkChatTemplate(r.chat_template, file);
  return out;
}

/** `base`, `union`, `model:NAME` or a bare model reference. */
function vocabularySource(v: unknown, key: string, fail: Fail): VocabularySource {
  if (typeof v !== "string" || !v.trim()) throw fail(key, `must be "base", "union" or a model (model:NAME or the model's name), found ${describeValue(v)}`);
  const s = v.trim();
  if (s === "base" || s === "union") return { kind: s };
  const model = s.startsWith("model:") ? s.slice("model:".length).trim() : s;
  if (!model) throw fail(key, `"${s}" names no model`);
  return { kind: "model", model };
}

function tokenizerBlock(v: unknown, fail: Fail): TokenizerSettings {
  const block = mapping(v, "tokenizer", ["source", "tokens", "pad_to_multiple_of"], fail);
  const settings: TokenizerSettings = {
    source: block.source === undefined || block.source === null ? { kind: "union" } : vocabularySource(block.source, "tokenizer.source", fail),
    tokens: new Map(),
    padToMultipleOf: undefined,
    key: "tokenizer",
  };
  const pad = block.pad_to_multiple_of;
  if (pad !== undefined && pad !== null) {
    if (typeof pad !== "number" || !Number.isSafeInteger(pad) || pad < 1 || pad > MAX_PAD_MULTIPLE) {
      throw fail("tokenizer.pad_to_multiple_of", `must be an integer from 1 to ${MAX_PAD_MULTIPLE}, found ${describeValue(pad)}`);
    }
    settings.padToMultipleOf = pad;
  }
  if (block.tokens !== undefined && block.tokens !== null) {
    const tokens = block.tokens;
    if (typeof tokens !== "object" || Array.isArray(tokens)) throw fail("tokenizer.tokens", "must be a mapping of token text to {source, force}");
    for (const [token, spec] of Object.entries(tokens)) {
      const key = tokenKey(token);
      if (!token) throw fail(key, "a token cannot be the empty string");
      const s = mapping(spec ?? {}, key, ["source", "force"], fail);
      if (s.force !== undefined && typeof s.force !== "boolean") throw fail(`${key}.force`, `must be true or false, found ${describeValue(s.force)}`);
      settings.tokens.set(token, { source: s.source === undefined || s.source === null ? undefined : rowSource(s.source, `${key}.source`, fail), force: s.force === true });
    }
  }
  return settings;
}

/** A model reference (string), {kind: zero} or {kind: model_token, model, token | token_id}. */
function rowSource(v: unknown, key: string, fail: Fail): TokenRowSource {
  if (typeof v === "string") {
    if (!v.trim()) throw fail(key, "an empty model name");
    return { kind: "model", model: v.trim() };
  }
  const s = mapping(v, key, ["kind", "model", "token", "token_id"], fail);
  if (s.kind === "zero") {
    if (s.model !== undefined || s.token !== undefined || s.token_id !== undefined) throw fail(key, "{kind: zero} takes no other keys");
    return { kind: "zero" };
  }
  if (s.kind !== "model_token") throw fail(`${key}.kind`, `must be "zero" or "model_token", found ${describeValue(s.kind)}`);
  if (typeof s.model !== "string" || !s.model.trim()) throw fail(`${key}.model`, "must name a model of the recipe");
  const model = s.model.trim();
  if ((s.token === undefined) === (s.token_id === undefined)) throw fail(key, "a model_token source needs exactly one of token and token_id");
  if (s.token !== undefined) {
    if (typeof s.token !== "string" || !s.token) throw fail(`${key}.token`, `must be a token's text, found ${describeValue(s.token)}`);
    return { kind: "model_token", model, token: s.token };
  }
  if (typeof s.token_id !== "number" || !Number.isSafeInteger(s.token_id) || s.token_id < 0) throw fail(`${key}.token_id`, `must be a non-negative integer, found ${describeValue(s.token_id)}`);
  return { kind: "model_token", model, tokenId: s.token_id };
}

function mapping(v: unknown, key: string, allowed: string[], fail: Fail): Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw fail(key, `must be a mapping, found ${describeValue(v)}`);
  for (const k of Object.keys(v)) if (!allowed.includes(k)) throw fail(`${key}.${k.slice(0, 60)}`, `unknown key (allowed: ${allowed.join(", ")})`);
  return v as Record<string, unknown>;
}

/** The recipe key of a token under tokenizer.tokens, for messages. */
export function tokenKey(token: string): string {
  return `tokenizer.tokens.${JSON.stringify(token.slice(0, 60))}`;
}
