/**
 * @file What a tensor is, read from its name: which decoder layer it belongs to, whether it comes
 * before or after the layers, and whether it is an embedding (vocabulary rows). mergekit reads this
 * from per-architecture JSON files; weightsoup infers it from names the way mergekit does for unknown
 * architectures: a layer tensor has a purely numeric path component (model.layers.12.mlp.up_proj.weight).
 */
import type { LoadedModel, TensorInfo } from "./model";

export interface TensorRole {
  /** Layer index, or undefined for tensors outside the layer stack. */
  layer: number | undefined;
  /** The name with the layer index replaced by "{}" (layer tensors only). */
  template: string | undefined;
  /** The name before the layer index ("model.layers"): which layer stack it belongs to (layer tensors only). */
  stack: string | undefined;
  /** Non-layer tensors: before the layers (embeddings) or after them (final norm, lm_head). */
  position: "pre" | "layer" | "post";
}

export function tensorRole(name: string): TensorRole {
  const parts = name.split(".");
  const i = parts.findIndex((p) => /^\d+$/.test(p));
  if (i >= 0) {
    const template = [...parts.slice(0, i), "{}", ...parts.slice(i + 1)].join(".");
    return { layer: Number(parts[i]), template, stack: parts.slice(0, i).join("."), position: "layer" };
  }
  // Embeddings (and ChatGLM's rotary_pos_emb) come before the layers; GPT-NeoX's embed_out is its output head, after them.
  return { layer: undefined, template: undefined, stack: undefined, position: /embed|wte|wpe|pos_emb/.test(name) && !/(^|\.)embed_out\./.test(name) ? "pre" : "post" };
}

export function layerName(template: string, layer: number): string {
  return template.replace("{}", String(layer));
}

/** Tensors outside the layers whose first dimension is the vocabulary (mergekit's is_embed). */
export function isEmbedding(name: string): boolean {
  return tensorRole(name).layer === undefined && /(^|\.)(embed_tokens|lm_head|wte|word_embeddings|embeddings|embed_out|tok_embeddings|output)\.weight$/.test(name);
}

/** The vocabulary size config.json states: top level, else in a multimodal model's text section. */
export function vocabSize(config: Record<string, unknown> | null): number | undefined {
  for (const section of [config, config?.text_config, config?.language_config, config?.llm_config]) {
    if (section === null || typeof section !== "object" || Array.isArray(section)) continue;
    const v = (section as Record<string, unknown>).vocab_size;
    if (typeof v === "number" && Number.isSafeInteger(v) && v > 0) return v;
  }
  return undefined;
}

/**
 * An embedding or output head recognised by its shape: outside every layer stack, 2-D, with one row per
 * token of the model's vocabulary, whatever its name (`transformer.tok.weight`, `head.weight`).
 */
export function isVocabShaped(name: string, shape: readonly number[], config: Record<string, unknown> | null): boolean {
  const vocab = vocabSize(config);
  return vocab !== undefined && shape.length === 2 && shape[0] === vocab && tensorRole(name).layer === undefined;
}

/** config.json keys that state a layer count (transformers' names, GPT-2's, ChatGLM's). */
const LAYER_COUNT_KEYS = ["num_hidden_layers", "n_layer", "num_layers"];

/** The config.json key holding the layer count, if it has one (the first of them, if several). */
export function layerCountKey(config: Record<string, unknown> | null): string | undefined {
  return layerCountKeys(config)[0];
}

/** Every key of config.json that states a layer count: each must agree with the weights. */
export function layerCountKeys(config: Record<string, unknown> | null): string[] {
  return config ? LAYER_COUNT_KEYS.filter((key) => Object.hasOwn(config, key)) : [];
}

/** Layers a set of tensors spans: the largest layer index + 1 (0 without layer tensors). */
export function layerCount(names: Iterable<string>): number {
  let max = -1;
  for (const n of names) {
    const { layer } = tensorRole(n);
    if (layer !== undefined && layer > max) max = layer;
  }
  return max + 1;
}

/**
 * A model's tensor by name; a tied model supplies its input embedding as lm_head: its one embedding under
 * the same prefix (`language_model.lm_head.weight` is `language_model.model.embed_tokens.weight` in a
 * vision-language model of transformers 4's layout, as mergekit's `tied_names` read it).
 */
export function findTensor(model: LoadedModel, name: string): TensorInfo | undefined {
  const direct = model.tensors.get(name);
  if (direct || !LM_HEAD.test(name)) return direct;
  const prefix = name.slice(0, name.length - "lm_head.weight".length);
  const tied = [...model.tensors.keys()].filter((n) => n.startsWith(prefix) && tensorRole(n).position === "pre" && isEmbedding(n));
  return tied.length === 1 ? model.tensors.get(tied[0]!) : undefined;
}

/** An output head's name, at the top level or under a prefix. */
export const LM_HEAD = /(^|\.)lm_head\.weight$/;
