// The geometric methods (nuslerp, multislerp, karcher, model_stock, nearswap, arcee_fusion) against a
// plain element-by-element scalar implementation written here from mergekit-semantics.md sections
// 1.4-1.6 and 1.10-1.12 (float64 per element, as the text states each method), on small random
// checkpoints, whole and chunked; plus the typed errors for inputs a method does not accept.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { join } from "node:path";
import { merge } from "../src/node";
import { WeightsoupError } from "../src/errors";
import type { RefModel, RefTensor } from "./reference/merge";
import { baseModel, compareTensor, fineTune, readOutput, removeDir, tempDir, TINY, WORKER_URL, writeCase } from "./helpers/fixtures";

let root: string;
before(async () => { root = await tempDir(); });
after(async () => { await removeDir(root); });

const f32 = Math.fround;
type Vec = Float64Array;

/** Expected output of one tensor from its inputs (in the order `inputs` names them). */
type TensorRule = (inputs: RefTensor[]) => Float32Array;

interface Case {
  name: string;
  models: Record<string, RefModel>;
  recipe: Record<string, unknown>;
  /** Model names whose tensors the rule gets, in that order. */
  inputs: string[];
  rule: TensorRule;
  options?: { workers?: number; chunkElements?: number };
}

let counter = 0;
async function check(c: Case): Promise<void> {
  const dir = join(root, `case-${counter++}`);
  const recipePath = await writeCase(dir, c.models, c.recipe);
  const out = join(dir, "out");
  await merge(recipePath, { out, workers: 2, seed: 0, workerUrl: WORKER_URL, ...c.options });
  const ours = await readOutput(out);
  const names = [...c.models[c.inputs[0]!]!.tensors.keys()];
  assert.deepEqual([...ours.tensors.keys()].sort(), [...names].sort());
  for (const name of names) {
    const inputs = c.inputs.map((m) => c.models[m]!.tensors.get(name)!);
    const expected = c.rule(inputs);
    const got = ours.tensors.get(name)!;
    const { maxAbs, at } = compareTensor(got, { dtype: "F32", shape: inputs[0]!.shape, values: expected });
    assert.ok(maxAbs <= 1e-6, `${c.name}: ${name}: max abs diff ${maxAbs} at ${at}`);
  }
}

const m = (name: string, parameters?: Record<string, unknown>) => ({ model: `./${name}`, ...(parameters ? { parameters } : {}) });
const values = (t: RefTensor) => Float64Array.from(t.values!);
const dot = (a: Vec, b: Vec) => a.reduce((s, x, i) => s + x * b[i]!, 0);
const norm = (a: Vec) => Math.sqrt(dot(a, a));
const taskVector = (x: RefTensor, b: RefTensor) => Float64Array.from(x.values!, (v, i) => f32(v - b.values![i]!));

/** Splits a tensor into vectors: whole, rows of the last axis, or columns of [shape[0], rest]. */
function vectors(shape: number[], axis: "flat" | "rows" | "columns"): number[][] {
  const n = shape.reduce((a, b) => a * b, 1);
  if (axis === "flat" || shape.length < 2) return [Array.from({ length: n }, (_, i) => i)];
  const cols = axis === "rows" ? shape[shape.length - 1]! : n / shape[0]!;
  const rows = n / cols;
  if (axis === "rows") return Array.from({ length: rows }, (_, r) => Array.from({ length: cols }, (_, c) => r * cols + c));
  return Array.from({ length: cols }, (_, c) => Array.from({ length: rows }, (_, r) => r * cols + c));
}
const gather = (v: Vec, idx: number[]) => Float64Array.from(idx, (i) => v[i]!);

/** nuslerp of two vectors (section 1.4). */
function nuslerpPair(t: number, v0: Vec, v1: Vec): Vec {
  const n0 = Math.max(norm(v0), 1e-7), n1 = Math.max(norm(v1), 1e-7);
  const cos = Math.min(1, Math.max(-1, dot(v0.map((x) => x / n0), v1.map((x) => x / n1))));
  const theta = Math.acos(cos);
  const s = Math.sin(theta);
  if (Math.abs(s) < 1e-8) return v0.map((x, i) => (1 - t) * x + t * v1[i]!);
  return v0.map((x, i) => (Math.sin((1 - t) * theta) * x + Math.sin(t * theta) * v1[i]!) / s);
}

function nuslerpRule(w1: number, w2: number, axis: "flat" | "rows" | "columns", withBase: boolean): TensorRule {
  const t = w2 / (w1 + w2);
  return (inputs) => {
    const [b, x1, x2] = withBase ? inputs : [undefined, ...inputs];
    const v0 = b ? taskVector(x1!, b) : values(x1!), v1 = b ? taskVector(x2!, b) : values(x2!);
    const out = new Float64Array(v0.length);
    for (const idx of vectors(x1!.shape, axis)) {
      const r = nuslerpPair(t, gather(v0, idx), gather(v1, idx));
      idx.forEach((i, k) => { out[i] = r[k]! + (b ? b.values![i]! : 0); });
    }
    return Float32Array.from(out);
  };
}

