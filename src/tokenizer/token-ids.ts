/**
 * @file Pre-tokenized input, for models without a tokenizer (or to evaluate exactly the ids another tool
 * produced): a .json file holding a list of token ids, or a .safetensors file holding one integer tensor
 * of one sequence, [N] or [1, N] (as `tokenizer(text, return_tensors="pt")` saves it).
 */
import { WeightsoupError } from "../errors";
import { parseBoundedJson } from "../format/json";
import type { ModelFolder } from "../io/folder";
import { openSource } from "../io/source";
import { readHeader } from "../model/model";
import { tokenizerError } from "./files";

/** Integer dtypes an ids tensor may have: [bytes, reader]. */
const ID_DTYPES = new Map<string, [number, (view: DataView, at: number) => number | bigint]>([
  ["U8", [1, (v, at) => v.getUint8(at)]],
  ["I8", [1, (v, at) => v.getInt8(at)]],
  ["U16", [2, (v, at) => v.getUint16(at, true)]],
  ["I16", [2, (v, at) => v.getInt16(at, true)]],
  ["U32", [4, (v, at) => v.getUint32(at, true)]],
  ["I32", [4, (v, at) => v.getInt32(at, true)]],
  ["U64", [8, (v, at) => v.getBigUint64(at, true)]],
  ["I64", [8, (v, at) => v.getBigInt64(at, true)]],
]);

/**
 * The ids in `file` of `folder` (a folder opened on the file itself lists just it, so `file` may be left
 * out). Each id is checked to be a non-negative integer; whether it fits a model's vocabulary is for
 * the caller, who knows the model.
 */
export async function readTokenIds(folder: ModelFolder, file?: string): Promise<number[]> {
  if (file === undefined) {
    const files = await folder.list();
    if (files.length !== 1) throw tokenizerError(folder.name, `holds ${files.length} files; name the token-ids file (.json or .safetensors)`);
    file = files[0]!;
  }
  const display = folder.name.endsWith(file) ? folder.name : `${folder.name}/${file}`;
  if (/\.json$/i.test(file)) return idsFromJson(await folder.readText(file), display);
  if (/\.safetensors$/i.test(file)) return idsFromSafetensors(folder, file, display);
  throw tokenizerError(display, "is not a token-ids file: expected a .json list of ids or a .safetensors file with one integer tensor");
}

function idsFromJson(text: string, display: string): number[] {
  const parsed = parseBoundedJson(text);
  if ("problem" in parsed) throw tokenizerError(display, parsed.problem);
  const list = parsed.value;
  if (!Array.isArray(list)) throw tokenizerError(display, "must hold a JSON list of token ids");
  list.forEach((id, i) => {
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) {
      throw tokenizerError(display, `entry ${i} is ${JSON.stringify(id)}, not a non-negative integer token id`, { index: i });
    }
  });
  return list as number[];
}

async function idsFromSafetensors(folder: ModelFolder, file: string, display: string): Promise<number[]> {
  const ref = folder.source(file);
  const { tensors } = await readHeader(ref, display);
  if (tensors.size !== 1) throw tokenizerError(display, `must hold exactly one tensor of token ids, not ${tensors.size}`);
  const tensor = [...tensors.values()][0]!;
  const dtype = ID_DTYPES.get(tensor.dtype);
  if (dtype === undefined) {
    throw tokenizerError(display, `tensor "${tensor.name}" has dtype ${tensor.dtype}; token ids need an integer dtype (${[...ID_DTYPES.keys()].join(", ")})`, { tensor: tensor.name });
  }
  // One sequence: [N], or [1, N] as `tokenizer(text, return_tensors="pt")` saves it. A batch [B, N] read
  // row after row would score each row as the previous one's continuation.
  if (tensor.shape.filter((d) => d > 1).length > 1) {
    throw tokenizerError(display, `tensor "${tensor.name}" has shape [${tensor.shape.join(", ")}], several sequences; it must hold one ([N] or [1, N]): save each sequence on its own, or join them into one list`, { tensor: tensor.name });
  }
  const [width, read] = dtype;
  const bytes = new Uint8Array(tensor.end - tensor.begin);
  const source = openSource(ref);
  try {
    await source.readInto(tensor.offset, bytes);
  } catch (cause) {
    if (cause instanceof WeightsoupError) throw cause;
    throw tokenizerError(display, `cannot be read: ${(cause as Error).message}`, {}, cause);
  } finally {
    await source.close();
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ids = new Array<number>(tensor.numel);
  for (let i = 0; i < tensor.numel; i++) {
    const raw = read(view, i * width);
    const id = typeof raw === "bigint" ? (raw >= 0n && raw <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(raw) : -1) : raw;
    if (id < 0) throw tokenizerError(display, `element ${i} of tensor "${tensor.name}" is ${String(raw)}, not a non-negative token id`, { tensor: tensor.name, index: i });
    ids[i] = id;
  }
  return ids;
}
