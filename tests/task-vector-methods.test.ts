// The task-vector family's newer methods (breadcrumbs, breadcrumbs_ties, della, della_linear, sce, ram,
// ramplus_tl) and the TIES vote variants, against a plain scalar implementation written here from the
// issue-10 contract (never from src/ or assembly/), plus hand-worked cases for the rules that decide
// masks: breadcrumbs' band and tie order, its top = 0 case, della's per-row ranks, sce's exact cut.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { join } from "node:path";
import { merge } from "../src/node";
import { baseModel, compareTensor, fineTune, readOutput, removeDir, tempDir, TINY, WORKER_URL, writeCase } from "./helpers/fixtures";
import type { RefModel, RefTensor } from "./reference/merge";
import { dareKeepThreshold, dareStreamKey, dareU } from "./reference/rng";
import { WeightsoupError } from "../src/errors";
import { bf16BitsToF32, f32ToBf16Bits } from "./reference/float16";

const fr = Math.fround;
let root: string;
before(async () => { root = await tempDir(); });
after(async () => { await removeDir(root); });

// ---------------------------------------------------------------------------------------------
// The scalar reference, one tensor at a time.

interface TaskParams { weight: number; density: number; gamma?: number; epsilon?: number }
interface Globals {
  normalize?: boolean; rescale?: boolean; lambda?: number; consensus_method?: string; vote_weighted?: boolean;
  select_topk?: number; epsilon?: number; r?: number; alpha?: number;
}

/** Indices ordered by |tau| descending, ties by lower index first. */
function byMagnitudeDesc(tau: Float32Array, from = 0, n = tau.length): number[] {
  const idx = Array.from({ length: n }, (_, i) => from + i);
  return idx.sort((a, b) => Math.abs(tau[b]!) - Math.abs(tau[a]!) || a - b);
}

function breadcrumbs(tau: Float32Array, density: number, gamma: number): Float32Array {
  const n = tau.length;
  const keep = Math.floor(density * n);
  let top = Math.floor(gamma * n);
  const bot = n - keep - top;
  if (bot < 0) top += bot;
  const order = byMagnitudeDesc(tau);
  const m = new Float32Array(n);
  for (let r = top; r < top + keep; r++) m[order[r]!] = tau[order[r]!]!;
  return m;
}

function della(tau: Float32Array, shape: number[], density: number, epsilon: number, key: number): Float32Array {
  const m = new Float32Array(tau.length);
  if (density <= 0) return m;
  // Ranked along dim 1 (mergekit's argsort(dim=1)): rows of a matrix; with more dimensions, fibers of
  // shape[1] elements `inner` apart in each block under one index of dim 0.
  const block = shape.length <= 1 ? tau.length : tau.length / shape[0]!;
  const fiber = shape.length <= 2 || block <= 1 ? block : shape[1]!;
  const inner = block / fiber;
  for (let start = 0; start < tau.length; start += block) {
    for (let k = 0; k < inner; k++) {
      const flat = (j: number) => start + j * inner + k;
      const ascending = Array.from({ length: fiber }, (_, j) => j).sort((a, b) => Math.abs(tau[flat(a)]!) - Math.abs(tau[flat(b)]!) || a - b);
      ascending.forEach((j, pos) => {
        const rank = pos + 1;
        const p = fiber === 1 ? density : (density - epsilon) + 2 * epsilon * (rank - 1) / (fiber - 1);
        const threshold = Math.min(Math.floor(p * 2 ** 32), 2 ** 32 - 1);
        // The draw of the element's place in fiber-major order (its flat index when inner is 1).
        if (dareU(key, start + k * fiber + j) < threshold) m[flat(j)] = tau[flat(j)]!;
      });
    }
  }
  return m;
}

