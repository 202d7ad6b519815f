// The measuring commands' fuzz cases (issue 11), as plain data like the other cases:
//  - "sweep-key": `--vary KEY=SPEC` arguments (valid keys of a fixture recipe, mutated: brackets,
//    indexes out of range, negative or huge, unicode, empty segments, keys that address a string, a
//    list or a mapping, new names; SPECs as lists and ranges with counts 0, 1 and huge, NaN, Infinity,
//    reversed, empty items, 1e309, ranges that overflow), run through the library's parse and check
//    functions ("parse") or, for small grids, a whole sweep() on the tiny fixture ("sweep");
//  - "measure-cli": `weightsoup path|soup|diagnose|sweep|extract-lora|align` with a valid command line
//    mutated: flags without a value, unknown flags, dropped required flags, numbers out of range or not
//    numbers, bad regexes, --save-module names, output paths that are folders, files, inside a file,
//    without a parent folder, or an input model.
// What the README says each must do is worked out independently in fuzz-measure-rules.ts.
import fc from "fast-check";
import { MEASURE_RECIPES } from "./fuzz-measure-fixtures";

export interface SweepKeyCase {
  kind: "sweep-key";
  run: "parse" | "sweep";
  /** Index into MEASURE_RECIPES. */
  template: number;
  /** The --vary arguments, in order. */
  vary: string[];
}

export type MeasureCommand = "path" | "soup" | "diagnose" | "sweep" | "extract-lora" | "align";

/**
 * Where an output flag (or extract-lora's OUT_DIR) points: a new name, an existing folder, an existing
 * file, a name inside a file, a name in a missing folder, or an input model's folder.
 */
export type OutputTarget = "@fresh" | "@dir" | "@file" | "@under-file" | "@no-parent" | "@input";
export const OUTPUT_TARGETS: readonly OutputTarget[] = ["@fresh", "@dir", "@file", "@under-file", "@no-parent", "@input"];

export type FlagEdit =
  /** Sets the flag (replacing its value when the command line has it); `value` may be an OutputTarget. */
  | { op: "set"; flag: string; value: string }
  /** A boolean flag added. */
  | { op: "switch"; flag: string }
  /** The flag removed with its value. */
  | { op: "drop"; flag: string }
  /** The flag as the last argument, with no value after it. */
  | { op: "missing"; flag: string }
  /** A flag the command does not have. */
  | { op: "unknown"; flag: string }
  /** One positional argument more. */
  | { op: "extra"; value: string };

export interface MeasureCliCase {
  kind: "measure-cli";
  run: "cli";
  command: MeasureCommand;
  edits: FlagEdit[];
}

export type MeasureCase = SweepKeyCase | MeasureCliCase;

// ---------------------------------------------------------------------------------------------------
// Keys and SPECs

const NAMES = ["parameters", "models", "slices", "weight", "density", "t", "value", "sources", "model", "merge_method", "base_model", "dtype", "filter",
  "lambda", "epsilon", "__proto__", "constructor", "toString", "_x", "A1"];

/** Ways to spoil a key: each keeps some of the valid key so deep checks are still reached. */
const keyEditArb: fc.Arbitrary<(key: string) => string> = fc.oneof(
  fc.constantFrom(...NAMES).map((n) => (k: string) => `${k}.${n}`),
  fc.constantFrom(0, 1, 2, 3, 7, 999_999_999, 1_000_000_000, 2 ** 53).map((i) => (k: string) => `${k}[${i}]`),
  fc.constantFrom("[-1]", "[01]", "[]", "[", "]", "[1", "[x]", "[1.5]", "[ 0]", "[0][0]", "..", ".", "..x", ".1", "[0].", "ü", ".ü", ".名", ".a-b", " ", "\t", "=", "=1", "\u0000", "[１]")
    .map((s) => (k: string) => `${k}${s}`),
  fc.constantFrom(".", "[0]", "1", "ü", " ", "-").map((s) => (k: string) => `${s}${k}`),
  // An index of the key replaced (out of range, negative, huge, not a number), or a name dropped or renamed.
  fc.constantFrom("[2]", "[5]", "[-1]", "[99999999999]", "[a]", "").map((s) => (k: string) => k.replace(/\[\d+\]/, s)),
  fc.constantFrom("", ".", "..", ".models", ".Parameters", ".parameter").map((s) => (k: string) => k.replace(/\.[A-Za-z_]\w*$/, s)),
  // Keys that stop early (at a list or a mapping) or address a string.
  fc.constant((k: string) => k.replace(/(\[\d+\]|\.[A-Za-z_]\w*)$/, "")),
  fc.constantFrom("merge_method", "base_model", "models[0].model", "models", "parameters", "dtype", "slices[0].sources[0].layer_range[0]", "slices[0].sources[0].model", "parameters.normalize", "parameters.int8_mask", "models[0].parameters.weight[0].filter", "name")
    .map((s) => () => s),
);

