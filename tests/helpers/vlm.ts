/**
 * @file A made-up two-module model for `modules:` recipes: a text decoder under `language_model.`
 * (transformers 4's layout) with 3 layers and a vision tower under `model.vision_tower.` (transformers
 * 5's) with 2, so that each module has its own depth. Tensor names and shapes are fixture data.
 */
import type { RefModel } from "../reference/merge";

export const TEXT_LAYERS = 3, VISION_LAYERS = 2, VOCAB = 32, HIDDEN = 8;

/** The model's tensors (name, shape), plus `extra` ones. */
export function tensorShapes(extra: Record<string, number[]> = {}): [string, number[]][] {
  const shapes: [string, number[]][] = [["language_model.model.embed_tokens.weight", [VOCAB, HIDDEN]]];
  for (let i = 0; i < TEXT_LAYERS; i++) {
    shapes.push([`language_model.model.layers.${i}.input_layernorm.weight`, [HIDDEN]]);
    shapes.push([`language_model.model.layers.${i}.self_attn.q_proj.weight`, [HIDDEN, HIDDEN]]);
    shapes.push([`language_model.model.layers.${i}.mlp.up_proj.weight`, [12, HIDDEN]]);
  }
  shapes.push(["language_model.model.norm.weight", [HIDDEN]], ["language_model.lm_head.weight", [VOCAB, HIDDEN]]);
  shapes.push(["model.vision_tower.embeddings.patch_embedding.weight", [HIDDEN, 12]]);
  for (let i = 0; i < VISION_LAYERS; i++) {
    shapes.push([`model.vision_tower.encoder.layers.${i}.layer_norm1.weight`, [HIDDEN]]);
    shapes.push([`model.vision_tower.encoder.layers.${i}.mlp.fc1.weight`, [16, HIDDEN]]);
  }
  shapes.push(["model.vision_tower.post_layernorm.weight", [HIDDEN]]);
  return [...shapes, ...Object.entries(extra)];
}

/** config.json of the made-up model. */
export function vlmConfig(): Record<string, unknown> {
  return { architectures: ["MadeUpVLM"], model_type: "made_up_vlm", text_config: { num_hidden_layers: TEXT_LAYERS }, vision_config: { num_hidden_layers: VISION_LAYERS } };
}

/** A model cut down to the tensors under `prefix` (one module, as the reference merges it alone). */
export function only(model: RefModel, prefix: string): RefModel {
  return { config: null, tensors: new Map([...model.tensors].filter(([name]) => name.startsWith(prefix))) };
}
