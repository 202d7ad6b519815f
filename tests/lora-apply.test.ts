// `base+adapter` model references: a recipe input that is a base model with a PEFT LoRA applied must
// equal merging the LoRA into its base first. The reference here computes W + scale·B·A in float64
// (PEFT's scale rules: lora_alpha / r, rank_pattern / alpha_pattern, use_rslora; Embedding deltas
// transposed), rounds it to the base's dtype, writes that model, and merges it by hand.
import assert from "node:assert/strict";
import { writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { evaluate, extractLora, generate, merge, WeightsoupError } from "../src/node";
import type { RefModel, RefTensor } from "./reference/merge";
import { roundToDtype } from "./reference/float16";
import { encodeTensor, writeSafetensors, type RefDtype } from "./reference/safetensors";
import { baseModel, compareTensor, fineTune, readOutput, removeDir, tempDir, toYaml, uniform, WORKER_URL, writeModel, type Shape } from "./helpers/fixtures";

let root: string;
before(async () => { root = await tempDir("ws-lora-apply-"); });
after(async () => { await removeDir(root); });

/** Rows of 48 do not divide a 4096-element chunk, so chunks start mid-row. */
const SHAPE: Shape = { vocab: 100, hidden: 48, intermediate: 120, layers: 2, heads: 4, kvHeads: 2 };

interface Factor { module: string; rank: number; embedding?: boolean; dtype?: RefDtype }

interface AdapterSpec {
  factors: Factor[];
  config: Record<string, unknown>;
}

/** Random factors for each module: A [r, in] and B [out, r] (Embedding: A [r, vocab], B [dim, r]). */
function adapterTensors(base: RefModel, spec: AdapterSpec, seed: number): Map<string, { dtype: RefDtype; shape: number[]; values: Float32Array }> {
  const out = new Map<string, { dtype: RefDtype; shape: number[]; values: Float32Array }>();
  spec.factors.forEach((f, i) => {
    const [rows, cols] = base.tensors.get(`${f.module}.weight`)!.shape as [number, number];
    const dtype = f.dtype ?? "F32";
    const make = (shape: number[], s: number) => Float32Array.from({ length: shape[0]! * shape[1]! }, (_, j) => roundToDtype(0.2 * (uniform(s, j) - 0.5), dtype as "F32" | "BF16"));
    const p = `base_model.model.${f.module}`;
    if (f.embedding) {
      out.set(`${p}.lora_embedding_A`, { dtype, shape: [f.rank, rows], values: make([f.rank, rows], seed + 2 * i) });
      out.set(`${p}.lora_embedding_B`, { dtype, shape: [cols, f.rank], values: make([cols, f.rank], seed + 2 * i + 1) });
    } else {
      out.set(`${p}.lora_A.weight`, { dtype, shape: [f.rank, cols], values: make([f.rank, cols], seed + 2 * i) });
      out.set(`${p}.lora_B.weight`, { dtype, shape: [rows, f.rank], values: make([rows, f.rank], seed + 2 * i + 1) });
    }
  });
  return out;
}

async function writeAdapter(dir: string, tensors: ReturnType<typeof adapterTensors>, config: Record<string, unknown>): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "adapter_config.json"), JSON.stringify(config));
  await writeFile(join(dir, "adapter_model.safetensors"), writeSafetensors([...tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, data: encodeTensor(t.dtype, t.values) }))));
}

/** PEFT's rank / alpha for a module: the first pattern key matching `(.*\.)?KEY$`, else the defaults. */
function pattern(map: Record<string, number> | undefined, module: string, fallback: number): number {
  for (const [k, v] of Object.entries(map ?? {})) if (new RegExp(`^(.*\\.)?(${k})$`).test(module)) return v;
  return fallback;
}

