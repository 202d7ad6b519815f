// Minimal independent safetensors writer/reader for building fixtures and reading outputs.
// Written from shared/reference/safetensors.md sections 4.1-4.6.

import { mkdir, readFile, writeFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from "./float16";

export type RefDtype =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U64"
  | "U32"
  | "U16"
  | "U8"
  | "BOOL";

/** Bytes per element of each supported dtype. */
export const DTYPE_SIZE: Record<RefDtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

export function isRefDtype(d: string): d is RefDtype {
  return Object.prototype.hasOwnProperty.call(DTYPE_SIZE, d);
}

export function isFloatDtype(d: string): d is "F64" | "F32" | "F16" | "BF16" {
  return d === "F64" || d === "F32" || d === "F16" || d === "BF16";
}

/** Number of elements of a shape (1 for a 0-rank scalar). */
export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

function checkInt(v: number, lo: number, hi: number, dtype: string, i: number): number {
  if (!Number.isInteger(v) || v < lo || v > hi) {
    throw new Error(`encodeTensor: element ${i} (${v}) is not a valid ${dtype} value`);
  }
  return v;
}

/**
 * Encode values as little-endian bytes of `dtype`. Float values are rounded to float32 first and
 * then (RNE) to F16/BF16; F64 stores the numbers as given. Integers are range-checked; I64/U64 accept
 * numbers (safe integers) or bigints. BOOL stores 1 for truthy/nonzero, 0 otherwise.
 */
export function encodeTensor(dtype: RefDtype, values: ArrayLike<number> | bigint[]): Uint8Array {
  if (!isRefDtype(dtype)) throw new Error(`encodeTensor: unsupported dtype ${String(dtype)}`);
  const n = values.length;
  const out = new Uint8Array(n * DTYPE_SIZE[dtype]);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < n; i++) {
    const raw = (values as ArrayLike<number | bigint>)[i]!;
    if (dtype === "I64" || dtype === "U64") {
      if (typeof raw !== "bigint" && !Number.isSafeInteger(raw)) {
        throw new Error(`encodeTensor: element ${i} (${raw}) is not a safe integer; pass a bigint`);
      }
      const big = typeof raw === "bigint" ? raw : BigInt(raw);
      if (dtype === "I64") {
        if (big < -(1n << 63n) || big >= 1n << 63n) throw new Error(`encodeTensor: element ${i} out of I64 range`);
        dv.setBigInt64(i * 8, big, true);
      } else {
        if (big < 0n || big >= 1n << 64n) throw new Error(`encodeTensor: element ${i} out of U64 range`);
        dv.setBigUint64(i * 8, big, true);
      }
      continue;
    }
    const v = Number(raw);
    switch (dtype) {
      case "F64":
        dv.setFloat64(i * 8, v, true);
        break;
      case "F32":
        dv.setFloat32(i * 4, v, true);
        break;
      case "F16":
        dv.setUint16(i * 2, f32ToF16Bits(Math.fround(v)), true);
        break;
      case "BF16":
        dv.setUint16(i * 2, f32ToBf16Bits(Math.fround(v)), true);
        break;
      case "I32":
        dv.setInt32(i * 4, checkInt(v, -(2 ** 31), 2 ** 31 - 1, dtype, i), true);
        break;
      case "U32":
        dv.setUint32(i * 4, checkInt(v, 0, 2 ** 32 - 1, dtype, i), true);
        break;
      case "I16":
        dv.setInt16(i * 2, checkInt(v, -32768, 32767, dtype, i), true);
        break;
      case "U16":
        dv.setUint16(i * 2, checkInt(v, 0, 65535, dtype, i), true);
        break;
      case "I8":
        dv.setInt8(i, checkInt(v, -128, 127, dtype, i));
        break;
      case "U8":
        dv.setUint8(i, checkInt(v, 0, 255, dtype, i));
        break;
      case "BOOL":
        dv.setUint8(i, v ? 1 : 0);
        break;
    }
  }
  return out;
}

