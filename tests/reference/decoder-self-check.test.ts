// Self-checks of the float64 decoder reference (decoder.ts) and the tiny checkpoints of
// tests/helpers/decoder-models.ts: against transformers' own logits (tests/fixtures/transformers/, made
// by make_fixtures.py; no Python needed here), and against 1-layer models small enough that the expected
// output is worked out by hand in the comments. Expected numbers never come from calling the reference.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import {
  erf,
  referenceEvaluation,
  referenceLogits,
  referenceScores,
  referenceWindows,
  resolveDecoderConfig,
  ropeCosSin,
  ropeCosSinAt,
  ropeInverseFrequencies,
  type ReferenceTensor,
} from "./decoder";
import { roundToDtype } from "./float16";
import {
  DECODER_VARIANTS,
  decoderIds,
  decoderModel,
  describeVariant,
  goldenCases,
  goldenRoot,
  readDecoderModel,
  readGoldenCase,
  writeDecoderModel,
} from "../helpers/decoder-models";

const fr = Math.fround;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, "lengths differ");
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  const d = maxAbsDiff(actual, expected);
  assert.ok(d <= tol, `${what}: max |Δ| ${d} > ${tol}\n  actual   ${Array.from(actual).join(", ")}\n  expected ${Array.from(expected).join(", ")}`);
}

/** A tensor map from [name, shape, values] rows (values row-major). */
function tensors(rows: [string, number[], number[]][]): Map<string, ReferenceTensor> {
  const m = new Map<string, ReferenceTensor>();
  for (const [name, shape, values] of rows) {
    assert.equal(values.length, shape.reduce((a, b) => a * b, 1), `${name}: ${values.length} values for [${shape}]`);
    m.set(name, { shape, values: Float32Array.from(values) });
  }
  return m;
}

function identity(n: number, scale = 1): number[] {
  const v = new Array<number>(n * n).fill(0);
  for (let i = 0; i < n; i++) v[i * n + i] = scale;
  return v;
}

const zeros = (n: number): number[] => new Array<number>(n).fill(0);
const ones = (n: number): number[] => new Array<number>(n).fill(1);

/**
 * A 1-layer llama-family model whose MLP contributes exactly 0 (down_proj is zero) so the output is
 * embedding + attention, then the final RMSNorm and lm_head. `attn` gives q/k/v/o weights.
 */
function probeModel(
  H: number,
  I: number,
  qRows: number,
  kvRows: number,
  embed: number[],
  attn: { q: number[]; k: number[]; v: number[]; o: number[] },
  finalNorm: number[],
  head: number[] | null,
): Map<string, ReferenceTensor> {
  const V = embed.length / H;
  const rows: [string, number[], number[]][] = [
    ["model.embed_tokens.weight", [V, H], embed],
    ["model.layers.0.input_layernorm.weight", [H], ones(H)],
    ["model.layers.0.self_attn.q_proj.weight", [qRows, H], attn.q],
    ["model.layers.0.self_attn.k_proj.weight", [kvRows, H], attn.k],
    ["model.layers.0.self_attn.v_proj.weight", [kvRows, H], attn.v],
    ["model.layers.0.self_attn.o_proj.weight", [H, qRows], attn.o],
    ["model.layers.0.post_attention_layernorm.weight", [H], ones(H)],
    // gate/up are non-zero on purpose: only the zero down_proj silences the MLP.
    ["model.layers.0.mlp.gate_proj.weight", [I, H], Array.from({ length: I * H }, (_, i) => ((i % 5) - 2) / 3)],
    ["model.layers.0.mlp.up_proj.weight", [I, H], Array.from({ length: I * H }, (_, i) => ((i % 3) - 1) / 2)],
    ["model.layers.0.mlp.down_proj.weight", [H, I], zeros(H * I)],
    ["model.norm.weight", [H], finalNorm],
  ];
  if (head !== null) rows.push(["lm_head.weight", [head.length / H, H], head]);
  return tensors(rows);
}

function llamaConfig(extra: Record<string, unknown>): Record<string, unknown> {
  return { model_type: "llama", num_hidden_layers: 1, hidden_act: "silu", ...extra };
}

// =============================================================================================
// 1. Against transformers (golden fixtures)

test("golden fixtures: every case folder is present and readable", async () => {
  const cases = await goldenCases();
  assert.ok(cases.length >= 8, `only ${cases.length} golden cases: ${cases.join(", ")}`);
  for (const family of ["llama", "mistral", "qwen2", "qwen3", "gpt2"]) {
    assert.ok(cases.some((c) => c.startsWith(family)), `no golden case for ${family}`);
  }
});

for (const name of await goldenCases()) {
  test(`golden ${name}: logits within 1e-4 of transformers (eager, float32), loss within 1e-5`, async () => {
    const { config, tensors: ts, expected } = await readGoldenCase(name);
    const [T, V] = expected.logitsShape;
    assert.equal(expected.ids.length, T);
    const logits = referenceLogits(config, ts, expected.ids);
    assert.equal(logits.length, T * V);
    const d = maxAbsDiff(logits, expected.logits);
    assert.ok(d <= 1e-4, `${name} (${expected.about}): max |Δlogit| ${d}`);
    // transformers' loss: mean NLL of position t predicting id t+1, t = 0..T-2 (decoder-forward.md 10.1).
    const scores = referenceScores([{ ids: expected.ids, logits }], V);
    assert.equal(scores.predicted, T - 1);
    const dl = Math.abs(scores.nllMean - expected.loss);
    assert.ok(dl <= 1e-5, `${name}: loss ${scores.nllMean} vs transformers ${expected.loss} (Δ ${dl})`);
  });
}

