// Quantized checkpoints (GPTQ, AWQ, bitsandbytes, FP8) hold packed integer weights with float scales.
// Merged as tensors they came out wrong without a word: the rule for integer tensors copied the base's
// packed weights while the scales were averaged. They are refused (E_QUANTIZED) wherever numbers are
// needed, named by config.json's quantization_config or by the tensor that shows it, and still listed
// by inspect. The checkpoints here are laid out as those formats save them (tensor names, dtypes).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { evaluate, extractLora, inspect, merge } from "../src/node";
import { WeightsoupError } from "../src/errors";
import { baseModel, CLI, removeDir, tempDir, toYaml, WORKER_URL, writeModel } from "./helpers/fixtures";
import { encodeTensor } from "./reference/safetensors";
import type { RefModel, RefTensor } from "./reference/merge";

let root: string;
let n = 0;
before(async () => { root = await tempDir("ws-quantized-"); });
after(async () => { await removeDir(root); });

const ints = (shape: number[], seed: number): RefTensor => ({ dtype: "I32", shape, raw: encodeTensor("I32", Array.from({ length: shape[0]! * shape[1]! }, (_, i) => (i * 2654435761 + seed) | 0)) });
const floats = (shape: number[], dtype: "F16" | "F32", v: number): RefTensor => ({ dtype, shape, values: new Float32Array(shape[0]! * (shape[1] ?? 1)).fill(v) });

/** The base with layer 0's q_proj stored as `layout` stores a quantized linear layer. */
function quantized(seed: number, layout: "gptq" | "bnb4" | "fp8" | "mlx"): RefModel {
  const base = baseModel(seed, "F16");
  const tensors = new Map(base.tensors);
  const p = "model.layers.0.self_attn.q_proj";
  tensors.delete(`${p}.weight`);
  if (layout === "gptq") {
    tensors.set(`${p}.qweight`, ints([2, 16], seed));
    tensors.set(`${p}.qzeros`, ints([1, 2], seed + 1));
    tensors.set(`${p}.scales`, floats([1, 16], "F16", 0.01 * seed));
    tensors.set(`${p}.g_idx`, { dtype: "I32", shape: [16], raw: encodeTensor("I32", new Array(16).fill(0)) });
  } else if (layout === "bnb4") {
    tensors.set(`${p}.weight`, { dtype: "U8", shape: [128, 1], raw: encodeTensor("U8", Array.from({ length: 128 }, (_, i) => (i * 37 + seed) & 255)) });
    tensors.set(`${p}.weight.absmax`, floats([4], "F32", 0.5 * seed));
    tensors.set(`${p}.weight.quant_map`, floats([16], "F32", 0.1));
    tensors.set(`${p}.weight.quant_state.bitsandbytes__nf4`, { dtype: "U8", shape: [8], raw: new Uint8Array(8) });
  } else if (layout === "mlx") {
    tensors.set(`${p}.weight`, { dtype: "U32", shape: [16, 2], raw: encodeTensor("U32", Array.from({ length: 32 }, (_, i) => (i * 2654435761 + seed) >>> 0)) });
    tensors.set(`${p}.scales`, floats([16, 1], "F16", 0.01 * seed));
    tensors.set(`${p}.biases`, floats([16, 1], "F16", -0.02 * seed));
  } else {
    tensors.set(`${p}.weight`, floats([16, 16], "F16", 0.1));
    tensors.set(`${p}.weight_scale_inv`, floats([1, 1], "F32", 0.5));
  }
  return { config: base.config, tensors };
}

/** A folder under root holding `model`, with config.json's `key` (quantization_config) set, or left out. */
async function folder(model: RefModel, quantizationConfig?: unknown, key = "quantization_config"): Promise<string> {
  const dir = join(root, `m-${n++}`);
  await writeModel(dir, { ...model, config: quantizationConfig === undefined ? model.config : { ...model.config, [key]: quantizationConfig } });
  return dir;
}

/** The E_QUANTIZED errors of a refusal: the error itself, or each problem of an E_VALIDATION. */
function quantizedProblems(e: unknown): WeightsoupError[] {
  assert.ok(e instanceof WeightsoupError, String(e));
  const problems = e.code === "E_VALIDATION" ? (e as unknown as { problems: WeightsoupError[] }).problems : [e];
  for (const p of problems) assert.equal(p.code, "E_QUANTIZED", p.message);
  return problems;
}

const refusal = (pattern: RegExp) => (e: unknown) => {
  for (const p of quantizedProblems(e)) assert.match(p.message, pattern);
  return true;
};