/** A key of the recipe, or one spoilt; `small` (whole sweeps): mostly valid, so most sweeps run. */
function keyArb(template: number, small: boolean): fc.Arbitrary<string> {
  const valid = fc.constantFrom(...MEASURE_RECIPES[template]!.keys);
  return fc.oneof(
    { weight: small ? 12 : 5, arbitrary: valid },
    { weight: 4, arbitrary: fc.tuple(valid, fc.array(keyEditArb, { minLength: 1, maxLength: 2 })).map(([k, edits]) => edits.reduce((key, edit) => edit(key), k)) },
  );
}

const NUMBER_TEXTS = ["0", "1", "0.5", ".5", "-0", "+0.25", "1e-1", "2E0", "-3", "1e308", "-1e308", "1e309", "-1e309", "5e-324", "1e-400", "NaN", "Infinity", "-Infinity",
  "0x10", "1_000", "", " ", "x", "１", "0.", "1e", "e1", "--1", "0,5", "1/2", "true", "null"];

const plainNumberArb = fc.constantFrom("0", "0.2", "0.5", "0.8", "1", "0.25", "-0.5");
const numberTextArb = fc.oneof({ weight: 3, arbitrary: plainNumberArb }, { weight: 2, arbitrary: fc.constantFrom(...NUMBER_TEXTS) });
const countTextArb = fc.oneof({ weight: 3, arbitrary: fc.constantFrom("2", "3") }, {
  weight: 2, arbitrary: fc.constantFrom("0", "1", "-2", "2.0", "2.5", "02", "10000", "10001", "1000000", "99999999999999999999", "1e3", "", " 3", "x", "NaN", "Infinity", "１"),
});

/** A SPEC: a list (empty items included) or a range; `small` keeps grids to a few points (whole sweeps). */
function specArb(small: boolean): fc.Arbitrary<string> {
  const number = small ? fc.oneof({ weight: 8, arbitrary: plainNumberArb }, { weight: 1, arbitrary: numberTextArb }) : numberTextArb;
  const list = fc.array(number, { minLength: 1, maxLength: small ? 3 : 5 }).map((xs) => xs.join(","));
  const range = fc.tuple(number, number, small ? fc.oneof({ weight: 4, arbitrary: fc.constantFrom("2", "3") }, { weight: 1, arbitrary: countTextArb }) : countTextArb)
    .map(([a, b, n]) => `${a}:${b}:${n}`);
  const odd = fc.constantFrom<string>("", ":", "::", "0:1", "0:1:2:3", "1,,2", ",1", "1,", "0:1:3,4", "1e308:-1e308:3", "-1.7e308:1.7e308:2", "1:0:3", "0.3:0.3:2", "0:1e-320:3");
  return fc.oneof({ weight: 4, arbitrary: list }, { weight: 4, arbitrary: range }, { weight: small ? 0 : 1, arbitrary: odd });
}

/** One `--vary` argument: KEY=SPEC, now and then without its "=", with spaces, or with a second "=". */
function varyArb(template: number, small: boolean): fc.Arbitrary<string> {
  return fc.tuple(keyArb(template, small), specArb(small), fc.constantFrom("=", "=", "=", "=", " = ", "", "==")).map(([k, s, eq]) => `${k}${eq}${s}`);
}

