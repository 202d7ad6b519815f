/**
 * @file A model's tokenizer: tokenizer.json + tokenizer_config.json read by @huggingface/tokenizers
 * (pure JS, the same in Node and browsers), giving the ids transformers' AutoTokenizer gives. Three
 * adjustments make that so: the pipeline rebuild transformers' model-specific classes do
 * (transformers-class.ts), settings the JS library reads differently from the Rust one
 * (library-compat.ts, rust-decoders.ts), and added tokens as Rust and transformers have them
 * (added-vocabulary.ts). Decoding follows transformers 5 too: ids outside the vocabulary are skipped,
 * and clean_up_tokenization_spaces is ignored for BPE models.
 */
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import type { ModelFolder } from "../io/folder";
import { table } from "../table";
import { type AddedToken, AddedTokenMatcher, type AddedVocabulary, addedVocabulary, modelVocabulary } from "./added-vocabulary";
import { type ChatMessage, chatRenderer } from "./chat-template";
import { type JsonObject, readTokenizerFiles, TOKENIZER_FILE, tokenizerError, type TokenizerFiles } from "./files";
import { forJsLibrary, UnsupportedTokenizer } from "./library-compat";
import { useRustDecoding, useRustPreTokenizing } from "./rust-decoders";
import { bosTokenId, eosTokenIds, withSpecialTokensMap } from "./special-tokens";
import { type StreamDecoder, streamDecoder } from "./stream-decoder";
import { applyTransformersClass, type TransformersClass, transformersClass } from "./transformers-class";

export type { ChatMessage } from "./chat-template";
export type { StreamDecoder } from "./stream-decoder";

export interface EncodeOptions {
  /** Add the post-processor's special tokens (BOS ...). Default true, as transformers' `tokenizer(text)`. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  skipSpecialTokens?: boolean;
}

export interface Tokenizer {
  /** Ids as transformers' `tokenizer(text).input_ids` gives them (by default with special tokens). */
  encode(text: string, options?: EncodeOptions): number[];
  decode(ids: readonly number[], options?: DecodeOptions): string;
  /** For generation: push ids one at a time, get the text they complete (byte fallback, partial UTF-8). */
  streamDecoder(options?: DecodeOptions): StreamDecoder;
  readonly bosTokenId: number | undefined;
  /** generation_config.json, config.json and tokenizer_config.json's EOS ids, without repeats. */
  readonly eosTokenIds: readonly number[];
  /** One past the largest id (vocabulary and added tokens): transformers' len(tokenizer). */
  readonly vocabSize: number;
  /** The transformers class whose behaviour is reproduced (LlamaTokenizer, ..., TokenizersBackend). */
  readonly transformersClass: TransformersClass;
  /** The prompt a chat template makes of messages (add_generation_prompt), or undefined without one. */
  chatPrompt(messages: readonly ChatMessage[]): string | undefined;
  /** Whether the model has a chat template. */
  readonly hasChatTemplate: boolean;
  /** Every token (added ones included) and its id, as transformers has them. */
  vocabulary(): ReadonlyMap<string, number>;
  /** The added tokens with their ids and settings, as transformers has them (added-vocabulary.ts). */
  addedTokens(): readonly AddedToken[];
}

/**
 * Refuses ids the folder's tokenizer gave (`what`: "the prompt", "the text") past the model's vocab_size
 * (its embedding rows): its tokenizer.json holds tokens past the checkpoint's vocabulary, so the two do not
 * belong together. Named by the file and the token, before any layer runs.
 */
export function checkEncodedIds(tokenizer: Tokenizer, folder: string, ids: readonly number[], vocab: number, what: string): void {
  const id = ids.find((i) => i >= vocab);
  if (id === undefined) return;
  let token: string | undefined;
  for (const [text, i] of tokenizer.vocabulary()) if (i === id) { token = text; break; }
  throw tokenizerError(`${folder}/${TOKENIZER_FILE}`, `${what} encodes to token id ${id} (${JSON.stringify(token)}), but the model's vocab_size is ${vocab}: the tokenizer has tokens the weights do not`, { token, id });
}

const MODEL_TYPES = new Set(["BPE", "Unigram", "WordPiece", "WordLevel"]);

/** The folder's tokenizer, or undefined when it has no tokenizer.json. */
export async function loadTokenizer(folder: ModelFolder): Promise<Tokenizer | undefined> {
  const files = await readTokenizerFiles(folder);
  return files === undefined ? undefined : tokenizerFromFiles(files);
}

