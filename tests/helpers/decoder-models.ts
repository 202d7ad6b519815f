// Tiny random decoder checkpoints of every family weightsoup evaluates, one per tricky variant, in the
// family's real tensor names, shapes and config.json layout; deterministic from a seed. Written so the
// engine's forward pass and tests/reference/decoder.ts can be compared on the same values: a BF16
// model's values are rounded to BF16 here, and the rounded values are what both sides read.

import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { decodeFloat, encodeTensor, isFloatDtype, readModelDir, writeShardedModel, type RefTensorBytes } from "../reference/safetensors";
import { roundToDtype } from "../reference/float16";
import { normalStream } from "../reference/tensors";
import { isIgnoredTensorName, type DecoderFamily, type ReferenceTensor } from "../reference/decoder";

export type DecoderDtype = "F32" | "BF16";

export interface DecoderModel {
  variant: DecoderVariant;
  family: DecoderFamily;
  dtype: DecoderDtype;
  /** config.json as written (hand-written in the family's style, keys left out on purpose). */
  config: Record<string, unknown>;
  /** Values already rounded to `dtype`; insertion order is the file order. */
  tensors: Map<string, ReferenceTensor>;
}

interface Shape {
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
}

interface VariantSpec {
  family: DecoderFamily;
  /** What the variant exercises. */
  about: string;
  shape: Shape;
  config: Record<string, unknown>;
  tied: boolean;
  qkvBias?: boolean;
  oBias?: boolean;
  mlpBias?: boolean;
  qkNorm?: boolean;
  /** gpt2: "transformer." or ""; stale attn.bias / attn.masked_bias buffers as in old openai files. */
  gpt2Prefix?: string;
  gpt2Positions?: number;
  staleBuffers?: boolean;
}

const LLAMA_ARCH = { architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_act: "silu" };

