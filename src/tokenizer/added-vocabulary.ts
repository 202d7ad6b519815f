/**
 * @file Added tokens as transformers 5 ends up with them: which strings are added tokens, their ids and
 * settings, and how they are cut out of a text before the model sees it. @huggingface/tokenizers takes
 * tokenizer.json's `added_tokens` as written and splits on them its own way; the Rust library
 * (tokenizers/src/tokenizer/added_vocabulary.rs) and transformers' TokenizersBackend do the following,
 * which this file reproduces:
 *
 * Ids. tokenizer.json's entries are added one by one as Rust's `add_tokens` does: an entry identical
 * to one already added (every setting equal) or with empty content is ignored; otherwise its id is
 * the id its content already has (an earlier added token, then the model's vocabulary), else the next
 * free one (the vocabulary's size, or one past the largest added id). The id written in the file is
 * only checked against that, with a warning. Then transformers adds tokenizer_config.json's
 * `added_tokens_decoder` entries, the named special tokens (bos_token ... mask_token and any other
 * `*_token` string) and the extra ones (`extra_special_tokens`, formerly `additional_special_tokens`),
 * each as a special token; a special token the model already has keeps its id and becomes special
 * (skipped when decoding with special tokens skipped).
 *
 * Splitting. Tokens with `normalized: false` are found in the raw text first; every piece between them
 * is normalized, and tokens with `normalized: true` are found in it by their normalized content. In
 * both passes matches are leftmost-longest and do not overlap; a `single_word` token is passed over
 * where a word character (Rust's Unicode `\w`) touches it; `lstrip` / `rstrip` take in the whitespace
 * (Unicode White_Space) on that side; with `split_special_tokens`, special tokens are not split on.
 */
import type { JsonObject } from "./files";

export interface AddedToken {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

type Settings = Omit<AddedToken, "id">;

const NAMED_SPECIAL_KEYS = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"];

/** A token from a JSON entry (tokenizer.json's or tokenizer_config.json's); undefined if it has no content. */
function settingsOf(entry: unknown, special?: boolean): Settings | undefined {
  if (typeof entry === "string") return { content: entry, single_word: false, lstrip: false, rstrip: false, normalized: special === true ? false : true, special: special ?? false };
  if (entry === null || typeof entry !== "object" || Array.isArray(entry)) return undefined;
  const e = entry as JsonObject;
  if (typeof e.content !== "string") return undefined;
  const isSpecial = special ?? e.special === true;
  return {
    content: e.content,
    single_word: e.single_word === true,
    lstrip: e.lstrip === true,
    rstrip: e.rstrip === true,
    // Python's AddedToken defaults `normalized` to the opposite of `special` as given in the entry.
    normalized: typeof e.normalized === "boolean" ? e.normalized : e.special !== true,
    special: isSpecial,
  };
}

function sameToken(a: Settings, b: Settings): boolean {
  return a.content === b.content && a.single_word === b.single_word && a.lstrip === b.lstrip && a.rstrip === b.rstrip && a.normalized === b.normalized && a.special === b.special;
}

/** The model's own vocabulary (token -> id) and its size as the Rust model reports it. */
function modelVocabulary(model: JsonObject): { ids: Map<string, number>; size: number } {
  const ids = new Map<string, number>();
  if (Array.isArray(model.vocab)) {
    // Unigram: [piece, score] pairs, the id is the position.
    model.vocab.forEach((pair, i) => {
      if (Array.isArray(pair) && typeof pair[0] === "string" && !ids.has(pair[0])) ids.set(pair[0], i);
    });
    return { ids, size: model.vocab.length };
  }
  if (model.vocab !== null && typeof model.vocab === "object") {
    for (const [token, id] of Object.entries(model.vocab as JsonObject)) if (Number.isSafeInteger(id)) ids.set(token, id as number);
  }
  return { ids, size: ids.size };
}

/**
 * The added tokens transformers' AutoTokenizer has for these files, in the order they were added
 * (a later entry for the same content replaces the earlier one's settings and keeps its id).
 */
export function addedVocabulary(tokenizer: JsonObject, config: JsonObject): AddedToken[] {
  const model = modelVocabulary((tokenizer.model ?? {}) as JsonObject);
  const idOf = new Map<string, number>();
  const byId = new Map<number, AddedToken>();
  const add = (token: Settings | undefined) => {
    if (token === undefined || token.content === "") return;
    for (const t of byId.values()) if (sameToken(t, token)) return;
    let id = idOf.get(token.content) ?? model.ids.get(token.content);
    if (id === undefined) {
      let max = -1;
      for (const v of idOf.values()) if (v > max) max = v;
      id = max < 0 ? model.size : max >= model.size || model.size === 0 ? max + 1 : model.size;
    }
    idOf.set(token.content, id);
    byId.set(id, { id, ...token });
  };

  for (const entry of Array.isArray(tokenizer.added_tokens) ? tokenizer.added_tokens : []) add(settingsOf(entry));

  // transformers' TokenizersBackend: added_tokens_decoder entries, then the named and extra special
  // tokens it does not have yet; then (_post_init) all named and extra special tokens again, as special.
  const decoder = config.added_tokens_decoder;
  const fromDecoder = new Map<string, Settings>();
  if (decoder !== null && typeof decoder === "object" && !Array.isArray(decoder)) {
    const entries = Object.entries(decoder as JsonObject).filter(([k]) => /^\d+$/.test(k)).sort((a, b) => Number(a[0]) - Number(b[0]));
    for (const [, entry] of entries) {
      const token = settingsOf(entry);
      if (token === undefined) continue;
      fromDecoder.set(token.content, token);
      add(token);
    }
  }
  const named: Settings[] = [];
  const namedKeys = [...NAMED_SPECIAL_KEYS, ...Object.keys(config).filter((k) => k.endsWith("_token") && !NAMED_SPECIAL_KEYS.includes(k))];
  for (const key of namedKeys) {
    const token = settingsOf(config[key], true);
    if (token !== undefined) named.push(fromDecoder.get(token.content) ?? token);
  }
  const extraList = config.extra_special_tokens ?? config.additional_special_tokens;
  if (extraList !== null && typeof extraList === "object" && !Array.isArray(extraList)) {
    for (const value of Object.values(extraList as JsonObject)) {
      const token = settingsOf(value, true);
      if (token !== undefined) named.push(fromDecoder.get(token.content) ?? token);
    }
  }
  const extras = Array.isArray(extraList) ? extraList.map((e) => settingsOf(e, typeof e === "string" ? true : undefined)).filter((t): t is Settings => t !== undefined) : [];
  for (const token of [...named, ...extras]) if (!idOf.has(token.content)) add(token);
  for (const token of [...named, ...extras]) add(token);
  return [...byId.values()];
}

/** Rust's `\w` (regex-syntax's Unicode word class) and `\s` (White_Space), for one character. */
const WORD = /^[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]$/u;
const SPACE = /^\p{White_Space}$/u;

/** The character that ends at `end` (a surrogate pair whole). */
function charBefore(text: string, end: number): string {
  const low = text.charCodeAt(end - 1);
  return end >= 2 && low >= 0xdc00 && low <= 0xdfff && (text.charCodeAt(end - 2) & 0xfc00) === 0xd800 ? text.slice(end - 2, end) : text.slice(end - 1, end);
}

function charAt(text: string, start: number): string {
  return String.fromCodePoint(text.codePointAt(start)!);
}

/** Where the run of whitespace that ends at `end` begins. */
function spaceRunStart(text: string, end: number): number {
  while (end > 0) {
    const c = charBefore(text, end);
    if (!SPACE.test(c)) break;
    end -= c.length;
  }
  return end;
}

/** Where the run of whitespace that begins at `start` ends. */
function spaceRunEnd(text: string, start: number): number {
  while (start < text.length) {
    const c = charAt(text, start);
    if (!SPACE.test(c)) break;
    start += c.length;
  }
  return start;
}

interface TrieNode {
  next: Map<string, TrieNode>;
  token?: AddedToken;
}

/** A piece of text: an added token (matched) or text for the pre-tokenizer and model. */
export interface Piece {
  text: string;
  token?: AddedToken;
  /** Where the piece starts in the text it was cut from (the Metaspace "first" scheme asks whether 0). */
  start: number;
}

/** Finds added tokens in a text, leftmost-longest, with their single_word / lstrip / rstrip settings. */
export class AddedTokenMatcher {
  private readonly root: TrieNode = { next: new Map() };
  readonly empty: boolean;

