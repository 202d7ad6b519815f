// Inputs that evaluation and generation MUST refuse with a typed error, decided independently of
// weightsoup (from decoder-forward.md section 2 and transformers' behaviour): a success on one of these
// is a failure however plausible its numbers. The rules are narrow on purpose: they name what
// transformers cannot load or run, and what weightsoup cannot compute correctly (a RoPE type it does
// not implement); where transformers merely warns, refusing and accepting are both allowed, and an
// accepted input is held to the reference's numbers instead (fuzz-eval-oracle.ts). Tensor tables that
// do not fit the config are judged by running the reference (fuzz-eval-reference.ts).
import type { EvalCase, EvalRun, IdValue, OptionValue } from "./fuzz-eval-cases";

type Json = Record<string, unknown>;

const FAMILIES = ["llama", "mistral", "qwen2", "qwen3", "gpt2"];

/** transformers' ACT2FN names (activations.py): any other name is a KeyError when the model is built. */
const ACTIVATIONS = new Set(["gelu", "gelu_10", "gelu_fast", "gelu_new", "gelu_python", "gelu_pytorch_tanh", "gelu_python_tanh", "gelu_accurate", "laplace",
  "leaky_relu", "linear", "mish", "quick_gelu", "relu", "relu2", "relu6", "sigmoid", "silu", "swish", "tanh", "prelu", "xielu"]);

/** RoPE types weightsoup computes; transformers' others (yarn, longrope, ...) must be refused, not run as default. */
const ROPE_TYPES = new Set(["default", "linear", "llama3", "dynamic"]);

const has = (o: Json, key: string) => Object.prototype.hasOwnProperty.call(o, key);
const isObject = (v: unknown): v is Json => v !== null && typeof v === "object" && !Array.isArray(v);
const isPositiveInt = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v > 0;
const show = (v: unknown) => (typeof v === "number" ? String(v) : JSON.stringify(v)?.slice(0, 60) ?? String(v));
/** Python truthiness of a JSON value (what `if config.x:` sees). */
const truthy = (v: unknown) => !(v === undefined || v === null || v === false || v === 0 || v === "" || (Array.isArray(v) && v.length === 0) || (isObject(v) && Object.keys(v).length === 0));

/** Why a parsed config.json must be refused, or undefined. */
export function configRefusal(config: unknown): string | undefined {
  if (!isObject(config)) return `config.json is ${show(config)}, not a JSON object`;
  const type = config.model_type;
  if (typeof type !== "string" || !FAMILIES.includes(type)) return `model_type ${show(type)} is not one of ${FAMILIES.join(", ")}`;
  return type === "gpt2" ? gpt2Refusal(config) : ropeFamilyRefusal(config, type);
}

/** Size keys the family builds layers from: present, they must be positive integers (null only where it means "derived"). */
function sizeRefusal(c: Json, keys: Record<string, boolean>): string | undefined {
  for (const [key, nullMeansDerived] of Object.entries(keys)) {
    if (!has(c, key)) continue;
    const v = c[key];
    if (v === null ? !nullMeansDerived : !isPositiveInt(v)) return `${key} is ${show(v)}, not a positive integer`;
  }
  return undefined;
}

