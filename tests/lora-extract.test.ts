// LoRA extraction (weightsoup extract-lora): the adapter read back with the reference safetensors
// reader and multiplied out in float64 here, against task vectors of known singular values (built as
// U·diag(s)·Vᵀ from random orthonormal U, V) and against an exact SVD computed in this file (a plain
// cyclic Jacobi eigen-decomposition of ΔWᵀΔW in float64).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { extractLora, merge, WeightsoupError } from "../src/node";
import type { RefModel, RefTensor } from "./reference/merge";
import { decodeFloat, readSafetensors } from "./reference/safetensors";
import { CLI, removeDir, tempDir, uniform, WORKER_URL, writeModel } from "./helpers/fixtures";
import { decoderModel, writeDecoderModel } from "./helpers/decoder-models";

let root: string;
before(async () => { root = await tempDir("ws-lora-"); });
after(async () => { await removeDir(root); });

// ------------------------------------------------------------------------------------------------
// Independent float64 linear algebra for the checks.

/** A [rows × cols] matrix with orthonormal columns (rows ≥ cols): Gram–Schmidt twice on random columns. */
function orthonormal(rows: number, cols: number, seed: number): Float64Array[] {
  const out: Float64Array[] = [];
  for (let j = 0; j < cols; j++) {
    const v = Float64Array.from({ length: rows }, (_, i) => uniform(seed + j * 7919, i) - 0.5);
    for (let pass = 0; pass < 2; pass++) {
      for (const u of out) {
        let d = 0;
        for (let i = 0; i < rows; i++) d += u[i]! * v[i]!;
        for (let i = 0; i < rows; i++) v[i]! -= d * u[i]!;
      }
    }
    const norm = Math.hypot(...v);
    out.push(v.map((x) => x / norm));
  }
  return out; // columns
}

/** U·diag(s)·Vᵀ, [m × n] row-major. */
function withSpectrum(m: number, n: number, s: number[], seed: number): Float64Array {
  const u = orthonormal(m, s.length, seed), v = orthonormal(n, s.length, seed + 1);
  const out = new Float64Array(m * n);
  for (let k = 0; k < s.length; k++) for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out[i * n + j]! += u[k]![i]! * s[k]! * v[k]![j]!;
  return out;
}

/** Eigenvalues of a symmetric [n × n] matrix by cyclic Jacobi rotations, descending. */
function symmetricEigenvalues(a: Float64Array, n: number): number[] {
  const m = Float64Array.from(a);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += m[p * n + q]! ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (m[q * n + q]! - m[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < n; k++) { // columns p, q
          const kp = m[k * n + p]!, kq = m[k * n + q]!;
          m[k * n + p] = c * kp - s * kq;
          m[k * n + q] = s * kp + c * kq;
        }
        for (let k = 0; k < n; k++) { // rows p, q
          const pk = m[p * n + k]!, qk = m[q * n + k]!;
          m[p * n + k] = c * pk - s * qk;
          m[q * n + k] = s * pk + c * qk;
        }
      }
    }
  }
  return Array.from({ length: n }, (_, i) => m[i * n + i]!).sort((x, y) => y - x);
}

/** The optimal rank-r relative error of ΔW [m × n]: √(Σ_{i≥r} σ_i²) / ‖ΔW‖_F, σ² the eigenvalues of ΔWᵀΔW. */
function optimalError(d: Float64Array, m: number, n: number, r: number): number {
  const g = new Float64Array(n * n);
  for (let i = 0; i < m; i++) for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) g[a * n + b]! += d[i * n + a]! * d[i * n + b]!;
  const ev = symmetricEigenvalues(g, n).map((x) => Math.max(0, x));
  const total = ev.reduce((s, x) => s + x, 0);
  return Math.sqrt(ev.slice(r).reduce((s, x) => s + x, 0) / total);
}

// ------------------------------------------------------------------------------------------------
// Models: a base with random weights, and a fine-tune whose task vectors are given.

const SHAPES: Record<string, number[]> = {
  "model.embed_tokens.weight": [40, 16],
  "model.layers.0.self_attn.q_proj.weight": [16, 16],
  "model.layers.0.mlp.up_proj.weight": [48, 16],
  "model.layers.0.mlp.down_proj.weight": [16, 48],
  "model.layers.0.input_layernorm.weight": [16],
  "model.norm.weight": [16],
  "lm_head.weight": [40, 16],
};