/** Builds the tokenizer from already-read files (typed errors name the file at fault). */
export function tokenizerFromFiles(files: TokenizerFiles): Tokenizer {
  const model = files.tokenizer.model;
  if (model === null || typeof model !== "object" || Array.isArray(model)) {
    throw tokenizerError(files.tokenizerPath, "has no \"model\" object", { key: "model" });
  }
  const m = model as JsonObject;
  // Old files (GPT-2's) leave out the type of a BPE model; the library infers it from the keys.
  const type = m.type ?? (Array.isArray(m.merges) ? "BPE" : undefined);
  if (typeof type !== "string" || !MODEL_TYPES.has(type)) {
    throw tokenizerError(files.tokenizerPath, `model type ${JSON.stringify(type ?? null)} is not supported (supported: ${[...MODEL_TYPES].join(", ")})`, { key: "model.type" });
  }
  if (m.vocab === null || typeof m.vocab !== "object") throw tokenizerError(files.tokenizerPath, "the model has no vocabulary", { key: "model.vocab" });
  const malformed = vocabularyProblem(m.vocab, type);
  if (malformed) throw tokenizerError(files.tokenizerPath, malformed, { key: "model.vocab" });
  if (type === "BPE" && !Array.isArray(m.merges)) throw tokenizerError(files.tokenizerPath, "the BPE model has no list of merges", { key: "model.merges" });
  const cls = transformersClass(files.tokenizerConfig, files.modelConfig);
  // tokenizer_config.json as the class reads it: special_tokens_map.json over it in an older repository,
  // and the class's own special tokens where neither names one (GPT2Tokenizer's "<|endoftext|>").
  const specials: JsonObject = { ...CLASS_SPECIAL_TOKENS[cls], ...withSpecialTokensMap(files.tokenizerConfig, files.specialTokensMap) };
  let hf: HfTokenizer;
  let added: AddedToken[];
  try {
    const json = forJsLibrary(applyTransformersClass(files.tokenizer, cls, files.tokenizerConfig));
    const vocabulary = addedVocabulary(json, specials, cls !== "TokenizersBackend", cls === "Qwen2Tokenizer");
    added = vocabulary.tokens;
    hf = new HfTokenizer({ ...json, added_tokens: added }, libraryConfig(files.tokenizerConfig, m));
    const modelJson = json.model as JsonObject;
    useRustAddedTokens(hf, vocabulary, modelVocabulary(modelJson).ids, typeof modelJson.unk_token === "string" ? modelJson.unk_token : undefined, specials.split_special_tokens === true);
    useRustDecoding(hf.decoder);
    useRustPreTokenizing(hf.pre_tokenizer);
  } catch (cause) {
    throw tokenizerError(files.tokenizerPath, describeFailure(cause), {}, cause);
  }
  return new HfBackedTokenizer(hf, { ...files, tokenizerConfig: specials }, cls, type, added);
}

/**
 * Why a model's vocabulary is not one the tokenizers library (Rust) reads, or undefined: ids are u32,
 * a Unigram vocabulary is a list of [token, score]. The JavaScript library takes anything, and a token
 * with the id "3" or -5 was dropped and the next token renumbered, so its row went to another token.
 */
function vocabularyProblem(vocab: object, type: string): string | undefined {
  if (type === "Unigram") {
    if (!Array.isArray(vocab)) return "the Unigram model's vocabulary is not a list of [token, score] pairs";
    const at = vocab.findIndex((e: unknown) => !Array.isArray(e) || e.length !== 2 || typeof e[0] !== "string" || typeof e[1] !== "number");
    return at < 0 ? undefined : `entry ${at} of the Unigram model's vocabulary is ${JSON.stringify(vocab[at])}, not a [token, score] pair`;
  }
  if (Array.isArray(vocab)) return `the ${type} model's vocabulary is a list, not a map of tokens to ids`;
  for (const [token, id] of Object.entries(vocab)) {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > 0xffffffff) {
      return `model.vocab gives token ${JSON.stringify(token)} the id ${JSON.stringify(id)}; ids are whole numbers from 0`;
    }
  }
  return undefined;
}

