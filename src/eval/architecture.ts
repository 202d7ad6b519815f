/**
 * @file What a decoder checkpoint computes, read from its config.json and checked against its tensors:
 * the family's shapes, norms, activation, rotary embedding and attention pattern, and where each
 * weight is. Defaults for keys a config leaves out are the family's own (transformers 5's config
 * classes; ../shared/reference/decoder-forward.md, section 2): they are not always the obvious ones
 * (Qwen3's head_dim is 128, Mistral's sliding window 4096, Qwen's KV heads 32).
 */
import { describeValue, ModelError, type ErrorCode } from "../errors";
import { ropeFrequencies, type RopeSpec } from "./rope";

export const SUPPORTED_FAMILIES = ["llama", "mistral", "qwen2", "qwen3", "gpt2"] as const;
export type Family = (typeof SUPPORTED_FAMILIES)[number];

/** The tensors one layer reads, by role. Absent optional roles are undefined. */
export interface LayerNames {
  norm1: string;
  norm1Bias?: string;
  /** Separate projections (llama family), or one fused q|k|v projection (gpt2's c_attn). */
  q?: string;
  k?: string;
  v?: string;
  qkv?: string;
  qBias?: string;
  kBias?: string;
  vBias?: string;
  qkvBias?: string;
  qNorm?: string;
  kNorm?: string;
  o: string;
  oBias?: string;
  norm2: string;
  norm2Bias?: string;
  gate?: string;
  gateBias?: string;
  up: string;
  upBias?: string;
  down: string;
  downBias?: string;
}

export interface DecoderSpec {
  family: Family;
  /** For messages: the config file. */
  file: string;
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  norm: "rms" | "layer";
  eps: number;
  /** Gated SiLU MLP (llama family), or GELU-tanh between two projections (gpt2). */
  mlp: "gated-silu" | "gelu-tanh";
  /** Weights stored [in, out] (GPT-2's Conv1D) rather than nn.Linear's [out, in]. */
  conv1d: boolean;
  rope: RopeSpec | undefined;
  /** Learned positions' table size (gpt2): the longest sequence. */
  maxPositions: number | undefined;
  /** Sliding window of each layer, 0 for full causal attention. */
  windows: number[];
  /** Score scale of each layer (1/√D, or GPT-2's variants). */
  scales: number[];
  embed: string;
  positions: string | undefined;
  finalNorm: string;
  finalNormBias: string | undefined;
  /** The output projection: lm_head, or the embedding when tied. */
  lmHead: string;
  layerNames: LayerNames[];
}

/** The tensors a checkpoint has, as far as the architecture needs to know them. */
export type TensorShapes = ReadonlyMap<string, { shape: readonly number[]; dtype: string }>;

function fail(code: ErrorCode, file: string, what: string, details: Record<string, unknown> = {}): ModelError {
  return new ModelError(code, `${file}: ${what}`, { file, ...details });
}

/** Reads config.json (as parsed) and the tensor table into a DecoderSpec, or throws a typed error. */
export function decoderSpec(config: Record<string, unknown> | null, tensors: TensorShapes, location: string): DecoderSpec {
  const file = `${location}/config.json`;
  if (!config) throw fail("E_CONFIG", file, "is missing; evaluating a model needs its config.json");
  const textConfig = config.model_type === "gemma3" || config.text_config !== undefined ? undefined : config;
  const type = config.model_type;
  if (!textConfig || typeof type !== "string" || !(SUPPORTED_FAMILIES as readonly string[]).includes(type)) {
    throw fail("E_ARCHITECTURE_UNSUPPORTED", file, `model_type ${describeValue(type)} cannot be evaluated; supported: ${SUPPORTED_FAMILIES.join(", ")}`, { key: "model_type" });
  }
  const spec = type === "gpt2" ? gpt2(config, tensors, file) : llamaFamily(type as Exclude<Family, "gpt2">, config, tensors, file);
  checkShapes(spec, tensors);
  return spec;
}

