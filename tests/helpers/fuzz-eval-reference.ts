// What the independent float64 reference (tests/reference/decoder.ts) makes of a fuzzed model: its
// logits for given ids, or why it cannot compute them. A model whose tensors are missing or have
// shapes its config does not imply cannot be run by transformers either, so weightsoup must refuse it
// (a rule, like those of fuzz-eval-rules.ts); a model the reference runs gives the numbers an accepted
// evaluation must match. For recipe subjects the reference merge (tests/reference/merge.ts) makes the
// merged tensors first.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { parse } from "yaml";
import { referenceLogits, resolveDecoderConfig, type ReferenceTensor } from "../reference/decoder";
import { referenceMerge, refModelFromRaw, type RefModel } from "../reference/merge";
import { decodeFloat, isFloatDtype, readModelDir } from "../reference/safetensors";

export interface ReferenceModel {
  config: Record<string, unknown>;
  /** Float tensors decoded to float32 (what the reference reads); others are left out. */
  tensors: Map<string, ReferenceTensor>;
}

export type ReferenceOutcome =
  | { ok: true; logits: Float64Array; vocab: number }
  /** config: the reference does not take the config; tensors: a tensor it needs is missing or misshapen; other: anything else. */
  | { ok: false; why: "config" | "tensors" | "other"; reason: string };

/** The folder as the reference reads it, or why it cannot be read (no config.json, files that are not safetensors). */
export async function readReferenceModel(dir: string): Promise<ReferenceModel | string> {
  let raw;
  try {
    raw = await readModelDir(dir);
  } catch (e) {
    return (e as Error).message;
  }
  if (raw.config === null || typeof raw.config !== "object" || Array.isArray(raw.config)) return "no config.json object";
  const tensors = new Map<string, ReferenceTensor>();
  for (const [name, t] of raw.tensors) if (isFloatDtype(t.dtype)) tensors.set(name, { shape: t.shape, values: decodeFloat(t.dtype, t.data) });
  return { config: raw.config, tensors };
}

/** The recipe's merged model as the reference merge computes it (the recipe names its models relative to `dir`). */
export async function mergedReferenceModel(dir: string, recipePath: string): Promise<ReferenceModel | string> {
  try {
    const recipe = parse(await readFile(recipePath, "utf8")) as { models: { model: string }[] };
    const models = new Map<string, RefModel>();
    for (const { model } of recipe.models) {
      const raw = await readModelDir(join(dir, model));
      models.set(model, refModelFromRaw(raw.config, raw.tensors));
    }
    const merged = referenceMerge(recipe, models);
    if (merged.config === null) return "the merged model has no config.json";
    const tensors = new Map<string, ReferenceTensor>();
    for (const [name, t] of merged.tensors) if (t.values && isFloatDtype(t.dtype)) tensors.set(name, { shape: t.shape, values: t.values });
    return { config: merged.config, tensors };
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * The reference's logits [ids.length × vocab]. Tensors it does not read are dropped first
 * (transformers ignores unexpected tensors; the reference refuses them to catch its own mistakes).
 */
export function referenceOutcome(model: ReferenceModel, ids: readonly number[]): ReferenceOutcome {
  let vocab: number;
  try {
    vocab = resolveDecoderConfig(model.config).vocab;
  } catch (e) {
    return { ok: false, why: "config", reason: (e as Error).message };
  }
  const tensors = new Map(model.tensors);
  for (;;) {
    try {
      return { ok: true, logits: referenceLogits(model.config, tensors, ids), vocab };
    } catch (e) {
      const message = (e as Error).message;
      const unexpected = /unexpected tensor (.*) \(transformers would ignore it\)$/.exec(message)?.[1];
      if (unexpected !== undefined && tensors.delete(unexpected)) continue;
      if (/missing tensor|has shape|holds \d+ values|lm_head\.weight is missing/.test(message)) return { ok: false, why: "tensors", reason: message };
      return { ok: false, why: "other", reason: message };
    }
  }
}
