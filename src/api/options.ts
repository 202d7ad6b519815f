/**
 * @file The numeric options of the library calls, checked before anything runs. An option computed
 * as `Number(process.env.X)` is NaN when the variable is unset; passed on unchecked, `workers: NaN`
 * once started no worker and wrote an all-zero model. The CLI checks its flags against the same ranges.
 */
import { describeValue, OptionError } from "../errors";

/** Inclusive [min, max] of each integer option. */
export const OPTION_RANGES = {
  workers: [1, 256],
  seed: [0, 2 ** 32 - 1],
  mergeSeed: [0, 2 ** 32 - 1],
  /** wasm32 memory ends at 4 GiB; a worker below 1 MiB cannot hold its kernels. */
  memoryBudget: [2 ** 20, 2 ** 32],
  chunkBytes: [1, Number.MAX_SAFE_INTEGER],
  chunkElements: [1, Number.MAX_SAFE_INTEGER],
  outShardSize: [1, Number.MAX_SAFE_INTEGER],
  maxSweeps: [1, 10_000],
  points: [2, 10_001],
  context: [2, 1_048_576],
  maxTokens: [2, Number.MAX_SAFE_INTEGER],
  maxNewTokens: [1, 1_048_576],
  rank: [1, 1_048_576],
  oversample: [0, 65_536],
  powerIterations: [0, 1_000],
  blockBytes: [1, Number.MAX_SAFE_INTEGER],
} as const satisfies Record<string, readonly [number, number]>;

export type RangedOption = keyof typeof OPTION_RANGES;

/** Throws OptionError unless every given option among `keys` is an integer in its range. */
export function checkIntegerOptions(options: object, keys: readonly RangedOption[]): void {
  for (const key of keys) {
    const value = (options as Record<string, unknown>)[key];
    if (value === undefined) continue;
    const [min, max] = OPTION_RANGES[key];
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      throw new OptionError("E_OPTION", `option ${key} must be an integer from ${min} to ${max}, got ${describeValue(value)}`, { key, value: typeof value === "number" ? value : describeValue(value) });
    }
  }
}

/** Throws OptionError unless `value` is absent or a function. */
export function checkCallbackOption(options: object, key: string): void {
  const value = (options as Record<string, unknown>)[key];
  if (value !== undefined && typeof value !== "function") {
    throw new OptionError("E_OPTION", `option ${key} must be a function, got ${describeValue(value)}`, { key });
  }
}

/** What a non-numeric option must be, for callers from plain JavaScript (TypeScript's types say the same). */
export type OptionKind = "string" | "boolean" | "array" | "signal";

const KIND_WORDS: Readonly<Record<OptionKind, string>> = { string: "a string", boolean: "true or false", array: "an array", signal: "an AbortSignal" };

/**
 * Throws OptionError unless `options` is an object whose given `kinds` of option, where set, are of
 * that kind: a wrong one would otherwise fail deep inside as a TypeError, with no code and no name.
 */
export function checkOptionKinds(call: string, options: unknown, kinds: Readonly<Record<string, OptionKind>> = {}): void {
  if (options === null || typeof options !== "object") {
    throw new OptionError("E_OPTION", `${call}: the options must be an object, got ${describeValue(options)}`, { key: "options" });
  }
  for (const [key, kind] of Object.entries(kinds)) {
    const value = (options as Record<string, unknown>)[key];
    if (value === undefined) continue;
    const ok = kind === "array" ? Array.isArray(value)
      : kind === "signal" ? typeof (value as AbortSignal | null)?.aborted === "boolean" && typeof (value as AbortSignal).addEventListener === "function"
      : typeof value === kind;
    if (!ok) throw new OptionError("E_OPTION", `${call}: option ${key} must be ${KIND_WORDS[kind]}, got ${describeValue(value)}`, { key });
  }
}

/** Throws OptionError unless the argument `key` of `call` is an array (`what` says of what). */
export function checkArrayArgument(call: string, key: string, value: unknown, what: string): void {
  if (!Array.isArray(value)) throw new OptionError("E_OPTION", `${call}: ${what} must be an array, got ${describeValue(value)}`, { key });
}

/** Throws OptionError unless `recipe` is recipe text or a file path (a string) or a parsed Recipe (an object). */
export function checkRecipeArgument(call: string, recipe: unknown): void {
  if (typeof recipe !== "string" && (recipe === null || typeof recipe !== "object")) {
    throw new OptionError("E_OPTION", `${call}: the recipe must be a string or a parsed recipe, got ${describeValue(recipe)}`, { key: "recipe" });
  }
}
