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
 * (Unicode White_Space) on that side; with `split_special_tokens`, a special token's match is passed
 * over (its text goes to the model).
 */
import type { JsonObject } from "./files";
import { namedSpecialTokens } from "./special-tokens";

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

export interface AddedVocabulary {
  tokens: AddedToken[];
  /**
   * The tokens Rust decodes as their normalized text: those ever added with `normalized: true`, even if
   * added again without it ("Cafe\u0301" under NFC decodes as "Café", which byte-level decoding makes
   * "Caf\ufffd").
   */
  decodedNormalized: AddedToken[];
}

/** A token as Python's AddedToken holds it: `normalized` may be unset, and is then the opposite of `special` when used. */
type Entry = Omit<Settings, "normalized"> & { normalized: boolean | undefined };

/** An entry of tokenizer.json or tokenizer_config.json; a string is AddedToken(text, special=`special`). */
function entryOf(value: unknown, special = false): Entry | undefined {
  if (typeof value === "string") return { content: value, single_word: false, lstrip: false, rstrip: false, normalized: undefined, special };
  if (value === null || typeof value !== "object" || Array.isArray(value)) return undefined;
  const e = value as JsonObject;
  if (typeof e.content !== "string") return undefined;
  return {
    content: e.content, single_word: e.single_word === true, lstrip: e.lstrip === true, rstrip: e.rstrip === true,
    normalized: typeof e.normalized === "boolean" ? e.normalized : undefined, special: e.special === true,
  };
}

/** A special token as tokenizer_config.json gives it: a plain string (`text`) or an AddedToken. */
interface Candidate {
  entry: Entry;
  text: boolean;
}

function candidateOf(value: unknown): Candidate | undefined {
  const entry = entryOf(value, typeof value === "string");
  return entry && { entry, text: typeof value === "string" };
}

function samePythonToken(a: Candidate, b: Candidate): boolean {
  if (a.text || b.text) return a.text && b.text && a.entry.content === b.entry.content;
  return sameToken(settled(a.entry), settled(b.entry));
}

function settled(e: Entry): Settings {
  return { ...e, normalized: e.normalized ?? !e.special };
}

function sameToken(a: Settings, b: Settings): boolean {
  return a.content === b.content && a.single_word === b.single_word && a.lstrip === b.lstrip && a.rstrip === b.rstrip && a.normalized === b.normalized && a.special === b.special;
}

