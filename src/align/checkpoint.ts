/**
 * @file Checkpoints for alignment and evaluation: reading tensors whole as float32 (the read lands in
 * wasm memory and the decode kernel widens BF16/F16 there), and writing a permuted copy of a model
 * with exactly the input's file layout (same shards, same headers, same offsets, same dtypes: a
 * permutation moves elements, it never changes their values or their bits).
 */
import { DTYPE_F32 } from "../../assembly/layout";
import { AlignmentError } from "../errors";
import { DTYPES, elementBytes } from "../format/dtypes";
import type { OutputFolder } from "../io/output";
import { openSource } from "../io/source";
import { addRow } from "../vocab/row-codec";
import { INDEX_FILE, isNotCopiedToOutput, type LoadedModel, type TensorInfo } from "../model/model";
import type { Kernels } from "../kernels/kernels";
import { alignmentKernels } from "./kernels";
import { checkSpec, gather, tensorMaps, type Elements, type PermutationSpec, type Permutations } from "./spec";
import type { Tensor } from "./weight-matching";

const count = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Raw bytes of one tensor. */
export async function readTensorBytes(info: TensorInfo): Promise<Uint8Array> {
  const source = openSource(info.source);
  try {
    const bytes = new Uint8Array(info.end - info.begin);
    await source.readInto(info.offset, bytes);
    return bytes;
  } finally {
    await source.close();
  }
}

/**
 * Whether two float tensors of one shape hold the same values, in any dtypes (a BF16 weight saved again
 * as F32 is the same weight): compared widened to float64, rows at a time.
 */
export async function sameTensorValues(a: TensorInfo, b: TensorInfo): Promise<boolean> {
  if (a.dtype === b.dtype) return sameTensorBytes(a, b);
  if (a.shape.join(",") !== b.shape.join(",") || DTYPES[a.dtype]?.kind !== "float" || DTYPES[b.dtype]?.kind !== "float") return false;
  const cols = a.shape[a.shape.length - 1] ?? 1;
  const total = a.shape.reduce((x, y) => x * y, 1);
  if (cols === 0 || total === 0) return true;
  const [sa, sb] = [openSource(a.source), openSource(b.source)];
  try {
    const [ea, eb] = [elementBytes(a.dtype), elementBytes(b.dtype)];
    const rowsPerRead = Math.max(1, Math.floor(2 ** 22 / cols));
    for (let row = 0; row < total / cols; row += rowsPerRead) {
      const rows = Math.min(rowsPerRead, total / cols - row);
      const [x, y] = [new Uint8Array(rows * cols * ea), new Uint8Array(rows * cols * eb)];
      await Promise.all([sa.readInto(a.offset + row * cols * ea, x), sb.readInto(b.offset + row * cols * eb, y)]);
      const [va, vb] = [new Float64Array(rows * cols), new Float64Array(rows * cols)];
      addRow(a.dtype, x, rows * cols, va);
      addRow(b.dtype, y, rows * cols, vb);
      for (let i = 0; i < va.length; i++) if (va[i] !== vb[i] && !(Number.isNaN(va[i]) && Number.isNaN(vb[i]))) return false;
    }
    return true;
  } finally {
    await Promise.allSettled([sa.close(), sb.close()]);
  }
}

/** Whether two tensors hold the same dtype and bytes (read in 16 MiB steps). */
export async function sameTensorBytes(a: TensorInfo, b: TensorInfo): Promise<boolean> {
  if (a.dtype !== b.dtype) return false;
  const [sa, sb] = [openSource(a.source), openSource(b.source)];
  try {
    const size = a.end - a.begin, step = 1 << 24;
    for (let at = 0; at < size; at += step) {
      const n = Math.min(step, size - at);
      const [x, y] = [new Uint8Array(n), new Uint8Array(n)];
      await Promise.all([sa.readInto(a.offset + at, x), sb.readInto(b.offset + at, y)]);
      for (let i = 0; i < n; i++) if (x[i] !== y[i]) return false;
    }
    return true;
  } finally {
    await Promise.allSettled([sa.close(), sb.close()]);
  }
}

/** Elements read and widened at a time: wasm memory holds this much of a tensor, whatever its size. */
const DECODE_ELEMENTS = 1 << 20;

/**
 * A tensor with a NaN or infinite value, refused: weight matching compares units by their products, and
 * the barrier's forward pass multiplies by them, so one such value makes a whole similarity matrix (or a
 * loss) NaN, which the assignment solver could only report without saying where it came from.
 */
function nonFinite(info: TensorInfo, start: number, values: Float32Array): AlignmentError {
  const at = values.findIndex((v) => !Number.isFinite(v));
  return new AlignmentError("E_NONFINITE", `${info.file}: tensor "${info.name}" holds ${values[at]} at element ${start + at}; alignment and barrier compare and multiply weights, which a NaN or infinite value makes NaN`,
    { file: info.file, tensor: info.name });
}

