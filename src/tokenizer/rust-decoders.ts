/**
 * @file Two decoders of @huggingface/tokenizers turn bytes into text differently from the Rust library
 * that transformers uses, which shows when generated ids are decoded (a model can emit any byte
 * token). Their instances in a loaded tokenizer get the Rust behaviour:
 *
 * - ByteFallback: Rust decodes a run of <0x..> tokens as UTF-8 only if the whole run is valid, and
 *   otherwise writes one U+FFFD per byte; the JS decoder keeps the valid parts of the run.
 * - ByteLevel: Rust spells a token with a character outside the byte alphabet by its own UTF-8 bytes;
 *   the JS decoder turns such characters into zero bytes.
 * - Metaspace (prepend_scheme always or first; "never" is rewritten in library-compat.ts): Rust drops
 *   every replacement character of the first token (a generation starting "▁▁" decodes to ""), the JS
 *   decoder turns them into spaces and drops one.
 *
 * And one pre-tokenizer: ByteLevel's GPT-2 regex spells whitespace `\s`, which in JavaScript takes in
 * U+FEFF (a BOM) and leaves out U+0085, where Rust's `\s` is Unicode's White_Space.
 */
import { ByteFallbackDecoder, ByteLevelDecoder, ByteLevelPreTokenizer, type Decoder, MetaspaceDecoder, type PreTokenizer, SequenceDecoder, SequencePreTokenizer } from "@huggingface/tokenizers";
import { byteAlphabet } from "./train-byte-bpe";

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const lossyUtf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
const utf8 = new TextEncoder();

/** Gives every ByteFallback and ByteLevel decoder in the tree the Rust library's behaviour. */
export function useRustDecoding(decoder: Decoder | null): void {
  if (decoder instanceof SequenceDecoder) {
    for (const inner of decoder.decoders) useRustDecoding(inner);
  } else if (decoder instanceof ByteFallbackDecoder) {
    decoder.decode_chain = byteFallbackChain;
  } else if (decoder instanceof ByteLevelDecoder) {
    decoder.decode_chain = byteLevelChain;
  } else if (decoder instanceof MetaspaceDecoder) {
    const replacement = decoder.replacement;
    decoder.decode_chain = (tokens) => tokens.map((token, i) => token.replaceAll(replacement, i === 0 ? "" : " "));
  }
}

/** GPT-2's split regex (the Rust library's), with Rust's `\s`: Unicode's White_Space. */
const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+/gu;

/** Gives every ByteLevel pre-tokenizer in the tree the Rust library's whitespace. */
export function useRustPreTokenizing(preTokenizer: PreTokenizer | null): void {
  if (preTokenizer instanceof SequencePreTokenizer) {
    for (const inner of preTokenizer.tokenizers) useRustPreTokenizing(inner);
  } else if (preTokenizer instanceof ByteLevelPreTokenizer) {
    preTokenizer.pattern = GPT2_SPLIT;
  }
}

function byteFallbackChain(tokens: string[]): string[] {
  const out: string[] = [];
  let run: number[] = [];
  const flush = () => {
    if (run.length === 0) return;
    try {
      out.push(strictUtf8.decode(Uint8Array.from(run)));
    } catch {
      for (let i = 0; i < run.length; i++) out.push("\uFFFD");
    }
    run = [];
  };
  for (const token of tokens) {
    const byte = token.length === 6 && token.startsWith("<0x") && token.endsWith(">") ? Number.parseInt(token.slice(3, 5), 16) : Number.NaN;
    if (Number.isInteger(byte) && /^[0-9a-fA-F]{2}$/.test(token.slice(3, 5))) {
      run.push(byte);
    } else {
      flush();
      out.push(token);
    }
  }
  flush();
  return out;
}

let byteOfChar: Map<string, number> | undefined;

/** Added tokens too: Rust maps their characters back to bytes like any other token's ("Ü" is byte 0xDC). */
function byteLevelChain(tokens: string[]): string[] {
  byteOfChar ??= new Map(byteAlphabet().map((c, b) => [c, b]));
  const out: string[] = [];
  let bytes: number[] = [];
  const flush = () => {
    if (bytes.length > 0) out.push(lossyUtf8.decode(Uint8Array.from(bytes)));
    bytes = [];
  };
  for (const token of tokens) {
    const mapped: number[] = [];
    for (const c of token) {
      const b = byteOfChar.get(c);
      if (b === undefined) {
        mapped.length = 0;
        mapped.push(...utf8.encode(token));
        break;
      }
      mapped.push(b);
    }
    bytes.push(...mapped);
  }
  flush();
  return out;
}
