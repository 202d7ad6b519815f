// A scalar float64 forward pass of a Llama-style decoder (Hugging Face LlamaForCausalLM tensor names and
// layouts), plus a seeded random-weight generator. Written for tests that permute hidden units and heads
// and expect the logits to stay put, so it favours being obviously right over being fast.
//
// Deliberate differences from transformers: everything is float64 (HF rounds rotary tables and
// activations to float32 or lower), so agreement with a real checkpoint is only to float32 precision.

import { causalHeadAttention, checkTokens, normalStream, randomTensor, tensorData, type RefTensors } from "./tensors";

export type { RefTensor, RefTensors } from "./tensors";

export interface LlamaConfig {
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  tied: boolean;
  /** rope_theta; 10000 when absent. */
  ropeTheta?: number;
  /** rms_norm_eps; 1e-6 when absent. */
  rmsEps?: number;
}

function checkConfig(c: LlamaConfig): void {
  for (const key of ["vocab", "hidden", "heads", "kvHeads", "headDim", "intermediate"] as const) {
    if (!Number.isInteger(c[key]) || c[key] < 1) throw new Error(`llama reference: ${key} must be a positive integer`);
  }
  if (!Number.isInteger(c.layers) || c.layers < 0) throw new Error("llama reference: layers must be a non-negative integer");
  if (c.heads % c.kvHeads !== 0) throw new Error("llama reference: heads must be a multiple of kvHeads");
  if (c.headDim % 2 !== 0) throw new Error("llama reference: rotary embeddings need an even headDim");
}

/** The HF names and shapes of every tensor, in a fixed order (the generator draws in this order). */
export function llamaShapes(c: LlamaConfig): [string, number[]][] {
  checkConfig(c);
  const { vocab, hidden, heads, kvHeads, headDim, intermediate } = c;
  const out: [string, number[]][] = [["model.embed_tokens.weight", [vocab, hidden]]];
  for (let i = 0; i < c.layers; i++) {
    const p = `model.layers.${i}.`;
    out.push(
      [`${p}input_layernorm.weight`, [hidden]],
      [`${p}self_attn.q_proj.weight`, [heads * headDim, hidden]],
      [`${p}self_attn.k_proj.weight`, [kvHeads * headDim, hidden]],
      [`${p}self_attn.v_proj.weight`, [kvHeads * headDim, hidden]],
      [`${p}self_attn.o_proj.weight`, [hidden, heads * headDim]],
      [`${p}post_attention_layernorm.weight`, [hidden]],
      [`${p}mlp.gate_proj.weight`, [intermediate, hidden]],
      [`${p}mlp.up_proj.weight`, [intermediate, hidden]],
      [`${p}mlp.down_proj.weight`, [hidden, intermediate]],
    );
  }
  out.push(["model.norm.weight", [hidden]]);
  if (!c.tied) out.push(["lm_head.weight", [vocab, hidden]]);
  return out;
}

/**
 * Random weights for `c`. Norm weights are 1 + 0.3 N(0,1) so a permutation that forgets to move them
 * changes the function; linear weights are N(0,1)/sqrt(fan_in) so activations keep unit scale and the
 * attention logits have spread of order one (softmax neither uniform nor one-hot).
 */
export function randomLlama(c: LlamaConfig, seed: number): RefTensors {
  const normal = normalStream(seed);
  const t: RefTensors = new Map();
  for (const [name, shape] of llamaShapes(c)) {
    if (shape.length === 1) t.set(name, randomTensor(shape, normal, 0.3, 1));
    else if (name === "model.embed_tokens.weight") t.set(name, randomTensor(shape, normal, 1));
    else t.set(name, randomTensor(shape, normal, 1 / Math.sqrt(shape[1]!)));
  }
  return t;
}

/**
 * Rotary position embedding of one head vector in place, in HF's rotate_half layout: dimension i is
 * paired with i + headDim/2 (not with its neighbour i + 1 as in the original Meta layout), and the pair
 * turns by angle position * theta^(-2i/headDim).
 */
