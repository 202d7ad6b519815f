/**
 * @file BOS and EOS as transformers and generate() see them. tokenizer_config.json names special tokens
 * either as strings or as serialized AddedToken objects ({"__type": "AddedToken", "content": "<s>", ...});
 * config.json and generation_config.json give ids, an int or a list of ints.
 */
import type { JsonObject } from "./files";

/**
 * The text of a special token named in tokenizer_config.json: a string, or an AddedToken object's
 * `content`. `null` when the config sets it to null on purpose (Qwen's `"bos_token": null`),
 * undefined when it does not say.
 */
export function specialTokenText(value: unknown): string | null | undefined {
  if (value === null) return null;
  if (typeof value === "string") return value;
  if (value !== undefined && typeof value === "object" && !Array.isArray(value)) {
    const content = (value as JsonObject).content;
    if (typeof content === "string") return content;
  }
  return undefined;
}

/** The named special tokens transformers keeps for each tokenizer, first these, in this order. */
const NAMED_SPECIAL_KEYS = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"];

/**
 * The named special tokens of a tokenizer_config.json as transformers 5 keeps them (its
 * `special_tokens_map`, which chat templates see too), as [name, value as written] pairs: bos_token ...
 * mask_token, any other `*_token` key, then the names of a dict of `extra_special_tokens`.
 */
export function namedSpecialTokens(config: JsonObject): [string, unknown][] {
  const keys = [...NAMED_SPECIAL_KEYS, ...Object.keys(config).filter((k) => k.endsWith("_token") && !NAMED_SPECIAL_KEYS.includes(k))];
  const named: [string, unknown][] = keys.map((k) => [k, config[k]]);
  const extra = config.extra_special_tokens;
  if (extra !== null && typeof extra === "object" && !Array.isArray(extra)) named.push(...Object.entries(extra as JsonObject));
  return named.filter(([, v]) => v !== undefined);
}

/** Ids written as an int or a list of ints (config.json's eos_token_id); anything else gives none. */
export function tokenIdList(value: unknown): number[] {
  const list = Array.isArray(value) ? value : [value];
  return list.filter((v): v is number => Number.isSafeInteger(v) && (v as number) >= 0);
}

/**
 * The BOS id: the token tokenizer_config.json names (an explicit null means the model has none), else
 * config.json's bos_token_id. This is the model's BOS; whether encode() adds it is up to the
 * post-processor.
 */
export function bosTokenId(tokenizerConfig: JsonObject, modelConfig: JsonObject, idOf: (token: string) => number | undefined): number | undefined {
  if (Object.hasOwn(tokenizerConfig, "bos_token")) {
    const text = specialTokenText(tokenizerConfig.bos_token);
    if (text === null) return undefined;
    if (text !== undefined) {
      const id = idOf(text);
      if (id !== undefined) return id;
    }
  }
  return tokenIdList(modelConfig.bos_token_id)[0];
}

/**
 * The ids that end generation, as transformers' generate() takes them: generation_config.json's
 * eos_token_id where it states one (instruct models list several: Llama-3's <|end_of_text|>,
 * <|eom_id|>, <|eot_id|>), else config.json's (the generation config transformers builds from it),
 * else the tokenizer's eos_token. A token the tokenizer calls eos that these leave out does not stop
 * transformers, so it does not stop weightsoup either.
 */
export function eosTokenIds(tokenizerConfig: JsonObject, modelConfig: JsonObject, generationConfig: JsonObject, idOf: (token: string) => number | undefined): number[] {
  for (const stated of [tokenIdList(generationConfig.eos_token_id), tokenIdList(modelConfig.eos_token_id)]) {
    if (stated.length) return [...new Set(stated)];
  }
  const text = specialTokenText(tokenizerConfig.eos_token);
  const id = typeof text === "string" ? idOf(text) : undefined;
  return id === undefined ? [] : [id];
}

/**
 * tokenizer_config.json as transformers reads it: when it has no added_tokens_decoder (older
 * repositories), special_tokens_map.json's entries are taken over it, each named token special, its
 * extra_special_tokens list merged in, and its additional_special_tokens taken where the config has no
 * list of either name.
 */
export function withSpecialTokensMap(config: JsonObject, map: JsonObject): JsonObject {
  if (config.added_tokens_decoder !== undefined || Object.keys(map).length === 0) return config;
  const out: JsonObject = { ...config };
  for (const [key, value] of Object.entries(map)) {
    if (key === "additional_special_tokens") {
      // transformers takes the older name only where the config has neither list.
      if (config.additional_special_tokens === undefined && config.extra_special_tokens === undefined) out.extra_special_tokens = value;
    } else if (key === "extra_special_tokens" && Array.isArray(value)) {
      const existing = Array.isArray(out.extra_special_tokens) ? out.extra_special_tokens : Array.isArray(out.additional_special_tokens) ? out.additional_special_tokens : [];
      const texts = new Set(existing.map(specialTokenText));
      out.extra_special_tokens = [...existing, ...value.filter((t) => !texts.has(specialTokenText(t)))];
    } else if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      out[key] = { ...(value as JsonObject), special: true };
    } else {
      out[key] = value;
    }
  }
  return out;
}
