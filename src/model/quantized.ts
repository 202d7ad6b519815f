/**
 * @file Quantized checkpoints (GPTQ, AWQ, bitsandbytes, FP8, compressed-tensors, MLX). Their linear weights
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
  /** config.json says so but no tensor does: float weights under a config left from a quantized model? */
  onlyConfig?: boolean;
}

/** Integer dtypes a packed weight is stored in. */
const PACKED = new Set(["U8", "I8", "U16", "I16", "U32", "I32"]);

/**
 * How a checkpoint is quantized, from config.json (transformers' `quantization_config`, MLX's
 * `quantization`) or else its tensors; undefined for float checkpoints.
 */
export function quantizationOf(config: Record<string, unknown> | null, tensors: ReadonlyMap<string, { dtype: string }>): Quantization | undefined {
  const shown = fromTensors(tensors);
  for (const key of ["quantization_config", "quantization"]) {
    const q = config?.[key];
    if (q === undefined || q === null || (key === "quantization" && (typeof q !== "object" || Array.isArray(q)))) continue;
    const method = typeof q === "object" && !Array.isArray(q) ? (q as Record<string, unknown>).quant_method : undefined;
    return { method: typeof method === "string" && method ? method : key === "quantization" ? "mlx" : "unnamed", key, ...(shown ? {} : { onlyConfig: true }) };
  }
  return shown;
}

/** A tensor that only quantized checkpoints hold: a quantization name, an 8-bit float, or a packed integer weight with scales. */
function fromTensors(tensors: ReadonlyMap<string, { dtype: string }>): Quantization | undefined {
  for (const [name, t] of tensors) {
    const m = QUANTIZED_SUFFIX.exec(name);
    if (m) return { method: methodFromTensor(m[1] ?? "quant_state"), tensor: name };
    if (name.endsWith(".weight") && t.dtype.startsWith("F8")) return { method: "FP8", tensor: name };
    // MLX (and other group-wise formats): an integer `weight` packing the values, with float `scales` beside it.
    if (name.endsWith(".weight") && PACKED.has(t.dtype) && tensors.has(`${name.slice(0, -".weight".length)}.scales`)) return { method: "MLX or another group-wise format", tensor: name };
  }
  return undefined;
}

function methodFromTensor(suffix: string): string {
  if (suffix === "qweight" || suffix === "qzeros") return "GPTQ or AWQ";
  if (suffix === "absmax" || suffix === "quant_map" || suffix === "quant_state" || suffix === "SCB") return "bitsandbytes";
  return "FP8 or compressed-tensors";
}
