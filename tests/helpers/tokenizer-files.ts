// Hand-written tokenizer.json / tokenizer_config.json files for the vocabulary tests (tests/vocab.test.ts,
// tests/vocab-fuzz.test.ts): a WordLevel tokenizer whose vocabulary is a plain token list.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

/** An added_tokens entry (special unless told otherwise). */
export const special = (id: number, content: string, isSpecial = true) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: isSpecial });

/**
 * A WordLevel tokenizer.json: `tokens` in id order, `added` the ids that are added tokens (special
 * ones, unless `notSpecial` lists the id).
 */
export function wordLevel(tokens: string[], added: number[], notSpecial: readonly number[] = []): Record<string, unknown> {
  return {
    version: "1.0", truncation: null, padding: null,
    added_tokens: added.map((id) => special(id, tokens[id]!, !notSpecial.includes(id))),
    normalizer: null, pre_tokenizer: { type: "Whitespace" }, post_processor: null, decoder: null,
    model: { type: "WordLevel", vocab: Object.fromEntries(tokens.map((t, i) => [t, i])), unk_token: "<unk>" },
  };
}

/** Writes tokenizer.json and a tokenizer_config.json (bos <s>, eos </s>, unk <unk>, then `config`) into `dir`. */
export async function writeTokenizer(dir: string, tokenizer: Record<string, unknown>, config: Record<string, unknown> = {}): Promise<void> {
  await writeFile(join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
  await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify({ bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>", tokenizer_class: "PreTrainedTokenizerFast", ...config }));
}
