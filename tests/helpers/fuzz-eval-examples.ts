// Cases the evaluation property always tries first, whatever the seed: the bad inputs issue 9 names
// and the ones the fuzzer found, so a regression in any of them is caught by every run.
import type { EvalCase } from "./fuzz-eval-cases";
import { TOKENIZER_MODEL } from "./fuzz-eval-fixtures";

const base: EvalCase = {
  kind: "eval", run: "evaluate", model: "llama-gqa-untied", recipe: false, config: [], tensors: [], tokenizer: [],
  input: { ids: [3, 14, 15, 92, 65, 35] }, against: [], options: { context: 4, workers: 1 },
};

const with_ = (edit: Partial<EvalCase>): EvalCase => ({ ...base, ...edit });
const set = (key: string, value: unknown) => ({ op: "set" as const, path: key.split("."), value: value as never });

export const EVAL_EXAMPLES: EvalCase[] = [
  // Issue 9's list: an unknown architecture, a missing needed key, ids beyond the vocabulary,
  // against models with another vocabulary, a text of fewer than two tokens, a model without a tokenizer.
  with_({ config: [set("model_type", "mamba")] }),
  with_({ config: [set("hidden_size", undefined)] }),
  with_({ input: { ids: [1, 2, 160] } }),
  with_({ against: ["llama-tied-headdim"] }),
  with_({ model: TOKENIZER_MODEL, input: { text: "" } }),
  with_({ input: { text: "We hold these truths" } }),
  // Heads that do not group, shapes that do not fit.
  with_({ config: [set("num_key_value_heads", 3)] }),
  with_({ tensors: [{ op: "reshape", tensor: "model.embed_tokens.weight", how: "rowFewer" }] }),
  with_({ model: "gpt2-prefixed", run: "logits", tensors: [{ op: "reshape", tensor: "transformer.h.0.attn.c_attn.weight", how: "transpose" }] }),
  // Everything valid, through each way of running, with a recipe and against models.
  with_({ against: ["llama-llama3", "qwen3-qknorm"], model: "mistral-sliding", input: { ids: [5, 6, 7, 8, 9, 10, 11, 12, 13] } }),
  with_({ recipe: true, model: "qwen2-sliding", options: { context: 5, workers: 2 } }),
  with_({ run: "generate", model: "gpt2-unprefixed", options: { maxNewTokens: 3 } }),
  // A callback option that is no function, on an otherwise valid generation (the warning callback is
  // called only when a recipe's tensor comes out NaN, so only the option check can catch it).
  with_({ run: "generate", model: "gpt2-unprefixed", options: { maxNewTokens: 3, onWarning: "print" } }),
  with_({ run: "generate", model: TOKENIZER_MODEL, input: { text: "We hold" }, options: { maxNewTokens: 3 } }),
  with_({ run: "cli-eval", model: TOKENIZER_MODEL, input: { text: "Four score and seven years ago" }, options: { context: "5" } }),
  with_({ run: "cli-generate", model: "qwen3-qknorm", input: { ids: [1, 2, 3] }, options: { maxNewTokens: "2" } }),
  // Found by `npm run fuzz` (the oracle was wrong both times): a value plain for one flag but not for the
  // flag it is given to (exit 2), and ids given to a model with a tokenizer (its text is the decoded ids).
  with_({ run: "cli-eval", model: "llama-tied-headdim", input: { ids: [74, 91, 37, 87, 123, 125, 100, 1] }, options: { context: "64MiB", maxTokens: "6", workers: "2" } }),
  with_({ run: "generate", model: TOKENIZER_MODEL, input: { ids: [170, 22, 286, 105, 65] }, options: { maxNewTokens: 3, temperature: 0, seed: 9 } }),
  // Found by `npm run fuzz` (stop 29): a Qwen config's layer_types that is no list (or lists sliding
  // layers while sliding is off) was only read when sliding was on, so evaluate() ran on it.
  with_({ model: "qwen3-qknorm", input: { ids: [0, 0] }, config: [set("layer_types", false)] }),
  with_({ model: "qwen3-qknorm", input: { ids: [0, 0] }, config: [set("use_sliding_window", false), set("layer_types", ["sliding_attention", "sliding_attention"])] }),
];