// ---------------------------------------------------------------------------------------------------
// Reading keys

/** A positive integer key; `fallback` when absent (undefined: the key is needed). */
function int(config: Record<string, unknown>, key: string, file: string, fallback?: number): number {
  const v = Object.hasOwn(config, key) ? config[key] : undefined;
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw fail("E_CONFIG", file, `${key} is missing; it is needed to evaluate the model`, { key });
  }
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) throw fail("E_CONFIG", file, `${key} must be a positive integer, found ${describeValue(v)}`, { key });
  return v;
}

function num(config: Record<string, unknown>, key: string, file: string, fallback: number): number {
  const v = Object.hasOwn(config, key) ? config[key] : undefined;
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v)) throw fail("E_CONFIG", file, `${key} must be a number, found ${describeValue(v)}`, { key });
  return v;
}

function bool(config: Record<string, unknown>, key: string, file: string, fallback: boolean): boolean {
  const v = Object.hasOwn(config, key) ? config[key] : undefined;
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "boolean") throw fail("E_CONFIG", file, `${key} must be true or false, found ${describeValue(v)}`, { key });
  return v;
}

// ---------------------------------------------------------------------------------------------------
// Llama, Mistral, Qwen2, Qwen3

/** Class defaults that differ between the llama-family configs (decoder-forward.md 2.2). */
const KV_HEADS_DEFAULT: Record<Exclude<Family, "gpt2">, number | "heads"> = { llama: "heads", mistral: 8, qwen2: 32, qwen3: 32 };

/**
 * num_key_value_heads where config.json leaves it out, as the family's transformers class has it (Mistral
 * 8, Qwen2 and Qwen3 32, Llama as many as query heads); an explicit null is as many as query heads.
 */
export function defaultKvHeads(family: Exclude<Family, "gpt2">, config: Record<string, unknown>, heads: number): number {
  const kvDefault = KV_HEADS_DEFAULT[family];
  return config.num_key_value_heads === null || kvDefault === "heads" ? heads : kvDefault;
}