/** The model's own vocabulary (token -> id) and its size as the Rust model reports it. */
export function modelVocabulary(model: JsonObject): { ids: Map<string, number>; size: number } {
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
 * The added tokens transformers' AutoTokenizer has for these files, each with its latest settings and
 * `special` if it was ever added as special (Rust's special-token set only grows). `rebuilt`: the
 * class builds its backend from the vocabulary and merges (LlamaTokenizer, GPT2Tokenizer,
 * Qwen2Tokenizer), keeping none of tokenizer.json's added tokens; `resetsSpecials`: it ends by adding
 * every special token again as a plain special token (Qwen2Tokenizer), which clears their other settings.
 * `config`: tokenizer_config.json as the class reads it (its own special tokens where the file names none).
 */
export function addedVocabulary(tokenizer: JsonObject, config: JsonObject, rebuilt: boolean, resetsSpecials: boolean): AddedVocabulary {
  const model = modelVocabulary((tokenizer.model ?? {}) as JsonObject);
  const idOf = new Map<string, number>();
  const byId = new Map<number, Settings>();
  const specialEver = new Set<string>();
  const normalizedEver = new Set<string>();
  const add = (entry: Entry) => {
    const token = settled(entry);
    if (token.content === "") return;
    if (token.special) specialEver.add(token.content);
    if (token.normalized) normalizedEver.add(token.content);
    // An identical token can only be the one holding this content (each content has one id).
    const held = idOf.get(token.content);
    if (held !== undefined && sameToken(byId.get(held)!, token)) return;
    let id = held ?? model.ids.get(token.content);
    if (id === undefined) {
      let max = -1;
      for (const v of idOf.values()) if (v > max) max = v;
      id = max < 0 ? model.size : max >= model.size || model.size === 0 ? max + 1 : model.size;
    }
    idOf.set(token.content, id);
    byId.set(id, token);
  };

  const fileEntries = (Array.isArray(tokenizer.added_tokens) ? tokenizer.added_tokens : [])
    .map((e) => ({ id: Number((e as JsonObject | null)?.id), entry: entryOf(e) }))
    .filter((e): e is { id: number; entry: Entry } => e.entry !== undefined);
  if (!rebuilt) {
    for (const { entry } of fileEntries) add(entry);
    // TokenizersBackend works on a deep copy of the loaded backend: a round trip through tokenizer.json,
    // which keeps one token per id with its last settings, so a text added as special and then again as
    // a plain token is special no more.
    specialEver.clear();
    normalizedEver.clear();
    for (const token of byId.values()) {
      if (token.special) specialEver.add(token.content);
      if (token.normalized) normalizedEver.add(token.content);
    }
  }

  // from_pretrained's added_tokens_decoder: tokenizer_config.json's, or (older files) tokenizer.json's list.
  const decoder = config.added_tokens_decoder;
  const decoderEntries = decoder !== null && typeof decoder === "object" && !Array.isArray(decoder)
    ? Object.entries(decoder as JsonObject).filter(([k]) => /^\d+$/.test(k)).sort((a, b) => Number(a[0]) - Number(b[0])).map(([, e]) => entryOf(e)).filter((e): e is Entry => e !== undefined)
    : [...new Map(fileEntries.map((e) => [e.id, e.entry]))].sort((a, b) => a[0] - b[0]).map(([, e]) => e); // by id, the last entry of an id kept
  const fromDecoder = new Map(decoderEntries.map((entry): [string, Candidate] => [entry.content, { entry, text: false }]));

  // The named special tokens (bos ... mask, any other *_token text, a dict of extra_special_tokens) and
  // the extra ones (a list), as the config gives them: a string stays a string until it is added (as a
  // special token), a dict is an AddedToken; a named one is the decoder's entry of its text.
  const named: Candidate[] = [];
  for (const [, value] of namedSpecialTokens(config)) {
    const c = candidateOf(value);
    if (c !== undefined) named.push(fromDecoder.get(c.entry.content) ?? c);
  }
  const extraList = config.extra_special_tokens ?? config.additional_special_tokens;
  const extras = (Array.isArray(extraList) ? extraList : []).map(candidateOf).filter((c): c is Candidate => c !== undefined);
  const namedTexts = new Set(named.map((c) => c.entry.content));

  // TokenizersBackend.__init__: every decoder entry (its check for entries the backend already has
  // compares ids with tokens, so none is left out; identical ones change nothing), then each named and
  // extra token whose text neither the backend nor the decoder has and that is not equal to one already
  // queued (Python's equality: strings by text, AddedTokens by every setting, never a string with an
  // AddedToken; so a text given both ways is added twice, the later settings winning). A string is added
  // as a special token, an AddedToken among the named texts is made special.
  const toAdd: Candidate[] = decoderEntries.map((entry) => ({ entry, text: false }));
  const known = new Set([...idOf.keys(), ...decoderEntries.map((e) => e.content)]);
  const queued = new Map<string, Candidate[]>(); // the named and extra tokens queued, by text (equal ones share it)
  for (const c of [...named, ...extras]) {
    const sameText = queued.get(c.entry.content) ?? [];
    if (known.has(c.entry.content) || sameText.some((q) => samePythonToken(q, c))) continue;
    queued.set(c.entry.content, [...sameText, c]);
    toAdd.push(c);
  }
  for (const { entry: e, text } of toAdd) add(text ? { ...e, special: true } : !e.special && namedTexts.has(e.content) ? { ...e, special: true } : e);
  if (resetsSpecials) for (const text of new Set([...named, ...extras].map((c) => c.entry.content))) add({ content: text, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const tokens = [...byId].map(([id, t]) => ({ id, ...t, special: specialEver.has(t.content) }));
  return { tokens, decodedNormalized: tokens.filter((t) => normalizedEver.has(t.content)) };
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

  /**
   * `patterns`: each token with the text it is matched by (its content, or its normalized content).
   * `skipSpecial` (split_special_tokens): a special token's match is passed over, text and all, as Rust
   * passes it over (the special "<a><b>" still hides the "<a" inside it).
   */
  constructor(patterns: readonly (readonly [string, AddedToken])[], private readonly skipSpecial = false) {
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
      if (this.skipSpecial && token.special) continue;
      if (token.single_word && ((start > 0 && WORD.test(charBefore(text, start))) || (stop < text.length && WORD.test(charAt(text, stop))))) continue;
      if (token.lstrip) start = Math.max(spaceRunStart(text, start), done);
      if (token.rstrip) stop = spaceRunEnd(text, stop);
      if (done < start) pieces.push({ text: text.slice(done, start), start: done });
      // A match whose text the whitespace taken by the one before used up is an empty split, which the
      // Rust library drops, token and all.
      if (start < stop) pieces.push({ text: text.slice(start, stop), token, start });
      done = stop;
    }
    if (done !== text.length) pieces.push({ text: text.slice(done), start: done });
    return pieces;
  }
}