/** Why the library refused the file, in words ("Unknown PreTokenizer type: X" becomes "... is not supported"). */
function describeFailure(cause: unknown): string {
  if (cause instanceof UnsupportedTokenizer) return cause.message;
  const message = cause instanceof Error ? cause.message : String(cause);
  const unknown = /^Unknown (\w+) type: (.*)$/.exec(message);
  if (unknown) return `its ${unknown[1]} type ${JSON.stringify(unknown[2])} is not supported`;
  return `cannot be used: ${message}`;
}

/** The special tokens a transformers class names when tokenizer_config.json does not (its __init__ defaults). */
const CLASS_SPECIAL_TOKENS: Record<TransformersClass, Readonly<Record<string, string>>> = {
  GPT2Tokenizer: table({ unk_token: "<|endoftext|>", bos_token: "<|endoftext|>", eos_token: "<|endoftext|>" }),
  LlamaTokenizer: table({ unk_token: "<unk>", bos_token: "<s>", eos_token: "</s>" }),
  Qwen2Tokenizer: table({ unk_token: "<|endoftext|>", eos_token: "<|endoftext|>", pad_token: "<|endoftext|>" }),
  TokenizersBackend: table({}),
};

/** The library's internals this file replaces (not in its typings). */
interface LibraryInternals {
  encode_text(text: string | null): string[] | null;
  normalizer: ((text: string) => string) | null;
  pre_tokenizer: ((text: string, options: { section_index: number }) => string[]) | null;
  model: ((words: string[]) => string[]) & { tokens_to_ids: Map<string, number>; vocab: string[] };
  get_vocab(withAddedTokens?: boolean): Map<string, number>;
  added_tokens_map: Map<string, unknown>;
  special_tokens: string[];
}

/**
 * Gives the library transformers' added tokens (added-vocabulary.ts): they are cut out of the text the
 * Rust way, ids are looked up by content only (the library also maps normalized contents, which a
 * model token can spell), and the special ones, and only they, are skipped in decoding.
 */
function useRustAddedTokens(hf: HfTokenizer, { tokens: added, decodedNormalized }: AddedVocabulary, modelIds: ReadonlyMap<string, number>, unkToken: string | undefined, splitSpecialTokens: boolean): void {
  const lib = hf as unknown as LibraryInternals;
  // The library also gives the model every added token; Rust's model knows only its own vocabulary
  // (a Llama-3 word equal to an added token's text must not become that token through ignore_merges,
  // nor a byte-fallback character an added one).
  for (const t of added) if (!modelIds.has(t.content)) lib.model.tokens_to_ids.delete(t.content);
  const byContent = new Map(added.map((t) => [t.content, lib.added_tokens_map.get(t.content)]));
  lib.added_tokens_map = byContent;
  lib.special_tokens = added.filter((t) => t.special).map((t) => t.content);
  // Rust decodes a normalized added token's id as its normalized text (a special one so spelled is no
  // longer found among the special tokens to skip), while the vocabulary keeps the text as written.
  const vocabulary = hf.get_vocab(true);
  if (lib.normalizer !== null) {
    for (const t of decodedNormalized) lib.model.vocab[t.id] = lib.normalizer(t.content);
  }
  lib.get_vocab = () => vocabulary;
  // Rust's tries list special tokens first, then the others, each in the order they were added.
  const ordered = [...added.filter((t) => t.special), ...added.filter((t) => !t.special)];
  const normalizer = lib.normalizer;
  const normalize = normalizer === null ? (text: string) => text : (text: string) => normalizer(text);
  const raw = new AddedTokenMatcher(ordered.filter((t) => !t.normalized).map((t) => [t.content, t] as const), splitSpecialTokens);
  const normalized = new AddedTokenMatcher(ordered.filter((t) => t.normalized).map((t) => [normalize(t.content), t] as const), splitSpecialTokens);
  lib.encode_text = (text) => {
    if (text === null) return null;
    const tokens: string[] = [];
    for (const piece of raw.split(text)) {
      if (piece.token) {
        tokens.push(piece.token.content);
        continue;
      }
      if (piece.text === "") continue;
      for (const part of normalized.split(normalize(piece.text))) {
        if (part.token) {
          tokens.push(part.token.content);
        } else if (part.text !== "") {
          // Metaspace's "first" scheme prepends only to the text that starts the input.
          const sectionIndex = piece.start === 0 && part.start === 0 ? 0 : 1;
          const words = lib.pre_tokenizer === null ? [part.text] : lib.pre_tokenizer(part.text, { section_index: sectionIndex });
          // A word the model does not know is its unknown token, whatever added token it spells.
          for (const token of lib.model(words)) tokens.push(modelIds.has(token) || unkToken === undefined ? token : unkToken);
        }
      }
    }
    return tokens;
  };
}