test("golden RoPE tables: inv_freq equal to transformers' bit for bit (one known 1-ulp pow exception), cos/sin within 1 ulp", async () => {
  let checked = 0;
  for (const name of await goldenCases()) {
    const { config, expected } = await readGoldenCase(name);
    if (expected.invFreq === undefined) continue;
    checked++;
    const c = resolveDecoderConfig(config);
    const freqs = ropeInverseFrequencies(c.rope!, c.headDim);
    assert.equal(freqs.length, expected.invFreq.length, `${name}: inv_freq length`);
    let ulpOff = 0;
    freqs.forEach((f, i) => {
      const theirs = fr(expected.invFreq![i]!);
      if (f === theirs) return;
      // torch's float32 pow is not always correctly rounded (θ 1e6, D 128 has one such frequency,
      // decoder-forward.md 3.4): allow one frequency one ulp away, nothing more.
      assert.ok(Math.abs(f - theirs) <= Math.abs(theirs) * 2 ** -23, `${name}: inv_freq[${i}] ${f} vs ${theirs}`);
      ulpOff++;
    });
    assert.ok(ulpOff <= 1, `${name}: ${ulpOff} frequencies differ from transformers`);
    const T = expected.ids.length;
    assert.deepEqual(expected.cosShape, [T, c.headDim / 2]);
    const { cos, sin } = ropeCosSin(c.rope!, c.headDim, T);
    const worst = Math.max(maxAbsDiff(cos, expected.cos!), maxAbsDiff(sin, expected.sin!));
    assert.ok(worst <= 1.2e-7, `${name}: cos/sin differ by ${worst}`);
  }
  assert.ok(checked >= 8, `only ${checked} RoPE cases`);
});

test("golden RoPE tables at real-model settings and positions up to 131071: the float32 recipe matches transformers", async () => {
  // cos of a float32 angle, rounded, is within one float32 ulp of torch's float32 cos: 6e-8 near 1. An
  // angle computed in float64 instead, or 1/θ^e rounded once, is off by up to ~1e-3 at these positions.
  const cases = JSON.parse(await readFile(join(goldenRoot(), "rope_tables.json"), "utf8")) as {
    name: string; config: Record<string, unknown>; positions: number[]; invFreq: number[]; cos: number[]; sin: number[];
  }[];
  assert.ok(cases.length >= 8);
  const types = new Set<string>();
  for (const k of cases) {
    const c = resolveDecoderConfig(k.config);
    types.add(c.rope!.type);
    const half = c.headDim / 2;
    const freqs = ropeInverseFrequencies(c.rope!, c.headDim);
    const off: number[] = [];
    freqs.forEach((f, i) => {
      const theirs = fr(k.invFreq[i]!);
      if (f === theirs) return;
      assert.ok(Math.abs(f - theirs) <= Math.abs(theirs) * 2 ** -23, `${k.name}: inv_freq[${i}] ${f} vs ${theirs}`);
      off.push(i);
    });
    // torch's float32 pow is not correctly rounded for a few (θ, D): one frequency per case at most.
    assert.ok(off.length <= 1, `${k.name}: frequencies ${off.join(", ")} differ from transformers`);
    const { cos, sin } = ropeCosSinAt(c.rope!, c.headDim, k.positions);
    for (let row = 0; row < k.positions.length; row++) {
      for (let i = 0; i < half; i++) {
        const j = row * half + i;
        const d = Math.max(Math.abs(cos[j]! - k.cos[j]!), Math.abs(sin[j]! - k.sin[j]!));
        // Where the frequency itself is one ulp off, the angle at t = 131071 moves by t·ulp(f).
        const tol = off.includes(i) ? 1e-5 : 1.2e-7;
        assert.ok(d <= tol, `${k.name}: position ${k.positions[row]}, pair ${i}: |Δ| ${d}`);
      }
    }
  }
  assert.deepEqual([...types].sort(), ["default", "linear", "llama3"]);
});

test("golden llama3_scaled: the case hits all three llama3 bands, and transformers' frequencies show it", async () => {
  const { config, expected } = await readGoldenCase("llama3_scaled");
  const c = resolveDecoderConfig(config);
  assert.equal(c.rope!.type, "llama3");
  const plain = ropeInverseFrequencies({ type: "default", theta: c.rope!.theta, factor: 1 }, c.headDim);
  const L0 = c.rope!.originalMaxPositions!;
  const bands = { kept: 0, smoothed: 0, divided: 0 };
  plain.forEach((f, i) => {
    const wavelength = (2 * Math.PI) / f;
    const theirs = expected.invFreq![i]!;
    if (wavelength < L0 / c.rope!.highFreqFactor!) {
      bands.kept++;
      assert.equal(fr(theirs), f, `band "kept" ${i}`);
    } else if (wavelength > L0 / c.rope!.lowFreqFactor!) {
      bands.divided++;
      assert.equal(fr(theirs), fr(f / c.rope!.factor), `band "divided" ${i}`);
    } else {
      bands.smoothed++;
      assert.ok(theirs < f && theirs > f / c.rope!.factor, `band "smoothed" ${i}: ${theirs} not strictly between ${f / c.rope!.factor} and ${f}`);
    }
  });
  assert.ok(bands.kept > 0 && bands.smoothed > 0 && bands.divided > 0, JSON.stringify(bands));
});

// =============================================================================================
// 2. Hand-worked 1-layer models

test("hand: RMSNorm adds ε inside the square root, then multiplies by the weight", () => {
  // H = 4, ε = 3/64. Token 0's embedding is [1/8, 1/8, 1/8, 1/8]: mean square 1/64, plus ε = 4/64 = 1/16,
  // root 1/4, so the normalised row is [1/2, 1/2, 1/2, 1/2]; times norm.weight [1, 2, 3, 4] gives
  // [0.5, 1, 1.5, 2], and lm_head = I4 copies it to the logits. (ε outside the root: 0.125 / (0.125 +
  // 0.046875) = 0.727..., not 0.5.) Attention adds 0 (o_proj is zero) and so does the MLP.
  // Token 1's embedding [2, -2, 2, -2]: mean square 4, root sqrt(4 + 3/64) = sqrt(259/64) = sqrt(259)/8,
  // so the row is [2, -2, 2, -2] · 8/sqrt(259) · [1, 2, 3, 4] = [16, -32, 48, -64] / sqrt(259).
  const H = 4;
  const embed = [0.125, 0.125, 0.125, 0.125, 2, -2, 2, -2, 1, 0, 0, 0, 0, 0, 0, 1];
  const attn = { q: identity(4), k: identity(4), v: identity(4), o: zeros(16) };
  const config = llamaConfig({ vocab_size: 4, hidden_size: H, intermediate_size: 3, num_attention_heads: 1, rms_norm_eps: 3 / 64, tie_word_embeddings: false });
  const model = probeModel(H, 3, 4, 4, embed, attn, [1, 2, 3, 4], identity(4));
  const logits = referenceLogits(config, model, [0, 1]);
  const r = Math.sqrt(259);
  assertClose(logits, [0.5, 1, 1.5, 2, 16 / r, -32 / r, 48 / r, -64 / r], 1e-12, "RMSNorm");
});