/** multislerp (section 1.5): inputs = [base, ...models]. */
function multislerpRule(weights: number[]): TensorRule {
  return ([b, ...xs]) => {
    const eps = 1e-8;
    const total = weights.reduce((a, c) => a + c, 0);
    const w = weights.map((x) => x / total);
    const ys = xs.map((x) => taskVector(x, b!));
    const norms = ys.map(norm);
    const units = ys.map((y, i) => y.map((v) => v / (norms[i]! + eps)));
    const mean = units[0]!.map((_, j) => units.reduce((s, u, i) => s + w[i]! * u[j]!, 0));
    const mn = norm(mean);
    const mhat = mean.map((v) => v / mn);
    const tangent = mhat.map(() => 0);
    units.forEach((u, i) => {
      const d = dot(u, mhat);
      u.forEach((v, j) => { tangent[j] += w[i]! * (v - d * mhat[j]!); });
    });
    const tn = norm(tangent) + eps;
    const avg = norms.reduce((s, n, i) => s + w[i]! * n, 0);
    return Float32Array.from(mhat, (v, j) => b!.values![j]! + avg * (v * Math.cos(tn) + tangent[j]! * (Math.sin(tn) / tn)));
  };
}

/** karcher (section 1.6), equal weights over every input. */
function karcherRule(maxIter: number, tol: number): TensorRule {
  return (inputs) => {
    const xs = inputs.map(values);
    const alpha = 1 / xs.length;
    const norms = xs.map(norm);
    const units = xs.map((x, i) => (norms[i] === 0 ? x.map(() => 0) : x.map((v) => v / norms[i]!)));
    const valid = norms.flatMap((n, i) => (n > tol ? [i] : []));
    const w = 1 / valid.length;
    let u: Vec = units[0]!.map((_, j) => valid.reduce((s, i) => s + w * units[i]![j]!, 0));
    const nu = norm(u);
    u = nu < tol ? units[valid[0]!]!.slice() : u.map((v) => v / nu);
    for (let iter = 0; iter < maxIter; iter++) {
      const T = u.map(() => 0);
      for (const i of valid) {
        const d = Math.min(1, Math.max(-1, dot(u, units[i]!)));
        const theta = Math.acos(d);
        if (theta < tol) continue;
        const f = (w * theta) / Math.sin(theta);
        for (let j = 0; j < T.length; j++) T[j] += f * (units[i]![j]! - d * u[j]!);
      }
      const nt = norm(T);
      if (nt < tol) break;
      u = u.map((v, j) => Math.cos(nt) * v + Math.sin(nt) * (T[j]! / nt));
      const un = norm(u);
      if (un > tol) u = u.map((v) => v / un);
    }
    const s = norms.reduce((acc, n) => acc + alpha * n, 0);
    return Float32Array.from(u, (v) => s * v);
  };
}

/** model_stock (section 1.10): inputs = [base, ...models]. */
function modelStockRule(filterWise: boolean): TensorRule {
  return ([b, ...xs]) => {
    const deltas = xs.map((x) => taskVector(x, b!));
    const n = xs.length;
    const out = new Float32Array(b!.values!.length);
    for (const idx of vectors(b!.shape, filterWise ? "rows" : "flat")) {
      const d = deltas.map((v) => gather(v, idx));
      let sum = 0, pairs = 0;
      for (let i = 0; i < n; i++) {
        for (let j = i + 1; j < n; j++) {
          sum += Math.min(1, Math.max(-1, dot(d[i]!, d[j]!) / Math.max(norm(d[i]!) * norm(d[j]!), 1e-6)));
          pairs++;
        }
      }
      const c = sum / pairs;
      const t = (n * c) / (1 + (n - 1) * c);
      idx.forEach((e) => {
        const mean = xs.reduce((s, x) => s + x.values![e]!, 0) / n;
        out[e] = t * mean + (1 - t) * b!.values![e]!;
      });
    }
    return out;
  };
}

/** nearswap (section 1.11), float32 per element: inputs = [base, other]. */
function nearswapRule(t: number): TensorRule {
  return ([a, b]) => Float32Array.from(a!.values!, (x, i) => {
    const y = b!.values![i]!;
    const s = Math.min(Math.max(f32(f32(t) / Math.max(Math.abs(f32(x - y)), f32(1e-6))), 0), 1);
    return f32(f32(s * y) + f32(f32(1 - s) * x));
  });
}

