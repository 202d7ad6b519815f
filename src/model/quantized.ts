/**
 * @file Quantized checkpoints (GPTQ, AWQ, bitsandbytes, FP8, compressed-tensors). Their linear weights
 * are packed integers (or 8-bit floats) with per-group scales, stored under other names (`qweight`,
 * `scales`, `absmax`, `weight_scale`). Taken as tensors, they would merge without a word and wrong: the
 * rule for integer tensors copies the base's packed weights while the float scales are averaged, a
 * model that looks complete and computes nothing sensible. So they are recognised when a model is
 * opened and refused wherever numbers are needed (merging, evaluating, extracting a LoRA); `inspect`
 * still lists what such a folder holds.
 */

/** Last name segments only quantized checkpoints use (GPTQ/AWQ, bitsandbytes 4-bit and 8-bit, FP8 and compressed-tensors scales). */
const QUANTIZED_SUFFIX = /\.(qweight|qzeros|absmax|quant_map|SCB|weight_scale|weight_scale_inv|weight_packed|weight_zero_point)$|\.quant_state\./;

export interface Quantization {
  /** config.json's quantization_config.quant_method, or what a tensor's name says. */
  method: string;
  /** config.json's key, or the tensor that shows it. */
  key?: string;
  tensor?: string;
}

/** How a checkpoint is quantized, from config.json's `quantization_config` or else its tensor names; undefined for float checkpoints. */
export function quantizationOf(config: Record<string, unknown> | null, names: Iterable<string>): Quantization | undefined {
  const q = config?.quantization_config;
  if (q !== undefined && q !== null) {
    const method = typeof q === "object" && !Array.isArray(q) ? (q as Record<string, unknown>).quant_method : undefined;
    return { method: typeof method === "string" && method ? method : "unnamed", key: "quantization_config" };
  }
  for (const name of names) {
    const m = QUANTIZED_SUFFIX.exec(name);
    if (m) return { method: methodFromTensor(m[1] ?? "quant_state"), tensor: name };
  }
  return undefined;
}

function methodFromTensor(suffix: string): string {
  if (suffix === "qweight" || suffix === "qzeros") return "GPTQ or AWQ";
  if (suffix === "absmax" || suffix === "quant_map" || suffix === "quant_state" || suffix === "SCB") return "bitsandbytes";
  return "FP8 or compressed-tensors";
}
