// Permutation specs for transformers (src/align/architectures.ts) against forward passes written for the
// tests (tests/reference/llama.ts, gpt2.ts): a random valid permutation of every group leaves the
// logits unchanged, a wrong one does not, and weight matching recovers a planted permutation.
import assert from "node:assert/strict";
import { test } from "node:test";
import { gpt2Spec, inferSpec, llamaSpec } from "../src/align/architectures";
import { nestedGroups } from "../src/align/nested-groups";
import { checkSpec, type PermutationSpec, type Permutations } from "../src/align/spec";
import { applyPermutations, weightMatching } from "../src/align/weight-matching";
import { gpt2Forward, randomGpt2, type Gpt2Config } from "./reference/gpt2";
import { llamaForward, randomLlama, type LlamaConfig, type RefTensors } from "./reference/llama";

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x / 4294967296;
  };
}

function randomPermutation(n: number, r: () => number): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  // Never the identity (n > 1), so every group really moves something.
  do {
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [p[i], p[j]] = [p[j]!, p[i]!];
    }
  } while (n > 1 && p.every((v, i) => v === i));
  return p;
}

const shapesOf = (m: RefTensors) => new Map([...m].map(([k, t]) => [k, t.shape]));

function randomPermutations(spec: PermutationSpec, m: RefTensors, seed: number): Permutations {
  const r = rng(seed);
  return new Map([...checkSpec(spec, shapesOf(m)).sizes].map(([g, n]) => [g, randomPermutation(n, r)]));
}

function maxDifference(x: Float64Array, y: Float64Array): number {
  let d = 0;
  for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i]! - y[i]!));
  return d;
}

const TOKENS = [3, 17, 0, 9, 9, 12, 5];

function llamaConfigJson(c: LlamaConfig) {
  return {
    model_type: "llama", hidden_size: c.hidden, num_attention_heads: c.heads, num_key_value_heads: c.kvHeads,
    head_dim: c.headDim, num_hidden_layers: c.layers, intermediate_size: c.intermediate, tie_word_embeddings: c.tied,
  };
}

const LLAMAS: LlamaConfig[] = [
  { vocab: 20, hidden: 16, layers: 2, heads: 4, kvHeads: 2, headDim: 6, intermediate: 24, tied: false },
  { vocab: 20, hidden: 12, layers: 2, heads: 3, kvHeads: 3, headDim: 4, intermediate: 10, tied: true },
  { vocab: 20, hidden: 8, layers: 1, heads: 4, kvHeads: 1, headDim: 4, intermediate: 12, tied: false },
];

test("Llama spec: groups and sizes (residual, MLP, KV groups, query heads in a group, V/O dims per KV head)", () => {
  const c = LLAMAS[0]!;
  const checked = checkSpec(inferSpec("auto", llamaConfigJson(c), shapesOf(randomLlama(c, 1))), shapesOf(randomLlama(c, 1)));
  assert.deepEqual(Object.fromEntries(checked.sizes), {
    P_res: 16,
    "layers.0.P_ff": 24, "layers.0.P_kv": 2, "layers.0.P_q.0": 2, "layers.0.P_q.1": 2, "layers.0.P_vo.0": 6, "layers.0.P_vo.1": 6,
    "layers.1.P_ff": 24, "layers.1.P_kv": 2, "layers.1.P_q.0": 2, "layers.1.P_q.1": 2, "layers.1.P_vo.0": 6, "layers.1.P_vo.1": 6,
  });
});

test("Llama: a random permutation of every group leaves the logits unchanged (GQA, MHA, MQA; tied and untied)", () => {
  for (const [index, c] of LLAMAS.entries()) {
    const model = randomLlama(c, 10 + index);
    const spec = llamaSpec(llamaConfigJson(c), shapesOf(model));
    const before = llamaForward(c, model, TOKENS);
    for (const seed of [1, 2, 3]) {
      const permuted = applyPermutations(spec, model, randomPermutations(spec, model, seed * 100 + index));
      const d = maxDifference(before, llamaForward(c, permuted, TOKENS));
      assert.ok(d < 1e-4, `config ${index}, seed ${seed}: logits moved by ${d}`);
    }
  }
});

