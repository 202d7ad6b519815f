/**
 * @file Opening a model: a single .safetensors file, or a Hugging Face folder with one file or shards
 * listed in model.safetensors.index.json. Only headers are read here; tensor data is read later, chunk
 * by chunk, by whoever computes with it.
 */
import { describeValue, ModelError } from "../errors";
import { isJsonObject, parseBoundedJson } from "../format/json";
import { headerLength, parseHeader, type TensorEntry } from "../format/safetensors";
import type { ModelFolder } from "../io/folder";
import { NodeFileSource, openSource, type SourceRef } from "../io/source";
import { quantizationOf, type Quantization } from "./quantized";
import { decoderStack, layerStacks } from "./stacks";

export interface TensorInfo extends TensorEntry {
  /** The file holding it, for messages. */
  file: string;
  source: SourceRef;
  /** Absolute offset of its data in the file. */
  offset: number;
}

export interface LoadedModel {
  /** Where it was found (path or picked folder name). */
  location: string;
  folder: ModelFolder;
  tensors: Map<string, TensorInfo>;
  config: Record<string, unknown> | null;
  /** config.json as written (outputs change only the keys they must, keeping the rest as it was). */
  configText: string | null;
  /** The weight files (shards) it was read from, with what their headers hold. */
  weightFiles: WeightFile[];
  /** Layers, from the tensors present (config.json, where it says, agrees). */
  layers: number;
  /** .safetensors files in the folder that are not the model's (beside its index, or beside model.safetensors). */
  unreadWeightFiles: string[];
  /** How its weights are quantized; only a model opened with `allowQuantized` (inspect) can have one. */
  quantization?: Quantization;
}

export interface WeightFile {
  file: string;
  tensors: number;
  metadata: Record<string, string> | undefined;
}

export const INDEX_FILE = "model.safetensors.index.json";
/** The weights of an unsharded model, as transformers names them. */
const SINGLE_FILE = "model.safetensors";

/** Files that are weights or weight indexes. */
export function isWeightFile(name: string): boolean {
  return /\.(safetensors|bin|pt|pth|ckpt|gguf|onnx|h5|msgpack|npz)$/i.test(name) || /\.index\.json$/i.test(name);
}

/**
 * Files of a model folder that an output written from it never takes: its weights and their indexes,
 * and a PEFT adapter's config, finding which transformers loads the folder as that adapter over the
 * base model the config names instead of the weights beside it.
 */
export function isNotCopiedToOutput(name: string): boolean {
  return isWeightFile(name) || name === "adapter_config.json";
}

/**
 * Opens a model folder: its weight files' headers, the index, config.json. A quantized checkpoint is
 * refused (E_QUANTIZED, see quantized.ts) unless `allowQuantized`, for reports that only list it.
 */
