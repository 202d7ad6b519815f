/**
 * @file Built-in permutation specs (./spec.ts), inferred from config.json and tensor names: plain
 * MLPs, Llama-style decoders and GPT-2. Which symmetries are valid is worked out in
 * ../shared/reference/rebasin-and-evaluation.md §2; in short:
 *
 * - one residual-stream permutation for the whole model (every norm weight, every projection's input,
 *   every residual write, the embeddings' hidden axis; the vocabulary and position axes never move);
 * - per layer, one MLP permutation (SwiGLU's gate and up share it);
 * - per layer, attention heads move as whole KV groups; query heads move inside their group; the V/O
 *   dims of each KV head are permuted inside the head (the same permutation for every query head that
 *   reads that value head);
 * - Q/K dims inside a head are never permuted under RoPE (it pairs dims with fixed frequencies); GPT-2
 *   has no RoPE, so q and k of a head share a within-head permutation there.
 */
import { AlignmentError } from "../errors";
import { defaultKvHeads } from "../eval/architecture";
import type { AxisLevel, AxisSpec, PermutationSpec } from "./spec";

export type SpecKind = "auto" | "mlp" | "llama" | "gpt2";
export const SPEC_KINDS: readonly SpecKind[] = ["auto", "mlp", "llama", "gpt2"];

/** model_type values that get the Llama spec. */
const LLAMA_TYPES = ["llama", "mistral", "qwen2", "qwen3"] as const;
const SUPPORTED = `mlp (a chain of linear layers), llama (model_type ${LLAMA_TYPES.join(", ")}), gpt2; or an explicit JSON spec (--spec FILE)`;

type Shapes = ReadonlyMap<string, readonly number[]>;
type Config = Record<string, unknown> | undefined;

/** The built-in spec `kind` stands for: itself, or for "auto" the one config.json's model_type picks (no config: an MLP). */
export function resolveSpecKind(kind: SpecKind, config: Config): Exclude<SpecKind, "auto"> {
  if (kind !== "auto") return kind;
  const type = typeof config?.model_type === "string" ? config.model_type : undefined;
  if (type === undefined) return "mlp";
  if ((LLAMA_TYPES as readonly string[]).includes(type)) return "llama";
  if (type === "gpt2") return "gpt2";
  throw new AlignmentError("E_ARCHITECTURE_UNSUPPORTED", `no built-in permutation spec for model_type "${type}"; supported: ${SUPPORTED}`, { model_type: type });
}

/** The spec for a model: by `kind`, or for "auto" by config.json's model_type (no config: an MLP). */
export function inferSpec(kind: SpecKind, config: Config, shapes: Shapes): PermutationSpec {
  const chosen = resolveSpecKind(kind, config);
  if (chosen === "mlp") return mlpSpec(shapes);
  if (chosen === "llama") return llamaSpec(need(config, "llama"), shapes);
  return gpt2Spec(need(config, "gpt2"), shapes);
}

function need(config: Config, kind: string): Record<string, unknown> {
  if (!config) throw new AlignmentError("E_SPEC", `the ${kind} spec needs the model's config.json (head counts cannot be read from shapes)`, {});
  return config;
}

function integer(config: Record<string, unknown>, key: string, fallback?: number): number {
  const value = config[key] ?? fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new AlignmentError("E_SPEC", `config.json: "${key}" must be a positive integer (got ${JSON.stringify(config[key])})`, { key });
  }
  return value;
}

/** The prefix before `suffix` of the one tensor name that ends with it ("" or e.g. "model."). */
function prefixOf(shapes: Shapes, suffix: string, kind: string): string {
  const name = [...shapes.keys()].find((n) => n === suffix || n.endsWith(`.${suffix}`));
  if (name === undefined) throw new AlignmentError("E_SPEC", `no tensor "${suffix}": not a ${kind} checkpoint`, { tensor: suffix });
  return name.slice(0, -suffix.length);
}