function baseOf(seed: number): RefModel {
  const tensors = new Map<string, RefTensor>();
  let s = seed;
  for (const [name, shape] of Object.entries(SHAPES)) {
    const n = shape.reduce((a, b) => a * b, 1);
    tensors.set(name, { dtype: "F32", shape, values: Float32Array.from({ length: n }, (_, i) => uniform(s, i) - 0.5) });
    s += 101;
  }
  return { config: { architectures: ["LlamaForCausalLM"], model_type: "llama", num_hidden_layers: 1 }, tensors };
}

/** base + delta per named tensor (float32-rounded: ΔW is then re-measured from the files). */
function tuned(base: RefModel, deltas: Record<string, Float64Array>, dtype = "F32"): RefModel {
  const tensors = new Map<string, RefTensor>();
  for (const [name, t] of base.tensors) {
    const d = deltas[name];
    tensors.set(name, { dtype, shape: t.shape, values: Float32Array.from(t.values!, (x, i) => x + (d ? d[i]! : 0)) });
  }
  return { config: base.config, tensors };
}

/** ΔW as stored in the files: ft − base in float64. */
function storedDelta(ft: RefModel, base: RefModel, name: string): Float64Array {
  const a = ft.tensors.get(name)!.values!, b = base.tensors.get(name)!.values!;
  return Float64Array.from(a, (x, i) => x - b[i]!);
}

/** Spectra: a fast decay (q_proj), a slow one (up_proj, m > n) and rank 5 exactly (down_proj, m < n). */
const SPECTRA = {
  "model.layers.0.self_attn.q_proj.weight": Array.from({ length: 16 }, (_, i) => 0.5 * 0.75 ** i),
  "model.layers.0.mlp.up_proj.weight": Array.from({ length: 16 }, (_, i) => 0.3 / (1 + 0.2 * i)),
  "model.layers.0.mlp.down_proj.weight": [0.4, 0.3, 0.2, 0.1, 0.05],
};

function designedDeltas(): Record<string, Float64Array> {
  const deltas: Record<string, Float64Array> = Object.create(null);
  let seed = 500;
  for (const [name, s] of Object.entries(SPECTRA)) {
    const [m, n] = SHAPES[name] as [number, number];
    deltas[name] = withSpectrum(m, n, s, seed += 10);
  }
  const emb = SHAPES["model.embed_tokens.weight"]!;
  deltas["model.embed_tokens.weight"] = withSpectrum(emb[0]!, emb[1]!, [0.3, 0.2, 0.1], 900);
  deltas["model.layers.0.input_layernorm.weight"] = Float64Array.from({ length: 16 }, (_, i) => 0.01 * (i + 1));
  return deltas;
}

interface Adapter {
  config: Record<string, unknown>;
  tensors: Map<string, { dtype: string; shape: number[]; values: Float32Array }>;
  files: string[];
}

async function readAdapter(dir: string): Promise<Adapter> {
  const files = (await readdir(dir)).sort();
  const parsed = readSafetensors(new Uint8Array(await readFile(join(dir, "adapter_model.safetensors"))));
  const tensors = new Map([...parsed.tensors].map(([name, t]) => [name, { dtype: t.dtype, shape: t.shape, values: decodeFloat(t.dtype, t.data) }]));
  return { config: JSON.parse(await readFile(join(dir, "adapter_config.json"), "utf8")), tensors, files };
}

/** B·A [out × in] in float64 from a Linear module's factors. */
function product(adapter: Adapter, module: string): { m: number; n: number; r: number; w: Float64Array } {
  const a = adapter.tensors.get(`base_model.model.${module}.lora_A.weight`)!, b = adapter.tensors.get(`base_model.model.${module}.lora_B.weight`)!;
  assert.ok(a && b, `factors of ${module}`);
  const [r, n] = a.shape as [number, number], [m, rb] = b.shape as [number, number];
  assert.equal(rb, r, `${module}: lora_B is [out, r]`);
  const w = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let k = 0; k < r; k++) for (let j = 0; j < n; j++) w[i * n + j]! += b.values[i * r + k]! * a.values[k * n + j]!;
  return { m, n, r, w };
}

function relativeError(d: Float64Array, w: Float64Array): number {
  let e = 0, s = 0;
  for (let i = 0; i < d.length; i++) { e += (d[i]! - w[i]!) ** 2; s += d[i]! ** 2; }
  return Math.sqrt(e / s);
}

let counter = 0;
async function setup(deltas = designedDeltas(), ftDtype = "F32"): Promise<{ dir: string; base: RefModel; ft: RefModel }> {
  const dir = join(root, `case-${counter++}`);
  const base = baseOf(7);
  const ft = tuned(base, deltas, ftDtype);
  await writeModel(join(dir, "base"), base);
  await writeModel(join(dir, "ft"), ft);
  return { dir, base, ft };
}

