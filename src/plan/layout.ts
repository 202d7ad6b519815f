/**
 * @file A model's tensors grouped by the part they play in planning: before the decoder's layers
 * (embeddings), in a decoder layer, in a side stack (a vision tower, a projector: any other layer stack),
 * or after the layers (final norm, lm_head). Only names, shapes and config.json are used, so any
 * architecture whose tensors follow the `prefix.N.rest` naming can be merged.
 */
import type { LoadedModel } from "../model/model";
import { isVocabShaped, tensorRole } from "../model/roles";
import { decoderStack, layerStacks } from "../model/stacks";

export interface SideTensor {
  /** The stack's prefix ("vision_model.encoder.layers"), or the module of a non-layer tensor ("vision_model"). */
  stack: string;
  /** Its index over the stack's depth in this model, as a slice over the whole stack gives it (0 for a module's non-layer tensor). */
  t: number;
}

export interface ModelLayout {
  pre: string[];
  post: string[];
  /** Decoder layer -> layer templates ("model.layers.{}.mlp.up_proj.weight"). */
  layers: Map<number, string[]>;
  /** Decoder layers (the model's layer count). */
  count: number;
  /** The decoder stack's prefix, undefined without one. */
  decoder: string | undefined;
  /**
   * Tensors of the other layer stacks, and non-layer tensors of the modules holding them
   * (`vision_model.post_layernorm.weight` goes with `vision_model.encoder.layers`), by name.
   */
  side: Map<string, SideTensor>;
}

/**
 * A multimodal projector without a layer index (Gemma 3's `model.multi_modal_projector.mm_input_projection_weight`,
 * LLaVA's `multi_modal_projector.linear_1.weight`, Idefics3's and SmolVLM's `model.connector.…`, BLIP-2's
 * `language_projection.…`), or an image-side parameter beside one (LLaVA-NeXT's `image_newline`, BLIP-2's
 * `query_tokens`): it belongs with the vision tower, from the first slice, not with the decoder's final
 * norm and head, from the last.
 */
const PROJECTOR = /^(.*\.)?(multi_modal_projector|mm_projector|visual_projection|vision_projection|connector|language_projection)\.|^(.*\.)?(image_newline|query_tokens)$/;

export function layoutOf(model: LoadedModel): ModelLayout {
  const names = [...model.tensors.keys()].sort();
  const stacks = layerStacks(names);
  const decoder = decoderStack(stacks, model.config, model.location)?.prefix;
  const modules = decoder === undefined ? [] : [...stacks.keys()].filter((p) => p !== decoder).map((p) => moduleOf(p, decoder)).filter((m) => m !== "");
  const pre: string[] = [], post: string[] = [];
  const layers = new Map<number, string[]>();
  const side = new Map<string, SideTensor>();
  for (const name of names) {
    const role = tensorRole(name);
    const module = role.position === "layer" ? undefined : modules.find((m) => name.startsWith(`${m}.`)) ?? projectorOf(name);
    if (module !== undefined) side.set(name, { stack: module, t: 0 });
    else if (role.position === "pre" || (role.position === "post" && isInputEmbedding(name, model))) pre.push(name);
    else if (role.position === "post") post.push(name);
    else if (role.stack !== decoder) {
      const count = stacks.get(role.stack!)!.count;
      side.set(name, { stack: role.stack!, t: count > 1 ? role.layer! / (count - 1) : 1 });
    } else {
      const list = layers.get(role.layer!) ?? [];
      list.push(role.template!);
      layers.set(role.layer!, list);
    }
  }
  return { pre, post, layers, count: model.layers, decoder, side };
}

/** The projector (or image-side parameter) a tensor is or belongs to, by PROJECTOR: its name up to that word. */
function projectorOf(name: string): string | undefined {
  const m = PROJECTOR.exec(name);
  return m ? (m[2] !== undefined ? m[0].slice(0, -1) : m[0]) : undefined;
}

/**
 * A vocabulary-shaped tensor (one row per token) whose name does not say it is an output head: an input
 * embedding with an unusual name (`model.tok.weight`), so it comes before the layers.
 */
function isInputEmbedding(name: string, model: LoadedModel): boolean {
  const t = model.tensors.get(name)!;
  return isVocabShaped(name, t.shape, model.config) && !/head|out|logit|classif|score/i.test(name);
}

/**
 * The module a side stack sits in: its prefix up to the first component where it leaves the decoder's
 * (`vision_model` for `vision_model.encoder.layers` beside `model.layers`; `model.vision_tower` for
 * `model.vision_tower.encoder.layers` beside `model.language_model.layers`); "" when it is inside the decoder's.
 */
function moduleOf(prefix: string, decoder: string): string {
  const a = prefix.split("."), b = decoder === "" ? [] : decoder.split(".");
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i < a.length && i < b.length ? a.slice(0, i + 1).join(".") : "";
}
