/**
 * @file tokenizer.json is written for the Rust `tokenizers` library. @huggingface/tokenizers (pure JS)
 * reads most of it the same way; where it reads a setting differently, the setting is rewritten here
 * into an equivalent it reads correctly, and where no equivalent exists the file is refused with the
 * component named, rather than tokenized differently without a word:
 *
 * - Metaspace with `split: true` (or no `split`, whose default is true): the JS pre-tokenizer never
 *   splits; the Rust one splits before each "▁" (MergedWithNext). Rewritten as Metaspace without split
 *   followed by a Split whose regex keeps each "▁" with the text after it.
 * - Metaspace with the old `add_prefix_space` and no `prepend_scheme`: Rust maps false to "never"; the JS
 *   default is "always". Rewritten to the scheme Rust uses.
 * - A Metaspace decoder with prepend_scheme "never": Rust keeps the leading space, JS strips it.
 *   Rewritten as a Replace decoder.
 * - Whitespace: the JS pre-tokenizer's \w is ASCII-only ("Café" -> "Caf", "é"); Rust's regex is
 *   Unicode-aware. Rewritten as a Split with Rust's \w and \s spelled as Unicode properties.
 * - Split behaviours MergedWithPrevious, MergedWithNext and Contiguous, and `invert: true` with a
 *   behaviour other than Removed: the JS Split treats them all as Isolated. Refused. So is a Split
 *   pattern that is neither {"String": ...} nor {"Regex": ...}, which Rust refuses to load.
 *
 * Node 20's RegExp rejects the inline `(?i:...)` groups of the Llama-3 and Qwen2 split regexes; the
 * library (from 0.2) rewrites those into case-insensitive character classes itself, checked by the
 * upper-case contractions ("I'M", "DON'T") in the fixtures.
 */
import type { JsonObject } from "./files";

export class UnsupportedTokenizer extends Error {}

const COMPONENT_KEYS = ["normalizer", "pre_tokenizer", "post_processor", "decoder"] as const;

/** tokenizer.json rewritten for the JS library; throws UnsupportedTokenizer for what it cannot read alike. */
export function forJsLibrary(tokenizer: JsonObject): JsonObject {
  const out: JsonObject = { ...tokenizer };
  // The library requires the keys; Rust treats a missing component as none.
  for (const key of COMPONENT_KEYS) if (out[key] === undefined) out[key] = null;
  if (!Array.isArray(out.added_tokens)) out.added_tokens = [];
  out.pre_tokenizer = preTokenizer(out.pre_tokenizer, "pre_tokenizer");
  out.decoder = decoder(out.decoder);
  return out;
}

function asObject(value: unknown): JsonObject | null {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as JsonObject) : null;
}

function prependScheme(config: JsonObject): string {
  if (typeof config.prepend_scheme === "string") return config.prepend_scheme;
  return config.add_prefix_space === false ? "never" : "always";
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function preTokenizer(value: unknown, where: string): unknown {
  const config = asObject(value);
  if (config === null) return value;
  switch (config.type) {
    case "Sequence": {
      const list = Array.isArray(config.pretokenizers) ? config.pretokenizers : [];
      return { ...config, pretokenizers: list.map((p, i) => preTokenizer(p, `${where}.pretokenizers[${i}]`)) };
    }
    case "Metaspace": {
      const replacement = typeof config.replacement === "string" ? config.replacement : "▁";
      const metaspace = { type: "Metaspace", replacement, prepend_scheme: prependScheme(config), split: false };
      if (config.split === false) return metaspace;
      const r = escapeRegExp(replacement);
      const split = { type: "Split", pattern: { Regex: `${r}[^${r}]*|[^${r}]+` }, behavior: "Isolated", invert: false };
      return { type: "Sequence", pretokenizers: [metaspace, split] };
    }
    case "Whitespace": {
      const word = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}";
      return { type: "Split", pattern: { Regex: `[${word}]+|[^${word}\\p{White_Space}]+` }, behavior: "Removed", invert: true };
    }
    case "Split": {
      // Rust reads only {"String": ...} or {"Regex": ...}; the JS library warns at anything else and splits on nothing.
      const pattern = asObject(config.pattern);
      if (!pattern || Object.keys(pattern).length !== 1 || !(typeof pattern.String === "string" || typeof pattern.Regex === "string")) {
        throw new UnsupportedTokenizer(`${where}: a Split's pattern must be {"String": text} or {"Regex": text}, not ${JSON.stringify(config.pattern ?? null)}`);
      }
      const behavior = typeof config.behavior === "string" ? config.behavior.toLowerCase() : "isolated";
      const invert = config.invert === true;
      if (invert ? behavior !== "removed" : behavior !== "isolated" && behavior !== "removed") {
        throw new UnsupportedTokenizer(`${where}: a Split with behavior ${JSON.stringify(config.behavior)}${invert ? " and invert: true" : ""} is not supported (the JavaScript tokenizer would split differently)`);
      }
      return config;
    }
    default:
      return config;
  }
}

function decoder(value: unknown): unknown {
  const config = asObject(value);
  if (config === null) return value;
  if (config.type === "Sequence" && Array.isArray(config.decoders)) return { ...config, decoders: config.decoders.map(decoder) };
  if (config.type === "Metaspace" && prependScheme(config) === "never") {
    return { type: "Replace", pattern: { String: typeof config.replacement === "string" ? config.replacement : "▁" }, content: " " };
  }
  return config;
}