function ropeFamilyRefusal(c: Json, family: string): string | undefined {
  const sizes = sizeRefusal(c, {
    vocab_size: false, hidden_size: false, intermediate_size: false, num_hidden_layers: false, num_attention_heads: false,
    num_key_value_heads: true, head_dim: family !== "qwen3", // qwen3's head_dim: null crashes transformers (no fallback)
  });
  if (sizes) return sizes;
  const defaults = { llama: { kv: undefined, heads: 32 }, mistral: { kv: 8, heads: 32 }, qwen2: { kv: 32, heads: 32 }, qwen3: { kv: 32, heads: 32 } }[family]!;
  const heads = (c.num_attention_heads as number | undefined) ?? defaults.heads;
  const kv = c.num_key_value_heads === null ? heads : (c.num_key_value_heads as number | undefined) ?? defaults.kv ?? heads;
  if (heads % kv !== 0) return `num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kv}`;
  const hidden = (c.hidden_size as number | undefined) ?? 4096;
  const explicitHeadDim = family === "qwen3" ? ((c.head_dim as number | undefined) ?? 128) : (c.head_dim as number | null | undefined) ?? undefined;
  if (explicitHeadDim === undefined && hidden % heads !== 0) return `head_dim is derived, but hidden_size ${hidden} is not a multiple of ${heads} heads`;
  const headDim = explicitHeadDim ?? hidden / heads;
  if (headDim % 2 !== 0) return `head_dim ${headDim} is odd: RoPE rotates pairs of dimensions`;

  const act = has(c, "hidden_act") ? c.hidden_act : null;
  if (act !== null && (typeof act !== "string" || !ACTIVATIONS.has(act))) return `hidden_act ${show(act)} is no activation transformers knows`;
  if (has(c, "rms_norm_eps") && c.rms_norm_eps !== null && typeof c.rms_norm_eps !== "number") return `rms_norm_eps is ${show(c.rms_norm_eps)}, not a number`;

  const rope = ropeRefusal(c, family);
  if (rope) return rope;

  // Sliding windows (decoder-forward.md 3.6): a window that is used must be a positive width.
  const layers = (c.num_hidden_layers as number | undefined) ?? 32;
  if (family === "mistral") {
    if (has(c, "sliding_window") && c.sliding_window !== null && !isPositiveInt(c.sliding_window)) return `sliding_window is ${show(c.sliding_window)}, not a positive width`;
  } else if (family === "qwen2" || family === "qwen3") {
    const on = truthy(c.use_sliding_window);
    if (on && has(c, "sliding_window") && c.sliding_window !== null && !isPositiveInt(c.sliding_window)) return `sliding_window is ${show(c.sliding_window)}, not a positive width`;
    const windowed = on && (!has(c, "sliding_window") || c.sliding_window !== null);
    if (has(c, "layer_types") && c.layer_types !== null) {
      // transformers validates layer_types whether or not sliding is on, and a sliding layer without a window crashes.
      const types = c.layer_types;
      if (!Array.isArray(types) || types.length !== layers) return `layer_types ${show(types)} does not list ${layers} layers`;
      const odd = types.find((t) => t !== "full_attention" && t !== "sliding_attention");
      if (odd !== undefined) return `layer_types holds ${show(odd)}`;
      if (!windowed && types.includes("sliding_attention")) return "layer_types has a sliding_attention layer but sliding is off";
    } else if (windowed && has(c, "max_window_layers") && c.max_window_layers !== null && typeof c.max_window_layers !== "number") {
      return `max_window_layers is ${show(c.max_window_layers)}, not a number`;
    }
  }
  return undefined;
}

