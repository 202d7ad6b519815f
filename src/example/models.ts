/**
 * @file Small deterministic Llama-shaped checkpoints: a base model and fine-tunes that differ from it by
 * structured task vectors (each "skill" moves its own part of the network). Used by the built-in example
 * and the benchmarks; the tests build their own fixtures independently.
 */
import { mkdir, open, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { OutputError, WeightsoupError } from "../errors";
import { outputFailure } from "../io/io-error";
import { uniqueSuffix } from "../io/temp-name";
import { writeFileAtomically } from "../cli/write-file";
import { DEFAULT_TEXT } from "../eval/default-text";
import { planFile } from "../format/safetensors";
import { trainByteBpe } from "../tokenizer/train-byte-bpe";
import exampleRecipe from "./recipe.yml";

export interface LlamaShape {
  vocab: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
}

export const EXAMPLE_SHAPE: LlamaShape = { vocab: 4096, hidden: 384, intermediate: 1024, layers: 6, heads: 8, kvHeads: 4 };

/** Tensor names and shapes of a Llama decoder (untied lm_head). */
export function llamaTensors(s: LlamaShape): { name: string; shape: number[] }[] {
  const head = s.hidden / s.heads;
  const out = [{ name: "model.embed_tokens.weight", shape: [s.vocab, s.hidden] }];
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}`;
    out.push(
      { name: `${p}.input_layernorm.weight`, shape: [s.hidden] },
      { name: `${p}.self_attn.q_proj.weight`, shape: [s.hidden, s.hidden] },
      { name: `${p}.self_attn.k_proj.weight`, shape: [s.kvHeads * head, s.hidden] },
      { name: `${p}.self_attn.v_proj.weight`, shape: [s.kvHeads * head, s.hidden] },
      { name: `${p}.self_attn.o_proj.weight`, shape: [s.hidden, s.hidden] },
      { name: `${p}.post_attention_layernorm.weight`, shape: [s.hidden] },
      { name: `${p}.mlp.gate_proj.weight`, shape: [s.intermediate, s.hidden] },
      { name: `${p}.mlp.up_proj.weight`, shape: [s.intermediate, s.hidden] },
      { name: `${p}.mlp.down_proj.weight`, shape: [s.hidden, s.intermediate] },
    );
  }
  out.push({ name: "model.norm.weight", shape: [s.hidden] }, { name: "lm_head.weight", shape: [s.vocab, s.hidden] });
  return out;
}

/** A 32-bit counter-hash generator: the value at (seed, stream, i) never depends on call order. */
function uniform(seed: number, stream: number, i: number): number {
  let x = (Math.imul(i, 0x9e3779b1) ^ Math.imul(stream + 1, 0x85ebca77) ^ Math.imul(seed + 1, 0xc2b2ae3d)) >>> 0;
  x ^= x >>> 16; x = Math.imul(x, 0x21f0aaad); x ^= x >>> 15; x = Math.imul(x, 0x735a2d97); x ^= x >>> 15;
  return ((x >>> 0) + 0.5) / 4294967296;
}

/** Roughly normal values (sum of four uniforms, centred and scaled to unit variance). */
function normal(seed: number, stream: number, i: number): number {
  const s = uniform(seed, stream, 4 * i) + uniform(seed, stream, 4 * i + 1) + uniform(seed, stream, 4 * i + 2) + uniform(seed, stream, 4 * i + 3);
  return (s - 2) * Math.sqrt(3);
}

function stringHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** float32 -> bf16 bits, round to nearest even (finite inputs). */
function bf16(x: number, f32: Float32Array, u32: Uint32Array): number {
  f32[0] = x;
  const b = u32[0]!;
  return (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
}

/** A skill: which tensors it changes and how strongly (relative to the base's scale). */
export interface Skill {
  name: string;
  seed: number;
  /** Substrings of tensor names the skill moves; others move by `background`. */
  touches: string[];
  strength: number;
  background: number;
}

export const EXAMPLE_SKILLS: Skill[] = [
  { name: "math", seed: 11, touches: ["mlp"], strength: 0.08, background: 0.005 },
  { name: "code", seed: 22, touches: ["self_attn", "embed_tokens"], strength: 0.08, background: 0.005 },
  { name: "chat", seed: 33, touches: ["layers.4", "layers.5", "lm_head"], strength: 0.05, background: 0.01 },
];

/**
 * Writes a model folder: model.safetensors (BF16), config.json, a byte-level BPE tokenizer.json,
 * tokenizer_config.json and generation_config.json. `skill` undefined writes the base model.
 */
export async function writeLlamaModel(dir: string, shape: LlamaShape, skill?: Skill): Promise<number> {
  await mkdir(dir, { recursive: true });
  const tensors = llamaTensors(shape);
  const layout = planFile(tensors.map((t) => ({ ...t, dtype: "BF16", bytes: 2 * t.shape.reduce((a, b) => a * b, 1) })), { format: "pt" });
  const fh = await open(join(dir, "model.safetensors"), "w");
  const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
  try {
    await fh.write(layout.head, 0, layout.head.length, 0);
    for (const t of tensors) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      const stream = stringHash(t.name);
      const isNorm = t.name.endsWith("norm.weight");
      const scale = isNorm ? 0.05 : 1 / Math.sqrt(t.shape[t.shape.length - 1]!);
      const moved = skill && skill.touches.some((x) => t.name.includes(x)) ? skill.strength : (skill?.background ?? 0);
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) {
        let v = (isNorm ? 1 : 0) + scale * normal(7, stream, i);
        if (skill) v += moved * scale * normal(skill.seed, stream, i);
        out[i] = bf16(v, f32, u32);
      }
      const bytes = new Uint8Array(out.buffer);
      await fh.write(bytes, 0, bytes.length, layout.offsets.get(t.name)!);
    }
  } finally {
    await fh.close();
  }
  const head = shape.hidden / shape.heads;
  await writeFile(join(dir, "config.json"), JSON.stringify({
    architectures: ["LlamaForCausalLM"], model_type: "llama", vocab_size: shape.vocab, hidden_size: shape.hidden,
    intermediate_size: shape.intermediate, num_hidden_layers: shape.layers, num_attention_heads: shape.heads,
    num_key_value_heads: shape.kvHeads, head_dim: head, max_position_embeddings: 2048, rms_norm_eps: 1e-5,
    rope_theta: 10000, hidden_act: "silu", tie_word_embeddings: false, torch_dtype: "bfloat16", bos_token_id: 1, eos_token_id: 2,
  }, null, 2) + "\n");
  await writeExampleTokenizer(dir, shape.vocab);
  await writeFile(join(dir, "generation_config.json"), JSON.stringify({ bos_token_id: 1, eos_token_id: 2, max_new_tokens: 64 }, null, 2) + "\n");
  return layout.size;
}

/**
 * The example's tokenizer: a byte-level BPE trained on the default evaluation text, so that English
 * text maps to real tokens (ids 0-2 are <unk>, <s>, </s>, as config.json says; <s> is prepended as
 * BOS). At most `vocab` tokens; the text supports fewer, so the embedding has unused rows, as real
 * models' padded embeddings do. Read alike by @huggingface/tokenizers and transformers.
 */
export function exampleTokenizerFiles(vocab: number): Map<string, string> {
  const cached = trainedTokenizers.get(vocab);
  if (cached) return cached;
  const tokenizer = trainByteBpe(DEFAULT_TEXT, { vocabSize: vocab, specialTokens: ["<unk>", "<s>", "</s>"], bos: "<s>" });
  const config = {
    bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>", clean_up_tokenization_spaces: false, model_max_length: 2048,
    tokenizer_class: "PreTrainedTokenizerFast",
  };
  const files = new Map([
    ["tokenizer.json", JSON.stringify(tokenizer) + "\n"],
    ["tokenizer_config.json", JSON.stringify(config, null, 2) + "\n"],
  ]);
  trainedTokenizers.set(vocab, files);
  return files;
}

/** Training takes about half a second; the example writes four models with the same tokenizer. */
const trainedTokenizers = new Map<number, Map<string, string>>();

async function writeExampleTokenizer(dir: string, vocab: number): Promise<void> {
  for (const [name, text] of exampleTokenizerFiles(vocab)) await writeFile(join(dir, name), text);
}

/**
 * What `weightsoup example` writes into `dir`: the base model, the fine-tunes and recipe.yml. Returns the
 * checkpoints' bytes. Each model is written under a temporary name and renamed when complete, so an
 * interrupted run leaves no model that looks whole; `dir` must be new, empty or an earlier example.
 */
export async function writeExampleFolder(dir: string, signal?: AbortSignal): Promise<number> {
  await prepareExampleFolder(dir);
  let bytes = 0;
  for (const skill of [undefined, ...EXAMPLE_SKILLS]) {
    signal?.throwIfAborted();
    const name = skill?.name ?? "base";
    const temp = join(dir, `.${name}.weightsoup-${uniqueSuffix()}.tmp`);
    try {
      bytes += await writeLlamaModel(temp, EXAMPLE_SHAPE, skill);
      await rm(join(dir, name), { recursive: true, force: true });
      await rename(temp, join(dir, name));
    } catch (cause) {
      await rm(temp, { recursive: true, force: true }).catch(() => undefined);
      throw cause instanceof WeightsoupError ? cause : outputFailure(join(dir, name), "write the example model", cause);
    }
  }
  await writeFileAtomically(join(dir, "recipe.yml"), exampleRecipe);
  return bytes;
}

/** What an earlier example left in its folder (the merge's own staging names start with a dot). */
const EXAMPLE_ENTRIES = new Set(["base", ...EXAMPLE_SKILLS.map((k) => k.name), "recipe.yml", "merged"]);
const STALE = /^\..*\.weightsoup-[0-9a-f]{8}\.tmp$/;
/**
 * Written first into a folder the example takes (new or empty): only a folder holding it is an earlier
 * example's, whose base, math, ... may be replaced. Names alone are not enough: a folder of the user's
 * own models named base and math is no example (found by the stop 38 audit: it was overwritten).
 */
const MARKER = ".weightsoup-example";

/**
 * Creates `dir` (and missing parents, one level at a time: Node's recursive mkdir spins forever under
 * /proc), or checks that an existing one is empty or an earlier example, and removes what an interrupted
 * example left.
 */
async function prepareExampleFolder(dir: string): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (info && !info.isDirectory()) throw new OutputError("E_OUTPUT_EXISTS", `${dir}: is a file, not a folder; weightsoup example writes its models into a folder`, { file: dir });
  if (info) {
    const entries = await readdir(dir).catch((cause: unknown) => { throw outputFailure(dir, "list it", cause); });
    const marked = entries.includes(MARKER);
    // Dot-files (a .DS_Store, the merge's staging names) are never written over; the rest must be an earlier example's.
    const other = entries.filter((e) => !e.startsWith(".") && (!marked || !EXAMPLE_ENTRIES.has(e)));
    if (other.length) {
      const why = marked ? "which no earlier example wrote" : `and no ${MARKER} file says an earlier example wrote it`;
      throw new OutputError("E_OUTPUT_EXISTS", `${dir}: holds ${other.slice(0, 3).join(", ")}${other.length > 3 ? ", ..." : ""}, ${why}; weightsoup example writes into a new or empty folder, or its own earlier one`, { file: dir });
    }
    for (const stale of entries.filter((e) => STALE.test(e))) await rm(join(dir, stale), { recursive: true, force: true });
    if (!marked) await writeMarker(dir);
    return;
  }
  const missing: string[] = [];
  for (let at = dir; ; at = dirname(at)) {
    const here = await stat(at).catch(() => undefined);
    if (here) {
      if (!here.isDirectory()) throw outputFailure(dir, "create it", Object.assign(new Error("ENOTDIR"), { code: "ENOTDIR" }));
      break;
    }
    missing.unshift(at);
    if (dirname(at) === at) break;
  }
  for (const level of missing) {
    await mkdir(level).catch((cause: unknown) => {
      if ((cause as NodeJS.ErrnoException).code !== "EEXIST") throw outputFailure(dir, "create it", cause);
    });
  }
  await writeMarker(dir);
}

async function writeMarker(dir: string): Promise<void> {
  await writeFile(join(dir, MARKER), "written by `weightsoup example`: it may replace this folder's base, math, code, chat, recipe.yml and merged\n")
    .catch((cause: unknown) => { throw outputFailure(dir, "write into it", cause); });
}