test("hand: tie rules (decoder-forward.md section 9)", () => {
  // Same model as the RMSNorm case (normalised row of token 0: n = [0.5, 1, 1.5, 2]).
  const H = 4;
  const embed = [0.125, 0.125, 0.125, 0.125, 2, -2, 2, -2, 1, 0, 0, 0, 0, 0, 0, 1];
  const attn = { q: identity(4), k: identity(4), v: identity(4), o: zeros(16) };
  const base = { vocab_size: 4, hidden_size: H, intermediate_size: 3, num_attention_heads: 1, rms_norm_eps: 3 / 64 };

  // Tied, lm_head absent: logits = n · Eᵀ: row 0 [1/8]*4 -> 5/8; row 1 [2,-2,2,-2] -> 2(0.5-1+1.5-2) = -2;
  // row 2 e0 -> 0.5; row 3 e3 -> 2.
  const tiedNoHead = probeModel(H, 3, 4, 4, embed, attn, [1, 2, 3, 4], null);
  assertClose(referenceLogits(llamaConfig({ ...base, tie_word_embeddings: true }), tiedNoHead, [0]), [0.625, -2, 0.5, 2], 1e-12, "tied, no lm_head");

  // Tied but both present and different: transformers does not tie; lm_head = I4 gives n itself.
  const both = probeModel(H, 3, 4, 4, embed, attn, [1, 2, 3, 4], identity(4));
  assertClose(referenceLogits(llamaConfig({ ...base, tie_word_embeddings: true }), both, [0]), [0.5, 1, 1.5, 2], 1e-12, "tied, different lm_head");

  // Tied with the embedding absent: the embedding is lm_head = I4, so token 0's row is e0: mean square
  // 1/4 + 3/64 = 19/64, normalised 8/sqrt(19) in dimension 0; times weight 1; lm_head I4.
  const headOnly = new Map(both);
  headOnly.delete("model.embed_tokens.weight");
  assertClose(referenceLogits(llamaConfig({ ...base, tie_word_embeddings: true }), headOnly, [0]), [8 / Math.sqrt(19), 0, 0, 0], 1e-12, "embedding from lm_head");

  // Untied without lm_head: transformers would draw a random lm_head; refused.
  assert.throws(() => referenceLogits(llamaConfig({ ...base, tie_word_embeddings: false }), tiedNoHead, [0]), /tie_word_embeddings is false but lm_head\.weight is missing/);
  // llama's default is untied.
  assert.throws(() => referenceLogits(llamaConfig(base), tiedNoHead, [0]), /lm_head\.weight is missing/);
});

test("hand: RoPE pairs dimension i with i + D/2 (rotate-half), rotates q and k only, from position 0", () => {
  // H = D = 4, one head, ε = 0. Embeddings have mean square 1, so the normed input equals the embedding:
  // token 0 -> a = [2,0,0,0], token 1 -> a = [0,0,2,0]. W_q = W_k = W_v = I/2, so q = k = v = e0 at
  // position 0 and e2 at position 1. o_proj = I4, MLP silent, final norm weight 1, lm_head I4.
  // Frequency 0 is 1/θ^0 = 1 (whatever θ), so at position 1 the angle is φ = 1: c = f32(cos 1),
  // s = f32(sin 1). Rotate-half pairs dims (0, 2): e2 -> [-s, 0, c, 0]. (Interleaved pairs (2,3) would
  // leave dim 0 at zero.)
  //   position 0: only key 0, out = v0 = e0; h = [2,0,0,0] + e0 = [3,0,0,0]; rms 3/2 -> logits [2,0,0,0].
  //   position 1: scores (·1/√4): with key 0 (e0, unrotated) -s/2; with key 1 (rotated like q) (s²+c²)/2.
  //   P0 = 1 / (1 + exp(s1 - s0)), P1 = 1 - P0; out = P0·e0 + P1·e2 (values are not rotated);
  //   h = [0,0,2,0] + out = [P0, 0, 2 + P1, 0]; logits = h / sqrt((P0² + (2 + P1)²) / 4).
  const H = 4;
  const embed = [2, 0, 0, 0, 0, 0, 2, 0, 0, 2, 0, 0, 0, 0, 0, 2];
  const half = identity(4, 0.5);
  const model = probeModel(H, 2, 4, 4, embed, { q: half, k: half, v: half, o: identity(4) }, ones(4), identity(4));
  const config = llamaConfig({ vocab_size: 4, hidden_size: H, intermediate_size: 2, num_attention_heads: 1, rms_norm_eps: 0, rope_theta: 10000.0 });
  const logits = referenceLogits(config, model, [0, 1]);
  const c = fr(Math.cos(1));
  const s = fr(Math.sin(1));
  const s0 = -s / 2;
  const s1 = (s * s + c * c) / 2;
  const P0 = 1 / (1 + Math.exp(s1 - s0));
  const P1 = 1 - P0;
  const rms = Math.sqrt((P0 * P0 + (2 + P1) ** 2) / 4);
  assertClose(logits, [2, 0, 0, 0, P0 / rms, 0, (2 + P1) / rms, 0], 1e-12, "RoPE");
});

test("hand: GQA query head h reads KV head ⌊h / (nH/nKV)⌋", () => {
  // H = 8, nH = 4, nKV = 2, D = 2, one token (so each head's attention is 1 on itself, RoPE at position
  // 0 is the identity). Embedding x = [1,1,1,-1,1,1,-1,-1] has mean square 1 -> a = x (ε = 0).
  // W_v picks a0..a3: KV head 0 = [a0, a1] = [1, 1], KV head 1 = [a2, a3] = [1, -1].
  // Heads 0,1 -> KV 0 and heads 2,3 -> KV 1: concat = [1,1, 1,1, 1,-1, 1,-1]; o_proj = I8.
  // h = x + concat = [2,2,2,0,2,0,0,-2]; mean square 20/8 = 2.5; logits (lm_head I8) = h / sqrt(2.5).
  // (h mod nKV would give concat [1,1, 1,-1, 1,1, 1,-1] and h = [2,2,2,-2,2,2,0,-2].)
  const H = 8;
  const x = [1, 1, 1, -1, 1, 1, -1, -1];
  const embed = [...x, ...new Array<number>(7 * H).fill(0.5)];
  const v = [...identity(8).slice(0, 4 * 8)];
  const model = probeModel(H, 2, 8, 4, embed, { q: zeros(64), k: zeros(32), v, o: identity(8) }, ones(8), identity(8));
  const config = llamaConfig({ vocab_size: 8, hidden_size: H, intermediate_size: 2, num_attention_heads: 4, num_key_value_heads: 2, rms_norm_eps: 0 });
  const r = Math.sqrt(2.5);
  assertClose(referenceLogits(config, model, [0]), [2, 2, 2, 0, 2, 0, 0, -2].map((h) => h / r), 1e-12, "GQA");
});

