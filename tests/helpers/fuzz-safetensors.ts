// Mutations of valid safetensors files: edits of the JSON header (names, dtypes, shapes, offsets,
// metadata, hostile names, deep nesting, huge numbers, thousands of empty tensors), edits of the bytes
// (truncation, extension, the length field, stray bytes) and edits of a sharded model's index.
// Tensors are named, not indexed, so one edit applies consistently to every file that holds the tensor
// (renaming a tensor in every model is a valid input that must merge).
import fc from "fast-check";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { readSafetensors, writeSafetensors } from "../reference/safetensors";
import { TENSOR_NAMES } from "./fuzz-fixtures";
import { deepJsonArb, emitJson, getPair, hostileJsonArb, hostileNumberArb, hostileStringArb, isPairs, PROTOTYPE_NAMES, setPair, toJson, type Json } from "./fuzz-json";

type Pairs = { pairs: [string, Json][] };

export type HeaderOp =
  | { op: "rename"; tensor: string; to: string }
  | { op: "field"; tensor: string; field: string; value: Json | undefined }
  | { op: "entry"; tensor: string; value: Json }
  | { op: "drop"; tensor: string }
  | { op: "duplicate"; tensor: string }
  /** Keeps the byte size: [r, c] -> [c, r], [r * c], [1, r, c] or [] (a scalar, which only fits 1 element). */
  | { op: "reshape"; tensor: string; how: "transpose" | "flatten" | "unsqueeze" | "scalar" }
  /** Another dtype with the last dimension scaled so the byte size stays the same, where it divides. */
  | { op: "retype"; tensor: string; dtype: string }
  | { op: "shift"; tensor: string; delta: number }
  /** The same shape or offsets written with a fraction or an exponent (16 as 16.0, 1.6e1): JSON.parse reads them as the integers. */
  | { op: "literal"; tensor: string; field: "shape" | "data_offsets"; form: "fraction" | "exponent" }
  | { op: "metadata"; value: Json | undefined }
  /** `count` zero-element tensors at the end of the buffer (legal; a header of many must stay cheap). */
  | { op: "empties"; count: number; dtype: string }
  | { op: "whitespace"; where: "before" | "after"; text: string; times: number };

export type ByteOp =
  | { op: "truncate"; keep: number }
  | { op: "append"; count: number; byte: number }
  | { op: "lengthDelta"; delta: number }
  | { op: "lengthSet"; value: string }
  | { op: "poke"; at: number; byte: number };

export type IndexOp =
  | { op: "map"; tensor: string; to: Json }
  | { op: "unmap"; tensor: string }
  | { op: "weightMap"; value: Json }
  | { op: "replace"; text: string };

export interface FileMutations {
  /** The model whose files are edited, or all three. */
  target: "a" | "base" | "b" | "all";
  header: HeaderOp[];
  bytes: ByteOp[];
  /** Edits of b's model.safetensors.index.json (b is sharded), applied when b is a target. */
  index: IndexOp[];
  /**
   * A model.safetensors the index does not name, beside b's shards (after the edits): a copy of the
   * first shard (other tensors than the index's), or every shard's tensors in one file (the same ones).
   */
  stray?: "none" | "shard" | "whole";
}

/** Bits per element of the dtypes the fuzzer retypes to (independent of src/format/dtypes.ts). */
const BITS: Readonly<Record<string, number>> = { F64: 64, I64: 64, F32: 32, I32: 32, U32: 32, F16: 16, BF16: 16, I16: 16, U8: 8, I8: 8, BOOL: 8, F8_E4M3: 8, F4: 4 };

const tensorArb = fc.constantFrom(...TENSOR_NAMES);

/** Names a tensor may legally have in safetensors but that trip naive code (or collide with others). */
export const tensorNameArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...PROTOTYPE_NAMES),
  fc.constantFrom("__metadata__", "", "model.layers.0.mlp.up_proj.weight", "lm_head.weight", "model.layers.7.mlp.up_proj.weight",
    "model.layers.-1.mlp.up_proj.weight", "model.layers.0.self_attn.q_proj.qweight", "lm_head.weight.absmax", "model.layers.1e3.mlp.up_proj.weight", "model.embed_tokens.weight.", "модель.🦙.weight", "a\u0000b", "x".repeat(5_000)),
  hostileStringArb,
);

const dtypeValueArb: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom("F32", "F16", "BF16", "F64", "I64", "I32", "BOOL", "U8", "F8_E4M3", "F4", "C64", "f32", "float32", "", ...PROTOTYPE_NAMES),
  hostileJsonArb,
);

const shapeValueArb: fc.Arbitrary<Json> = fc.oneof(
  fc.array(hostileNumberArb, { maxLength: 4 }),
  fc.tuple(hostileNumberArb, deepJsonArb),
  hostileJsonArb,
);

