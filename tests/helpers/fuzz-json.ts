// JSON as a fuzzer writes it: values that JSON.parse would hide or refuse to build stay expressible
// (mapping keys in order and repeated, `__proto__` as an ordinary key, raw text such as 100,000 levels
// of nesting or 1e400), plus the hostile values and names the fuzz properties draw from.
import fc from "fast-check";

/**
 * A JSON value as written. Mappings are key/value pairs (duplicates and `__proto__` allowed); `raw` is
 * inserted verbatim; `deep` and `repeat` stand for text too long to read in a counterexample (nesting
 * `depth` levels deep, a string repeated `times`). Numbers JSON cannot express (NaN, Infinity) are
 * written as Python's json module writes them, which makes the text invalid JSON, as such config files are.
 */
export type Json =
  | null | boolean | number | string | Json[]
  | { pairs: [string, Json][] }
  | { raw: string }
  | { deep: "array" | "object"; depth: number }
  | { repeat: string; times: number }
  /** YAML's "billion laughs": `levels` anchors, each a list of `width` aliases of the previous one. */
  | { aliasBomb: [levels: number, width: number] };

export function emitJson(v: Json): string {
  if (v === null || typeof v === "boolean") return String(v);
  if (typeof v === "number") return Number.isFinite(v) ? JSON.stringify(v) : String(v);
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(emitJson).join(",")}]`;
  if ("raw" in v) return v.raw;
  if ("deep" in v) return deepText(v.deep, v.depth);
  if ("repeat" in v) return JSON.stringify(v.repeat.repeat(v.times));
  if ("aliasBomb" in v) return aliasBombText(...v.aliasBomb);
  return `{${v.pairs.map(([k, x]) => `${JSON.stringify(k)}:${emitJson(x)}`).join(",")}}`;
}

/** A parsed (shallow, trusted) JSON value as a Json tree, keeping key order. */
export function toJson(v: unknown): Json {
  if (v === null || typeof v === "boolean" || typeof v === "number" || typeof v === "string") return v;
  if (Array.isArray(v)) return v.map(toJson);
  return { pairs: Object.entries(v as object).map(([k, x]) => [k, toJson(x)]) };
}

export function isPairs(v: Json | undefined): v is { pairs: [string, Json][] } {
  return v !== null && typeof v === "object" && !Array.isArray(v) && "pairs" in v;
}

/** Sets (value) or deletes (undefined) every pair named `key`, appending it when absent. */
export function setPair(map: { pairs: [string, Json][] }, key: string, value: Json | undefined): void {
  const at = map.pairs.findIndex(([k]) => k === key);
  if (value === undefined) map.pairs = map.pairs.filter(([k]) => k !== key);
  else if (at >= 0) map.pairs[at] = [key, value];
  else map.pairs.push([key, value]);
}

export function getPair(map: { pairs: [string, Json][] }, key: string): Json | undefined {
  return map.pairs.find(([k]) => k === key)?.[1];
}

/** Nesting as text: building it as objects would overflow our own stack before the code under test's. */
export function deepText(kind: "array" | "object", depth: number, leaf = "0"): string {
  return kind === "array" ? "[".repeat(depth) + leaf + "]".repeat(depth) : '{"a":'.repeat(depth) + leaf + "}".repeat(depth);
}

export function aliasBombText(levels: number, width: number): string {
  const parts = [`&l0 [${Array(width).fill("0.5").join(", ")}]`];
  for (let i = 1; i < levels; i++) parts.push(`&l${i} [${Array(width).fill(`*l${i - 1}`).join(", ")}]`);
  return `[${parts.join(", ")}]`;
}

/** Depths: a little, past typical recursion limits, and (less often: it takes seconds to parse) the 100,000 levels of the issue. */
export const depthArb = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(50, 5_000) }, { weight: 1, arbitrary: fc.constant(100_000) });

export const deepJsonArb: fc.Arbitrary<Json> = fc.record({ deep: fc.constantFrom("array" as const, "object" as const), depth: depthArb });

/** Keys and strings that name things on Object.prototype, or are otherwise awkward as property names. */
export const PROTOTYPE_NAMES = ["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf", "prototype", "__defineGetter__", "isPrototypeOf"] as const;

export const hostileStringArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...PROTOTYPE_NAMES),
  fc.constantFrom("", " ", "3", "0.5", "-1", "NaN", "1e400", "null", "F32", "\u0000", "\ud800", "模型", "🦙", "a/b", "../..", "x".repeat(300)),
  fc.string({ unit: "binary", maxLength: 6 }),
);

/** Numbers around every boundary a count, size, offset or weight has. */
export const hostileNumberArb: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(0, 1, 2, 3, -1, 0.5, 2.5, -0, 1e12, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 2 ** 64, 1e308, NaN, Infinity, -Infinity),
  fc.integer({ min: -4, max: 8 }),
);

/** Raw numbers whose text matters: JSON.parse turns 1e400 into Infinity, -0 into -0, 1.0 into 1. */
export const rawNumberArb: fc.Arbitrary<Json> = fc.constantFrom("1e400", "-1e400", "-0", "1.0", "3e0", "9007199254740993", "0.1e1").map((raw) => ({ raw }));

/** Any hostile JSON value, shallow or deep. */
export const hostileJsonArb: fc.Arbitrary<Json> = fc.letrec<{ value: Json }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    hostileNumberArb,
    hostileStringArb,
    rawNumberArb,
    deepJsonArb,
    fc.record({ repeat: fc.constantFrom("x", "\\", "\u00e9"), times: fc.constantFrom(1_000, 1_000_000) }),
    fc.array(tie("value"), { maxLength: 3 }),
    fc.array(fc.tuple(hostileStringArb, tie("value")), { maxLength: 3 }).map((pairs) => ({ pairs })),
  ),
})).value;