/** arcee_fusion (section 1.12 with exact quantiles): inputs = [base, other]. */
const arceeRule: TensorRule = ([a, b]) => {
  const av = a!.values!, bv = b!.values!;
  const cols = a!.shape.length > 0 ? a!.shape[a!.shape.length - 1]! : 1;
  const softmax = (v: Float32Array) => {
    const mx = Math.max(...v);
    const e = Array.from(v, (x) => Math.exp(x - mx));
    const s = e.reduce((p, q) => p + q, 0);
    return e.map((x) => x / s + 1e-8);
  };
  const importance = new Float32Array(av.length);
  for (let r = 0; r * cols < av.length; r++) {
    const p = softmax(bv.subarray(r * cols, (r + 1) * cols)), q = softmax(av.subarray(r * cols, (r + 1) * cols));
    const kl = f32(p.reduce((s, x, j) => s + x * Math.log(x / q[j]!), 0));
    for (let j = r * cols; j < (r + 1) * cols; j++) importance[j] = f32(f32(Math.abs(f32(bv[j]! - av[j]!))) * kl);
  }
  const sorted = Float32Array.from(importance).sort();
  const q = (x: number) => sorted[Math.floor(x * (sorted.length - 1))]!;
  const threshold = f32(q(0.5) + 1.5 * (q(0.75) - q(0.25)));
  // mergekit's a + mask (b - a): NaN where b - a is not finite, unless taken and infinite (then b).
  return Float32Array.from(av, (x, i) => {
    const d = f32(bv[i]! - x), taken = importance[i]! >= threshold;
    return !Number.isFinite(d) && (Number.isNaN(d) || !taken) ? NaN : taken ? bv[i]! : x;
  });
};

const base = baseModel(71);
const ft = [fineTune(base, 72, 0.3), fineTune(base, 73, 0.3), fineTune(base, 74, 0.4)];
const models = { base, a: ft[0]!, b: ft[1]!, c: ft[2]! };
const chunked = { workers: 2, chunkElements: 64 }; // row methods: a few rows per chunk

describe("nuslerp", () => {
  for (const [flatten, rowWise, axis] of [[true, false, "flat"], [false, false, "rows"], [false, true, "columns"]] as const) {
    test(`with a base: task vectors, ${axis}`, () => check({
      name: `nuslerp-${axis}`, models, inputs: ["base", "a", "b"], rule: nuslerpRule(1, 3, axis, true),
      recipe: { merge_method: "nuslerp", base_model: "./base", models: [m("a", { weight: 1 }), m("b", { weight: 3 })], parameters: { nuslerp_flatten: flatten, nuslerp_row_wise: rowWise } },
    }));
    if (axis !== "flat") {
      test(`without a base, ${axis}, several chunks per tensor`, () => check({
        name: `nuslerp-${axis}-chunked`, models, inputs: ["a", "c"], rule: nuslerpRule(2, 1, axis, false), options: chunked,
        recipe: { merge_method: "nuslerp", models: [m("a", { weight: 2 }), m("c", { weight: 1 })], parameters: { nuslerp_flatten: false, nuslerp_row_wise: rowWise } },
      }));
    }
  }
  test("identical task vectors lerp (sin theta below 1e-8)", () => check({
    name: "nuslerp-colinear", models: { base, a: ft[0]!, b: ft[0]! }, inputs: ["base", "a", "b"], rule: nuslerpRule(1, 1, "flat", true),
    recipe: { merge_method: "nuslerp", base_model: "./base", models: [m("a", { weight: 1 }), m("b", { weight: 1 })] },
  }));
});

test("multislerp: three task vectors around a base", () => check({
  name: "multislerp", models, inputs: ["base", "a", "b", "c"], rule: multislerpRule([1, 2, 0.5]),
  recipe: { merge_method: "multislerp", base_model: "./base", models: [m("a", { weight: 1 }), m("b", { weight: 2 }), m("c", { weight: 0.5 })] },
}));

test("karcher: the base is an ordinary input; weights are ignored", () => check({
  name: "karcher", models, inputs: ["a", "b", "base"], rule: karcherRule(10, 1e-5),
  recipe: { merge_method: "karcher", base_model: "./base", models: [m("a", { weight: 5 }), m("b")], parameters: { max_iter: 20 } },
}));

describe("model_stock", () => {
  test("flattened", () => check({
    name: "model-stock", models, inputs: ["base", "a", "b", "c"], rule: modelStockRule(false),
    recipe: { merge_method: "model_stock", base_model: "./base", models: [m("a"), m("b"), m("c")] },
  }));
  test("filter_wise, several chunks per tensor", () => check({
    name: "model-stock-rows", models, inputs: ["base", "a", "b"], rule: modelStockRule(true), options: chunked,
    recipe: { merge_method: "model_stock", base_model: "./base", models: [m("a"), m("b")], parameters: { filter_wise: true } },
  }));
});