export async function openModel(folder: ModelFolder, options: { allowQuantized?: boolean } = {}): Promise<LoadedModel> {
  const files = await folder.list();
  const names = new Set(files);
  let shardFiles: string[];
  let weightMap: Map<string, string> | undefined;
  if (names.has(INDEX_FILE)) {
    weightMap = await readIndex(folder);
    shardFiles = [...new Set(weightMap.values())].sort();
    for (const shard of shardFiles) {
      if (!names.has(shard)) {
        const example = [...weightMap].find(([, f]) => f === shard)![0];
        throw new ModelError("E_SHARD_MISSING", `${folder.name}: shard ${shard} listed in ${INDEX_FILE} (for tensor "${example}" and others) is missing`,
          { file: `${folder.name}/${shard}`, tensor: example });
      }
    }
  } else if (names.has(SINGLE_FILE)) {
    // What transformers loads from a folder without an index: model.safetensors alone. Other weight
    // files beside it (Mistral's consolidated.safetensors, the same weights under other names; an
    // adapter's) are not part of the model, and read as part of it they would be merged into the output.
    shardFiles = [SINGLE_FILE];
  } else {
    shardFiles = files.filter((f) => f.endsWith(".safetensors")).sort();
    if (shardFiles.length === 0) {
      const legacy = files.filter((f) => /\.(bin|pt|pth|ckpt|gguf)$/i.test(f));
      const found = files.length === 0 ? "no files" : `${files.slice(0, 8).join(", ")}${files.length > 8 ? `, and ${files.length - 8} more` : ""}`;
      throw new ModelError("E_NO_WEIGHTS", legacy.length
        ? `${folder.name}: holds ${found}, but no .safetensors weights (${legacy.join(", ")} ${legacy.length > 1 ? "are" : "is"} a PyTorch or GGUF format); weightsoup reads safetensors only: convert the checkpoint first`
        : `${folder.name}: no .safetensors weights found (it holds ${found})`, { file: folder.name });
    }
  }

  const tensors = new Map<string, TensorInfo>();
  const weightFiles: WeightFile[] = [];
  for (const shard of shardFiles) {
    const ref = folder.source(shard);
    const display = shardFiles.length === 1 && files.length === 1 ? folder.name : `${folder.name}/${shard}`;
    const header = await readHeader(ref, display);
    weightFiles.push({ file: shard, tensors: header.tensors.size, metadata: header.metadata });
    for (const entry of header.tensors.values()) {
      if (weightMap && weightMap.get(entry.name) !== shard) continue; // the index decides where a tensor lives
      const previous = tensors.get(entry.name);
      if (previous) {
        throw new ModelError("E_INDEX", `${folder.name}: tensor "${entry.name}" is in both ${previous.file} and ${display}`, { file: display, tensor: entry.name });
      }
      tensors.set(entry.name, entry);
    }
  }
  if (weightMap) {
    for (const [name, shard] of weightMap) {
      if (!tensors.has(name)) {
        throw new ModelError("E_INDEX", `${folder.name}/${INDEX_FILE}: tensor "${name}" is mapped to ${shard}, which does not contain it`,
          { file: `${folder.name}/${shard}`, tensor: name });
      }
    }
  }

  if (weightMap && names.has(SINGLE_FILE) && !shardFiles.includes(SINGLE_FILE)) {
    await checkSingleFileAgrees(folder, tensors);
  }

  let config: Record<string, unknown> | null = null;
  let configText: string | null = null;
  if (names.has("config.json")) {
    const file = `${folder.name}/config.json`;
    configText = await folder.readText("config.json");
    const parsed = parseBoundedJson(configText);
    if ("problem" in parsed) throw new ModelError("E_CONFIG", `${file}: ${parsed.problem}`, { file });
    if (!isJsonObject(parsed.value)) throw new ModelError("E_CONFIG", `${file}: must hold a JSON object, found ${describeValue(parsed.value)}`, { file });
    config = parsed.value;
  }
  const quantization = quantizationOf(config, tensors);
  if (quantization && !options.allowQuantized) {
    const how = quantization.key ? `config.json's ${quantization.key} (quant_method ${JSON.stringify(quantization.method)})` : `tensor "${quantization.tensor}" (${quantization.method})`;
    const file = quantization.key ? `${folder.name}/config.json` : `${folder.name}/${tensors.get(quantization.tensor!)!.file}`;
    throw new ModelError("E_QUANTIZED", `${folder.name}: a quantized checkpoint, as ${how} shows: its weights are packed integers with scales, which a merge would combine as numbers and get wrong; use the unquantized (float) checkpoint, or dequantize it first${quantization.onlyConfig ? ` (no tensor looks quantized: if the weights are float and config.json was left from a quantized model, remove its ${quantization.key})` : ""}`,
      { file, ...(quantization.key ? { key: quantization.key } : { tensor: quantization.tensor }) });
  }
  const layers = checkedLayerCount(folder.name, config, tensors.keys());
  const unreadWeightFiles = files.filter((f) => f.endsWith(".safetensors") && !shardFiles.includes(f)).sort();
  return { location: folder.name, folder, tensors, config, configText, weightFiles, unreadWeightFiles, layers, ...(quantization ? { quantization } : {}) };
}

/**
 * The decoder's layer count from the tensors present, checked against config.json's layer count where
 * it has one: trusting the config alone would let `num_hidden_layers: -3` drop every layer, or 1e12 plan
 * forever. With several layer stacks (a vision tower beside the decoder) it is the decoder's (stacks.ts).
 */