/** The base with every module's delta merged in (float64 sum, then rounded to the base's dtype). */
function mergedReference(base: RefModel, spec: AdapterSpec, tensors: ReturnType<typeof adapterTensors>): RefModel {
  const out = new Map<string, RefTensor>(base.tensors);
  const c = spec.config as { r: number; lora_alpha: number; rank_pattern?: Record<string, number>; alpha_pattern?: Record<string, number>; use_rslora?: boolean };
  for (const f of spec.factors) {
    const w = base.tensors.get(`${f.module}.weight`)!;
    const [rows, cols] = w.shape as [number, number];
    const r = pattern(c.rank_pattern, f.module, c.r), alpha = pattern(c.alpha_pattern, f.module, c.lora_alpha);
    const scale = c.use_rslora ? alpha / Math.sqrt(r) : alpha / r;
    const p = `base_model.model.${f.module}`;
    const values = new Float32Array(rows * cols);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) {
        let d = 0;
        if (f.embedding) { // ΔW = (B·A)ᵀ: ΔW[i][j] = Σ_k A[k][i]·B[j][k]
          const a = tensors.get(`${p}.lora_embedding_A`)!.values, b = tensors.get(`${p}.lora_embedding_B`)!.values;
          for (let k = 0; k < f.rank; k++) d += a[k * rows + i]! * b[j * f.rank + k]!;
        } else { // ΔW = B·A
          const a = tensors.get(`${p}.lora_A.weight`)!.values, b = tensors.get(`${p}.lora_B.weight`)!.values;
          for (let k = 0; k < f.rank; k++) d += b[i * f.rank + k]! * a[k * cols + j]!;
        }
        values[i * cols + j] = roundToDtype(w.values![i * cols + j]! + scale * d, w.dtype as "F32" | "BF16");
      }
    }
    out.set(`${f.module}.weight`, { dtype: w.dtype, shape: w.shape, values });
  }
  return { config: base.config, tensors: out };
}

const SPEC: AdapterSpec = {
  factors: [
    { module: "model.layers.0.self_attn.q_proj", rank: 4 },
    { module: "model.layers.1.self_attn.q_proj", rank: 2 },
    { module: "model.layers.1.mlp.up_proj", rank: 3, dtype: "BF16" },
    { module: "model.layers.0.mlp.down_proj", rank: 4 },
    { module: "model.embed_tokens", rank: 2, embedding: true },
  ],
  config: {
    peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["q_proj", "up_proj", "down_proj", "embed_tokens"],
    rank_pattern: { "layers.1.self_attn.q_proj": 2, "up_proj": 3, "embed_tokens": 2 }, alpha_pattern: { "up_proj": 1.5 },
  },
};

let counter = 0;

/**
 * Merges `recipe(modelName)` twice, once naming the base+adapter reference and once a model holding the
 * reference's merged weights, and compares every output tensor.
 */
async function sameAsMergedFirst(dtype: "F32" | "BF16", spec: AdapterSpec, recipe: (m: string) => Record<string, unknown>, options: { chunkElements?: number; savedBaseLayer?: "as stored" | "as F32" } = {}): Promise<void> {
  const dir = join(root, `case-${counter++}`);
  const base = baseModel(31, dtype, SHAPE);
  const other = fineTune(base, 32, 0.1);
  const tensors = adapterTensors(base, spec, 700 + counter);
  const merged = mergedReference(base, spec, tensors);
  // PEFT's save_embedding_layers: the targeted embedding's base weight, as the base has it.
  // Training in float32 saves a BF16 base's weight as F32: the same values.
  const embed = base.tensors.get("model.embed_tokens.weight")! as { dtype: RefDtype; shape: number[]; values: Float32Array };
  if (options.savedBaseLayer) tensors.set("base_model.model.model.embed_tokens.base_layer.weight", options.savedBaseLayer === "as F32" ? { ...embed, dtype: "F32" } : embed);
  await writeModel(join(dir, "base"), base);
  await writeModel(join(dir, "other"), other);
  await writeModel(join(dir, "merged-first"), merged);
  await writeAdapter(join(dir, "lora"), tensors, spec.config);
  await writeFile(join(dir, "with-lora.yml"), toYaml(recipe("./base+./lora")));
  await writeFile(join(dir, "by-hand.yml"), toYaml(recipe("./merged-first")));
  const common = { workers: 2, workerUrl: WORKER_URL, chunkElements: options.chunkElements };
  await merge(join(dir, "with-lora.yml"), { out: join(dir, "out-lora"), ...common });
  await merge(join(dir, "by-hand.yml"), { out: join(dir, "out-hand"), ...common });
  const [ours, ref] = [await readOutput(join(dir, "out-lora")), await readOutput(join(dir, "out-hand"))];
  assert.deepEqual([...ours.tensors.keys()].sort(), [...ref.tensors.keys()].sort());
  for (const [name, t] of ref.tensors) {
    const got = ours.tensors.get(name)!;
    const { maxAbs, maxUlp, at } = compareTensor(got, { dtype: t.dtype, shape: t.shape, values: decode(t) });
    if (t.dtype === "F32") assert.ok(maxAbs <= 1e-6, `${name}: max abs diff ${maxAbs} at ${at}`);
    else assert.ok(maxUlp <= 1, `${name}: ${maxUlp} ulps apart at ${at}`);
  }
}

