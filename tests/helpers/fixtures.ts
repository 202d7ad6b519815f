// Test fixtures: small random Llama-shaped models written with the independent reference writer, and
// helpers to run weightsoup on them and read its output back with the reference reader.
import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { readSafetensors, decodeFloat, encodeTensor, writeShardedModel, type RefDtype } from "../reference/safetensors";
import { roundToDtype } from "../reference/float16";
import type { RefModel, RefTensor } from "../reference/merge";
import { llamaTensors, type LlamaShape } from "../../src/example/models";
import { RECIPE_YAML } from "../../src/recipe/yaml-schema";

/** The built worker (npm test builds dist/ first). */
export const WORKER_URL = new URL("../../dist/worker.js", import.meta.url);
export const CLI = fileURLToPath(new URL("../../dist/cli.cjs", import.meta.url));

export async function tempDir(prefix = "ws-test-"): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Deterministic uniform values in [0, 1) from (seed, i): independent of call order. */
export function uniform(seed: number, i: number): number {
  let x = (Math.imul(i + 1, 0x9e3779b1) ^ Math.imul(seed + 7, 0x85ebca77)) >>> 0;
  x ^= x >>> 16; x = Math.imul(x, 0x7feb352d); x ^= x >>> 15; x = Math.imul(x, 0x846ca68b); x ^= x >>> 16;
  return (x >>> 0) / 4294967296;
}

/** Model shapes are the example's (the tensor list is fixture data, not the math under test). */
export type Shape = LlamaShape;

export const TINY: Shape = { vocab: 48, hidden: 16, intermediate: 24, layers: 3, heads: 4, kvHeads: 2 };

function stringSeed(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** A base model: values ~ U(-0.5, 0.5) (norms around 1), rounded to `dtype`; plus an I64 buffer. */
export function baseModel(seed: number, dtype: RefDtype = "F32", shape: Shape = TINY, options: { ints?: boolean } = {}): RefModel {
  const tensors = new Map<string, RefTensor>();
  for (const { name, shape: dims } of llamaTensors(shape)) {
    const n = dims.reduce((a, b) => a * b, 1);
    const values = new Float32Array(n);
    const s = stringSeed(name) ^ seed;
    for (let i = 0; i < n; i++) values[i] = roundToDtype((name.endsWith("norm.weight") ? 1 : 0) + uniform(s, i) - 0.5, dtype as "F32" | "F16" | "BF16");
    tensors.set(name, { dtype, shape: dims, values });
  }
  if (options.ints) {
    const raw = new Uint8Array(8 * 8);
    const view = new DataView(raw.buffer);
    for (let i = 0; i < 8; i++) view.setBigInt64(i * 8, BigInt(i * 1000 + seed), true);
    tensors.set("model.position_ids", { dtype: "I64", shape: [1, 8], raw });
  }
  return { config: llamaConfig(shape, dtype), tensors };
}

/**
 * A fine-tune of `base`: each float tensor moved by `scale` times U(-0.5, 0.5) noise, rounded to the
 * tensor's dtype. `quantum` > 0 rounds the move to multiples of it first, which makes many |tau| equal
 * (like real bf16 checkpoints) and exercises TIES's tie rule.
 */
export function fineTune(base: RefModel, seed: number, scale: number, options: { quantum?: number; dtype?: RefDtype; only?: string } = {}): RefModel {
  const tensors = new Map<string, RefTensor>();
  for (const [name, t] of base.tensors) {
    if (!t.values) {
      tensors.set(name, { ...t, raw: t.raw!.slice() });
      continue;
    }
    const dtype = (options.dtype ?? t.dtype) as "F32" | "F16" | "BF16";
    const values = new Float32Array(t.values.length);
    const s = stringSeed(name) ^ (seed * 7919);
    const moves = options.only === undefined || name.includes(options.only);
    for (let i = 0; i < values.length; i++) {
      let d = moves ? scale * (uniform(s, i) - 0.5) : 0;
      if (options.quantum) d = Math.round(d / options.quantum) * options.quantum;
      values[i] = roundToDtype(t.values[i]! + d, dtype);
    }
    tensors.set(name, { dtype, shape: t.shape, values });
  }
  return { config: base.config && { ...base.config, torch_dtype: torchName(options.dtype ?? "F32") }, tensors };
}

function torchName(d: string): string {
  return d === "BF16" ? "bfloat16" : d === "F16" ? "float16" : "float32";
}

export function llamaConfig(s: Shape, dtype: string): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"], model_type: "llama", vocab_size: s.vocab, hidden_size: s.hidden,
    intermediate_size: s.intermediate, num_hidden_layers: s.layers, num_attention_heads: s.heads, num_key_value_heads: s.kvHeads,
    torch_dtype: torchName(dtype), tie_word_embeddings: false,
  };
}

