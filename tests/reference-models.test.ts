// Sanity checks of the reference transformer forward passes (tests/reference/llama.ts, gpt2.ts) that
// the permutation tests rely on. Expected values come from hand-worked numbers or from a second,
// separately written computation, never from calling the reference twice in the same way.
import assert from "node:assert/strict";
import { test } from "node:test";
import { applyRope, llamaForward, randomLlama, type LlamaConfig } from "./reference/llama";
import { gpt2Forward, randomGpt2, type Gpt2Config } from "./reference/gpt2";
import type { RefTensor, RefTensors } from "./reference/tensors";

const LLAMA: LlamaConfig = { vocab: 11, hidden: 16, layers: 2, heads: 4, kvHeads: 2, headDim: 6, intermediate: 20, tied: false, ropeTheta: 500 };
const GPT2: Gpt2Config = { vocab: 13, positions: 8, hidden: 12, layers: 2, heads: 3, inner: 20, tied: true };
const TOKENS = [3, 7, 1, 9, 4, 2];

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const row = (logits: Float64Array, p: number, vocab: number) => logits.subarray(p * vocab, (p + 1) * vocab);
const clone = (t: RefTensors): RefTensors => new Map([...t].map(([k, v]) => [k, { shape: [...v.shape], data: v.data.slice() }]));
const tensor = (shape: number[], values: number[]): RefTensor => ({ shape, data: Float32Array.from(values) });

test("random generators: HF names and shapes, deterministic per seed, norms not all ones", () => {
  const a = randomLlama(LLAMA, 1), b = randomLlama(LLAMA, 1), other = randomLlama(LLAMA, 2);
  assert.deepEqual(a.get("model.layers.1.self_attn.k_proj.weight")!.shape, [12, 16]);
  assert.deepEqual(a.get("model.layers.0.self_attn.o_proj.weight")!.shape, [16, 24]);
  assert.deepEqual(a.get("model.layers.1.mlp.down_proj.weight")!.shape, [16, 20]);
  assert.deepEqual(a.get("lm_head.weight")!.shape, [11, 16]);
  assert.equal(a.size, 1 + 2 * 9 + 1 + 1);
  assert.ok(!randomLlama({ ...LLAMA, tied: true }, 1).has("lm_head.weight"), "tied Llama has no lm_head");
  for (const [name, t] of a) assert.deepEqual([...t.data], [...b.get(name)!.data], name);
  assert.ok(maxAbsDiff(a.get("model.embed_tokens.weight")!.data, other.get("model.embed_tokens.weight")!.data) > 0.1);
  const norm = a.get("model.layers.0.input_layernorm.weight")!.data;
  assert.ok(maxAbsDiff(norm, new Float32Array(norm.length).fill(1)) > 0.1, "norm weights are not all ones");

  const g = randomGpt2(GPT2, 1, "transformer.");
  assert.deepEqual(g.get("transformer.h.1.attn.c_attn.weight")!.shape, [12, 36]);
  assert.deepEqual(g.get("transformer.h.0.mlp.c_proj.weight")!.shape, [20, 12]);
  assert.deepEqual(g.get("transformer.wpe.weight")!.shape, [8, 12]);
  assert.ok(!g.has("lm_head.weight"), "tied GPT-2 has no lm_head");
  assert.ok(randomGpt2({ ...GPT2, tied: false }, 1, "transformer.").has("lm_head.weight"), "lm_head sits outside the prefix");
  assert.ok(maxAbsDiff(g.get("transformer.h.0.attn.c_attn.bias")!.data, new Float32Array(36)) > 0.1, "biases are not zero");
  // Same seed, same draws: the prefix changes names only, so the model computes the same function.
  const plain = randomGpt2(GPT2, 1);
  assert.deepEqual(gpt2Forward(GPT2, g, TOKENS, "transformer."), gpt2Forward(GPT2, plain, TOKENS));
});

