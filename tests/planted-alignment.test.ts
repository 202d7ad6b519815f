// Weight matching must undo a planted permutation of every group (residual stream, MLP units, heads,
// dims inside heads) exactly, for every built-in spec and on several seeds each: B = A permuted at
// random plus small noise, and the permutations found must send every position of every permuted axis
// back to where A has it. Positions are traced with the documented convention written out by hand
// (tests/reference/permutation-convention.ts), not with the engine's own gather.
import assert from "node:assert/strict";
import { test } from "node:test";
import { gpt2Spec, llamaSpec, mlpSpec } from "../src/align/architectures";
import { checkSpec, type PermutationSpec, type Permutations } from "../src/align/spec";
import { weightMatching, type Tensor } from "../src/align/weight-matching";
import { randomGpt2, type Gpt2Config } from "./reference/gpt2";
import { randomLlama, type LlamaConfig } from "./reference/llama";
import { permuteByHand, sourceIndices, type Axis } from "./reference/permutation-convention";
import { normalStream } from "./reference/tensors";

type Model = Map<string, Tensor>;
const shapesOf = (m: Model) => new Map([...m].map(([k, t]) => [k, t.shape]));

function randomPermutation(n: number, uniform: () => number): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  // Never the identity (n > 1): every group really moves.
  do {
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(uniform() * (i + 1));
      [p[i], p[j]] = [p[j]!, p[i]!];
    }
  } while (n > 1 && p.every((v, i) => v === i));
  return p;
}

function uniformStream(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 4294967296; };
}

/**
 * Plants a random permutation of every group, matches, and checks that every permuted axis of every
 * tensor comes back: B's position i holds A's planted[i]; the aligned model's position k holds B's
 * found[k]; exact recovery is planted[found[k]] = k for every k.
 */
async function plantAndRecover(label: string, spec: PermutationSpec, a: Model, seed: number): Promise<void> {
  const uniform = uniformStream(seed * 7919 + 13);
  const sizes = checkSpec(spec, shapesOf(a)).sizes;
  const planted: Permutations = new Map([...sizes].map(([g, n]) => [g, randomPermutation(n, uniform)]));
  const noise = normalStream(seed + 101);
  const b: Model = new Map([...a].map(([name, t]) => {
    const axes = (spec[name] ?? t.shape.map(() => null)) as Axis[];
    const moved = permuteByHand(t.data, t.shape, axes, planted);
    return [name, { shape: t.shape, data: Float32Array.from(moved, (v) => v + 1e-3 * noise()) }];
  }));
  const result = await weightMatching(spec, a, b, { seed });
  for (const [name, axes] of Object.entries(spec)) {
    const shape = a.get(name)!.shape;
    axes.forEach((axis, ax) => {
      if (axis === null) return;
      const toA = sourceIndices(axis as Axis, shape[ax]!, planted), toB = sourceIndices(axis as Axis, shape[ax]!, result.permutations);
      const wrong = toB.filter((s, k) => toA[s] !== k).length;
      assert.equal(wrong, 0, `${label}, seed ${seed}: ${wrong} of ${shape[ax]} positions on axis ${ax} of ${name} not recovered (${result.sweeps} sweeps)`);
    });
  }
}

const SEEDS = [1, 2, 3, 4, 5, 6];

test("planted permutations are recovered exactly: MLP, 6 seeds", async () => {
  for (const seed of SEEDS) {
    const r = normalStream(seed), widths = [12, 32, 24, 5];
    const a: Model = new Map();
    for (let l = 0; l + 1 < widths.length; l++) {
      const [inp, out] = [widths[l]!, widths[l + 1]!];
      a.set(`layers.${l}.weight`, { shape: [out, inp], data: Float32Array.from({ length: out * inp }, () => r() / Math.sqrt(inp)) });
      a.set(`layers.${l}.bias`, { shape: [out], data: Float32Array.from({ length: out }, () => 0.1 * r()) });
    }
    await plantAndRecover("MLP", mlpSpec(shapesOf(a)), a, seed);
  }
});