  /** `patterns`: each token with the text it is matched by (its content, or its normalized content). */
  constructor(patterns: readonly (readonly [string, AddedToken])[]) {
    for (const [pattern, token] of patterns) {
      if (pattern === "") continue;
      let node = this.root;
      for (const unit of pattern) {
        let child = node.next.get(unit);
        if (!child) node.next.set(unit, (child = { next: new Map() }));
        node = child;
      }
      node.token ??= token;
    }
    this.empty = this.root.next.size === 0;
  }

  /** Rust's find_matches: pieces covering the text, added tokens marked. */
  split(text: string): Piece[] {
    if (this.empty || text === "") return [{ text, start: 0 }];
    const pieces: Piece[] = [];
    let done = 0; // start_offset: where the text not yet given to a piece begins
    let i = 0; // the matcher's own position: it resumes after each match, whatever was kept of it
    while (i < text.length) {
      let node: TrieNode | undefined = this.root;
      let found: { end: number; token: AddedToken } | undefined;
      for (let j = i; j < text.length; ) {
        const unit = charAt(text, j);
        node = node.next.get(unit);
        if (!node) break;
        j += unit.length;
        if (node.token) found = { end: j, token: node.token };
      }
      if (!found) {
        i += charAt(text, i).length;
        continue;
      }
      let start = i;
      let stop = found.end;
      i = found.end;
      const token = found.token;
      if (token.single_word && ((start > 0 && WORD.test(charBefore(text, start))) || (stop < text.length && WORD.test(charAt(text, stop))))) continue;
      if (token.lstrip) start = Math.max(spaceRunStart(text, start), done);
      if (token.rstrip) stop = spaceRunEnd(text, stop);
      if (done < start) pieces.push({ text: text.slice(done, start), start: done });
      pieces.push({ text: text.slice(start, stop), token, start });
      done = stop;
    }
    if (done !== text.length) pieces.push({ text: text.slice(done), start: done });
    return pieces;
  }
}
