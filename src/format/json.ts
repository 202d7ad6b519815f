/**
 * @file JSON from outside (safetensors headers, config.json, shard indexes): parsed with a bound on how
 * deeply it may nest. JSON.parse itself copes with any depth, but everything after it that recurses
 * (structuredClone, JSON.stringify, a message naming a value) throws RangeError on a value nested
 * 100,000 deep. Real files nest a handful of levels.
 */

/** Deepest nesting weightsoup accepts in any JSON file it reads. */
export const MAX_JSON_DEPTH = 64;

/**
 * How deeply `text` nests arrays and objects, counted by a scan that skips strings, so it costs one
 * pass and no recursion. Stops counting past `limit`.
 */
export function nestingDepth(text: string, limit = MAX_JSON_DEPTH): number {
  let depth = 0, deepest = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      i++;
      while (i < text.length && text.charCodeAt(i) !== 0x22) i += text.charCodeAt(i) === 0x5c /* \ */ ? 2 : 1;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > deepest && (deepest = depth) > limit) return deepest;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    }
  }
  return deepest;
}

/**
 * Parses `text`, or says in words why it cannot be used (the caller wraps that in its own typed error).
 */
export function parseBoundedJson(text: string): { value: unknown } | { problem: string } {
  if (nestingDepth(text) > MAX_JSON_DEPTH) return { problem: `nests deeper than ${MAX_JSON_DEPTH} levels` };
  try {
    return { value: JSON.parse(text) };
  } catch (cause) {
    return { problem: `is not valid JSON (${(cause as Error).message.slice(0, 200)})` };
  }
}

/** A JSON object (not null, an array or a scalar). */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Where one top-level key's value sits in a JSON object's text. */
interface ValueSpan {
  key: string;
  /** Start of the key's string token (for its indentation). */
  keyStart: number;
  start: number;
  end: number;
}

/**
 * Replaces (or appends) top-level values of the JSON object in `text`, keeping every other byte as
 * written: a config.json rewritten whole would turn `1e-05` into `0.00001` and `10000.0` into `10000`.
 * New values are formatted in the file's own indentation. `text` must be a valid JSON object.
 */
export function editTopLevel(text: string, changes: ReadonlyMap<string, unknown>): string {
  return editMembers(text, text.indexOf("{"), changes);
}

/**
 * As editTopLevel, for the members of the object that is top-level key `section`'s value
 * (`text_config` of a multimodal config.json). Text without that key, or where it holds no object, is
 * returned as it is.
 */
export function editSection(text: string, section: string, changes: ReadonlyMap<string, unknown>): string {
  const span = memberSpans(text, text.indexOf("{")).find((s) => s.key === section);
  return span && text[span.start] === "{" && changes.size ? editMembers(text, span.start, changes) : text;
}

/** Edits the members of the object whose `{` is at `open`. */
function editMembers(text: string, open: number, changes: ReadonlyMap<string, unknown>): string {
  const spans = memberSpans(text, open);
  // Members are indented one step more than the line holding the object's `{`.
  const outer = /^[ \t]*/.exec(text.slice(text.lastIndexOf("\n", open - 1) + 1, open))![0];
  const indent = spans.length ? lineIndent(text, spans[0]!.keyStart) : outer + "  ";
  const step = indent.length > outer.length && indent.startsWith(outer) ? indent.slice(outer.length) : indent;
  const format = (value: unknown) => JSON.stringify(value, null, step).split("\n").join("\n" + indent);
  let out = text;
  // From the end backwards, so earlier offsets stay valid.
  for (const span of [...spans].reverse()) {
    if (changes.has(span.key)) out = out.slice(0, span.start) + format(changes.get(span.key)) + out.slice(span.end);
  }
  const added = [...changes].filter(([key]) => !spans.some((s) => s.key === key));
  if (added.length === 0) return out;
  const entries = added.map(([key, value]) => `${indent}${JSON.stringify(key)}: ${format(value)}`);
  if (spans.length === 0) {
    const close = out.indexOf("}", open + 1);
    return `${out.slice(0, open)}{\n${entries.join(",\n")}\n${outer}}${out.slice(close + 1)}`;
  }
  // After the last value (edits above moved it, so find it again; `open` lies before every edit).
  const last = memberSpans(out, open).pop()!;
  return out.slice(0, last.end) + entries.map((e) => ",\n" + e).join("") + out.slice(last.end);
}

function lineIndent(text: string, at: number): string {
  const lineStart = text.lastIndexOf("\n", at) + 1;
  const ws = text.slice(lineStart, at);
  return /^[ \t]*$/.test(ws) && ws.length > 0 ? ws : "  ";
}

/** The keys of the JSON object whose `{` is at `open` in `text`, and the spans of their values, in order. */
function memberSpans(text: string, open: number): ValueSpan[] {
  const spans: ValueSpan[] = [];
  let i = open + 1;
  const skipWs = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  const skipString = () => {
    i++;
    while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    i++;
  };
  for (;;) {
    skipWs();
    if (text[i] !== '"') return spans; // "}": the end
    const keyStart = i;
    skipString();
    const key = JSON.parse(text.slice(keyStart, i)) as string;
    skipWs();
    i++; // ":"
    skipWs();
    const start = i;
    let depth = 0;
    for (; i < text.length; i++) {
      const c = text[i]!;
      if (c === '"') {
        skipString();
        i--;
      } else if (c === "{" || c === "[") depth++;
      else if (c === "}" || c === "]") {
        if (depth === 0) break;
        depth--;
      } else if (c === "," && depth === 0) break;
    }
    let end = i;
    while (end > start && /\s/.test(text[end - 1]!)) end--;
    spans.push({ key, keyStart, start, end });
    if (text[i] === ",") i++;
  }
}