function taskFamily(method: string, name: string, shape: number[], b: Float32Array, xs: Float32Array[], tasks: TaskParams[], g: Globals, seed: number): Float32Array {
  const defaults: Record<string, [boolean, boolean, boolean]> = { // normalize, rescale, consensus
    breadcrumbs: [false, false, false], breadcrumbs_ties: [false, false, true], della: [true, true, true], della_linear: [false, true, false], ties: [true, false, true], dare_ties: [false, true, true],
  };
  const [normDefault, rescaleDefault, consensus] = defaults[method]!;
  const normalize = g.normalize ?? normDefault, rescale = g.rescale ?? rescaleDefault, lambda = g.lambda ?? 1;
  const n = b.length;
  const w = tasks.map((t) => fr(t.weight));
  const ps: Float32Array[] = [], qs: Float32Array[] = [];
  xs.forEach((x, i) => {
    const tau = new Float32Array(n);
    for (let j = 0; j < n; j++) tau[j] = fr(x[j]! - b[j]!);
    const t = tasks[i]!;
    let m: Float32Array = tau;
    if (t.density < 1) {
      if (method.startsWith("breadcrumbs")) m = breadcrumbs(tau, t.density, t.gamma ?? 0.01);
      else if (method.startsWith("della")) m = della(tau, shape, t.density, t.epsilon ?? 0.15, dareStreamKey(seed, name, i));
      else if (method === "ties") m = breadcrumbs(tau, t.density, 0);
      else if (method === "dare_ties") m = tau.map((v, j) => (dareU(dareStreamKey(seed, name, i), j) < dareKeepThreshold(t.density) ? v : 0));
      if (rescale) {
        let A = 0, B = 0;
        for (let j = 0; j < n; j++) { A += Math.abs(tau[j]!); B += Math.abs(m[j]!); }
        if (A >= 1e-7 && B >= 1e-7) { const r = fr(A / B); m = m.map((v) => fr(v * r)); }
      }
    }
    qs.push(m);
    ps.push(m.map((v) => fr(v * w[i]!)));
  });
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    let mixed = 0, div = 0;
    if (consensus) {
      const v = (g.vote_weighted ?? true) ? ps.map((p) => p[j]!) : qs.map((q) => q[j]!);
      let vote = 0;
      if ((g.consensus_method ?? "sum") === "count") vote = v.filter((x) => x > 0).length - v.filter((x) => x < 0).length;
      else v.forEach((x, i) => (vote = i === 0 ? x : fr(vote + x)));
      const positive = vote >= 0;
      ps.forEach((p, i) => {
        const agree = positive ? v[i]! > 0 : v[i]! < 0;
        mixed = i === 0 ? (agree ? p[j]! : 0) : fr(mixed + (agree ? p[j]! : 0));
        div = i === 0 ? (agree ? w[i]! : 0) : fr(div + (agree ? w[i]! : 0));
      });
      if (div === 0) div = 1;
    } else {
      ps.forEach((p, i) => { mixed = i === 0 ? p[j]! : fr(mixed + p[j]!); div = i === 0 ? w[i]! : fr(div + w[i]!); });
      if (Math.abs(div) < 1e-8) div = 1;
    }
    if (normalize) mixed = fr(mixed / div);
    if (lambda !== 1) mixed = fr(mixed * fr(lambda));
    out[j] = fr(b[j]! + mixed);
  }
  return out;
}

function sce(b: Float32Array, xs: Float32Array[], selectTopk: number): Float32Array {
  const n = b.length, N = xs.length;
  const taus = xs.map((x) => x.map((v, j) => fr(v - b[j]!)));
  if (selectTopk < 1) {
    const variance = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (const t of taus) sum += t[j]!;
      const mu = sum / N;
      let sq = 0;
      for (const t of taus) sq += (t[j]! - mu) ** 2;
      variance[j] = sq / N;
    }
    const nonzero = variance.filter((v) => v !== 0).length;
    const k = Math.floor(nonzero * selectTopk);
    const order = Array.from({ length: n }, (_, j) => j).sort((a, c) => variance[c]! - variance[a]! || a - c);
    const kept = new Set(order.slice(0, Math.max(0, k)));
    for (const t of taus) for (let j = 0; j < n; j++) if (!kept.has(j)) t[j] = 0;
  }
  let c = taus.map((t) => t.reduce((s, v) => s + v * v, 0) / n);
  const total = c.reduce((a, v) => a + v, 0);
  c = total < 1e-6 ? c.map(() => 1 / N) : c.map((v) => v / total);
  const c32 = c.map(fr);
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    let s = 0;
    taus.forEach((t, i) => (s = i === 0 ? t[j]! : fr(s + t[j]!)));
    let num = 0, den = 0;
    taus.forEach((t, i) => {
      const agree = s >= 0 ? t[j]! > 0 : t[j]! < 0;
      num = fr(num + (agree ? fr(c32[i]! * t[j]!) : 0));
      den = fr(den + (agree ? c32[i]! : 0));
    });
    out[j] = fr(b[j]! + fr(num / Math.max(den, fr(1e-6))));
  }
  return out;
}

