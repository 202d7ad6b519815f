// Cases each property always tries first, whatever the seed: the input classes issue 8 lists, so a
// regression in any of them is caught by every run of the suite, not only by seeds that happen on them.
import type { Json } from "./fuzz-json";
import type { FuzzCase } from "./fuzz-cases";
import type { RecipeEdit } from "./fuzz-recipes";

const UP = "model.layers.0.mlp.up_proj.weight";
const noFiles = { header: [], bytes: [], index: [] };
const DEEP_ARRAY: Json = { deep: "array", depth: 100_000 };
const DEEP_OBJECT: Json = { deep: "object", depth: 100_000 };

export const FILE_EXAMPLES: FuzzCase[] = [
  // Names that are legal in safetensors must survive into the written header.
  { kind: "files", run: "merge", template: 0, files: { ...noFiles, target: "all", header: [{ op: "rename", tensor: UP, to: "__proto__" }] } },
  { kind: "files", run: "plan", template: 1, files: { ...noFiles, target: "all", header: [{ op: "rename", tensor: UP, to: "constructor" }] } },
  { kind: "files", run: "plan", template: 0, files: { ...noFiles, target: "all", header: [{ op: "rename", tensor: UP, to: "toString" }] } },
  { kind: "files", run: "plan", template: 0, files: { ...noFiles, target: "a", header: [{ op: "field", tensor: UP, field: "dtype", value: "constructor" }] } },
  // 100,000 levels of nesting in a shape element, a metadata value, a whole entry.
  { kind: "files", run: "plan", template: 0, files: { ...noFiles, target: "a", header: [{ op: "field", tensor: UP, field: "shape", value: [24, DEEP_ARRAY] }] } },
  { kind: "files", run: "plan", template: 0, files: { ...noFiles, target: "a", header: [{ op: "metadata", value: { pairs: [["format", DEEP_ARRAY]] } }] } },
  { kind: "files", run: "inspect", template: 0, files: { ...noFiles, target: "a", header: [{ op: "entry", tensor: UP, value: DEEP_ARRAY }] } },
  // Shapes and offsets written with a fraction or an exponent (16.0, 1.6e1), which the format's readers refuse.
  { kind: "files", run: "inspect", template: 0, files: { ...noFiles, target: "a", header: [{ op: "literal", tensor: UP, field: "shape", form: "fraction" }] } },
  { kind: "files", run: "merge", template: 0, files: { ...noFiles, target: "a", header: [{ op: "literal", tensor: UP, field: "data_offsets", form: "exponent" }] } },
  // A header of very many empty tensors, in every model, planned and merged.
  { kind: "files", run: "plan", template: 0, files: { ...noFiles, target: "all", header: [{ op: "empties", count: 10_000, dtype: "F32" }] } },
  { kind: "files", run: "merge", template: 0, files: { ...noFiles, target: "all", header: [{ op: "empties", count: 2_000, dtype: "F32" }] } },
  // A model.safetensors beside sharded b that its index does not name: other tensors (refused), the same ones (read by the index).
  { kind: "files", run: "merge", template: 0, files: { ...noFiles, target: "b", stray: "shard" } },
  { kind: "files", run: "inspect", template: 0, files: { ...noFiles, target: "b", stray: "whole" } },
  { kind: "files", run: "merge", template: 0, files: { ...noFiles, target: "b", stray: "whole" } },
];

const layers = (value: unknown, target: "a" | "all" = "a", run: "plan" | "inspect" = "plan"): FuzzCase =>
  ({ kind: "config", run, template: 0, config: { target, ops: [{ op: "set", key: "num_hidden_layers", value: value as never }] } });
const config = (value: Json): FuzzCase => ({ kind: "config", run: "plan", template: 0, config: { target: "a", ops: [{ op: "replaceJson", value }] } });

export const CONFIG_EXAMPLES: FuzzCase[] = [
  layers(-1), layers(1e12), layers(2.5), layers("3"), layers({ raw: "1e400" }, "all"), layers(-1, "a", "inspect"),
  // A layer count that differs between models (2 in a, 3 in the others).
  layers(2),
  config(5), config("text"), config([]), config(DEEP_ARRAY), config(DEEP_OBJECT),
  // A layer count nested 100,000 deep (found by `npm run fuzz`: the oracle's message about it overflowed the stack).
  { kind: "config", run: "plan", template: 5, config: { target: "base", ops: [{ op: "set", key: "num_layers", value: DEEP_OBJECT }, { op: "set", key: "num_hidden_layers", value: undefined }] } },
];

const recipe = (edits: RecipeEdit[], template = 0, run: "plan" | "merge" = "plan"): FuzzCase =>
  ({ kind: "recipe", run, recipe: { template, style: "block", edits, text: [] } });

export const RECIPE_EXAMPLES: FuzzCase[] = [
  recipe([{ op: "top", key: "merge_method", value: "constructor" }]),
  recipe([{ op: "top", key: "merge_method", value: "__proto__" }]),
  recipe([{ op: "top", key: "dtype", value: "__proto__" }]),
  recipe([{ op: "top", key: "out_dtype", value: "constructor" }]),
  recipe([{ op: "param", scope: "entry", index: 0, name: "weight", value: { raw: "*w" } }]),
  recipe([{ op: "param", scope: "entry", index: 0, name: "weight", value: { aliasBomb: [9, 9] } }]),
  recipe([{ op: "param", scope: "entry", index: 0, name: "weight", value: DEEP_ARRAY }]),
  recipe([{ op: "param", scope: "entry", index: 0, name: "weight", value: NaN }]),
  recipe([{ op: "param", scope: "global", index: 0, name: "lambda", value: Infinity }], 3),
  recipe([{ op: "param", scope: "entry", index: 0, name: "density", value: NaN }], 1),
  recipe([{ op: "duplicateEntry", index: 1 }], 0, "merge"),
  recipe([{ op: "entry", index: 0, key: "layer_range", value: [0, 1e12] }], 5),
  recipe([{ op: "entry", index: 0, key: "layer_range", value: [0, 4] }], 5),
];

const options = (o: Record<string, unknown>): FuzzCase => ({ kind: "options", run: "merge", options: { template: 0, options: o as never } });

export const OPTION_EXAMPLES: FuzzCase[] = [
  options({ workers: NaN }), options({ workers: 0.5 }), options({ workers: -1 }), options({ workers: "2" }),
  options({ memoryBudget: NaN }), options({ chunkBytes: -1 }), options({ chunkBytes: Infinity }),
  options({ seed: 0.5 }), options({ seed: -1 }), options({ outShardSize: NaN }), options({ outShardSize: 0.5 }),
];

export const FLAG_EXAMPLES: FuzzCase[] = [
  { kind: "flags", run: "cli", flags: { template: 0, flags: [{ flag: "--workers", value: "NaN" }] } },
  { kind: "flags", run: "cli", flags: { template: 0, flags: [{ flag: "--memory-budget", value: "1" }] } },
  { kind: "flags", run: "cli", flags: { template: 0, flags: [{ flag: "--chunk-size", value: "1" }] } },
];
