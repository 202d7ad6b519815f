/**
 * @file Layer stacks: the groups of tensors that share a name prefix followed by a layer index
 * (`model.layers.N.*`, `transformer.h.N.*`, `vision_model.encoder.layers.N.*`, `mm_projector.N.*`).
 * A model may hold several (a vision tower next to its text decoder). Exactly one is the decoder stack,
 * the one `layer_range` and a models: recipe's layer counts refer to; the others are side stacks, merged
 * tensor by tensor. Which stack is the decoder is decided from the names and config.json only, so every
 * consumer (opening a model, planning, the ledger) agrees.
 */
import { describeValue, ModelError } from "../errors";
import { layerCountKeys, tensorRole } from "./roles";

export interface LayerStack {
  /** The name up to the layer index ("model.layers"; "" when a name starts with its index). */
  prefix: string;
  /** Largest layer index + 1. */
  count: number;
  /** Tensors in the stack. */
  tensors: number;
}

/** Stacks of a model's tensor names, by prefix, in first-seen order. */
export function layerStacks(names: Iterable<string>): Map<string, LayerStack> {
  const stacks = new Map<string, LayerStack>();
  for (const name of names) {
    const role = tensorRole(name);
    if (role.layer === undefined) continue;
    const stack = stacks.get(role.stack!) ?? { prefix: role.stack!, count: 0, tensors: 0 };
    stack.count = Math.max(stack.count, role.layer + 1);
    stack.tensors++;
    stacks.set(stack.prefix, stack);
  }
  return stacks;
}

/** Prefixes of stacks that are towers or adapters beside a language model, never its decoder when another stack exists. */
const TOWER = /(^|[._])(vision|visual|image|img|audio|speech|video|projector)([._]|$)/i;

/** config.json sections of multimodal models that describe the text decoder. */
export const TEXT_SECTIONS = ["text_config", "language_config", "llm_config"];

/** Layer counts config.json states for the text decoder: every top-level key (binding), else a text section's (a hint). */
function declaredCounts(config: Record<string, unknown> | null): { key: string; value: unknown; binding: boolean }[] {
  const keys = layerCountKeys(config);
  if (keys.length) return keys.map((key) => ({ key, value: config![key], binding: true }));
  for (const section of TEXT_SECTIONS) {
    const nested = config?.[section];
    if (nested === null || typeof nested !== "object" || Array.isArray(nested)) continue;
    const inner = layerCountKeys(nested as Record<string, unknown>)[0];
    if (inner) return [{ key: `${section}.${inner}`, value: (nested as Record<string, unknown>)[inner], binding: false }];
  }
  return [];
}

/** Larger count first, then more tensors, then name order: a total order, so the choice is stable. */
function bigger(a: LayerStack, b: LayerStack): number {
  return b.count - a.count || b.tensors - a.tensors || (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0);
}

/**
 * The decoder stack: among the stacks that are not vision/audio towers or projectors (all of them when
 * every stack is one), the one whose count config.json states (num_hidden_layers, n_layer, num_layers,
 * or text_config's), else the largest. A top-level count that no candidate stack has is refused: the
 * config contradicts the weights (a model missing its last layer must not pass as a smaller model).
 */
export function decoderStack(stacks: ReadonlyMap<string, LayerStack>, config: Record<string, unknown> | null, location: string): LayerStack | undefined {
  const all = [...stacks.values()];
  const text = all.filter((s) => !TOWER.test(s.prefix));
  const candidates = (text.length ? text : all).sort(bigger);
  const file = `${location}/config.json`;
  let chosen: LayerStack | undefined;
  for (const { key, value, binding } of declaredCounts(config)) {
    if (binding && (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0)) {
      throw new ModelError("E_CONFIG", `${file}: ${key} must be a non-negative integer, found ${describeValue(value)}`, { file, key });
    }
    const match = chosen ? (chosen.count === value ? chosen : undefined) : candidates.find((s) => s.count === value);
    if (match) chosen = match;
    else if (binding && !(value === 0 && candidates.length === 0)) {
      const held = candidates.length === 0 ? "no layers"
        : candidates.length === 1 || chosen ? `layers 0 to ${(chosen ?? candidates[0]!).count - 1} (${(chosen ?? candidates[0]!).count} layers)`
        : `no layer stack of that depth (${candidates.map((s) => `${s.prefix || "(unprefixed)"}: ${s.count} layers`).join(", ")})`;
      throw new ModelError("E_CONFIG", `${file}: ${key} is ${describeValue(value)}, but the weights hold ${held}`, { file, key, declared: value, found: (chosen ?? candidates[0])?.count ?? 0 });
    }
  }
  return chosen ?? candidates[0];
}