// ------------------------------------------------------------------------------------------------

describe("extract-lora: reconstruction", () => {
  test("at full rank the adapter reproduces every task vector to float tolerance", async () => {
    const { dir, base, ft } = await setup();
    const out = join(dir, "lora");
    const result = await extractLora(join(dir, "ft"), join(dir, "base"), { out, rank: 64, powerIterations: 0, oversample: 0 });
    const adapter = await readAdapter(out);
    for (const name of Object.keys(SPECTRA)) {
      const module = name.slice(0, -".weight".length);
      const { w } = product(adapter, module);
      const e = relativeError(storedDelta(ft, base, name), w);
      assert.ok(e < 1e-5, `${module}: relative error ${e}`);
      const reported = result.modules.find((m) => m.module === module)!;
      assert.ok(reported.relativeError < 1e-5 && Math.abs(reported.relativeError - e) < 1e-6, `${module}: reported ${reported.relativeError}, measured ${e}`);
    }
  });

  test("at rank r the error is the optimal rank-r error (known singular values and an exact SVD here), within 1%", async () => {
    const { dir, base, ft } = await setup();
    for (const rank of [2, 4]) {
      const out = join(dir, `lora-${rank}`);
      const result = await extractLora(join(dir, "ft"), join(dir, "base"), { out, rank });
      const adapter = await readAdapter(out);
      for (const [name, s] of Object.entries(SPECTRA)) {
        const module = name.slice(0, -".weight".length);
        const [m, n] = SHAPES[name] as [number, number];
        const { w, r } = product(adapter, module);
        assert.equal(r, Math.min(rank, s.length), `${module}: rank`);
        const d = storedDelta(ft, base, name);
        const e = relativeError(d, w);
        const designed = Math.sqrt(s.slice(r).reduce((t, x) => t + x * x, 0) / s.reduce((t, x) => t + x * x, 0));
        const exact = optimalError(d, m, n, r);
        assert.ok(Math.abs(exact - designed) <= 1e-3 * designed, `${module}: the exact SVD here agrees with the designed spectrum (${exact} vs ${designed})`);
        assert.ok(e >= exact * (1 - 1e-6) && e <= exact * 1.01, `${module} rank ${r}: error ${e}, optimal ${exact}`);
        const reported = result.modules.find((x) => x.module === module)!.relativeError;
        assert.ok(Math.abs(reported - e) <= 1e-4 * e, `${module}: reported ${reported}, measured ${e}`);
      }
    }
  });

  test("a random task vector (flat spectrum), read in blocks of a few rows, still meets the optimal error within 1%", async () => {
    const name = "model.layers.0.mlp.up_proj.weight";
    const [m, n] = SHAPES[name] as [number, number];
    const deltas: Record<string, Float64Array> = Object.create(null);
    deltas[name] = Float64Array.from({ length: m * n }, (_, i) => 0.02 * (uniform(4242, i) - 0.5));
    const { dir, base, ft } = await setup(deltas);
    const d = storedDelta(ft, base, name);
    for (const blockBytes of [64 << 20, 3 * n * 4]) { // all rows at once; 3 rows (of f32) per block
      const out = join(dir, `lora-${blockBytes}`);
      await extractLora(join(dir, "ft"), join(dir, "base"), { out, rank: 6, blockBytes });
      const e = relativeError(d, product(await readAdapter(out), "model.layers.0.mlp.up_proj").w);
      const exact = optimalError(d, m, n, 6);
      assert.ok(e >= exact * (1 - 1e-6) && e <= exact * 1.01, `blocks of ${blockBytes} bytes: error ${e}, optimal ${exact}`);
    }
  });

  test("--sv-epsilon cuts the rank at the singular values above it; the config records lower ranks in rank_pattern", async () => {
    const { dir } = await setup();
    const out = join(dir, "lora");
    const result = await extractLora(join(dir, "ft"), join(dir, "base"), { out, rank: 8, svEpsilon: 0.15 });
    const adapter = await readAdapter(out);
    const expectRank = (s: number[]) => Math.min(8, s.filter((x) => x > 0.15).length);
    const ranks: Record<string, number> = Object.create(null);
    for (const [name, s] of Object.entries(SPECTRA)) {
      const module = name.slice(0, -".weight".length);
      ranks[module] = expectRank(s);
      assert.equal(product(adapter, module).r, ranks[module], module);
    }
    const r = Math.max(...Object.values(ranks));
    assert.equal(result.rank, r);
    assert.equal(adapter.config.r, r);
    assert.equal(adapter.config.lora_alpha, r);
    const rankPattern = adapter.config.rank_pattern as Record<string, number>;
    const alphaPattern = adapter.config.alpha_pattern as Record<string, number>;
    for (const [module, rank] of Object.entries(ranks)) {
      const key = Object.keys(rankPattern).find((k) => new RegExp(`^(?:.*\\.)?(?:${k})$`).test(module));
      if (rank === r) assert.equal(key, undefined, `${module} has the top rank: no pattern`);
      else {
        assert.equal(rankPattern[key!], rank, `${module}: rank_pattern`);
        assert.equal(alphaPattern[key!], rank, `${module}: alpha_pattern (scale 1)`);
      }
    }
  });

  test("deterministic: the same call writes the same bytes", async () => {
    const { dir } = await setup();
    const files = [];
    for (const i of [0, 1]) {
      await extractLora(join(dir, "ft"), join(dir, "base"), { out: join(dir, `lora-${i}`), rank: 3, seed: 9 });
      files.push(await readFile(join(dir, `lora-${i}`, "adapter_model.safetensors")));
    }
    assert.ok(files[0]!.equals(files[1]!));
  });
});

