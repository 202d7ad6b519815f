/**
 * @file A small byte-level BPE trained deterministically from a text, written as a tokenizer.json that
 * both @huggingface/tokenizers and transformers read (GPT-2's pre-tokenizer and decoder, a <s> BOS added
 * by a TemplateProcessing post-processor). The built-in example models use it so that English text maps
 * to real tokens; it is not meant for real training.
 *
 * Training is the classic loop: split the text with GPT-2's regex, spell each piece in the byte-level
 * alphabet, then repeatedly merge the most frequent adjacent pair (ties: the smaller pair in code-unit
 * order, so the result never depends on Map iteration order) until the vocabulary is full or no pair
 * occurs twice.
 */

const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** GPT-2's byte -> printable character table (bytes_to_unicode): printable Latin-1 bytes map to themselves. */
export function byteAlphabet(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table = new Array<string>(256);
  let next = 256;
  for (let b = 0; b < 256; b++) table[b] = String.fromCodePoint(printable(b) ? b : next++);
  return table;
}

export interface ByteBpeOptions {
  /** Total vocabulary size, special tokens included. */
  vocabSize: number;
  /** Special tokens, given ids 0, 1, 2, ... in this order; the first is BOS if `bos` names it. */
  specialTokens: readonly string[];
  /** The special token the post-processor puts before every text. */
  bos: string;
}

/** tokenizer.json (as an object) for a byte-level BPE trained on `text`. */
export function trainByteBpe(text: string, options: ByteBpeOptions): Record<string, unknown> {
  const alphabet = byteAlphabet();
  const encoder = new TextEncoder();
  // Unique pieces with their counts, spelled as byte-level symbols.
  const counts = new Map<string, number>();
  for (const piece of text.match(GPT2_SPLIT) ?? []) counts.set(piece, (counts.get(piece) ?? 0) + 1);
  const words = [...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([piece, count]) => ({
    symbols: [...encoder.encode(piece)].map((b) => alphabet[b]!),
    count,
  }));

  const vocab: string[] = [...options.specialTokens, ...alphabet];
  const known = new Set(vocab);
  const merges: [string, string][] = [];
  while (vocab.length < options.vocabSize) {
    const pairs = new Map<string, number>();
    for (const w of words) {
      for (let i = 0; i + 1 < w.symbols.length; i++) {
        const key = w.symbols[i] + "\u0000" + w.symbols[i + 1];
        pairs.set(key, (pairs.get(key) ?? 0) + w.count);
      }
    }
    let best: string | undefined;
    let bestCount = 1; // a pair must occur at least twice
    for (const [key, count] of pairs) {
      if (count > bestCount || (count === bestCount && best !== undefined && key < best)) {
        best = key;
        bestCount = count;
      }
    }
    if (best === undefined) break;
    const [a, b] = best.split("\u0000") as [string, string];
    merges.push([a, b]);
    // Two merges can spell the same token ("a"+"bc" after "ab"+"c"): it gets one id.
    if (!known.has(a + b)) {
      known.add(a + b);
      vocab.push(a + b);
    }
    for (const w of words) {
      const s = w.symbols;
      for (let i = 0; i + 1 < s.length; i++) {
        if (s[i] === a && s[i + 1] === b) s.splice(i, 2, a + b);
      }
    }
  }

  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  const bosId = options.specialTokens.indexOf(options.bos);
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: options.specialTokens.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: options.bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: options.bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: options.bos, type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { [options.bos]: { id: options.bos, ids: [bosId], tokens: [options.bos] } },
    },
    decoder: byteLevel,
    model: {
      type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false,
      vocab: Object.fromEntries(vocab.map((token, id) => [token, id])),
      merges,
    },
  };
}