export function applyRope(x: Float64Array, offset: number, headDim: number, position: number, theta: number): void {
  const half = headDim / 2;
  for (let i = 0; i < half; i++) {
    const angle = position * Math.pow(theta, (-2 * i) / headDim);
    const cos = Math.cos(angle), sin = Math.sin(angle);
    const a = x[offset + i]!, b = x[offset + i + half]!;
    // x * cos + rotate_half(x) * sin, with rotate_half(x) = [-x2, x1].
    x[offset + i] = a * cos - b * sin;
    x[offset + i + half] = b * cos + a * sin;
  }
}

/** y = x W^T for every row of x: W is [outDim, inDim] as torch.nn.Linear stores it. */
function linear(x: Float64Array, rows: number, inDim: number, w: Float32Array, outDim: number): Float64Array {
  const y = new Float64Array(rows * outDim);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outDim; o++) {
      let acc = 0;
      for (let i = 0; i < inDim; i++) acc += w[o * inDim + i]! * x[r * inDim + i]!;
      y[r * outDim + o] = acc;
    }
  }
  return y;
}

function rmsNorm(x: Float64Array, rows: number, dim: number, w: Float32Array, eps: number): Float64Array {
  const y = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[r * dim + i]! ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) y[r * dim + i] = x[r * dim + i]! * inv * w[i]!;
  }
  return y;
}

const silu = (z: number): number => z / (1 + Math.exp(-z));

/** Logits [tokens.length, vocab], row-major, for the tokens at positions 0..T-1. */
export function llamaForward(c: LlamaConfig, t: RefTensors, tokens: number[]): Float64Array {
  checkConfig(c);
  checkTokens(tokens, c.vocab);
  const { vocab, hidden: H, heads, kvHeads, headDim: hd, intermediate: I } = c;
  const theta = c.ropeTheta ?? 10000, eps = c.rmsEps ?? 1e-6;
  const T = tokens.length, qDim = heads * hd, kvDim = kvHeads * hd, group = heads / kvHeads;

  const embed = tensorData(t, "model.embed_tokens.weight", [vocab, H]);
  const x = new Float64Array(T * H);
  tokens.forEach((tok, p) => {
    for (let i = 0; i < H; i++) x[p * H + i] = embed[tok * H + i]!;
  });

  for (let l = 0; l < c.layers; l++) {
    const w = (suffix: string, shape: number[]) => tensorData(t, `model.layers.${l}.${suffix}`, shape);
    const h = rmsNorm(x, T, H, w("input_layernorm.weight", [H]), eps);
    const q = linear(h, T, H, w("self_attn.q_proj.weight", [qDim, H]), qDim);
    const k = linear(h, T, H, w("self_attn.k_proj.weight", [kvDim, H]), kvDim);
    const v = linear(h, T, H, w("self_attn.v_proj.weight", [kvDim, H]), kvDim);
    for (let p = 0; p < T; p++) {
      for (let hq = 0; hq < heads; hq++) applyRope(q, p * qDim + hq * hd, hd, p, theta);
      for (let g = 0; g < kvHeads; g++) applyRope(k, p * kvDim + g * hd, hd, p, theta);
    }
    const attn = new Float64Array(T * qDim);
    for (let hq = 0; hq < heads; hq++) {
      // Consecutive query heads share a kv head (HF repeat_kv expands kv head g to heads g*group..g*group+group-1).
      const g = Math.floor(hq / group);
      causalHeadAttention(T, hd, q, qDim, hq * hd, k, v, kvDim, g * hd, attn, qDim, hq * hd);
    }
    const o = linear(attn, T, qDim, w("self_attn.o_proj.weight", [H, qDim]), H);
    for (let i = 0; i < x.length; i++) x[i] += o[i]!;

    const h2 = rmsNorm(x, T, H, w("post_attention_layernorm.weight", [H]), eps);
    const gate = linear(h2, T, H, w("mlp.gate_proj.weight", [I, H]), I);
    const up = linear(h2, T, H, w("mlp.up_proj.weight", [I, H]), I);
    for (let i = 0; i < gate.length; i++) gate[i] = silu(gate[i]!) * up[i]!;
    const down = linear(gate, T, I, w("mlp.down_proj.weight", [H, I]), H);
    for (let i = 0; i < x.length; i++) x[i] += down[i]!;
  }

  const final = rmsNorm(x, T, H, tensorData(t, "model.norm.weight", [H]), eps);
  const head = c.tied ? embed : tensorData(t, "lm_head.weight", [vocab, H]);
  return linear(final, T, H, head, vocab);
}
