// The valid starting points of the evaluation fuzz cases: every tiny decoder variant of
// decoder-models.ts (llama, mistral, qwen2, qwen3, gpt2; a few in BF16) and a tiny Llama with the
// example's byte-level BPE tokenizer (so text, chat and end-of-sequence handling are reached). Each has
// a sibling of the same shape with other values, for recipes that merge the two.
import { join } from "node:path";
import { EXAMPLE_SKILLS, llamaTensors, writeLlamaModel, type LlamaShape } from "../../src/example/models";
import { DECODER_VARIANTS, decoderModel, writeDecoderModel, type DecoderDtype, type DecoderVariant } from "./decoder-models";

export const TOKENIZER_MODEL = "example-tokenizer";
export type EvalModelName = DecoderVariant | typeof TOKENIZER_MODEL;

/** The Llama that carries the example tokenizer: 300 tokens, 2 layers, head_dim 4. */
const EXAMPLE_SHAPE: LlamaShape = { vocab: 300, hidden: 16, intermediate: 32, layers: 2, heads: 4, kvHeads: 2 };

/** Variants written in BF16 (the rest in F32), so both weight dtypes reach the kernels. */
const BF16_VARIANTS: ReadonlySet<DecoderVariant> = new Set(["qwen2-sliding", "gpt2-unprefixed", "mistral-defaults"]);

export const EVAL_MODELS: readonly EvalModelName[] = [...DECODER_VARIANTS, TOKENIZER_MODEL];

function dtypeOf(name: DecoderVariant): DecoderDtype {
  return BF16_VARIANTS.has(name) ? "BF16" : "F32";
}

/** The folder of a fixture (`sibling`: the second model of recipe cases) under the pristine root. */
export function fixtureDir(root: string, name: EvalModelName, sibling = false): string {
  return join(root, sibling ? `${name}.sibling` : name);
}

/** Writes every fixture and its sibling under root. */
export async function writeEvalFixtures(root: string): Promise<void> {
  for (const name of DECODER_VARIANTS) {
    await writeDecoderModel(fixtureDir(root, name), decoderModel(name, { seed: 1, dtype: dtypeOf(name) }));
    await writeDecoderModel(fixtureDir(root, name, true), decoderModel(name, { seed: 2, dtype: dtypeOf(name) }));
  }
  await writeLlamaModel(fixtureDir(root, TOKENIZER_MODEL), EXAMPLE_SHAPE);
  await writeLlamaModel(fixtureDir(root, TOKENIZER_MODEL, true), EXAMPLE_SHAPE, EXAMPLE_SKILLS[0]);
}

/** Tensor names of a fixture, in file order (what tensor mutations pick from). */
export function fixtureTensorNames(name: EvalModelName): string[] {
  if (name === TOKENIZER_MODEL) return llamaTensors(EXAMPLE_SHAPE).map((t) => t.name);
  return [...decoderModel(name).tensors.keys()];
}

/** Vocabulary size of a fixture as written. */
export function fixtureVocab(name: EvalModelName): number {
  if (name === TOKENIZER_MODEL) return EXAMPLE_SHAPE.vocab;
  return decoderModel(name).config.vocab_size as number;
}

/** Whether the fixture has tokenizer files (the decoder variants have none: text input must be refused). */
export function fixtureHasTokenizer(name: EvalModelName): boolean {
  return name === TOKENIZER_MODEL;
}
