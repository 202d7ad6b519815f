// A scalar float64 forward pass of GPT-2 (Hugging Face gpt2 tensor names, Conv1D weight layout), plus a
// seeded random-weight generator. Written for tests that permute hidden units and heads and expect the
// logits to stay put.
//
// The causal-mask buffer some old checkpoints carry as h.i.attn.bias / h.i.attn.masked_bias is not a
// weight and is neither generated nor read.

import { causalHeadAttention, checkTokens, normalStream, randomTensor, tensorData, type RefTensors } from "./tensors";

export type { RefTensor, RefTensors } from "./tensors";

export interface Gpt2Config {
  vocab: number;
  /** n_positions: rows of wpe, and the longest sequence the model accepts. */
  positions: number;
  hidden: number;
  layers: number;
  heads: number;
  /** n_inner: width of the MLP (4 * hidden in the released models). */
  inner: number;
  tied: true | boolean;
  /** layer_norm_epsilon; 1e-5 when absent. */
  lnEps?: number;
}

function checkConfig(c: Gpt2Config): void {
  for (const key of ["vocab", "positions", "hidden", "heads", "inner"] as const) {
    if (!Number.isInteger(c[key]) || c[key] < 1) throw new Error(`gpt2 reference: ${key} must be a positive integer`);
  }
  if (!Number.isInteger(c.layers) || c.layers < 0) throw new Error("gpt2 reference: layers must be a non-negative integer");
  if (c.hidden % c.heads !== 0) throw new Error("gpt2 reference: hidden must be a multiple of heads");
}

/**
 * The HF names and shapes of every tensor, in a fixed order (the generator draws in this order).
 * `prefix` is "" for the bare GPT2Model file layout or "transformer." for GPT2LMHeadModel; lm_head.weight
 * sits outside the prefix either way, as in GPT2LMHeadModel.
 */
export function gpt2Shapes(c: Gpt2Config, prefix = ""): [string, number[]][] {
  checkConfig(c);
  const { vocab, positions, hidden, inner } = c;
  const out: [string, number[]][] = [
    [`${prefix}wte.weight`, [vocab, hidden]],
    [`${prefix}wpe.weight`, [positions, hidden]],
  ];
  for (let i = 0; i < c.layers; i++) {
    const p = `${prefix}h.${i}.`;
    out.push(
      [`${p}ln_1.weight`, [hidden]],
      [`${p}ln_1.bias`, [hidden]],
      [`${p}attn.c_attn.weight`, [hidden, 3 * hidden]],
      [`${p}attn.c_attn.bias`, [3 * hidden]],
      [`${p}attn.c_proj.weight`, [hidden, hidden]],
      [`${p}attn.c_proj.bias`, [hidden]],
      [`${p}ln_2.weight`, [hidden]],
      [`${p}ln_2.bias`, [hidden]],
      [`${p}mlp.c_fc.weight`, [hidden, inner]],
      [`${p}mlp.c_fc.bias`, [inner]],
      [`${p}mlp.c_proj.weight`, [inner, hidden]],
      [`${p}mlp.c_proj.bias`, [hidden]],
    );
  }
  out.push([`${prefix}ln_f.weight`, [hidden]], [`${prefix}ln_f.bias`, [hidden]]);
  if (!c.tied) out.push(["lm_head.weight", [vocab, hidden]]);
  return out;
}

/**
 * Random weights for `c`. LayerNorm weights are 1 + 0.3 N(0,1) and every bias is 0.2 N(0,1), so a
 * permutation that forgets to move any of them changes the function. Conv1D weights are [in, out] and
 * get N(0,1)/sqrt(in); embeddings are 0.5 N(0,1) so position embeddings matter next to token ones.
 */
export function randomGpt2(c: Gpt2Config, seed: number, prefix = ""): RefTensors {
  const normal = normalStream(seed);
  const t: RefTensors = new Map();
  for (const [name, shape] of gpt2Shapes(c, prefix)) {
    if (name.endsWith(".bias")) t.set(name, randomTensor(shape, normal, 0.2));
    else if (shape.length === 1) t.set(name, randomTensor(shape, normal, 0.3, 1));
    else if (name.endsWith("wte.weight") || name.endsWith("wpe.weight")) t.set(name, randomTensor(shape, normal, 0.5));
    else if (name === "lm_head.weight") t.set(name, randomTensor(shape, normal, 1 / Math.sqrt(shape[1]!)));
    else t.set(name, randomTensor(shape, normal, 1 / Math.sqrt(shape[0]!)));
  }
  return t;
}

/** y = x W + b for every row of x: W is [inDim, outDim], the transformers Conv1D layout. */
function conv1d(x: Float64Array, rows: number, inDim: number, w: Float32Array, b: Float32Array, outDim: number): Float64Array {
  const y = new Float64Array(rows * outDim);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outDim; o++) {
      let acc = b[o]!;
      for (let i = 0; i < inDim; i++) acc += x[r * inDim + i]! * w[i * outDim + o]!;
      y[r * outDim + o] = acc;
    }
  }
  return y;
}