const LLAMA: LlamaConfig = { vocab: 20, hidden: 16, layers: 2, heads: 4, kvHeads: 2, headDim: 6, intermediate: 24, tied: false };
const llamaJson = (c: LlamaConfig) => ({
  model_type: "llama", hidden_size: c.hidden, num_attention_heads: c.heads, num_key_value_heads: c.kvHeads,
  head_dim: c.headDim, num_hidden_layers: c.layers, intermediate_size: c.intermediate,
});

test("planted permutations are recovered exactly: Llama (GQA 4/2; residual, MLP, KV heads, query heads, V/O dims), 6 seeds", async () => {
  for (const seed of SEEDS) {
    const a = randomLlama(LLAMA, 40 + seed);
    await plantAndRecover("Llama", llamaSpec(llamaJson(LLAMA), shapesOf(a)), a, seed);
  }
});

const GPT2: Gpt2Config = { vocab: 32, positions: 8, hidden: 64, layers: 2, heads: 4, inner: 128, tied: false };
const gpt2Json = (c: Gpt2Config) => ({ model_type: "gpt2", n_embd: c.hidden, n_head: c.heads, n_layer: c.layers, n_inner: c.inner });

test("planted permutations are recovered exactly: GPT-2 (residual, MLP, heads, Q/K and V/O dims in heads), 6 seeds", async () => {
  for (const seed of SEEDS) {
    const a = randomGpt2(GPT2, 60 + seed);
    await plantAndRecover("GPT-2", gpt2Spec(gpt2Json(GPT2), shapesOf(a)), a, seed);
  }
});

test("matching is deterministic: the same models and seed give the same permutations (GPT-2)", async () => {
  const a = randomGpt2(GPT2, 90), b = randomGpt2(GPT2, 91);
  const spec = gpt2Spec(gpt2Json(GPT2), shapesOf(a));
  const one = await weightMatching(spec, a, b, { seed: 5 }), two = await weightMatching(spec, a, b, { seed: 5 });
  assert.equal(one.sweeps, two.sweeps);
  for (const [g, p] of one.permutations) assert.deepEqual([...p], [...two.permutations.get(g)!], g);
});

test("the objective Σ <A, π(B)> never decreases from one sweep to the next (GPT-2 and Llama from independent inits)", async () => {
  const cases: [string, PermutationSpec, Model, Model][] = [];
  const g1 = randomGpt2(GPT2, 81), g2 = randomGpt2(GPT2, 82);
  cases.push(["GPT-2", gpt2Spec(gpt2Json(GPT2), shapesOf(g1)), g1, g2]);
  const l1 = randomLlama(LLAMA, 83), l2 = randomLlama(LLAMA, 84);
  cases.push(["Llama", llamaSpec(llamaJson(LLAMA), shapesOf(l1)), l1, l2]);
  for (const [label, spec, a, b] of cases) {
    const objective = (perms: Permutations) => {
      let total = 0;
      for (const [name, t] of a) {
        const moved = permuteByHand(b.get(name)!.data, t.shape, (spec[name] ?? t.shape.map(() => null)) as Axis[], perms);
        for (let i = 0; i < moved.length; i++) total += t.data[i]! * moved[i]!;
      }
      return total;
    };
    const full = await weightMatching(spec, a, b, { seed: 2 });
    assert.ok(full.sweeps >= 2, `${label}: ${full.sweeps} sweeps`);
    let previous = objective(new Map([...checkSpec(spec, shapesOf(a)).sizes].map(([g, n]) => [g, Int32Array.from({ length: n }, (_, i) => i)])));
    for (let sweeps = 1; sweeps <= full.sweeps; sweeps++) {
      const value = objective((await weightMatching(spec, a, b, { seed: 2, maxSweeps: sweeps })).permutations);
      assert.ok(value >= previous - 1e-6 * Math.abs(previous), `${label}: sweep ${sweeps} lowered the objective from ${previous} to ${value}`);
      previous = value;
    }
  }
});
