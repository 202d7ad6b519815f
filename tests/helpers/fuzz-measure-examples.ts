// Cases the measuring commands' properties always try first, whatever the seed: the inputs issue 11's
// typed errors name and the ones the fuzzer found, so a regression in any of them is caught by every run.
import type { MeasureCliCase, SweepKeyCase } from "./fuzz-measure-cases";

const keys = (template: number, ...vary: string[]): SweepKeyCase => ({ kind: "sweep-key", run: "parse", template, vary });
const swept = (template: number, ...vary: string[]): SweepKeyCase => ({ kind: "sweep-key", run: "sweep", template, vary });

export const SWEEP_KEY_EXAMPLES: SweepKeyCase[] = [
  // Keys that address a list, a string, a mapping, an index out of range, a missing name; a new parameter.
  keys(0, "models[0].parameters.weight=0.2,0.5"), keys(0, "merge_method=1"), keys(0, "parameters=1"), keys(1, "parameters.t[2]=0:1:3"),
  keys(0, "models[0].parameters.weight[0].value=1"), keys(0, "parameters.epsilon=0.1,0.2"), keys(0, "parameters.__proto__=1"),
  // SPECs: counts 0, 1 and huge; NaN, Infinity, 1e309; empty items; reversed; a range that overflows (found by the fuzzer).
  keys(0, "parameters.lambda=0:1:0"), keys(0, "parameters.lambda=0:1:1"), keys(0, "parameters.lambda=0:1:1000000"), keys(0, "parameters.lambda=NaN"),
  keys(0, "parameters.lambda=Infinity"), keys(0, "parameters.lambda=1e309"), keys(0, "parameters.lambda=1,,2"), keys(0, "parameters.lambda=1:0:3"),
  keys(0, "parameters.lambda=1e308:-1e308:3"),
  // The grid's cap: 10,000 points in one key, or in two.
  keys(0, "models[0].parameters.density=0:1:10000"), keys(0, "models[0].parameters.density=0:1:10000", "models[1].parameters.density=0:1:10000"),
  // Recipes: several documents (refused, typed: found by the fuzzer), one document with a stray --- after it.
  keys(5, "models[0].parameters.weight=0.5"), keys(4, "models[0].parameters.weight=0.2,0.8"),
  // Whole sweeps: a gradient anchor, a filter entry, a slice's source, a stray ---, a multi-stage recipe.
  swept(0, "models[0].parameters.weight[1]=0,1", "models[1].parameters.density=0.5"), swept(2, "models[0].parameters.weight[0].value=0.1,0.9"),
  swept(3, "slices[1].sources[1].parameters.weight=0.3:0.9:2"), swept(4, "models[1].parameters.weight=0.25"), swept(5, "models[0].parameters.weight=0.5"),
  // A point whose perplexity (the kernels' exp) is an ulp from V8's Math.exp of its NLL (found by `npm run fuzz`: the oracle was wrong).
  swept(1, "parameters.t[1]=-0.5"),
];

const cli = (command: MeasureCliCase["command"], ...edits: MeasureCliCase["edits"]): MeasureCliCase => ({ kind: "measure-cli", run: "cli", command, edits });

export const MEASURE_CLI_EXAMPLES: MeasureCliCase[] = [
  // Each command as given, with its outputs written.
  cli("path", { op: "set", flag: "--svg", value: "@fresh" }, { op: "set", flag: "--report", value: "@fresh" }),
  cli("soup", { op: "set", flag: "--out", value: "@fresh" }, { op: "set", flag: "--svg", value: "@fresh" }),
  cli("sweep", { op: "set", flag: "--csv", value: "@fresh" }, { op: "set", flag: "--write-best", value: "@fresh" }),
  cli("extract-lora", { op: "set", flag: "--save-module", value: "embed_tokens" }),
  // Refusals: --points 1, a regex that does not compile with a --save-module name that matches nothing.
  cli("path", { op: "set", flag: "--points", value: "1" }),
  cli("extract-lora", { op: "set", flag: "-i", value: "(" }, { op: "set", flag: "--save-module", value: "nomatch" }),
  // Outputs that cannot be written: a name inside a file (found by the fuzzer: an untyped ENOTDIR), an input as the soup's folder.
  cli("diagnose", { op: "set", flag: "--svg", value: "@under-file" }),
  cli("soup", { op: "set", flag: "--out", value: "@input" }),
  // A report whose folder does not exist, beside a soup's --out (found by the fuzzer: the soup was written, then the report failed).
  cli("soup", { op: "set", flag: "--out", value: "@fresh" }, { op: "set", flag: "--report", value: "@no-parent" }),
  cli("sweep", { op: "set", flag: "--write-best", value: "@fresh" }, { op: "set", flag: "--csv", value: "@no-parent" }),
  // align: as given (2 workers, checked against 1), with 3 workers and a timeline; a file that is no spec.
  // A model folder whose parent folders do not exist yet: created (found by the fuzzer: the rule said refused).
  cli("sweep", { op: "set", flag: "--write-best", value: "@no-parent" }),
  cli("align"), cli("align", { op: "set", flag: "--workers", value: "3" }, { op: "switch", flag: "--profile" }),
  cli("align", { op: "set", flag: "--spec", value: "ids.json" }),
];
