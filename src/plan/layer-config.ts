/**
 * @file Settings a config.json gives a layer by its position rather than in a per-layer list. When
 * slices move layers, transformers recomputes them from the output layer's index, so a layer taken from
 * position k and put at position l would change kind: a sliding-window layer would attend fully, a
 * dense MLP would be built as a mixture of experts (and its weights not found). For the families whose
 * rule is known (transformers 5.18's config classes), the output config states each layer's kind
 * explicitly, taken from its source (`layer_types`; `mlp_only_layers` with `decoder_sparse_step: 1`);
 * a position-dependent setting of any other family, and GPT-2's attention scaled by 1 / (layer index
 * + 1), are refused when layers move.
 */
import { ModelError } from "../errors";
import type { LoadedModel } from "../model/model";
import { layerName } from "../model/roles";
import { TEXT_SECTIONS } from "../model/stacks";
import { table } from "../table";

type Config = Record<string, unknown>;

const SLIDING = "sliding_attention";
const FULL = "full_attention";

function numberOr(config: Config, key: string, fallback: number): number {
  const value = config[key];
  return typeof value === "number" ? value : fallback;
}

/** Every `(i + 1) % pattern` layer slides, every pattern-th attends fully (Gemma 2/3, Cohere 2, gpt-oss). */
function everyNth(layers: number, pattern: number): string[] {
  return Array.from({ length: layers }, (_, i) => ((i + 1) % pattern !== 0 ? SLIDING : FULL));
}

/**
 * `layer_types` as transformers computes it for a config that does not state it, for the families
 * where it depends on the layer's position; undefined for other families.
 */
export function impliedLayerTypes(config: Config, layers: number): string[] | undefined {
  const indices = Array.from({ length: layers }, (_, i) => i);
  const maxWindowLayers = numberOr(config, "max_window_layers", 28);
  switch (config.model_type) {
    case "qwen2":
    case "qwen3": {
      // sliding_window counts only with use_sliding_window (and defaults to 4096 when left out).
      const sliding = config.use_sliding_window === true && config.sliding_window !== null;
      return indices.map((i) => (sliding && i >= maxWindowLayers ? SLIDING : FULL));
    }
    case "qwen2_moe":
      return indices.map((i) => ((i + 1) % 2 !== 0 && i < maxWindowLayers && config.use_sliding_window === true ? SLIDING : FULL));
    case "gemma2":
    case "gpt_oss":
      return everyNth(layers, 2);
    case "gemma3_text":
      return everyNth(layers, numberOr(config, "sliding_window_pattern", 6));
    case "cohere2":
      return everyNth(layers, numberOr(config, "sliding_window_pattern", 4));
    default:
      return undefined;
  }
}

/** Which layers have a mixture-of-experts MLP (Qwen2-MoE, Qwen3-MoE); undefined for other families. */
export function impliedSparseLayers(config: Config, layers: number): boolean[] | undefined {
  if (config.model_type !== "qwen2_moe" && config.model_type !== "qwen3_moe") return undefined;
  const dense = new Set(Array.isArray(config.mlp_only_layers) ? config.mlp_only_layers : []);
  const step = numberOr(config, "decoder_sparse_step", 1);
  const experts = numberOr(config, "num_experts", config.model_type === "qwen2_moe" ? 60 : 128);
  return Array.from({ length: layers }, (_, i) => !dense.has(i) && experts > 0 && (i + 1) % step === 0);
}

/** The keys each known family's rules above read (and so rebuild). */
const HANDLED = table<readonly string[]>({
  qwen2: ["max_window_layers"],
  qwen3: ["max_window_layers"],
  qwen2_moe: ["max_window_layers", "mlp_only_layers", "decoder_sparse_step"],
  qwen3_moe: ["max_window_layers", "mlp_only_layers", "decoder_sparse_step"],
  gemma3_text: ["sliding_window_pattern"],
  cohere2: ["sliding_window_pattern"],
});

/**
 * Settings of other families that give layers a kind by position (DeepSeek, Exaone 4, AFMoE, LFM2 ...):
 * an attention kind, which an explicit `layer_types` overrides, or an MLP kind, which it does not.
 */
const POSITIONAL_ATTENTION_KEYS = ["max_window_layers", "sliding_window_pattern", "global_attn_every_n_layers", "full_attn_idxs", "local_layer_ids"];
const POSITIONAL_MLP_KEYS = [
  "mlp_only_layers", "decoder_sparse_step", "first_k_dense_replace", "moe_layer_freq", "dense_layers", "moe_layers",
  "moe_layer_start_index", "moe_layer_end_index", "moe_layer_interval", "num_dense_layers", "expert_layer_period", "expert_layer_offset",
  // Hybrids: which layers are attention and which recurrent (Jamba, Bamba, Zamba2, Nemotron-H).
  "attn_layer_period", "attn_layer_offset", "attn_layer_indices", "hybrid_layer_ids", "hybrid_override_pattern",
];

/**
 * Refuses slices that move a layer (put the layer from position k at another position) in a config
 * whose position-dependent settings cannot be restated per layer. `configsOf` gives a model's config
 * and its text sections (a multimodal model's decoder settings), each with where it is, for messages.
 */