test("Qwen3 without head_dim in config.json: the spec takes Qwen3's default, 128, not hidden / heads", () => {
  // hidden 16 with 2 heads: hidden / heads is 8, so the spec failed on q_proj's 256 rows (2 x 128).
  const c: LlamaConfig = { vocab: 20, hidden: 16, layers: 1, heads: 2, kvHeads: 1, headDim: 128, intermediate: 12, tied: false };
  const model = randomLlama(c, 31);
  const { head_dim: _, ...config } = { ...llamaConfigJson(c), model_type: "qwen3" };
  const spec = llamaSpec(config, shapesOf(model));
  const permuted = applyPermutations(spec, model, randomPermutations(spec, model, 7));
  const d = maxDifference(llamaForward(c, model, TOKENS), llamaForward(c, permuted, TOKENS));
  assert.ok(d < 1e-4, `logits moved by ${d}`);
  assert.equal(checkSpec(spec, shapesOf(model)).sizes.get("layers.0.P_vo.0"), 128);
});

test("Llama: permutations the spec leaves out (Q/K dims under RoPE, heads across KV groups) do change the logits", () => {
  const c = LLAMAS[0]!;
  const model = randomLlama(c, 5);
  const before = llamaForward(c, model, TOKENS);
  // Swap two dims inside q and k heads (a within-head Q/K permutation): RoPE pairs dims, so not valid.
  const qkSpec: PermutationSpec = {
    "model.layers.0.self_attn.q_proj.weight": [[{ size: 4, group: null }, { size: 6, group: "qk" }], null],
    "model.layers.0.self_attn.k_proj.weight": [[{ size: 2, group: null }, { size: 6, group: "qk" }], null],
  };
  const swap = new Map([["qk", Int32Array.from([1, 0, 2, 3, 4, 5])]]);
  assert.ok(maxDifference(before, llamaForward(c, applyPermutations(qkSpec, model, swap), TOKENS)) > 1e-3);
  // Move query heads 0 and 2 (different KV groups) without their KV heads.
  const headSpec: PermutationSpec = {
    "model.layers.0.self_attn.q_proj.weight": [[{ size: 4, group: "h" }, { size: 6, group: null }], null],
    "model.layers.0.self_attn.o_proj.weight": [null, [{ size: 4, group: "h" }, { size: 6, group: null }]],
  };
  const cross = new Map([["h", Int32Array.from([2, 1, 0, 3])]]);
  assert.ok(maxDifference(before, llamaForward(c, applyPermutations(headSpec, model, cross), TOKENS)) > 1e-3);
});

const GPT2S: Gpt2Config[] = [
  { vocab: 20, positions: 8, hidden: 12, layers: 2, heads: 3, inner: 20, tied: true },
  { vocab: 20, positions: 8, hidden: 8, layers: 1, heads: 2, inner: 16, tied: false },
];
const gpt2ConfigJson = (c: Gpt2Config) => ({ model_type: "gpt2", n_embd: c.hidden, n_head: c.heads, n_layer: c.layers, n_inner: c.inner });

test("GPT-2: a random permutation of every group leaves the logits unchanged (Conv1D layout, fused c_attn, wpe)", () => {
  for (const [index, c] of GPT2S.entries()) {
    for (const prefix of ["", "transformer."]) {
      const model = randomGpt2(c, 20 + index, prefix);
      const spec = gpt2Spec(gpt2ConfigJson(c), shapesOf(model));
      const groups = checkSpec(spec, shapesOf(model)).sizes;
      assert.ok(groups.has("h.0.P_qk.0") && groups.has("h.0.P_vo.0") && groups.has("h.0.P_head") && groups.has("h.0.P_ff") && groups.has("P_res"));
      const before = gpt2Forward(c, model, TOKENS, prefix);
      for (const seed of [1, 2]) {
        const permuted = applyPermutations(spec, model, randomPermutations(spec, model, seed * 7 + index));
        const d = maxDifference(before, gpt2Forward(c, permuted, TOKENS, prefix));
        assert.ok(d < 1e-4, `config ${index} "${prefix}", seed ${seed}: logits moved by ${d}`);
      }
    }
  }
});

