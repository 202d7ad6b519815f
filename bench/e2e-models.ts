/**
 * @file The end-to-end bench's inputs, made once for every section that merges files (3, "against
 * the I/O floor", 4): a base and three fine-tunes, Llama-shaped BF16 checkpoints (~1 GiB each at
 * full size), and the four recipes merged from them.
 */
import { mkdir, open, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { llamaTensors, type LlamaShape } from "../src/example/models";
import { planFile } from "../src/format/safetensors";

export interface E2eModels {
  /** The folder holding the models and the recipes (`NAME.yml`). */
  dir: string;
  models: string[];
  recipes: Record<string, string>;
  shape: LlamaShape;
  params: number;
  /** Bytes of one model file. */
  modelBytes: number;
  genSeconds: number;
}

/** Writes the models (kept if already there from a --keep run) and the recipes under `root`. */
export async function e2eModels(root: string, quick: boolean): Promise<E2eModels> {
  const shape: LlamaShape = quick
    ? { vocab: 8000, hidden: 512, intermediate: 1408, layers: 4, heads: 8, kvHeads: 8 }
    : { vocab: 32000, hidden: 2048, intermediate: 5632, layers: 8, heads: 16, kvHeads: 16 };
  const params = llamaTensors(shape).reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  const dir = join(root, `e2e-${shape.hidden}-${shape.layers}`);
  const models = ["base", "math", "code", "chat"];
  const t0 = performance.now();
  for (const [m, name] of models.entries()) await writeBf16Model(join(dir, name), shape, m);
  const genSeconds = (performance.now() - t0) / 1000;
  const modelBytes = (await stat(join(dir, "base", "model.safetensors"))).size;
  const recipes: Record<string, string> = {
    linear: `merge_method: linear\nmodels:\n${models.map((m) => `  - {model: ./${m}, parameters: {weight: 0.25}}`).join("\n")}\n`,
    task_arithmetic: `merge_method: task_arithmetic\nbase_model: ./base\nmodels:\n${models.slice(1).map((m) => `  - {model: ./${m}, parameters: {weight: 0.5}}`).join("\n")}\n`,
    ties: `merge_method: ties\nbase_model: ./base\nmodels:\n${models.slice(1).map((m) => `  - {model: ./${m}, parameters: {weight: 1, density: 0.5}}`).join("\n")}\n`,
    dare_ties: `merge_method: dare_ties\nbase_model: ./base\nmodels:\n${models.slice(1).map((m) => `  - {model: ./${m}, parameters: {weight: 1, density: 0.5}}`).join("\n")}\n`,
  };
  for (const [name, text] of Object.entries(recipes)) await writeFile(join(dir, `${name}.yml`), text);
  return { dir, models, recipes, shape, params, modelBytes, genSeconds };
}

/** A BF16 model folder written fast: base = uniform noise, fine-tune m = base + small noise. */
async function writeBf16Model(folder: string, s: LlamaShape, m: number): Promise<void> {
  const path = join(folder, "model.safetensors");
  const tensors = llamaTensors(s);
  const layout = planFile(tensors.map((t) => ({ ...t, dtype: "BF16", bytes: 2 * t.shape.reduce((a, b) => a * b, 1) })), { format: "pt" });
  try {
    if ((await stat(path)).size === layout.size) return; // kept from an earlier --keep run
  } catch { /* not there yet */ }
  await mkdir(folder, { recursive: true });
  await writeFile(join(folder, "config.json"), JSON.stringify({ architectures: ["LlamaForCausalLM"], model_type: "llama", num_hidden_layers: s.layers, hidden_size: s.hidden, vocab_size: s.vocab, torch_dtype: "bfloat16" }));
  const fh = await open(path, "w");
  await fh.write(layout.head, 0, layout.head.length, 0);
  const f = new Float32Array(1 << 20), bits = new Uint32Array(f.buffer), out = new Uint16Array(1 << 20);
  let sBase = 0x12345678, sTask = 0x9abcdef0 ^ (m * 0x3c6ef372);
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const position = layout.offsets.get(t.name)!;
    for (let start = 0; start < n; start += out.length) {
      const count = Math.min(out.length, n - start);
      for (let i = 0; i < count; i++) {
        sBase ^= sBase << 13; sBase ^= sBase >>> 17; sBase ^= sBase << 5;
        let v = ((sBase >>> 0) / 4294967296 - 0.5) * 0.05;
        if (m > 0) { sTask ^= sTask << 13; sTask ^= sTask >>> 17; sTask ^= sTask << 5; v += ((sTask >>> 0) / 4294967296 - 0.5) * 0.004; }
        f[i] = v;
        const b = bits[i]!;
        out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
      }
      await fh.write(new Uint8Array(out.buffer, 0, count * 2), 0, count * 2, position + start * 2);
    }
  }
  await fh.close();
}