test("Llama is causal: a later token never reaches earlier positions, an earlier one reaches the last", () => {
  const t = randomLlama(LLAMA, 3), V = LLAMA.vocab, T = TOKENS.length;
  const base = llamaForward(LLAMA, t, TOKENS);
  const lastChanged = llamaForward(LLAMA, t, [...TOKENS.slice(0, -1), 0]);
  assert.deepEqual([...lastChanged.subarray(0, (T - 1) * V)], [...base.subarray(0, (T - 1) * V)]);
  assert.ok(maxAbsDiff(row(lastChanged, T - 1, V), row(base, T - 1, V)) > 1e-2, "last position sees its own token");
  const firstChanged = llamaForward(LLAMA, t, [0, ...TOKENS.slice(1)]);
  assert.ok(maxAbsDiff(row(firstChanged, T - 1, V), row(base, T - 1, V)) > 1e-3, "attention carries the first token to the end");
});

test("GPT-2 is causal: a later token never reaches earlier positions, an earlier one reaches the last", () => {
  const t = randomGpt2(GPT2, 3), V = GPT2.vocab, T = TOKENS.length;
  const base = gpt2Forward(GPT2, t, TOKENS);
  const lastChanged = gpt2Forward(GPT2, t, [...TOKENS.slice(0, -1), 0]);
  assert.deepEqual([...lastChanged.subarray(0, (T - 1) * V)], [...base.subarray(0, (T - 1) * V)]);
  assert.ok(maxAbsDiff(row(lastChanged, T - 1, V), row(base, T - 1, V)) > 1e-2, "last position sees its own token");
  const firstChanged = gpt2Forward(GPT2, t, [0, ...TOKENS.slice(1)]);
  assert.ok(maxAbsDiff(row(firstChanged, T - 1, V), row(base, T - 1, V)) > 1e-3, "attention carries the first token to the end");
});

test("Llama GQA equals MHA whose k/v heads are the GQA ones repeated for their query heads", () => {
  const gqa = randomLlama(LLAMA, 5);
  const mhaConfig: LlamaConfig = { ...LLAMA, kvHeads: LLAMA.heads };
  const mha = clone(gqa);
  const { hidden: H, headDim: hd, heads, kvHeads } = LLAMA;
  for (let l = 0; l < LLAMA.layers; l++) {
    for (const proj of ["k_proj", "v_proj"]) {
      const name = `model.layers.${l}.self_attn.${proj}.weight`, src = gqa.get(name)!.data;
      const data = new Float32Array(heads * hd * H);
      // Query heads 0,1 read kv head 0; heads 2,3 read kv head 1 (written out, not computed by formula).
      const kvOf = [0, 0, 1, 1];
      for (let h = 0; h < heads; h++) data.set(src.subarray(kvOf[h]! * hd * H, (kvOf[h]! + 1) * hd * H), h * hd * H);
      mha.set(name, { shape: [heads * hd, H], data });
    }
  }
  assert.equal(kvHeads, 2);
  const a = llamaForward(LLAMA, gqa, TOKENS), b = llamaForward(mhaConfig, mha, TOKENS);
  assert.ok(maxAbsDiff(a, b) <= 1e-12, `GQA vs MHA differ by ${maxAbsDiff(a, b)}`);
});

// Second implementations, written with plain arrays one position at a time and sharing no code with
// the references. With one token, softmax over one key is 1 and RoPE at position 0 is the identity, so
// attention reduces to the value path; longer sequences check scores, scale, RoPE wiring and heads.
const softmaxMix = (scores: number[], values: number[][]) => {
  const m = Math.max(...scores), e = scores.map((s) => Math.exp(s - m)), z = e.reduce((a, b) => a + b, 0);
  return values[0]!.map((_, d) => values.reduce((acc, v, j) => acc + (e[j]! / z) * v[d]!, 0));
};
const dot = (a: number[], b: number[]) => a.reduce((s, ai, i) => s + ai * b[i]!, 0);