test("groups nested in a unit of another are found: GPT-2 heads own their Q/K and V/O dims, Llama KV groups their query heads and V/O dims", () => {
  const g = randomGpt2(GPT2S[0]!, 1);
  const gpt2 = nestedGroups(checkSpec(gpt2Spec(gpt2ConfigJson(GPT2S[0]!), shapesOf(g)), shapesOf(g)));
  assert.deepEqual([...gpt2.keys()], ["h.0.P_head", "h.1.P_head"]);
  assert.deepEqual(gpt2.get("h.1.P_head"), { units: [0, 1, 2].map((h) => [`h.1.P_qk.${h}`, `h.1.P_vo.${h}`]), coupled: false });
  const c = LLAMAS[0]!, l = randomLlama(c, 1);
  const llama = nestedGroups(checkSpec(llamaSpec(llamaConfigJson(c), shapesOf(l)), shapesOf(l)));
  assert.deepEqual([...llama.keys()], ["layers.0.P_kv", "layers.1.P_kv"]);
  // o_proj's columns are (KV group, query head, V/O dim): the query heads' and the V/O dims' blocks overlap there.
  assert.deepEqual(llama.get("layers.0.P_kv"), { units: [0, 1].map((k) => [`layers.0.P_q.${k}`, `layers.0.P_vo.${k}`]), coupled: true });
  const mlp = new Map([["a.weight", [4, 3]], ["b.weight", [2, 4]]]);
  assert.equal(nestedGroups(checkSpec({ "a.weight": ["h", null], "b.weight": [null, "h"] }, mlp)).size, 0);
  // A within-head group shared by every head belongs to none of them.
  const shared = checkSpec({ "w.weight": [[{ size: 2, group: "head" }, { size: 3, group: "dim" }], null] }, new Map([["w.weight", [6, 5]]]));
  assert.equal(nestedGroups(shared).size, 0);
});

/** B = A permuted by a planted permutation, plus noise; matching must undo it exactly. */
async function assertRecovers(spec: PermutationSpec, a: RefTensors, seed: number): Promise<number> {
  const planted = randomPermutations(spec, a, seed);
  const b = applyPermutations(spec, a, planted);
  const r = rng(seed + 1);
  for (const t of b.values()) for (let i = 0; i < t.data.length; i++) t.data[i] += (r() - 0.5) * 1e-3;
  const result = await weightMatching(spec, a, b, { seed });
  const aligned = applyPermutations(spec, b, result.permutations);
  for (const [name, t] of a) {
    const u = aligned.get(name)!;
    let worst = 0;
    for (let i = 0; i < t.data.length; i++) worst = Math.max(worst, Math.abs(t.data[i]! - u.data[i]!));
    assert.ok(worst <= 1e-3, `${name}: aligned B differs from A by ${worst}`);
  }
  for (const [group, s] of result.similarity) assert.ok(s.cosineAfter > 0.999, `${group}: cosine after ${s.cosineAfter}`);
  return result.sweeps;
}

test("weight matching recovers a planted permutation of a Llama-style model and of a GPT-2", async () => {
  const llama = LLAMAS[0]!;
  const a = randomLlama(llama, 31);
  await assertRecovers(llamaSpec(llamaConfigJson(llama), shapesOf(a)), a, 3);
  const gpt2 = GPT2S[0]!;
  const g = randomGpt2(gpt2, 32);
  await assertRecovers(gpt2Spec(gpt2ConfigJson(gpt2), shapesOf(g)), g, 4);
});

test("unsupported architectures and layouts get clear errors", () => {
  const c = LLAMAS[0]!;
  const shapes = shapesOf(randomLlama(c, 1));
  assert.throws(() => inferSpec("auto", { model_type: "mamba" }, shapes),
    (e: Error & { code?: string }) => e.code === "E_ARCHITECTURE_UNSUPPORTED" && /mamba/.test(e.message) && /llama/.test(e.message) && /gpt2/.test(e.message) && /mlp/.test(e.message));
  assert.throws(() => llamaSpec(llamaConfigJson(c), new Map([...shapes, ["model.layers.0.mlp.extra.weight", [4, 4]]])),
    (e: Error & { code?: string }) => e.code === "E_SPEC" && /mlp\.extra\.weight/.test(e.message));
  assert.throws(() => inferSpec("llama", undefined, shapes), (e: Error & { code?: string }) => e.code === "E_SPEC" && /config\.json/.test(e.message));
  const noLayer = new Map([...shapes].filter(([name]) => !name.startsWith("model.layers.1.")));
  assert.throws(() => llamaSpec(llamaConfigJson(c), noLayer), (e: Error & { code?: string }) => e.code === "E_TENSOR_MISSING" && /layers\.1\./.test(e.message));
});