test("hand: causal mask (j ≤ i) and sliding window (i − j < W, the current token included)", () => {
  // mistral, H = D = 2, one head, ε = 0, W_q = 0: every visible score is 0, so attention is the plain
  // mean of the visible values. Embeddings [1,1], [1,-1], [-1,1] have mean square 1 -> a = x; W_v = I,
  // o_proj = I, MLP silent, lm_head rows [1,0], [0,1], [1,1] -> logits [n0, n1, n0 + n1] with n = h/rms(h).
  // ids [0, 1, 2, 0]:
  //  causal: out = [1,1], [1,0], [1/3,1/3], [1/2,1/2]; h = x + out = [2,2], [2,-1], [-2/3,4/3], [3/2,3/2]
  //          n = [1,1], [2,-1]/sqrt(2.5), [-2/3,4/3]/sqrt(10/9) = [-1,2]/sqrt(2.5), [1,1].
  //  W = 2:  out = [1,1], [1,0], mean([1,-1],[-1,1]) = [0,0], mean([-1,1],[1,1]) = [0,1];
  //          h = [2,2], [2,-1], [-1,1], [1,2]; n = [1,1], [2,-1]/sqrt(2.5), [-1,1], [1,2]/sqrt(2.5).
  const embed = [1, 1, 1, -1, -1, 1];
  const m = tensors([
    ["model.embed_tokens.weight", [3, 2], embed],
    ["model.layers.0.input_layernorm.weight", [2], [1, 1]],
    ["model.layers.0.self_attn.q_proj.weight", [2, 2], [0, 0, 0, 0]],
    ["model.layers.0.self_attn.k_proj.weight", [2, 2], [0.3, -0.7, 1.1, 0.2]],
    ["model.layers.0.self_attn.v_proj.weight", [2, 2], identity(2)],
    ["model.layers.0.self_attn.o_proj.weight", [2, 2], identity(2)],
    ["model.layers.0.post_attention_layernorm.weight", [2], [1, 1]],
    ["model.layers.0.mlp.gate_proj.weight", [2, 2], [1, 2, 3, 4]],
    ["model.layers.0.mlp.up_proj.weight", [2, 2], [1, -1, 1, -1]],
    ["model.layers.0.mlp.down_proj.weight", [2, 2], zeros(4)],
    ["model.norm.weight", [2], [1, 1]],
    ["lm_head.weight", [3, 2], [1, 0, 0, 1, 1, 1]],
  ]);
  const base = { model_type: "mistral", vocab_size: 3, hidden_size: 2, intermediate_size: 2, num_hidden_layers: 1, num_attention_heads: 1, num_key_value_heads: 1, rms_norm_eps: 0 };
  const row = (n0: number, n1: number): number[] => [n0, n1, n0 + n1];
  const r = Math.sqrt(2.5);
  const causal = referenceLogits({ ...base, sliding_window: null }, m, [0, 1, 2, 0]);
  assertClose(causal, [...row(1, 1), ...row(2 / r, -1 / r), ...row(-1 / r, 2 / r), ...row(1, 1)], 1e-12, "causal");
  const sliding = referenceLogits({ ...base, sliding_window: 2 }, m, [0, 1, 2, 0]);
  assertClose(sliding, [...row(1, 1), ...row(2 / r, -1 / r), ...row(-1, 1), ...row(1 / r, 2 / r)], 1e-12, "window 2");
  // mistral's absent sliding_window means 4096: with 4 tokens, the causal result.
  assertClose(referenceLogits(base, m, [0, 1, 2, 0]), causal, 0, "default window 4096");
});