/** decoder-forward.md 2.3: where the RoPE settings come from, and which of them cannot be run. */
function ropeRefusal(c: Json, family: string): string | undefined {
  const scaling = c.rope_scaling, parameters = c.rope_parameters;
  // transformers calls .get/.setdefault on them: a truthy non-dict crashes (a falsy one is ignored).
  if (truthy(scaling) && !isObject(scaling)) return `rope_scaling is ${show(scaling)}, not an object`;
  if (truthy(parameters) && !isObject(parameters)) return `rope_parameters is ${show(parameters)}, not an object`;
  const params: Json = isObject(scaling) && Object.keys(scaling).length ? scaling : isObject(parameters) ? parameters : {};
  if (Object.values(params).some(isObject)) return "per-layer-type RoPE parameters in a family that has one RoPE";
  const type = params.rope_type ?? params.type ?? "default";
  if (typeof type !== "string" || !ROPE_TYPES.has(type)) return `RoPE type ${show(type)} is not default, linear, llama3 or dynamic`;
  const theta = params.rope_theta ?? c.rope_theta ?? 10000;
  if (typeof theta !== "number" || !(theta > 0)) return `rope_theta ${show(theta)} is not a positive number`;
  const partial = params.partial_rotary_factor ?? c.partial_rotary_factor ?? 1;
  if (partial !== 1) return `partial_rotary_factor ${show(partial)}: only whole-head rotation is supported`;
  const factor = params.factor;
  const positive = (v: unknown) => typeof v === "number" && v > 0;
  if ((type === "linear" || type === "dynamic") && !positive(factor)) return `${type} RoPE needs a positive factor, found ${show(factor)}`;
  if (type === "llama3") {
    const low = params.low_freq_factor, high = params.high_freq_factor;
    if (!positive(factor) || typeof low !== "number" || typeof high !== "number") return `llama3 RoPE needs factor, low_freq_factor and high_freq_factor (found ${show(factor)}, ${show(low)}, ${show(high)})`;
    if (!(high > low)) return `llama3 RoPE needs high_freq_factor > low_freq_factor (found ${high} and ${low}): the smoothing divides by their difference`;
    const top = c.original_max_position_embeddings ?? null;
    const original = top !== null ? top : params.original_max_position_embeddings ?? c.max_position_embeddings ?? (family === "llama" ? 2048 : undefined);
    if (original !== undefined && !positive(original)) return `llama3 RoPE's original_max_position_embeddings is ${show(original)}`;
  }
  return undefined;
}

