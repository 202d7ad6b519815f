// The safetensors validator against hand-built files: every rule of the reference reader, one error
// code per failure, each naming the file (and the tensor where there is one).
import assert from "node:assert/strict";
import { test } from "node:test";
import { headerLength, parseHeader, planFile } from "../src/format/safetensors";
import { SafetensorsError } from "../src/errors";

/** A file from a header object and a data length, built by hand. */
function file(header: unknown, dataBytes: number, rawHeader?: string): Uint8Array {
  const json = new TextEncoder().encode(rawHeader ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

function parse(bytes: Uint8Array, name = "m.safetensors") {
  const n = headerLength(name, bytes.length, bytes.subarray(0, 8));
  return parseHeader(name, bytes.length, bytes.subarray(8, 8 + n));
}


function rejects(bytes: Uint8Array, code: string, tensor?: string) {
  assert.throws(() => parse(bytes), (e: unknown) => {
    assert.ok(e instanceof SafetensorsError, `expected a SafetensorsError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(e.message, /m\.safetensors/);
    assert.equal(e.details.file, "m.safetensors");
    if (tensor) {
      assert.equal(e.details.tensor, tensor);
      assert.ok(e.message.includes(tensor), e.message);
    }
    return true;
  });
}

const ok = { a: { dtype: "F32", shape: [2, 3], data_offsets: [0, 24] }, b: { dtype: "BF16", shape: [4], data_offsets: [24, 32] } };

test("a well-formed file parses, with absolute-relative offsets and metadata", () => {
  const h = parse(file({ __metadata__: { format: "pt" }, ...ok }, 32));
  assert.equal(h.tensors.size, 2);
  assert.deepEqual(h.tensors.get("a")!.shape, [2, 3]);
  assert.equal(h.tensors.get("b")!.begin, 24);
  assert.equal(h.tensors.get("a")!.numel, 6);
  assert.deepEqual(h.metadata, { format: "pt" });
});

test("empty tensors and scalars are valid", () => {
  const h = parse(file({ e: { dtype: "F32", shape: [0, 5], data_offsets: [0, 0] }, s: { dtype: "F16", shape: [], data_offsets: [0, 2] } }, 2));
  assert.equal(h.tensors.get("e")!.numel, 0);
  assert.equal(h.tensors.get("s")!.numel, 1);
});

test("a file shorter than the length field", () => rejects(new Uint8Array(5), "E_HEADER_TOO_SMALL"));

test("a header length past the end of the file", () => {
  const f = file(ok, 32);
  new DataView(f.buffer).setBigUint64(0, BigInt(f.length), true);
  rejects(f, "E_HEADER_LENGTH");
});

test("an absurd header length", () => {
  const f = file(ok, 32);
  new DataView(f.buffer).setBigUint64(0, 2n ** 62n, true);
  rejects(f, "E_HEADER_TOO_LARGE");
});

test("a header that is not JSON, not UTF-8, or not an object", () => {
  rejects(file(null, 0, '{"a": {"dtype": "F32",'), "E_HEADER_JSON");
  rejects(file(null, 0, "[1, 2]"), "E_HEADER_JSON");
  const bad = file(null, 0, '{"a":1}   ');
  bad[10] = 0xff;
  rejects(bad, "E_HEADER_JSON");
});

test("a truncated file: data shorter than the offsets say", () => rejects(file(ok, 20), "E_INCOMPLETE_BUFFER"));

test("trailing bytes after the last tensor", () => rejects(file(ok, 40), "E_INCOMPLETE_BUFFER"));

test("overlapping offsets name the tensor", () => {
  rejects(file({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [2], data_offsets: [4, 12] } }, 12), "E_OFFSETS", "b");
});

test("a gap between tensors names the tensor after it", () => {
  rejects(file({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [2], data_offsets: [12, 20] } }, 20), "E_OFFSETS", "b");
});

test("offsets that end before they begin", () => {
  rejects(file({ a: { dtype: "F32", shape: [0], data_offsets: [8, 0] } }, 8), "E_OFFSETS", "a");
});

test("an unknown dtype", () => rejects(file({ a: { dtype: "F24", shape: [1], data_offsets: [0, 3] } }, 3), "E_UNKNOWN_DTYPE", "a"));

test("shape times dtype size different from the byte span", () => {
  rejects(file({ a: { dtype: "F32", shape: [2, 3], data_offsets: [0, 20] } }, 20), "E_TENSOR_SIZE", "a");
  rejects(file({ a: { dtype: "F4", shape: [3], data_offsets: [0, 2] } }, 2), "E_TENSOR_SIZE", "a"); // 12 bits
});

test("shape or offsets that are not non-negative safe integers", () => {
  rejects(file({ a: { dtype: "F32", shape: [-1], data_offsets: [0, 0] } }, 0), "E_HEADER_SCHEMA", "a");
  rejects(file({ a: { dtype: "F32", shape: [1.5], data_offsets: [0, 6] } }, 6), "E_HEADER_SCHEMA", "a");
  rejects(file(null, 8, '{"a":{"dtype":"U8","shape":[9007199254740993],"data_offsets":[0,8]}}'), "E_UNSAFE_INTEGER", "a");
});

test("extra or missing properties in a tensor entry", () => {
  rejects(file({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4], extra: 1 } }, 4), "E_HEADER_SCHEMA", "a");
  rejects(file({ a: { dtype: "F32", data_offsets: [0, 4] } }, 4), "E_HEADER_SCHEMA", "a");
});

test("non-string metadata values", () => {
  rejects(file({ __metadata__: { format: "pt", step: 3 }, ...ok }, 32), "E_METADATA");
});

test("duplicate tensor names", () => {
  rejects(file(null, 8, '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'), "E_DUPLICATE_TENSOR", "a");
  // The message names the tensor once (it said `tensor "a": tensor "a" appears twice`).
  assert.throws(() => parse(file(null, 8, '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}')),
    (e: unknown) => e instanceof SafetensorsError && e.message === 'm.safetensors: tensor "a": appears twice in the header');
});

test("a shape or offset written with a fraction or an exponent is refused, as safetensors' own reader refuses it (JSON.parse reads 16.0 as 16)", () => {
  for (const [shape, offsets, literal] of [["[16.0]", "[0,64]", "16.0"], ["[16]", "[0,6.4e1]", "6.4e1"], ["[1.6E1]", "[0,64]", "1.6E1"], ["[16]", "[-0.0,64]", "-0.0"]] as const) {
    const bytes = file(null, 64, `{"__metadata__":{"format":"pt"},"ok":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"w":{"dtype":"F32","shape":${shape},"data_offsets":${offsets}}}`);
    rejects(bytes, "E_HEADER_SCHEMA", "w");
    assert.throws(() => parse(bytes), (e: unknown) => e instanceof SafetensorsError && e.message.includes(`must hold integers, found ${literal}`), literal);
  }
  // Integers as such parse, and a metadata string holding a number is no concern of this check.
  const h = parse(file(null, 64, '{"__metadata__":{"lr":"1.5e-4"},"w":{"dtype":"F32","shape":[16],"data_offsets":[0,64]}}'));
  assert.deepEqual(h.tensors.get("w")!.shape, [16]);
});

test("nested keys with the same name are not duplicates", () => {
  const h = parse(file(null, 4, '{"__metadata__":{"a":"x"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'));
  assert.equal(h.tensors.size, 1);
});

test("planned files are 8-byte aligned, space padded, ordered by element size, and parse back", () => {
  const layout = planFile([
    { name: "z16", dtype: "BF16", shape: [3], bytes: 6 },
    { name: "a32", dtype: "F32", shape: [1], bytes: 4 },
    { name: "i64", dtype: "I64", shape: [1], bytes: 8 },
  ], { format: "pt" });
  assert.equal(layout.dataStart % 8, 0);
  const bytes = new Uint8Array(layout.size);
  bytes.set(layout.head);
  const text = new TextDecoder().decode(layout.head.subarray(8));
  assert.match(text, / +$/); // padding is spaces
  const h = parse(bytes);
  assert.deepEqual([...h.tensors.values()].sort((a, b) => a.begin - b.begin).map((t) => t.name), ["i64", "a32", "z16"]);
  for (const t of h.tensors.values()) assert.equal((layout.dataStart + t.begin) % (t.dtype === "BF16" ? 2 : t.dtype === "F32" ? 4 : 8), 0);
  assert.equal(layout.offsets.get("a32"), layout.dataStart + 8);
});