function decode(t: { dtype: string; data: Uint8Array }): Float32Array {
  const view = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  if (t.dtype === "F32") return Float32Array.from({ length: t.data.length / 4 }, (_, i) => view.getFloat32(4 * i, true));
  return Float32Array.from({ length: t.data.length / 2 }, (_, i) => new Float32Array(new Uint32Array([view.getUint16(2 * i, true) << 16]).buffer)[0]!);
}

describe("base+adapter inputs equal merging the LoRA into the base first", () => {
  test("linear merge, float32 base, ranks and alphas from rank_pattern / alpha_pattern, an Embedding LoRA", () =>
    sameAsMergedFirst("F32", SPEC, (m) => ({ merge_method: "linear", models: [{ model: m, parameters: { weight: 0.7 } }, { model: "./other", parameters: { weight: 0.3 } }] })));

  test("an adapter holding PEFT's saved base weight of its targeted embedding (save_embedding_layers), the base's own, gives the same", () =>
    sameAsMergedFirst("F32", SPEC, (m) => ({ merge_method: "linear", models: [{ model: m, parameters: { weight: 0.7 } }, { model: "./other", parameters: { weight: 0.3 } }] }), { savedBaseLayer: "as stored" }));

  test("the same with a bf16 base whose embedding the adapter saved as F32 (trained in float32)", () =>
    sameAsMergedFirst("BF16", SPEC, (m) => ({ merge_method: "linear", models: [{ model: m, parameters: { weight: 0.7 } }, { model: "./other", parameters: { weight: 0.3 } }] }), { savedBaseLayer: "as F32" }));

  test("the same, chunks of 4096 elements that start mid-row", () =>
    sameAsMergedFirst("F32", SPEC, (m) => ({ merge_method: "linear", models: [{ model: m, parameters: { weight: 0.7 } }, { model: "./other", parameters: { weight: 0.3 } }] }), { chunkElements: 4096 }));

  test("task_arithmetic with the adapted model as a task over its own base, bf16 base, use_rslora", () =>
    sameAsMergedFirst("BF16", { ...SPEC, config: { ...SPEC.config, use_rslora: true } }, (m) => ({
      merge_method: "task_arithmetic", base_model: "./base",
      models: [{ model: m, parameters: { weight: 0.8 } }, { model: "./other", parameters: { weight: 0.5 } }],
    }), { chunkElements: 4096 }));

  test("a negative lora_alpha subtracts the delta and an alpha_pattern of 0 leaves a module as it was, as PEFT scales them (refused until stop 38)", () =>
    sameAsMergedFirst("F32", { ...SPEC, config: { ...SPEC.config, lora_alpha: -8, alpha_pattern: { up_proj: 0 } } }, (m) => ({ merge_method: "passthrough", models: [{ model: m }] })));

  test("an adapter whose factors are all in layers_to_transform (an index, or a list) is applied as any other", async () => {
    const factors = [{ module: "model.layers.0.self_attn.q_proj", rank: 4 }, { module: "model.layers.0.mlp.down_proj", rank: 4 }];
    await sameAsMergedFirst("F32", { factors, config: { peft_type: "LORA", r: 4, lora_alpha: 8, layers_to_transform: 0 } }, (m) => ({ merge_method: "passthrough", models: [{ model: m }] }));
    await sameAsMergedFirst("F32", { factors, config: { peft_type: "LORA", r: 4, lora_alpha: 8, layers_to_transform: [0, 1], layers_pattern: "layers" } }, (m) => ({ merge_method: "passthrough", models: [{ model: m }] }));
  });

  test("as the base model of ties, and through passthrough", async () => {
    await sameAsMergedFirst("F32", SPEC, (m) => ({
      merge_method: "ties", base_model: m,
      models: [{ model: "./other", parameters: { weight: 1, density: 0.5 } }, { model: m }],
    }));
    await sameAsMergedFirst("BF16", SPEC, (m) => ({ merge_method: "passthrough", slices: [{ sources: [{ model: m, layer_range: [0, 2] }] }] }));
  });
});