export function checkMovedLayers(file: string, sources: readonly { model: string; layer: number }[], configsOf: (model: string) => { path: string; config: Config }[], layers: LayerTensors): void {
  checkLayerTensors(file, sources, configsOf, layers);
  const moved = new Set(sources.filter((s, i) => s.layer !== i).map((s) => s.model));
  for (const model of moved) for (const { path, config } of configsOf(model)) {
    const fail = (key: string, rule: string) => {
      throw new ModelError("E_CONFIG", `${file}: the slices move layers of ${model}, whose ${path} sets ${key}: ${rule}, so transformers would treat each moved layer by its new position and the output would not compute what its layers did. Keep each layer at its index`, { file, model, key });
    };
    if (config.scale_attn_by_inverse_layer_idx === true) fail("scale_attn_by_inverse_layer_idx: true", "GPT-2 scales layer l's attention by 1 / (l + 1)");
    const handled = HANDLED[String(config.model_type)] ?? [];
    const keys = Array.isArray(config.layer_types) ? POSITIONAL_MLP_KEYS : [...POSITIONAL_ATTENTION_KEYS, ...POSITIONAL_MLP_KEYS];
    for (const key of keys) {
      if (config[key] === undefined || config[key] === null || handled.includes(key)) continue;
      fail(`${key}: ${JSON.stringify(config[key])}`, `a ${JSON.stringify(config.model_type ?? "unknown")} config gives a layer its kind by its position there, and weightsoup does not know the rule to restate it per layer`);
    }
    // A list that cycles over the layers (RecurrentGemma's block_types) rather than naming each.
    if (Array.isArray(config.block_types) && config.block_types.length !== sources.length) {
      fail(`block_types: ${JSON.stringify(config.block_types)}`, "the list repeats over the layers, so a layer's kind is its position in the cycle");
    }
  }
}

/** The layer templates ("model.layers.{}.mlp.up_proj.weight") of a model's layer, and the donor's name. */
export interface LayerTensors {
  donor: string;
  templates(model: string, layer: number): readonly string[] | undefined;
}

/**
 * The rule behind the keys above, checked on the tensors themselves: where the donor's layers are not
 * all alike (dense and expert MLPs, attention and recurrent blocks), an output layer must hold the
 * tensors the donor's layer at that index holds, since the donor's config.json is what transformers
 * builds the output from. Families whose kinds are restated per layer (a per-layer list, or
 * layer-config's rules) are left to that.
 */
function checkLayerTensors(file: string, sources: readonly { model: string; layer: number }[], configsOf: (model: string) => { path: string; config: Config }[], layers: LayerTensors): void {
  const key = (t: readonly string[] | undefined) => (t ? [...t].sort().join("\n") : "");
  const donorKinds = new Set<string>();
  let count = 0;
  for (; layers.templates(layers.donor, count) !== undefined; count++) donorKinds.add(key(layers.templates(layers.donor, count)));
  if (donorKinds.size === 1) {
    // Every layer of the donor alike: transformers builds every output layer so, and a layer taken from
    // a model whose layer lacks one of those tensors would be left with it newly initialised (random).
    // Buffers transformers recomputes (RoPE frequencies, GPT-2's causal masks) may be missing.
    const kind = layers.templates(layers.donor, 0)!.filter((t) => !/(rotary_emb\.inv_freq|attn\.(masked_)?bias)$/.test(t));
    sources.forEach(({ model, layer }, i) => {
      const have = new Set(layers.templates(model, layer) ?? []);
      const missing = kind.find((t) => !have.has(t));
      if (missing === undefined) return;
      throw new ModelError("E_CONFIG", `${file}: output layer ${i} is layer ${layer} of ${model}, which has no "${layerName(missing, layer)}": every layer of ${layers.donor} (the donor of config.json) has one, so transformers would build output layer ${i} with it and fill it with random values. Take layers of one architecture`, { file, model, layer: i, tensor: missing });
    });
    return;
  }
  if (donorKinds.size < 2) return;
  // Lists with one entry per layer are rebuilt from the sources (card.ts), and so are Qwen-MoE's kinds.
  const restated = configsOf(layers.donor).some(({ config }) => impliedSparseLayers(config, 1) !== undefined || Object.values(config).some((v) => Array.isArray(v) && v.length >= 2 && v.length === count));
  if (restated) return;
  sources.forEach(({ model, layer }, i) => {
    const at = layers.templates(layers.donor, i);
    if (at === undefined || key(at) === key(layers.templates(model, layer))) return;
    throw new ModelError("E_CONFIG", `${file}: output layer ${i} is layer ${layer} of ${model}, whose tensors differ from those of layer ${i} of ${layers.donor} (the donor of config.json): the donor's layers are not all alike (dense and expert MLPs, attention and recurrent blocks), and transformers would build layer ${i} as the donor's layer ${i}, leaving its weights missing. Keep each layer where a layer of its kind is`, { file, model, layer: i });
  });
}

/** A model's config.json and its text sections (text_config ...), each with where it is, for messages. */
export function decoderConfigs(model: LoadedModel): { path: string; config: Config }[] {
  const config = model.config;
  if (!config) return [];
  const out = [{ path: `${model.location}/config.json`, config }];
  for (const section of TEXT_SECTIONS) {
    const inner = config[section];
    if (inner !== null && typeof inner === "object" && !Array.isArray(inner)) out.push({ path: `${model.location}/config.json ${section}`, config: inner as Config });
  }
  return out;
}
