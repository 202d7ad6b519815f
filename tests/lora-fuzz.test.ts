// Randomized `base+adapter` inputs: a tiny Llama-shaped base (F32, BF16 or F16, odd sizes) and a PEFT
// LoRA adapter drawn at random: which modules it changes (any 2-D weight; the input embedding as an
// Embedding LoRA), each module's rank (1-12) and factor dtype, adapter_config.json's r and lora_alpha
// (or PEFT's defaults, 8 and 8, when absent), rank_pattern / alpha_pattern keys written as full module
// names, partial suffixes or regexes (some generic keys ahead of specific ones, where PEFT's first match
// wins), use_rslora, fan_in_fan_out (which PEFT, and so weightsoup, ignores for nn.Linear modules), and a
// modules_to_save module. The recipe takes the adapted model
// whole (passthrough, or linear with weight 1), merged whole or in chunks that start mid-row, on 1 or 2
// workers. Every output element must be the base plus scale·B·A computed in float64 here and rounded
// once to the base's dtype (PEFT's scale rules, from its documentation and the README's "Applying a LoRA
// in a recipe"; not from src/lora), up to float32's rounding of the product; an adapter whose factors
// disagree with the rank its config gives a module must be refused with E_ADAPTER.
// Runs and seeds as the other fuzz suites (helpers/fuzz-settings.ts).
import assert from "node:assert/strict";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import fc from "fast-check";
import { WeightsoupError } from "../src/errors";
import { merge } from "../src/node";
import { baseModel, readOutput, removeDir, tempDir, toYaml, uniform, WORKER_URL, writeModel, type Shape } from "./helpers/fixtures";
import { fuzzSettings } from "./helpers/fuzz-settings";
import { roundToDtype, type FloatDtype } from "./reference/float16";
import { decodeFloat, encodeTensor, writeSafetensors } from "./reference/safetensors";
import type { RefModel } from "./reference/merge";

let root: string;
before(async () => { root = await tempDir("ws-lora-fuzz-"); });
after(async () => { await removeDir(root); });

const settings = fuzzSettings();
const DTYPES: FloatDtype[] = ["F32", "BF16", "F16"];
const LINEAR = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"];
const LAYERS = 2;
/** Every module a LoRA may change: the embedding first, then each layer's projections, then lm_head. */
const MODULES = ["model.embed_tokens", ...Array.from({ length: LAYERS }, (_, l) => LINEAR.map((m) => `model.layers.${l}.${m}`)).flat(), "lm_head"];

/** How a pattern key names a module: its full name, a shorter dotted suffix, or a regex for its full name. */
type KeyForm = "full" | "suffix" | "regex";

interface Draw {
  shape: Shape;
  baseDtype: FloatDtype;
  factors: { module: number; rank: number; dtype: FloatDtype }[];
  r: number | undefined;
  alpha: number | undefined;
  rankForms: KeyForm[];
  /** A generic key (`q_proj`) with a random rank put ahead of the specific ones: PEFT's first match wins. */
  genericRank: { suffix: string; rank: number } | undefined;
  alphaPattern: { module: number; form: KeyForm | "generic"; value: number }[];
  rslora: boolean;
  fanInFanOut: boolean;
  save: "none" | "lm_head" | "model.norm";
  linear: boolean;
  chunkElements: number | undefined;
  workers: 1 | 2;
  seed: number;
}

const shapeArb: fc.Arbitrary<Shape> = fc.record({
  heads: fc.constantFrom(2, 4), kvHeads: fc.constantFrom(1, 2), headDim: fc.constantFrom(2, 3, 5),
  intermediate: fc.integer({ min: 5, max: 31 }), vocab: fc.integer({ min: 7, max: 41 }),
}).map(({ heads, kvHeads, headDim, intermediate, vocab }) => ({ vocab, hidden: heads * headDim, intermediate, layers: LAYERS, heads, kvHeads }));

const formArb = fc.constantFrom<KeyForm>("full", "suffix", "regex");