function checkedLayerCount(location: string, config: Record<string, unknown> | null, names: Iterable<string>): number {
  return decoderStack(layerStacks(names), config, location)?.count ?? 0;
}

/**
 * A folder with both an index and a model.safetensors that the index does not name is two models to
 * the tools that read it: transformers loads model.safetensors, mergekit the shards the index names.
 * When the two headers hold the same tensors (names, dtypes, shapes) the index is read, as mergekit
 * does; when they differ, which is the model cannot be told, and guessing would merge the wrong one.
 */
async function checkSingleFileAgrees(folder: ModelFolder, tensors: Map<string, TensorInfo>): Promise<void> {
  const display = `${folder.name}/${SINGLE_FILE}`;
  const single = (await readHeader(folder.source(SINGLE_FILE), display)).tensors;
  const entryText = (e: TensorEntry) => `${e.dtype}[${e.shape.join(", ")}]`;
  let difference: { tensor: string; problem: string } | undefined;
  for (const [name, entry] of single) {
    const sharded = tensors.get(name);
    if (!sharded) { difference = { tensor: name, problem: `"${name}" is in ${SINGLE_FILE} but not in the index` }; break; }
    if (entryText(sharded) !== entryText(entry)) {
      difference = { tensor: name, problem: `"${name}" is ${entryText(entry)} in ${SINGLE_FILE} and ${entryText(sharded)} in ${sharded.file}` };
      break;
    }
  }
  if (!difference) {
    const missing = [...tensors.keys()].find((name) => !single.has(name));
    if (missing !== undefined) difference = { tensor: missing, problem: `"${missing}" is in the index but not in ${SINGLE_FILE}` };
  }
  if (difference) {
    throw new ModelError("E_INDEX", `${folder.name}: holds both ${SINGLE_FILE} and ${INDEX_FILE}, which names other files, and they hold different tensors (${difference.problem}): transformers loads ${SINGLE_FILE}, mergekit the index's shards; remove the one that is not the model`,
      { file: display, tensor: difference.tensor });
  }
}

async function readIndex(folder: ModelFolder): Promise<Map<string, string>> {
  const file = `${folder.name}/${INDEX_FILE}`;
  const parsed = parseBoundedJson(await folder.readText(INDEX_FILE));
  if ("problem" in parsed) throw new ModelError("E_INDEX", `${file}: ${parsed.problem}`, { file });
  const map = isJsonObject(parsed.value) ? parsed.value.weight_map : undefined;
  if (!isJsonObject(map)) throw new ModelError("E_INDEX", `${file}: has no "weight_map" object`, { file });
  const out = new Map<string, string>();
  for (const tensor in map) {
    const shard = map[tensor];
    if (typeof shard !== "string" || !shard || shard.includes("/") || shard.includes("\\") || shard.startsWith(".")) {
      throw new ModelError("E_INDEX", `${file}: weight_map entry for "${tensor}" must be a file name in the same folder`, { file, tensor });
    }
    out.set(tensor, shard);
  }
  return out;
}

/** Reads and validates one safetensors header: its tensors (in data order) and metadata. */
export async function readHeader(ref: SourceRef, display: string): Promise<{ tensors: Map<string, TensorInfo>; metadata: Record<string, string> | undefined }> {
  const source = openSource(ref);
  try {
    const size = await source.size();
    const first8 = new Uint8Array(Math.min(8, size));
    await source.readInto(0, first8);
    const n = headerLength(display, size, first8);
    const json = new Uint8Array(n);
    await source.readInto(8, json);
    const header = parseHeader(display, size, json);
    // Every later read of the file checks that it is still the file this header came from.
    const stamped: SourceRef = source instanceof NodeFileSource && ref.kind === "path" ? { ...ref, identity: await source.identity() } : ref;
    // The entries become TensorInfo in place: a header may list a million tensors, so no copies.
    for (const entry of header.tensors.values()) {
      const info = entry as TensorInfo;
      info.file = display;
      info.source = stamped;
      info.offset = header.dataStart + entry.begin;
    }
    return { tensors: header.tensors as Map<string, TensorInfo>, metadata: header.metadata };
  } finally {
    await source.close();
  }
}