describe("extract-lora: how the scale is split (mergekit's --distribute-scale)", () => {
  /** Column norms of B [m × r] and row norms of A [r × n], and BᵀB's largest distance from the identity. */
  function factorNorms(adapter: Adapter, module: string) {
    const a = adapter.tensors.get(`base_model.model.${module}.lora_A.weight`)!, b = adapter.tensors.get(`base_model.model.${module}.lora_B.weight`)!;
    const [r, n] = a.shape as [number, number], m = b.shape[0]!;
    const aRows = Array.from({ length: r }, (_, k) => Math.sqrt(Array.from({ length: n }, (_, j) => a.values[k * n + j]! ** 2).reduce((x, y) => x + y, 0)));
    const bCols = Array.from({ length: r }, (_, k) => Math.sqrt(Array.from({ length: m }, (_, i) => b.values[i * r + k]! ** 2).reduce((x, y) => x + y, 0)));
    let offIdentity = 0;
    for (let p = 0; p < r; p++) {
      for (let q = 0; q < r; q++) {
        let d = 0;
        for (let i = 0; i < m; i++) d += b.values[i * r + p]! * b.values[i * r + q]!;
        offIdentity = Math.max(offIdentity, Math.abs(d - (p === q ? 1 : 0)));
      }
    }
    return { aRows, bCols, offIdentity };
  }

  test("distributed (default): A = √S·Vᵀ, B = U·√S; not distributed: A = S·Vᵀ, B = U; B·A is the task vector at full rank either way", async () => {
    const { dir, base, ft } = await setup();
    for (const distributeScale of [true, false]) {
      const out = join(dir, `lora-${distributeScale}`);
      await extractLora(join(dir, "ft"), join(dir, "base"), { out, rank: 64, svEpsilon: 1e-4, powerIterations: 0, oversample: 0, ...(distributeScale ? {} : { distributeScale }) });
      const adapter = await readAdapter(out);
      for (const [name, s] of Object.entries(SPECTRA)) {
        const module = name.slice(0, -".weight".length);
        const e = relativeError(storedDelta(ft, base, name), product(adapter, module).w);
        assert.ok(e < 1e-5, `${module}, distributeScale ${distributeScale}: relative error ${e}`);
        // (svEpsilon drops only the float-rounding tail.) The designed singular values, split as mergekit does: ‖A row k‖ ‖B col k‖ = σ_k in both cases.
        const { aRows, bCols, offIdentity } = factorNorms(adapter, module);
        assert.equal(aRows.length, s.length, `${module}: rank`);
        for (let k = 0; k < s.length; k++) {
          const [wantA, wantB] = distributeScale ? [Math.sqrt(s[k]!), Math.sqrt(s[k]!)] : [s[k]!, 1];
          assert.ok(Math.abs(aRows[k]! - wantA) <= 2e-4 * wantA, `${module} σ_${k}: ‖A row‖ ${aRows[k]}, expected ${wantA}`);
          assert.ok(Math.abs(bCols[k]! - wantB) <= 2e-4 * wantB, `${module} σ_${k}: ‖B column‖ ${bCols[k]}, expected ${wantB}`);
        }
        if (!distributeScale) assert.ok(offIdentity < 1e-5, `${module}: B = U has orthonormal columns (BᵀB − I up to ${offIdentity})`);
      }
    }
  });
});

