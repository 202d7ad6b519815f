/**
 * @file The files of a model folder that describe its tokenizer, read and parsed once. Every one but
 * tokenizer.json is optional; a file that is present but unreadable or malformed is an error naming it,
 * never silently skipped (a broken tokenizer_config.json would otherwise change BOS handling unseen).
 */
import { ModelError, WeightsoupError } from "../errors";
import { isJsonObject, parseBoundedJson } from "../format/json";
import type { ModelFolder } from "../io/folder";

export const TOKENIZER_FILE = "tokenizer.json";
export const TOKENIZER_CONFIG_FILE = "tokenizer_config.json";
export const MODEL_CONFIG_FILE = "config.json";
export const GENERATION_CONFIG_FILE = "generation_config.json";
/** Older repositories name their special tokens here; transformers reads it when tokenizer_config.json has no added_tokens_decoder. */
export const SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json";
/** transformers 5 saves a single chat template here rather than in tokenizer_config.json. */
export const CHAT_TEMPLATE_FILE = "chat_template.jinja";

/** Every file of a model folder that describes its tokenizer, fast or slow. */
export const TOKENIZER_FILES: readonly string[] = [
  TOKENIZER_FILE, TOKENIZER_CONFIG_FILE, SPECIAL_TOKENS_MAP_FILE, CHAT_TEMPLATE_FILE, "chat_template.json", "added_tokens.json",
  "tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "vocab.json", "merges.txt", "vocab.txt",
];

export type JsonObject = Record<string, unknown>;

export interface TokenizerFiles {
  /** Folder name and file, for messages ("models/llama/tokenizer.json"). */
  tokenizerPath: string;
  tokenizerConfigPath: string;
  tokenizer: JsonObject;
  /** Empty when the folder has no tokenizer_config.json. */
  tokenizerConfig: JsonObject;
  /** special_tokens_map.json; empty when the folder has none. */
  specialTokensMap: JsonObject;
  modelConfig: JsonObject;
  generationConfig: JsonObject;
  /** The text of chat_template.jinja, when the folder has one. */
  chatTemplateFile: string | undefined;
  chatTemplatePath: string;
}

/** A tokenizer problem, typed, naming the file. */
export function tokenizerError(file: string, message: string, details: Record<string, unknown> = {}, cause?: unknown): ModelError {
  return new ModelError("E_TOKENIZER", `${file}: ${message}`, { file, ...details }, cause === undefined ? undefined : { cause });
}

/** The folder's tokenizer files, or undefined when it has no tokenizer.json. */
export async function readTokenizerFiles(folder: ModelFolder): Promise<TokenizerFiles | undefined> {
  const present = new Set(await folder.list());
  if (!present.has(TOKENIZER_FILE)) return undefined;
  const json = (file: string, required = false) => readJsonObject(folder, present, file, required);
  return {
    tokenizerPath: `${folder.name}/${TOKENIZER_FILE}`,
    tokenizerConfigPath: `${folder.name}/${TOKENIZER_CONFIG_FILE}`,
    tokenizer: await json(TOKENIZER_FILE, true),
    tokenizerConfig: await json(TOKENIZER_CONFIG_FILE),
    specialTokensMap: await json(SPECIAL_TOKENS_MAP_FILE),
    modelConfig: await json(MODEL_CONFIG_FILE),
    generationConfig: await json(GENERATION_CONFIG_FILE),
    chatTemplateFile: present.has(CHAT_TEMPLATE_FILE) ? await readText(folder, CHAT_TEMPLATE_FILE, `${folder.name}/${CHAT_TEMPLATE_FILE}`) : undefined,
    chatTemplatePath: `${folder.name}/${CHAT_TEMPLATE_FILE}`,
  };
}

/**
 * config.json and generation_config.json (empty where absent): what generation reads without a
 * tokenizer. A generation_config.json that is not a JSON object is passed over, as transformers'
 * from_pretrained falls back to the model's config then.
 */
export async function readGenerationConfigs(folder: ModelFolder): Promise<{ modelConfig: JsonObject; generationConfig: JsonObject }> {
  const present = new Set(await folder.list());
  const generationConfig = await readJsonObject(folder, present, GENERATION_CONFIG_FILE, false).catch((e: unknown) => {
    if (e instanceof ModelError && e.code === "E_TOKENIZER") return {};
    throw e;
  });
  return { modelConfig: await readJsonObject(folder, present, MODEL_CONFIG_FILE, false), generationConfig };
}

/** A JSON object file of the folder; {} when absent (an error when `required` and empty). */
async function readJsonObject(folder: ModelFolder, present: ReadonlySet<string>, file: string, required: boolean): Promise<JsonObject> {
  if (!present.has(file)) return {};
  const path = `${folder.name}/${file}`;
  const parsed = parseBoundedJson(await readText(folder, file, path));
  if ("problem" in parsed) throw tokenizerError(path, parsed.problem);
  if (!isJsonObject(parsed.value)) throw tokenizerError(path, `must hold a JSON object, not ${Array.isArray(parsed.value) ? "a list" : String(parsed.value === null ? "null" : typeof parsed.value)}`);
  if (required && Object.keys(parsed.value).length === 0) throw tokenizerError(path, "is an empty object");
  return parsed.value;
}

async function readText(folder: ModelFolder, file: string, display: string): Promise<string> {
  try {
    return await folder.readText(file);
  } catch (cause) {
    // Typed I/O errors (E_IO, E_NOT_REGULAR_FILE, E_LFS_POINTER ...) already name the file and cause.
    if (cause instanceof WeightsoupError) throw cause;
    throw tokenizerError(display, `cannot be read: ${cause instanceof Error ? cause.message : String(cause)}`, {}, cause);
  }
}