const offsetsValueArb: fc.Arbitrary<Json> = fc.oneof(
  fc.tuple(hostileNumberArb, hostileNumberArb),
  fc.array(hostileNumberArb, { maxLength: 3 }),
  hostileJsonArb,
);

const fieldEditArb: fc.Arbitrary<{ field: string; value: Json | undefined }> = fc.oneof(
  fc.record({ field: fc.constant("dtype"), value: fc.option(dtypeValueArb, { nil: undefined }) }),
  fc.record({ field: fc.constant("shape"), value: fc.option(shapeValueArb, { nil: undefined }) }),
  fc.record({ field: fc.constant("data_offsets"), value: fc.option(offsetsValueArb, { nil: undefined }) }),
  fc.record({ field: fc.oneof(fc.constantFrom("extra", "DTYPE", ...PROTOTYPE_NAMES), hostileStringArb), value: fc.option(hostileJsonArb, { nil: undefined }) }),
);

const metadataArb: fc.Arbitrary<Json | undefined> = fc.oneof(
  fc.constant(undefined),
  fc.constant({ pairs: [["format", "pt"]] } as Json),
  fc.array(fc.tuple(fc.oneof(fc.constantFrom(...PROTOTYPE_NAMES, "format"), hostileStringArb), fc.oneof(hostileStringArb, hostileJsonArb)), { maxLength: 3 })
    .map((pairs): Json => ({ pairs })),
  hostileJsonArb,
);

export const headerOpArb: fc.Arbitrary<HeaderOp> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ op: fc.constant("rename" as const), tensor: tensorArb, to: tensorNameArb }) },
  { weight: 4, arbitrary: fc.record({ tensor: tensorArb, edit: fieldEditArb }).map(({ tensor, edit }): HeaderOp => ({ op: "field", tensor, ...edit })) },
  fc.record({ op: fc.constant("entry" as const), tensor: tensorArb, value: hostileJsonArb }),
  fc.record({ op: fc.constant("drop" as const), tensor: tensorArb }),
  fc.record({ op: fc.constant("duplicate" as const), tensor: tensorArb }),
  fc.record({ op: fc.constant("reshape" as const), tensor: tensorArb, how: fc.constantFrom("transpose" as const, "flatten" as const, "unsqueeze" as const, "scalar" as const) }),
  fc.record({ op: fc.constant("retype" as const), tensor: tensorArb, dtype: fc.constantFrom(...Object.keys(BITS)) }),
  fc.record({ op: fc.constant("shift" as const), tensor: tensorArb, delta: fc.constantFrom(-8, -4, -1, 1, 4, 8, 2 ** 40, 2 ** 53) }),
  fc.record({ op: fc.constant("literal" as const), tensor: tensorArb, field: fc.constantFrom("shape" as const, "data_offsets" as const), form: fc.constantFrom("fraction" as const, "exponent" as const) }),
  { weight: 2, arbitrary: fc.record({ op: fc.constant("metadata" as const), value: metadataArb }) },
  fc.record({ op: fc.constant("empties" as const), count: fc.constantFrom(1, 100, 2_000, 10_000), dtype: fc.constantFrom("F32", "BF16", "I64", "BOOL", "F8_E4M3") }),
  fc.record({ op: fc.constant("whitespace" as const), where: fc.constantFrom("after" as const, "before" as const), text: fc.constantFrom(" ", "\n\t\r ", "\u00a0", "\ufeff", "\u0000", "x"), times: fc.constantFrom(1, 7, 100_000) }),
);

export const byteOpArb: fc.Arbitrary<ByteOp> = fc.oneof(
  fc.record({ op: fc.constant("truncate" as const), keep: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({ op: fc.constant("append" as const), count: fc.constantFrom(1, 3, 8, 4096), byte: fc.constantFrom(0, 0x20, 0xff) }),
  fc.record({ op: fc.constant("lengthDelta" as const), delta: fc.constantFrom(-9, -1, 1, 7, 8, 4096) }),
  fc.record({ op: fc.constant("lengthSet" as const), value: fc.constantFrom("0", "1", "2", "100000001", "9007199254740993", "18446744073709551615") }),
  fc.record({ op: fc.constant("poke" as const), at: fc.double({ min: 0, max: 1, noNaN: true }), byte: fc.constantFrom(0x00, 0x22, 0x2c, 0x5c, 0x7b, 0x7d, 0x80, 0xc0, 0xff) }),
);

const shardNameArb: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model-00003-of-00002.safetensors",
    "../a/model.safetensors", "model.safetensors.index.json", "config.json", "", ".", ...PROTOTYPE_NAMES),
  hostileJsonArb,
);