describe("extract-lora: module filters (mergekit's -i / -e / --save-module)", () => {
  test("include and exclude regexes pick exactly the modules they match; every other tensor is reported with the reason", async () => {
    const { dir } = await setup();
    const result = await extractLora(join(dir, "ft"), join(dir, "base"), { out: join(dir, "lora"), rank: 2, include: ["mlp", "^lm_"], exclude: ["down_proj$"] });
    const adapter = await readAdapter(join(dir, "lora"));
    // By hand: "mlp" matches up_proj and down_proj, "^lm_" lm_head (unchanged: no factors); down_proj is excluded.
    assert.deepEqual(result.modules.map((m) => m.module), ["model.layers.0.mlp.up_proj"]);
    assert.deepEqual([...adapter.tensors.keys()].sort(), ["base_model.model.model.layers.0.mlp.up_proj.lora_A.weight", "base_model.model.model.layers.0.mlp.up_proj.lora_B.weight"]);
    assert.deepEqual(adapter.config.target_modules, ["model.layers.0.mlp.up_proj"]);
    const reason = new Map(result.skipped.map((s) => [s.tensor, `${s.reason}/${s.differs}${s.pattern ? `/${s.pattern}` : ""}`]));
    assert.deepEqual(Object.fromEntries(reason), {
      "model.embed_tokens.weight": "not included/true",
      "model.layers.0.self_attn.q_proj.weight": "not included/true",
      "model.layers.0.mlp.down_proj.weight": "excluded/true/down_proj$",
      "model.layers.0.input_layernorm.weight": "not included/true",
      "model.norm.weight": "not included/false",
      "lm_head.weight": "unchanged/false",
    });
    assert.equal(result.saved.length, 0);
    assert.equal(adapter.config.modules_to_save, null);
  });

  test("--save-module stores a module whole from the fine-tune as modules_to_save, by full name or last part, ahead of the regexes", async () => {
    const deltas = designedDeltas();
    deltas["lm_head.weight"] = Float64Array.from({ length: 40 * 16 }, (_, i) => 0.01 * (uniform(77, i) - 0.5));
    const { dir, ft } = await setup(deltas);
    const out = join(dir, "lora");
    const result = await extractLora(join(dir, "ft"), join(dir, "base"), { out, rank: 2, saveModules: ["lm_head", "model.embed_tokens", "q_proj"], exclude: ["q_proj", "lm_head"] });
    const adapter = await readAdapter(out);
    const whole = ["lm_head.weight", "model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight"];
    for (const name of whole) {
      const t = adapter.tensors.get(`base_model.model.${name}`);
      assert.ok(t, `${name} saved whole`);
      assert.deepEqual(t.shape, SHAPES[name], name);
      assert.deepEqual([...t.values], [...ft.tensors.get(name)!.values!], `${name}: the fine-tune's values`);
    }
    assert.deepEqual([...(adapter.config.modules_to_save as string[])].sort(), ["lm_head", "model.embed_tokens", "model.layers.0.self_attn.q_proj"]);
    assert.deepEqual(result.saved.map((s) => `${s.tensor}/${s.differs}`).sort(), whole.map((n) => `${n}/true`).sort());
    assert.deepEqual(result.modules.map((m) => m.module).sort(), ["model.layers.0.mlp.down_proj", "model.layers.0.mlp.up_proj"]);
    assert.ok(!(adapter.config.target_modules as string[]).some((m) => m.includes("q_proj") || m.includes("lm_head")));
    for (const t of result.skipped) assert.ok(!whole.includes(t.tensor), `${t.tensor} is saved, not skipped`);
  });

  test("a save name that matches no module, a bad regex and a non-list are E_OPTION, and no output is left", async () => {
    const { dir } = await setup();
    const out = join(dir, "lora");
    for (const bad of [{ saveModules: ["v_proj"] }, { include: ["("] }, { exclude: "mlp" as unknown as string[] }]) {
      try {
        await extractLora(join(dir, "ft"), join(dir, "base"), { out, rank: 2, ...bad });
        assert.fail(`expected an error for ${JSON.stringify(bad)}`);
      } catch (e) {
        assert.ok(e instanceof WeightsoupError && e.code === "E_OPTION", String(e));
      }
      assert.equal(existsSync(out), false);
    }
  });
});

