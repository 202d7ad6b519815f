// Mutations of how a merge is run: the library options (workers, seed, memoryBudget, chunkBytes,
// chunkElements, outShardSize) as NaN, negative, fractional, infinite, huge, strings or null; `force` and
// `signal` of the wrong kind; and the same settings as command-line flags.
import fc from "fast-check";
import { RECIPES } from "./fuzz-fixtures";

export type OptionValue = number | string | boolean | null;

export interface LibraryOptions {
  workers?: OptionValue;
  seed?: OptionValue;
  memoryBudget?: OptionValue;
  chunkBytes?: OptionValue;
  chunkElements?: OptionValue;
  outShardSize?: OptionValue;
  force?: OptionValue;
  signal?: OptionValue;
}

export interface OptionsCase {
  /** Index into RECIPES. */
  template: number;
  options: LibraryOptions;
}

export interface FlagsCase {
  template: number;
  flags: { flag: string; value: string }[];
}

const MiB = 1048576;

const hostileOptionArb: fc.Arbitrary<OptionValue> = fc.constantFrom<OptionValue>(NaN, -1, 0, 0.5, 1.5, Infinity, -Infinity, "2", "", null, true, 1e30, 2 ** 53, 2 ** 32);

function optionArb(...valid: number[]): fc.Arbitrary<OptionValue> {
  return fc.oneof({ weight: 1, arbitrary: fc.constantFrom<OptionValue>(...valid) }, { weight: 2, arbitrary: hostileOptionArb });
}

export const libraryOptionsArb: fc.Arbitrary<LibraryOptions> = fc.record({
  workers: optionArb(1, 2, 3),
  seed: optionArb(0, 7, 2 ** 32 - 1),
  memoryBudget: optionArb(16 * MiB, 64 * MiB, 256 * MiB),
  chunkBytes: optionArb(4096, 65536, MiB),
  chunkElements: optionArb(4096, 8192, 1, 100),
  outShardSize: optionArb(1, 3000, 20_000, 5e9),
  force: fc.constantFrom<OptionValue>(true, false, "yes", 1),
  // Never an AbortSignal: from plain JavaScript, a value of the wrong kind.
  signal: fc.constantFrom<OptionValue>("abort", 5, true),
}, { requiredKeys: [] });

export const optionsCaseArb: fc.Arbitrary<OptionsCase> = fc.record({
  template: fc.nat(RECIPES.length - 1),
  options: libraryOptionsArb,
});

const FLAGS = ["--workers", "--seed", "--memory-budget", "--chunk-size", "--out-shard-size"] as const;

const flagValueArb: fc.Arbitrary<string> = fc.constantFrom("1", "2", "0", "-1", "0.5", "1.5", "NaN", "Infinity", "", " 2", "0x10", "1e3", "5B", "1KiB", "3000",
  "64MiB", "99999999999999999999", "4294967296", "１", "__proto__");

export const flagsCaseArb: fc.Arbitrary<FlagsCase> = fc.record({
  template: fc.nat(RECIPES.length - 1),
  flags: fc.uniqueArray(fc.record({ flag: fc.constantFrom(...FLAGS), value: flagValueArb }), { maxLength: 3, selector: (f) => f.flag }),
});

/**
 * Whether a value is one the issue says must be refused up front with a typed error: anything but a
 * number, and numbers that are NaN, infinite, fractional, or below the option's minimum. (null is
 * taken as "not given", as `??` defaults do.)
 */
export function invalidOption(name: keyof LibraryOptions, value: OptionValue | undefined): boolean {
  if (name === "chunkElements") return false; // internal testing knob: no contract beyond "typed error or correct output"
  if (value === null || value === undefined) return false;
  if (name === "force") return typeof value !== "boolean";
  if (name === "signal") return true;
  if (typeof value !== "number" || !Number.isInteger(value)) return true;
  if (name === "seed") return value < 0 || value >= 2 ** 32;
  return value < 1;
}