describe("merging a quantized checkpoint is refused, naming how it is quantized", () => {
  for (const [label, layout, config, pattern, file] of [
    ["GPTQ, from config.json", "gptq", { quant_method: "gptq", bits: 4, group_size: 128 }, /quantization_config \(quant_method "gptq"\)/, /config\.json$/],
    ["GPTQ without a quantization_config, from its qweight", "gptq", undefined, /tensor "model\.layers\.0\.self_attn\.q_proj\.qweight" \(GPTQ or AWQ\)/, /\.safetensors$/],
    ["bitsandbytes 4-bit, from its absmax", "bnb4", undefined, /\.weight\.absmax" \(bitsandbytes\)/, /\.safetensors$/],
    ["FP8, from config.json", "fp8", { quant_method: "fp8", weight_block_size: [128, 128] }, /quant_method "fp8"/, /config\.json$/],
    ["FP8 without a quantization_config, from its weight_scale_inv", "fp8", undefined, /weight_scale_inv" \(FP8 or compressed-tensors\)/, /\.safetensors$/],
    ["MLX, from config.json's quantization", "mlx", { group_size: 64, bits: 4 }, /config\.json's quantization \(quant_method "mlx"\)/, /config\.json$/],
    ["MLX without a config key, from its packed weight beside scales", "mlx", undefined, /tensor "model\.layers\.0\.self_attn\.q_proj\.weight" \(MLX or another group-wise format\)/, /\.safetensors$/],
  ] as const) {
    test(`${label}: E_QUANTIZED names it and the file, and nothing is written`, async () => {
      const key = layout === "mlx" ? "quantization" : "quantization_config"; // MLX's own key
      const q = await folder(quantized(3, layout), config, key);
      // Two quantized fine-tunes of one base, as a user would merge them: before E_QUANTIZED this merged.
      const other = await folder(quantized(4, layout), config, key);
      const recipe = join(root, `r-${n++}.yml`);
      await writeFile(recipe, toYaml({ merge_method: "linear", models: [{ model: q, parameters: { weight: 0.5 } }, { model: other, parameters: { weight: 0.5 } }] }));
      const out = join(root, `out-${n++}`);
      await assert.rejects(merge(recipe, { out, workerUrl: WORKER_URL, workers: 1 }), (e: unknown) => {
        const problems = quantizedProblems(e);
        assert.deepEqual(problems.map((p) => p.message.slice(0, p.message.indexOf(":"))), [q, other], "each model is named");
        for (const p of problems) {
          assert.match(p.message, pattern);
          assert.match(String(p.details.file), file);
        }
        return true;
      });
      assert.equal(existsSync(out), false, "no output");
    });
  }

  test("the CLI exits 1 with the message; inspect lists the model and says it is quantized", async () => {
    const q = await folder(quantized(5, "gptq"), { quant_method: "awq", bits: 4 });
    const recipe = join(root, `r-${n++}.yml`);
    await writeFile(recipe, toYaml({ merge_method: "passthrough", models: [{ model: q }] }));
    const run = spawnSync(process.execPath, [CLI, "merge", recipe, join(root, `out-${n++}`)], { encoding: "utf8", timeout: 60_000 });
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /\[E_QUANTIZED\].*quant_method "awq"/);
    const report = await inspect(q);
    assert.deepEqual(report.quantization, { method: "awq", key: "quantization_config" });
    assert.ok(report.tensors.some((t) => t.name.endsWith(".qweight")));
    const shown = spawnSync(process.execPath, [CLI, "inspect", q], { encoding: "utf8", timeout: 60_000 });
    assert.equal(shown.status, 0, shown.stderr);
    assert.match(shown.stdout, /quantized \(awq, from config\.json's quantization_config\): merges refuse it \(E_QUANTIZED\)/);
  });

  test("evaluation and LoRA extraction refuse it too", async () => {
    const q = await folder(quantized(7, "bnb4"), { quant_method: "bitsandbytes", load_in_4bit: true });
    const plain = await folder(baseModel(7, "F16"));
    await assert.rejects(evaluate([q], { ids: [1, 2, 3, 4, 5, 6], workers: 1, workerUrl: WORKER_URL }), refusal(/quant_method "bitsandbytes"/));
    await assert.rejects(extractLora(q, plain, { out: join(root, `lora-${n++}`), rank: 2 }), refusal(/quant_method "bitsandbytes"/));
  });

  test("a config.json that says quantized over float weights is refused with how to fix it; 8-bit float weights are FP8 without any config", async () => {
    const stale = await folder(baseModel(11, "F16"), { quant_method: "bitsandbytes", load_in_4bit: true });
    const recipe = join(root, `r-${n++}.yml`);
    await writeFile(recipe, toYaml({ merge_method: "passthrough", models: [{ model: stale }] }));
    await assert.rejects(merge(recipe, { out: join(root, `out-${n++}`), workerUrl: WORKER_URL, workers: 1 }),
      refusal(/no tensor looks quantized: if the weights are float and config\.json was left from a quantized model, remove its quantization_config/));

    // An F16 tensor whose header entry is rewritten to F8_E4M3 with twice the columns: the same bytes.
    const fp8 = await folder(baseModel(12, "F16"));
    const file = join(fp8, "model.safetensors");
    const bytes = new Uint8Array(await readFile(file));
    const length = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    const q = header["model.layers.0.self_attn.q_proj.weight"]!;
    header["model.layers.0.self_attn.q_proj.weight"] = { dtype: "F8_E4M3", shape: [q.shape[0]!, 2 * q.shape[1]!], data_offsets: q.data_offsets };
    let text = JSON.stringify(header);
    text += " ".repeat((8 - ((8 + text.length) % 8)) % 8);
    const out = new Uint8Array(8 + text.length + bytes.length - 8 - length);
    new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
    out.set(new TextEncoder().encode(text), 8);
    out.set(bytes.subarray(8 + length), 8 + text.length);
    await writeFile(file, out);
    const fp8Recipe = join(root, `r-${n++}.yml`);
    await writeFile(fp8Recipe, toYaml({ merge_method: "passthrough", models: [{ model: fp8 }] }));
    await assert.rejects(merge(fp8Recipe, { out: join(root, `out-${n++}`), workerUrl: WORKER_URL, workers: 1 }),
      refusal(/tensor "model\.layers\.0\.self_attn\.q_proj\.weight" \(FP8\)/));
  });

  test("a float checkpoint whose config says quantization_config: null merges as usual", async () => {
    const base = baseModel(9, "F16");
    const q = await folder(base, null);
    const recipe = join(root, `r-${n++}.yml`);
    await writeFile(recipe, toYaml({ merge_method: "passthrough", models: [{ model: q }] }));
    const out = join(root, `out-${n++}`);
    await merge(recipe, { out, workerUrl: WORKER_URL, workers: 1 });
    assert.equal(JSON.parse(await readFile(join(out, "config.json"), "utf8")).quantization_config, null);
  });
});