describe("extract-lora: PEFT format", () => {
  test("keys, shapes, dtypes and adapter_config.json follow PEFT's LoRA format; embeddings with embedLora", async () => {
    const { dir, base, ft } = await setup();
    const out = join(dir, "lora");
    const result = await extractLora(join(dir, "ft"), join(dir, "base"), { out, rank: 3, embedLora: true, dtype: "BF16" });
    const adapter = await readAdapter(out);
    assert.deepEqual(adapter.files, ["README.md", "adapter_config.json", "adapter_model.safetensors"]);
    const c = adapter.config;
    assert.equal(c.peft_type, "LORA");
    assert.equal(c.r, 3);
    assert.equal(c.lora_alpha, 3);
    assert.equal(c.use_rslora, false);
    assert.equal(c.use_dora, false);
    assert.equal(c.fan_in_fan_out, false);
    assert.equal(c.bias, "none");
    assert.equal(c.base_model_name_or_path, join(dir, "base"));
    const linear = Object.keys(SPECTRA).map((n) => n.slice(0, -".weight".length));
    assert.deepEqual([...(c.target_modules as string[])].sort(), [...linear, "model.embed_tokens"].sort());
    const expected = new Map<string, number[]>();
    for (const module of linear) {
      const [m, n] = SHAPES[`${module}.weight`]!;
      expected.set(`base_model.model.${module}.lora_A.weight`, [3, n!]);
      expected.set(`base_model.model.${module}.lora_B.weight`, [m!, 3]);
    }
    expected.set("base_model.model.model.embed_tokens.lora_embedding_A", [3, 40]);
    expected.set("base_model.model.model.embed_tokens.lora_embedding_B", [16, 3]);
    assert.deepEqual([...adapter.tensors.keys()].sort(), [...expected.keys()].sort());
    for (const [key, shape] of expected) {
      assert.deepEqual(adapter.tensors.get(key)!.shape, shape, key);
      assert.equal(adapter.tensors.get(key)!.dtype, "BF16", key);
    }
    // PEFT's Embedding delta: (lora_embedding_B · lora_embedding_A)ᵀ, [vocab × dim]; its ΔW has rank 3.
    const ea = adapter.tensors.get("base_model.model.model.embed_tokens.lora_embedding_A")!.values;
    const eb = adapter.tensors.get("base_model.model.model.embed_tokens.lora_embedding_B")!.values;
    const w = new Float64Array(40 * 16);
    for (let v = 0; v < 40; v++) for (let d = 0; d < 16; d++) for (let k = 0; k < 3; k++) w[v * 16 + d]! += eb[d * 3 + k]! * ea[k * 40 + v]!;
    const e = relativeError(storedDelta(ft, base, "model.embed_tokens.weight"), w);
    assert.ok(e < 0.01, `embedding: relative error ${e} (bf16 factors)`);
    assert.ok(result.modules.some((m) => m.kind === "embedding" && m.module === "model.embed_tokens"));
  });

  test("tensors left out are reported: a changed norm, an embedding without embedLora, unchanged tensors", async () => {
    const { dir } = await setup();
    const result = await extractLora(join(dir, "ft"), join(dir, "base"), { out: join(dir, "lora"), rank: 2 });
    const reason = new Map(result.skipped.map((s) => [s.tensor, `${s.reason}/${s.differs}`]));
    assert.equal(reason.get("model.layers.0.input_layernorm.weight"), "not decomposable/true");
    assert.equal(reason.get("model.embed_tokens.weight"), "embedding/true");
    assert.equal(reason.get("model.norm.weight"), "unchanged/false");
    assert.equal(reason.get("lm_head.weight"), "unchanged/false");
    assert.deepEqual(result.modules.map((m) => m.module).sort(), Object.keys(SPECTRA).map((n) => n.slice(0, -".weight".length)).sort());
  });
});

