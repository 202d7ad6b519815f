/**
 * @file Opening a model: a single .safetensors file, or a Hugging Face folder with one file or shards
 * listed in model.safetensors.index.json. Only headers are read here; tensor data is read later, chunk
 * by chunk, by whoever computes with it.
 */
import { ModelError } from "../errors";
import { headerLength, parseHeader, type TensorEntry } from "../format/safetensors";
import type { ModelFolder } from "../io/folder";
import { openSource, type SourceRef } from "../io/source";

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
  /** The weight files (shards) it was read from. */
  weightFiles: string[];
}

export const INDEX_FILE = "model.safetensors.index.json";

/** Files that are weights or weight indexes: never copied from a donor model to an output. */
export function isWeightFile(name: string): boolean {
  return /\.(safetensors|bin|pt|pth|ckpt|gguf|onnx|h5|msgpack|npz)$/i.test(name) || /\.index\.json$/i.test(name);
}

export async function openModel(folder: ModelFolder): Promise<LoadedModel> {
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
  } else {
    shardFiles = files.filter((f) => f.endsWith(".safetensors")).sort();
    if (shardFiles.length === 0) {
      const legacy = files.find((f) => /\.(bin|pt|pth|gguf)$/i.test(f));
      throw new ModelError("E_NO_WEIGHTS", legacy
        ? `${folder.name}: holds ${legacy} but no .safetensors weights; weightsoup reads safetensors only (convert the checkpoint first)`
        : `${folder.name}: no .safetensors weights found`, { file: folder.name });
    }
  }

  const tensors = new Map<string, TensorInfo>();
  for (const shard of shardFiles) {
    const ref = folder.source(shard);
    const display = shardFiles.length === 1 && files.length === 1 ? folder.name : `${folder.name}/${shard}`;
    for (const entry of (await readHeader(ref, display)).tensors.values()) {
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

  let config: Record<string, unknown> | null = null;
  if (names.has("config.json")) {
    try {
      config = JSON.parse(await folder.readText("config.json")) as Record<string, unknown>;
    } catch (cause) {
      throw new ModelError("E_CONFIG", `${folder.name}/config.json: not valid JSON (${(cause as Error).message})`, { file: `${folder.name}/config.json` }, { cause });
    }
  }
  return { location: folder.name, folder, tensors, config, weightFiles: shardFiles };
}

async function readIndex(folder: ModelFolder): Promise<Map<string, string>> {
  const file = `${folder.name}/${INDEX_FILE}`;
  let index: unknown;
  try {
    index = JSON.parse(await folder.readText(INDEX_FILE));
  } catch (cause) {
    throw new ModelError("E_INDEX", `${file}: not valid JSON (${(cause as Error).message})`, { file }, { cause });
  }
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (map === null || typeof map !== "object" || Array.isArray(map)) {
    throw new ModelError("E_INDEX", `${file}: has no "weight_map" object`, { file });
  }
  const out = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(map)) {
    if (typeof shard !== "string" || shard.includes("/") || shard.includes("\\")) {
      throw new ModelError("E_INDEX", `${file}: weight_map entry for "${tensor}" must be a file name in the same folder`, { file, tensor });
    }
    out.set(tensor, shard);
  }
  return out;
}

/** Reads and validates one safetensors header. */
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
    const out = new Map<string, TensorInfo>();
    for (const [name, entry] of header.tensors) {
      out.set(name, { ...entry, file: display, source: ref, offset: header.dataStart + entry.begin });
    }
    return { tensors: out, metadata: header.metadata };
  } finally {
    await source.close();
  }
}
