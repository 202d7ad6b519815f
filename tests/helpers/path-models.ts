// Tiny Llama language models for the loss-path and soup tests, made at test time: a model that has
// "learned" a rule (next token = NEXT[token]) by construction, so its loss is low and mixing it with an
// unrelated model raises the loss; its copy with a planted permutation of hidden units (the same
// function, other weights); noisy fine-tunes. Plain float32 arithmetic written for the tests, with its
// own permutation code (not src/align's).
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { encodeTensor, writeShardedModel } from "../reference/safetensors";
import { normalStream } from "../reference/tensors";
import type { ReferenceModel, ReferenceTensor } from "../reference/decoder";

export const LM = { vocab: 48, hidden: 32, intermediate: 48, layers: 2, heads: 4, kvHeads: 2 } as const;
const HEAD_DIM = LM.hidden / LM.heads;

/** The rule the model knows: token x is followed by NEXT[x]. */
export const NEXT = Array.from({ length: LM.vocab }, (_, x) => (5 * x + 3) % LM.vocab);

export function lmConfig(): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"], model_type: "llama", vocab_size: LM.vocab, hidden_size: LM.hidden,
    intermediate_size: LM.intermediate, num_hidden_layers: LM.layers, num_attention_heads: LM.heads,
    num_key_value_heads: LM.kvHeads, rms_norm_eps: 1e-5, max_position_embeddings: 256, tie_word_embeddings: false,
    torch_dtype: "float32",
  };
}

function randn(seed: number, n: number, scale: number): Float32Array {
  const next = normalStream(seed);
  return Float32Array.from({ length: n }, () => scale * next());
}

/**
 * A model whose embedding row of x and lm_head row of NEXT[x] point the same way (margin `sharpness`
 * nats over an unrelated token, roughly), with small random attention and MLP blocks on the residual.
 */
export function ruleModel(seed: number, sharpness = 6): ReferenceModel {
  const { vocab: V, hidden: H, intermediate: I } = LM;
  const t = new Map<string, ReferenceTensor>();
  const embed = randn(seed, V * H, 1);
  t.set("model.embed_tokens.weight", { shape: [V, H], values: embed });
  const kv = LM.kvHeads * HEAD_DIM;
  for (let l = 0; l < LM.layers; l++) {
    const p = `model.layers.${l}.`, s = seed * 100 + l * 10;
    t.set(`${p}input_layernorm.weight`, { shape: [H], values: randn(s + 1, H, 0.1).map((v) => 1 + v) });
    t.set(`${p}self_attn.q_proj.weight`, { shape: [H, H], values: randn(s + 2, H * H, 1 / Math.sqrt(H)) });
    t.set(`${p}self_attn.k_proj.weight`, { shape: [kv, H], values: randn(s + 3, kv * H, 1 / Math.sqrt(H)) });
    t.set(`${p}self_attn.v_proj.weight`, { shape: [kv, H], values: randn(s + 4, kv * H, 1 / Math.sqrt(H)) });
    t.set(`${p}self_attn.o_proj.weight`, { shape: [H, H], values: randn(s + 5, H * H, 0.1 / Math.sqrt(H)) });
    t.set(`${p}post_attention_layernorm.weight`, { shape: [H], values: randn(s + 6, H, 0.1).map((v) => 1 + v) });
    t.set(`${p}mlp.gate_proj.weight`, { shape: [I, H], values: randn(s + 7, I * H, 1 / Math.sqrt(H)) });
    t.set(`${p}mlp.up_proj.weight`, { shape: [I, H], values: randn(s + 8, I * H, 1 / Math.sqrt(H)) });
    t.set(`${p}mlp.down_proj.weight`, { shape: [H, I], values: randn(s + 9, H * I, 0.1 / Math.sqrt(I)) });
  }
  t.set("model.norm.weight", { shape: [H], values: new Float32Array(H).fill(1) });
  // lm_head row NEXT[x] = sharpness · E[x] / (|E[x]|·√H): after the final RMSNorm (|h| ≈ √H) the logit of
  // NEXT[x] is about `sharpness`, others about sharpness·cos, |cos| ~ 1/√H.
  const head = new Float32Array(V * H);
  for (let x = 0; x < V; x++) {
    let norm = 0;
    for (let k = 0; k < H; k++) norm += embed[x * H + k]! ** 2;
    const scale = sharpness / Math.sqrt(norm * H);
    for (let k = 0; k < H; k++) head[NEXT[x]! * H + k] = Math.fround(embed[x * H + k]! * scale);
  }
  t.set("lm_head.weight", { shape: [V, H], values: head });
  return { config: lmConfig(), tensors: t };
}

