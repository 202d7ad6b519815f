// An independent float64 forward pass of the decoder-only families weightsoup evaluates (llama, mistral,
// qwen2, qwen3, gpt2), and the evaluation scores of issue 9, for tests to compare the engine with.
//
// Written from shared/reference/decoder-forward.md and the issue text only; nothing here reads src/.
// Everything is float64 except RoPE's cos/sin tables, which follow transformers' float32 recipe
// operation by operation (section 3.4): that rounding is part of what transformers computes, and
// doing it "better" in float64 moves logits by far more than float32 noise at long positions.
// Inputs are refused rather than guessed at: an unknown family, RoPE type or activation, a missing or
// mis-shaped tensor, an untied model without lm_head, or a tensor transformers would silently ignore.

/** A tensor as the forward pass reads it: row-major float32 values (BF16 files decoded exactly). */
export interface ReferenceTensor {
  shape: number[];
  values: Float32Array;
}

export type ReferenceTensors = ReadonlyMap<string, ReferenceTensor>;

export type DecoderFamily = "llama" | "mistral" | "qwen2" | "qwen3" | "gpt2";

export const DECODER_FAMILIES: readonly DecoderFamily[] = ["llama", "mistral", "qwen2", "qwen3", "gpt2"];

export type ReferenceActivation = "silu" | "gelu_tanh" | "gelu_fast" | "gelu_erf" | "quick_gelu" | "relu";

/** RoPE settings after resolving both config layouts (decoder-forward.md 2.3). */
export interface ReferenceRope {
  type: "default" | "linear" | "llama3";
  theta: number;
  /** `factor` s of linear and llama3; 1 for default. */
  factor: number;
  /** llama3 only: α, β and L₀. */
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPositions?: number;
}

/** A config.json reduced to what the forward pass uses, class defaults filled in. */
export interface ResolvedDecoderConfig {
  family: DecoderFamily;
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  activation: ReferenceActivation;
  /** rms_norm_eps, or gpt2's layer_norm_epsilon. */
  eps: number;
  tie: boolean;
  /** null for gpt2 (learned positions). */
  rope: ReferenceRope | null;
  /** Per layer: the sliding window W (a query sees itself and W − 1 earlier tokens), or null. */
  slidingWindow: (number | null)[];
  qkvBias: boolean;
  oBias: boolean;
  mlpBias: boolean;
  qkNorm: boolean;
  /** gpt2's n_positions (a hard limit on T); null for RoPE families. */
  maxPositions: number | null;
  scaleAttnWeights: boolean;
  scaleAttnByInverseLayerIdx: boolean;
}

const fr = Math.fround;

function fail(message: string): never {
  throw new Error(`decoder reference: ${message}`);
}

// ---------------------------------------------------------------------------------------------
// config.json

type Json = Record<string, unknown>;

function has(o: Json, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, key);
}

