/**
 * @file A model's tensors grouped by the part they play in planning: before the decoder's layers
 * (embeddings), in a decoder layer, in a side stack (a vision tower, a projector: any other layer stack),
 * or after the layers (final norm, lm_head). Only names, shapes and config.json are used, so any
 * architecture whose tensors follow the `prefix.N.rest` naming can be merged.
 */
import type { LoadedModel } from "../model/model";
import { tensorRole } from "../model/roles";
import { decoderStack, layerStacks } from "../model/stacks";

export interface SideTensor {
  /** The stack's prefix ("vision_model.encoder.layers"). */
  stack: string;
  /** Its index in that stack, and the stack's depth in this model: t runs over it as over a slice. */
  index: number;
  count: number;
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
  /** Tensors of the other layer stacks, by name. */
  side: Map<string, SideTensor>;
}

export function layoutOf(model: LoadedModel): ModelLayout {
  const names = [...model.tensors.keys()].sort();
  const stacks = layerStacks(names);
  const decoder = decoderStack(stacks, model.config, model.location)?.prefix;
  const pre: string[] = [], post: string[] = [];
  const layers = new Map<number, string[]>();
  const side = new Map<string, SideTensor>();
  for (const name of names) {
    const role = tensorRole(name);
    if (role.position === "pre") pre.push(name);
    else if (role.position === "post") post.push(name);
    else if (role.stack !== decoder) side.set(name, { stack: role.stack!, index: role.layer!, count: stacks.get(role.stack!)!.count });
    else {
      const list = layers.get(role.layer!) ?? [];
      list.push(role.template!);
      layers.set(role.layer!, list);
    }
  }
  return { pre, post, layers, count: model.layers, decoder, side };
}

/** t of a side-stack tensor: its index over the stack's depth, as a slice over the whole stack gives (1 for a stack of one). */
export function sideT(tensor: SideTensor): number {
  return tensor.count > 1 ? tensor.index / (tensor.count - 1) : 1;
}
