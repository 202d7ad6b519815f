/**
 * @file The safetensors format: validating a header exactly as strictly as the reference reader
 * (huggingface/safetensors, tensor.rs), and planning the header of a file we write.
 *
 * Layout: 8 bytes little-endian u64 N, N bytes of UTF-8 JSON, then the data buffer. Tensor offsets are
 * relative to the data buffer, begin inclusive, end exclusive, and must tile it without gaps, overlaps
 * or trailing bytes.
 */
import { describeValue, SafetensorsError, type ErrorCode } from "../errors";
import { dtypeInfo } from "./dtypes";
import { isJsonObject, parseBoundedJson } from "./json";

/** The reference reader's limit on the JSON header. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorEntry {
  name: string;
  dtype: string;
  shape: number[];
  numel: number;
  /** Byte offsets relative to the data buffer. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Absolute file offset of the data buffer (8 + N). */
  dataStart: number;
  tensors: Map<string, TensorEntry>;
  metadata: Record<string, string> | undefined;
}

/** Reads the header length field; validates rules 1-3 against the file size. Returns N. */
export function headerLength(file: string, fileSize: number, first8: Uint8Array): number {
  if (fileSize < 8 || first8.length < 8) {
    throw fail("E_HEADER_TOO_SMALL", file, `file is ${fileSize} bytes, too small to hold the 8-byte header length`);
  }
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES) || 8n + n > BigInt(fileSize)) {
    // A length that cannot be right usually means the file is something else under a .safetensors name.
    const impostor = recogniseImpostor(first8);
    if (impostor) throw fail(impostor.code, file, impostor.what);
  }
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw fail("E_HEADER_TOO_LARGE", file, `declared header length ${n} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  if (8n + n > BigInt(fileSize)) {
    throw fail("E_HEADER_LENGTH", file, `declared header length ${n} bytes runs past the end of the ${fileSize}-byte file`);
  }
  return Number(n);
}

/**
 * Files that end up named .safetensors without being one: a git-lfs pointer (a clone without `git lfs
 * pull`), a web page saved instead of the file it linked to, a PyTorch checkpoint (zip or pickle).
 * Their first bytes read as an absurd header length, which alone would say nothing useful.
 */
function recogniseImpostor(first8: Uint8Array): { code: ErrorCode; what: string } | undefined {
  const ascii = String.fromCharCode(...first8);
  if (ascii === "version ") {
    return { code: "E_LFS_POINTER", what: "is a git-lfs pointer, not the weights: run `git lfs pull` in the model's repository (or download the file itself)" };
  }
  if (/^(\xef\xbb\xbf)?\s*<[!?a-zA-Z]/.test(ascii)) {
    return { code: "E_NOT_SAFETENSORS", what: "is an HTML page, not a safetensors file (was a web page saved instead of the file it links to?)" };
  }
  if (ascii.startsWith("PK\x03\x04") || (first8[0] === 0x80 && first8[1]! >= 2 && first8[1]! <= 5)) {
    return { code: "E_NOT_SAFETENSORS", what: "is a PyTorch checkpoint (zip or pickle) under a .safetensors name; weightsoup reads safetensors only (convert it first)" };
  }
  return undefined;
}

/**
 * Validates and decodes a header. `json` is the N header bytes; `fileSize` the whole file's size.
 * Every rule of the reference reader is checked; each failure has its own code and names the tensor.
 * One parse, linear in the header's size: `tensors` is in data order.
 */
export function parseHeader(file: string, fileSize: number, json: Uint8Array): SafetensorsHeader {
  const dataStart = 8 + json.length;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(json);
  } catch (cause) {
    throw fail("E_HEADER_JSON", file, "header is not valid UTF-8", {}, cause);
  }
  if (!text.trimStart().startsWith("{")) throw fail("E_HEADER_JSON", file, "header is not a JSON object");
  const parsed = parseBoundedJson(text);
  if ("problem" in parsed) throw fail("E_HEADER_JSON", file, `header ${parsed.problem}`);
  const root = parsed.value;
  if (!isJsonObject(root)) throw fail("E_HEADER_JSON", file, "header is not a JSON object");
  const { duplicate, fraction } = scanHeaderText(text);
  if (duplicate !== undefined) {
    throw fail("E_DUPLICATE_TENSOR", file, "appears twice in the header", { tensor: duplicate });
  }
  if (fraction !== undefined) {
    throw fail("E_HEADER_SCHEMA", file, `shape and data_offsets must hold integers, found ${fraction.literal} (the format's readers refuse a number written with a fraction or an exponent)`, { tensor: fraction.key });
  }

  let metadata: Record<string, string> | undefined;
  const tensors: TensorEntry[] = [];
  // for-in, not Object.entries: no pair array per tensor (a header may list a million). JSON.parse
  // makes every key an own property, "__proto__" included.
  for (const name in root) {
    const value = root[name];
    if (name === "__metadata__") metadata = checkMetadata(file, value);
    else tensors.push(checkEntry(file, name, value));
  }

  // Rule 5: sorted by offsets, the tensors must tile the buffer from 0 without gaps or overlaps.
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous: TensorEntry | undefined;
  const byName = new Map<string, TensorEntry>();
  for (const t of tensors) {
    if (t.begin !== cursor) {
      const what = t.begin > cursor
        ? `leaves a gap of ${t.begin - cursor} bytes before it`
        : `overlaps ${previous ? `tensor "${previous.name}"` : "the start of the buffer"}`;
      throw fail("E_OFFSETS", file, `data_offsets [${t.begin}, ${t.end}] ${what} (expected it to begin at ${cursor})`, { tensor: t.name });
    }
    cursor = t.end;
    previous = t;
    byName.set(t.name, t);
  }
  // Rule 7: the data buffer ends exactly at the end of the file.
  if (dataStart + cursor !== fileSize) {
    throw fail("E_INCOMPLETE_BUFFER", file,
      `tensor data covers ${cursor} bytes but the file holds ${fileSize - dataStart} bytes after the header`);
  }
  return { dataStart, tensors: byName, metadata };
}

