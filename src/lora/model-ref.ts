/**
 * @file `base+adapter` model references (mergekit's `model+lora`): the base model with a PEFT LoRA
 * applied on the fly. The reference opens as the base's LoadedModel (same tensors, files and config)
 * under its own name, with the adapter recorded beside it; the planner attaches each targeted
 * tensor's delta to the input that reads it (loraInput), and the worker adds it after reading.
 */
import { ModelError } from "../errors";
import { lookUpModel, type ModelLookup } from "../io/folder";
import { openModel, type LoadedModel, type TensorInfo } from "../model/model";
import { openAdapter, type LoraAdapter } from "./adapter";
import type { LoraDelta } from "./delta";

const adapters = new WeakMap<LoadedModel, LoraAdapter>();

/** The base and adapter names of a `base+adapter` reference, or undefined for a plain model name. */
export function splitLoraReference(name: string): { base: string; adapter: string } | undefined {
  const at = name.indexOf("+");
  if (at < 0) return undefined;
  return { base: name.slice(0, at).trim(), adapter: name.slice(at + 1).trim() };
}

/** Opens a model named in a recipe: a plain model, or a base with a LoRA adapter applied. */
export async function openModelReference(name: string, models: ModelLookup): Promise<LoadedModel> {
  const parts = splitLoraReference(name);
  if (!parts) return openModel(await lookUpModel(models, name));
  if (!parts.base || !parts.adapter || parts.adapter.includes("+")) {
    throw new ModelError("E_ADAPTER", `model "${name}": a LoRA reference is BASE+ADAPTER, with one "+" between two names`, { model: name });
  }
  const base = await openModel(await lookUpModel(models, parts.base));
  const adapter = await openAdapter(await lookUpModel(models, parts.adapter), base);
  const tensors = new Map(base.tensors);
  for (const [name, t] of adapter.replacements) tensors.set(name, t);
  const model: LoadedModel = { ...base, tensors, location: `${base.location}+${adapter.location}` };
  adapters.set(model, adapter);
  return model;
}

/** The LoRA delta to add to `tensor` when reading it from `model`, as a PlannedInput field. */
export function loraInput(model: LoadedModel, tensor: TensorInfo): { lora?: LoraDelta } {
  const delta = adapters.get(model)?.deltas.get(tensor.name);
  return delta ? { lora: delta } : {};
}
