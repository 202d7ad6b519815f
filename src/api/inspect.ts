/**
 * @file What is in a checkpoint: tensors, dtypes, shapes, parameter counts, bytes, header metadata,
 * and the config.json facts that matter for merging.
 */
import { DTYPES } from "../format/dtypes";
import type { ModelFolder } from "../io/folder";
import { openModel } from "../model/model";
import type { Quantization } from "../model/quantized";

export interface InspectReport {
  location: string;
  weightFiles: { file: string; tensors: number; metadata: Record<string, string> | undefined }[];
  /** .safetensors files beside the model's own that it does not consist of (not in its index; beside model.safetensors). */
  unreadWeightFiles: string[];
  tensors: { name: string; dtype: string; shape: number[]; parameters: number; bytes: number; file: string }[];
  parameters: number;
  bytes: number;
  byDtype: Record<string, { tensors: number; parameters: number; bytes: number }>;
  layers: number;
  /** How the weights are quantized (GPTQ, AWQ, bitsandbytes, FP8, MLX), when they are: such a model is listed here but refused by merges (E_QUANTIZED). */
  quantization?: Quantization;
  /** config.json's facts that matter for merging; dtype is whichever of `dtype` (transformers 5) and `torch_dtype` it has. */
  config: { architectures?: unknown; model_type?: unknown; dtype?: unknown; vocab_size?: unknown; hidden_size?: unknown } | null;
}

export async function inspect(folder: ModelFolder): Promise<InspectReport> {
  const model = await openModel(folder, { allowQuantized: true });
  const tensors = [...model.tensors.values()]
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, parameters: t.numel, bytes: t.end - t.begin, file: t.file }));
  const byDtype: InspectReport["byDtype"] = Object.create(null);
  for (const t of tensors) {
    const d = (byDtype[t.dtype] ??= { tensors: 0, parameters: 0, bytes: 0 });
    d.tensors++;
    d.parameters += t.parameters;
    d.bytes += t.bytes;
  }
  const c = model.config;
  return {
    location: model.location,
    weightFiles: model.weightFiles,
    unreadWeightFiles: model.unreadWeightFiles,
    tensors,
    parameters: tensors.reduce((s, t) => s + t.parameters, 0),
    bytes: tensors.reduce((s, t) => s + t.bytes, 0),
    byDtype,
    layers: model.layers,
    ...(model.quantization ? { quantization: model.quantization } : {}),
    config: c && { architectures: c.architectures, model_type: c.model_type, dtype: c.dtype ?? c.torch_dtype, vocab_size: c.vocab_size, hidden_size: c.hidden_size },
  };
}

/** DTYPES is re-exported for report consumers that want sizes. */
export { DTYPES };