const drawArb: fc.Arbitrary<Draw> = fc.record({
  shape: shapeArb,
  baseDtype: fc.constantFrom(...DTYPES),
  factors: fc.uniqueArray(fc.record({ module: fc.integer({ min: 0, max: MODULES.length - 1 }), rank: fc.integer({ min: 1, max: 12 }), dtype: fc.constantFrom(...DTYPES) }), { minLength: 1, maxLength: 6, selector: (f) => f.module }),
  r: fc.option(fc.integer({ min: 1, max: 12 }), { nil: undefined }),
  alpha: fc.option(fc.constantFrom(0.5, 1, 3, 8, 16, 32), { nil: undefined }),
  rankForms: fc.array(formArb, { minLength: 6, maxLength: 6 }),
  genericRank: fc.oneof({ weight: 5, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.record({ suffix: fc.constantFrom(...LINEAR.map((m) => m.split(".")[1]!), "embed_tokens"), rank: fc.integer({ min: 1, max: 12 }) }) }),
  alphaPattern: fc.array(fc.record({ module: fc.integer({ min: 0, max: MODULES.length - 1 }), form: fc.constantFrom<KeyForm | "generic">("full", "suffix", "regex", "generic"), value: fc.constantFrom(0.25, 2, 5, 12) }), { maxLength: 3 }),
  rslora: fc.boolean(),
  fanInFanOut: fc.constantFrom(false, false, false, true),
  save: fc.constantFrom("none", "none", "lm_head", "model.norm"),
  linear: fc.boolean(),
  chunkElements: fc.constantFrom(undefined, 64, 100, 4096),
  workers: fc.constantFrom<1 | 2>(1, 2),
  seed: fc.integer({ min: 1, max: 1_000_000 }),
});

/** The pattern key of `form` for a module, matching it and no other module of MODULES. */
function keyFor(module: string, form: KeyForm): string {
  if (form === "full") return module;
  if (form === "regex") return module.replace(/\./g, "\\.").replace(/layers\\\.(\d+)/, "layers\\.[$1]");
  // The shortest dotted suffix that names this module alone.
  const parts = module.split(".");
  for (let n = 1; n <= parts.length; n++) {
    const suffix = parts.slice(-n).join(".");
    if (MODULES.filter((m) => m === suffix || m.endsWith(`.${suffix}`)).length === 1) return suffix;
  }
  return module;
}

/** PEFT's choice for a module: the first key (in the config's order) matching `(.*\.)?KEY$`, else undefined. */
function pattern(entries: [string, number][], module: string): number | undefined {
  for (const [key, value] of entries) if (new RegExp(`^(.*\\.)?(${key})$`).test(module)) return value;
  return undefined;
}

interface Case {
  config: Record<string, unknown>;
  adapter: Map<string, { dtype: FloatDtype; shape: number[]; values: Float32Array }>;
  /** The adapted model's tensors by the reference, or why it refuses the adapter. */
  expected: Map<string, { dtype: FloatDtype; values: Float64Array; bound: Float64Array }> | string;
}