/** Every tensor must be covered or explicitly left alone: an unknown one could need permuting. */
function requireCovered(spec: PermutationSpec, shapes: Shapes, leftAlone: (name: string) => boolean, kind: string): PermutationSpec {
  for (const name of shapes.keys()) {
    if (!Object.hasOwn(spec, name) && !leftAlone(name)) {
      throw new AlignmentError("E_SPEC", `tensor "${name}" is not part of the ${kind} layout weightsoup knows; give the permutation spec explicitly (--spec FILE)`, { tensor: name });
    }
  }
  for (const name of Object.keys(spec)) {
    if (!shapes.has(name)) throw new AlignmentError("E_TENSOR_MISSING", `the ${kind} layout needs tensor "${name}", which the model does not have`, { tensor: name });
  }
  return spec;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * A plain MLP: tensors `<layer>.weight` [out, in] with optional `<layer>.bias` [out], named alike but for
 * their numbers and chained in number order, where each layer's out matches the next one's in. Hidden layer i's
 * units form group `P_i`; the input and output layers' outer axes are not permuted.
 */
export function mlpSpec(shapes: Shapes): PermutationSpec {
  const layers = [...shapes.keys()].filter((n) => n.endsWith(".weight") && shapes.get(n)!.length === 2)
    .map((n) => n.slice(0, -".weight".length))
    .sort((x, y) => x.localeCompare(y, "en", { numeric: true }));
  if (layers.length < 2) throw new AlignmentError("E_SPEC", `an MLP needs at least two linear layers (<name>.weight of shape [out, in]); found ${layers.length}`, {});
  // Names give the order only through their numbers (fc1 fc2 fc3, layers.0 layers.1, net.0 net.2): names
  // that differ otherwise (input, hidden, output) sort in an order that need not be the network's, and
  // with square layers the shape check below cannot tell.
  const templates = new Set(layers.map((layer) => layer.replace(/\d+/g, "#")));
  if (templates.size > 1 || !/\d/.test(layers[0]!)) {
    throw new AlignmentError("E_SPEC", `the MLP's layers (${layers.slice(0, 6).join(", ")}${layers.length > 6 ? ", ..." : ""}) are not numbered alike, so their order cannot be told from their names: name them by position (fc1, fc2, ... or layers.0, layers.1, ...) or give the permutation spec (--spec FILE)`, {});
  }
  const spec: Record<string, (string | null)[]> = Object.create(null); // tensor names are keys: "__proto__" too
  layers.forEach((layer, i) => {
    const [out, inp] = shapes.get(`${layer}.weight`)! as [number, number];
    if (i > 0) {
      const previousOut = shapes.get(`${layers[i - 1]}.weight`)![0];
      if (previousOut !== inp) {
        throw new AlignmentError("E_SPEC", `${layer}.weight takes ${inp} inputs but ${layers[i - 1]}.weight gives ${previousOut}: not a chain of linear layers`, { tensor: `${layer}.weight` });
      }
    }
    const outGroup = i < layers.length - 1 ? `P_${i}` : null, inGroup = i > 0 ? `P_${i - 1}` : null;
    spec[`${layer}.weight`] = [outGroup, inGroup];
    const bias = shapes.get(`${layer}.bias`);
    if (bias) {
      if (bias.length !== 1 || bias[0] !== out) throw new AlignmentError("E_SPEC", `${layer}.bias has shape [${bias.join(", ")}], expected [${out}]`, { tensor: `${layer}.bias` });
      spec[`${layer}.bias`] = [outGroup];
    }
  });
  for (const name of shapes.keys()) {
    if (!Object.hasOwn(spec, name)) throw new AlignmentError("E_SPEC", `tensor "${name}" is not part of a chain of linear layers; give the permutation spec explicitly`, { tensor: name });
  }
  return spec;
}

/** Llama-style decoders (Llama, with attention and MLP biases if any; Mistral; Qwen2 with q/k/v biases; Qwen3 with q/k norms). */
export function llamaSpec(config: Record<string, unknown>, shapes: Shapes): PermutationSpec {
  const p = prefixOf(shapes, "embed_tokens.weight", "Llama-style");
  const heads = integer(config, "num_attention_heads");
  // Left out, it is the class default, as eval reads it (Mistral's 8 query heads' worth, not all of them).
  const family = LLAMA_TYPES.find((t) => t === config.model_type);
  const kvHeads = integer(config, "num_key_value_heads", family ? defaultKvHeads(family, config, heads) : heads);
  const hidden = integer(config, "hidden_size"), layers = integer(config, "num_hidden_layers");
  // Qwen3's head_dim defaults to 128, not hidden / heads (decoder-forward.md 2); null means derived elsewhere.
  const headDim = integer(config, "head_dim", config.model_type === "qwen3" ? 128 : hidden / heads);
  if (heads % kvHeads !== 0) throw new AlignmentError("E_SPEC", `config.json: ${heads} attention heads do not split into ${kvHeads} KV groups`, {});
  const perGroup = heads / kvHeads;
  const spec: Record<string, AxisSpec[]> = {
    [`${p}embed_tokens.weight`]: [null, "P_res"],
    [`${p}norm.weight`]: ["P_res"],
  };
  if (shapes.has("lm_head.weight")) spec["lm_head.weight"] = [null, "P_res"];
  for (let l = 0; l < layers; l++) {
    const at = `${p}layers.${l}.`, g = `layers.${l}.`;
    const kv: AxisLevel = { size: kvHeads, group: `${g}P_kv` };
    const query: AxisLevel = { size: perGroup, group: perGroup > 1 ? range(kvHeads).map((k) => `${g}P_q.${k}`) : null };
    const vo: AxisLevel = { size: headDim, group: range(kvHeads).map((k) => `${g}P_vo.${k}`) };
    const rows: Record<string, AxisLevel[]> = {
      q_proj: [kv, query, { size: headDim, group: null }],
      k_proj: [kv, { size: headDim, group: null }],
      v_proj: [kv, vo],
    };
    for (const [proj, levels] of Object.entries(rows)) {
      spec[`${at}self_attn.${proj}.weight`] = [levels, "P_res"];
      if (shapes.has(`${at}self_attn.${proj}.bias`)) spec[`${at}self_attn.${proj}.bias`] = [levels];
    }
    spec[`${at}self_attn.o_proj.weight`] = ["P_res", [kv, query, vo]];
    if (shapes.has(`${at}self_attn.o_proj.bias`)) spec[`${at}self_attn.o_proj.bias`] = ["P_res"];
    spec[`${at}input_layernorm.weight`] = ["P_res"];
    spec[`${at}post_attention_layernorm.weight`] = ["P_res"];
    spec[`${at}mlp.gate_proj.weight`] = [`${g}P_ff`, "P_res"];
    spec[`${at}mlp.up_proj.weight`] = [`${g}P_ff`, "P_res"];
    spec[`${at}mlp.down_proj.weight`] = ["P_res", `${g}P_ff`];
    // Llama's mlp_bias: the biases go with their outputs' units.
    if (shapes.has(`${at}mlp.gate_proj.bias`)) spec[`${at}mlp.gate_proj.bias`] = [`${g}P_ff`];
    if (shapes.has(`${at}mlp.up_proj.bias`)) spec[`${at}mlp.up_proj.bias`] = [`${g}P_ff`];
    if (shapes.has(`${at}mlp.down_proj.bias`)) spec[`${at}mlp.down_proj.bias`] = ["P_res"];
  }
  // Rotary frequency buffers and per-head q/k norms (shared by all heads, dims never permuted) stay.
  return requireCovered(spec, shapes, (n) => /(rotary_emb\.inv_freq|self_attn\.[qk]_norm\.weight)$/.test(n), "Llama-style");
}

/** GPT-2 (Hugging Face layout: Conv1D weights are [in, out]; c_attn's outputs are q | k | v). */
export function gpt2Spec(config: Record<string, unknown>, shapes: Shapes): PermutationSpec {
  const p = prefixOf(shapes, "wte.weight", "GPT-2");
  const hidden = integer(config, "n_embd"), heads = integer(config, "n_head"), layers = integer(config, "n_layer");
  if (hidden % heads !== 0) throw new AlignmentError("E_SPEC", `config.json: n_embd ${hidden} does not split into ${heads} heads`, {});
  const headDim = hidden / heads;
  const spec: Record<string, AxisSpec[]> = {
    [`${p}wte.weight`]: [null, "P_res"],
    [`${p}wpe.weight`]: [null, "P_res"],
    [`${p}ln_f.weight`]: ["P_res"],
    [`${p}ln_f.bias`]: ["P_res"],
  };
  if (shapes.has("lm_head.weight")) spec["lm_head.weight"] = [null, "P_res"];
  for (let l = 0; l < layers; l++) {
    const at = `${p}h.${l}.`, g = `h.${l}.`;
    const head: AxisLevel = { size: heads, group: `${g}P_head` };
    const qk = range(heads).map((h) => `${g}P_qk.${h}`), vo = range(heads).map((h) => `${g}P_vo.${h}`);
    // Fused q | k | v: the within-head group depends on the part (outer level) and the head.
    const fused: AxisLevel[] = [{ size: 3, group: null }, head, { size: headDim, group: [qk, qk, vo] }];
    spec[`${at}attn.c_attn.weight`] = ["P_res", fused];
    spec[`${at}attn.c_attn.bias`] = [fused];
    spec[`${at}attn.c_proj.weight`] = [[head, { size: headDim, group: vo }], "P_res"];
    spec[`${at}attn.c_proj.bias`] = ["P_res"];
    for (const norm of ["ln_1", "ln_2"]) {
      spec[`${at}${norm}.weight`] = ["P_res"];
      spec[`${at}${norm}.bias`] = ["P_res"];
    }
    spec[`${at}mlp.c_fc.weight`] = ["P_res", `${g}P_ff`];
    spec[`${at}mlp.c_fc.bias`] = [`${g}P_ff`];
    spec[`${at}mlp.c_proj.weight`] = [`${g}P_ff`, "P_res"];
    spec[`${at}mlp.c_proj.bias`] = ["P_res"];
  }
  // Old checkpoints carry the causal mask buffers attn.bias / attn.masked_bias: not weights.
  return requireCovered(spec, shapes, (n) => /attn\.(masked_)?bias$/.test(n), "GPT-2");
}