describe("extract-lora: GPT-2 (Conv1D projections, OpenAI's unprefixed layout)", () => {
  // Found by an audit: GPT-2's c_attn / c_proj / c_fc are Conv1D, stored [in, out]; their factors were
  // written as nn.Linear's, which PEFT cannot load (or, for the square attn.c_proj, applies transposed),
  // and wpe (an nn.Embedding) was written as a Linear LoRA.
  // OpenAI's GPT-1 has the same Conv1D projections (found by the stop 37 audit: only model_type gpt2 counted).
  for (const modelType of ["gpt2", "openai-gpt"]) test(`${modelType}: factors have PEFT's Conv1D shapes and (B·A)ᵀ is the task vector; fan_in_fan_out is true, keys carry transformer., wpe is an Embedding LoRA; base+adapter is the fine-tune`, async () => {
    const dir = join(root, `gpt2-${counter++}`);
    const gpt2 = decoderModel("gpt2-unprefixed");
    const base = { ...gpt2, config: { ...gpt2.config, model_type: modelType } };
    const deltas = new Map([...base.tensors].filter(([name, t]) => t.shape.length === 2 && name !== "wte.weight").map(([name, t], i) =>
      [name, Float32Array.from(t.values, (_, j) => 0.02 * (uniform(1000 + i, j) - 0.5))]));
    const ft = { ...base, tensors: new Map([...base.tensors].map(([name, t]) => [name, deltas.has(name) ? { ...t, values: Float32Array.from(t.values, (x, j) => Math.fround(x + deltas.get(name)![j]!)) } : t])) };
    await writeDecoderModel(join(dir, "base"), base);
    await writeDecoderModel(join(dir, "ft"), ft);
    const out = join(dir, "lora");
    await extractLora(join(dir, "ft"), join(dir, "base"), { out, rank: 256, embedLora: true, powerIterations: 0, oversample: 0 });
    const adapter = await readAdapter(out);
    assert.equal(adapter.config.fan_in_fan_out, true);
    let conv1d = 0;
    for (const name of deltas.keys()) {
      const [rows, cols] = base.tensors.get(name)!.shape as [number, number];
      const stored = Float64Array.from(ft.tensors.get(name)!.values, (x, j) => x - base.tensors.get(name)!.values[j]!);
      const module = `transformer.${name.slice(0, -".weight".length)}`;
      if (name === "wpe.weight") {
        assert.ok(adapter.tensors.has(`base_model.model.${module}.lora_embedding_A`), "wpe is an Embedding LoRA");
        continue;
      }
      assert.ok(/c_attn|c_proj|c_fc/.test(name), name);
      conv1d++;
      // PEFT's Conv1D: in = rows, out = cols of the [in, out] weight; lora_A [r, in], lora_B [out, r].
      const { m, n, w } = product(adapter, module);
      assert.deepEqual([m, n], [cols, rows], `${module}: lora_B·lora_A is [out, in]`);
      const transposed = new Float64Array(rows * cols);
      for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) transposed[i * cols + j] = w[j * rows + i]!;
      assert.ok(relativeError(stored, transposed) < 1e-5, `${module}: (B·A)ᵀ is the task vector`);
    }
    assert.ok(conv1d >= 8, `${conv1d} Conv1D modules`);
    // The adapter applied by weightsoup (its own PEFT rules) gives the fine-tune back.
    await writeFile(join(dir, "r.yml"), "merge_method: passthrough\nmodels:\n  - model: ./base+./lora\n");
    await merge(join(dir, "r.yml"), { out: join(dir, "applied"), workers: 1, workerUrl: WORKER_URL });
    const applied = readSafetensors(new Uint8Array(await readFile(join(dir, "applied", "model.safetensors")))).tensors;
    for (const [name, t] of ft.tensors) {
      const got = decodeFloat(applied.get(name)!.dtype, applied.get(name)!.data);
      const worst = got.reduce((mx, x, j) => Math.max(mx, Math.abs(x - t.values[j]!)), 0);
      assert.ok(worst < 1e-5, `${name}: base+adapter is the fine-tune (max difference ${worst})`);
    }
  });
});

describe("extract-lora: errors", () => {
  const code = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (e) {
      assert.ok(e instanceof WeightsoupError, String(e));
      return { code: e.code, message: e.message };
    }
    assert.fail("expected an error");
  };

  test("rank below 1, a shape mismatch and a missing tensor are typed errors, and no output is left", async () => {
    const { dir, base } = await setup();
    const out = join(dir, "lora");
    assert.equal((await code(extractLora(join(dir, "ft"), join(dir, "base"), { out, rank: 0 }))).code, "E_OPTION");
    assert.equal(existsSync(out), false);

    const other = { config: base.config, tensors: new Map(base.tensors) };
    other.tensors.set("model.layers.0.mlp.up_proj.weight", { dtype: "F32", shape: [16, 48], values: base.tensors.get("model.layers.0.mlp.up_proj.weight")!.values! });
    other.tensors.delete("model.norm.weight");
    await writeModel(join(dir, "other"), other);
    const e = await code(extractLora(join(dir, "other"), join(dir, "base"), { out, rank: 2 }));
    assert.equal(e.code, "E_VALIDATION");
    assert.match(e.message, /E_SHAPE_MISMATCH.*up_proj/);
    assert.match(e.message, /E_TENSOR_MISSING.*model\.norm\.weight/);
    assert.equal(existsSync(out), false);
    assert.deepEqual((await readdir(dir)).filter((f) => f.startsWith(".lora")), [], "no staging folder left");
  });

  test("a NaN or infinity in a linear weight is E_NONFINITE naming the tensor, not a module left out as unchanged", async () => {
    // Found by an audit: the NaN task vector had no singular values above 0, so the module was reported
    // as "equal in both models" and the adapter silently lacked it.
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
      const { dir, ft } = await setup();
      const name = "model.layers.0.mlp.up_proj.weight";
      const values = Float32Array.from(ft.tensors.get(name)!.values!);
      values[5] = bad;
      ft.tensors.set(name, { ...ft.tensors.get(name)!, values });
      await writeModel(join(dir, "ft"), ft);
      const out = join(dir, "lora");
      const e = await code(extractLora(join(dir, "ft"), join(dir, "base"), { out, rank: 2 }));
      assert.equal(e.code, "E_NONFINITE", e.message);
      assert.match(e.message, /ft: tensor "model\.layers\.0\.mlp\.up_proj\.weight" minus the base's .* NaN or infinite/);
      assert.equal(existsSync(out), false);
    }
  });
});