test("hand: GPT-2 Conv1D weights are [in, out] (y = x·W), c_attn splits q | k | v", () => {
  // H = 4, one head, one token, ε = 0. x = wte[0] + wpe[0] = [1,-1,1,-1]: mean 0, variance 1, so
  // LN_1(x) = x (weight 1, bias 0). c_attn's q block is zero, k block arbitrary, v block (columns 8..11)
  // I4: v = x, and one token attends only to itself, so the attention output is x.
  // c_proj W[k][j] = 1 iff j = k + 1: y_j = x_{j-1} -> y = [0, 1, -1, 1]. (Read as [out, in] it would give
  // y_j = x_{j+1} = [-1, 1, -1, 0].) h = x + y = [1, 0, 0, 0]. The MLP's c_fc is zero with zero bias and
  // gelu_new(0) = 0, so it adds c_proj's bias, 0. LN_f([1,0,0,0]): mean 1/4, deviations [3/4, -1/4, -1/4,
  // -1/4], variance (9 + 3)/64 = 3/16, so n = [√3, -1/√3, -1/√3, -1/√3].
  // Tied lm_head = wte rows [1,-1,1,-1], e0, e1, e3 -> logits [√3 + 1/√3 - 1/√3 + 1/√3, √3, -1/√3, -1/√3]
  // = [4/√3, √3, -1/√3, -1/√3].
  const cAttn = new Array<number>(4 * 12).fill(0);
  for (let k = 0; k < 4; k++) {
    for (let j = 0; j < 4; j++) cAttn[k * 12 + 4 + j] = ((k + 2 * j) % 3) - 1; // k block: anything
    cAttn[k * 12 + 8 + k] = 1; // v block: identity
  }
  const shift = new Array<number>(16).fill(0);
  for (let k = 0; k < 3; k++) shift[k * 4 + k + 1] = 1;
  const m = tensors([
    ["wte.weight", [4, 4], [1, -1, 1, -1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]],
    ["wpe.weight", [2, 4], [0, 0, 0, 0, 5, 5, 5, 5]],
    ["h.0.ln_1.weight", [4], ones(4)],
    ["h.0.ln_1.bias", [4], zeros(4)],
    ["h.0.attn.c_attn.weight", [4, 12], cAttn],
    ["h.0.attn.c_attn.bias", [12], zeros(12)],
    ["h.0.attn.c_proj.weight", [4, 4], shift],
    ["h.0.attn.c_proj.bias", [4], zeros(4)],
    ["h.0.ln_2.weight", [4], ones(4)],
    ["h.0.ln_2.bias", [4], zeros(4)],
    ["h.0.mlp.c_fc.weight", [4, 4], zeros(16)],
    ["h.0.mlp.c_fc.bias", [4], zeros(4)],
    ["h.0.mlp.c_proj.weight", [4, 4], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]],
    ["h.0.mlp.c_proj.bias", [4], zeros(4)],
    ["ln_f.weight", [4], ones(4)],
    ["ln_f.bias", [4], zeros(4)],
  ]);
  const config = { model_type: "gpt2", vocab_size: 4, n_embd: 4, n_layer: 1, n_head: 1, n_positions: 2, n_inner: 4, layer_norm_epsilon: 0 };
  const s3 = Math.sqrt(3);
  assertClose(referenceLogits(config, m, [0]), [4 / s3, s3, -1 / s3, -1 / s3], 1e-12, "Conv1D");
  // The same tensors under GPT2LMHeadModel's `transformer.` prefix give the same logits.
  const prefixed = new Map([...m].map(([k, t]) => [`transformer.${k}`, t]));
  assertClose(referenceLogits(config, prefixed, [0]), [4 / s3, s3, -1 / s3, -1 / s3], 1e-12, "Conv1D, prefixed");
  // n_positions is a hard limit on T.
  assert.throws(() => referenceLogits(config, m, [0, 1, 2]), /3 tokens exceed gpt2's n_positions 2/);
});

test("hand: erf and the activations", () => {
  // erf values from tables (Abramowitz & Stegun 7.1; to 16 digits).
  const table: [number, number][] = [
    [0, 0],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [-1.5, -0.9661051464753108],
    [2, 0.9953222650189527],
    [3, 0.9999779095030014],
    [4, 0.9999999845827421],
  ];
  for (const [x, e] of table) assert.ok(Math.abs(erf(x) - e) <= 2e-15, `erf(${x}) = ${erf(x)}, table ${e}`);
  // gelu (exact) and gelu_new (tanh) are different functions: a config saying "gelu" must not get tanh.
  const exact = resolveDecoderConfig({ model_type: "gpt2", activation_function: "gelu" });
  const tanh = resolveDecoderConfig({ model_type: "gpt2" });
  assert.equal(exact.activation, "gelu_erf");
  assert.equal(tanh.activation, "gelu_tanh");
  assert.equal(resolveDecoderConfig({ model_type: "llama", hidden_act: "swish" }).activation, "silu");
  assert.throws(() => resolveDecoderConfig({ model_type: "llama", hidden_act: "gelu_10" }), /hidden_act "gelu_10" is not a supported activation/);
});

// =============================================================================================
// 3. config.json resolution (decoder-forward.md 2.2, 2.3, 3.6)

test("config: class defaults that are not H/nH or off", () => {
  const q3 = resolveDecoderConfig({ model_type: "qwen3", hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 2 });
  assert.equal(q3.headDim, 128, "qwen3 head_dim absent is 128");
  assert.throws(() => resolveDecoderConfig({ model_type: "qwen3", head_dim: null }), /head_dim is null/);
  assert.equal(resolveDecoderConfig({ model_type: "qwen2", num_attention_heads: 32 }).kvHeads, 32);
  assert.equal(resolveDecoderConfig({ model_type: "qwen2", num_attention_heads: 8, num_key_value_heads: null }).kvHeads, 8);
  assert.equal(resolveDecoderConfig({ model_type: "mistral" }).kvHeads, 8);
  assert.equal(resolveDecoderConfig({ model_type: "llama", num_attention_heads: 16 }).kvHeads, 16);
  assert.equal(resolveDecoderConfig({ model_type: "llama", hidden_size: 64, num_attention_heads: 4, head_dim: null }).headDim, 16);
  assert.equal(resolveDecoderConfig({ model_type: "qwen2", hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 4, head_dim: 32 }).headDim, 32, "a present head_dim is honoured");
  const m = resolveDecoderConfig({ model_type: "mistral", num_hidden_layers: 3 });
  assert.deepEqual(m.slidingWindow, [4096, 4096, 4096], "mistral sliding_window absent is 4096 on every layer");
  assert.deepEqual(resolveDecoderConfig({ model_type: "mistral", num_hidden_layers: 2, sliding_window: null }).slidingWindow, [null, null]);
  const l = resolveDecoderConfig({ model_type: "llama" });
  assert.equal(l.eps, 1e-6);
  assert.equal(l.tie, false);
  assert.equal(l.rope!.theta, 10000);
  const g = resolveDecoderConfig({ model_type: "gpt2", n_embd: 32, n_head: 4 });
  assert.equal(g.intermediate, 128, "n_inner absent is 4H");
  assert.equal(g.tie, true);
  assert.equal(g.eps, 1e-5);
  assert.equal(resolveDecoderConfig({ model_type: "gpt2", n_embd: 32, n_head: 4, n_inner: null }).intermediate, 128);
});