function llamaFamily(family: Exclude<Family, "gpt2">, config: Record<string, unknown>, tensors: TensorShapes, file: string): DecoderSpec {
  const hidden = int(config, "hidden_size", file);
  const heads = int(config, "num_attention_heads", file);
  const layers = int(config, "num_hidden_layers", file);
  const vocab = int(config, "vocab_size", file);
  const intermediate = int(config, "intermediate_size", file);
  const kvHeads = int(config, "num_key_value_heads", file, defaultKvHeads(family, config, heads));
  if (heads % kvHeads !== 0) throw fail("E_CONFIG", file, `num_attention_heads (${heads}) must be a multiple of num_key_value_heads (${kvHeads})`, { key: "num_key_value_heads" });
  // Qwen3's head_dim has no derived default: null there crashes transformers (decoder-forward.md 2).
  if (family === "qwen3" && config.head_dim === null) throw fail("E_CONFIG", file, "head_dim: null is not loadable for qwen3 (transformers has no default to derive); give the number or leave the key out (128)", { key: "head_dim" });
  const headDim = family === "qwen3" ? int(config, "head_dim", file, 128) : config.head_dim === null ? hidden / heads : int(config, "head_dim", file, hidden / heads);
  if (!Number.isInteger(headDim)) throw fail("E_CONFIG", file, `hidden_size (${hidden}) is not a multiple of num_attention_heads (${heads}); give head_dim`, { key: "head_dim" });
  const act = config.hidden_act ?? "silu";
  if (act !== "silu" && act !== "swish") throw fail("E_CONFIG", file, `hidden_act ${describeValue(act)} is not supported (silu)`, { key: "hidden_act" });
  const eps = num(config, "rms_norm_eps", file, 1e-6);

  // Sliding windows (decoder-forward.md 3.6).
  let windows = new Array<number>(layers).fill(0);
  if (family === "mistral") {
    const w = config.sliding_window === undefined ? 4096 : config.sliding_window === null ? 0 : int(config, "sliding_window", file);
    windows = windows.fill(w);
  } else if (family === "qwen2" || family === "qwen3") {
    const windowed = bool(config, "use_sliding_window", file, false) && config.sliding_window !== null;
    // transformers validates layer_types whether or not sliding is on, and a sliding layer with no window
    // (sliding off) fails in its attention mask.
    const types = config.layer_types;
    if (types !== undefined && types !== null) {
      if (!Array.isArray(types) || types.length !== layers) {
        throw fail("E_CONFIG", file, `layer_types must list one entry per layer (${layers}), found ${describeValue(types)}`, { key: "layer_types" });
      }
      const odd = types.find((t) => t !== "full_attention" && t !== "sliding_attention");
      if (odd !== undefined) throw fail("E_CONFIG", file, `layer_types holds ${describeValue(odd)} (full_attention or sliding_attention)`, { key: "layer_types" });
      if (!windowed && types.includes("sliding_attention")) {
        throw fail("E_CONFIG", file, "layer_types has a sliding_attention layer, but sliding windows are off (use_sliding_window false or sliding_window null)", { key: "layer_types" });
      }
    }
    if (windowed) {
      const w = int(config, "sliding_window", file, 4096);
      if (Array.isArray(types)) {
        windows = types.map((t) => (t === "sliding_attention" ? w : 0));
      } else {
        // 0 is transformers' "every layer slides" (i >= 0); int() takes positive counts only.
        const from = config.max_window_layers === 0 ? 0 : int(config, "max_window_layers", file, 28);
        windows = windows.map((_, l) => (l >= from ? w : 0));
      }
    }
  }

  const prefix = tensors.has("model.embed_tokens.weight") || !tensors.has("embed_tokens.weight") ? "model." : "";
  const attentionBias = family === "llama" || family === "qwen3" ? bool(config, "attention_bias", file, false) : false;
  const qkvBias = family === "qwen2" || attentionBias;
  const mlpBias = family === "llama" ? bool(config, "mlp_bias", file, false) : false;
  const layerNames: LayerNames[] = [];
  for (let l = 0; l < layers; l++) {
    const p = `${prefix}layers.${l}.`;
    const names: LayerNames = {
      norm1: `${p}input_layernorm.weight`, norm2: `${p}post_attention_layernorm.weight`,
      q: `${p}self_attn.q_proj.weight`, k: `${p}self_attn.k_proj.weight`, v: `${p}self_attn.v_proj.weight`, o: `${p}self_attn.o_proj.weight`,
      gate: `${p}mlp.gate_proj.weight`, up: `${p}mlp.up_proj.weight`, down: `${p}mlp.down_proj.weight`,
    };
    if (qkvBias) Object.assign(names, { qBias: `${p}self_attn.q_proj.bias`, kBias: `${p}self_attn.k_proj.bias`, vBias: `${p}self_attn.v_proj.bias` });
    if (attentionBias) names.oBias = `${p}self_attn.o_proj.bias`;
    if (mlpBias) Object.assign(names, { gateBias: `${p}mlp.gate_proj.bias`, upBias: `${p}mlp.up_proj.bias`, downBias: `${p}mlp.down_proj.bias` });
    if (family === "qwen3") Object.assign(names, { qNorm: `${p}self_attn.q_norm.weight`, kNorm: `${p}self_attn.k_norm.weight` });
    layerNames.push(names);
  }
  const { embed, lmHead } = tiedNames(`${prefix}embed_tokens.weight`, "lm_head.weight", bool(config, "tie_word_embeddings", file, false), tensors, file);
  return {
    family, file, vocab, hidden, layers, heads, kvHeads, headDim, intermediate, norm: "rms", eps, mlp: "gated-silu", conv1d: false,
    rope: ropeFrequencies(config, headDim, file), maxPositions: undefined, windows,
    scales: new Array<number>(layers).fill(1 / Math.sqrt(headDim)),
    embed, positions: undefined, finalNorm: `${prefix}norm.weight`, finalNormBias: undefined, lmHead, layerNames,
  };
}