/**
 * tokenizer_config.json as the library should see it. The library defaults clean_up_tokenization_spaces
 * to true; transformers 5 defaults it to false and ignores it for BPE, so it is decided here instead.
 * The library reads a WordLevel model as its "Legacy" model, whose unknown token it takes from this
 * config: it is the model's own unk_token, as in Rust.
 */
function libraryConfig(config: JsonObject, model: JsonObject): JsonObject {
  const out: JsonObject = { ...config, clean_up_tokenization_spaces: false };
  if (model.type === "WordLevel") out.unk_token = model.unk_token;
  return out;
}

class HfBackedTokenizer implements Tokenizer {
  readonly bosTokenId: number | undefined;
  readonly eosTokenIds: readonly number[];
  readonly vocabSize: number;
  readonly hasChatTemplate: boolean;
  private readonly idOf: (token: string) => number | undefined;
  private readonly known: (id: number) => boolean;
  private readonly cleanUp: boolean;
  private readonly render: ((messages: readonly ChatMessage[]) => string) | undefined;
  /** Byte-fallback tokens (<0x41>), when the decoder turns them back into bytes. */
  private readonly isByteToken: (id: number) => boolean;

  private readonly path: string;

  constructor(private readonly hf: HfTokenizer, files: TokenizerFiles, readonly transformersClass: TransformersClass, modelType: string, private readonly added: readonly AddedToken[]) {
    this.path = files.tokenizerPath;
    const vocab = hf.get_vocab(true);
    let top = -1;
    for (const id of vocab.values()) if (id > top) top = id;
    this.vocabSize = top + 1;
    const addedIds = new Map(added.map((t) => [t.content, t.id]));
    this.idOf = (token) => addedIds.get(token) ?? hf.token_to_id(token);
    this.known = (id) => Number.isInteger(id) && id >= 0 && id < this.vocabSize && hf.id_to_token(id) !== undefined;
    this.bosTokenId = bosTokenId(files.tokenizerConfig, files.modelConfig, this.idOf);
    this.eosTokenIds = Object.freeze(eosTokenIds(files.tokenizerConfig, files.modelConfig, files.generationConfig, this.idOf));
    this.cleanUp = modelType !== "BPE" && files.tokenizerConfig.clean_up_tokenization_spaces === true;
    this.render = chatRenderer(files);
    const byteFallback = JSON.stringify(hf.decoder?.config ?? null).includes('"ByteFallback"');
    this.isByteToken = (id) => byteFallback && /^<0x[0-9A-Fa-f]{2}>$/.test(hf.id_to_token(id) ?? "");
    this.hasChatTemplate = this.render !== undefined;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (text.length === 0 && options.addSpecialTokens === false) return [];
    return this.library(() => this.hf.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids);
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    // Like the Rust library, ids the vocabulary does not have are skipped (a model's embedding may have
    // more rows than the tokenizer has tokens).
    const known = ids.filter(this.known);
    if (known.length === 0) return "";
    return this.library(() => this.hf.decode(known, { skip_special_tokens: options.skipSpecialTokens ?? false, clean_up_tokenization_spaces: this.cleanUp }));
  }

  /**
   * A call into the library, whose parts of a malformed file (a post-processor template that is no list)
   * load without complaint and fail only when used: E_TOKENIZER naming the file, not a TypeError.
   */
  private library<T>(call: () => T): T {
    try {
      return call();
    } catch (cause) {
      throw tokenizerError(this.path, describeFailure(cause), {}, cause);
    }
  }

  streamDecoder(options: DecodeOptions = {}): StreamDecoder {
    // A special token skipped in decoding gives no text, and must not end a run of byte tokens that the
    // decoder then joins across it.
    const skipped = options.skipSpecialTokens ? new Set(this.added.filter((t) => t.special).map((t) => t.id)) : new Set<number>();
    return streamDecoder((ids) => this.decode(ids, options), (id) => this.isByteToken(id) || skipped.has(id));
  }

  chatPrompt(messages: readonly ChatMessage[]): string | undefined {
    return this.render?.(messages);
  }

  vocabulary(): ReadonlyMap<string, number> {
    return this.hf.get_vocab(true);
  }

  addedTokens(): readonly AddedToken[] {
    return this.added;
  }
}