function isObject(v: unknown): v is Json {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** absent -> `absent`; null -> `nullValue` (or refused when that is undefined); else a positive integer. */
function positiveInt(o: Json, key: string, absent: number | undefined, nullValue?: number): number {
  if (!has(o, key)) {
    if (absent === undefined) fail(`config.json has no ${key}`);
    return absent;
  }
  const v = o[key];
  if (v === null) {
    if (nullValue === undefined) fail(`config.json ${key} is null and has no derived default here`);
    return nullValue;
  }
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) fail(`config.json ${key} must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

function finiteNumber(o: Json, key: string, absent: number | undefined, where = "config.json"): number {
  if (!has(o, key) || o[key] === null) {
    if (absent === undefined) fail(`${where} has no ${key}`);
    return absent;
  }
  const v = o[key];
  if (typeof v !== "number" || !Number.isFinite(v)) fail(`${where} ${key} must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function bool(o: Json, key: string, absent: boolean): boolean {
  if (!has(o, key) || o[key] === null) return absent;
  const v = o[key];
  if (typeof v !== "boolean") fail(`config.json ${key} must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

/** The activation names of decoder-forward.md 3.3, by the function they compute. */
const ACTIVATIONS = new Map<string, ReferenceActivation>([
  ["silu", "silu"],
  ["swish", "silu"],
  ["gelu_new", "gelu_tanh"],
  ["gelu_pytorch_tanh", "gelu_tanh"],
  ["gelu_python_tanh", "gelu_tanh"],
  ["gelu_fast", "gelu_fast"],
  ["gelu", "gelu_erf"],
  ["quick_gelu", "quick_gelu"],
  ["relu", "relu"],
]);

function activationOf(o: Json, key: string, absent: string): ReferenceActivation {
  const name = has(o, key) && o[key] !== null ? o[key] : absent;
  const act = typeof name === "string" ? ACTIVATIONS.get(name) : undefined;
  if (act === undefined) fail(`config.json ${key} ${JSON.stringify(name)} is not a supported activation`);
  return act;
}

/** decoder-forward.md 2.3: rope_scaling (non-empty) beats rope_parameters; legacy `type`; θ fallbacks. */
function resolveRope(c: Json, maxPositions: number): ReferenceRope {
  let params: Json = {};
  const scaling = has(c, "rope_scaling") ? c.rope_scaling : null;
  const v5 = has(c, "rope_parameters") ? c.rope_parameters : null;
  if (scaling !== null && !isObject(scaling)) fail("config.json rope_scaling must be an object or null");
  if (v5 !== null && !isObject(v5)) fail("config.json rope_parameters must be an object or null");
  if (scaling !== null && Object.keys(scaling).length > 0) params = scaling;
  else if (v5 !== null) params = v5;
  for (const layerType of ["full_attention", "sliding_attention"]) {
    if (isObject(params[layerType])) fail("per-layer-type rope_parameters are not supported for this family");
  }
  const where = params === scaling ? "rope_scaling" : "rope_parameters";
  let type: unknown = "default";
  if (has(params, "rope_type") && params.rope_type !== null) type = params.rope_type;
  else if (has(params, "type") && params.type !== null) type = params.type;
  const theta = has(params, "rope_theta") && params.rope_theta !== null ? finiteNumber(params, "rope_theta", undefined, where) : finiteNumber(c, "rope_theta", 10000);
  if (!(theta > 0)) fail(`rope_theta must be positive, got ${theta}`);
  const prf = has(params, "partial_rotary_factor") && params.partial_rotary_factor !== null
    ? finiteNumber(params, "partial_rotary_factor", undefined, where)
    : finiteNumber(c, "partial_rotary_factor", 1);
  if (prf !== 1) fail(`partial_rotary_factor ${prf} is not supported (only 1)`);
  if (type === "default") return { type, theta, factor: 1 };
  if (type === "linear") {
    const factor = finiteNumber(params, "factor", undefined, where);
    if (!(factor > 0)) fail(`${where} factor must be positive`);
    return { type, theta, factor };
  }
  if (type === "llama3") {
    const factor = finiteNumber(params, "factor", undefined, where);
    const lowFreqFactor = finiteNumber(params, "low_freq_factor", undefined, where);
    const highFreqFactor = finiteNumber(params, "high_freq_factor", undefined, where);
    if (!(factor > 0) || !(lowFreqFactor > 0) || !(highFreqFactor > lowFreqFactor)) {
      fail(`${where} llama3 needs factor > 0 and high_freq_factor > low_freq_factor > 0`);
    }
    // Step 5 of 2.3: a top-level key wins over the one inside the RoPE parameters.
    const originalMaxPositions = has(c, "original_max_position_embeddings") && c.original_max_position_embeddings !== null
      ? positiveInt(c, "original_max_position_embeddings", undefined)
      : has(params, "original_max_position_embeddings") && params.original_max_position_embeddings !== null
        ? positiveInt(params, "original_max_position_embeddings", undefined)
        : maxPositions;
    return { type, theta, factor, lowFreqFactor, highFreqFactor, originalMaxPositions };
  }
  fail(`RoPE type ${JSON.stringify(type)} is not supported (default, linear, llama3)`);
}

/** Class defaults of decoder-forward.md 2.2 that differ between the RoPE families. */
const ROPE_FAMILY_DEFAULTS = {
  llama: { vocab: 32000, hidden: 4096, intermediate: 11008, kvHeads: undefined, maxPositions: 2048 },
  mistral: { vocab: 32000, hidden: 4096, intermediate: 14336, kvHeads: 8, maxPositions: 131072 },
  qwen2: { vocab: 151936, hidden: 4096, intermediate: 22016, kvHeads: 32, maxPositions: 32768 },
  qwen3: { vocab: 151936, hidden: 4096, intermediate: 22016, kvHeads: 32, maxPositions: 32768 },
} as const;

/** max_window_layers when absent (Qwen2Config / Qwen3Config default, observed in transformers 5.18). */
const QWEN_MAX_WINDOW_LAYERS = 28;

function divide(h: number, nH: number, what: string): number {
  if (h % nH !== 0) fail(`${what}: hidden size ${h} is not a multiple of ${nH} heads`);
  return h / nH;
}

function resolveRopeFamily(c: Json, family: Exclude<DecoderFamily, "gpt2">): ResolvedDecoderConfig {
  const d = ROPE_FAMILY_DEFAULTS[family];
  const vocab = positiveInt(c, "vocab_size", d.vocab);
  const hidden = positiveInt(c, "hidden_size", d.hidden);
  const intermediate = positiveInt(c, "intermediate_size", d.intermediate);
  const layers = positiveInt(c, "num_hidden_layers", 32);
  const heads = positiveInt(c, "num_attention_heads", 32);
  const kvHeads = positiveInt(c, "num_key_value_heads", d.kvHeads ?? heads, heads);
  if (heads % kvHeads !== 0) fail(`num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`);
  let headDim: number;
  if (family === "qwen3") {
    // qwen3's head_dim defaults to 128 whatever H/nH is; null crashes transformers, so it is refused.
    headDim = positiveInt(c, "head_dim", 128);
  } else if (has(c, "head_dim") && c.head_dim !== null) {
    headDim = positiveInt(c, "head_dim", undefined);
  } else {
    headDim = divide(hidden, heads, "head_dim");
  }
  if (headDim % 2 !== 0) fail(`head_dim ${headDim} is odd; RoPE needs pairs`);
  const maxPositions = positiveInt(c, "max_position_embeddings", d.maxPositions);

  const slidingWindow: (number | null)[] = new Array<number | null>(layers).fill(null);
  if (family === "mistral") {
    const w = has(c, "sliding_window") ? (c.sliding_window === null ? null : positiveInt(c, "sliding_window", undefined)) : 4096;
    slidingWindow.fill(w);
  } else if (family === "qwen2" || family === "qwen3") {
    const on = bool(c, "use_sliding_window", false);
    // sliding_window is forced to null unless use_sliding_window (3.6).
    const w = !on ? null : has(c, "sliding_window") ? (c.sliding_window === null ? null : positiveInt(c, "sliding_window", undefined)) : 4096;
    if (has(c, "layer_types") && c.layer_types !== null) {
      const types = c.layer_types;
      if (!Array.isArray(types) || types.length !== layers) fail(`config.json layer_types must list ${layers} layer types`);
      types.forEach((t, i) => {
        if (t === "full_attention") return;
        if (t !== "sliding_attention") fail(`config.json layer_types[${i}] ${JSON.stringify(t)} is not full_attention or sliding_attention`);
        // transformers crashes on a sliding layer without a window (use_sliding_window false or null window).
        if (w === null) fail(`config.json layer_types[${i}] is sliding_attention but sliding is off (use_sliding_window / sliding_window)`);
        slidingWindow[i] = w;
      });
    } else if (w !== null) {
      const from = has(c, "max_window_layers") && c.max_window_layers !== null
        ? (() => {
            const v = c.max_window_layers;
            if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) fail("config.json max_window_layers must be a non-negative integer");
            return v;
          })()
        : QWEN_MAX_WINDOW_LAYERS;
      for (let i = from; i < layers; i++) slidingWindow[i] = w;
    }
  }

  const attentionBias = family === "llama" || family === "qwen3" ? bool(c, "attention_bias", false) : false;
  return {
    family,
    vocab,
    hidden,
    layers,
    heads,
    kvHeads,
    headDim,
    intermediate,
    activation: activationOf(c, "hidden_act", "silu"),
    eps: finiteNumber(c, "rms_norm_eps", 1e-6),
    tie: bool(c, "tie_word_embeddings", false),
    rope: resolveRope(c, maxPositions),
    slidingWindow,
    qkvBias: family === "qwen2" || attentionBias,
    oBias: attentionBias,
    mlpBias: family === "llama" ? bool(c, "mlp_bias", false) : false,
    qkNorm: family === "qwen3",
    maxPositions: null,
    scaleAttnWeights: true,
    scaleAttnByInverseLayerIdx: false,
  };
}

/** GPT-2 reads its own key names; `hidden_size` etc. are aliases that must agree when both are given. */
function gpt2Int(c: Json, key: string, alias: string, absent: number): number {
  const v = positiveInt(c, key, absent);
  if (has(c, alias) && c[alias] !== null) {
    const a = positiveInt(c, alias, undefined);
    if (has(c, key) && a !== v) fail(`config.json ${key} ${v} and ${alias} ${a} disagree`);
    return a;
  }
  return v;
}

function resolveGpt2(c: Json): ResolvedDecoderConfig {
  const hidden = gpt2Int(c, "n_embd", "hidden_size", 768);
  const heads = gpt2Int(c, "n_head", "num_attention_heads", 12);
  const layers = gpt2Int(c, "n_layer", "num_hidden_layers", 12);
  const maxPositions = gpt2Int(c, "n_positions", "max_position_embeddings", 1024);
  if (bool(c, "add_cross_attention", false)) fail("gpt2 with add_cross_attention is not a decoder-only LM");
  return {
    family: "gpt2",
    vocab: positiveInt(c, "vocab_size", 50257),
    hidden,
    layers,
    heads,
    kvHeads: heads,
    headDim: divide(hidden, heads, "gpt2"),
    intermediate: positiveInt(c, "n_inner", 4 * hidden, 4 * hidden),
    activation: activationOf(c, "activation_function", "gelu_new"),
    eps: finiteNumber(c, "layer_norm_epsilon", 1e-5),
    tie: bool(c, "tie_word_embeddings", true),
    rope: null,
    slidingWindow: new Array<number | null>(layers).fill(null),
    qkvBias: true,
    oBias: true,
    mlpBias: true,
    qkNorm: false,
    maxPositions,
    scaleAttnWeights: bool(c, "scale_attn_weights", true),
    scaleAttnByInverseLayerIdx: bool(c, "scale_attn_by_inverse_layer_idx", false),
  };
}

/** Read a config.json object (decoder-forward.md section 2); throws on anything outside the five families. */
export function resolveDecoderConfig(config: Record<string, unknown>): ResolvedDecoderConfig {
  if (!isObject(config)) fail("config.json is not an object");
  const type = config.model_type;
  if (type === "gpt2") return resolveGpt2(config);
  if (type === "llama" || type === "mistral" || type === "qwen2" || type === "qwen3") return resolveRopeFamily(config, type);
  fail(`model_type ${JSON.stringify(type)} is not supported (${DECODER_FAMILIES.join(", ")})`);
}

// ---------------------------------------------------------------------------------------------
// RoPE tables, float32 step by step (decoder-forward.md 3.4)

/**
 * The D/2 inverse frequencies transformers computes (float32 values), scaling included. Every
 * operation is rounded to float32 in torch's order; "scalar / tensor" is reciprocal-then-multiply.
 */
export function ropeInverseFrequencies(rope: ReferenceRope, headDim: number): Float64Array {
  const half = headDim / 2;
  const out = new Float64Array(half);
  for (let i = 0; i < half; i++) {
    const e = fr(fr(2 * i) / headDim);
    const p = fr(Math.pow(rope.theta, e));
    out[i] = fr(1 / p);
  }
  if (rope.type === "linear") {
    for (let i = 0; i < half; i++) out[i] = fr(out[i]! / rope.factor);
  } else if (rope.type === "llama3") {
    const s = rope.factor;
    const alpha = rope.lowFreqFactor!;
    const beta = rope.highFreqFactor!;
    const L0 = rope.originalMaxPositions!;
    const twoPi = fr(2 * Math.PI);
    // The band edges are Python floats compared with a float32 tensor: compared as float32.
    const lowWavelen = fr(L0 / alpha);
    const highWavelen = fr(L0 / beta);
    for (let i = 0; i < half; i++) {
      const f = out[i]!;
      const wavelen = fr(fr(1 / f) * twoPi);
      const base = wavelen > lowWavelen ? fr(f / s) : f;
      if (wavelen < highWavelen || wavelen > lowWavelen) {
        out[i] = base;
        continue;
      }
      const gamma = fr(fr(fr(fr(1 / wavelen) * L0) - alpha) / (beta - alpha));
      out[i] = fr(fr(fr(fr(1 - gamma) * base) / s) + fr(gamma * base));
    }
  }
  return out;
}

/** cos and sin [positions × D/2] (float32 values): φ = f32(f32(t)·f), then f32(cos φ), f32(sin φ). */
export function ropeCosSinAt(rope: ReferenceRope, headDim: number, positions: readonly number[]): { cos: Float64Array; sin: Float64Array } {
  const freqs = ropeInverseFrequencies(rope, headDim);
  const half = headDim / 2;
  const cos = new Float64Array(positions.length * half);
  const sin = new Float64Array(positions.length * half);
  positions.forEach((t, row) => {
    for (let i = 0; i < half; i++) {
      const phi = fr(fr(t) * freqs[i]!);
      cos[row * half + i] = fr(Math.cos(phi));
      sin[row * half + i] = fr(Math.sin(phi));
    }
  });
  return { cos, sin };
}

/** cos and sin [T × D/2] for positions 0..T−1. */
export function ropeCosSin(rope: ReferenceRope, headDim: number, T: number): { cos: Float64Array; sin: Float64Array } {
  return ropeCosSinAt(rope, headDim, Array.from({ length: T }, (_, t) => t));
}

/** Rotate-half RoPE in place on one head vector at x[off .. off+D): dimension i pairs with i + D/2. */
function rotateHalf(x: Float64Array, off: number, headDim: number, cos: Float64Array, sin: Float64Array, row: number): void {
  const half = headDim / 2;
  for (let i = 0; i < half; i++) {
    const c = cos[row * half + i]!;
    const s = sin[row * half + i]!;
    const a = x[off + i]!;
    const b = x[off + i + half]!;
    x[off + i] = a * c - b * s;
    x[off + i + half] = b * c + a * s;
  }
}

// ---------------------------------------------------------------------------------------------
// Building blocks, float64

/** erf to ~1e-15: Taylor series below 2.5, Lentz continued fraction for erfc above. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // erf x = 2/√π Σ (−1)ⁿ x^(2n+1) / (n! (2n+1))
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 200; n++) {
      term *= (-ax * ax) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    const r = (2 / Math.sqrt(Math.PI)) * sum;
    return x < 0 ? -r : r;
  }
  if (ax > 6) return x < 0 ? -1 : 1;
  // erfc x = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …)))))
  const tiny = 1e-300;
  let f = ax;
  let C = ax;
  let D = 0;
  for (let k = 1; k < 500; k++) {
    const a = k / 2;
    D = ax + a * D;
    if (Math.abs(D) < tiny) D = tiny;
    C = ax + a / C;
    if (Math.abs(C) < tiny) C = tiny;
    D = 1 / D;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return x < 0 ? erfc - 1 : 1 - erfc;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

export function activate(act: ReferenceActivation, x: number): number {
  switch (act) {
    case "silu":
      return x / (1 + Math.exp(-x));
    case "gelu_tanh":
      return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
    case "gelu_fast":
      return 0.5 * x * (1 + Math.tanh(0.7978845608 * x * (1 + 0.044715 * x * x)));
    case "gelu_erf":
      return 0.5 * x * (1 + erf(x / Math.SQRT2));
    case "quick_gelu":
      return x / (1 + Math.exp(-1.702 * x));
    case "relu":
      return x > 0 ? x : 0;
  }
}

/** nn.Linear: x [T × in], W [out × in] → x·Wᵀ + b. */
function linear(x: Float64Array, T: number, inDim: number, w: Float32Array, outDim: number, b: Float32Array | null): Float64Array {
  const y = new Float64Array(T * outDim);
  for (let t = 0; t < T; t++) {
    const xo = t * inDim;
    for (let j = 0; j < outDim; j++) {
      const wo = j * inDim;
      let s = b === null ? 0 : b[j]!;
      for (let k = 0; k < inDim; k++) s += x[xo + k]! * w[wo + k]!;
      y[t * outDim + j] = s;
    }
  }
  return y;
}

/** GPT-2 Conv1D: x [T × in], W [in × out] → x·W + b. */
function conv1d(x: Float64Array, T: number, inDim: number, w: Float32Array, outDim: number, b: Float32Array): Float64Array {
  const y = new Float64Array(T * outDim);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < outDim; j++) {
      let s = b[j]!;
      for (let k = 0; k < inDim; k++) s += x[t * inDim + k]! * w[k * outDim + j]!;
      y[t * outDim + j] = s;
    }
  }
  return y;
}

/** RMSNorm over consecutive groups of n values: y = w · x / sqrt(mean(x²) + ε) (ε inside the root). */
function rmsNorm(x: Float64Array, n: number, w: Float32Array, eps: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let o = 0; o < x.length; o += n) {
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[o + i]! * x[o + i]!;
    const r = 1 / Math.sqrt(ss / n + eps);
    for (let i = 0; i < n; i++) y[o + i] = w[i]! * (x[o + i]! * r);
  }
  return y;
}

/** LayerNorm with the biased variance: (x − μ)/sqrt(σ² + ε)·w + b. */
function layerNorm(x: Float64Array, n: number, w: Float32Array, b: Float32Array, eps: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let o = 0; o < x.length; o += n) {
    let mu = 0;
    for (let i = 0; i < n; i++) mu += x[o + i]!;
    mu /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (x[o + i]! - mu) ** 2;
    const r = 1 / Math.sqrt(v / n + eps);
    for (let i = 0; i < n; i++) y[o + i] = (x[o + i]! - mu) * r * w[i]! + b[i]!;
  }
  return y;
}

/**
 * Causal multi-head attention with GQA. q [T × nH·D], k/v [T × nKV·D]; query head h reads KV head
 * ⌊h / (nH/nKV)⌋; query i sees keys j ≤ i, and with a window W only i − j < W. Output [T × nH·D].
 */
function attention(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  T: number,
  heads: number,
  kvHeads: number,
  D: number,
  scale: number,
  window: number | null,
): Float64Array {
  const rep = heads / kvHeads;
  const out = new Float64Array(T * heads * D);
  const scores = new Float64Array(T);
  for (let h = 0; h < heads; h++) {
    const g = Math.floor(h / rep);
    for (let i = 0; i < T; i++) {
      const lo = window === null ? 0 : Math.max(0, i - window + 1);
      let max = -Infinity;
      for (let j = lo; j <= i; j++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += q[(i * heads + h) * D + d]! * k[(j * kvHeads + g) * D + d]!;
        scores[j] = s * scale;
        if (scores[j]! > max) max = scores[j]!;
      }
      let sum = 0;
      for (let j = lo; j <= i; j++) {
        scores[j] = Math.exp(scores[j]! - max);
        sum += scores[j]!;
      }
      for (let j = lo; j <= i; j++) {
        const p = scores[j]! / sum;
        for (let d = 0; d < D; d++) out[(i * heads + h) * D + d] += p * v[(j * kvHeads + g) * D + d]!;
      }
    }
  }
  return out;
}

function addInPlace(h: Float64Array, x: Float64Array): void {
  for (let i = 0; i < h.length; i++) h[i] += x[i]!;
}

// ---------------------------------------------------------------------------------------------
// Tensors

/** Names transformers ignores when loading: stale buffers old checkpoints saved. */
const IGNORED_TENSOR = /(^|\.)rotary_emb\.inv_freq$|(^|\.)h\.\d+\.attn\.(bias|masked_bias)$/;

/** True for the stale buffers transformers skips (rotary inv_freq; GPT-2's attn.bias / attn.masked_bias). */
export function isIgnoredTensorName(name: string): boolean {
  return IGNORED_TENSOR.test(name);
}

class TensorReader {
  private readonly used = new Set<string>();
  constructor(private readonly tensors: ReferenceTensors) {}

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  get(name: string, shape: number[]): Float32Array {
    const t = this.tensors.get(name);
    if (t === undefined) fail(`missing tensor ${name}`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      fail(`tensor ${name} has shape [${t.shape.join(", ")}], expected [${shape.join(", ")}]`);
    }
    const n = shape.reduce((a, b) => a * b, 1);
    if (t.values.length !== n) fail(`tensor ${name} holds ${t.values.length} values, expected ${n}`);
    this.used.add(name);
    return t.values;
  }

  /** The bias `name` when `wanted`, else null. */
  bias(wanted: boolean, name: string, n: number): Float32Array | null {
    return wanted ? this.get(name, [n]) : null;
  }

  /** Every tensor must have been read or be a known stale buffer: transformers would ignore it silently. */
  checkAllUsed(): void {
    for (const name of this.tensors.keys()) {
      if (!this.used.has(name) && !IGNORED_TENSOR.test(name)) fail(`unexpected tensor ${name} (transformers would ignore it)`);
    }
  }
}

/** decoder-forward.md section 9: the embedding and lm_head matrices, with the tie rules. */
function embeddingAndHead(r: TensorReader, c: ResolvedDecoderConfig, embedName: string): { embed: Float32Array; head: Float32Array } {
  const shape = [c.vocab, c.hidden];
  const hasEmbed = r.has(embedName);
  const hasHead = r.has("lm_head.weight");
  if (c.tie) {
    if (!hasEmbed && !hasHead) fail(`missing tensor ${embedName}`);
    const embed = hasEmbed ? r.get(embedName, shape) : r.get("lm_head.weight", shape);
    // Both present: tied if identical, each used as stored if not (transformers warns and does not tie).
    const head = hasHead ? r.get("lm_head.weight", shape) : embed;
    return { embed, head };
  }
  if (!hasHead) fail("tie_word_embeddings is false but lm_head.weight is missing (transformers would use a random lm_head)");
  return { embed: r.get(embedName, shape), head: r.get("lm_head.weight", shape) };
}

function checkIds(ids: readonly number[], vocab: number): void {
  if (ids.length === 0) fail("empty id sequence");
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) fail(`token id ${id} is outside [0, ${vocab})`);
  }
}

// ---------------------------------------------------------------------------------------------
// Forward passes

function ropeFamilyLogits(c: ResolvedDecoderConfig, r: TensorReader, ids: readonly number[]): Float64Array {
  const T = ids.length;
  const { hidden: H, heads, kvHeads, headDim: D, intermediate: I, vocab: V } = c;
  const prefix = r.has("model.embed_tokens.weight") || r.has("model.norm.weight") ? "model." : "";
  const { embed, head } = embeddingAndHead(r, c, `${prefix}embed_tokens.weight`);
  const { cos, sin } = ropeCosSin(c.rope!, D, T);

  const h = new Float64Array(T * H);
  for (let t = 0; t < T; t++) for (let k = 0; k < H; k++) h[t * H + k] = embed[ids[t]! * H + k]!;

  for (let l = 0; l < c.layers; l++) {
    const p = `${prefix}layers.${l}.`;
    const a = rmsNorm(h, H, r.get(`${p}input_layernorm.weight`, [H]), c.eps);
    const q = linear(a, T, H, r.get(`${p}self_attn.q_proj.weight`, [heads * D, H]), heads * D, r.bias(c.qkvBias, `${p}self_attn.q_proj.bias`, heads * D));
    const k = linear(a, T, H, r.get(`${p}self_attn.k_proj.weight`, [kvHeads * D, H]), kvHeads * D, r.bias(c.qkvBias, `${p}self_attn.k_proj.bias`, kvHeads * D));
    const v = linear(a, T, H, r.get(`${p}self_attn.v_proj.weight`, [kvHeads * D, H]), kvHeads * D, r.bias(c.qkvBias, `${p}self_attn.v_proj.bias`, kvHeads * D));
    // qwen3: per-head RMSNorm after projection and bias, before RoPE (3.5 step 2).
    const qn = c.qkNorm ? rmsNorm(q, D, r.get(`${p}self_attn.q_norm.weight`, [D]), c.eps) : q;
    const kn = c.qkNorm ? rmsNorm(k, D, r.get(`${p}self_attn.k_norm.weight`, [D]), c.eps) : k;
    for (let t = 0; t < T; t++) {
      for (let hh = 0; hh < heads; hh++) rotateHalf(qn, (t * heads + hh) * D, D, cos, sin, t);
      for (let g = 0; g < kvHeads; g++) rotateHalf(kn, (t * kvHeads + g) * D, D, cos, sin, t);
    }
    const o = attention(qn, kn, v, T, heads, kvHeads, D, 1 / Math.sqrt(D), c.slidingWindow[l]!);
    addInPlace(h, linear(o, T, heads * D, r.get(`${p}self_attn.o_proj.weight`, [H, heads * D]), H, r.bias(c.oBias, `${p}self_attn.o_proj.bias`, H)));

    const m = rmsNorm(h, H, r.get(`${p}post_attention_layernorm.weight`, [H]), c.eps);
    const gate = linear(m, T, H, r.get(`${p}mlp.gate_proj.weight`, [I, H]), I, r.bias(c.mlpBias, `${p}mlp.gate_proj.bias`, I));
    const up = linear(m, T, H, r.get(`${p}mlp.up_proj.weight`, [I, H]), I, r.bias(c.mlpBias, `${p}mlp.up_proj.bias`, I));
    for (let i = 0; i < gate.length; i++) gate[i] = activate(c.activation, gate[i]!) * up[i]!;
    addInPlace(h, linear(gate, T, I, r.get(`${p}mlp.down_proj.weight`, [H, I]), H, r.bias(c.mlpBias, `${p}mlp.down_proj.bias`, H)));
  }
  const f = rmsNorm(h, H, r.get(`${prefix}norm.weight`, [H]), c.eps);
  return linear(f, T, H, head, V, null);
}

function gpt2Logits(c: ResolvedDecoderConfig, r: TensorReader, ids: readonly number[]): Float64Array {
  const T = ids.length;
  const { hidden: H, heads, headDim: D, intermediate: I, vocab: V } = c;
  if (T > c.maxPositions!) fail(`${T} tokens exceed gpt2's n_positions ${c.maxPositions}`);
  const prefix = r.has("transformer.wte.weight") || r.has("transformer.ln_f.weight") ? "transformer." : "";
  const { embed, head } = embeddingAndHead(r, c, `${prefix}wte.weight`);
  const wpe = r.get(`${prefix}wpe.weight`, [c.maxPositions!, H]);

  const h = new Float64Array(T * H);
  for (let t = 0; t < T; t++) for (let k = 0; k < H; k++) h[t * H + k] = embed[ids[t]! * H + k]! + wpe[t * H + k]!;

  for (let l = 0; l < c.layers; l++) {
    const p = `${prefix}h.${l}.`;
    const a = layerNorm(h, H, r.get(`${p}ln_1.weight`, [H]), r.get(`${p}ln_1.bias`, [H]), c.eps);
    const u = conv1d(a, T, H, r.get(`${p}attn.c_attn.weight`, [H, 3 * H]), 3 * H, r.get(`${p}attn.c_attn.bias`, [3 * H]));
    // c_attn's outputs are q | k | v, each H wide.
    const q = new Float64Array(T * H);
    const k = new Float64Array(T * H);
    const v = new Float64Array(T * H);
    for (let t = 0; t < T; t++) {
      q.set(u.subarray(t * 3 * H, t * 3 * H + H), t * H);
      k.set(u.subarray(t * 3 * H + H, t * 3 * H + 2 * H), t * H);
      v.set(u.subarray(t * 3 * H + 2 * H, t * 3 * H + 3 * H), t * H);
    }
    let scale = c.scaleAttnWeights ? 1 / Math.sqrt(D) : 1;
    if (c.scaleAttnByInverseLayerIdx) scale /= l + 1;
    const o = attention(q, k, v, T, heads, heads, D, scale, null);
    addInPlace(h, conv1d(o, T, H, r.get(`${p}attn.c_proj.weight`, [H, H]), H, r.get(`${p}attn.c_proj.bias`, [H])));

    const m = layerNorm(h, H, r.get(`${p}ln_2.weight`, [H]), r.get(`${p}ln_2.bias`, [H]), c.eps);
    const fc = conv1d(m, T, H, r.get(`${p}mlp.c_fc.weight`, [H, I]), I, r.get(`${p}mlp.c_fc.bias`, [I]));
    for (let i = 0; i < fc.length; i++) fc[i] = activate(c.activation, fc[i]!);
    addInPlace(h, conv1d(fc, T, I, r.get(`${p}mlp.c_proj.weight`, [I, H]), H, r.get(`${p}mlp.c_proj.bias`, [H])));
  }
  const f = layerNorm(h, H, r.get(`${prefix}ln_f.weight`, [H]), r.get(`${prefix}ln_f.bias`, [H]), c.eps);
  return linear(f, T, H, head, V, null);
}

/**
 * Logits [T × V] row-major, float64, of one sequence at positions 0..T−1 (no padding, no cache), as
 * transformers' `XForCausalLM` would compute them in exact arithmetic with its float32 RoPE tables.
 */
export function referenceLogits(config: Record<string, unknown>, tensors: ReferenceTensors, ids: readonly number[]): Float64Array {
  const c = resolveDecoderConfig(config);
  checkIds(ids, c.vocab);
  const r = new TensorReader(tensors);
  const logits = c.family === "gpt2" ? gpt2Logits(c, r, ids) : ropeFamilyLogits(c, r, ids);
  r.checkAllUsed();
  return logits;
}

// ---------------------------------------------------------------------------------------------
// Evaluation scores (issue 9's definitions)

/**
 * The windows: `ids` truncated to `maxTokens` (when given), then cut into consecutive
 * non-overlapping windows of `context` tokens; the last one may be shorter.
 */
export function referenceWindows(ids: readonly number[], context: number, maxTokens?: number): number[][] {
  if (!Number.isSafeInteger(context) || context < 1) fail(`context must be a positive integer, got ${context}`);
  let kept = ids.slice();
  if (maxTokens !== undefined) {
    if (!Number.isSafeInteger(maxTokens) || maxTokens < 1) fail(`maxTokens must be a positive integer, got ${maxTokens}`);
    kept = kept.slice(0, maxTokens);
  }
  const windows: number[][] = [];
  for (let i = 0; i < kept.length; i += context) windows.push(kept.slice(i, i + context));
  return windows;
}

/** One window's forward pass: its ids and logits [len × V]; `against` holds other models' logits, same shape. */
export interface ReferenceWindowLogits {
  ids: readonly number[];
  logits: ArrayLike<number>;
  against?: readonly ArrayLike<number>[];
}

export interface ReferenceScores {
  /** All ids in the windows. */
  tokens: number;
  /** Every token of a window except its first. */
  predicted: number;
  nllSum: number;
  nllMean: number;
  perplexity: number;
  /** nllSum / ln 2 / utf8Bytes; null when no byte count was given. */
  bitsPerByte: number | null;
  /** Per `against` model, in order: mean KL(P_against ‖ P_evaluated) and top-1 agreement over predicted positions. */
  against: { kl: number; top1Agreement: number }[];
}

/** log Σ exp(z) over one row, shifted by its maximum. */
function logSumExp(z: ArrayLike<number>, off: number, V: number): number {
  let max = -Infinity;
  for (let v = 0; v < V; v++) max = Math.max(max, z[off + v]!);
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(z[off + v]! - max);
  return max + Math.log(s);
}

/** The first index of the largest value (ties go to the lowest id). */
function argmax(z: ArrayLike<number>, off: number, V: number): number {
  let best = 0;
  for (let v = 1; v < V; v++) if (z[off + v]! > z[off + best]!) best = v;
  return best;
}

/**
 * The evaluation numbers in float64. Position t of a window (t = 0..len−2) predicts id t+1:
 * NLL_t = logsumexp(z_t) − z_t[id_{t+1}]; perplexity = exp(ΣNLL / predicted); bits per byte =
 * ΣNLL / ln 2 / utf8Bytes; KL(P_a ‖ P_e) = Σ_v P_a(v)·(log P_a(v) − log P_e(v)) at the same positions,
 * averaged; top-1 agreement = share of those positions where both argmaxes (lowest id on ties) agree.
 */
export function referenceScores(windows: readonly ReferenceWindowLogits[], vocab: number, options: { utf8Bytes?: number } = {}): ReferenceScores {
  if (!Number.isSafeInteger(vocab) || vocab < 1) fail(`vocab must be a positive integer, got ${vocab}`);
  const V = vocab;
  const nAgainst = windows[0]?.against?.length ?? 0;
  let tokens = 0;
  let predicted = 0;
  let nllSum = 0;
  const kl = new Array<number>(nAgainst).fill(0);
  const agree = new Array<number>(nAgainst).fill(0);
  windows.forEach((w, wi) => {
    const T = w.ids.length;
    if (T === 0) fail(`window ${wi} is empty`);
    if (w.logits.length !== T * V) fail(`window ${wi}: ${w.logits.length} logits for ${T} ids × vocab ${V}`);
    if ((w.against?.length ?? 0) !== nAgainst) fail(`window ${wi} has ${w.against?.length ?? 0} against-logits, window 0 has ${nAgainst}`);
    for (const [ai, a] of (w.against ?? []).entries()) {
      if (a.length !== T * V) fail(`window ${wi}, against ${ai}: ${a.length} logits for ${T} ids × vocab ${V}`);
    }
    for (const id of w.ids) if (!Number.isInteger(id) || id < 0 || id >= V) fail(`window ${wi}: id ${id} outside [0, ${V})`);
    tokens += T;
    for (let t = 0; t + 1 < T; t++) {
      const off = t * V;
      const lseE = logSumExp(w.logits, off, V);
      nllSum += lseE - w.logits[off + w.ids[t + 1]!]!;
      predicted++;
      (w.against ?? []).forEach((a, ai) => {
        const lseA = logSumExp(a, off, V);
        let d = 0;
        for (let v = 0; v < V; v++) {
          const logPa = a[off + v]! - lseA;
          const pa = Math.exp(logPa);
          if (pa > 0) d += pa * (logPa - (w.logits[off + v]! - lseE));
        }
        kl[ai] += d;
        if (argmax(a, off, V) === argmax(w.logits, off, V)) agree[ai]++;
      });
    }
  });
  if (predicted === 0) fail("no predicted tokens (every window holds a single token)");
  let bitsPerByte: number | null = null;
  if (options.utf8Bytes !== undefined) {
    if (!Number.isSafeInteger(options.utf8Bytes) || options.utf8Bytes < 1) fail(`utf8Bytes must be a positive integer, got ${options.utf8Bytes}`);
    bitsPerByte = nllSum / Math.LN2 / options.utf8Bytes;
  }
  const nllMean = nllSum / predicted;
  return {
    tokens,
    predicted,
    nllSum,
    nllMean,
    perplexity: Math.exp(nllMean),
    bitsPerByte,
    against: kl.map((s, i) => ({ kl: s / predicted, top1Agreement: agree[i]! / predicted })),
  };
}

/** A model as the reference reads it. */
export interface ReferenceModel {
  config: Record<string, unknown>;
  tensors: ReferenceTensors;
}

/**
 * End to end, the way `weightsoup eval` defines it: window the ids, run every window through `model`
 * (and each `against` model) from position 0, and score. `text` (when given) supplies the UTF-8 byte count.
 */
export function referenceEvaluation(
  model: ReferenceModel,
  ids: readonly number[],
  options: { context: number; maxTokens?: number; text?: string; against?: readonly ReferenceModel[] },
): ReferenceScores {
  const windows = referenceWindows(ids, options.context, options.maxTokens);
  const vocab = resolveDecoderConfig(model.config).vocab;
  for (const [i, a] of (options.against ?? []).entries()) {
    const v = resolveDecoderConfig(a.config).vocab;
    if (v !== vocab) fail(`against model ${i} has vocab ${v}, the evaluated model ${vocab}`);
  }
  const scored = windows.map((w) => ({
    ids: w,
    logits: referenceLogits(model.config, model.tensors, w),
    against: (options.against ?? []).map((a) => referenceLogits(a.config, a.tensors, w)),
  }));
  const utf8Bytes = options.text === undefined ? undefined : new TextEncoder().encode(options.text).length;
  return referenceScores(scored, vocab, utf8Bytes === undefined ? {} : { utf8Bytes });
}
