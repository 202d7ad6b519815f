/**
 * @file transformers 5 does not always tokenize with tokenizer.json as written. AutoTokenizer picks a
 * class from tokenizer_config.json's `tokenizer_class` and config.json's `model_type`; the model-specific
 * classes (LlamaTokenizer, GPT2Tokenizer, Qwen2Tokenizer) keep only the vocabulary, merges and
 * post-processor of tokenizer.json and rebuild the normalizer, pre-tokenizer and decoder themselves.
 * That changes ids: a Llama-2 tokenizer.json prepends "▁" with a normalizer after every special token,
 * while LlamaTokenizer (legacy: false) prepends it only at the start of the text; a SmolLM tokenizer.json
 * splits digits, while GPT2Tokenizer does not. To give the ids transformers gives, the same rebuild is
 * applied here to the tokenizer.json object before the tokenizer library reads it.
 *
 * Checked against transformers 5.18 (models/auto/tokenization_auto.py, models/{llama,gpt2,qwen2}/
 * tokenization_*.py) with the fixtures in tests/fixtures/tokenizers. Classes not listed here use
 * tokenizer.json as written, as transformers' TokenizersBackend does.
 */
import { table } from "../table";
import type { JsonObject } from "./files";

export type TransformersClass = "LlamaTokenizer" | "GPT2Tokenizer" | "Qwen2Tokenizer" | "TokenizersBackend";

/** AutoTokenizer's class for a model_type (TOKENIZER_MAPPING_NAMES), for the families weightsoup runs. */
const CLASS_OF_MODEL_TYPE = table<string>({
  gpt2: "GPT2Tokenizer",
  qwen2: "Qwen2Tokenizer",
  qwen2_moe: "Qwen2Tokenizer",
  qwen3: "Qwen2Tokenizer",
  qwen3_moe: "Qwen2Tokenizer",
  mistral: "TokenizersBackend",
  mixtral: "TokenizersBackend",
  phi3: "TokenizersBackend",
});

/** Model types whose hub tokenizer_class transformers overrides with its own (MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS). */
const HUB_CLASS_OVERRIDDEN = new Set(["qwen2", "phi3"]);

const BACKENDS = new Set(["TokenizersBackend", "PythonBackend", "PreTrainedTokenizer", "MistralCommonBackend"]);
const REBUILT = new Set<string>(["LlamaTokenizer", "GPT2Tokenizer", "Qwen2Tokenizer"]);

/** The class AutoTokenizer.from_pretrained would build for this folder (the cases that change ids). */
export function transformersClass(tokenizerConfig: JsonObject, modelConfig: JsonObject): TransformersClass {
  const modelType = typeof modelConfig.model_type === "string" ? modelConfig.model_type : undefined;
  const hubName = typeof tokenizerConfig.tokenizer_class === "string" ? tokenizerConfig.tokenizer_class : undefined;
  const hub = hubName?.replace(/Fast$/, "");
  const registered = modelType === undefined ? undefined : CLASS_OF_MODEL_TYPE[modelType];
  let chosen: string | undefined;
  if (hub !== undefined && registered !== undefined && hub !== registered) {
    // The hub and the model type disagree: a specialised registered class wins only for the model
    // types transformers knows ship a wrong tokenizer_class; otherwise the hub's class is kept, and a
    // generic registered class means tokenizer.json as written.
    chosen = BACKENDS.has(registered) ? "TokenizersBackend" : HUB_CLASS_OVERRIDDEN.has(modelType!) ? registered : hub;
  } else {
    chosen = hub ?? registered;
  }
  return chosen !== undefined && REBUILT.has(chosen) ? (chosen as TransformersClass) : "TokenizersBackend";
}

const QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

function byteLevel(addPrefixSpace: boolean, useRegex: boolean, trimOffsets = true): JsonObject {
  return { type: "ByteLevel", add_prefix_space: addPrefixSpace, trim_offsets: trimOffsets, use_regex: useRegex };
}

/**
 * tokenizer.json with the normalizer, pre-tokenizer, decoder and model flags the transformers class
 * would set. The post-processor and added tokens stay as written (transformers takes them from the file).
 */
export function applyTransformersClass(tokenizer: JsonObject, cls: TransformersClass, tokenizerConfig: JsonObject): JsonObject {
  if (cls === "TokenizersBackend" || !isBpe(tokenizer.model)) return tokenizer;
  const model = { ...(tokenizer.model as JsonObject) };
  // The classes build a fresh BPE: flags they do not pass take the library defaults.
  model.type = "BPE";
  delete model.ignore_merges;
  const addPrefixSpace = tokenizerConfig.add_prefix_space;
  switch (cls) {
    case "LlamaTokenizer": {
      const prefix = addPrefixSpace === undefined || addPrefixSpace === null ? true : addPrefixSpace === true;
      const legacy = tokenizerConfig.legacy === true;
      model.fuse_unk = true;
      model.byte_fallback = true;
      model.unk_token = null;
      const decoders: JsonObject[] = [
        { type: "Replace", pattern: { String: "▁" }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" },
      ];
      if (prefix) decoders.push({ type: "Strip", content: " ", start: 1, stop: 0 });
      return {
        ...tokenizer, model, normalizer: null,
        pre_tokenizer: { type: "Metaspace", replacement: "▁", prepend_scheme: prefix ? (legacy ? "always" : "first") : "never", split: false },
        decoder: { type: "Sequence", decoders },
      };
    }
    case "GPT2Tokenizer":
      model.fuse_unk = false;
      model.continuing_subword_prefix = "";
      model.end_of_word_suffix = "";
      return { ...tokenizer, model, normalizer: null, pre_tokenizer: byteLevel(addPrefixSpace === true, true), decoder: byteLevel(true, true) };
    case "Qwen2Tokenizer":
      model.fuse_unk = false;
      model.byte_fallback = false;
      model.unk_token = null;
      model.continuing_subword_prefix = "";
      model.end_of_word_suffix = "";
      return {
        ...tokenizer, model, normalizer: { type: "NFC" },
        pre_tokenizer: {
          type: "Sequence",
          pretokenizers: [
            { type: "Split", pattern: { Regex: QWEN2_SPLIT }, behavior: "Isolated", invert: false },
            byteLevel(addPrefixSpace === true, false),
          ],
        },
        decoder: byteLevel(true, true),
      };
  }
}

/** A BPE model entry: typed so, or an old untyped one with merges (GPT-2's tokenizer.json). */
function isBpe(model: unknown): boolean {
  if (model === null || typeof model !== "object") return false;
  const m = model as JsonObject;
  return m.type === "BPE" || (m.type === undefined && Array.isArray(m.merges));
}
