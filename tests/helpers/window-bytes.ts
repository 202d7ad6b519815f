// The bytes bits per byte leaves out, computed for tests by a route of their own: decodes of whole prefixes.
import type { Tokenizer } from "../../src/tokenizer/tokenizer";

/**
 * The UTF-8 bytes of each window's first token (never predicted), from decodes of the whole prefix
 * before and through it; a character split across tokens counts toward the token that completes it
 * (a prefix ending inside one decodes with a U+FFFD tail, which is not yet text).
 */
export function windowStartBytes(tokenizer: Tokenizer, ids: readonly number[], context: number): number {
  const complete = (ids: readonly number[]) => new TextEncoder().encode(tokenizer.decode(ids, { skipSpecialTokens: true }).replace(/\uFFFD+$/, "")).length;
  let bytes = 0;
  for (let start = 0; start < ids.length; start += context) bytes += complete(ids.slice(0, start + 1)) - complete(ids.slice(0, start));
  return bytes;
}