function buildCase(d: Draw, base: RefModel): Case {
  const rankPattern: [string, number][] = [];
  if (d.genericRank) rankPattern.push([d.genericRank.suffix, d.genericRank.rank]);
  const defaultR = d.r ?? 8, defaultAlpha = d.alpha ?? 8;
  d.factors.forEach((f, i) => {
    if (f.rank !== defaultR) rankPattern.push([keyFor(MODULES[f.module]!, d.rankForms[i]!), f.rank]);
  });
  const alphaPattern: [string, number][] = d.alphaPattern.map((a) => [a.form === "generic" ? MODULES[a.module]!.split(".").at(-1)! : keyFor(MODULES[a.module]!, a.form), a.value]);
  const config: Record<string, unknown> = {
    peft_type: "LORA", ...(d.r !== undefined ? { r: d.r } : {}), ...(d.alpha !== undefined ? { lora_alpha: d.alpha } : {}),
    target_modules: [...new Set(d.factors.map((f) => MODULES[f.module]!.split(".").at(-1)!))],
    ...(rankPattern.length ? { rank_pattern: Object.fromEntries(rankPattern) } : {}),
    ...(alphaPattern.length ? { alpha_pattern: Object.fromEntries(alphaPattern) } : {}),
    ...(d.rslora ? { use_rslora: true } : {}), ...(d.fanInFanOut ? { fan_in_fan_out: true } : {}),
    ...(d.save !== "none" ? { modules_to_save: [d.save] } : {}),
  };
  // Object.fromEntries keeps the first of equal keys' order but the last value: read the patterns back from the config.
  const ranks = Object.entries((config.rank_pattern ?? {}) as Record<string, number>);
  const alphas = Object.entries((config.alpha_pattern ?? {}) as Record<string, number>);

  const adapter: Case["adapter"] = new Map();
  const expected = new Map<string, { dtype: FloatDtype; values: Float64Array; bound: Float64Array }>();
  for (const [name, t] of base.tensors) {
    if (!t.values) continue;
    const values = Float64Array.from(t.values);
    expected.set(name, { dtype: t.dtype as FloatDtype, values, bound: new Float64Array(values.length) });
  }
  let refusal: string | undefined;
  const values = (n: number, seed: number, dtype: FloatDtype) => Float32Array.from({ length: n }, (_, j) => roundToDtype(0.2 * (uniform(seed, j) - 0.5), dtype));
  d.factors.forEach((f, i) => {
    const module = MODULES[f.module]!;
    const w = base.tensors.get(`${module}.weight`)!;
    const [rows, cols] = w.shape as [number, number];
    const embedding = module === "model.embed_tokens";
    // nn.Linear: A [r, in], B [out, r], ΔW = B·A, whatever fan_in_fan_out says (PEFT overrides it by module
    // type: only Conv1D weights, stored [in, out], are transposed). An Embedding: A [r, rows], B [cols, r], ΔW = (B·A)ᵀ.
    const transposed = embedding;
    const aShape = [f.rank, transposed ? rows : cols], bShape = [transposed ? cols : rows, f.rank];
    const a = values(aShape[0]! * aShape[1]!, d.seed + 2 * i, f.dtype), b = values(bShape[0]! * bShape[1]!, d.seed + 2 * i + 1, f.dtype);
    const prefix = `base_model.model.${module}`;
    adapter.set(embedding ? `${prefix}.lora_embedding_A` : `${prefix}.lora_A.weight`, { dtype: f.dtype, shape: aShape, values: a });
    adapter.set(embedding ? `${prefix}.lora_embedding_B` : `${prefix}.lora_B.weight`, { dtype: f.dtype, shape: bShape, values: b });
    const r = pattern(ranks, module) ?? defaultR;
    if (r !== f.rank) refusal ??= `${module}: factors of rank ${f.rank}, config r ${r}`;
    if (module === d.save) refusal ??= `${module}: both factors and modules_to_save`;
    const alpha = pattern(alphas, module) ?? defaultAlpha;
    const scale = d.rslora ? alpha / Math.sqrt(r) : alpha / r;
    const out = expected.get(`${module}.weight`)!;
    for (let p = 0; p < rows; p++) {
      for (let q = 0; q < cols; q++) {
        let sum = 0, abs = 0;
        for (let k = 0; k < f.rank; k++) {
          const term = transposed ? a[k * rows + p]! * b[q * f.rank + k]! : b[p * f.rank + k]! * a[k * cols + q]!;
          sum += term;
          abs += Math.abs(term);
        }
        const at = p * cols + q;
        out.values[at] = out.values[at]! + scale * sum;
        // float32's rounding of the product (a rank-long sum) and of adding it to the weight.
        out.bound[at] = 2 ** -23 * ((f.rank + 2) * Math.abs(scale) * abs + 2 * Math.abs(out.values[at]!));
      }
    }
  });
  if (d.save !== "none") {
    const w = base.tensors.get(`${d.save}.weight`)!;
    const saved = values(w.values!.length, d.seed + 999, w.dtype as FloatDtype).map((v) => roundToDtype(v + (d.save === "model.norm" ? 1 : 0), w.dtype as FloatDtype));
    adapter.set(`base_model.model.${d.save}.weight`, { dtype: w.dtype as FloatDtype, shape: w.shape, values: saved });
    expected.set(`${d.save}.weight`, { dtype: w.dtype as FloatDtype, values: Float64Array.from(saved), bound: new Float64Array(saved.length) });
  }
  return { config, adapter, expected: refusal ?? expected };
}