export const sweepKeyCaseArb: fc.Arbitrary<SweepKeyCase> = fc.tuple(fc.nat(MEASURE_RECIPES.length - 1), fc.oneof({ weight: 9, arbitrary: fc.constant("parse" as const) }, { weight: 1, arbitrary: fc.constant("sweep" as const) }))
  .chain(([template, run]) => fc.record({
    kind: fc.constant("sweep-key" as const),
    run: fc.constant(run),
    template: fc.constant(template),
    vary: fc.array(varyArb(template, run === "sweep"), { minLength: 1, maxLength: run === "sweep" ? 2 : 3 }),
  }));

// ---------------------------------------------------------------------------------------------------
// Command lines

const NUMBER_FLAG_VALUES = ["0", "1", "2", "3", "-1", "0.5", "NaN", "Infinity", "", " 2", "x", "0x10", "1e3", "99999999999999999999", "4294967296", "１", "64MiB", "1KiB", "__proto__"];
const SIZE_FLAG_VALUES = ["64MiB", "1MiB", "16MiB", "1KiB", "5B", "0", "-1", "1e3", "x", "", "4GiB", "5GB", "99999999999999999999"];
const REGEXES = ["self_attn", "q_proj|v_proj", "mlp\\.", "(", "[", "*", "+", "\\", "(a+)+$", "", "^$", ".*", "(?<n>x)", "ü", "lm_head", "embed_tokens", "(?=", "a{2,1}"];
const MODULE_NAMES = ["embed_tokens", "lm_head", "model.embed_tokens", "q_proj", "layers", "nomatch", "", " ", "__proto__", "constructor", "model.layers.0.mlp.up_proj", "*"];
const MODEL_ARGS = ["a", "b", "base", "nothere", "ties.yml", "ids.json", "", "."];

const outputArb = fc.constantFrom<string>(...OUTPUT_TARGETS);
/** Half plain values, so the cases that pass the flags go on to run the command with several of them set. */
const numberFlag = (flag: string): fc.Arbitrary<FlagEdit> => fc.record({
  op: fc.constant("set" as const), flag: fc.constant(flag), value: fc.oneof(fc.constantFrom("2", "3"), fc.constantFrom(...NUMBER_FLAG_VALUES)),
});
const sizeFlag = (flag: string): fc.Arbitrary<FlagEdit> => fc.record({ op: fc.constant("set" as const), flag: fc.constant(flag), value: fc.constantFrom(...SIZE_FLAG_VALUES) });
const outputFlag = (flag: string): fc.Arbitrary<FlagEdit> => fc.record({ op: fc.constant("set" as const), flag: fc.constant(flag), value: outputArb });
/** Every command's boolean flags also include --profile (a timeline on stderr that must change nothing else). */
const switchFlag = (...flags: string[]): fc.Arbitrary<FlagEdit> => fc.record({ op: fc.constant("switch" as const), flag: fc.constantFrom(...flags, "--profile") });
/** align's --spec: built-in kinds (one fits the fixtures, the others do not), a file that is no spec, no file. */
const SPECS = ["auto", "llama", "mlp", "gpt2", "AUTO", "", "ids.json", "nothere.json", "ties.yml"];

const EVAL_NUMBERS = ["--context", "--max-tokens", "--workers", "--seed"];