function gpt2Refusal(c: Json): string | undefined {
  const sizes = sizeRefusal(c, { vocab_size: false, n_embd: false, n_head: false, n_layer: false, n_positions: false, n_inner: true });
  if (sizes) return sizes;
  // attribute_map aliases: when given they win, so one that disagrees with the key it aliases contradicts the file.
  for (const [key, alias] of [["n_embd", "hidden_size"], ["n_head", "num_attention_heads"], ["n_layer", "num_hidden_layers"], ["n_positions", "max_position_embeddings"]] as const) {
    if (!has(c, alias) || c[alias] === null) continue;
    if (!isPositiveInt(c[alias])) return `${alias} (an alias of ${key}) is ${show(c[alias])}, not a positive integer`;
    if (has(c, key) && c[key] !== c[alias]) return `${alias} ${show(c[alias])} contradicts ${key} ${show(c[key])}`;
  }
  const hidden = (c.hidden_size ?? c.n_embd ?? 768) as number, heads = (c.num_attention_heads ?? c.n_head ?? 12) as number;
  if (hidden % heads !== 0) return `n_embd ${hidden} is not a multiple of n_head ${heads}`;
  const act = has(c, "activation_function") ? c.activation_function : null;
  if (act !== null && (typeof act !== "string" || !ACTIVATIONS.has(act))) return `activation_function ${show(act)} is no activation transformers knows`;
  if (has(c, "layer_norm_epsilon") && c.layer_norm_epsilon !== null && typeof c.layer_norm_epsilon !== "number") return `layer_norm_epsilon is ${show(c.layer_norm_epsilon)}, not a number`;
  if (truthy(c.add_cross_attention)) return "add_cross_attention: not a decoder-only language model";
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// Options and flags

/** [option, minimum] of the integer options each run reads (no maximum: huge values may go either way). */
const INTEGER_OPTIONS: Record<"evaluate" | "logits" | "generate", [string, number][]> = {
  evaluate: [["context", 2], ["maxTokens", 2], ["workers", 1], ["memoryBudget", 1], ["seed", 0], ["chunkBytes", 1]],
  logits: [["workers", 1], ["memoryBudget", 1], ["seed", 0]],
  generate: [["maxNewTokens", 1], ["memoryBudget", 1], ["seed", 0]],
};

/**
 * Why the options must be refused: a number that is NaN, infinite, fractional or below the option's
 * minimum (a context or maxTokens under 2 leaves nothing to predict), a seed of 2³² or more, another type,
 * a negative or non-finite temperature. null counts as "not given", as `??` defaults read it.
 */
export function optionRefusal(run: "evaluate" | "logits" | "generate", options: Record<string, OptionValue>): string | undefined {
  for (const [key, min] of INTEGER_OPTIONS[run]) {
    const v = options[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || (key === "seed" && v >= 2 ** 32)) return `option ${key} is ${show(v)}`;
  }
  if (run === "generate") {
    const t = options.temperature;
    if (t !== undefined && t !== null && (typeof t !== "number" || !Number.isFinite(t) || t < 0)) return `option temperature is ${show(t)}`;
    // The callbacks: any value but undefined must be a function (the cases carry none).
    for (const key of ["onToken", "onWarning"]) if (options[key] !== undefined) return `option ${key} is ${show(options[key])}, not a function`;
  }
  return undefined;
}

/** Flag values no reading of the flag can accept: empty, not a number, negative, fractional counts, below the minimum. */
export function flagRefusal(run: "cli-eval" | "cli-generate", flags: Record<string, OptionValue>): string | undefined {
  const hopeless = new Set(["", "-1", "NaN", "Infinity", "x", "__proto__"]);
  for (const [key, value] of Object.entries(flags)) {
    if (typeof value !== "string") continue;
    if (hopeless.has(value)) return `--${key} ${JSON.stringify(value)}`;
    if (key === "temperature") continue;
    if (value === "0.5" || (value === "64MiB" && key !== "memoryBudget")) return `--${key} ${JSON.stringify(value)}`;
    const min = { context: 2, maxTokens: 2, workers: 1, memoryBudget: 1, seed: 0, maxNewTokens: 1 }[key] ?? 0;
    if (/^\d+$/.test(value) && Number(value) < min) return `--${key} ${value} is below ${min}`;
  }
  void run;
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// Token ids

export interface IdsContext {
  /** Vocabulary of every model the ids go through (the subject, and against models). */
  vocabs: number[];
  /** The longest sequence a model takes (GPT-2's n_positions), if any has a limit. */
  positions: number | undefined;
  /** Tokens in the longest forward pass: a window (evaluate), the prompt and the new tokens (generate). */
  longest: number;
  /** Fewest ids the run needs (2 for evaluate: something must be predicted; 1 otherwise). */
  minimum: number;
}

/** Why these ids (as the run will see them: tokenized and truncated) must be refused. */
export function idsRefusal(ids: readonly IdValue[], ctx: IdsContext): string | undefined {
  if (ids.length < ctx.minimum) return `${ids.length} token ids, at least ${ctx.minimum} needed`;
  const bad = ids.find((id) => typeof id !== "number" || !Number.isSafeInteger(id) || id < 0);
  if (bad !== undefined) return `token id ${show(bad)} is not a non-negative integer`;
  const limit = Math.min(...ctx.vocabs);
  const beyond = (ids as number[]).find((id) => id >= limit);
  if (beyond !== undefined) return `token id ${beyond} is outside a vocabulary of ${limit}`;
  if (ctx.positions !== undefined && ctx.longest > ctx.positions) return `a sequence of ${ctx.longest} tokens is longer than the model's ${ctx.positions} positions`;
  return undefined;
}

/** The library-call view of a run (CLI runs read the same inputs). */
export function libraryRun(run: EvalRun): "evaluate" | "logits" | "generate" {
  return run === "cli-eval" ? "evaluate" : run === "cli-generate" ? "generate" : run;
}

/** Whether the case gives exactly one of text and ids (the input the calls require). */
export function inputShapeRefusal(c: EvalCase): string | undefined {
  if ("none" in c.input) return "neither text nor ids";
  if ("ids" in c.input && "text" in c.input && c.run !== "logits") return "both text and ids";
  return undefined;
}
