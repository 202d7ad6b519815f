/**
 * @file Text for ids that arrive one at a time (generation). Decoding each id alone is wrong twice
 * over: a character split across byte-fallback or byte-level tokens decodes to U+FFFD until its last
 * byte arrives, and decoders that strip the first token's leading space (Llama's "▁Hello" -> "Hello")
 * would strip every token's. So each step decodes a short window that starts one emitted token back,
 * and emits only what the newest ids add to it, holding text back while it ends in an incomplete
 * character (the offsets scheme of Hugging Face's text-generation-inference). Byte-fallback tokens
 * (<0x..>) are held back until a token of another kind follows: the Rust decoder turns a whole run of
 * them into U+FFFDs once any byte in it is invalid, so text from an unfinished run may still change.
 * The pieces pushed out, joined, equal decode() of all the ids.
 */

export interface StreamDecoder {
  /** Adds one id; returns the text it completes ("" while a character is still incomplete). */
  push(id: number): string;
  /** Returns whatever is still held back (an incomplete character at the very end decodes as U+FFFD). */
  flush(): string;
}

/** `decode` decodes a list of ids; `isByteToken` tells the ids whose text depends on the ids after them. */
export function streamDecoder(decode: (ids: readonly number[]) => string, isByteToken: (id: number) => boolean = () => false): StreamDecoder {
  const ids: number[] = [];
  let prefixOffset = 0; // start of the window: the token before the last emitted text
  let readOffset = 0; // ids before this have been emitted
  const step = (final: boolean): string => {
    const prefix = decode(ids.slice(prefixOffset, readOffset));
    const text = decode(ids.slice(prefixOffset));
    if (text.length <= prefix.length || (!final && text.endsWith("\uFFFD"))) return "";
    // Decoders may rewrite the window's start differently once more ids follow (rare); fall back to
    // the common prefix so nothing already emitted is emitted again.
    let start = prefix.length;
    if (!text.startsWith(prefix)) {
      start = 0;
      while (start < prefix.length && text.charCodeAt(start) === prefix.charCodeAt(start)) start++;
    }
    prefixOffset = readOffset;
    readOffset = ids.length;
    return text.slice(start);
  };
  return {
    push(id: number): string {
      ids.push(id);
      return isByteToken(id) ? "" : step(false);
    },
    flush(): string {
      return readOffset < ids.length ? step(true) : "";
    },
  };
}