describe("extract-lora then base+adapter", () => {
  test("a full-rank extraction applied to its base gives back the fine-tune", async () => {
    const dir = join(root, `case-${counter++}`);
    const shape: Shape = { vocab: 24, hidden: 16, intermediate: 20, layers: 1, heads: 2, kvHeads: 1 };
    const base = baseModel(41, "F32", shape);
    const ft = fineTune(base, 42, 0.1, { only: "proj" });
    await writeModel(join(dir, "base"), base);
    await writeModel(join(dir, "ft"), ft);
    await extractLora(join(dir, "ft"), join(dir, "base"), { out: join(dir, "lora"), rank: 64 });
    await writeFile(join(dir, "recipe.yml"), toYaml({ merge_method: "passthrough", models: [{ model: "./base+./lora" }] }));
    await merge(join(dir, "recipe.yml"), { out: join(dir, "out"), workers: 1, workerUrl: WORKER_URL });
    const out = await readOutput(join(dir, "out"));
    for (const [name, t] of ft.tensors) {
      const { maxAbs, at } = compareTensor(out.tensors.get(name)!, t);
      assert.ok(maxAbs <= 1e-5, `${name}: ${maxAbs} at ${at}`);
    }
  });
});

describe("extract-lora with --save-module and --no-distribute-scale, then base+adapter", () => {
  test("the saved module comes back exactly and the decomposed ones to float tolerance; a saved tensor of the wrong shape is E_ADAPTER", async () => {
    const dir = join(root, `case-${counter++}`);
    const shape: Shape = { vocab: 24, hidden: 16, intermediate: 20, layers: 1, heads: 2, kvHeads: 1 };
    const base = baseModel(61, "F32", shape);
    const ft = fineTune(base, 62, 0.1, { only: "proj" });
    ft.tensors.set("lm_head.weight", fineTune(base, 63, 0.1, { only: "lm_head" }).tensors.get("lm_head.weight")!);
    await writeModel(join(dir, "base"), base);
    await writeModel(join(dir, "ft"), ft);
    await extractLora(join(dir, "ft"), join(dir, "base"), { out: join(dir, "lora"), rank: 64, saveModules: ["lm_head"], distributeScale: false });
    await writeFile(join(dir, "recipe.yml"), toYaml({ merge_method: "passthrough", models: [{ model: "./base+./lora" }] }));
    await merge(join(dir, "recipe.yml"), { out: join(dir, "out"), workers: 1, workerUrl: WORKER_URL });
    const out = await readOutput(join(dir, "out"));
    for (const [name, t] of ft.tensors) {
      const { maxAbs, at } = compareTensor(out.tensors.get(name)!, t);
      assert.ok(maxAbs <= (name === "lm_head.weight" ? 0 : 1e-5), `${name}: ${maxAbs} at ${at}`);
    }
    assert.ok(compareTensor(out.tensors.get("lm_head.weight")!, base.tensors.get("lm_head.weight")!).maxAbs > 0.01, "lm_head is the fine-tune's, not the base's");

    const config = { peft_type: "LORA", r: 2, lora_alpha: 2, modules_to_save: ["lm_head"] };
    const tensors = adapterTensors(base, { factors: [{ module: "model.layers.0.self_attn.q_proj", rank: 2 }], config }, 5);
    tensors.set("base_model.model.lm_head.weight", { dtype: "F32", shape: [2, 16], values: new Float32Array(32) });
    await writeAdapter(join(dir, "bad"), tensors, config);
    await writeFile(join(dir, "bad.yml"), toYaml({ merge_method: "passthrough", models: [{ model: "./base+./bad" }] }));
    await assert.rejects(merge(join(dir, "bad.yml"), { out: join(dir, "out-bad"), workers: 1, workerUrl: WORKER_URL }),
      (e: unknown) => e instanceof WeightsoupError && e.code === "E_ADAPTER" && /lm_head\.weight.*\[2, 16\].*\[24, 16\]/.test(e.message));
  });
});