/** The variants, by name. Shapes: hidden 32-64, 2 layers, 4 heads / 2 KV heads unless the variant is about that. */
const VARIANTS = {
  "llama-gqa-untied": {
    family: "llama",
    about: "GQA, untied lm_head, transformers 5 rope_parameters (θ 5e5), rms_norm_eps 1e-5",
    shape: { vocab: 160, hidden: 48, layers: 2, heads: 4, kvHeads: 2, headDim: 12, intermediate: 96 },
    tied: false,
    config: {
      ...LLAMA_ARCH, vocab_size: 160, hidden_size: 48, intermediate_size: 96, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 2, rms_norm_eps: 1e-5, max_position_embeddings: 2048,
      rope_parameters: { rope_type: "default", rope_theta: 500000.0 }, tie_word_embeddings: false,
    },
  },
  "llama-tied-headdim": {
    family: "llama",
    about: "tied embeddings without lm_head.weight, explicit head_dim 16 ≠ H/nH = 8 (q_proj not square)",
    shape: { vocab: 128, hidden: 32, layers: 2, heads: 4, kvHeads: 2, headDim: 16, intermediate: 64 },
    tied: true,
    config: {
      ...LLAMA_ARCH, vocab_size: 128, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, rms_norm_eps: 1e-6,
      rope_parameters: { rope_type: "default", rope_theta: 10000.0 }, tie_word_embeddings: true,
    },
  },
  "llama-llama3": {
    family: "llama",
    about: "legacy rope_theta + rope_scaling llama3 with L₀ 32: wavelengths 6.3 (< 8, kept), 19.9 (smoothed), ≥ 62.8 (> 32, divided)",
    shape: { vocab: 128, hidden: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 16, intermediate: 96 },
    tied: false,
    config: {
      ...LLAMA_ARCH, vocab_size: 128, hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 2, rms_norm_eps: 1e-5, max_position_embeddings: 256,
      rope_theta: 10000.0,
      rope_scaling: { rope_type: "llama3", factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 32 },
    },
  },
  "llama-linear-bias": {
    family: "llama",
    about: "legacy rope_scaling {type: linear, factor 4} with no rope_theta (θ 10000), attention_bias incl. o_proj, mlp_bias",
    shape: { vocab: 128, hidden: 48, layers: 2, heads: 4, kvHeads: 2, headDim: 12, intermediate: 80 },
    tied: false,
    qkvBias: true,
    oBias: true,
    mlpBias: true,
    config: {
      ...LLAMA_ARCH, vocab_size: 128, hidden_size: 48, intermediate_size: 80, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 2, attention_bias: true, mlp_bias: true,
      rope_scaling: { type: "linear", factor: 4.0 },
    },
  },
  "mistral-sliding": {
    family: "mistral",
    about: "sliding_window 5 on every layer (smaller than the test sequences), head_dim null",
    shape: { vocab: 128, hidden: 48, layers: 2, heads: 4, kvHeads: 2, headDim: 12, intermediate: 96 },
    tied: false,
    config: {
      architectures: ["MistralForCausalLM"], model_type: "mistral", vocab_size: 128, hidden_size: 48,
      intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
      head_dim: null, sliding_window: 5, rope_theta: 10000.0, rms_norm_eps: 1e-5, tie_word_embeddings: false,
    },
  },
  "mistral-defaults": {
    family: "mistral",
    about: "no num_key_value_heads (mistral default 8 with 16 heads: GQA), no sliding_window (default 4096, inactive)",
    shape: { vocab: 128, hidden: 64, layers: 2, heads: 16, kvHeads: 8, headDim: 4, intermediate: 96 },
    tied: false,
    config: {
      architectures: ["MistralForCausalLM"], model_type: "mistral", vocab_size: 128, hidden_size: 64,
      intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 16, rope_theta: 10000.0,
    },
  },
  "qwen2-tied-bias": {
    family: "qwen2",
    about: "q/k/v biases (no key), tied, θ 1e6, sliding_window set but use_sliding_window false (inactive)",
    shape: { vocab: 144, hidden: 48, layers: 2, heads: 4, kvHeads: 2, headDim: 12, intermediate: 96 },
    tied: true,
    qkvBias: true,
    config: {
      architectures: ["Qwen2ForCausalLM"], model_type: "qwen2", vocab_size: 144, hidden_size: 48,
      intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
      rope_theta: 1000000.0, rms_norm_eps: 1e-6, tie_word_embeddings: true, use_sliding_window: false,
      sliding_window: 4, max_window_layers: 1,
    },
  },
  "qwen2-sliding": {
    family: "qwen2",
    about: "use_sliding_window with max_window_layers 1: layer 0 full, layer 1 window 6",
    shape: { vocab: 128, hidden: 48, layers: 2, heads: 4, kvHeads: 2, headDim: 12, intermediate: 96 },
    tied: false,
    qkvBias: true,
    config: {
      architectures: ["Qwen2ForCausalLM"], model_type: "qwen2", vocab_size: 128, hidden_size: 48,
      intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
      rope_theta: 10000.0, rms_norm_eps: 1e-6, tie_word_embeddings: false, use_sliding_window: true,
      sliding_window: 6, max_window_layers: 1,
    },
  },
  "qwen3-qknorm": {
    family: "qwen3",
    about: "per-head q/k RMSNorm before RoPE, head_dim 16 ≠ H/nH, attention_bias incl. o_proj, rope_parameters",
    shape: { vocab: 128, hidden: 48, layers: 2, heads: 4, kvHeads: 2, headDim: 16, intermediate: 96 },
    tied: false,
    qkvBias: true,
    oBias: true,
    qkNorm: true,
    config: {
      architectures: ["Qwen3ForCausalLM"], model_type: "qwen3", vocab_size: 128, hidden_size: 48,
      intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
      head_dim: 16, attention_bias: true, rms_norm_eps: 1e-6, tie_word_embeddings: false,
      rope_parameters: { rope_type: "default", rope_theta: 1000000.0 },
    },
  },
  "qwen3-default-headdim": {
    family: "qwen3",
    about: "no head_dim key: qwen3's default 128, not H/nH = 8; tied",
    shape: { vocab: 112, hidden: 32, layers: 2, heads: 4, kvHeads: 2, headDim: 128, intermediate: 64 },
    tied: true,
    qkNorm: true,
    config: {
      architectures: ["Qwen3ForCausalLM"], model_type: "qwen3", vocab_size: 112, hidden_size: 32,
      intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
      rope_theta: 1000000.0, tie_word_embeddings: true,
    },
  },
  "gpt2-prefixed": {
    family: "gpt2",
    about: "GPT2LMHeadModel keys (transformer.), n_inner 80, scale_attn_by_inverse_layer_idx, tied",
    shape: { vocab: 200, hidden: 48, layers: 2, heads: 4, kvHeads: 4, headDim: 12, intermediate: 80 },
    tied: true,
    gpt2Prefix: "transformer.",
    gpt2Positions: 128,
    config: {
      architectures: ["GPT2LMHeadModel"], model_type: "gpt2", vocab_size: 200, n_embd: 48, n_layer: 2,
      n_head: 4, n_inner: 80, n_positions: 128, activation_function: "gelu_new", layer_norm_epsilon: 1e-5,
      scale_attn_by_inverse_layer_idx: true,
    },
  },
  "gpt2-unprefixed": {
    family: "gpt2",
    about: "original openai layout: no prefix, n_inner absent (4H), stale attn.bias / attn.masked_bias buffers",
    shape: { vocab: 160, hidden: 32, layers: 2, heads: 4, kvHeads: 4, headDim: 8, intermediate: 128 },
    tied: true,
    gpt2Prefix: "",
    gpt2Positions: 64,
    staleBuffers: true,
    config: {
      architectures: ["GPT2LMHeadModel"], model_type: "gpt2", vocab_size: 160, n_embd: 32, n_layer: 2,
      n_head: 4, n_positions: 64,
    },
  },
} satisfies Record<string, VariantSpec>;