/** LayerNorm with the biased (divide by n) variance, as torch.nn.LayerNorm computes it. */
function layerNorm(x: Float64Array, rows: number, dim: number, w: Float32Array, b: Float32Array, eps: number): Float64Array {
  const y = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < dim; i++) mean += x[r * dim + i]!;
    mean /= dim;
    let variance = 0;
    for (let i = 0; i < dim; i++) variance += (x[r * dim + i]! - mean) ** 2;
    variance /= dim;
    const inv = 1 / Math.sqrt(variance + eps);
    for (let i = 0; i < dim; i++) y[r * dim + i] = (x[r * dim + i]! - mean) * inv * w[i]! + b[i]!;
  }
  return y;
}

/** transformers' "gelu_new": the tanh approximation GPT-2 was trained with. */
const geluNew = (z: number): number => 0.5 * z * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (z + 0.044715 * z ** 3)));

/** Logits [tokens.length, vocab], row-major, for the tokens at positions 0..T-1. */
export function gpt2Forward(c: Gpt2Config, t: RefTensors, tokens: number[], prefix = ""): Float64Array {
  checkConfig(c);
  checkTokens(tokens, c.vocab);
  const { vocab, positions, hidden: H, heads, inner: I } = c;
  const T = tokens.length, hd = H / heads, eps = c.lnEps ?? 1e-5;
  if (T > positions) throw new Error(`gpt2 reference: ${T} tokens but only ${positions} positions`);

  const wte = tensorData(t, `${prefix}wte.weight`, [vocab, H]);
  const wpe = tensorData(t, `${prefix}wpe.weight`, [positions, H]);
  const x = new Float64Array(T * H);
  tokens.forEach((tok, p) => {
    for (let i = 0; i < H; i++) x[p * H + i] = wte[tok * H + i]! + wpe[p * H + i]!;
  });

  for (let l = 0; l < c.layers; l++) {
    const w = (suffix: string, shape: number[]) => tensorData(t, `${prefix}h.${l}.${suffix}`, shape);
    const a = layerNorm(x, T, H, w("ln_1.weight", [H]), w("ln_1.bias", [H]), eps);
    // Columns 0..H-1 are q, H..2H-1 k, 2H..3H-1 v; inside each, head n owns columns n*hd..n*hd+hd-1.
    const qkv = conv1d(a, T, H, w("attn.c_attn.weight", [H, 3 * H]), w("attn.c_attn.bias", [3 * H]), 3 * H);
    const q = new Float64Array(T * H), k = new Float64Array(T * H), v = new Float64Array(T * H);
    for (let p = 0; p < T; p++) {
      for (let i = 0; i < H; i++) {
        q[p * H + i] = qkv[p * 3 * H + i]!;
        k[p * H + i] = qkv[p * 3 * H + H + i]!;
        v[p * H + i] = qkv[p * 3 * H + 2 * H + i]!;
      }
    }
    const attn = new Float64Array(T * H);
    for (let n = 0; n < heads; n++) causalHeadAttention(T, hd, q, H, n * hd, k, v, H, n * hd, attn, H, n * hd);
    const o = conv1d(attn, T, H, w("attn.c_proj.weight", [H, H]), w("attn.c_proj.bias", [H]), H);
    for (let i = 0; i < x.length; i++) x[i] += o[i]!;

    const m = layerNorm(x, T, H, w("ln_2.weight", [H]), w("ln_2.bias", [H]), eps);
    const fc = conv1d(m, T, H, w("mlp.c_fc.weight", [H, I]), w("mlp.c_fc.bias", [I]), I);
    for (let i = 0; i < fc.length; i++) fc[i] = geluNew(fc[i]!);
    const proj = conv1d(fc, T, I, w("mlp.c_proj.weight", [I, H]), w("mlp.c_proj.bias", [H]), H);
    for (let i = 0; i < x.length; i++) x[i] += proj[i]!;
  }

  const final = layerNorm(x, T, H, tensorData(t, `${prefix}ln_f.weight`, [H]), tensorData(t, `${prefix}ln_f.bias`, [H]), eps);
  // Tied or not, the head is [vocab, hidden] and logits are final · headᵀ (lm_head is an nn.Linear).
  const head = c.tied ? wte : tensorData(t, "lm_head.weight", [vocab, H]);
  const logits = new Float64Array(T * vocab);
  for (let p = 0; p < T; p++) {
    for (let tok = 0; tok < vocab; tok++) {
      let acc = 0;
      for (let i = 0; i < H; i++) acc += final[p * H + i]! * head[tok * H + i]!;
      logits[p * vocab + tok] = acc;
    }
  }
  return logits;
}
