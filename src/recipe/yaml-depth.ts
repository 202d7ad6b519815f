/**
 * @file A bound on YAML flow nesting, checked on the text before the yaml package parses it. Its parser
 * recurses once per flow level: `[[[[...` 100,000 deep takes it seconds to end in a RangeError. Block
 * nesting needs a line (and its indentation) per level, so it cannot get that deep in a file of any
 * sensible size; flow nesting takes one character per level.
 */

const SPACE = 0x20, TAB = 0x09, LF = 0x0a, CR = 0x0d;
const HASH = 0x23, SQUOTE = 0x27, DQUOTE = 0x22, BACKSLASH = 0x5c;
const OPEN_SQUARE = 0x5b, CLOSE_SQUARE = 0x5d, OPEN_CURLY = 0x7b, CLOSE_CURLY = 0x7d;
const COLON = 0x3a, COMMA = 0x2c, PIPE = 0x7c, GREATER = 0x3e;

const isBlank = (c: number) => c === SPACE || c === TAB || c === LF || c === CR;

/**
 * The offset of the first flow bracket that opens a level deeper than `limit`, or undefined. One pass,
 * no recursion. It errs towards counting too little (an unclosed quote in a block scalar's text hides
 * what follows it), never towards refusing a recipe the parser would accept at that depth: a bracket
 * counts in block context only where a flow collection can start (after a blank or a line start), in
 * flow context everywhere outside quotes, and block scalars (`|`, `>`) and comments are skipped.
 */
export function flowDepthExceeded(text: string, limit: number): number | undefined {
  let depth = 0;
  let lineIndent = 0, atLineStart = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === LF) { atLineStart = true; lineIndent = 0; continue; }
    if (atLineStart) {
      if (c === SPACE) { lineIndent++; continue; }
      atLineStart = false;
    }
    const previous = i === 0 ? LF : text.charCodeAt(i - 1);
    // Where a scalar or collection may begin: after a blank in block context; also after `[ { , :` in flow context.
    const startsScalar = isBlank(previous) || (depth > 0 && (previous === OPEN_SQUARE || previous === OPEN_CURLY || previous === COMMA || previous === COLON));
    if (c === HASH && isBlank(previous)) {
      while (i + 1 < text.length && text.charCodeAt(i + 1) !== LF) i++;
    } else if ((c === SQUOTE || c === DQUOTE) && startsScalar) {
      i = quoteEnd(text, i, c);
    } else if (c === OPEN_SQUARE || c === OPEN_CURLY) {
      if (depth > 0 || startsScalar) {
        if (++depth > limit) return i;
      }
    } else if (c === CLOSE_SQUARE || c === CLOSE_CURLY) {
      if (depth > 0) depth--;
    } else if ((c === PIPE || c === GREATER) && depth === 0 && startsScalar && blockScalarHeader(text, i)) {
      i = blockScalarEnd(text, i, lineIndent);
      atLineStart = true;
      lineIndent = 0;
    }
  }
  return undefined;
}

/** The offset of the quote closing the one at `start` (a doubled '' is an escaped quote in single quotes). */
function quoteEnd(text: string, start: number, quote: number): number {
  for (let i = start + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (quote === DQUOTE && c === BACKSLASH) i++;
    else if (c === quote) {
      if (quote === SQUOTE && text.charCodeAt(i + 1) === SQUOTE) i++;
      else return i;
    }
  }
  return text.length;
}

/** Whether `|` or `>` at `at` heads a block scalar: only indentation/chomping indicators, then a comment or the line's end. */
function blockScalarHeader(text: string, at: number): boolean {
  let i = at + 1;
  while (i < text.length && /[0-9+-]/.test(text[i]!)) i++;
  while (i < text.length && (text.charCodeAt(i) === SPACE || text.charCodeAt(i) === TAB)) i++;
  return i >= text.length || text.charCodeAt(i) === LF || text.charCodeAt(i) === CR || text.charCodeAt(i) === HASH;
}

/**
 * The offset of the line break before the first non-empty line indented no deeper than `parentIndent`
 * after the block scalar headed at `at` (its text is content, not structure), or the text's end.
 */
function blockScalarEnd(text: string, at: number, parentIndent: number): number {
  let lineStart = text.indexOf("\n", at);
  while (lineStart !== -1) {
    let i = lineStart + 1, indent = 0;
    while (i < text.length && text.charCodeAt(i) === SPACE) { i++; indent++; }
    const empty = i >= text.length || text.charCodeAt(i) === LF || text.charCodeAt(i) === CR;
    if (!empty && indent <= parentIndent) return lineStart - 1;
    lineStart = text.indexOf("\n", i);
  }
  return text.length;
}