export const indexOpArb: fc.Arbitrary<IndexOp> = fc.oneof(
  fc.record({ op: fc.constant("map" as const), tensor: fc.oneof(tensorArb, tensorNameArb), to: shardNameArb }),
  fc.record({ op: fc.constant("unmap" as const), tensor: tensorArb }),
  fc.record({ op: fc.constant("weightMap" as const), value: hostileJsonArb }),
  fc.record({ op: fc.constant("replace" as const), text: fc.constantFrom("", "{", "null", "[]", "5", '{"weight_map": {}}', '{"weight_map": {"__proto__": "model-00001-of-00002.safetensors"}}') }),
);

/** Mostly none of `arb`: byte and index damage stops a case at the first check, header edits go deeper. */
function sometimes<T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T[]> {
  return fc.oneof({ weight: 3, arbitrary: fc.constant<T[]>([]) }, { weight: 1, arbitrary: fc.array(arb, { minLength: 1, maxLength: 2 }) });
}

export const fileMutationsArb: fc.Arbitrary<FileMutations> = fc.record({
  target: fc.constantFrom("a" as const, "all" as const, "base" as const, "b" as const),
  header: fc.array(headerOpArb, { minLength: 0, maxLength: 3 }),
  bytes: sometimes(byteOpArb),
  index: sometimes(indexOpArb),
  stray: fc.constantFrom("none" as const, "none" as const, "none" as const, "shard" as const, "whole" as const),
});

// ---------------------------------------------------------------------------------------------------
// Applying mutations (in the runner, on a case's copy of the fixtures)

/** What header edits did that an index must follow to stay consistent: renames and added tensors. */
interface IndexSync {
  renamed: [string, string][];
  added: string[];
}

/** Edits every .safetensors file of a model folder, and its index if it has one. */
export async function mutateModelFolder(dir: string, m: FileMutations): Promise<void> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".safetensors")).sort();
  const sync: IndexSync = { renamed: [], added: [] };
  for (const [i, file] of files.entries()) {
    const path = join(dir, file);
    const bytes = new Uint8Array(await readFile(path));
    // Added empty tensors go to the first shard only: the index names one file per tensor.
    const ops = i === 0 ? m.header : m.header.filter((op) => op.op !== "empties");
    await writeFile(path, mutateBytes(mutateFile(bytes, ops, sync), m.bytes));
  }
  const indexPath = join(dir, "model.safetensors.index.json");
  if (files.length > 1) await writeFile(indexPath, mutateIndex(await readFile(indexPath, "utf8"), files[0]!, sync, m.index));
  if (files.length > 1 && m.stray !== undefined && m.stray !== "none") await writeFile(join(dir, "model.safetensors"), await strayWeights(dir, files, m.stray));
}

/** The stray model.safetensors: the first shard's bytes, or the shards' tensors in one file (the first shard's bytes when they do not all parse). */
async function strayWeights(dir: string, shards: string[], kind: "shard" | "whole"): Promise<Uint8Array> {
  const first = new Uint8Array(await readFile(join(dir, shards[0]!)));
  if (kind === "shard") return first;
  try {
    const all: { name: string; dtype: string; shape: number[]; data: Uint8Array }[] = [];
    for (const shard of shards) {
      for (const [name, t] of readSafetensors(new Uint8Array(await readFile(join(dir, shard)))).tensors) all.push({ name, dtype: t.dtype, shape: t.shape, data: t.data });
    }
    return writeSafetensors(all as Parameters<typeof writeSafetensors>[0]);
  } catch {
    return first;
  }
}