/**
 * Tied embeddings as transformers resolves them (decoder-forward.md 9): tied and lm_head absent means
 * the embedding; tied and the embedding absent means lm_head for both; untied without lm_head would be
 * a randomly initialised head in transformers, so it is refused.
 */
function tiedNames(embed: string, head: string, tie: boolean, tensors: TensorShapes, file: string): { embed: string; lmHead: string } {
  const hasEmbed = tensors.has(embed), hasHead = tensors.has(head);
  if (tie) {
    if (!hasHead) return { embed, lmHead: embed };
    if (!hasEmbed) return { embed: head, lmHead: head };
    return { embed, lmHead: head };
  }
  if (!hasHead) {
    throw fail("E_TENSOR_MISSING", file, `tie_word_embeddings is false but the weights have no ${head}: transformers would use a randomly initialised output layer, so the model cannot be evaluated`, { tensor: head, key: "tie_word_embeddings" });
  }
  return { embed, lmHead: head };
}

// ---------------------------------------------------------------------------------------------------
// GPT-2

/**
 * A GPT-2 key or its alias (GPT2Config.attribute_map: hidden_size, num_attention_heads,
 * num_hidden_layers, max_position_embeddings). transformers sets the alias after the key, so the alias
 * wins when given; one that contradicts the key is refused rather than guessed at.
 */
function gpt2Int(config: Record<string, unknown>, key: string, alias: string, file: string, fallback?: number): number {
  const given = (k: string) => Object.hasOwn(config, k) && config[k] !== null && config[k] !== undefined;
  if (!given(alias)) return int(config, key, file, fallback);
  const value = int(config, alias, file);
  if (given(key) && int(config, key, file) !== value) {
    throw fail("E_CONFIG", file, `${alias} (${value}) contradicts ${key} (${describeValue(config[key])}); transformers would build the model with ${alias}`, { key: alias });
  }
  return value;
}