export type DecoderVariant = keyof typeof VARIANTS;

export const DECODER_VARIANTS = Object.keys(VARIANTS) as DecoderVariant[];

/** What a variant exercises, for test names. */
export function describeVariant(variant: DecoderVariant): string {
  return (VARIANTS[variant] as VariantSpec).about;
}

/** One tensor's role decides how its random values are drawn. */
type Init = { kind: "weight"; fanIn: number } | { kind: "gain" } | { kind: "bias" } | { kind: "embed" } | { kind: "positions" };

function tensorPlan(s: VariantSpec): { name: string; shape: number[]; init: Init }[] {
  const { vocab: V, hidden: H, heads, kvHeads, headDim: D, intermediate: I } = s.shape;
  const out: { name: string; shape: number[]; init: Init }[] = [];
  const add = (name: string, shape: number[], init: Init): void => {
    out.push({ name, shape, init });
  };
  const w = (inDim: number): Init => ({ kind: "weight", fanIn: inDim });
  if (s.family === "gpt2") {
    const p = s.gpt2Prefix ?? "transformer.";
    const P = s.gpt2Positions!;
    add(`${p}wte.weight`, [V, H], { kind: "embed" });
    add(`${p}wpe.weight`, [P, H], { kind: "positions" });
    for (let l = 0; l < s.shape.layers; l++) {
      const q = `${p}h.${l}.`;
      add(`${q}ln_1.weight`, [H], { kind: "gain" });
      add(`${q}ln_1.bias`, [H], { kind: "bias" });
      if (s.staleBuffers) {
        add(`${q}attn.bias`, [1, 1, P, P], { kind: "gain" });
        add(`${q}attn.masked_bias`, [], { kind: "bias" });
      }
      add(`${q}attn.c_attn.weight`, [H, 3 * H], w(H));
      add(`${q}attn.c_attn.bias`, [3 * H], { kind: "bias" });
      add(`${q}attn.c_proj.weight`, [H, H], w(H));
      add(`${q}attn.c_proj.bias`, [H], { kind: "bias" });
      add(`${q}ln_2.weight`, [H], { kind: "gain" });
      add(`${q}ln_2.bias`, [H], { kind: "bias" });
      add(`${q}mlp.c_fc.weight`, [H, I], w(H));
      add(`${q}mlp.c_fc.bias`, [I], { kind: "bias" });
      add(`${q}mlp.c_proj.weight`, [I, H], w(I));
      add(`${q}mlp.c_proj.bias`, [H], { kind: "bias" });
    }
    add(`${p}ln_f.weight`, [H], { kind: "gain" });
    add(`${p}ln_f.bias`, [H], { kind: "bias" });
    if (!s.tied) add("lm_head.weight", [V, H], { kind: "embed" });
    return out;
  }
  add("model.embed_tokens.weight", [V, H], { kind: "embed" });
  for (let l = 0; l < s.shape.layers; l++) {
    const p = `model.layers.${l}.`;
    add(`${p}input_layernorm.weight`, [H], { kind: "gain" });
    add(`${p}self_attn.q_proj.weight`, [heads * D, H], w(H));
    if (s.qkvBias) add(`${p}self_attn.q_proj.bias`, [heads * D], { kind: "bias" });
    add(`${p}self_attn.k_proj.weight`, [kvHeads * D, H], w(H));
    if (s.qkvBias) add(`${p}self_attn.k_proj.bias`, [kvHeads * D], { kind: "bias" });
    add(`${p}self_attn.v_proj.weight`, [kvHeads * D, H], w(H));
    if (s.qkvBias) add(`${p}self_attn.v_proj.bias`, [kvHeads * D], { kind: "bias" });
    add(`${p}self_attn.o_proj.weight`, [H, heads * D], w(heads * D));
    if (s.oBias) add(`${p}self_attn.o_proj.bias`, [H], { kind: "bias" });
    if (s.qkNorm) {
      add(`${p}self_attn.q_norm.weight`, [D], { kind: "gain" });
      add(`${p}self_attn.k_norm.weight`, [D], { kind: "gain" });
    }
    add(`${p}post_attention_layernorm.weight`, [H], { kind: "gain" });
    add(`${p}mlp.gate_proj.weight`, [I, H], w(H));
    if (s.mlpBias) add(`${p}mlp.gate_proj.bias`, [I], { kind: "bias" });
    add(`${p}mlp.up_proj.weight`, [I, H], w(H));
    if (s.mlpBias) add(`${p}mlp.up_proj.bias`, [I], { kind: "bias" });
    add(`${p}mlp.down_proj.weight`, [H, I], w(I));
    if (s.mlpBias) add(`${p}mlp.down_proj.bias`, [H], { kind: "bias" });
  }
  add("model.norm.weight", [H], { kind: "gain" });
  if (!s.tied) add("lm_head.weight", [V, H], { kind: "embed" });
  return out;
}