test("config: qwen sliding windows only with use_sliding_window; layer_types wins; max_window_layers", () => {
  const off = resolveDecoderConfig({ model_type: "qwen2", num_hidden_layers: 3, sliding_window: 4, max_window_layers: 0 });
  assert.deepEqual(off.slidingWindow, [null, null, null]);
  const on = resolveDecoderConfig({ model_type: "qwen2", num_hidden_layers: 3, use_sliding_window: true, sliding_window: 4, max_window_layers: 1 });
  assert.deepEqual(on.slidingWindow, [null, 4, 4]);
  const defaultFrom = resolveDecoderConfig({ model_type: "qwen3", num_hidden_layers: 30, use_sliding_window: true });
  assert.deepEqual(defaultFrom.slidingWindow.map((w, i) => (w === null ? null : i)).filter((x) => x !== null), [28, 29], "max_window_layers default 28, window 4096");
  assert.equal(defaultFrom.slidingWindow[29], 4096);
  const typed = resolveDecoderConfig({
    model_type: "qwen2", num_hidden_layers: 2, use_sliding_window: true, sliding_window: 4, max_window_layers: 0,
    layer_types: ["sliding_attention", "full_attention"],
  });
  assert.deepEqual(typed.slidingWindow, [4, null]);
  // transformers 5.18 crashes on a sliding layer with sliding off: refused.
  assert.throws(
    () => resolveDecoderConfig({ model_type: "qwen2", num_hidden_layers: 1, sliding_window: 4, layer_types: ["sliding_attention"] }),
    /layer_types\[0\] is sliding_attention but sliding is off/,
  );
});

test("config: biases per family", () => {
  const q2 = resolveDecoderConfig({ model_type: "qwen2", attention_bias: false });
  assert.deepEqual([q2.qkvBias, q2.oBias, q2.mlpBias], [true, false, false], "qwen2: q/k/v always, o never");
  const q3 = resolveDecoderConfig({ model_type: "qwen3", attention_bias: true });
  assert.deepEqual([q3.qkvBias, q3.oBias, q3.qkNorm], [true, true, true]);
  const l = resolveDecoderConfig({ model_type: "llama", attention_bias: true, mlp_bias: true });
  assert.deepEqual([l.qkvBias, l.oBias, l.mlpBias], [true, true, true]);
  const m = resolveDecoderConfig({ model_type: "mistral", attention_bias: true, mlp_bias: true });
  assert.deepEqual([m.qkvBias, m.oBias, m.mlpBias], [false, false, false], "mistral has no bias keys");
});