/** Decode float tensor bytes (F32/F16/BF16 exactly; F64 rounded to float32) into a Float32Array. */
export function decodeFloat(dtype: string, data: Uint8Array): Float32Array {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const size = dtype === "F64" ? 8 : dtype === "F32" ? 4 : dtype === "F16" || dtype === "BF16" ? 2 : 0;
  if (size === 0) throw new Error(`decodeFloat: ${dtype} is not a float dtype`);
  if (data.byteLength % size !== 0) throw new Error(`decodeFloat: ${data.byteLength} bytes is not a whole number of ${dtype}`);
  const n = data.byteLength / size;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    if (dtype === "F64") out[i] = dv.getFloat64(i * 8, true);
    else if (dtype === "F32") out[i] = dv.getFloat32(i * 4, true);
    else if (dtype === "F16") out[i] = f16BitsToF32(dv.getUint16(i * 2, true));
    else out[i] = bf16BitsToF32(dv.getUint16(i * 2, true));
  }
  return out;
}

export interface RefTensorBytes {
  name: string;
  dtype: RefDtype;
  shape: number[];
  data: Uint8Array;
}

const MAX_HEADER = 100_000_000;

/**
 * Build a safetensors file: 8-byte LE header length, JSON header padded with spaces to a multiple
 * of 8, then the tensors' data back to back in the given order (offsets relative to the data start).
 */
export function writeSafetensors(tensors: RefTensorBytes[], metadata?: Record<string, string>): Uint8Array {
  // No prototype: a tensor may be named "__proto__" (legal in safetensors).
  const header: Record<string, unknown> = Object.create(null);
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw new Error(`writeSafetensors: metadata value for ${k} is not a string`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === "__metadata__") throw new Error("writeSafetensors: tensor name __metadata__ is reserved");
    if (seen.has(t.name)) throw new Error(`writeSafetensors: duplicate tensor name ${t.name}`);
    seen.add(t.name);
    if (!isRefDtype(t.dtype)) throw new Error(`writeSafetensors: unsupported dtype ${t.dtype} for ${t.name}`);
    for (const s of t.shape) {
      if (!Number.isSafeInteger(s) || s < 0) throw new Error(`writeSafetensors: bad shape for ${t.name}`);
    }
    const expected = numelOf(t.shape) * DTYPE_SIZE[t.dtype];
    if (t.data.byteLength !== expected) {
      throw new Error(`writeSafetensors: ${t.name} has ${t.data.byteLength} bytes, shape/dtype need ${expected}`);
    }
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + expected] };
    offset += expected;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded > MAX_HEADER) throw new Error("writeSafetensors: header too large");
  if (padded !== json.byteLength) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  let pos = 8 + padded;
  for (const t of tensors) {
    out.set(t.data, pos);
    pos += t.data.byteLength;
  }
  return out;
}

