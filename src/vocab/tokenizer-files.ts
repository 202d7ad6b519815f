/**
 * @file The tokenizer files of an output whose vocabulary was rebuilt or whose chat template was set:
 * tokenizer.json, tokenizer_config.json (added_tokens_decoder, chat_template) and
 * special_tokens_map.json, re-serialised from the tokenizer source's files rather than copied (the
 * donor's slow-tokenizer files, which would contradict them, are left out). The result is loaded back
 * with the project's tokenizer loader before anything is merged: a file that would not load, or would
 * give other ids than planned, is an error now rather than a surprise for whoever uses the output.
 *
 * Regular tokens a union appends go into the model's own vocabulary (BPE, WordLevel, WordPiece), where
 * they decode like the rest; the base's text tokenizes exactly as before. (mergekit appends them with
 * transformers' add_tokens, as added tokens; the ids are the same.)
 */
import { ModelError } from "../errors";
import { isJsonObject, parseBoundedJson } from "../format/json";
import type { LoadedModel } from "../model/model";
import { chatTemplateSource } from "../tokenizer/chat-template";
import { CHAT_TEMPLATE_FILE, readTokenizerFiles, SPECIAL_TOKENS_MAP_FILE, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE, TOKENIZER_FILES, tokenizerError, type JsonObject, type TokenizerFiles } from "../tokenizer/files";
import type { ChatTemplateSetting } from "./chat-templates";
import type { OutputVocabulary } from "./vocabulary";

const SPECIAL_KEYS = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token", "additional_special_tokens"];

export interface TokenizerOutput {
  /** File name -> text, written into the output folder. */
  files: Map<string, string>;
  /** Donor files not copied. */
  omit: Set<string>;
  /** config.json vocab_size, when the vocabulary was rebuilt (padded). */
  vocabSize: number | undefined;
  /** Reported as "warning" events when the merge runs. */
  warnings: string[];
}

export async function buildTokenizerOutput(
  vocabulary: OutputVocabulary | undefined, chatTemplate: ChatTemplateSetting | undefined, donorName: string, models: ReadonlyMap<string, LoadedModel>, order: string[],
): Promise<TokenizerOutput> {
  const sourceName = vocabulary?.sourceModel ?? donorName;
  const sourceModel = models.get(sourceName)!;
  const files = vocabulary?.models.get(sourceName)!.files ?? (await readTokenizerFiles(sourceModel.folder));
  if (!files) {
    throw new ModelError("E_TOKENIZER", `${sourceModel.location}: has no tokenizer.json, so chat_template cannot be written into its tokenizer files`, { file: sourceModel.location, model: sourceName, key: "chat_template" });
  }
  const tokenizer = structuredClone(files.tokenizer);
  const config = structuredClone(files.tokenizerConfig);
  if (vocabulary) {
    rebuildModelVocabulary(tokenizer, vocabulary, files.tokenizerPath);
    const added = [...vocabulary.added].sort((a, b) => a[0] - b[0]);
    tokenizer.added_tokens = added.map(([id, e]) => ({ id, ...addedTokenSettings(e) }));
    config.added_tokens_decoder = Object.fromEntries(added.map(([id, e]) => [String(id), addedTokenSettings(e)]));
  }

  const out = new Map<string, string>();
  let template = files.chatTemplateFile;
  const chosen = chatTemplate ? await chooseTemplate(chatTemplate, vocabulary, models, order) : undefined;
  if (chosen !== undefined) {
    config.chat_template = chosen;
    template = undefined;
  }
  if (template !== undefined) out.set(CHAT_TEMPLATE_FILE, template);
  out.set(TOKENIZER_FILE, JSON.stringify(tokenizer, null, 2) + "\n");
  out.set(TOKENIZER_CONFIG_FILE, JSON.stringify(config, null, 2) + "\n");
  out.set(SPECIAL_TOKENS_MAP_FILE, JSON.stringify(specialTokensMap(files, config), null, 2) + "\n");

  const rowless = await checkLoads({ ...files, tokenizer, tokenizerConfig: config, chatTemplateFile: template }, vocabulary);
  return { files: out, omit: new Set(TOKENIZER_FILES) /* the donor's: not copied beside the re-serialised ones */, vocabSize: vocabulary?.paddedSize, warnings: [...(vocabulary?.warnings ?? []), ...rowless] };
}

/** The model's own vocabulary without stripped tokens and with the union's appended ones. */
function rebuildModelVocabulary(tokenizer: JsonObject, vocabulary: OutputVocabulary, file: string): void {
  if (vocabulary.stripped.size === 0 && vocabulary.appended.size === 0) return;
  const model = tokenizer.model as JsonObject;
  if (!isJsonObject(model.vocab)) {
    throw tokenizerError(file, `its ${String(model.type)} model keeps its vocabulary as a list, which weightsoup cannot ${vocabulary.appended.size ? "extend with a union's tokens" : "strip tokens past config.json's vocab_size from"} (BPE, WordLevel and WordPiece can)`, { key: "model.vocab" });
  }
  const vocab: Record<string, number> = Object.create(null);
  for (const [token, id] of Object.entries(model.vocab)) if (!vocabulary.stripped.has(token)) vocab[token] = id as number;
  for (const [id, token] of vocabulary.appended) vocab[token] = id;
  model.vocab = vocab;
  if (Array.isArray(model.merges) && vocabulary.stripped.size > 0) {
    // A merge that makes or uses a stripped token would name a token the vocabulary no longer has.
    model.merges = model.merges.filter((m) => {
      const [a, b] = typeof m === "string" ? [m.slice(0, m.indexOf(" ")), m.slice(m.indexOf(" ") + 1)] : (m as string[]);
      return !vocabulary.stripped.has(a!) && !vocabulary.stripped.has(b!) && !vocabulary.stripped.has(a! + b!);
    });
  }
}