/**
 * One tensor as float32 (F32, F16, BF16 or F64 in the file), read and widened a slice at a time in
 * `kernels`' memory (under a mark) and gathered into a new array.
 */
export async function readFloatTensor(kernels: Kernels, info: TensorInfo): Promise<Float32Array> {
  const code = DTYPES[info.dtype]?.code;
  if (code === undefined) {
    throw new AlignmentError("E_DTYPE_UNSUPPORTED", `${info.file}: tensor "${info.name}" is ${info.dtype}; alignment reads F32, F16, BF16 and F64`, { file: info.file, tensor: info.name });
  }
  const { exports, arena } = kernels;
  const n = count(info.shape), width = elementBytes(info.dtype), out = new Float32Array(n);
  const mark = arena.mark();
  const source = openSource(info.source);
  try {
    const step = Math.min(n, DECODE_ELEMENTS);
    const raw = arena.alloc(step * width), wide = arena.alloc(step * 4);
    for (let start = 0; start < n; start += step) {
      const m = Math.min(step, n - start);
      await source.readInto(info.offset + start * width, arena.u8(raw, m * width));
      exports.decode(raw, code, wide, m);
      if (exports.countNonFinite(wide, DTYPE_F32, m) > 0) throw nonFinite(info, start, arena.f32(wide, m));
      out.set(arena.f32(wide, m), start);
    }
    return out;
  } finally {
    arena.release(mark);
    await source.close();
  }
}

/** The named tensors of a model as float32 (F32, F16, BF16 or F64 in the file). */
export async function readFloatTensors(model: LoadedModel, names: Iterable<string>): Promise<Map<string, Tensor>> {
  const kernels = await alignmentKernels();
  const out = new Map<string, Tensor>();
  for (const name of names) {
    const info = model.tensors.get(name);
    if (!info) throw new AlignmentError("E_TENSOR_MISSING", `${model.location}: no tensor "${name}"`, { model: model.location, tensor: name });
    kernels.arena.reset();
    out.set(name, { shape: [...info.shape], data: await readFloatTensor(kernels, info) });
  }
  return out;
}

function elementsOf(bytes: Uint8Array, size: number): Elements {
  const { buffer, byteOffset, byteLength } = bytes;
  switch (size) {
    case 1: return bytes;
    case 2: return new Uint16Array(buffer, byteOffset, byteLength / 2);
    case 4: return new Uint32Array(buffer, byteOffset, byteLength / 4);
    case 8: return new Float64Array(buffer, byteOffset, byteLength / 8);
    default: throw new AlignmentError("E_DTYPE_UNSUPPORTED", `elements of ${size} bytes cannot be permuted`, {});
  }
}

/**
 * Writes `model` permuted by `perms` into `out`: every weight file with its original header and
 * layout, permuted tensors gathered element by element in their own dtype, the others copied; the
 * shard index and every other file (config, tokenizer) copied as they are.
 */
export async function writePermutedModel(model: LoadedModel, spec: PermutationSpec, perms: Permutations, out: OutputFolder, signal?: AbortSignal): Promise<void> {
  const checked = checkSpec(spec, new Map([...model.tensors].map(([name, t]) => [name, t.shape])));
  const byFile = new Map<string, TensorInfo[]>();
  for (const info of model.tensors.values()) {
    const file = fileName(model, info);
    (byFile.get(file) ?? byFile.set(file, []).get(file)!).push(info);
  }
  for (const [file, tensors] of byFile) {
    const first = tensors[0]!;
    const source = openSource(first.source);
    try {
      const size = await source.size();
      const head = new Uint8Array(first.offset - first.begin);
      await source.readInto(0, head);
      await out.createFile(file, size, head);
    } finally {
      await source.close();
    }
    for (const info of tensors) {
      signal?.throwIfAborted();
      let bytes = await readTensorBytes(info);
      if (checked.tensors.has(info.name)) {
        const width = elementBytes(info.dtype);
        const elements = elementsOf(bytes, width);
        const moved = gather(elements, info.shape, tensorMaps(checked, info.name, perms), elementsOf(new Uint8Array(bytes.length), width));
        bytes = new Uint8Array(moved.buffer, moved.byteOffset, moved.byteLength);
      }
      await out.write(file, info.offset, bytes);
    }
  }
  for (const file of await model.folder.list()) {
    if (file === INDEX_FILE || !isNotCopiedToOutput(file)) await out.copyFrom(file, model.folder.source(file));
  }
}

/** The weight file a tensor lives in, as a name inside the model folder. */
function fileName(model: LoadedModel, info: TensorInfo): string {
  const source = info.source;
  const path = source.kind === "path" ? source.path : source.name;
  return path.slice(path.replace(/\\/g, "/").lastIndexOf("/") + 1);
}