function gpt2(config: Record<string, unknown>, tensors: TensorShapes, file: string): DecoderSpec {
  const hidden = gpt2Int(config, "n_embd", "hidden_size", file);
  const heads = gpt2Int(config, "n_head", "num_attention_heads", file);
  const layers = gpt2Int(config, "n_layer", "num_hidden_layers", file);
  const vocab = int(config, "vocab_size", file);
  const maxPositions = gpt2Int(config, "n_positions", "max_position_embeddings", file, 1024);
  const intermediate = config.n_inner === null ? 4 * hidden : int(config, "n_inner", file, 4 * hidden);
  if (hidden % heads !== 0) throw fail("E_CONFIG", file, `n_embd (${hidden}) must be a multiple of n_head (${heads})`, { key: "n_head" });
  const act = config.activation_function ?? "gelu_new";
  if (act !== "gelu_new" && act !== "gelu_pytorch_tanh" && act !== "gelu_python_tanh" && act !== "gelu_fast") {
    throw fail("E_CONFIG", file, `activation_function ${describeValue(act)} is not supported (gelu_new, gelu_pytorch_tanh)`, { key: "activation_function" });
  }
  if (bool(config, "add_cross_attention", file, false)) throw fail("E_ARCHITECTURE_UNSUPPORTED", file, "add_cross_attention: a GPT-2 with cross-attention is not a decoder-only language model", { key: "add_cross_attention" });
  const headDim = hidden / heads;
  const scaleWeights = bool(config, "scale_attn_weights", file, true);
  const byLayer = bool(config, "scale_attn_by_inverse_layer_idx", file, false);
  const prefix = tensors.has("transformer.wte.weight") || tensors.has("transformer.h.0.ln_1.weight") ? "transformer." : "";
  const layerNames: LayerNames[] = [];
  for (let l = 0; l < layers; l++) {
    const p = `${prefix}h.${l}.`;
    layerNames.push({
      norm1: `${p}ln_1.weight`, norm1Bias: `${p}ln_1.bias`, norm2: `${p}ln_2.weight`, norm2Bias: `${p}ln_2.bias`,
      qkv: `${p}attn.c_attn.weight`, qkvBias: `${p}attn.c_attn.bias`, o: `${p}attn.c_proj.weight`, oBias: `${p}attn.c_proj.bias`,
      up: `${p}mlp.c_fc.weight`, upBias: `${p}mlp.c_fc.bias`, down: `${p}mlp.c_proj.weight`, downBias: `${p}mlp.c_proj.bias`,
    });
  }
  const { embed, lmHead } = tiedNames(`${prefix}wte.weight`, "lm_head.weight", bool(config, "tie_word_embeddings", file, true), tensors, file);
  return {
    family: "gpt2", file, vocab, hidden, layers, heads, kvHeads: heads, headDim, intermediate, norm: "layer",
    eps: num(config, "layer_norm_epsilon", file, 1e-5), mlp: "gelu-tanh", conv1d: true, rope: undefined, maxPositions,
    windows: new Array<number>(layers).fill(0),
    scales: Array.from({ length: layers }, (_, l) => (scaleWeights ? 1 / Math.sqrt(headDim) : 1) / (byLayer ? l + 1 : 1)),
    embed, positions: `${prefix}wpe.weight`, finalNorm: `${prefix}ln_f.weight`, finalNormBias: `${prefix}ln_f.bias`, lmHead, layerNames,
  };
}

// ---------------------------------------------------------------------------------------------------
// Shapes

/** Every tensor the spec reads exists, with the shape the config implies, in a float dtype. */
function checkShapes(spec: DecoderSpec, tensors: TensorShapes): void {
  const { hidden: H, vocab: V, heads, kvHeads, headDim: D, intermediate: I } = spec;
  const expect = (name: string | undefined, shape: number[]) => {
    if (name === undefined) return;
    const t = tensors.get(name);
    if (!t) throw fail("E_TENSOR_MISSING", spec.file.replace(/\/config\.json$/, ""), `tensor "${name}" is missing; the ${spec.family} forward pass needs it`, { tensor: name });
    if (t.dtype !== "F32" && t.dtype !== "BF16" && t.dtype !== "F16") {
      throw fail("E_DTYPE_UNSUPPORTED", spec.file.replace(/\/config\.json$/, ""), `tensor "${name}" is ${t.dtype}; evaluation reads F32, BF16 and F16 weights`, { tensor: name });
    }
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw fail("E_SHAPE_MISMATCH", spec.file, `tensor "${name}" has shape [${t.shape.join(", ")}] but the config implies [${shape.join(", ")}]`, { tensor: name });
    }
  };
  // Embedding rows may exceed vocab_size in no family here; lm_head is [V, H] in both layouts.
  expect(spec.embed, [V, H]);
  expect(spec.lmHead, [V, H]);
  expect(spec.positions, [spec.maxPositions ?? 0, H]);
  expect(spec.finalNorm, [H]);
  expect(spec.finalNormBias, [H]);
  const linear = (name: string | undefined, out: number, inp: number) => expect(name, spec.conv1d ? [inp, out] : [out, inp]);
  for (const n of spec.layerNames) {
    expect(n.norm1, [H]);
    expect(n.norm1Bias, [H]);
    expect(n.norm2, [H]);
    expect(n.norm2Bias, [H]);
    linear(n.q, heads * D, H);
    linear(n.k, kvHeads * D, H);
    linear(n.v, kvHeads * D, H);
    linear(n.qkv, 3 * H, H);
    expect(n.qBias, [heads * D]);
    expect(n.kBias, [kvHeads * D]);
    expect(n.vBias, [kvHeads * D]);
    expect(n.qkvBias, [3 * H]);
    expect(n.qNorm, [D]);
    expect(n.kNorm, [D]);
    linear(n.o, H, heads * D);
    expect(n.oBias, [H]);
    linear(n.gate, I, H);
    expect(n.gateBias, [I]);
    linear(n.up, I, H);
    expect(n.upBias, [I]);
    linear(n.down, H, I);
    expect(n.downBias, [H]);
  }
}