function ram(b: Float32Array, xs: Float32Array[], epsilon: number, plus?: { r: number; alpha: number }): Float32Array {
  const n = b.length;
  const taus = xs.map((x) => x.map((v, j) => fr(v - b[j]!)));
  const eps = fr(epsilon);
  const count = (j: number) => taus.filter((t) => Math.abs(t[j]!) > eps).length;
  const lambdas = taus.map((t) => {
    if (!plus) return 1;
    let shared = 0, unique = 0;
    for (let j = 0; j < n; j++) {
      if (!(Math.abs(t[j]!) > eps)) continue;
      if (count(j) > 1) shared++; else unique++;
    }
    const rho = shared / Math.max(unique, epsilon);
    return fr(1 + plus.r * Math.min(Math.max(rho, 0), plus.alpha));
  });
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    const c = count(j);
    let sum = 0;
    taus.forEach((t, i) => {
      const active = Math.abs(t[j]!) > eps;
      const term = !active ? 0 : c === 1 ? fr(t[j]! * lambdas[i]!) : fr(t[j]! / c);
      sum = i === 0 ? term : fr(sum + term);
    });
    out[j] = taus.some((t) => !Number.isFinite(t[j]!)) ? NaN : fr(b[j]! + sum); // mergekit's tau x 0/1 mask
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Running weightsoup against it.

interface Case {
  method: string;
  models: Record<string, RefModel>;
  /** Per non-base model (in recipe order): its parameters. */
  tasks: Record<string, TaskParams | Record<string, never>>;
  globals?: Globals;
  seed?: number;
  workers?: number;
  chunkElements?: number;
}

let counter = 0;
async function check(c: Case): Promise<void> {
  const dir = join(root, `case-${counter++}`);
  const names = Object.keys(c.tasks);
  const recipe = {
    merge_method: c.method, base_model: "./base",
    models: names.map((n) => ({ model: `./${n}`, ...(Object.keys(c.tasks[n]!).length ? { parameters: c.tasks[n] } : {}) })),
    ...(c.globals ? { parameters: c.globals } : {}),
  };
  const path = await writeCase(dir, c.models, recipe);
  const out = join(dir, "out");
  await merge(path, { out, workers: c.workers ?? 2, seed: c.seed ?? 0, workerUrl: WORKER_URL, ...(c.chunkElements ? { chunkElements: c.chunkElements } : {}) });
  const ours = await readOutput(out);
  const base = c.models.base!;
  for (const [name, t] of base.tensors) {
    const got = ours.tensors.get(name)!;
    assert.ok(got, `${name} is in the output`);
    if (!t.values) continue;
    const xs = names.map((n) => c.models[n]!.tensors.get(name)!.values!);
    const g = c.globals ?? {};
    const expected = c.method === "sce" ? sce(t.values, xs, g.select_topk ?? 1)
      : c.method === "ram" ? ram(t.values, xs, g.epsilon ?? 1e-5)
      : c.method === "ramplus_tl" ? ram(t.values, xs, g.epsilon ?? 1e-5, { r: g.r ?? 0.1, alpha: g.alpha ?? 0.2 })
      : taskFamily(c.method, name, t.shape, t.values, xs, names.map((n) => c.tasks[n] as TaskParams), g, c.seed ?? 0);
    const { maxAbs, maxUlp, at } = compareTensor(got, { dtype: t.dtype, shape: t.shape, values: expected });
    if (t.dtype === "F32") assert.ok(maxAbs <= 1e-6, `${c.method}: ${name}: max abs diff ${maxAbs} at ${at}`);
    else assert.ok(maxUlp <= 1, `${c.method}: ${name}: ${maxUlp} ulps apart (abs ${maxAbs}) at ${at}`);
  }
}

/** One tensor model: `name` of `shape` with the given values. */
function single(shape: number[], values: number[], name = "model.layers.0.mlp.weight", dtype = "F32"): RefModel {
  const t: RefTensor = { dtype, shape, values: Float32Array.from(values) };
  return { config: null, tensors: new Map([[name, t]]) };
}

async function mergeOne(method: string, models: Record<string, RefModel>, tasks: Record<string, object>, globals?: object, seed = 0): Promise<Float32Array> {
  const dir = join(root, `one-${counter++}`);
  const recipe = { merge_method: method, base_model: "./base", models: Object.entries(tasks).map(([n, p]) => ({ model: `./${n}`, parameters: p })), ...(globals ? { parameters: globals } : {}) };
  const out = join(dir, "out");
  await merge(await writeCase(dir, models, recipe), { out, workers: 1, seed, workerUrl: WORKER_URL });
  const t = (await readOutput(out)).tensors.get("model.layers.0.mlp.weight")!;
  return new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
}

const base = baseModel(71, "F32", TINY);
const ft = [fineTune(base, 72, 0.1), fineTune(base, 73, 0.1, { only: "mlp" }), fineTune(base, 74, 0.3)];
const three = { base, a: ft[0]!, b: ft[1]!, c: ft[2]! };
const b16 = baseModel(81, "BF16");
const q16 = (seed: number) => fineTune(b16, seed, 0.05, { quantum: 2 ** -7 }); // many equal |tau|

describe("breadcrumbs", () => {
  test("hand-worked: drops the top gamma*N largest and keeps the next density*N, ties by lower index", async () => {
    // tau = [0.5, -3, 2, 2, -1, 4, 0.25, 2, 1, -0.5]; N = 10, density 0.5 -> keep 5, gamma 0.1 -> top 1.
    // Descending |tau| (ties by index): 4(5), -3(1), 2(2), 2(3), 2(7), -1(4), 1(8), ... Drop 4, keep
    // -3, 2, 2, 2, -1: indices 1, 2, 3, 7, 4.
    const tau = [0.5, -3, 2, 2, -1, 4, 0.25, 2, 1, -0.5];
    const out = await mergeOne("breadcrumbs", { base: single([2, 5], new Array(10).fill(0)), a: single([2, 5], tau) }, { a: { weight: 1, density: 0.5, gamma: 0.1 } });
    assert.deepEqual([...out], [0, -3, 2, 2, -1, 0, 0, 2, 0, 0]);
  });
  test("hand-worked: gamma 0 keeps the density*N largest (mergekit's top = 0 bug, which zeroes everything, is not reproduced)", async () => {
    const tau = [0.5, -3, 2, 2, -1, 4, 0.25, 2, 1, -0.5];
    const out = await mergeOne("breadcrumbs", { base: single([2, 5], new Array(10).fill(0)), a: single([2, 5], tau) }, { a: { weight: 1, density: 0.3, gamma: 0 } });
    assert.deepEqual([...out], [0, -3, 2, 0, 0, 4, 0, 0, 0, 0]);
  });
  test("hand-worked: a band reaching the smallest (bot < 0 shrinks top)", async () => {
    // keep = 8, top = floor(0.5 * 10) = 5 -> bot = -3 -> top = 2: ranks 2..9 kept (all but 4 and -3).
    const tau = [0.5, -3, 2, 2, -1, 4, 0.25, 2, 1, -0.5];
    const out = await mergeOne("breadcrumbs", { base: single([10], new Array(10).fill(0)), a: single([10], tau) }, { a: { weight: 1, density: 0.8, gamma: 0.5 } });
    assert.deepEqual([...out], [0.5, 0, 2, 2, -1, 0, 0.25, 2, 1, -0.5]);
  });
  test("random checkpoints: densities, gammas, one model untouched, lambda, rescale", () => check({
    method: "breadcrumbs", models: three,
    tasks: { a: { weight: 1, density: 0.6, gamma: 0.05 }, b: { weight: 0.5, density: 1 }, c: { weight: -0.4, density: 0.3, gamma: 0.2 } },
    globals: { lambda: 0.8, rescale: true },
  }));
  test("breadcrumbs_ties on bf16 checkpoints with many equal |tau|, normalize on", () => check({
    method: "breadcrumbs_ties", models: { base: b16, a: q16(82), b: q16(83) },
    tasks: { a: { weight: 1, density: 0.5, gamma: 0.1 }, b: { weight: 0.7, density: 0.4 } },
    globals: { normalize: true },
  }));
});

describe("della", () => {
  test("della: defaults (normalize, rescale, consensus), several epsilons", () => check({
    method: "della", models: three, seed: 5,
    tasks: { a: { weight: 1, density: 0.5, epsilon: 0.2 }, b: { weight: 0.6, density: 0.7 }, c: { weight: 0.3, density: 0.4, epsilon: 0.05 } },
  }));
  test("della_linear: a density of 0 zeroes its model, bf16 checkpoints", () => check({
    method: "della_linear", models: { base: b16, a: q16(84), b: q16(85) }, seed: 9,
    tasks: { a: { weight: 1, density: 0.6 }, b: { weight: 0.5, density: 0 } },
  }));
  test("hand-worked: ranks are within rows (the row's smallest |tau| gets density - epsilon)", async () => {
    // One row of two elements: rank 1 -> p = 0.1, rank 2 -> p = 0.9. Keep iff u(j) < floor(p * 2^32).
    const key = dareStreamKey(3, "model.layers.0.mlp.weight", 0);
    const tau = [0.25, -1, 2, 0.5]; // rows [0.25, -1] and [2, 0.5] ([2, 2] tensor)
    const expected = tau.map((v, j) => {
      const rank = j === 0 || j === 3 ? 1 : 2;
      return dareU(key, j) < Math.floor((rank === 1 ? 0.1 : 0.9) * 2 ** 32) ? v : 0;
    });
    const out = await mergeOne("della_linear", { base: single([2, 2], [0, 0, 0, 0]), a: single([2, 2], tau) }, { a: { weight: 1, density: 0.5, epsilon: 0.4 } }, { rescale: false }, 3);
    assert.deepEqual([...out], expected);
  });
  test("rows of 24 with chunks forced small: chunks hold whole rows (lcm of the tile and the row) and match the reference", async () => {
    const rows = (seed: number, scale: number) => single([2048, 24], Array.from({ length: 2048 * 24 }, (_, i) => scale * (Math.sin(seed * 1000 + i * 0.37) + ((i * seed) % 7) / 7)));
    const models = { base: rows(1, 0.5), a: rows(2, 0.6), b: rows(3, 0.55) };
    for (const chunkElements of [4096, 30000]) {
      await check({ method: "della", models, seed: 11, chunkElements, workers: 3, tasks: { a: { weight: 1, density: 0.5 }, b: { weight: 0.7, density: 0.3, epsilon: 0.2 } } });
    }
  });
  test("hand-worked: a 3-D tensor is ranked along dim 1, as mergekit's argsort(dim=1), not over its flattened rows", async () => {
    // [1, 2, 16]: fiber k holds flat k (dim-1 index 0, |tau| about 0.25) and flat 16 + k (about 2), so in
    // every fiber the first is rank 1 (p = 0.1 at density 0.5, epsilon 0.4) and the second rank 2
    // (p = 0.9); ranked as one flattened row of 32, p would spread over 0.1 ... 0.9 by global rank.
    // Draws are those of the fiber-major places: flat j*16 + k -> k*2 + j.
    const key = dareStreamKey(3, "model.layers.0.mlp.weight", 0);
    const tau = Array.from({ length: 32 }, (_, i) => (i < 16 ? 0.25 + i / 1024 : -(2 + i / 1024)));
    const expected = tau.map((v, flat) => {
      const [j, k] = [Math.floor(flat / 16), flat % 16];
      return dareU(key, k * 2 + j) < Math.floor((j === 0 ? 0.1 : 0.9) * 2 ** 32) ? v : 0;
    });
    const out = await mergeOne("della_linear", { base: single([1, 2, 16], new Array(32).fill(0)), a: single([1, 2, 16], tau) }, { a: { weight: 1, density: 0.5, epsilon: 0.4 } }, { rescale: false }, 3);
    assert.deepEqual([...out], expected.map(Math.fround));
  });
  test("3-D and 4-D tensors: fibers along dim 1 match the reference for any chunking and worker count", async () => {
    for (const shape of [[256, 24, 3], [64, 5, 3, 7], [40, 1, 9]]) {
      const numel = shape.reduce((a, b) => a * b, 1);
      const fill = (seed: number, scale: number) => single(shape, Array.from({ length: numel }, (_, i) => scale * (Math.sin(seed * 1000 + i * 0.37) + ((i * seed) % 7) / 7)));
      const models = { base: fill(1, 0.5), a: fill(2, 0.6), b: fill(3, 0.55) };
      for (const [chunkElements, workers] of [[undefined, 1], [4096, 3], [30000, 2]] as const) {
        await check({ method: "della", models, seed: 11, ...(chunkElements ? { chunkElements } : {}), workers, tasks: { a: { weight: 1, density: 0.5 }, b: { weight: 0.7, density: 0.3, epsilon: 0.2 } } });
      }
    }
  });
  test("rows too long for a chunk are a typed option error naming the tensor and the least chunk it needs", async () => {
    // Base and one model in F32, an F32 output and one keep bit: 12.125 bytes per element.
    const recipe = { merge_method: "della", base_model: "./base", models: [{ model: "./a", parameters: { weight: 1, density: 0.5 } }] };
    const cases = [
      // lcm(4096, 4099) = 16.8M elements, more than the tensor: the whole tensor (32792 elements) is the least chunk.
      { shape: [8, 4099], chunkBytes: 200_000, words: "the whole tensor, 32792 elements (397603 bytes)", needed: Math.ceil(32792 * 12.125) },
      // lcm(4096, 24) = 12288 elements, half the tensor.
      { shape: [1024, 24], chunkBytes: 100_000, words: "12288 elements (148992 bytes)", needed: 12288 * 12.125 },
    ];
    for (const { shape, chunkBytes, words, needed } of cases) {
      const dir = join(root, `rows-${counter++}`);
      const numel = shape[0]! * shape[1]!;
      const rows = (seed: number) => single(shape, Array.from({ length: numel }, (_, i) => Math.sin(seed + i)));
      await assert.rejects(merge(await writeCase(dir, { base: rows(1), a: rows(2) }, recipe), { out: join(dir, "out"), workerUrl: WORKER_URL, chunkBytes }), (e: unknown) => {
        assert.ok(e instanceof WeightsoupError && e.code === "E_OPTION" && e.details.tensor === "model.layers.0.mlp.weight" && /whole rows/.test(e.message), String(e));
        assert.ok(e.message.includes(words), e.message);
        assert.equal(e.details.needed, needed);
        return true;
      });
    }
  });
  test("density - epsilon <= 0 is a typed recipe error naming the model and the parameter", async () => {
    const dir = join(root, `bad-${counter++}`);
    const recipe = { merge_method: "della", base_model: "./base", models: [{ model: "./a", parameters: { weight: 1, density: 0.1, epsilon: 0.15 } }] };
    await assert.rejects(merge(await writeCase(dir, { base, a: ft[0]! }, recipe), { out: join(dir, "out"), workerUrl: WORKER_URL }), (e: unknown) => {
      assert.ok(e instanceof WeightsoupError);
      const problems = "problems" in e ? (e as unknown as { problems: WeightsoupError[] }).problems : [e];
      assert.ok(problems.every((p) => p.code === "E_PARAMETER_INVALID" && p.details.model === "./a" && p.details.key === "epsilon"), String(e));
      return true;
    });
  });
});

describe("TIES vote variants", () => {
  for (const method of ["ties", "dare_ties", "breadcrumbs_ties", "della"]) {
    test(`${method}: consensus_method count, vote_weighted false`, () => check({
      method, models: three, seed: 4,
      tasks: { a: { weight: 1, density: 0.6 }, b: { weight: 0.5, density: 0.7 }, c: { weight: -0.8, density: 0.5 } },
      globals: { consensus_method: "count", vote_weighted: false },
    }));
  }
  test("ties: a negative weight decides the weighted vote but not the unweighted one (hand-worked)", async () => {
    // One element; tau_a = 1, tau_b = -0.5, weights 1 and -3: p = [1, 1.5], q = [1, -0.5].
    // Weighted (sum of p > 0): both agree, mixed = 2.5, div = -2 -> -1.25.
    // Unweighted (sum of q = 0.5 > 0): only a agrees, mixed = 1, div = 1 -> 1.
    // Count, unweighted: one +, one - -> 0 -> +: same as unweighted sum here.
    const models = { base: single([1], [0]), a: single([1], [1]), b: single([1], [-0.5]) };
    const tasks = { a: { weight: 1 }, b: { weight: -3 } };
    assert.deepEqual([...await mergeOne("ties", models, tasks)], [-1.25]);
    assert.deepEqual([...await mergeOne("ties", models, tasks, { vote_weighted: false })], [1]);
    assert.deepEqual([...await mergeOne("ties", models, tasks, { vote_weighted: false, consensus_method: "count" })], [1]);
  });
  test("hand-worked: count elects by the number of signs, not their sum", async () => {
    // tau = [3], [-1], [-1], weights 1: the sum is +1 but two of three are negative -> -1 wins: mean of -1, -1.
    const models = { base: single([1], [0]), a: single([1], [3]), b: single([1], [-1]), c: single([1], [-1]) };
    const tasks = { a: { weight: 1 }, b: { weight: 1 }, c: { weight: 1 } };
    assert.deepEqual([...await mergeOne("ties", models, tasks)], [3]);
    assert.deepEqual([...await mergeOne("ties", models, tasks, { consensus_method: "count" })], [-1]);
  });
  test("an unknown consensus_method is a typed error", async () => {
    const dir = join(root, `bad-${counter++}`);
    const recipe = { merge_method: "ties", base_model: "./base", models: [{ model: "./a", parameters: { weight: 1 } }], parameters: { consensus_method: "median" } };
    await assert.rejects(merge(await writeCase(dir, { base, a: ft[0]! }, recipe), { out: join(dir, "out"), workerUrl: WORKER_URL }), (e: unknown) => {
      assert.ok(e instanceof WeightsoupError && e.code === "E_PARAMETER_INVALID" && /sum, count/.test(e.message), String(e));
      return true;
    });
  });
});

describe("sce", () => {
  test("select_topk 1 (no selection), three models", () => check({ method: "sce", models: three, tasks: { a: {}, b: {}, c: {} } }));
  test("select_topk 0.3, bf16 checkpoints with many equal variances", () => check({
    method: "sce", models: { base: b16, a: q16(86), b: q16(87), c: q16(88) }, tasks: { a: {}, b: {}, c: {} }, globals: { select_topk: 0.3 },
  }));
  test("select_topk 0.5 on float32 checkpoints", () => check({ method: "sce", models: three, tasks: { a: {}, b: {}, c: {} }, globals: { select_topk: 0.5 } }));
  test("select_topk 0.4, four bf16 models", () => check({
    method: "sce", models: { base: b16, a: q16(89), b: q16(90), c: q16(91), d: q16(92) }, tasks: { a: {}, b: {}, c: {}, d: {} }, globals: { select_topk: 0.4 },
  }));
  test("select_topk 0.4, five bf16 models (the variance's general loop)", () => check({
    method: "sce", models: { base: b16, a: q16(93), b: q16(94), c: q16(95), d: q16(96), e: q16(97) }, tasks: { a: {}, b: {}, c: {}, d: {}, e: {} }, globals: { select_topk: 0.4 },
  }));
  // 2 * TILE + 3 positions; most variances take one of three values, so the cut falls among thousands of
  // equal variances spread over every tile and chunk (and over partial groups of four at the end).
  const tied = (() => {
    const n = 5 * 1639, a = new Array<number>(n);
    for (let j = 0; j < n; j++) a[j] = j % 5 === 0 ? 1 + j * 1e-4 : (Math.imul(j, 0x9e3779b1) >>> 28) % 3 + 1;
    return { base: single([5, 1639], new Array(n).fill(0)), a: single([5, 1639], a), b: single([5, 1639], new Array(n).fill(0)) };
  })();
  // BF16 inputs are read in place four positions at a time; 8195 positions leave a tail of 3 in the last tile.
  const tied16 = Object.fromEntries(Object.entries(tied).map(([name, m]) => {
    const t = m.tensors.get("model.layers.0.mlp.weight")!;
    return [name, single(t.shape, Array.from(t.values!, (v) => bf16BitsToF32(f32ToBf16Bits(v))), undefined, "BF16")];
  }));
  test("select_topk 0.45 on bf16 inputs whose length leaves a partial group of four", () => check({ method: "sce", models: tied16, tasks: { a: {}, b: {} }, globals: { select_topk: 0.45 }, workers: 1 }));
  test("select_topk 0.45: the cut among many equal variances, whole tensor", () => check({ method: "sce", models: tied, tasks: { a: {}, b: {} }, globals: { select_topk: 0.45 }, workers: 1 }));
  test("select_topk 0.45: the cut among many equal variances, 4096-element chunks", () => check({
    method: "sce", models: tied, tasks: { a: {}, b: {} }, globals: { select_topk: 0.45 }, workers: 2, chunkElements: 4096,
  }));
  test("hand-worked: the cut is on the exact variance, ties by lower index", async () => {
    // Two models, tau_a = [1, 2, 2, 0, 3], tau_b = [-1, 0, 0, 0, 3]: variances [1, 1, 1, 0, 0], 3 nonzero.
    // select_topk 0.7 -> k = 2: positions 0 and 1 (position 2 ties with them but comes later).
    // Kept: a = [1, 2, 0, 0, 0], b = [-1, 0, 0, 0, 0]; c = [5/5, 1/5] / 6 * 5 -> [5/6, 1/6].
    // Position 0: sum 0 -> +: only a agrees: 5/6 * 1 / (5/6) = 1. Position 1: a only: 2.
    const models = { base: single([5], [0, 0, 0, 0, 0]), a: single([5], [1, 2, 2, 0, 3]), b: single([5], [-1, 0, 0, 0, 3]) };
    const out = await mergeOne("sce", models, { a: {}, b: {} }, { select_topk: 0.7 });
    assert.deepEqual([...out].map((v) => Math.round(v * 1e6) / 1e6), [1, 2, 0, 0, 0]);
  });
});

describe("ram", () => {
  const sparse = (seed: number) => fineTune(base, seed, 0.1, { quantum: 0.02 }); // many entries unchanged
  test("ram: unique changes summed, shared ones averaged", () => check({ method: "ram", models: { base, a: sparse(91), b: sparse(92), c: sparse(93) }, tasks: { a: {}, b: {}, c: {} } }));
  test("ramplus_tl: r, alpha and epsilon set", () => check({
    method: "ramplus_tl", models: { base, a: sparse(94), b: sparse(95) }, tasks: { a: {}, b: {} }, globals: { r: 0.5, alpha: 0.4, epsilon: 0.015 },
  }));
  test("hand-worked: ramplus_tl scales a model's unique changes by 1 + r * clip(shared / unique, 0, alpha)", async () => {
    // tau_a = [1, 1, 0, 2], tau_b = [0, 3, 0, 0]: a is shared at 1 position, alone at 2 -> rho 0.5 ->
    // lambda_a = 1 + 0.1 * min(0.5, 0.2) = 1.02; b is never alone -> rho = 1 / 1e-5 -> lambda_b = 1.02.
    const models = { base: single([4], [0, 0, 0, 0]), a: single([4], [1, 1, 0, 2]), b: single([4], [0, 3, 0, 0]) };
    const out = await mergeOne("ramplus_tl", models, { a: {}, b: {} });
    assert.deepEqual([...out], [fr(1.02), 2, 0, fr(2 * fr(1.02))]);
  });
});