/** The spacing of `dtype`'s values at |x| (the subnormal spacing below the smallest normal). */
function ulp(x: number, dtype: FloatDtype): number {
  const [mantissa, minExponent] = dtype === "F32" ? [23, -126] : dtype === "BF16" ? [7, -126] : [10, -14];
  return 2 ** (Math.max(x === 0 ? minExponent : Math.floor(Math.log2(Math.abs(x))), minExponent) - mantissa);
}

let counter = 0;

/** Runs one case; true when the reference refused the adapter (and weightsoup did too). */
async function runCase(d: Draw): Promise<boolean> {
  const dir = join(root, `case-${counter++}`);
  try {
    const base = baseModel(d.seed, d.baseDtype, d.shape);
    const c = buildCase(d, base);
    await writeModel(join(dir, "base"), base);
    await mkdir(join(dir, "lora"), { recursive: true });
    await writeFile(join(dir, "lora", "adapter_config.json"), JSON.stringify(c.config));
    await writeFile(join(dir, "lora", "adapter_model.safetensors"), writeSafetensors([...c.adapter].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, data: encodeTensor(t.dtype, t.values) }))));
    const model = "./base+./lora";
    const recipe = d.linear ? { merge_method: "linear", models: [{ model, parameters: { weight: 1 } }] } : { merge_method: "passthrough", models: [{ model }] };
    await writeFile(join(dir, "r.yml"), toYaml(recipe));
    const options = { out: join(dir, "out"), workers: d.workers, workerUrl: WORKER_URL, ...(d.chunkElements ? { chunkElements: d.chunkElements } : {}) };
    if (typeof c.expected === "string") {
      await assert.rejects(merge(join(dir, "r.yml"), options), (e: unknown) => e instanceof WeightsoupError && e.code === "E_ADAPTER", `refused by the reference (${c.expected})`);
      return true;
    }
    await merge(join(dir, "r.yml"), options);
    const { tensors } = await readOutput(join(dir, "out"));
    for (const [name, want] of c.expected) {
      const t = tensors.get(name);
      assert.ok(t, `${name} is in the output`);
      assert.equal(t.dtype, want.dtype, name);
      const got = decodeFloat(t.dtype, t.data);
      for (let i = 0; i < got.length; i++) {
        const exact = want.values[i]!, rounded = roundToDtype(exact, want.dtype);
        if (Object.is(got[i], rounded)) continue;
        // The float32 result lies within `bound` of the exact value and is rounded once to the dtype, so
        // it may round the other way only where the exact value is that close to a rounding boundary.
        const ok = Math.abs(got[i]! - exact) <= want.bound[i]! + (ulp(Math.max(Math.abs(got[i]!), Math.abs(rounded)), want.dtype) / 2) * (1 + 1e-9);
        assert.ok(ok, `${name}[${i}]: ${got[i]} against the reference's ${rounded} (exact ${exact}, float32 error bound ${want.bound[i]})`);
      }
    }
    return false;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("random LoRA adapters applied in a recipe give the base plus scale·B·A of the reference, or are refused as it refuses them", async (t) => {
  const numRuns = settings.runs(40);
  t.diagnostic(`seed ${settings.seed}, ${numRuns} runs (again: FUZZ_SEED=${settings.seed}; one failure: add FUZZ_PATH=<its path>)`);
  const limit = settings.timeLimitMs(numRuns);
  let refused = 0;
  await fc.assert(fc.asyncProperty(drawArb, async (d) => { if (await runCase(d)) refused++; }), {
    seed: settings.seed, numRuns, includeErrorInReport: true, ...(settings.path ? { path: settings.path } : {}), ...(limit ? { interruptAfterTimeLimit: limit } : {}),
  });
  t.diagnostic(`${numRuns} cases, ${refused} refused by both`);
});