describe("adapter errors", () => {
  const failure = async (dir: string, recipe: Record<string, unknown>) => {
    await writeFile(join(dir, "r.yml"), toYaml(recipe));
    try {
      await merge(join(dir, "r.yml"), { out: join(dir, "out"), workers: 1, workerUrl: WORKER_URL });
    } catch (e) {
      assert.ok(e instanceof WeightsoupError, String(e));
      return e;
    }
    assert.fail("expected an error");
  };

  test("an adapter that does not fit its base, a rank that disagrees with the config, DoRA, stray tensors, a bad reference", async () => {
    const dir = join(root, `case-${counter++}`);
    const base = baseModel(51, "F32", SHAPE);
    await writeModel(join(dir, "base"), base);
    const recipe = { merge_method: "linear", models: [{ model: "./base+./lora", parameters: { weight: 1 } }] };
    const cases: [string, Record<string, unknown>, (t: ReturnType<typeof adapterTensors>) => void, RegExp][] = [
      ["missing target", { peft_type: "LORA", r: 2, lora_alpha: 2 }, (t) => {
        const a = t.get("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")!, b = t.get("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight")!;
        t.set("base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight", a);
        t.set("base_model.model.model.layers.9.self_attn.q_proj.lora_B.weight", b);
      }, /layers\.9\.self_attn\.q_proj\.weight.*does not have/],
      ["rank disagrees", { peft_type: "LORA", r: 3, lora_alpha: 2 }, () => {}, /rank 2 but adapter_config\.json gives it r = 3/],
      ["dora", { peft_type: "LORA", r: 2, lora_alpha: 2, use_dora: true }, () => {}, /DoRA/],
      ["rank 0", { peft_type: "LORA", r: 0, lora_alpha: 2 }, () => {}, /"r" must be a positive number, found 0/],
      // PEFT adapts only the listed layers, and would not load factors outside them (found by the stop 37 audit: applied).
      ["outside layers_to_transform", { peft_type: "LORA", r: 2, lora_alpha: 2, layers_to_transform: [1] }, () => {},
        /module "model\.layers\.0\.self_attn\.q_proj" has LoRA factors, but its layer 0 is not in layers_to_transform \(\[1\]\), so PEFT would not load them/],
      ["no layer index", { peft_type: "LORA", r: 2, lora_alpha: 2, layers_to_transform: 0, layers_pattern: "blocks" }, () => {}, /its name has no layer index after blocks/],
      ["alpha not a number", { peft_type: "LORA", r: 2, lora_alpha: "2" }, () => {}, /"lora_alpha" must be a finite number, found "2"/],
      ["rank pattern 0", { peft_type: "LORA", r: 2, lora_alpha: 2, rank_pattern: { q_proj: 0 } }, () => {}, /"rank_pattern\.q_proj" must be a positive number, found 0/],
      // Found by an audit: read as false, where PEFT's `if use_rslora:` takes "true" (and 1) as true.
      ["rslora as text", { peft_type: "LORA", r: 2, lora_alpha: 2, use_rslora: "true" }, () => {}, /use_rslora must be true or false, got "true"/],
      ["dora as a number", { peft_type: "LORA", r: 2, lora_alpha: 2, use_dora: 1 }, () => {}, /use_dora must be true or false, got 1/],
      // Found by the stop 37 audit: applied as a plain LoRA of the base, where PEFT rewrites the base first.
      ["pissa", { peft_type: "LORA", r: 2, lora_alpha: 2, init_lora_weights: "pissa_niter_4" }, () => {}, /init_lora_weights is "pissa_niter_4".*residual/],
      ["olora", { peft_type: "LORA", r: 2, lora_alpha: 2, init_lora_weights: "olora" }, () => {}, /init_lora_weights is "olora"/],
      ["loftq", { peft_type: "LORA", r: 2, lora_alpha: 2, init_lora_weights: "loftq" }, () => {}, /init_lora_weights is "loftq"/],
      ["stray tensor", { peft_type: "LORA", r: 2, lora_alpha: 2 }, (t) => {
        t.set("base_model.model.lm_head.weight", { dtype: "F32", shape: [1, 1], values: new Float32Array(1) });
      }, /"base_model\.model\.lm_head\.weight" is not a LoRA factor/],
      ["not lora", { peft_type: "IA3" }, () => {}, /peft_type is "IA3"/],
      ["changed base layer", { peft_type: "LORA", r: 2, lora_alpha: 2 }, (t) => {
        const w = base.tensors.get("model.embed_tokens.weight")!;
        t.set("base_model.model.model.embed_tokens.base_layer.weight", { dtype: "F32", shape: w.shape, values: w.values!.map((v, i) => (i === 7 ? v + 1 : v)) });
      }, /base_layer\.weight" is a base weight for "model\.embed_tokens\.weight" that differs from the base model/],
    ];
    for (const [label, config, mutate, message] of cases) {
      const tensors = adapterTensors(base, { factors: [{ module: "model.layers.0.self_attn.q_proj", rank: 2 }], config }, 5);
      mutate(tensors);
      await writeAdapter(join(dir, "lora"), tensors, config);
      const e = await failure(dir, recipe);
      assert.equal(e.code, "E_ADAPTER", `${label}: ${e.message}`);
      assert.match(e.message, message, label);
    }
    // A tied lm_head's LoRA and the embedding's both change the one shared weight: refused (one delta per tensor).
    const tiedBase: RefModel = { config: { ...base.config, tie_word_embeddings: true }, tensors: new Map([...base.tensors].filter(([name]) => name !== "lm_head.weight")) };
    await writeModel(join(dir, "tied"), tiedBase);
    const both = { peft_type: "LORA", r: 2, lora_alpha: 2 };
    await writeAdapter(join(dir, "both-lora"), adapterTensors(base, { factors: [{ module: "model.embed_tokens", rank: 2, embedding: true }, { module: "lm_head", rank: 2 }], config: both }, 6), both);
    const twice = await failure(dir, { merge_method: "linear", models: [{ model: "./tied+./both-lora", parameters: { weight: 1 } }] });
    assert.equal(twice.code, "E_ADAPTER");
    assert.match(twice.message, /module "lm_head" and another module both change "model\.embed_tokens\.weight"/);
    // A pickled adapter is refused before any of it is parsed: the error names the file and the conversion.
    await mkdir(join(dir, "pickled"), { recursive: true });
    await writeFile(join(dir, "pickled", "adapter_config.json"), JSON.stringify({ peft_type: "LORA", r: 2, lora_alpha: 2 }));
    await writeFile(join(dir, "pickled", "adapter_model.bin"), new Uint8Array([0x50, 0x4b, 0x03, 0x04, 1, 2, 3]));
    const pickled = await failure(dir, { merge_method: "linear", models: [{ model: "./base+./pickled", parameters: { weight: 1 } }] });
    assert.equal(pickled.code, "E_ADAPTER");
    assert.match(String(pickled.details.file), /pickled[\\/]adapter_model\.bin$/);
    assert.match(pickled.message, /pickled[\\/]adapter_model\.bin: .*PyTorch pickle.*convert it to adapter_model\.safetensors.*save_file/);
    const bad = await failure(dir, { merge_method: "linear", models: [{ model: "./base+./lora+./more", parameters: { weight: 1 } }] });
    assert.equal(bad.code, "E_RECIPE");
    assert.match(bad.message, /BASE\+ADAPTER/);
  });
});

describe("a tied base's lm_head", () => {
  test("its LoRA changes the shared weight, as PEFT's merge does: the embedding is W + scale·B·A, and the output stays tied (was refused until stop 38)", async () => {
    const dir = join(root, `case-${counter++}`);
    const base = baseModel(37, "F32", SHAPE);
    const tied: RefModel = { config: { ...base.config, tie_word_embeddings: true }, tensors: new Map([...base.tensors].filter(([name]) => name !== "lm_head.weight")) };
    const spec: AdapterSpec = { factors: [{ module: "lm_head", rank: 3 }], config: { peft_type: "LORA", r: 3, lora_alpha: 6, target_modules: ["lm_head"] } };
    const tensors = adapterTensors(base, spec, 920);
    await writeModel(join(dir, "tied"), tied);
    await writeAdapter(join(dir, "lora"), tensors, spec.config);
    await writeFile(join(dir, "recipe.yml"), toYaml({ merge_method: "passthrough", models: [{ model: "./tied+./lora" }] }));
    await merge(join(dir, "recipe.yml"), { out: join(dir, "out"), workers: 1, workerUrl: WORKER_URL });
    const out = await readOutput(join(dir, "out"));
    assert.equal(out.tensors.has("lm_head.weight"), false, "tied, as the base");
    // The reference: the lm_head delta on a head equal to the embedding.
    const asHead: RefModel = { config: base.config, tensors: new Map([...tied.tensors, ["lm_head.weight", tied.tensors.get("model.embed_tokens.weight")!]]) };
    const expected = mergedReference(asHead, spec, tensors).tensors.get("lm_head.weight")!;
    const { maxAbs, at } = compareTensor(out.tensors.get("model.embed_tokens.weight")!, expected);
    assert.ok(maxAbs <= 1e-6, `embedding: ${maxAbs} at ${at}`);
    assert.ok(compareTensor(out.tensors.get("model.embed_tokens.weight")!, tied.tensors.get("model.embed_tokens.weight")!).maxAbs > 1e-3, "the delta changed it");
  });
});

describe("BASE+ADAPTER outside a recipe", () => {
  test("eval, generate and --against take it as the base with the adapter merged in: the numbers of a model holding the reference's merged weights; an existing folder with + in its name is that folder", async () => {
    const dir = join(root, `case-${counter++}`);
    const base = baseModel(35, "F32", SHAPE);
    const tensors = adapterTensors(base, SPEC, 910);
    await writeModel(join(dir, "base"), base);
    await writeModel(join(dir, "merged-first"), mergedReference(base, SPEC, tensors));
    await writeAdapter(join(dir, "lora"), tensors, SPEC.config);
    const ids = [5, 17, 3, 99, 42, 8, 0, 61, 23];
    const options = { ids, workers: 1, workerUrl: WORKER_URL, baseDir: dir };
    const { results } = await evaluate(["./base+./lora", "./merged-first", "./base"], { ...options, against: ["./merged-first"] });
    const [adapted, byHand, plain] = results;
    assert.equal(adapted!.model, "./base+./lora");
    assert.ok(Math.abs(adapted!.nll - byHand!.nll) <= 1e-6 * byHand!.nll, `${adapted!.nll} against ${byHand!.nll}`);
    assert.ok(adapted!.against[0]!.kl < 1e-9, `KL ${adapted!.against[0]!.kl}`);
    assert.ok(Math.abs(plain!.nll - byHand!.nll) > 1e-3, "the adapter changes the numbers: the base alone scores otherwise");
    const greedy = { maxNewTokens: 4, temperature: 0, workerUrl: WORKER_URL, baseDir: dir, ids: ids.slice(0, 3) };
    assert.deepEqual((await generate("./base+./lora", greedy)).ids, (await generate("./merged-first", greedy)).ids);
    // A folder whose name has a "+" is a model, as it always was.
    await writeModel(join(dir, "a+b"), base);
    const [asFolder] = (await evaluate(["./a+b"], options)).results;
    assert.equal(asFolder!.nll, plain!.nll);
  });
});