export interface ReadTensor {
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

export interface ReadResult {
  metadata: Record<string, string> | undefined;
  tensors: Map<string, ReadTensor>;
}

/**
 * Parse a safetensors file with basic validation (header bounds, JSON object, known dtypes, safe
 * integer shapes/offsets, contiguous non-overlapping offsets from 0, sizes matching shape x dtype,
 * data covering the rest of the file exactly, string metadata). Tensor `data` is a copy.
 * The returned Map is in file order (sorted by data offset).
 */
export function readSafetensors(bytes: Uint8Array): ReadResult {
  if (bytes.byteLength < 8) throw new Error("readSafetensors: file shorter than 8 bytes");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const nBig = dv.getBigUint64(0, true);
  if (nBig > BigInt(MAX_HEADER)) throw new Error("readSafetensors: header too large");
  const n = Number(nBig);
  if (8 + n > bytes.byteLength) throw new Error("readSafetensors: header length exceeds file size");
  const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n));
  if (!text.startsWith("{")) throw new Error("readSafetensors: header does not start with '{'");
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw new Error(`readSafetensors: header is not valid JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw new Error("readSafetensors: header is not a JSON object");
  }
  // The Rust reader deserialises shapes and offsets as integers: a number written with a fraction or an
  // exponent (16.0, 1.6e1) is refused there, though JSON.parse reads it as 16. Outside strings, a header's
  // only numbers are shapes and offsets (metadata values are strings, checked below).
  const literal = text.replace(/"(?:[^"\\]|\\.)*"/g, '""').match(/-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g)?.find((n) => /[.eE]/.test(n));
  if (literal !== undefined) throw new Error(`readSafetensors: the number ${literal} is not written as an integer`);
  let metadata: Record<string, string> | undefined;
  const entries: Array<{ name: string; dtype: RefDtype; shape: number[]; begin: number; end: number }> = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        throw new Error("readSafetensors: __metadata__ is not an object");
      }
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== "string") throw new Error(`readSafetensors: metadata ${k} is not a string`);
      }
      metadata = { ...(value as Record<string, string>) };
      continue;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new Error(`readSafetensors: entry ${name} is not an object`);
    }
    const e = value as Record<string, unknown>;
    for (const k of Object.keys(e)) {
      if (k !== "dtype" && k !== "shape" && k !== "data_offsets") {
        throw new Error(`readSafetensors: entry ${name} has unexpected key ${k}`);
      }
    }
    if (typeof e.dtype !== "string" || !isRefDtype(e.dtype)) {
      throw new Error(`readSafetensors: entry ${name} has unsupported dtype ${String(e.dtype)}`);
    }
    if (!Array.isArray(e.shape) || !e.shape.every((s) => Number.isSafeInteger(s) && (s as number) >= 0)) {
      throw new Error(`readSafetensors: entry ${name} has an invalid shape`);
    }
    const off = e.data_offsets;
    if (
      !Array.isArray(off) ||
      off.length !== 2 ||
      !off.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)
    ) {
      throw new Error(`readSafetensors: entry ${name} has invalid data_offsets`);
    }
    entries.push({
      name,
      dtype: e.dtype,
      shape: (e.shape as number[]).slice(),
      begin: off[0] as number,
      end: off[1] as number,
    });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  const dataStart = 8 + n;
  let expectBegin = 0;
  const tensors = new Map<string, ReadTensor>();
  for (const e of entries) {
    if (e.begin !== expectBegin || e.end < e.begin) {
      throw new Error(`readSafetensors: invalid offsets for ${e.name} (gap or overlap)`);
    }
    const size = numelOf(e.shape) * DTYPE_SIZE[e.dtype];
    if (!Number.isSafeInteger(size) || size !== e.end - e.begin) {
      throw new Error(`readSafetensors: ${e.name} byte range does not match its shape and dtype`);
    }
    if (dataStart + e.end > bytes.byteLength) throw new Error(`readSafetensors: ${e.name} extends past end of file`);
    tensors.set(e.name, {
      dtype: e.dtype,
      shape: e.shape,
      data: bytes.slice(dataStart + e.begin, dataStart + e.end),
    });
    expectBegin = e.end;
  }
  if (dataStart + expectBegin !== bytes.byteLength) {
    throw new Error("readSafetensors: tensor data does not cover the file exactly");
  }
  return { metadata, tensors };
}

function pad5(i: number): string {
  return String(i).padStart(5, "0");
}

/** The shard file name huggingface_hub uses: model-0000i-of-0000N.safetensors (1-based). */
export function shardFileName(i: number, n: number): string {
  return `model-${pad5(i)}-of-${pad5(n)}.safetensors`;
}

/**
 * Write a model folder. With `shards: 1`, a single model.safetensors and no index. With N > 1,
 * tensors are split in the given order into N contiguous groups of (nearly) equal tensor count
 * (group s gets tensors [floor(s*n/N), floor((s+1)*n/N))), written as model-0000i-of-0000N.safetensors,
 * plus model.safetensors.index.json = {metadata: {total_size}, weight_map}. Each shard carries
 * `metadata` as its __metadata__. If `config` is given it is written as config.json.
 */
export async function writeShardedModel(
  dir: string,
  tensors: RefTensorBytes[],
  opts: { shards: number; metadata?: Record<string, string>; config?: Record<string, unknown> },
): Promise<void> {
  const N = opts.shards;
  if (!Number.isInteger(N) || N < 1) throw new Error(`writeShardedModel: shards must be a positive integer`);
  if (N > 1 && N > tensors.length) {
    throw new Error(`writeShardedModel: ${N} shards for ${tensors.length} tensors would leave a shard empty`);
  }
  await mkdir(dir, { recursive: true });
  if (opts.config !== undefined) {
    await writeFile(join(dir, "config.json"), JSON.stringify(opts.config, null, 2) + "\n");
  }
  if (N === 1) {
    await writeFile(join(dir, "model.safetensors"), writeSafetensors(tensors, opts.metadata));
    return;
  }
  const weightMap: Record<string, string> = Object.create(null);
  let totalSize = 0;
  const n = tensors.length;
  for (let s = 0; s < N; s++) {
    const group = tensors.slice(Math.floor((s * n) / N), Math.floor(((s + 1) * n) / N));
    const file = shardFileName(s + 1, N);
    for (const t of group) {
      weightMap[t.name] = file;
      totalSize += t.data.byteLength;
    }
    await writeFile(join(dir, file), writeSafetensors(group, opts.metadata));
  }
  const index = { metadata: { total_size: totalSize }, weight_map: weightMap };
  await writeFile(join(dir, "model.safetensors.index.json"), JSON.stringify(index, null, 2) + "\n");
}

/**
 * Read a model folder: config.json (or null), and every tensor, resolved through
 * model.safetensors.index.json's weight_map when present, else model.safetensors, else all
 * *.safetensors files in name order. Tensor order: shard by shard, file order within a shard.
 */
export async function readModelDir(
  dir: string,
): Promise<{ config: Record<string, unknown> | null; tensors: Map<string, ReadTensor>; metadata: Record<string, string> | undefined }> {
  const names = await readdir(dir);
  let config: Record<string, unknown> | null = null;
  if (names.includes("config.json")) {
    config = JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
  }
  let files: string[];
  let weightMap: Record<string, string> | undefined;
  if (names.includes("model.safetensors.index.json")) {
    const idx = JSON.parse(await readFile(join(dir, "model.safetensors.index.json"), "utf8")) as {
      weight_map?: Record<string, string>;
    };
    if (idx.weight_map === undefined || typeof idx.weight_map !== "object") {
      throw new Error("readModelDir: index has no weight_map");
    }
    weightMap = idx.weight_map;
    files = [...new Set(Object.values(weightMap))].sort();
  } else if (names.includes("model.safetensors")) {
    files = ["model.safetensors"];
  } else {
    files = names.filter((f) => f.endsWith(".safetensors")).sort();
  }
  const tensors = new Map<string, ReadTensor>();
  let metadata: Record<string, string> | undefined;
  for (const f of files) {
    const r = readSafetensors(new Uint8Array(await readFile(join(dir, f))));
    metadata ??= r.metadata;
    for (const [name, t] of r.tensors) {
      if (tensors.has(name)) throw new Error(`readModelDir: tensor ${name} appears in more than one file`);
      if (weightMap !== undefined && weightMap[name] !== f) {
        throw new Error(`readModelDir: ${name} found in ${f} but weight_map says ${String(weightMap[name])}`);
      }
      tensors.set(name, t);
    }
  }
  if (weightMap !== undefined) {
    for (const name of Object.keys(weightMap)) {
      if (!tensors.has(name)) throw new Error(`readModelDir: ${name} listed in weight_map but not found`);
    }
  }
  return { config, tensors, metadata };
}