/** Applies header edits to a valid file; returns the rewritten file (same data buffer, grown for empties). */
export function mutateFile(bytes: Uint8Array, ops: HeaderOp[], sync: IndexSync): Uint8Array {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  const header = toJson(JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)))) as Pairs;
  const data = bytes.subarray(8 + n);
  let before = "", after = "";
  for (const op of ops) {
    const entry = "tensor" in op ? header.pairs.find(([k]) => k === op.tensor) : undefined;
    if ("tensor" in op && !entry) continue; // the tensor lives in another shard of this model
    switch (op.op) {
      case "rename":
        sync.renamed.push([entry![0], op.to]);
        entry![0] = op.to;
        break;
      case "field":
        if (isPairs(entry![1])) setPair(entry![1], op.field, op.value);
        break;
      case "entry":
        entry![1] = op.value;
        break;
      case "drop":
        header.pairs = header.pairs.filter((p) => p !== entry);
        break;
      case "duplicate":
        header.pairs.splice(header.pairs.indexOf(entry!) + 1, 0, [entry![0], entry![1]]);
        break;
      case "reshape":
        editShape(entry![1], (shape) => reshape(shape, op.how));
        break;
      case "retype":
        retype(entry![1], op.dtype);
        break;
      case "shift":
        if (isPairs(entry![1])) {
          const offsets = getPair(entry![1], "data_offsets");
          if (Array.isArray(offsets)) setPair(entry![1], "data_offsets", offsets.map((o) => (typeof o === "number" ? o + op.delta : o)));
        }
        break;
      case "literal":
        if (isPairs(entry![1])) {
          const values = getPair(entry![1], op.field);
          const written = (n: number): Json => ({ raw: op.form === "fraction" ? `${n}.0` : `${n}e0` });
          if (Array.isArray(values)) setPair(entry![1], op.field, values.map((n) => (typeof n === "number" && Number.isSafeInteger(n) ? written(n) : n)));
        }
        break;
      case "metadata":
        setPair(header, "__metadata__", op.value);
        break;
      case "empties":
        for (let i = 0; i < op.count; i++) {
          const name = `zz_empty_${i}`;
          header.pairs.push([name, { pairs: [["dtype", op.dtype], ["shape", [0]], ["data_offsets", [data.length, data.length]]] }]);
          sync.added.push(name);
        }
        break;
      case "whitespace":
        if (op.where === "before") before += op.text.repeat(op.times);
        else after += op.text.repeat(op.times);
        break;
    }
  }
  const json = new TextEncoder().encode(before + emitJson(header) + after);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function editShape(entry: Json, edit: (shape: number[]) => number[] | undefined): void {
  if (!isPairs(entry)) return;
  const shape = getPair(entry, "shape");
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === "number")) return;
  const next = edit(shape as number[]);
  if (next) setPair(entry, "shape", next);
}

function reshape(shape: number[], how: "transpose" | "flatten" | "unsqueeze" | "scalar"): number[] {
  switch (how) {
    case "transpose": return [...shape].reverse();
    case "flatten": return [shape.reduce((a, b) => a * b, 1)];
    case "unsqueeze": return [1, ...shape];
    case "scalar": return [];
  }
}

function retype(entry: Json, dtype: string): void {
  if (!isPairs(entry)) return;
  const from = getPair(entry, "dtype");
  const fromBits = typeof from === "string" ? BITS[from] : undefined;
  if (fromBits === undefined) return;
  editShape(entry, (shape) => {
    if (shape.length === 0) return undefined;
    const last = (shape[shape.length - 1]! * fromBits) / BITS[dtype]!;
    if (!Number.isInteger(last)) return undefined;
    setPair(entry, "dtype", dtype);
    return [...shape.slice(0, -1), last];
  });
}

export function mutateBytes(bytes: Uint8Array, ops: ByteOp[]): Uint8Array {
  let out = bytes;
  for (const op of ops) {
    switch (op.op) {
      case "truncate":
        out = out.slice(0, Math.floor(op.keep * out.length));
        break;
      case "append": {
        const grown = new Uint8Array(out.length + op.count).fill(op.byte);
        grown.set(out);
        out = grown;
        break;
      }
      case "lengthDelta":
      case "lengthSet": {
        if (out.length < 8) break;
        const view = new DataView(out.buffer, out.byteOffset, 8);
        const value = op.op === "lengthSet" ? BigInt(op.value) : view.getBigUint64(0, true) + BigInt(op.delta);
        view.setBigUint64(0, BigInt.asUintN(64, value), true);
        break;
      }
      case "poke": {
        if (out.length <= 8) break;
        const n = Number(new DataView(out.buffer, out.byteOffset, 8).getBigUint64(0, true));
        const span = Math.max(1, Math.min(n, out.length - 8));
        out[8 + Math.min(span - 1, Math.floor(op.at * span))] = op.byte;
        break;
      }
    }
  }
  return out;
}

/** Follows renames and added tensors (so consistent edits stay valid), then applies the index edits. */
export function mutateIndex(text: string, firstShard: string, sync: IndexSync, ops: IndexOp[]): string {
  const index = toJson(JSON.parse(text)) as Pairs;
  const weightMap = getPair(index, "weight_map") as Pairs;
  for (const [from, to] of sync.renamed) {
    const pair = weightMap.pairs.find(([k]) => k === from);
    if (pair) pair[0] = to;
  }
  for (const name of sync.added) weightMap.pairs.push([name, firstShard]);
  let replaced: string | undefined;
  for (const op of ops) {
    switch (op.op) {
      case "map": setPair(weightMap, op.tensor, op.to); break;
      case "unmap": setPair(weightMap, op.tensor, undefined); break;
      case "weightMap": setPair(index, "weight_map", op.value); break;
      case "replace": replaced = op.text; break;
    }
  }
  return replaced ?? emitJson(index);
}