const COMMAND_EDITS: Record<MeasureCommand, fc.Arbitrary<FlagEdit>[]> = {
  path: [...EVAL_NUMBERS, "--points", "--max-sweeps"].map(numberFlag).concat([sizeFlag("--memory-budget"), outputFlag("--svg"), outputFlag("--report"), switchFlag("--slerp", "--align", "--quiet")]),
  soup: [...EVAL_NUMBERS.filter((f) => f !== "--seed"), "--seed"].map(numberFlag).concat([sizeFlag("--memory-budget"), outputFlag("--svg"), outputFlag("--report"), outputFlag("--out"), switchFlag("--force", "--greedy", "--quiet")]),
  diagnose: ["--seed", "--workers"].map(numberFlag).concat([sizeFlag("--memory-budget"), sizeFlag("--chunk-size"), outputFlag("--svg"), outputFlag("--report"), switchFlag("--quiet")]),
  sweep: EVAL_NUMBERS.map(numberFlag).concat([
    sizeFlag("--memory-budget"), outputFlag("--csv"), outputFlag("--svg"), outputFlag("--report"), outputFlag("--write-best"), switchFlag("--force", "--quiet"),
    fc.record({ op: fc.constant("set" as const), flag: fc.constant("--vary"), value: varyArb(0, true) }),
    fc.record({ op: fc.constant("set" as const), flag: fc.constant("--against"), value: fc.constantFrom(...MODEL_ARGS) }),
  ]),
  "extract-lora": ["--rank", "--oversample", "--power-iterations", "--seed"].map(numberFlag).concat([
    sizeFlag("--block-size"), outputFlag("OUT_DIR"), switchFlag("--embed-lora", "--force", "--distribute-scale", "--no-distribute-scale", "--quiet"),
    fc.record({ op: fc.constant("set" as const), flag: fc.constantFrom("--include-regex", "--exclude-regex", "-i", "-e"), value: fc.constantFrom(...REGEXES) }),
    fc.record({ op: fc.constant("set" as const), flag: fc.constant("--save-module"), value: fc.constantFrom(...MODULE_NAMES) }),
    fc.record({ op: fc.constant("set" as const), flag: fc.constant("--sv-epsilon"), value: fc.constantFrom("0", "1e-3", "-1", "NaN", "Infinity", "", " ", "x", "1e309") }),
    fc.record({ op: fc.constant("set" as const), flag: fc.constant("--dtype"), value: fc.constantFrom("float32", "bfloat16", "float16", "F32", "int8", "") }),
  ]),
  align: ["--seed", "--max-sweeps", "--workers"].map(numberFlag).concat([
    outputFlag("OUT_DIR"), switchFlag("--force", "--quiet", "--json"),
    fc.record({ op: fc.constant("set" as const), flag: fc.constant("--spec"), value: fc.constantFrom(...SPECS) }),
  ]),
};

/** Flags of each command that take a value (what "missing" and "drop" pick from). */
export const VALUE_FLAGS: Record<MeasureCommand, string[]> = {
  path: ["--ids", "--points", "--context", "--max-tokens", "--workers", "--memory-budget", "--seed", "--max-sweeps", "--svg", "--report", "--text"],
  soup: ["--ids", "--context", "--max-tokens", "--workers", "--memory-budget", "--svg", "--report", "--out", "--text"],
  diagnose: ["--seed", "--workers", "--memory-budget", "--chunk-size", "--svg", "--report"],
  sweep: ["--vary", "--ids", "--context", "--max-tokens", "--workers", "--memory-budget", "--seed", "--csv", "--svg", "--report", "--write-best", "--against", "--text"],
  "extract-lora": ["--rank", "--sv-epsilon", "--dtype", "--oversample", "--power-iterations", "--seed", "--block-size", "--include-regex", "--exclude-regex", "--save-module"],
  align: ["--spec", "--seed", "--max-sweeps", "--workers"],
};

function editArb(command: MeasureCommand): fc.Arbitrary<FlagEdit> {
  const valueFlag = fc.constantFrom(...VALUE_FLAGS[command]);
  return fc.oneof(
    { weight: 8, arbitrary: fc.oneof(...COMMAND_EDITS[command]) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("drop" as const), flag: valueFlag }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("missing" as const), flag: valueFlag }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("unknown" as const), flag: fc.constantFrom("--bogus", "--point", "--Points", "--vary-key", "-x", "--__proto__", "--constructor", "---ids", "--", "-") }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("extra" as const), value: fc.constantFrom(...MODEL_ARGS) }) },
  );
}

export const measureCliCaseArb: fc.Arbitrary<MeasureCliCase> = fc.constantFrom<MeasureCommand>("path", "soup", "diagnose", "sweep", "extract-lora", "align").chain((command) => fc.record({
  kind: fc.constant("measure-cli" as const),
  run: fc.constant("cli" as const),
  command: fc.constant(command),
  edits: fc.oneof({ weight: 1, arbitrary: fc.constant([] as FlagEdit[]) }, { weight: 6, arbitrary: fc.array(editArb(command), { minLength: 1, maxLength: 3 }) }),
}));