/** An added token's settings in the order transformers writes them. */
function addedTokenSettings(e: JsonObject): JsonObject {
  return {
    content: e.content, single_word: e.single_word ?? false, lstrip: e.lstrip ?? false, rstrip: e.rstrip ?? false,
    normalized: e.normalized ?? !e.special, special: e.special ?? false,
  };
}

/** The template text a chat_template setting gives; "auto" is the one most inputs share (undefined: none has one). */
async function chooseTemplate(setting: ChatTemplateSetting, vocabulary: OutputVocabulary | undefined, models: ReadonlyMap<string, LoadedModel>, order: string[]): Promise<string | undefined> {
  if (setting.kind !== "auto") return setting.source;
  const counts = new Map<string, number>();
  for (const name of order) {
    const files: TokenizerFiles | undefined = vocabulary?.models.get(name)?.files ?? (await readTokenizerFiles(models.get(name)!.folder));
    const found = files && chatTemplateSource(files);
    if (found) counts.set(found.source.trim(), (counts.get(found.source.trim()) ?? 0) + 1);
  }
  let best: string | undefined, most = 0;
  for (const [template, n] of counts) if (n > most) [best, most] = [template, n]; // ties: the first model's
  return best;
}

/** special_tokens_map.json: the source's, re-serialised, else made from tokenizer_config.json's special tokens. */
function specialTokensMap(files: TokenizerFiles, config: JsonObject): JsonObject {
  if (Object.keys(files.specialTokensMap).length > 0) return files.specialTokensMap;
  const map: JsonObject = {};
  for (const key of SPECIAL_KEYS) if (config[key] !== undefined && config[key] !== null) map[key] = config[key];
  return map;
}

/**
 * Loads the files as the tokenizer loader would, and checks every planned id. The loader (with
 * @huggingface/tokenizers) is imported here, by the merges that rebuild a tokenizer only.
 */
async function checkLoads(files: TokenizerFiles, vocabulary: OutputVocabulary | undefined): Promise<string[]> {
  const { tokenizerFromFiles } = await import("../tokenizer/tokenizer");
  const tokenizer = tokenizerFromFiles(files);
  tokenizer.encode("Hello world"); // parts the library reads only when used (a post-processor) fail here, typed
  const loaded = tokenizer.vocabulary();
  if (!vocabulary) return [];
  for (const [token, id] of vocabulary.ids) {
    const got = loaded.get(token);
    if (got !== id) {
      throw tokenizerError(files.tokenizerPath, `the rebuilt tokenizer gives ${JSON.stringify(token)} id ${got ?? "none"}, not the planned ${id} (the ids transformers would give)`, { token });
    }
  }
  // The post-processor writes its tokens' ids into every encoding as they are in the file (a BOS); an id
  // the output vocabulary does not give that token would index another row, or none.
  const source = vocabulary.models.get(vocabulary.sourceModel)!;
  for (const [token, id] of postProcessorTokens(files.tokenizer.post_processor)) {
    const own = vocabulary.ids.get(token);
    if (own === id) continue;
    const why = own !== undefined ? `the output vocabulary gives it id ${own}`
      : vocabulary.stripped.has(token) ? `the output vocabulary has no such token: its id here, ${source.originalIds.get(token)}, is at or past config.json's vocab_size (${source.limit}), so it has no embedding row`
      : "the output vocabulary has no such token";
    throw tokenizerError(files.tokenizerPath, `its post_processor adds ${JSON.stringify(token)} as id ${id} to every encoding, but ${why}; the output's tokenizer would give ids its embeddings do not have`, { token, key: "post_processor" });
  }
  // A special token the source's tokenizer_config.json names (its pad_token, say) but the vocabulary
  // stripped is added back by the tokenizer that loads the output, past the embedding's rows. The source
  // model has the same flaw (its tokenizer adds that token past its rows too), so this is said, not refused.
  const rowless = [...loaded].filter(([, id]) => id >= vocabulary.paddedSize).sort((a, b) => a[1] - b[1]);
  return rowless.map(([token, id]) => `${files.tokenizerPath}: ${JSON.stringify(token)} ${vocabulary.stripped.has(token) ? `was stripped (its id here, ${source.originalIds.get(token)}, is at or past config.json's vocab_size, ${source.limit}), but the tokenizer files still name it as a special token` : "is named as a special token but is not in the output vocabulary"}, so the output's tokenizer adds it back as id ${id}, which has no embedding row (the output has ${vocabulary.paddedSize}); name a token the vocabulary has in tokenizer_config.json instead`);
}

/** The (token, id) pairs a post-processor adds to every encoding: TemplateProcessing's special tokens, Bert's and RoBERTa's cls and sep, a Sequence's. */
function postProcessorTokens(processor: unknown): [string, number][] {
  if (!isJsonObject(processor)) return [];
  if (Array.isArray(processor.processors)) return processor.processors.flatMap(postProcessorTokens);
  const pairs: [string, number][] = [];
  for (const key of ["cls", "sep"]) {
    const pair = processor[key];
    if (Array.isArray(pair) && typeof pair[0] === "string" && typeof pair[1] === "number") pairs.push([pair[0], pair[1]]);
  }
  if (isJsonObject(processor.special_tokens)) {
    for (const entry of Object.values(processor.special_tokens)) {
      if (!isJsonObject(entry) || !Array.isArray(entry.tokens) || !Array.isArray(entry.ids)) continue;
      const ids = entry.ids;
      entry.tokens.forEach((token, i) => {
        if (typeof token === "string" && typeof ids[i] === "number") pairs.push([token, ids[i] as number]);
      });
    }
  }
  return pairs;
}
