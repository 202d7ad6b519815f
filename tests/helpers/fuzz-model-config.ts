// Mutations of a model's config.json: the layer count and the other keys weightsoup reads set to
// hostile values (negative, 1e12, fractional, strings, Infinity through 1e400), and whole files that are
// not a config at all (a scalar, an array, 100,000 levels of nesting, invalid JSON).
import fc from "fast-check";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { deepJsonArb, emitJson, hostileJsonArb, hostileNumberArb, PROTOTYPE_NAMES, rawNumberArb, setPair, toJson, type Json } from "./fuzz-json";

export type ConfigOp =
  | { op: "set"; key: string; value: Json | undefined }
  /** The whole file: invalid or non-object JSON text, or a (deeply nested) JSON value. */
  | { op: "replace"; text: string }
  | { op: "replaceJson"; value: Json };

export interface ConfigMutations {
  target: "a" | "base" | "all";
  ops: ConfigOp[];
}

/** Keys weightsoup reads (layer counts, dtypes, sizes) or copies, plus prototype names. */
const KEYS = ["num_hidden_layers", "n_layer", "num_layers", "torch_dtype", "dtype", "vocab_size", "hidden_size", "model_type",
  "architectures", "tie_word_embeddings", "num_attention_heads", ...PROTOTYPE_NAMES] as const;

const layerCountArb: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom(2, 4, 0, -1, -3, 1e12, 2.5, 1e308, 2 ** 53, "3", "three", null, true, [3]),
  rawNumberArb,
  hostileNumberArb,
);

/** How quantized checkpoints say so: transformers' quantization_config, MLX's quantization; null and odd values. */
const quantizationArb: fc.Arbitrary<ConfigOp> = fc.record({
  op: fc.constant("set" as const),
  key: fc.constantFrom("quantization_config", "quantization"),
  value: fc.constantFrom<Json | undefined>({ pairs: [["quant_method", "gptq"], ["bits", 4]] }, { pairs: [["group_size", 64], ["bits", 4]] }, { pairs: [] }, null, "gptq", false, [1], undefined),
});

const configOpArb: fc.Arbitrary<ConfigOp> = fc.oneof(
  { weight: 1, arbitrary: quantizationArb },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("set" as const), key: fc.constantFrom("num_hidden_layers", "n_layer", "num_layers"), value: fc.option(layerCountArb, { nil: undefined }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("set" as const), key: fc.constantFrom(...KEYS), value: fc.option(hostileJsonArb, { nil: undefined }) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("replace" as const),
      text: fc.constantFrom("5", '"text"', "[]", "[1, 2]", "null", "true", "", "{", "{}", "\ufeff{}", '{"num_hidden_layers": NaN}'),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("replaceJson" as const), value: fc.oneof(deepJsonArb, hostileJsonArb) }) },
);

export const configMutationsArb: fc.Arbitrary<ConfigMutations> = fc.record({
  target: fc.constantFrom("a" as const, "all" as const, "base" as const),
  ops: fc.array(configOpArb, { minLength: 1, maxLength: 3 }),
});

/** Rewrites dir/config.json (which the fixtures always write). */
export async function mutateConfig(dir: string, ops: ConfigOp[]): Promise<void> {
  const path = join(dir, "config.json");
  const config = toJson(JSON.parse(await readFile(path, "utf8"))) as { pairs: [string, Json][] };
  let replaced: string | undefined;
  for (const op of ops) {
    if (op.op === "set") setPair(config, op.key, op.value);
    else replaced = op.op === "replace" ? op.text : emitJson(op.value);
  }
  await writeFile(path, replaced ?? emitJson(config));
}