/** Every tensor name a spec reads (for planning reads and merges). */
export function specTensorNames(spec: DecoderSpec): string[] {
  const names = [spec.embed, spec.positions, spec.finalNorm, spec.finalNormBias, spec.lmHead, ...spec.layerNames.flatMap((n) => Object.values(n))];
  return [...new Set(names.filter((n): n is string => n !== undefined))];
}

/**
 * The most positions a model is computed at here, and why, where the reason is weightsoup's rather than
 * the model's: GPT-2's learned positions end at n_positions; dynamic RoPE scaling changes the
 * frequencies past max_position_embeddings, which is not computed here (transformers would go on).
 */
export function positionLimit(spec: DecoderSpec): { limit: number; why?: string } | undefined {
  if (spec.maxPositions !== undefined) return { limit: spec.maxPositions };
  const dynamic = spec.rope?.maxPositions;
  return dynamic === undefined ? undefined : { limit: dynamic, why: `its rope_scaling is "dynamic", which rescales the frequencies past max_position_embeddings, ${dynamic}; weightsoup computes them up to it only` };
}

/**
 * The first way two decoders compute differently, or undefined when they compute alike (tensor names
 * and the config's file aside): a point between them (a loss path's, a soup's) runs with one config,
 * so comparing points between models whose configs differ measures something else than the path.
 */
export function computationDifference(a: DecoderSpec, b: DecoderSpec): { what: string; a: unknown; b: unknown } | undefined {
  const aspects: [string, (s: DecoderSpec) => unknown][] = [
    ["family (model_type)", (s) => s.family], ["vocab_size", (s) => s.vocab], ["hidden size", (s) => s.hidden], ["layers", (s) => s.layers],
    ["attention heads", (s) => s.heads], ["key/value heads", (s) => s.kvHeads], ["head_dim", (s) => s.headDim], ["intermediate size", (s) => s.intermediate],
    ["norm", (s) => s.norm], ["norm epsilon (rms_norm_eps, layer_norm_epsilon)", (s) => s.eps], ["MLP activation", (s) => s.mlp], ["weight layout (Conv1D)", (s) => s.conv1d],
    ["rotary embedding (rope_theta, rope_scaling)", (s) => s.rope ?? null], ["max positions", (s) => s.maxPositions ?? null],
    ["sliding windows (sliding_window, layer_types)", (s) => s.windows], ["attention score scales", (s) => s.scales],
    ["tied output projection (tie_word_embeddings)", (s) => s.lmHead === s.embed],
  ];
  for (const [what, of] of aspects) {
    if (JSON.stringify(of(a)) !== JSON.stringify(of(b))) return firstDifference(what, of(a), of(b));
  }
  return undefined;
}

/**
 * Where two differing settings differ: down through mappings both sides hold, to the first part that
 * differs ("rotary embedding (rope_theta, rope_scaling), its theta: 10000 against 5000"), so a message
 * shows values, not the keys of two mappings that look alike.
 */
function firstDifference(what: string, a: unknown, b: unknown): { what: string; a: unknown; b: unknown } {
  const mapping = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
  if (!mapping(a) || !mapping(b)) return { what, a, b };
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (JSON.stringify(a[key]) !== JSON.stringify(b[key])) return firstDifference(`${what}, its ${key}`, a[key], b[key]);
  }
  return { what, a, b };
}