function checkMetadata(file: string, value: unknown): Record<string, string> {
  if (!isJsonObject(value)) throw fail("E_METADATA", file, "__metadata__ must be a map of strings", { key: "__metadata__" });
  for (const k in value) {
    if (typeof value[k] !== "string") {
      throw fail("E_METADATA", file, `__metadata__ value for ${describeValue(k)} is ${describeValue(value[k])}, not a string`, { key: k });
    }
  }
  return value as Record<string, string>;
}

function checkEntry(file: string, name: string, value: unknown): TensorEntry {
  const details = { tensor: name };
  if (!isJsonObject(value)) throw fail("E_HEADER_SCHEMA", file, "entry is not an object with dtype, shape and data_offsets", details);
  for (const key in value) {
    if (key !== "dtype" && key !== "shape" && key !== "data_offsets") {
      throw fail("E_HEADER_SCHEMA", file, `unexpected property ${describeValue(key)} (allowed: dtype, shape, data_offsets)`, details);
    }
  }
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== "string") throw fail("E_HEADER_SCHEMA", file, "dtype is missing or not a string", details);
  const info = dtypeInfo(dtype);
  if (!info) throw fail("E_UNKNOWN_DTYPE", file, `unknown dtype ${describeValue(dtype)}`, { ...details, dtype });
  if (!Array.isArray(shape)) throw fail("E_HEADER_SCHEMA", file, "shape is missing or not an array", details);
  if (!Array.isArray(offsets) || offsets.length !== 2) {
    throw fail("E_HEADER_SCHEMA", file, "data_offsets must be an array [begin, end]", details);
  }
  for (const v of [...shape, ...offsets]) {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      throw fail("E_HEADER_SCHEMA", file, `shape and data_offsets must hold non-negative integers, found ${describeValue(v)}`, details);
    }
    if (!Number.isSafeInteger(v)) {
      throw fail("E_UNSAFE_INTEGER", file, `${v} is beyond 2^53 and cannot be represented exactly`, details);
    }
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) throw fail("E_OFFSETS", file, `data_offsets [${begin}, ${end}] end before they begin`, details);
  // Rule 6 with checked arithmetic: BigInt cannot overflow.
  let numel = 1n;
  for (const d of shape as number[]) numel *= BigInt(d);
  const bits = numel * BigInt(info.bits);
  if (bits % 8n !== 0n) {
    throw fail("E_TENSOR_SIZE", file, `${numel} elements of ${dtype} (${info.bits} bits) do not fill whole bytes`, details);
  }
  const bytes = bits / 8n;
  if (bytes !== BigInt(end - begin)) {
    throw fail("E_TENSOR_SIZE", file,
      `shape [${(shape as number[]).join(", ")}] of ${dtype} needs ${bytes} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
      details);
  }
  return { name, dtype, shape: shape as number[], numel: Number(numel), begin, end };
}

/**
 * What JSON.parse hides in a header's text: the first top-level key written twice (JSON.parse keeps the
 * last silently; the format forbids duplicates), and the first number inside a tensor's entry written
 * with a fraction or an exponent (`[16.0]` parses as 16, but the format's readers, safetensors' serde
 * reading integers, refuse it), with its tensor. One scan, skipping over strings; `__metadata__` holds
 * strings only, checked after parsing.
 */
function scanHeaderText(text: string): { duplicate?: string; fraction?: { key: string; literal: string } } {
  const seen = new Set<string>();
  let depth = 0;
  let expectKey = false;
  let key = "";
  let fraction: { key: string; literal: string } | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c /* \ */ ? 2 : 1;
      if (depth === 1 && expectKey) {
        const raw = text.slice(i + 1, j);
        key = raw.includes("\\") ? (JSON.parse(text.slice(i, j + 1)) as string) : raw;
        if (seen.has(key)) return { duplicate: key };
        seen.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      depth++;
      if (depth === 1) expectKey = true;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    } else if (c === 0x2c /* , */ && depth === 1) {
      expectKey = true;
    } else if (depth > 1 && fraction === undefined && key !== "__metadata__" && (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39))) {
      let j = i + 1, whole = true;
      for (let d = text.charCodeAt(j); (d >= 0x30 && d <= 0x39) || d === 0x2e || d === 0x65 || d === 0x45 || d === 0x2b || d === 0x2d; d = text.charCodeAt(++j)) {
        if (d === 0x2e /* . */ || d === 0x65 /* e */ || d === 0x45 /* E */) whole = false;
      }
      if (!whole) fraction = { key, literal: text.slice(i, j) };
      i = j - 1;
    }
  }
  return fraction ? { fraction } : {};
}

function fail(code: ErrorCode, file: string, what: string, details: Record<string, unknown> = {}, cause?: unknown): SafetensorsError {
  const tensor = details.tensor ? `tensor "${String(details.tensor)}": ` : "";
  return new SafetensorsError(code, `${file}: ${tensor}${what}`, { file, ...details }, cause === undefined ? undefined : { cause });
}

// ---------------------------------------------------------------------------------------------------
// Writing

export interface PlannedTensorLayout {
  name: string;
  dtype: string;
  shape: number[];
  bytes: number;
}

export interface FileLayout {
  /** The 8-byte length plus the space-padded JSON header: the first `dataStart` bytes of the file. */
  head: Uint8Array;
  dataStart: number;
  /** Absolute file offset of each tensor's data. */
  offsets: Map<string, number>;
  /** Total file size. */
  size: number;
}

/**
 * Plans a file: tensors ordered by element size (largest first) then name, as the reference writer
 * does, so every tensor starts naturally aligned; the JSON header is padded with spaces to a multiple of
 * 8 bytes, so the data buffer is 8-byte aligned too. `__metadata__` comes first.
 */
export function planFile(tensors: PlannedTensorLayout[], metadata: Record<string, string>): FileLayout {
  const bits = (t: PlannedTensorLayout) => dtypeInfo(t.dtype)!.bits;
  const ordered = [...tensors].sort((a, b) => bits(b) - bits(a) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  // Written entry by entry, not as an object: a tensor may be named "__proto__", which an object
  // literal would swallow.
  const parts = [`{${JSON.stringify("__metadata__")}:${JSON.stringify(metadata)}`];
  let cursor = 0;
  const relative = new Map<string, number>();
  for (const t of ordered) {
    parts.push(`,${JSON.stringify(t.name)}:${JSON.stringify({ dtype: t.dtype, shape: t.shape, data_offsets: [cursor, cursor + t.bytes] })}`);
    relative.set(t.name, cursor);
    cursor += t.bytes;
  }
  parts.push("}");
  const json = new TextEncoder().encode(parts.join(""));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > MAX_HEADER_BYTES) throw new SafetensorsError("E_HEADER_TOO_LARGE", `header of ${padded} bytes exceeds the format's limit`);
  const head = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(json, 8);
  const dataStart = 8 + padded;
  const offsets = new Map([...relative].map(([name, off]) => [name, dataStart + off]));
  return { head, dataStart, offsets, size: dataStart + cursor };
}