function llamaIndependent(c: LlamaConfig, t: RefTensors, tokens: number[]): number[][] {
  const vec = (n: string) => Array.from(t.get(n)!.data);
  const mat = (n: string) => {
    const { shape, data } = t.get(n)!;
    return Array.from({ length: shape[0]! }, (_, r) => Array.from(data.subarray(r * shape[1]!, (r + 1) * shape[1]!)));
  };
  const mv = (w: number[][], x: number[]) => w.map((r) => dot(r, x));
  const rms = (x: number[], w: number[]) => {
    const r = Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length + (c.rmsEps ?? 1e-6));
    return x.map((v, i) => (v / r) * w[i]!);
  };
  const hd = c.headDim, half = hd / 2, theta = c.ropeTheta ?? 10000;
  // Head vector as complex numbers z_i = x[i] + i x[i + half], each multiplied by e^(i pos theta^(-2i/hd)).
  const rope = (x: number[], pos: number) => {
    const out = x.slice();
    for (let i = 0; i < half; i++) {
      const ang = pos / theta ** ((2 * i) / hd), re = x[i]!, im = x[i + half]!;
      out[i] = re * Math.cos(ang) - im * Math.sin(ang);
      out[i + half] = re * Math.sin(ang) + im * Math.cos(ang);
    }
    return out;
  };
  const headOf = (x: number[], n: number) => x.slice(n * hd, (n + 1) * hd);
  const embed = mat("model.embed_tokens.weight");
  let xs = tokens.map((tok) => embed[tok]!.slice());
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}.`;
    const hs = xs.map((x) => rms(x, vec(`${p}input_layernorm.weight`)));
    const qs = hs.map((h) => mv(mat(`${p}self_attn.q_proj.weight`), h));
    const ks = hs.map((h) => mv(mat(`${p}self_attn.k_proj.weight`), h));
    const vs = hs.map((h) => mv(mat(`${p}self_attn.v_proj.weight`), h));
    xs = xs.map((x, pos) => {
      const cat: number[] = [];
      for (let n = 0; n < c.heads; n++) {
        const g = Math.floor((n * c.kvHeads) / c.heads);
        const q = rope(headOf(qs[pos]!, n), pos);
        const scores = ks.slice(0, pos + 1).map((k, j) => dot(q, rope(headOf(k, g), j)) / Math.sqrt(hd));
        cat.push(...softmaxMix(scores, vs.slice(0, pos + 1).map((v) => headOf(v, g))));
      }
      const o = mv(mat(`${p}self_attn.o_proj.weight`), cat);
      const y = x.map((xi, i) => xi + o[i]!);
      const h2 = rms(y, vec(`${p}post_attention_layernorm.weight`));
      const gate = mv(mat(`${p}mlp.gate_proj.weight`), h2), up = mv(mat(`${p}mlp.up_proj.weight`), h2);
      const down = mv(mat(`${p}mlp.down_proj.weight`), gate.map((z, i) => (z / (1 + Math.exp(-z))) * up[i]!));
      return y.map((yi, i) => yi + down[i]!);
    });
  }
  const head = c.tied ? embed : mat("lm_head.weight");
  return xs.map((x) => mv(head, rms(x, vec("model.norm.weight"))));
}

test("Llama matches a separately written computation: one token (attention = V) and a full sequence", () => {
  for (const tied of [false, true]) {
    const c = { ...LLAMA, tied };
    const t = randomLlama(c, 7);
    for (const tokens of [[0], [5], [10], TOKENS]) {
      const got = llamaForward(c, t, tokens), want = llamaIndependent(c, t, tokens).flat();
      assert.ok(maxAbsDiff(got, want) <= 1e-9, `tied=${tied} tokens ${tokens}: ${maxAbsDiff(got, want)}`);
    }
  }
});

function gpt2Independent(c: Gpt2Config, t: RefTensors, tokens: number[]): number[][] {
  const vec = (n: string) => Array.from(t.get(n)!.data);
  // Conv1D: column o of W [in, out] holds the weights of output o.
  const xw = (n: string, x: number[]) => {
    const { shape, data } = t.get(`${n}.weight`)!;
    return vec(`${n}.bias`).map((b, o) => x.reduce((s, xi, i) => s + xi * data[i * shape[1]! + o]!, b));
  };
  const ln = (x: number[], n: string) => {
    const mean = x.reduce((s, v) => s + v, 0) / x.length;
    const variance = x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length;
    const w = vec(`${n}.weight`), b = vec(`${n}.bias`);
    return x.map((v, i) => ((v - mean) / Math.sqrt(variance + (c.lnEps ?? 1e-5))) * w[i]! + b[i]!);
  };
  const H = c.hidden, hd = H / c.heads, wte = vec("wte.weight"), wpe = vec("wpe.weight");
  let xs = tokens.map((tok, pos) => Array.from({ length: H }, (_, i) => wte[tok * H + i]! + wpe[pos * H + i]!));
  for (let l = 0; l < c.layers; l++) {
    const qkv = xs.map((x) => xw(`h.${l}.attn.c_attn`, ln(x, `h.${l}.ln_1`)));
    // Head n of q, k, v: columns n*hd.. of the first, second and third blocks of H.
    const part = (r: number[], which: number, n: number) => r.slice(which * H + n * hd, which * H + (n + 1) * hd);
    xs = xs.map((x, pos) => {
      const cat: number[] = [];
      for (let n = 0; n < c.heads; n++) {
        const q = part(qkv[pos]!, 0, n);
        const scores = qkv.slice(0, pos + 1).map((r) => dot(q, part(r, 1, n)) / Math.sqrt(hd));
        cat.push(...softmaxMix(scores, qkv.slice(0, pos + 1).map((r) => part(r, 2, n))));
      }
      const o = xw(`h.${l}.attn.c_proj`, cat);
      const y = x.map((xi, i) => xi + o[i]!);
      const fc = xw(`h.${l}.mlp.c_fc`, ln(y, `h.${l}.ln_2`)).map((z) => 0.5 * z * (1 + Math.tanh(0.7978845608028654 * (z + 0.044715 * z * z * z))));
      const m = xw(`h.${l}.mlp.c_proj`, fc);
      return y.map((yi, i) => yi + m[i]!);
    });
  }
  const head = c.tied ? wte : vec("lm_head.weight");
  return xs.map((x) => {
    const f = ln(x, "ln_f");
    return Array.from({ length: c.vocab }, (_, v) => f.reduce((s, fi, i) => s + fi * head[v * H + i]!, 0));
  });
}

test("GPT-2 matches a separately written computation: one token (attention = V) and a full sequence", () => {
  const t = randomGpt2(GPT2, 7);
  for (const tokens of [[0], [6], [12], TOKENS]) {
    const got = gpt2Forward(GPT2, t, tokens), want = gpt2Independent(GPT2, t, tokens).flat();
    assert.ok(maxAbsDiff(got, want) <= 1e-9, `tokens ${tokens}: ${maxAbsDiff(got, want)}`);
  }
});

test("GPT-2 untied with lm_head = copy of wte gives the tied logits", () => {
  const tied = randomGpt2(GPT2, 9);
  const untied = clone(tied);
  untied.set("lm_head.weight", { shape: [GPT2.vocab, GPT2.hidden], data: tied.get("wte.weight")!.data.slice() });
  const a = gpt2Forward(GPT2, tied, TOKENS), b = gpt2Forward({ ...GPT2, tied: false }, untied, TOKENS);
  assert.deepEqual([...b], [...a]);
  // And the untied model really reads lm_head: scaling it scales the logits.
  const data = untied.get("lm_head.weight")!.data;
  for (let i = 0; i < data.length; i++) data[i] *= 2;
  const c = gpt2Forward({ ...GPT2, tied: false }, untied, TOKENS);
  assert.ok(maxAbsDiff(c, a.map((z) => 2 * z)) <= 1e-9);
});

test("RoPE pairs dimension i with i + headDim/2 and turns by position * theta^(-2i/headDim)", () => {
  // headDim 4, theta 100: inv_freq = [1, 100^(-1/2)] = [1, 0.1]. At position 2 the angles are 2 and 0.2.
  // rotate_half: out[i] = x[i] cos - x[i+2] sin, out[i+2] = x[i+2] cos + x[i] sin.
  const x = Float64Array.from([1, 2, 3, 4]);
  applyRope(x, 0, 4, 2, 100);
  const want = [
    1 * Math.cos(2) - 3 * Math.sin(2),
    2 * Math.cos(0.2) - 4 * Math.sin(0.2),
    3 * Math.cos(2) + 1 * Math.sin(2),
    4 * Math.cos(0.2) + 2 * Math.sin(0.2),
  ];
  assert.ok(maxAbsDiff(x, want) <= 1e-12, `${[...x]} vs ${want}`);
  const atZero = Float64Array.from([9, 1, 5, 7, 3]);
  applyRope(atZero, 1, 4, 0, 100);
  assert.deepEqual([...atZero], [9, 1, 5, 7, 3], "position 0 is the identity, and the offset is honoured");
});

test("hand-worked zero-layer models: RMSNorm and LayerNorm (biased variance, eps inside the root)", () => {
  // Llama, embed rows e0 = [3, 4], e1 = [1, -1], norm weight [2, 0.5], eps 0.5, tied.
  // Token 0: mean(x^2) = 12.5, +eps = 13, normed = [6, 2] / sqrt(13); logits = [18 + 8, 6 - 2] / sqrt(13).
  const lc: LlamaConfig = { vocab: 2, hidden: 2, layers: 0, heads: 1, kvHeads: 1, headDim: 2, intermediate: 1, tied: true, rmsEps: 0.5 };
  const lt: RefTensors = new Map([
    ["model.embed_tokens.weight", tensor([2, 2], [3, 4, 1, -1])],
    ["model.norm.weight", tensor([2], [2, 0.5])],
  ]);
  const ll = llamaForward(lc, lt, [0]);
  assert.ok(maxAbsDiff(ll, [26 / Math.sqrt(13), 4 / Math.sqrt(13)]) <= 1e-12, `${[...ll]}`);

  // GPT-2, wte = [[1, 3], [2, 0]], wpe = [[1, -1], [0, 2]], ln_f weight [3, 1.5], bias [1, -1], eps 5, tied.
  // Tokens [1, 0]. Position 0: x = [3, -1], mean 1, centred [2, -2], variance 4 (biased), sqrt(4 + 5) = 3,
  //   normed [2/3, -2/3] -> [2 + 1, -1 - 1] = [3, -2]; logits = [3 - 6, 6 + 0] = [-3, 6].
  // Position 1: x = [1, 5], mean 3, centred [-2, 2], normed [-2/3, 2/3] -> [-1, 0]; logits = [-1, -2].
  const gc: Gpt2Config = { vocab: 2, positions: 2, hidden: 2, layers: 0, heads: 1, inner: 1, tied: true, lnEps: 5 };
  const gt: RefTensors = new Map([
    ["wte.weight", tensor([2, 2], [1, 3, 2, 0])],
    ["wpe.weight", tensor([2, 2], [1, -1, 0, 2])],
    ["ln_f.weight", tensor([2], [3, 1.5])],
    ["ln_f.bias", tensor([2], [1, -1])],
  ]);
  const gl = gpt2Forward(gc, gt, [1, 0]);
  assert.ok(maxAbsDiff(gl, [-3, 6, -1, -2]) <= 1e-12, `${[...gl]}`);
});