/** Writes a model folder (config.json, tokenizer files, weights in `shards` files). */
export async function writeModel(dir: string, model: RefModel, options: { shards?: number; extraFiles?: Record<string, string> } = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tensors = [...model.tensors].map(([name, t]) => ({
    name, dtype: t.dtype as RefDtype, shape: t.shape, data: t.raw ?? encodeTensor(t.dtype as RefDtype, t.values!),
  }));
  await writeShardedModel(dir, tensors, { shards: options.shards ?? 1 });
  if (model.config) await writeFile(join(dir, "config.json"), JSON.stringify(model.config, null, 2));
  await writeFile(join(dir, "tokenizer.json"), JSON.stringify({ version: "1.0", model: { type: "WordLevel", vocab: { a: 0 }, unk_token: "a" } }));
  await writeFile(join(dir, "tokenizer_config.json"), "{}");
  await writeFile(join(dir, "generation_config.json"), JSON.stringify({ max_new_tokens: 8 }));
  for (const [name, text] of Object.entries(options.extraFiles ?? {})) await writeFile(join(dir, name), text);
}

/** Writes models (name -> model) under dir and a recipe file; returns the recipe path. */
export async function writeCase(dir: string, models: Record<string, RefModel>, recipe: object, shards: Record<string, number> = {}): Promise<string> {
  for (const [name, model] of Object.entries(models)) await writeModel(join(dir, name), model, { shards: shards[name] ?? 1 });
  const path = join(dir, "recipe.yml");
  await writeFile(path, toYaml(recipe));
  return path;
}

export interface OutputTensor {
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/** Every tensor of an output folder, through its index when sharded (read with the reference reader). */
export async function readOutput(dir: string): Promise<{ tensors: Map<string, OutputTensor>; files: string[]; metadata: Record<string, string> | undefined }> {
  const files = (await readdir(dir)).sort();
  const tensors = new Map<string, OutputTensor>();
  let metadata: Record<string, string> | undefined;
  const shards = files.filter((f) => f.endsWith(".safetensors"));
  for (const shard of shards) {
    const parsed = readSafetensors(new Uint8Array(await readFile(join(dir, shard))));
    metadata ??= parsed.metadata;
    for (const [name, t] of parsed.tensors) tensors.set(name, t);
  }
  if (shards.length > 1) {
    const index = JSON.parse(await readFile(join(dir, "model.safetensors.index.json"), "utf8"));
    for (const [name, file] of Object.entries(index.weight_map as Record<string, string>)) {
      if (!shards.includes(file) || !tensors.has(name)) throw new Error(`index maps ${name} to ${file}, which does not hold it`);
    }
  }
  return { tensors, files, metadata };
}

/** ulp distance between two bf16/f16 bit patterns of the same sign (|a - b| in units of the format). */
function ulps(a: number, b: number): number {
  const key = (h: number) => (h & 0x8000 ? -(h & 0x7fff) : h & 0x7fff);
  return Math.abs(key(a) - key(b));
}

/**
 * Compares weightsoup's output with the reference's: float32 by absolute difference, bf16/f16 by ulps
 * of the output format. Returns the worst case and where it was. With `slackAt`, a bf16/f16 element i
 * within slackAt(i) of the reference counts as 0 ulps: float32 arithmetic leaves absolute differences of
 * a few float32 ulps of its inputs, which are many ulps of a result that cancelled to near 0.
 */
export function compareTensor(ours: OutputTensor, ref: { dtype: string; shape: number[]; values?: Float32Array; raw?: Uint8Array }, slackAt?: (i: number) => number): { maxAbs: number; maxUlp: number; at: number } {
  if (ours.dtype !== ref.dtype) throw new Error(`dtype ${ours.dtype}, reference ${ref.dtype}`);
  if (ours.shape.join(",") !== ref.shape.join(",")) throw new Error(`shape [${ours.shape}], reference [${ref.shape}]`);
  if (ref.raw) {
    const same = ours.data.length === ref.raw.length && ours.data.every((b, i) => b === ref.raw![i]);
    return { maxAbs: same ? 0 : Infinity, maxUlp: same ? 0 : Infinity, at: -1 };
  }
  const values = decodeFloat(ours.dtype as RefDtype, ours.data);
  let maxAbs = 0, maxUlp = 0, at = -1;
  const refValues = ref.values!;
  const narrow = ours.dtype === "BF16" || ours.dtype === "F16";
  const view = new DataView(ours.data.buffer, ours.data.byteOffset, ours.data.byteLength);
  const refBits = narrow ? encodeTensor(ours.dtype as RefDtype, refValues) : undefined;
  const refView = refBits && new DataView(refBits.buffer, refBits.byteOffset, refBits.byteLength);
  for (let i = 0; i < values.length; i++) {
    const a = values[i]!, b = refValues[i]!;
    if (Number.isNaN(a) !== Number.isNaN(b)) return { maxAbs: Infinity, maxUlp: Infinity, at: i };
    if (Number.isNaN(a)) continue; // NaN on both sides: a NaN's sign and payload carry no meaning
    const d = Math.abs(a - b);
    if (d > maxAbs) { maxAbs = d; at = i; }
    if (narrow && !(slackAt && d <= slackAt(i))) maxUlp = Math.max(maxUlp, ulps(view.getUint16(2 * i, true), refView!.getUint16(2 * i, true)));
  }
  return { maxAbs, maxUlp, at };
}

/** Recipe text for an object, quoted where mergekit's YAML 1.1 reading would take a string for another type. */
export const toYaml = (value: unknown): string => stringify(value, RECIPE_YAML);