describe("extract-lora: command line", () => {
  test("prints a table (or --json) and writes the adapter; bad flags exit 2", async () => {
    const { dir } = await setup();
    const run = (...args: string[]) => spawnSync(process.execPath, [CLI, "extract-lora", ...args], { encoding: "utf8" });
    const table = run(join(dir, "ft"), join(dir, "base"), join(dir, "lora"), "--rank", "4");
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, /model\.layers\.0\.mlp\.up_proj\s+48 x 16\s+4\s+\d\.\d{3}e-\d+/);
    assert.match(table.stdout, /model\.layers\.0\.input_layernorm\.weight: not decomposable/);
    const json = run(join(dir, "ft"), join(dir, "base"), join(dir, "lora"), "--rank", "2", "--json", "--force");
    assert.equal(json.status, 0, json.stderr);
    const parsed = JSON.parse(json.stdout);
    assert.equal(parsed.rank, 2);
    assert.equal(parsed.modules.length, 3);
    assert.ok(parsed.modules.every((m: { relativeError: number }) => m.relativeError > 0 && m.relativeError < 1));
    for (const args of [["--rank", "0"], [], ["--rank", "2", "--dtype", "int8"], ["--rank", "2", "--sv-epsilon", "-1"]]) {
      const r = run(join(dir, "ft"), join(dir, "base"), join(dir, "lora2"), ...args);
      assert.equal(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
    }
    const filtered = run(join(dir, "ft"), join(dir, "base"), join(dir, "lora-f"), "--rank", "2", "--json", "-i", "mlp", "--include-regex", "self_attn",
      "-e", "up_proj", "--save-module", "embed_tokens", "--no-distribute-scale");
    assert.equal(filtered.status, 0, filtered.stderr);
    const f = JSON.parse(filtered.stdout);
    assert.deepEqual(f.modules.map((m: { module: string }) => m.module).sort(), ["model.layers.0.mlp.down_proj", "model.layers.0.self_attn.q_proj"]);
    assert.deepEqual(f.saved.map((s: { tensor: string }) => s.tensor), ["model.embed_tokens.weight"]);
    assert.equal(f.skipped.find((s: { tensor: string }) => s.tensor === "model.layers.0.mlp.up_proj.weight").reason, "excluded");
    const fa = await readAdapter(join(dir, "lora-f"));
    const b = fa.tensors.get("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight")!;
    const col0 = Math.hypot(...Array.from({ length: b.shape[0]! }, (_, i) => b.values[i * b.shape[1]!]!));
    assert.ok(Math.abs(col0 - 1) < 1e-4, `--no-distribute-scale: B = U (first column norm ${col0})`);
    const text = run(join(dir, "ft"), join(dir, "base"), join(dir, "lora-t"), "--rank", "2", "-e", "up_proj", "--save-module", "embed_tokens");
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /saved whole[^\n]*\n  model\.embed_tokens\.weight  40 x 16  F32/);
    assert.match(text.stdout, /model\.layers\.0\.mlp\.up_proj\.weight: matches --exclude-regex up_proj/);
    for (const args of [["--rank", "2", "-i", "("], ["--rank", "2", "--distribute-scale", "--no-distribute-scale"], ["--rank", "2", "--save-module", "nope"]]) {
      const r = run(join(dir, "ft"), join(dir, "base"), join(dir, "lora3"), ...args);
      assert.equal(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
    }
    const exists = run(join(dir, "ft"), join(dir, "base"), join(dir, "lora"), "--rank", "2");
    assert.equal(exists.status, 1);
    assert.match(exists.stderr, /E_OUTPUT_EXISTS/);
  });
});
