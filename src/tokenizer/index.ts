// TEMPORARY STUB until the tok branch lands.
import type { ModelFolder } from "../io/folder";
export interface Tokenizer {
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string;
  streamDecoder(options?: { skipSpecialTokens?: boolean }): { push(id: number): string; flush(): string };
  readonly bosTokenId: number | undefined;
  readonly eosTokenIds: readonly number[];
  readonly vocabSize: number;
  chatPrompt(messages: readonly { role: string; content: string }[]): string | undefined;
}
export async function loadTokenizer(_folder: ModelFolder): Promise<Tokenizer | undefined> {
  return undefined;
}
export async function readTokenIds(folder: ModelFolder, file: string): Promise<number[]> {
  return JSON.parse(await folder.readText(file)) as number[];
}