test("nearswap", () => check({
  name: "nearswap", models, inputs: ["base", "a"], rule: nearswapRule(0.05),
  recipe: { merge_method: "nearswap", base_model: "./base", models: [m("a")], parameters: { t: 0.05 } },
}));

describe("arcee_fusion", () => {
  test("whole tensors", () => check({
    name: "arcee", models, inputs: ["base", "c"], rule: arceeRule,
    recipe: { merge_method: "arcee_fusion", base_model: "./base", models: [m("c")] },
  }));
  test("several chunks per tensor", () => check({
    name: "arcee-chunked", models, inputs: ["base", "a"], rule: arceeRule, options: chunked,
    recipe: { merge_method: "arcee_fusion", base_model: "./base", models: [m("a")] },
  }));
  // A +inf in a row makes its KL NaN (inf - inf in the softmax) and so every importance of the row: the
  // sorted copy puts them last, above every number. One row in eight leaves the quartiles finite but
  // moved up by the NaNs; five in eight put Q(0.75) among them, so the fence is NaN and nothing passes it.
  for (const [every, of] of [[1, 8], [5, 8]] as const) {
    const infinite = withInfiniteRows(ft[2]!, every, of);
    for (const [how, options] of [["whole", undefined], ["chunked", chunked]] as const) {
      test(`rows with an infinite value (${every} in ${of}) rank their NaN importances above every number, ${how}`, () => check({
        name: `arcee-inf-${every}-${how}`, models: { base, c: infinite }, inputs: ["base", "c"], rule: arceeRule, ...(options ? { options } : {}),
        recipe: { merge_method: "arcee_fusion", base_model: "./base", models: [m("c")] },
      }));
    }
  }
});

/** A copy of `model` whose 2-D tensors have +inf as the first value of `every` rows in each `of`. */
function withInfiniteRows(model: RefModel, every: number, of: number): RefModel {
  const tensors = new Map<string, RefTensor>();
  for (const [name, t] of model.tensors) {
    if (!t.values || t.shape.length !== 2) {
      tensors.set(name, t);
      continue;
    }
    const values = t.values.slice(), cols = t.shape[1]!;
    for (let r = 0; r < t.shape[0]!; r++) if (r % of < every) values[r * cols] = Infinity;
    tensors.set(name, { ...t, values });
  }
  return { ...model, tensors };
}

describe("inputs a method does not accept are typed errors", () => {
  const refused = async (recipe: Record<string, unknown>, code: string, pattern: RegExp, list: Record<string, RefModel> = models) => {
    const dir = join(root, `refused-${counter++}`);
    const path = await writeCase(dir, list, recipe);
    await assert.rejects(merge(path, { out: join(dir, "out"), workers: 1, workerUrl: WORKER_URL }), (e: unknown) => {
      assert.ok(e instanceof WeightsoupError, String(e));
      const problems = "problems" in e ? (e as { problems: WeightsoupError[] }).problems : [e];
      assert.ok(problems.some((p) => p.code === code && pattern.test(p.message)), `${e.code}: ${e.message}`);
      return true;
    });
  };
  test("nuslerp with three models", () => refused({ merge_method: "nuslerp", models: [m("a", { weight: 1 }), m("b", { weight: 1 }), m("c", { weight: 1 })] }, "E_RECIPE", /exactly two models/));
  test("nuslerp whose base is one of its two models", () => refused({ merge_method: "nuslerp", base_model: "./a", models: [m("a", { weight: 1 }), m("b", { weight: 1 })] }, "E_RECIPE", /third, distinct/));
  test("model_stock with one model besides the base", () => refused({ merge_method: "model_stock", base_model: "./base", models: [m("a")] }, "E_RECIPE", /at least two/));
  test("nearswap with two models besides the base", () => refused({ merge_method: "nearswap", base_model: "./base", models: [m("a"), m("b")], parameters: { t: 0.1 } }, "E_RECIPE", /exactly two models/));
  test("arcee_fusion without a base", () => refused({ merge_method: "arcee_fusion", models: [m("a"), m("b")] }, "E_PARAMETER_MISSING", /needs a base_model/));
  test("nearswap without t", () => refused({ merge_method: "nearswap", base_model: "./base", models: [m("a")] }, "E_PARAMETER_MISSING", /"t"/));
  test("karcher with embeddings of different sizes (mergekit cuts none)", () => {
    const big = baseModel(75, "F32", { ...TINY, vocab: 56 });
    return refused({ merge_method: "karcher", models: [m("base"), m("big")] }, "E_SHAPE_MISMATCH", /shapes differ/, { base, big });
  });
});