function nameSeed(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ Math.imul(seed >>> 0, 0x9e3779b1)) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

function drawValues(name: string, shape: number[], init: Init, seed: number, staleBuffer: boolean): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(n);
  if (staleBuffer) {
    // The old causal-mask buffers: a lower-triangular [1, 1, P, P] of ones and the scalar −1e4.
    if (name.endsWith("masked_bias")) values[0] = -1e4;
    else {
      const P = shape[3]!;
      for (let i = 0; i < P; i++) for (let j = 0; j <= i; j++) values[i * P + j] = 1;
    }
    return values;
  }
  const normal = normalStream(nameSeed(seed, name));
  for (let i = 0; i < n; i++) {
    const z = normal();
    switch (init.kind) {
      // Gains away from 1 and biases away from 0, so a kernel that skips either is visible.
      case "gain":
        values[i] = 1 + 0.25 * z;
        break;
      case "bias":
        values[i] = 0.2 * z;
        break;
      // Unit-variance outputs per projection; embeddings at 0.3 give logits of a few units.
      case "weight":
        values[i] = z / Math.sqrt(init.fanIn);
        break;
      case "embed":
        values[i] = 0.3 * z;
        break;
      case "positions":
        values[i] = 0.2 * z;
        break;
    }
  }
  return values;
}