/** Token ids following the rule in runs of `run` tokens, each run starting at a pseudo-random token. */
export function ruleIds(count: number, run = 8, seed = 5): number[] {
  let x = seed >>> 0;
  const ids: number[] = [];
  let token = 0;
  for (let i = 0; i < count; i++) {
    if (i % run === 0) {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      token = (x >>> 8) % LM.vocab;
    } else token = NEXT[token]!;
    ids.push(token);
  }
  return ids;
}

/** A permutation of 0..n-1 from a seed (Fisher–Yates). */
export function permutation(n: number, seed: number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  let x = seed >>> 0;
  for (let i = n - 1; i > 0; i--) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    const j = (x >>> 8) % (i + 1);
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

/** Rows r of a [rows, cols] matrix moved: out row i = in row p[i]. */
function permuteRows(m: Float32Array, cols: number, p: readonly number[]): Float32Array {
  const out = new Float32Array(m.length);
  p.forEach((src, i) => out.set(m.subarray(src * cols, (src + 1) * cols), i * cols));
  return out;
}

/** Columns moved: out column j = in column p[j]. */
function permuteCols(m: Float32Array, cols: number, p: readonly number[]): Float32Array {
  const out = new Float32Array(m.length);
  for (let r = 0; r < m.length / cols; r++) for (let j = 0; j < cols; j++) out[r * cols + j] = m[r * cols + p[j]!]!;
  return out;
}

/**
 * The same function with other weights: the residual stream's units permuted by `residual` and each
 * layer's MLP units by `mlp[l]` (attention heads stay), so every hidden state is permuted alike and
 * the logits are unchanged.
 */
export function permuted(model: ReferenceModel, residual: readonly number[], mlp: readonly (readonly number[])[]): ReferenceModel {
  const H = LM.hidden, I = LM.intermediate;
  const out = new Map<string, ReferenceTensor>();
  for (const [name, t] of model.tensors) {
    let v = t.values;
    const cols = t.shape[1] ?? 1;
    if (t.shape.length === 1) v = permuteRows(v, 1, residual);
    else if (/embed_tokens|lm_head|[qkv]_proj|gate_proj|up_proj/.test(name)) v = permuteCols(v, cols, residual);
    else if (/o_proj/.test(name)) v = permuteRows(v, cols, residual);
    else if (/down_proj/.test(name)) v = permuteRows(v, cols, residual);
    const layer = /layers\.(\d+)\./.exec(name);
    if (layer) {
      const p = mlp[Number(layer[1])]!;
      if (/gate_proj|up_proj/.test(name)) v = permuteRows(v, H, p);
      else if (/down_proj/.test(name)) v = permuteCols(v, I, p);
    }
    out.set(name, { shape: t.shape, values: v });
  }
  return { config: model.config, tensors: out };
}

/** Every float value moved by `scale`·N(0, 1) times the tensor's RMS (float32). */
export function withNoise(model: ReferenceModel, seed: number, scale: number): ReferenceModel {
  const out = new Map<string, ReferenceTensor>();
  let k = 0;
  for (const [name, t] of model.tensors) {
    let ss = 0;
    for (const v of t.values) ss += v * v;
    const rms = Math.sqrt(ss / t.values.length);
    const noise = randn(seed * 1000 + k++, t.values.length, scale * rms);
    out.set(name, { shape: t.shape, values: t.values.map((v, i) => v + noise[i]!) });
  }
  return { config: model.config, tensors: out };
}

/** A whitespace word-level tokenizer: "t0 t1 …" → ids 0, 1, …, so a text stands for exact ids. */
export function wordTokenizer(): string {
  const vocab = Object.fromEntries(Array.from({ length: LM.vocab }, (_, i) => [`t${i}`, i]));
  return JSON.stringify({
    version: "1.0", truncation: null, padding: null, added_tokens: [], normalizer: null,
    pre_tokenizer: { type: "WhitespaceSplit" }, post_processor: null, decoder: null,
    model: { type: "WordLevel", vocab, unk_token: "t0" },
  });
}

export function idsText(ids: readonly number[]): string {
  return ids.map((i) => `t${i}`).join(" ");
}

/** config.json, model.safetensors (float32) and the word tokenizer. */
export async function writeLm(dir: string, model: ReferenceModel): Promise<string> {
  await writeShardedModel(dir, [...model.tensors].map(([name, t]) => ({ name, dtype: "F32" as const, shape: t.shape, data: encodeTensor("F32", t.values) })), { shards: 1, config: model.config, metadata: { format: "pt" } });
  await writeFile(join(dir, "tokenizer.json"), wordTokenizer());
  await writeFile(join(dir, "tokenizer_config.json"), "{}");
  return dir;
}