test("config: RoPE from both layouts (decoder-forward.md 2.3)", () => {
  const v5 = resolveDecoderConfig({ model_type: "llama", rope_parameters: { rope_type: "default", rope_theta: 500000 } });
  assert.deepEqual(v5.rope, { type: "default", theta: 500000, factor: 1 });
  const legacy = resolveDecoderConfig({ model_type: "llama", rope_theta: 250000, rope_scaling: { type: "linear", factor: 2 } });
  assert.deepEqual(legacy.rope, { type: "linear", theta: 250000, factor: 2 });
  // A non-empty rope_scaling beats rope_parameters; an empty one does not.
  const both = resolveDecoderConfig({ model_type: "llama", rope_scaling: { rope_type: "linear", factor: 3 }, rope_parameters: { rope_type: "default", rope_theta: 7 } });
  assert.deepEqual(both.rope, { type: "linear", theta: 10000, factor: 3 });
  const empty = resolveDecoderConfig({ model_type: "llama", rope_scaling: {}, rope_parameters: { rope_type: "default", rope_theta: 7 } });
  assert.deepEqual(empty.rope, { type: "default", theta: 7, factor: 1 });
  // llama3: a top-level original_max_position_embeddings wins; else the parameter; else max_position_embeddings.
  const l3 = { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
  assert.equal(resolveDecoderConfig({ model_type: "llama", rope_scaling: l3, original_max_position_embeddings: 64 }).rope!.originalMaxPositions, 64);
  assert.equal(resolveDecoderConfig({ model_type: "llama", rope_scaling: l3 }).rope!.originalMaxPositions, 8192);
  const { original_max_position_embeddings: _, ...l3NoL0 } = l3;
  assert.equal(resolveDecoderConfig({ model_type: "llama", rope_scaling: l3NoL0, max_position_embeddings: 300 }).rope!.originalMaxPositions, 300);
  assert.equal(resolveDecoderConfig({ model_type: "llama", rope_scaling: l3NoL0 }).rope!.originalMaxPositions, 2048, "llama's default max_position_embeddings");
  // Refused.
  assert.throws(() => resolveDecoderConfig({ model_type: "llama", rope_scaling: { rope_type: "yarn", factor: 4 } }), /RoPE type "yarn" is not supported/);
  assert.throws(() => resolveDecoderConfig({ model_type: "llama", rope_scaling: { type: "dynamic", factor: 4 } }), /RoPE type "dynamic"/);
  assert.throws(() => resolveDecoderConfig({ model_type: "llama", partial_rotary_factor: 0.5 }), /partial_rotary_factor 0.5/);
  assert.throws(() => resolveDecoderConfig({ model_type: "llama", rope_scaling: { rope_type: "linear" } }), /rope_scaling has no factor/);
});

test("config: refusals name the key", () => {
  assert.throws(() => resolveDecoderConfig({ model_type: "gemma2" }), /model_type "gemma2" is not supported \(llama, mistral, qwen2, qwen3, gpt2\)/);
  assert.throws(() => resolveDecoderConfig({}), /model_type undefined is not supported/);
  assert.throws(() => resolveDecoderConfig({ model_type: "llama", hidden_size: 32.5 }), /hidden_size must be a positive integer/);
  assert.throws(() => resolveDecoderConfig({ model_type: "llama", num_attention_heads: 6, num_key_value_heads: 4 }), /not a multiple of num_key_value_heads/);
  assert.throws(() => resolveDecoderConfig({ model_type: "gpt2", add_cross_attention: true }), /add_cross_attention/);
  assert.throws(() => resolveDecoderConfig({ model_type: "gpt2", n_embd: 32, hidden_size: 64 }), /n_embd 32 and hidden_size 64 disagree/);
  assert.equal(resolveDecoderConfig({ model_type: "gpt2", hidden_size: 64, n_head: 4 }).hidden, 64, "alias alone");
});

test("tensors: missing, mis-shaped and unexpected tensors are refused; stale buffers are ignored", () => {
  const model = decoderModel("llama-gqa-untied");
  const ids = [1, 2, 3];
  const missing = new Map(model.tensors);
  missing.delete("model.layers.1.mlp.up_proj.weight");
  assert.throws(() => referenceLogits(model.config, missing, ids), /missing tensor model\.layers\.1\.mlp\.up_proj\.weight/);
  const wrong = new Map(model.tensors);
  wrong.set("model.norm.weight", { shape: [47], values: new Float32Array(47) });
  assert.throws(() => referenceLogits(model.config, wrong, ids), /model\.norm\.weight has shape \[47\], expected \[48\]/);
  const extra = new Map(model.tensors);
  extra.set("model.layers.0.self_attn.q_proj.bias", { shape: [48], values: new Float32Array(48) });
  assert.throws(() => referenceLogits(model.config, extra, ids), /unexpected tensor model\.layers\.0\.self_attn\.q_proj\.bias/);
  const stale = new Map(model.tensors);
  stale.set("model.layers.0.self_attn.rotary_emb.inv_freq", { shape: [6], values: new Float32Array(6).fill(9) });
  assert.deepEqual(referenceLogits(model.config, stale, ids), referenceLogits(model.config, model.tensors, ids));
  assert.throws(() => referenceLogits(model.config, model.tensors, [1, 160]), /token id 160 is outside \[0, 160\)/);
  assert.throws(() => referenceLogits(model.config, model.tensors, []), /empty id sequence/);
});

// =============================================================================================
// 4. Scores (issue 9's definitions)

test("scores: windows are consecutive, non-overlapping, the last one shorter; max tokens cut first", () => {
  assert.deepEqual(referenceWindows([0, 1, 1, 0, 1], 3), [[0, 1, 1], [0, 1]]);
  assert.deepEqual(referenceWindows([0, 1, 1, 0, 1], 3, 4), [[0, 1, 1], [0]]);
  assert.deepEqual(referenceWindows([0, 1, 1, 0, 1], 5), [[0, 1, 1, 0, 1]]);
  assert.deepEqual(referenceWindows([0, 1, 1, 0, 1], 2), [[0, 1], [1, 0], [1]]);
  assert.throws(() => referenceWindows([0, 1], 0), /context must be a positive integer/);
});

test("scores: hand-checked perplexity, bits per byte, KL and top-1 agreement over two windows", () => {
  // V = 2, ids [0, 1, 1, 0, 1], context 3: windows [0, 1, 1] and [0, 1]. Position t predicts id t+1;
  // a window's last row predicts nothing (its values below are deliberately wild).
  //   window 1 row 0: [0, ln 3]  -> P = [1/4, 3/4], target 1: NLL = ln(4/3)
  //   window 1 row 1: [ln 3, 0]  -> P = [3/4, 1/4], target 1: NLL = ln 4
  //   window 2 row 0: [ln 3, 0]  -> P = [3/4, 1/4], target 1: NLL = ln 4
  // tokens 5, predicted 3 (not 4: each window's first token is unpredicted), ΣNLL = ln(64/3),
  // mean = ln(64/3)/3, perplexity = (64/3)^(1/3); 10 UTF-8 bytes: bpb = log2(64/3)/10 = (6 − log2 3)/10.
  // "against" model A, same positions:
  //   w1 r0: [ln 3, 0] (P_a = [3/4, 1/4]) vs P_e = [1/4, 3/4]: KL = 3/4 ln 3 + 1/4 ln(1/3) = ½ ln 3; argmax 0 vs 1
  //   w1 r1: [ln 2, 0] (P_a = [2/3, 1/3]) vs P_e = [3/4, 1/4]: KL = 2/3 ln(8/9) + 1/3 ln(4/3)
  //          = 8/3 ln 2 − 5/3 ln 3 ≈ 0.01737 (the reverse KL(P_e ‖ P_a) = 7/4 ln 3 − 11/4 ln 2 ≈ 0.01642);
  //          argmax 0 vs 0 (agree)
  //   w2 r0: [0, ln 3] (P_a = [1/4, 3/4]) vs P_e = [3/4, 1/4]: KL = ½ ln 3; argmax 1 vs 0
  //   mean KL = (ln 3 + 8/3 ln 2 − 5/3 ln 3) / 3 = (8 ln 2 − 2 ln 3) / 9; top-1 agreement 1/3.
  //   Model B equals the evaluated model: KL 0, agreement 1.
  const L3 = Math.log(3);
  const w1 = [0, L3, L3, 0, 40, -40];
  const w2 = [L3, 0, -40, 40];
  const a1 = [L3, 0, Math.LN2, 0, -40, 40];
  const a2 = [0, L3, 40, -40];
  const s = referenceScores(
    [
      { ids: [0, 1, 1], logits: w1, against: [a1, w1] },
      { ids: [0, 1], logits: w2, against: [a2, w2] },
    ],
    2,
    { utf8Bytes: 10 },
  );
  assert.equal(s.tokens, 5);
  assert.equal(s.predicted, 3);
  const close = (x: number, y: number, what: string): void => assert.ok(Math.abs(x - y) <= 1e-14, `${what}: ${x} vs ${y}`);
  close(s.nllSum, Math.log(64 / 3), "ΣNLL");
  close(s.nllMean, Math.log(64 / 3) / 3, "mean NLL");
  close(s.perplexity, Math.cbrt(64 / 3), "perplexity");
  close(s.bitsPerByte!, (6 - Math.log2(3)) / 10, "bits per byte");
  close(s.against[0]!.kl, (8 * Math.LN2 - 2 * L3) / 9, "KL(A ‖ evaluated)");
  close(s.against[0]!.top1Agreement, 1 / 3, "top-1 agreement with A");
  close(s.against[1]!.kl, 0, "KL(B ‖ evaluated)");
  assert.equal(s.against[1]!.top1Agreement, 1);
  // Without a byte count there is no bits per byte; a window without predictions adds tokens only.
  const t = referenceScores([{ ids: [0, 1, 1], logits: w1 }, { ids: [1], logits: [0, 0] }], 2);
  assert.equal(t.bitsPerByte, null);
  assert.equal(t.tokens, 4);
  assert.equal(t.predicted, 2);
  close(t.nllSum, Math.log(4 / 3) + Math.log(4), "ΣNLL, single-token window");
  assert.throws(() => referenceScores([{ ids: [1], logits: [0, 0] }], 2), /no predicted tokens/);
  assert.throws(() => referenceScores([{ ids: [0, 1], logits: [0, 0, 0] }], 2), /3 logits for 2 ids × vocab 2/);
});

test("scores: referenceEvaluation runs each window from position 0 (GPT-2's learned positions show it)", () => {
  const model = decoderModel("gpt2-unprefixed");
  const ids = decoderIds(160, 20, 3);
  const evaluation = referenceEvaluation(model, ids, { context: 8, text: "héllo" });
  // Window 2 is ids[8..16) at positions 0..7: its logits are those of a fresh pass on exactly those ids,
  // which differ from rows 8..15 of one 20-token pass (positions 8..15).
  const fresh = referenceLogits(model.config, model.tensors, ids.slice(8, 16));
  const long = referenceLogits(model.config, model.tensors, ids);
  assert.ok(maxAbsDiff(fresh, long.subarray(8 * 160, 16 * 160)) > 0.1, "positions matter for gpt2");
  const windows = [ids.slice(0, 8), ids.slice(8, 16), ids.slice(16)];
  const manual = referenceScores(windows.map((w) => ({ ids: w, logits: referenceLogits(model.config, model.tensors, w) })), 160, { utf8Bytes: 6 });
  assert.equal(evaluation.predicted, 7 + 7 + 3);
  assert.equal(evaluation.nllSum, manual.nllSum);
  assert.equal(evaluation.bitsPerByte, manual.bitsPerByte, "\"héllo\" is 6 UTF-8 bytes");
});

// =============================================================================================
// 5. The tiny random checkpoints

for (const variant of DECODER_VARIANTS) {
  test(`model ${variant}: deterministic, accepted by the reference, logits of a few units (${describeVariant(variant)})`, () => {
    const a = decoderModel(variant);
    const b = decoderModel(variant);
    assert.deepEqual([...a.tensors.keys()], [...b.tensors.keys()]);
    for (const [name, t] of a.tensors) assert.deepEqual(t.values, b.tensors.get(name)!.values, name);
    const other = decoderModel(variant, { seed: 2 });
    assert.notDeepEqual(other.tensors.get([...a.tensors.keys()][2]!)!.values, a.tensors.get([...a.tensors.keys()][2]!)!.values, "seed changes the values");
    const c = resolveDecoderConfig(a.config);
    assert.ok(c.layers === 2 && c.hidden >= 32 && c.hidden <= 64 && c.vocab >= 100 && c.vocab <= 300, JSON.stringify(c));
    const logits = referenceLogits(a.config, a.tensors, decoderIds(c.vocab, 24));
    let max = 0;
    for (const z of logits) {
      assert.ok(Number.isFinite(z));
      max = Math.max(max, Math.abs(z));
    }
    assert.ok(max >= 1 && max <= 30, `max |logit| ${max}`);
  });
}

test("models: each variant's feature is live (switching it off moves the logits; dead settings do not)", () => {
  const ids = decoderIds(128, 16, 5);
  const logitsOf = (variant: (typeof DECODER_VARIANTS)[number], edit: (c: Record<string, unknown>) => void): [Float64Array, Float64Array] => {
    const m = decoderModel(variant);
    const edited = structuredClone(m.config);
    edit(edited);
    return [referenceLogits(m.config, m.tensors, ids), referenceLogits(edited, m.tensors, ids)];
  };
  {
    // Window 5: rows 0..4 see no more than 5 tokens either way; later rows lose their oldest keys.
    const [on, off] = logitsOf("mistral-sliding", (c) => (c.sliding_window = null));
    assert.equal(maxAbsDiff(on.subarray(0, 5 * 128), off.subarray(0, 5 * 128)), 0);
    assert.ok(maxAbsDiff(on, off) > 1e-2, "sliding window has no effect");
  }
  {
    const [on, off] = logitsOf("qwen2-sliding", (c) => (c.use_sliding_window = false));
    assert.ok(maxAbsDiff(on, off) > 1e-2, "qwen2 sliding has no effect");
  }
  {
    const [on, off] = logitsOf("qwen2-tied-bias", (c) => delete c.sliding_window);
    assert.equal(maxAbsDiff(on, off), 0, "sliding_window without use_sliding_window must be dead");
  }
  for (const variant of ["llama-llama3", "llama-linear-bias"] as const) {
    const [on, off] = logitsOf(variant, (c) => delete c.rope_scaling);
    assert.ok(maxAbsDiff(on, off) > 1e-2, `${variant}: rope scaling has no effect`);
  }
  {
    const [on, off] = logitsOf("gpt2-prefixed", (c) => (c.scale_attn_by_inverse_layer_idx = false));
    assert.ok(maxAbsDiff(on, off) > 1e-2, "scale_attn_by_inverse_layer_idx has no effect");
  }
});

test("models: BF16 values are BF16 and are what the written folder holds; sharded F32 round trip", async () => {
  const dir = await mkdtemp(join(tmpdir(), "ws-decref-"));
  try {
    for (const [variant, dtype, shards] of [["qwen3-qknorm", "BF16", 1], ["gpt2-unprefixed", "BF16", 3], ["llama-tied-headdim", "F32", 4]] as const) {
      const model = decoderModel(variant, { dtype });
      if (dtype === "BF16") {
        for (const [name, t] of model.tensors) {
          for (const v of t.values) assert.equal(roundToDtype(v, "BF16"), v, `${name} holds a non-BF16 value`);
        }
        assert.equal(model.config.torch_dtype, "bfloat16");
      }
      const out = join(dir, `${variant}-${dtype}`);
      await writeDecoderModel(out, model, { shards });
      const back = await readDecoderModel(out);
      assert.deepEqual(back.config, model.config);
      assert.deepEqual([...back.tensors.keys()].sort(), [...model.tensors.keys()].sort());
      for (const [name, t] of model.tensors) {
        assert.deepEqual(back.tensors.get(name)!.shape, t.shape, name);
        assert.deepEqual(back.tensors.get(name)!.values, t.values, name);
      }
      const ids = decoderIds(resolveDecoderConfig(model.config).vocab, 12);
      assert.deepEqual(referenceLogits(back.config, back.tensors, ids), referenceLogits(model.config, model.tensors, ids));
    }
    // BF16 rounding really changed the values (the F32 model is not already BF16).
    const f32 = decoderModel("qwen3-qknorm").tensors.get("model.layers.0.self_attn.q_proj.weight")!.values;
    const bf16 = decoderModel("qwen3-qknorm", { dtype: "BF16" }).tensors.get("model.layers.0.self_attn.q_proj.weight")!.values;
    assert.ok(maxAbsDiff(f32, bf16) > 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