/** A variant's checkpoint, deterministic from `seed`; values rounded to `dtype` (BF16 round-to-nearest-even). */
export function decoderModel(variant: DecoderVariant, options: { seed?: number; dtype?: DecoderDtype } = {}): DecoderModel {
  const spec = VARIANTS[variant] as VariantSpec | undefined;
  if (spec === undefined) throw new Error(`decoderModel: unknown variant ${String(variant)}`);
  const seed = options.seed ?? 1;
  const dtype = options.dtype ?? "F32";
  const tensors = new Map<string, ReferenceTensor>();
  for (const { name, shape, init } of tensorPlan(spec)) {
    const values = drawValues(name, shape, init, seed, isIgnoredTensorName(name));
    if (dtype !== "F32") for (let i = 0; i < values.length; i++) values[i] = roundToDtype(values[i]!, dtype);
    tensors.set(name, { shape, values });
  }
  const config: Record<string, unknown> = { ...structuredClone(spec.config), torch_dtype: dtype === "BF16" ? "bfloat16" : "float32" };
  return { variant, family: spec.family, dtype, config, tensors };
}

/** `count` token ids in [0, vocab), deterministic from `seed` (not from the model's seed). */
export function decoderIds(vocab: number, count: number, seed = 7): number[] {
  let x = (seed ^ 0x5bd1e995) >>> 0;
  const ids: number[] = [];
  for (let i = 0; i < count; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    ids.push(Math.floor(((x >>> 8) / 16777216) * vocab));
  }
  return ids;
}

/** Write config.json + model.safetensors (or `shards` files with an index) in the model's dtype. */
export async function writeDecoderModel(dir: string, model: DecoderModel, options: { shards?: number } = {}): Promise<void> {
  const tensors: RefTensorBytes[] = [...model.tensors].map(([name, t]) => ({
    name,
    dtype: model.dtype,
    shape: t.shape,
    data: encodeTensor(model.dtype, t.values),
  }));
  await writeShardedModel(dir, tensors, { shards: options.shards ?? 1, config: model.config, metadata: { format: "pt" } });
}

/**
 * Read a model folder (single file or sharded) into what the reference takes: float tensors decoded
 * exactly to float32. Non-float tensors are refused, except the stale buffers transformers ignores.
 */
export async function readDecoderModel(dir: string): Promise<{ config: Record<string, unknown>; tensors: Map<string, ReferenceTensor> }> {
  const { config, tensors: raw } = await readModelDir(dir);
  if (config === null) throw new Error(`readDecoderModel: ${dir} has no config.json`);
  const tensors = new Map<string, ReferenceTensor>();
  for (const [name, t] of raw) {
    if (!isFloatDtype(t.dtype)) {
      if (isIgnoredTensorName(name)) continue;
      throw new Error(`readDecoderModel: ${name} in ${dir} is ${t.dtype}, not a float tensor`);
    }
    tensors.set(name, { shape: t.shape, values: decodeFloat(t.dtype, t.data) });
  }
  return { config, tensors };
}

// ---------------------------------------------------------------------------------------------
// Golden cases from transformers (tests/fixtures/transformers/, made by make_fixtures.py)

/** What make_fixtures.py recorded for one case (float32 values as numbers). */
export interface GoldenExpected {
  case: string;
  about: string;
  ids: number[];
  /** transformers' causal-LM loss with labels = ids. */
  loss: number;
  logitsShape: [number, number];
  logits: number[];
  /** RoPE families: the rotary inv_freq buffer, and cos/sin [T × D/2] (transformers repeats them in both halves). */
  invFreq?: number[];
  cosShape?: [number, number];
  cos?: number[];
  sin?: number[];
}

/** The fixture folder, found by walking up from this module (the bundled test lives under .build/). */
export function goldenRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, "tests", "fixtures", "transformers");
    if (existsSync(join(candidate, "versions.json"))) return candidate;
    const up = dirname(dir);
    if (up === dir) throw new Error("goldenRoot: tests/fixtures/transformers not found above this module");
    dir = up;
  }
}

/** Case names: every folder with an expected.json. */
export async function goldenCases(): Promise<string[]> {
  const root = goldenRoot();
  const names = (await readdir(root, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
  return names.filter((n) => existsSync(join(root, n, "expected.json"))).sort();
}

export async function readGoldenCase(name: string): Promise<{ config: Record<string, unknown>; tensors: Map<string, ReferenceTensor>; expected: GoldenExpected }> {
  const dir = join(goldenRoot(), name);
  const model = await readDecoderModel(dir);
  const expected = JSON.parse(await readFile(join(dir, "expected.json"), "utf8")) as GoldenExpected;
  return { ...model, expected };
}
