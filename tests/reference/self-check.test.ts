// Self-checks of the test reference against hand-worked cases. Expected numbers are worked out in
// the comments, never by calling the reference a second time.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import {
  bf16BitsToF32,
  bitsToF32,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToBits,
  f32ToF16Bits,
  roundToDtype,
} from "./float16";
import {
  decodeFloat,
  encodeTensor,
  readModelDir,
  readSafetensors,
  writeSafetensors,
  writeShardedModel,
  type RefDtype,
} from "./safetensors";
import { dareKeepThreshold, dareStreamKey, dareU, fnv1a32, mix32 } from "./rng";
import {
  dareKeepMask,
  evaluateSetting,
  isEmbeddingName,
  isPreLayerName,
  layerNameOf,
  magnitudeKeepMask,
  magnitudeKeepMaskBySort,
  referenceMerge,
  refModelFromRaw,
  type RefModel,
  type RefTensor,
} from "./merge";
import { arceeFusionMask, breadcrumbsKeepMask, dellaKeepMask, dellaProbability, modelStockT, nearswapFactor, rowKl, sceSelectMask } from "./methods";

const fr = Math.fround;

// ---------------------------------------------------------------------------------------------
// helpers

function model(config: Record<string, unknown> | null, tensors: Array<[string, number[] | Float32Array, number[]?, string?]>): RefModel {
  const m = new Map<string, RefTensor>();
  for (const [name, values, shape, dtype] of tensors) {
    m.set(name, { dtype: dtype ?? "F32", shape: shape ?? [values.length], values: Float32Array.from(values) });
  }
  return { config, tensors: m };
}

function vals(out: ReturnType<typeof referenceMerge>, name: string): number[] {
  const t = out.tensors.get(name);
  assert.ok(t, `missing output ${name}`);
  assert.ok(t.values, `output ${name} has no values`);
  return Array.from(t.values);
}

function close(actual: number[], expected: number[], tol = 1e-6): void {
  assert.equal(actual.length, expected.length, `length ${actual.length} != ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol, `element ${i}: ${actual[i]} != ${expected[i]} (${JSON.stringify(actual)})`);
  }
}

// ---------------------------------------------------------------------------------------------
// float16.ts

test("f16: known encodings", () => {
  assert.equal(f32ToF16Bits(1.0), 0x3c00);
  assert.equal(f32ToF16Bits(-2.0), 0xc000);
  assert.equal(f32ToF16Bits(0), 0x0000);
  assert.equal(f32ToF16Bits(-0), 0x8000);
  // largest finite: (2 - 2^-10) * 2^15 = 65504
  assert.equal(f32ToF16Bits(65504), 0x7bff);
  // 65520 is exactly halfway between 65504 (0x7BFF, odd mantissa) and 65536 (= Inf): ties to even -> Inf
  assert.equal(f32ToF16Bits(65520), 0x7c00);
  assert.equal(f32ToF16Bits(-65520), 0xfc00);
  // 65519 is below the halfway point -> 65504
  assert.equal(f32ToF16Bits(65519), 0x7bff);
  assert.equal(f32ToF16Bits(1e6), 0x7c00);
  assert.equal(f32ToF16Bits(Infinity), 0x7c00);
  assert.equal(f32ToF16Bits(-Infinity), 0xfc00);
  assert.equal(f32ToF16Bits(NaN), 0x7e00);
  // a float32 NaN with the sign bit set keeps the sign
  assert.equal(f32ToF16Bits(bitsToF32(0xffc00000)), 0xfe00);
  // smallest subnormal 2^-24 = 0x0001
  assert.equal(f32ToF16Bits(2 ** -24), 0x0001);
  // 2^-25 is halfway between 0 and 2^-24: ties to even -> 0
  assert.equal(f32ToF16Bits(2 ** -25), 0x0000);
  assert.equal(f32ToF16Bits(-(2 ** -25)), 0x8000);
  // 3*2^-26 = 0.75 * 2^-24: above half -> 0x0001
  assert.equal(f32ToF16Bits(3 * 2 ** -26), 0x0001);
  // just above 2^-25 -> 0x0001
  assert.equal(f32ToF16Bits(2 ** -25 * (1 + 2 ** -23)), 0x0001);
  // 3*2^-25 = 1.5 * 2^-24: halfway between 1 and 2 (units of 2^-24): even -> 2
  assert.equal(f32ToF16Bits(3 * 2 ** -25), 0x0002);
  // 5*2^-25 = 2.5 units: halfway between 2 and 3 -> 2
  assert.equal(f32ToF16Bits(5 * 2 ** -25), 0x0002);
  // 2^-30 and float32 subnormals -> 0
  assert.equal(f32ToF16Bits(2 ** -30), 0x0000);
  assert.equal(f32ToF16Bits(2 ** -140), 0x0000);
  // largest subnormal 1023 * 2^-24
  assert.equal(f32ToF16Bits(1023 * 2 ** -24), 0x03ff);
  // 1023.5 * 2^-24 halfway between 0x03FF (odd) and 0x0400 (smallest normal): -> 0x0400
  assert.equal(f32ToF16Bits(1023.5 * 2 ** -24), 0x0400);
  assert.equal(f32ToF16Bits(2 ** -14), 0x0400);
  // 1 + 2^-11 is halfway between 0x3C00 and 0x3C01 -> 0x3C00 (even)
  assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00);
  // 1 + 3*2^-11 is halfway between 0x3C01 and 0x3C02 -> 0x3C02 (even)
  assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02);
  // 1 + 2^-11 + 2^-20 is above halfway -> 0x3C01
  assert.equal(f32ToF16Bits(1 + 2 ** -11 + 2 ** -20), 0x3c01);
  // 0.1f = 0x3DCCCCCD: exponent -4 -> e16 = 11; mantissa 0x4CCCCD >>> 13 = 0x266, remainder 0xCCD < 0x1000
  assert.equal(f32ToF16Bits(fr(0.1)), (11 << 10) | 0x266);
});

test("f16: known decodings", () => {
  assert.equal(f16BitsToF32(0x3c00), 1);
  assert.equal(f16BitsToF32(0xc000), -2);
  assert.equal(f16BitsToF32(0x7bff), 65504);
  assert.equal(f16BitsToF32(0x0001), 2 ** -24);
  assert.equal(f16BitsToF32(0x03ff), 1023 * 2 ** -24);
  assert.equal(f16BitsToF32(0x0400), 2 ** -14);
  assert.equal(f16BitsToF32(0x3555), 0.333251953125); // (1024+341)/1024 * 2^-2
  assert.equal(f16BitsToF32(0x7c00), Infinity);
  assert.equal(f16BitsToF32(0xfc00), -Infinity);
  assert.ok(Number.isNaN(f16BitsToF32(0x7e00)));
  assert.ok(Number.isNaN(f16BitsToF32(0x7c01)));
  assert.ok(Object.is(f16BitsToF32(0x8000), -0));
  // 0.1 -> 0x2E66 -> 1638 * 2^-14
  assert.equal(roundToDtype(0.1, "F16"), 1638 * 2 ** -14);
});

test("f16: every non-NaN bit pattern round-trips; NaNs stay NaN", () => {
  for (let b = 0; b < 0x10000; b++) {
    const v = f16BitsToF32(b);
    const isNaN = (b & 0x7c00) === 0x7c00 && (b & 0x3ff) !== 0;
    if (isNaN) {
      assert.ok(Number.isNaN(v));
      assert.equal(f32ToF16Bits(v) & 0x7fff, 0x7e00);
    } else {
      assert.equal(f32ToF16Bits(v), b, `pattern 0x${b.toString(16)}`);
    }
  }
});

test("f16: midpoints between consecutive finite values round to even", () => {
  // For consecutive positive finite halves a < b, (a+b)/2 is exactly representable in float32;
  // it must go to whichever of a, b has an even mantissa; a hair above goes to b.
  for (let a = 0; a < 0x7bff; a++) {
    const lo = f16BitsToF32(a);
    const hi = f16BitsToF32(a + 1);
    const mid = (lo + hi) / 2;
    assert.equal(fr(mid), mid);
    const expected = (a & 1) === 0 ? a : a + 1;
    assert.equal(f32ToF16Bits(mid), expected, `midpoint after 0x${a.toString(16)}`);
    const above = bitsToF32(f32ToBits(mid) + 1);
    assert.equal(f32ToF16Bits(above), a + 1);
    const below = bitsToF32(f32ToBits(mid) - 1);
    assert.equal(f32ToF16Bits(below), a);
  }
});

test("bf16: known values and rounding", () => {
  assert.equal(f32ToBf16Bits(1.0), 0x3f80);
  assert.equal(bf16BitsToF32(0x3f80), 1);
  assert.equal(bf16BitsToF32(0x4049), 3.140625); // 0x40490000
  assert.equal(bf16BitsToF32(0xc000), -2);
  // 1 + 2^-8 (0x3F808000) is halfway between 0x3F80 and 0x3F81 -> 0x3F80 (even)
  assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80);
  // 1 + 3*2^-8 (0x3F818000) is halfway between 0x3F81 and 0x3F82 -> 0x3F82
  assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82);
  // just above halfway -> up
  assert.equal(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -23), 0x3f81);
  // just below halfway -> down
  assert.equal(f32ToBf16Bits(1 + 2 ** -8 - 2 ** -23), 0x3f80);
  // largest float32 (0x7F7FFFFF) rounds up into Inf
  assert.equal(f32ToBf16Bits(bitsToF32(0x7f7fffff)), 0x7f80);
  assert.equal(f32ToBf16Bits(bitsToF32(0xff7fffff)), 0xff80);
  assert.equal(f32ToBf16Bits(Infinity), 0x7f80);
  assert.equal(f32ToBf16Bits(-Infinity), 0xff80);
  assert.equal(f32ToBf16Bits(NaN), 0x7fc0);
  assert.equal(f32ToBf16Bits(bitsToF32(0xff800001)), 0xffc0);
  assert.equal(f32ToBf16Bits(-0), 0x8000);
  // 0.1f = 0x3DCCCCCD -> upper 0x3DCC, dropped 0xCCCD > 0x8000 -> 0x3DCD = (1 + 77/128) / 16
  assert.equal(f32ToBf16Bits(fr(0.1)), 0x3dcd);
  assert.equal(roundToDtype(0.1, "BF16"), 0.10009765625);
  // bf16 subnormal: 2^-133 = 0x0001 pattern in bf16 (float32 0x00010000)
  assert.equal(f32ToBf16Bits(2 ** -133), 0x0001);
  for (let b = 0; b < 0x10000; b++) {
    const isNaN = (b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0;
    if (!isNaN) assert.equal(f32ToBf16Bits(bf16BitsToF32(b)), b);
  }
});

test("roundToDtype F32 is fround", () => {
  assert.equal(roundToDtype(0.1, "F32"), fr(0.1));
  assert.equal(roundToDtype(1e39, "F32"), Infinity);
});

// ---------------------------------------------------------------------------------------------
// safetensors.ts

test("safetensors: encode/decode, write/read round trip and layout", () => {
  const f32 = encodeTensor("F32", [1, -2.5, 3]);
  assert.deepEqual(Array.from(f32), [0, 0, 0x80, 0x3f, 0, 0, 0x20, 0xc0, 0, 0, 0x40, 0x40]);
  const f16 = encodeTensor("F16", [1, 65520]);
  assert.deepEqual(Array.from(f16), [0x00, 0x3c, 0x00, 0x7c]);
  const bf16 = encodeTensor("BF16", [1, -2]);
  assert.deepEqual(Array.from(bf16), [0x80, 0x3f, 0x00, 0xc0]);
  const i64 = encodeTensor("I64", [1n, -1n]);
  assert.deepEqual(Array.from(i64), [1, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255]);
  assert.deepEqual(Array.from(encodeTensor("BOOL", [1, 0, 1])), [1, 0, 1]);
  assert.throws(() => encodeTensor("I8", [200]));

  const tensors: Array<{ name: string; dtype: RefDtype; shape: number[]; data: Uint8Array }> = [
    { name: "b", dtype: "F16", shape: [2], data: f16 },
    { name: "a", dtype: "F32", shape: [3, 1], data: f32 },
    { name: "scalar", dtype: "BF16", shape: [], data: encodeTensor("BF16", [0.5]) },
    { name: "empty", dtype: "F32", shape: [0, 4], data: new Uint8Array(0) },
    { name: "ids", dtype: "I64", shape: [2], data: i64 },
  ];
  const file = writeSafetensors(tensors, { format: "pt" });
  const n = Number(new DataView(file.buffer).getBigUint64(0, true));
  assert.equal(n % 8, 0);
  const headerText = new TextDecoder().decode(file.subarray(8, 8 + n));
  const header = JSON.parse(headerText);
  assert.deepEqual(header.a.data_offsets, [4, 16]); // laid out after b's 4 bytes
  assert.deepEqual(header.b.data_offsets, [0, 4]);
  assert.equal(file.byteLength, 8 + n + 4 + 12 + 2 + 0 + 16);

  const r = readSafetensors(file);
  assert.deepEqual(r.metadata, { format: "pt" });
  assert.deepEqual([...r.tensors.keys()], ["b", "a", "scalar", "empty", "ids"]);
  assert.deepEqual(Array.from(decodeFloat("F16", r.tensors.get("b")!.data)), [1, Infinity]);
  assert.deepEqual(Array.from(decodeFloat("F32", r.tensors.get("a")!.data)), [1, -2.5, 3]);
  assert.deepEqual(r.tensors.get("a")!.shape, [3, 1]);
  assert.deepEqual(Array.from(decodeFloat("BF16", r.tensors.get("scalar")!.data)), [0.5]);
  assert.deepEqual(r.tensors.get("scalar")!.shape, []);
  assert.deepEqual(r.tensors.get("empty")!.shape, [0, 4]);
  assert.deepEqual(Array.from(r.tensors.get("ids")!.data), Array.from(i64));
  assert.deepEqual(Array.from(decodeFloat("F64", encodeTensor("F64", [0.1]))), [fr(0.1)]);
});

test("safetensors: reader rejects malformed files", () => {
  const good = writeSafetensors([{ name: "x", dtype: "F32", shape: [2], data: encodeTensor("F32", [1, 2]) }]);
  assert.throws(() => readSafetensors(good.subarray(0, 5)), /shorter than 8/);
  assert.throws(() => readSafetensors(good.subarray(0, good.byteLength - 1)));
  const trailing = new Uint8Array(good.byteLength + 4);
  trailing.set(good);
  assert.throws(() => readSafetensors(trailing), /cover/);
  const mk = (header: string, dataLen: number): Uint8Array => {
    const h = new TextEncoder().encode(header);
    const out = new Uint8Array(8 + h.byteLength + dataLen);
    new DataView(out.buffer).setBigUint64(0, BigInt(h.byteLength), true);
    out.set(h, 8);
    return out;
  };
  // gap before the first tensor
  assert.throws(() => readSafetensors(mk('{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', 8)), /offsets/);
  // overlap
  assert.throws(() =>
    readSafetensors(
      mk('{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', 8),
    ),
  );
  // size does not match shape
  assert.throws(() => readSafetensors(mk('{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', 8)), /match/);
  // unknown dtype, non-string metadata, header length past the end
  assert.throws(() => readSafetensors(mk('{"x":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}', 1)), /dtype/);
  assert.throws(() => readSafetensors(mk('{"__metadata__":{"a":1}}', 0)), /metadata/);
  const huge = new Uint8Array(16);
  new DataView(huge.buffer).setBigUint64(0, 1000n, true);
  assert.throws(() => readSafetensors(huge));
  // the good file still reads
  assert.equal(readSafetensors(good).tensors.size, 1);
});

test("safetensors: sharded model folder round trip", async () => {
  const dir = await mkdtemp(join(tmpdir(), "ws-ref-"));
  try {
    const tensors = ["t0", "t1", "t2", "t3", "t4"].map((name, i) => ({
      name,
      dtype: "F32" as const,
      shape: [i + 1],
      data: encodeTensor("F32", Array.from({ length: i + 1 }, (_, k) => k + i)),
    }));
    await writeShardedModel(join(dir, "m3"), tensors, { shards: 3, metadata: { format: "pt" }, config: { num_hidden_layers: 0 } });
    const files = (await readdir(join(dir, "m3"))).sort();
    assert.deepEqual(files, [
      "config.json",
      "model-00001-of-00003.safetensors",
      "model-00002-of-00003.safetensors",
      "model-00003-of-00003.safetensors",
      "model.safetensors.index.json",
    ]);
    const index = JSON.parse(await readFile(join(dir, "m3", "model.safetensors.index.json"), "utf8"));
    // 5 tensors in 3 groups: [floor(0*5/3), floor(5/3)) = [0,1), [1,3), [3,5)
    assert.deepEqual(index.weight_map, {
      t0: "model-00001-of-00003.safetensors",
      t1: "model-00002-of-00003.safetensors",
      t2: "model-00002-of-00003.safetensors",
      t3: "model-00003-of-00003.safetensors",
      t4: "model-00003-of-00003.safetensors",
    });
    assert.equal(index.metadata.total_size, (1 + 2 + 3 + 4 + 5) * 4);
    const back = await readModelDir(join(dir, "m3"));
    assert.deepEqual(back.config, { num_hidden_layers: 0 });
    assert.deepEqual(Array.from(decodeFloat("F32", back.tensors.get("t4")!.data)), [4, 5, 6, 7, 8]);

    await writeShardedModel(join(dir, "m1"), tensors, { shards: 1 });
    assert.deepEqual(await readdir(join(dir, "m1")), ["model.safetensors"]);
    assert.equal((await readModelDir(join(dir, "m1"))).tensors.size, 5);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------
// rng.ts

// An independent BigInt formulation of SPEC section 6's mix, to cross-check the imul version.
function mixBig(x: bigint): bigint {
  const M = 0xffffffffn;
  x &= M;
  x ^= x >> 16n;
  x = (x * 0x21f0aaadn) & M;
  x ^= x >> 15n;
  x = (x * 0x735a2d97n) & M;
  x ^= x >> 15n;
  return x;
}

test("rng: fnv1a known values, mix32 against a BigInt formulation", () => {
  assert.equal(fnv1a32(new Uint8Array(0)), 0x811c9dc5);
  assert.equal(fnv1a32(new TextEncoder().encode("a")), 0xe40c292c);
  assert.equal(fnv1a32(new TextEncoder().encode("foobar")), 0xbf9cf968);
  assert.equal(mix32(0), 0);
  for (const x of [1, 2, 0x12345678, 0x80000000, 0xffffffff, 0x6a09e667, 0xdeadbeef]) {
    assert.equal(mix32(x), Number(mixBig(BigInt(x))), `mix32(${x})`);
  }
  // stream key and u(j) spelled out with BigInt
  const seed = 7;
  const name = "model.layers.3.mlp.up_proj.weight";
  const k0 = mixBig(BigInt(seed) ^ 0x6a09e667n);
  let h = 0x811c9dc5n;
  for (const byte of new TextEncoder().encode(name)) h = ((h ^ BigInt(byte)) * 0x01000193n) & 0xffffffffn;
  const k1 = mixBig(h ^ k0);
  const key = mixBig(2n ^ k1); // i = 1 -> i + 1 = 2
  assert.equal(dareStreamKey(seed, name, 1), Number(key));
  for (const j of [0, 1, 12345, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 5, 3 * 2 ** 32 + 17]) {
    const lo = BigInt(j) & 0xffffffffn;
    const hi = BigInt(j) >> 32n;
    const u = mixBig(mixBig(lo ^ key) ^ ((hi + 0x9e3779b9n) & 0xffffffffn));
    assert.equal(dareU(Number(key), j), Number(u), `u(${j})`);
  }
});

test("rng: DARE threshold and keep fraction", () => {
  assert.equal(dareKeepThreshold(0.5), 2 ** 31);
  assert.equal(dareKeepThreshold(0.25), 2 ** 30);
  assert.equal(dareKeepThreshold(1), 2 ** 32 - 1);
  assert.equal(dareKeepThreshold(0), 0);
  for (const density of [0.1, 0.3, 0.5, 0.9]) {
    const keep = dareKeepMask(100_000, density, 0, "model.layers.0.self_attn.q_proj.weight", 0);
    let kept = 0;
    for (const k of keep) kept += k;
    assert.ok(Math.abs(kept / 100_000 - density) < 0.01, `density ${density}: kept fraction ${kept / 100_000}`);
  }
  // different model positions / names / seeds give different streams
  const a = dareStreamKey(0, "x", 0);
  assert.notEqual(a, dareStreamKey(0, "x", 1));
  assert.notEqual(a, dareStreamKey(0, "y", 0));
  assert.notEqual(a, dareStreamKey(1, "x", 0));
});

// ---------------------------------------------------------------------------------------------
// merge.ts: names and parameters

test("names: layer index, templates, roles", () => {
  assert.deepEqual(layerNameOf("model.layers.12.mlp.up_proj.weight"), { index: 12, prefix: "model.layers.", suffix: ".mlp.up_proj.weight" });
  assert.deepEqual(layerNameOf("h.3.attn.c_attn.weight"), { index: 3, prefix: "h.", suffix: ".attn.c_attn.weight" });
  assert.deepEqual(layerNameOf("model.layers.0.mlp.experts.7.w1"), { index: 0, prefix: "model.layers.", suffix: ".mlp.experts.7.w1" });
  assert.equal(layerNameOf("model.norm.weight"), null);
  assert.ok(isPreLayerName("model.embed_tokens.weight"));
  assert.ok(isPreLayerName("transformer.wte.weight"));
  assert.ok(isPreLayerName("transformer.wpe.weight"));
  assert.ok(!isPreLayerName("lm_head.weight"));
  assert.ok(!isPreLayerName("model.norm.weight"));
  assert.ok(isEmbeddingName("model.embed_tokens.weight"));
  assert.ok(isEmbeddingName("lm_head.weight"));
  assert.ok(isEmbeddingName("output.weight"));
  assert.ok(!isEmbeddingName("transformer.wpe.weight"));
  assert.ok(!isEmbeddingName("model.layers.0.output.weight"));
  assert.ok(!isPreLayerName("embed_out.weight"), "GPT-NeoX's output head comes after the layers");
  assert.ok(isPreLayerName("gpt_neox.embed_in.weight"));
  assert.ok(isPreLayerName("transformer.rotary_pos_emb.inv_freq"));
  assert.ok(isEmbeddingName("backbone.embeddings.weight"), "Mamba's embedding");
  assert.ok(!isEmbeddingName("embeddings.position_embeddings.weight"));
  assert.ok(!isEmbeddingName("transformer.attn_output.weight"));
});

test("parameters: gradients, stepped lists, filter lists", () => {
  // [0, 0.5, 1] at t = 0, 0.5, 1 -> 0, 0.5, 1
  assert.equal(evaluateSetting([0, 0.5, 1], "x", 0), 0);
  assert.equal(evaluateSetting([0, 0.5, 1], "x", 0.5), 0.5);
  assert.equal(evaluateSetting([0, 0.5, 1], "x", 1), 1);
  // [0, 0.5, 1] at t = 0.25: s = 0.5, i0 = 0, f = 0.5 -> 0.5*0 + 0.5*0.5 = 0.25
  assert.equal(evaluateSetting([0, 0.5, 1], "x", 0.25), 0.25);
  // [1, 3] at t = 0.75: s = 0.75 -> 0.25*1 + 0.75*3 = 2.5
  assert.equal(evaluateSetting([1, 3], "x", 0.75), 2.5);
  // [0.2, 0.8, 0.4, 1] at t = 2/3: s = 2 -> exactly v[2]
  assert.equal(evaluateSetting([0.2, 0.8, 0.4, 1], "x", 2 / 3), 0.4);
  // non-numeric: step v[floor(t*(n-1))]: t = 0.9, n = 3 -> floor(1.8) = 1
  assert.equal(evaluateSetting(["a", "b", "c"], "x", 0.9), "b");
  // booleans are Python ints to mergekit: [true, false] at t = 0.99 -> 0.01*1 + 0.99*0 (true, as a number)
  assert.ok(Math.abs((evaluateSetting([true, false], "x", 0.99) as number) - 0.01) < 1e-15);
  assert.equal(evaluateSetting([false, true], "x", 0), 0);
  assert.equal(evaluateSetting(["a", true], "x", 0.99), "a");
  // filter list: the first match wins
  const f = [{ filter: "self_attn", value: 0.25 }, { filter: "attn", value: 0.5 }, { value: 1 }];
  assert.equal(evaluateSetting(f, "model.layers.0.self_attn.q_proj.weight", 0), 0.25);
  assert.equal(evaluateSetting(f, "model.layers.0.cross_attn.q_proj.weight", 0), 0.5);
  assert.equal(evaluateSetting(f, "model.layers.0.mlp.up_proj.weight", 0), 1);
  assert.equal(evaluateSetting([{ filter: "mlp", value: 2 }], "model.norm.weight", 0), undefined);
  assert.equal(evaluateSetting([{ filter: "*", value: [0, 1] }], "anything", 0.5), 0.5);
  assert.equal(evaluateSetting({ filter: "norm", value: 3 }, "model.norm.weight", 0), 3);
});

// ---------------------------------------------------------------------------------------------
// merge.ts: methods

test("linear: normalize on/off with a negative weight", () => {
  const models = new Map([
    ["a", model(null, [["w", [1, 2]]])],
    ["b", model(null, [["w", [3, -4]]])],
    ["c", model(null, [["w", [0.5, 0.5]]])],
  ]);
  const recipe = (normalize?: boolean): unknown => ({
    merge_method: "linear",
    models: [
      { model: "a", parameters: { weight: 1 } },
      { model: "b", parameters: { weight: 2 } },
      { model: "c", parameters: { weight: -1 } },
    ],
    ...(normalize === undefined ? {} : { parameters: { normalize } }),
  });
  // acc = 1*[1,2] + 2*[3,-4] - 1*[0.5,0.5] = [6.5, -6.5]; W = 1 + 2 - 1 = 2
  close(vals(referenceMerge(recipe(false), models), "w"), [6.5, -6.5], 0);
  close(vals(referenceMerge(recipe(true), models), "w"), [3.25, -3.25], 0);
  // normalize defaults to true
  close(vals(referenceMerge(recipe(), models), "w"), [3.25, -3.25], 0);
  // the declared base model becomes an input too and needs its own weight
  assert.throws(
    () => referenceMerge({ merge_method: "linear", base_model: "c", models: [{ model: "a", parameters: { weight: 1 } }] }, models),
    /weight is required for model c/,
  );
  // with a top-level weight fallback it is averaged in: (1*[1,2] + 1*[0.5,0.5]) / 2
  const out = referenceMerge(
    { merge_method: "linear", base_model: "c", models: [{ model: "a" }], parameters: { weight: 1 } },
    models,
  );
  close(vals(out, "w"), [0.75, 1.25], 0);
});

test("linear: float32 rounding after every operation", () => {
  // w = fround(0.1) = 13421773 * 2^-27; x = 3: w*x = 40265319 * 2^-27 needs 26 bits -> rounds
  // (RNE on 2 dropped bits: 40265319 = 0b...100111, drop 0b11 -> round up to 40265320) = 5033165 * 2^-24.
  // Normalize: 5033165*2^-24 / (13421773*2^-27) = 40265320/13421773 = 3.0000000745...
  // in float32 (ulp at 3 is 2^-22 = 2.38e-7): 3 + 0.745e-7 rounds to 3.
  const models = new Map([["a", model(null, [["w", [3]]])]]);
  const o1 = referenceMerge({ merge_method: "linear", models: [{ model: "a", parameters: { weight: 0.1 } }], parameters: { normalize: false } }, models);
  assert.equal(vals(o1, "w")[0], 5033165 * 2 ** -24);
  const o2 = referenceMerge({ merge_method: "linear", models: [{ model: "a", parameters: { weight: 0.1 } }] }, models);
  assert.equal(vals(o2, "w")[0], 3);
});

test("ties: 6-element hand-worked example (trim, elect, disjoint mean)", () => {
  // base = 1 everywhere; x_i = base + tau_i
  const tau1 = [1.0, -2.0, 0.5, 3.0, -0.25, 0.0];
  const tau2 = [-1.5, 1.0, 0.75, -4.0, 0.5, 2.0];
  const tau3 = [0.5, 0.5, -1.0, 1.0, -0.5, -0.25];
  const plus1 = (a: number[]): number[] => a.map((v) => v + 1);
  const models = new Map([
    ["base", model(null, [["w", [1, 1, 1, 1, 1, 1]]])],
    ["m1", model(null, [["w", plus1(tau1)]])],
    ["m2", model(null, [["w", plus1(tau2)]])],
    ["m3", model(null, [["w", plus1(tau3)]])],
  ]);
  const recipe: Record<string, unknown> = {
    merge_method: "ties",
    base_model: "base",
    models: [
      { model: "m1", parameters: { weight: 1, density: 0.5 } },
      { model: "m2", parameters: { weight: 1, density: 0.5 } },
      { model: "m3", parameters: { weight: 1, density: 0.5 } },
    ],
  };
  // k = floor(0.5*6) = 3 per task vector.
  // |tau1| = [1,2,0.5,3,0.25,0]      -> keep idx 3,1,0   -> m1 = [ 1,  -2,  0,  3, 0, 0]
  // |tau2| = [1.5,1,0.75,4,0.5,2]    -> keep idx 3,5,0   -> m2 = [-1.5, 0,  0, -4, 0, 2]
  // |tau3| = [0.5,0.5,1,1,0.5,0.25]  -> keep 2,3, then the 0.5 tie at the lowest index 0
  //                                                       -> m3 = [0.5,  0, -1,  1, 0, 0]
  // S = [0, -2, -1, 0, 0, 2] -> signs [+, -, -, +, +, +]
  // j0: agree m1=1, m3=0.5 -> 1.5/2 = 0.75;  j1: m1 -> -2/1;  j2: m3 -> -1/1;
  // j3: m1=3, m3=1 -> 4/2 = 2;  j4: nobody (zeros never agree) -> 0/1 = 0;  j5: m2 -> 2/1
  // out = base + [0.75, -2, -1, 2, 0, 2]
  close(vals(referenceMerge(recipe, models), "w"), [1.75, -1, 0, 3, 1, 3], 0);
  // normalize: false -> out = base + mixed = base + [1.5, -2, -1, 4, 0, 2]
  recipe.parameters = { normalize: false };
  close(vals(referenceMerge(recipe, models), "w"), [2.5, -1, 0, 5, 1, 3], 0);
  // lambda 0.5 with normalize false -> base + 0.5*[1.5,-2,-1,4,0,2]
  recipe.parameters = { normalize: false, lambda: 0.5 };
  close(vals(referenceMerge(recipe, models), "w"), [1.75, 0, 0.5, 3, 1, 2], 0);
});

test("ties: weights are applied before the sign election", () => {
  // base 0; tau1 = [1], tau2 = [-1.5]; weights 1 and 0.5: p = [1], [-0.75]: S = 0.25 -> +
  // agree: p1 only -> mixed 1, div 1 -> out 1. With weight2 = 1: S = -0.5 -> -, out = -1.5.
  const models = new Map([
    ["base", model(null, [["w", [0]]])],
    ["m1", model(null, [["w", [1]]])],
    ["m2", model(null, [["w", [-1.5]]])],
  ]);
  const r = (w2: number): unknown => ({
    merge_method: "ties",
    base_model: "base",
    models: [
      { model: "m1", parameters: { weight: 1 } },
      { model: "m2", parameters: { weight: w2 } },
    ],
  });
  close(vals(referenceMerge(r(0.5), models), "w"), [1], 0);
  close(vals(referenceMerge(r(1), models), "w"), [-1.5], 0);
});

test("dare_ties vs ties at density 1: consensus with and without normalize", () => {
  // base 0; tau1 = [1, 2], tau2 = [3, -1]; weights 1: S = [4, 1] -> both +.
  // j0: both agree -> mixed 4, div 2; j1: only tau1 agrees -> mixed 2, div 1.
  // ties (normalize true): [2, 2]; dare_ties (normalize false, density 1 = no drop, no rescale): [4, 2].
  const models = new Map([
    ["base", model(null, [["w", [0, 0]]])],
    ["m1", model(null, [["w", [1, 2]]])],
    ["m2", model(null, [["w", [3, -1]]])],
  ]);
  const r = (method: string): unknown => ({
    merge_method: method,
    base_model: "base",
    models: [
      { model: "m1", parameters: { weight: 1 } },
      { model: "m2", parameters: { weight: 1 } },
    ],
  });
  close(vals(referenceMerge(r("ties"), models), "w"), [2, 2], 0);
  close(vals(referenceMerge(r("dare_ties"), models), "w"), [4, 2], 0);
  // dare_linear at density 1: plain sum [4, 1]
  close(vals(referenceMerge(r("dare_linear"), models), "w"), [4, 1], 0);
});

test("non-finite task vectors: a dropped or outvoted NaN or infinity is NaN at its position (mergekit multiplies its masks in)", () => {
  // base 0. ties at density 1 (no trim): tau1 = [NaN, 1, +inf, 2], tau2 = [-2, 1, -inf, -1], weights 1.
  // j0: S = NaN -> - elected; tau1 not agreeing: NaN * 0 = NaN -> NaN (a mean of the agreeing -2 would be -2).
  // j1: both +, mean 1. j2: S = inf - inf = NaN -> -; +inf outvoted: inf * 0 = NaN -> NaN.
  // j3: S = 1 -> +; tau2 outvoted (-1 * 0 = -0), mean of tau1 = 2.
  const models = new Map([
    ["base", model(null, [["w", [0, 0, 0, 0]]])],
    ["m1", model(null, [["w", [NaN, 1, Infinity, 2]]])],
    ["m2", model(null, [["w", [-2, 1, -Infinity, -1]]])],
  ]);
  const recipe = (method: string, density: number, extra: Record<string, unknown> = {}): unknown => ({
    merge_method: method,
    base_model: "base",
    models: [
      { model: "m1", parameters: { weight: 1, density, ...extra } },
      { model: "m2", parameters: { weight: 1, density: 1, ...extra } },
    ],
  });
  const ties = vals(referenceMerge(recipe("ties", 1), models), "w");
  assert.ok(Number.isNaN(ties[0]) && Number.isNaN(ties[2]), `ties: ${ties}`);
  close([ties[1]!, ties[3]!], [1, 2], 0);
  // breadcrumbs_ties, m1 at density 0.5 and gamma 0.25 (keep 2, top 1): |tau1| ranks NaN, inf, 2, 1, so
  // NaN is the dropped outlier and inf, 2 are kept; 1 is dropped (1 * 0 = 0). j0: NaN * 0 = NaN.
  // j1: tau1 dropped, tau2 = 1 alone: 1. j2: inf kept, -inf: S NaN, - elected, inf outvoted -> NaN.
  // j3: tau1 = 2 kept: S = 1 -> +, mean 2 (breadcrumbs_ties does not normalize: 2).
  const crumbs = vals(referenceMerge(recipe("breadcrumbs_ties", 0.5, { gamma: 0.25 }), models), "w");
  assert.ok(Number.isNaN(crumbs[0]) && Number.isNaN(crumbs[2]), `breadcrumbs_ties: ${crumbs}`);
  close([crumbs[1]!, crumbs[3]!], [1, 2], 0);
});

test("ties: fast top-k equals the literal sort definition (ties, NaN)", () => {
  let s = 1;
  const rnd = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  for (let trial = 0; trial < 200; trial++) {
    const n = 1 + Math.floor(rnd() * 60);
    const tau = new Float32Array(n);
    for (let j = 0; j < n; j++) {
      const r = rnd();
      tau[j] = r < 0.05 ? NaN : Math.round((rnd() - 0.5) * 8) / 2; // many equal magnitudes, both signs
    }
    const k = Math.floor(rnd() * (n + 1));
    assert.deepEqual(Array.from(magnitudeKeepMask(tau, k)), Array.from(magnitudeKeepMaskBySort(tau, k)), `trial ${trial}`);
  }
  // hand case: |tau| = [2, 1, 2, 3, 1], k = 3 -> 3 (idx 3), then 2s at idx 0 and 2
  assert.deepEqual(Array.from(magnitudeKeepMask(Float32Array.from([2, -1, -2, 3, 1]), 3)), [1, 0, 1, 1, 0]);
  // k = 4 -> plus the lower-index 1 (idx 1)
  assert.deepEqual(Array.from(magnitudeKeepMask(Float32Array.from([2, -1, -2, 3, 1]), 4)), [1, 1, 1, 1, 0]);
});

test("task_arithmetic: negative weight, lambda, no sparsification", () => {
  // base [1,2]; tau1 = [1,2], tau2 = [-1,-2]; weights 1, -0.5 -> p = [1,2] + [0.5,1] = [1.5, 3]
  // normalize false (default), lambda 2 -> [3, 6]; out = [4, 8]. density is ignored by task_arithmetic.
  const models = new Map([
    ["base", model(null, [["w", [1, 2]]])],
    ["x1", model(null, [["w", [2, 4]]])],
    ["x2", model(null, [["w", [0, 0]]])],
  ]);
  const recipe = {
    merge_method: "task_arithmetic",
    base_model: "base",
    models: [
      { model: "x1", parameters: { weight: 1, density: 0.1 } },
      { model: "x2", parameters: { weight: -0.5 } },
    ],
    parameters: { lambda: 2 },
  };
  close(vals(referenceMerge(recipe, models), "w"), [4, 8], 0);
  // normalize true: divide by w1 + w2 = 0.5 -> [3, 6] * 2 (lambda) = [6, 12]... order: /div then *lambda
  // mixed = [1.5, 3] / 0.5 = [3, 6]; * 2 = [6, 12]; out = [7, 14]
  close(vals(referenceMerge({ ...recipe, parameters: { lambda: 2, normalize: true } }, models), "w"), [7, 14], 0);
  // the base alone: out = b
  close(vals(referenceMerge({ merge_method: "task_arithmetic", base_model: "base", models: [{ model: "base" }] }, models), "w"), [1, 2], 0);
});

test("dare_linear: kept set from the generator, L1 rescale", () => {
  // base 0, x = 1 everywhere (n = 1000), weight 1, density 0.5, rescale default true:
  // kept elements j (u(j) < 2^31) get r = fround(1000 / kept), the rest 0.
  const n = 1000;
  const name = "model.layers.0.mlp.down_proj.weight";
  const models = new Map([
    ["base", model({ num_hidden_layers: 1 }, [[name, new Float32Array(n)]])],
    ["x", model({ num_hidden_layers: 1 }, [[name, new Float32Array(n).fill(1)]])],
  ]);
  const recipe = { merge_method: "dare_linear", base_model: "base", models: [{ model: "x", parameters: { weight: 1, density: 0.5 } }] };
  const seed = 42;
  const out = vals(referenceMerge(recipe, models, { seed }), name);
  const key = dareStreamKey(seed, name, 0);
  let kept = 0;
  for (let j = 0; j < n; j++) if (dareU(key, j) < 2 ** 31) kept++;
  const r = fr(n / kept);
  for (let j = 0; j < n; j++) assert.equal(out[j], dareU(key, j) < 2 ** 31 ? r : 0);
  assert.ok(kept > 400 && kept < 600);
  // rescale off: kept elements stay 1
  const out2 = vals(referenceMerge({ ...recipe, parameters: { rescale: false } }, models, { seed }), name);
  for (let j = 0; j < n; j++) assert.equal(out2[j], dareU(key, j) < 2 ** 31 ? 1 : 0);
});

test("slerp: orthogonal unit vectors, colinear and anti-parallel fallback", () => {
  const models = new Map([
    ["a", model(null, [["w", [1, 0]]])],
    ["b", model(null, [["w", [0, 1]]])],
    ["c", model(null, [["w", [2, 0]]])],
    ["d", model(null, [["w", [-2, 0]]])],
  ]);
  const r = (other: string, t: unknown): unknown => ({ merge_method: "slerp", base_model: "a", models: [{ model: "a" }, { model: other }], parameters: { t } });
  // d = 0, theta = pi/2, t = 0.5: s0 = s1 = sin(pi/4)/sin(pi/2) = 0.70710678... ; fround -> 0.7071067690849304
  assert.deepEqual(vals(referenceMerge(r("b", 0.5), models), "w"), [0.7071067690849304, 0.7071067690849304]);
  // t = 0.25: s0 = sin(3pi/8) = 0.92387953, s1 = sin(pi/8) = 0.38268343
  close(vals(referenceMerge(r("b", 0.25), models), "w"), [0.9238795325, 0.3826834324], 1e-7);
  // t = 0 and t = 1 give the endpoints
  close(vals(referenceMerge(r("b", 0), models), "w"), [1, 0], 1e-7);
  close(vals(referenceMerge(r("b", 1), models), "w"), [0, 1], 1e-7);
  // colinear [1,0] and [2,0], t = 0.25: lerp 0.75*[1,0] + 0.25*[2,0] = [1.25, 0]
  assert.deepEqual(vals(referenceMerge(r("c", 0.25), models), "w"), [1.25, 0]);
  // anti-parallel also lerps: 0.75*1 + 0.25*(-2) = 0.25
  assert.deepEqual(vals(referenceMerge(r("d", 0.25), models), "w"), [0.25, 0]);
  // the base is v0 even if listed second
  const swapped = { merge_method: "slerp", base_model: "c", models: [{ model: "a" }, { model: "c" }], parameters: { t: 0.25 } };
  // v0 = [2,0], v1 = [1,0]: 0.75*2 + 0.25*1 = 1.75
  assert.deepEqual(vals(referenceMerge(swapped, models), "w"), [1.75, 0]);
  assert.throws(() => referenceMerge({ merge_method: "slerp", base_model: "a", models: [{ model: "b" }] }, models), /t is required/);
  assert.throws(
    () => referenceMerge({ merge_method: "slerp", base_model: "a", models: [{ model: "b" }, { model: "c" }], parameters: { t: 0.5 } }, models),
    /exactly 2/,
  );
});

// A tiny 3-layer "llama" with one value per tensor: layer l of model with offset o holds o + l.
function llama(offset: number, layers: number): RefModel {
  const entries: Array<[string, number[]]> = [["model.embed_tokens.weight", [offset + 100]]];
  for (let l = 0; l < layers; l++) {
    entries.push([`model.layers.${l}.self_attn.q_proj.weight`, [offset + l]]);
    entries.push([`model.layers.${l}.mlp.up_proj.weight`, [offset + l + 0.5]]);
  }
  entries.push(["model.norm.weight", [offset + 200]]);
  entries.push(["lm_head.weight", [offset + 300]]);
  return model({ num_hidden_layers: layers, hidden_size: 1 }, entries);
}

test("gradient over 3 layers: t = 0, 0.5, 1; pre- and post-layer tensors t = 0", () => {
  // task_arithmetic with base all-0 and x = 1 everywhere: out = weight(t)
  const ones = (m: RefModel): RefModel => ({ config: m.config, tensors: new Map([...m.tensors].map(([k, v]) => [k, { ...v, values: new Float32Array(1).fill(1) }])) });
  const zeros = (m: RefModel): RefModel => ({ config: m.config, tensors: new Map([...m.tensors].map(([k, v]) => [k, { ...v, values: new Float32Array(1) }])) });
  const models = new Map([
    ["base", zeros(llama(0, 3))],
    ["x", ones(llama(0, 3))],
  ]);
  const out = referenceMerge(
    { merge_method: "task_arithmetic", base_model: "base", models: [{ model: "x", parameters: { weight: [0, 0.5, 1] } }] },
    models,
  );
  assert.deepEqual(vals(out, "model.embed_tokens.weight"), [0]);
  assert.deepEqual(vals(out, "model.layers.0.self_attn.q_proj.weight"), [0]);
  assert.deepEqual(vals(out, "model.layers.1.self_attn.q_proj.weight"), [0.5]);
  assert.deepEqual(vals(out, "model.layers.2.mlp.up_proj.weight"), [1]);
  assert.deepEqual(vals(out, "model.norm.weight"), [0]);
  assert.deepEqual(vals(out, "lm_head.weight"), [0]);
  assert.deepEqual(out.order, [
    "model.embed_tokens.weight",
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.mlp.up_proj.weight",
    "model.layers.1.self_attn.q_proj.weight",
    "model.layers.1.mlp.up_proj.weight",
    "model.layers.2.self_attn.q_proj.weight",
    "model.layers.2.mlp.up_proj.weight",
    "model.norm.weight",
    "lm_head.weight",
  ]);
});

test("parameter precedence and filter lists in a merge", () => {
  // linear over a (all 0) and b (all 1); weight_a = 1 always; weight_b from filters:
  // per-model filter list matches only self_attn (weight 3); other tensors fall through to the
  // top-level weight 1. Result = w_b / (1 + w_b): self_attn 3/4, others 1/2.
  const zeros = llama(0, 2);
  for (const t of zeros.tensors.values()) t.values!.fill(0);
  const ones = llama(0, 2);
  for (const t of ones.tensors.values()) t.values!.fill(1);
  const models = new Map([
    ["a", zeros],
    ["b", ones],
  ]);
  const recipe = {
    merge_method: "linear",
    models: [
      { model: "a" },
      {
        model: "b",
        parameters: {
          weight: [
            { filter: "self_attn", value: 3 },
            { filter: "attn", value: 100 },
          ],
        },
      },
    ],
    parameters: { weight: 1 } as Record<string, unknown>,
  };
  const out = referenceMerge(recipe, models);
  assert.deepEqual(vals(out, "model.layers.0.self_attn.q_proj.weight"), [0.75]);
  assert.deepEqual(vals(out, "model.layers.1.mlp.up_proj.weight"), [0.5]);
  assert.deepEqual(vals(out, "model.norm.weight"), [0.5]);
  // normalize from the top-level filter list: off for mlp only -> mlp = (0*1 + 1*1) = 1
  recipe.parameters.normalize = [{ filter: "mlp", value: false }, { value: true }];
  const out2 = referenceMerge(recipe, models);
  assert.deepEqual(vals(out2, "model.layers.1.mlp.up_proj.weight"), [1]);
  assert.deepEqual(vals(out2, "model.layers.1.self_attn.q_proj.weight"), [0.75]);
});

test("slices passthrough: stacks layers from two models and renumbers them", () => {
  const models = new Map([
    ["A", llama(10, 3)],
    ["B", llama(20, 2)],
  ]);
  const recipe = {
    merge_method: "passthrough",
    dtype: "float32",
    slices: [
      { sources: [{ model: "A", layer_range: [0, 2] }] },
      { sources: [{ model: "B", layer_range: [1, 2], parameters: { scale: 2 } }] },
      { sources: [{ model: "A", layer_range: [2, 3] }] },
    ],
  };
  const out = referenceMerge(recipe, models);
  // output layer 0 <- A.0 (10), 1 <- A.1 (11), 2 <- B.1 (21 * 2 = 42), 3 <- A.2 (12)
  assert.deepEqual(out.order, [
    "model.embed_tokens.weight",
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.mlp.up_proj.weight",
    "model.layers.1.self_attn.q_proj.weight",
    "model.layers.1.mlp.up_proj.weight",
    "model.layers.2.self_attn.q_proj.weight",
    "model.layers.2.mlp.up_proj.weight",
    "model.layers.3.self_attn.q_proj.weight",
    "model.layers.3.mlp.up_proj.weight",
    "model.norm.weight",
    "lm_head.weight",
  ]);
  assert.deepEqual(vals(out, "model.layers.0.self_attn.q_proj.weight"), [10]);
  assert.deepEqual(vals(out, "model.layers.1.mlp.up_proj.weight"), [11.5]);
  assert.deepEqual(vals(out, "model.layers.2.self_attn.q_proj.weight"), [42]);
  assert.deepEqual(vals(out, "model.layers.2.mlp.up_proj.weight"), [43]);
  assert.deepEqual(vals(out, "model.layers.3.self_attn.q_proj.weight"), [12]);
  // pre-layer from the first slice's source (A), post-layer from the last slice's source (A)
  assert.deepEqual(vals(out, "model.embed_tokens.weight"), [110]);
  assert.deepEqual(vals(out, "model.norm.weight"), [210]);
  assert.deepEqual(out.config, { num_hidden_layers: 4, hidden_size: 1, torch_dtype: "float32" });
  // two inputs per tensor is an error for passthrough
  assert.throws(
    () => referenceMerge({ merge_method: "passthrough", slices: [{ sources: [{ model: "A", layer_range: [0, 2] }, { model: "B", layer_range: [0, 2] }] }] }, models),
    /exactly 1 input/,
  );
  // sources of different lengths are an error
  assert.throws(
    () => referenceMerge({ merge_method: "linear", slices: [{ sources: [{ model: "A", layer_range: [0, 3] }, { model: "B", layer_range: [0, 2] }] }] }, models),
    /different layer counts/,
  );
});

test("slices: per-slice base_model and slice parameters, t restarts per slice", () => {
  // slice 1: layers 0-1 of A and B with base A, weight for B from a gradient [0, 1] (t = 0, 1);
  // slice 2: layer 2 of A and B with base B (slice override); len 1 -> t = 1.
  // task_arithmetic, weight gradient: out = base + w*(other - base).
  const models = new Map([
    ["A", llama(10, 3)],
    ["B", llama(20, 3)],
  ]);
  const recipe = {
    merge_method: "task_arithmetic",
    base_model: "A",
    slices: [
      {
        sources: [
          { model: "A", layer_range: [0, 2] },
          { model: "B", layer_range: [0, 2] },
        ],
        parameters: { weight: [0, 1] },
      },
      {
        sources: [
          { model: "A", layer_range: [2, 3] },
          { model: "B", layer_range: [2, 3] },
        ],
        base_model: "B",
        parameters: { weight: 0.5 },
      },
    ],
  };
  const out = referenceMerge(recipe, models);
  // pre-layer (slice 1, t = 0): w = 0 -> A's embed 110
  assert.deepEqual(vals(out, "model.embed_tokens.weight"), [110]);
  // layer 0 (t = 0): 10 + 0*(20-10) = 10; layer 1 (t = 1): 11 + 1*10 = 21
  assert.deepEqual(vals(out, "model.layers.0.self_attn.q_proj.weight"), [10]);
  assert.deepEqual(vals(out, "model.layers.1.self_attn.q_proj.weight"), [21]);
  // layer 2: base B (22), other A (12): 22 + 0.5*(12 - 22) = 17
  assert.deepEqual(vals(out, "model.layers.2.self_attn.q_proj.weight"), [17]);
  // post-layer from slice 2 (base B): 220 + 0.5*(210 - 220) = 215
  assert.deepEqual(vals(out, "model.norm.weight"), [215]);
});

test("dtype, out_dtype and integer tensors", () => {
  const a = model({ num_hidden_layers: 0 }, [["w", [0.1, 70000]], ["n", [1]]]);
  a.tensors.set("ids", { dtype: "I64", shape: [2], raw: encodeTensor("I64", [5n, 6n]) });
  const b = model({ num_hidden_layers: 0 }, [["w", [0.1, 70000]], ["n", [1]]]);
  b.tensors.set("ids", { dtype: "I64", shape: [2], raw: encodeTensor("I64", [7n, 8n]) });
  const models = new Map([
    ["a", a],
    ["b", b],
  ]);
  // dtype bfloat16: 0.1 -> 0.10009765625, 70000 -> bf16: 70000 = 1.068115234375 * 2^16; 7-bit mantissa:
  //   0.068115234375 * 128 = 8.71875 -> 9 -> (1 + 9/128) * 65536 = 70144.
  // linear with weights 1, 1 (normalized) keeps them; out_dtype float16: 0.10009765625 is exact in f16
  //   (mantissa 0.6015625 * 1024 = 616), 70144 > 65520 -> Inf.
  const out = referenceMerge(
    {
      merge_method: "linear",
      base_model: "b",
      models: [{ model: "a" }],
      parameters: { weight: 1 },
      dtype: "bfloat16",
      out_dtype: "torch.float16",
    },
    models,
  );
  const w = out.tensors.get("w")!;
  assert.equal(w.dtype, "F16");
  assert.deepEqual(Array.from(w.values!), [0.10009765625, Infinity]);
  // the integer tensor is copied from the base (b)
  const ids = out.tensors.get("ids")!;
  assert.equal(ids.dtype, "I64");
  assert.deepEqual(Array.from(ids.raw!), Array.from(encodeTensor("I64", [7n, 8n])));
  assert.deepEqual(out.config, { num_hidden_layers: 0, torch_dtype: "float16" });
  // without dtype settings the output dtype is the base tensor's and config has no torch_dtype
  b.tensors.set("w", { dtype: "BF16", shape: [2], values: Float32Array.from([1, 2]) });
  const out2 = referenceMerge({ merge_method: "linear", base_model: "b", models: [{ model: "a" }], parameters: { weight: 1 } }, models);
  // (fround(0.1) + 1)/2 in float32, then rounded to bf16: 0.55 -> bf16 0.55078125 (1.1015625 * 2^-1)
  assert.equal(out2.tensors.get("w")!.dtype, "BF16");
  assert.equal(out2.tensors.get("w")!.values![0], 0.55078125);
  assert.deepEqual(out2.config, { num_hidden_layers: 0 });
  assert.throws(() => referenceMerge({ merge_method: "linear", models: [{ model: "a", parameters: { weight: 1 } }], dtype: "int8" }, models), /dtype/);
});

test("embedding rectification", () => {
  const models = new Map([
    ["base", model(null, [["model.embed_tokens.weight", [1, 2, 3, 4], [2, 2]]])],
    ["big", model(null, [["model.embed_tokens.weight", [10, 20, 30, 40, 50, 60, 70, 80, 90], [3, 3]]])],
    ["wide", model(null, [["model.embed_tokens.weight", [5, 6, 7], [1, 3]]])],
  ]);
  // linear base [2,2] with wide [1,3]: common top-left [1,2]: base row 0 = [1,2], wide row 0 = [5,6] -> mean [3, 4]
  const lin = referenceMerge({ merge_method: "linear", base_model: "base", models: [{ model: "wide" }], parameters: { weight: 1 } }, models);
  assert.deepEqual(lin.tensors.get("model.embed_tokens.weight")!.shape, [1, 2]);
  assert.deepEqual(vals(lin, "model.embed_tokens.weight"), [3, 4]);
  // task_arithmetic: big [3,3] cut to base [2,2] = [10,20,40,50]; tau = [9,18,37,46]; weight 0.5 ->
  // out = [1,2,3,4] + [4.5, 9, 18.5, 23]
  const ta = referenceMerge({ merge_method: "task_arithmetic", base_model: "base", models: [{ model: "big", parameters: { weight: 0.5 } }] }, models);
  assert.deepEqual(ta.tensors.get("model.embed_tokens.weight")!.shape, [2, 2]);
  assert.deepEqual(vals(ta, "model.embed_tokens.weight"), [5.5, 11, 21.5, 27]);
  // an input smaller than the base is an error for the task-arithmetic family
  assert.throws(
    () => referenceMerge({ merge_method: "ties", base_model: "base", models: [{ model: "wide", parameters: { weight: 1 } }] }, models),
    /smaller than the base/,
  );
  // a non-embedding tensor with different shapes is an error
  const m2 = new Map([
    ["p", model(null, [["model.layers.0.w", [1, 2, 3, 4], [2, 2]]])],
    ["q", model(null, [["model.layers.0.w", [1, 2], [1, 2]]])],
  ]);
  assert.throws(
    () => referenceMerge({ merge_method: "linear", models: [{ model: "p" }, { model: "q" }], parameters: { weight: 1 } }, m2),
    /shapes differ/,
  );
});

test("errors: unknown method, missing base, missing weight, missing model", () => {
  const models = new Map([
    ["a", model(null, [["w", [1]]])],
    ["b", model(null, [["w", [2]]])],
  ]);
  assert.throws(() => referenceMerge({ merge_method: "karcher_x", models: [{ model: "a" }] }, models), /merge_method/);
  assert.throws(() => referenceMerge({ merge_method: "ties", models: [{ model: "a", parameters: { weight: 1 } }] }, models), /base_model is required/);
  assert.throws(() => referenceMerge({ merge_method: "dare_ties", base_model: "a", models: [{ model: "b" }] }, models), /weight is required/);
  assert.throws(() => referenceMerge({ merge_method: "linear", models: [{ model: "zzz", parameters: { weight: 1 } }] }, models), /not provided/);
  assert.throws(() => referenceMerge({ merge_method: "linear", models: [{ model: "a" }], slices: [] }, models), /exactly one/);
});

test("refModelFromRaw decodes floats and keeps integers", () => {
  const file = writeSafetensors([
    { name: "f", dtype: "F16", shape: [2], data: encodeTensor("F16", [1, 0.5]) },
    { name: "i", dtype: "I32", shape: [1], data: encodeTensor("I32", [-3]) },
  ]);
  const m = refModelFromRaw(null, readSafetensors(file).tensors);
  assert.deepEqual(Array.from(m.tensors.get("f")!.values!), [1, 0.5]);
  assert.deepEqual(Array.from(m.tensors.get("i")!.raw!), [0xfd, 0xff, 0xff, 0xff]);
});

// ---------------------------------------------------------------------------------------------
// issue 10 methods (methods.ts): the task-vector family additions

/** base 0 (or `base`) plus one model per task vector, all of one tensor "w". */
function taskModels(taus: number[][], base?: number[], shape?: number[]): Map<string, RefModel> {
  const b = base ?? taus[0]!.map(() => 0);
  const m = new Map<string, RefModel>([["base", model(null, [["w", b, shape]])]]);
  taus.forEach((t, i) => m.set(`m${i + 1}`, model(null, [["w", t.map((v, j) => fr(v + b[j]!)), shape]])));
  return m;
}

function taskRecipe(method: string, perModel: Array<Record<string, unknown>>, parameters?: Record<string, unknown>): Record<string, unknown> {
  return {
    merge_method: method,
    base_model: "base",
    models: perModel.map((p, i) => ({ model: `m${i + 1}`, parameters: p })),
    ...(parameters ? { parameters } : {}),
  };
}

test("breadcrumbs: 10 elements, drop the top outliers and the small ones", () => {
  const tau = [1, -9, 5, 3, -7, 2, 8, -4, 6, 0.5];
  // N = 10, density 0.5 -> keep 5, gamma 0.2 -> top 2, bot 3.
  // |tau| descending: 9 (j1), 8 (j6), 7 (j4), 6 (j8), 5 (j2), 4 (j7), 3 (j3), 2 (j5), 1 (j0), 0.5 (j9)
  // ranks 2..6 are kept: j4, j8, j2, j7, j3.
  assert.deepEqual(Array.from(breadcrumbsKeepMask(Float32Array.from(tau), 0.5, 0.2)), [0, 0, 1, 1, 1, 0, 0, 1, 1, 0]);
  const models = taskModels([tau]);
  close(vals(referenceMerge(taskRecipe("breadcrumbs", [{ weight: 1, density: 0.5, gamma: 0.2 }]), models), "w"), [0, 0, 5, 3, -7, 0, 0, -4, 6, 0], 0);
  // weight 0.5, lambda 2: the same values (0.5*2 = 1 exactly)
  close(vals(referenceMerge(taskRecipe("breadcrumbs", [{ weight: 0.5, density: 0.5, gamma: 0.2 }], { lambda: 2 }), models), "w"), [0, 0, 5, 3, -7, 0, 0, -4, 6, 0], 0);
  // rescale: A = sum|tau| = 45.5, B = 7+6+5+4+3 = 25 -> r = fround(1.82)
  const r = fr(45.5 / 25);
  close(
    vals(referenceMerge(taskRecipe("breadcrumbs", [{ weight: 1, density: 0.5, gamma: 0.2 }], { rescale: true }), models), "w"),
    [0, 0, fr(5 * r), fr(3 * r), fr(-7 * r), 0, 0, fr(-4 * r), fr(6 * r), 0],
    0,
  );
  // gamma 0 (top = 0): the 5 largest are kept (mergekit's empty slice is not reproduced)
  close(vals(referenceMerge(taskRecipe("breadcrumbs", [{ weight: 1, density: 0.5, gamma: 0 }]), models), "w"), [0, -9, 5, 0, -7, 0, 8, 0, 6, 0], 0);
  // default gamma 0.01: top = floor(0.1) = 0, the same
  close(vals(referenceMerge(taskRecipe("breadcrumbs", [{ weight: 1, density: 0.5 }]), models), "w"), [0, -9, 5, 0, -7, 0, 8, 0, 6, 0], 0);
  // density 0.9, gamma 0.2: keep 9, top 2, bot = -1 -> top 1: only the largest (j1) is dropped
  close(vals(referenceMerge(taskRecipe("breadcrumbs", [{ weight: 1, density: 0.9, gamma: 0.2 }]), models), "w"), [1, 0, 5, 3, -7, 2, 8, -4, 6, 0.5], 0);
  // density 1: untouched even with gamma
  close(vals(referenceMerge(taskRecipe("breadcrumbs", [{ weight: 1, density: 1, gamma: 0.3 }]), models), "w"), tau, 0);
  // equal magnitudes: [2, -2, 2, 1], density 0.5, gamma 0.25: keep 2, top 1; order j0, j1, j2, j3 -> keep j1, j2
  assert.deepEqual(Array.from(breadcrumbsKeepMask(Float32Array.from([2, -2, 2, 1]), 0.5, 0.25)), [0, 1, 1, 0]);
});

test("breadcrumbs_ties: breadcrumbs masks then sign consensus", () => {
  // N = 4, density 0.5, gamma 0.25: keep 2, top 1, bot 1.
  // m1 tau [3, -1, 2, 0.5]: descending j0, j2, j1, j3 -> keep j2, j1 -> [0, -1, 2, 0]
  // m2 tau [-4, 2, 1, 0.25]: descending j0, j1, j2, j3 -> keep j1, j2 -> [0, 2, 1, 0]
  // S = [0, 1, 3, 0] -> all +; j0, j3: nobody agrees (zeros) -> 0; j1: m2 agrees -> 2 (div 1);
  // j2: both -> 3 (div 2). normalize default false -> [0, 2, 3, 0]; normalize true -> [0, 2, 1.5, 0]
  const models = taskModels([[3, -1, 2, 0.5], [-4, 2, 1, 0.25]]);
  const per = [{ weight: 1, density: 0.5, gamma: 0.25 }, { weight: 1, density: 0.5, gamma: 0.25 }];
  close(vals(referenceMerge(taskRecipe("breadcrumbs_ties", per), models), "w"), [0, 2, 3, 0], 0);
  close(vals(referenceMerge(taskRecipe("breadcrumbs_ties", per, { normalize: true }), models), "w"), [0, 2, 1.5, 0], 0);
  // breadcrumbs (no consensus): plain sum [0, 1, 3, 0]
  close(vals(referenceMerge(taskRecipe("breadcrumbs", per), models), "w"), [0, 1, 3, 0], 0);
});

test("della: keep probabilities from ascending ranks, rows, the generator", () => {
  // A row of 3, density 0.5, epsilon 0.1: p = 0.4, 0.5, 0.6 for ranks 1, 2, 3; one element: p = density.
  close([dellaProbability(0.5, 0.1, 1, 3), dellaProbability(0.5, 0.1, 2, 3), dellaProbability(0.5, 0.1, 3, 3)], [0.4, 0.5, 0.6], 1e-15);
  assert.equal(dellaProbability(0.3, 0.1, 1, 1), 0.3);
  // tensor [2, 3]: row 0 = [0.3, -0.1, 0.2] -> ranks j1:1, j2:2, j0:3 -> p = [0.6, 0.4, 0.5]
  //                row 1 = [-0.5, 0.25, 1] -> ranks j4:1, j3:2, j5:3 -> p = [0.5, 0.4, 0.6]
  const tau = Float32Array.from([0.3, -0.1, 0.2, -0.5, 0.25, 1]);
  const p = [0.6, 0.4, 0.5, 0.5, 0.4, 0.6];
  const seed = 5;
  const name = "w";
  const key = dareStreamKey(seed, name, 1);
  const T = (q: number) => Math.min(Math.floor(q * 2 ** 32), 2 ** 32 - 1);
  const expected = p.map((q, j) => (dareU(key, j) < T(q) ? 1 : 0));
  assert.deepEqual(Array.from(dellaKeepMask(tau, [2, 3], 0.5, 0.1, seed, name, 1)), expected);
  // 1-D: one row of 6: ascending j1 (0.1), j2 (0.2), j4 (0.25), j0 (0.3), j3 (0.5), j5 (1): p = 0.4 + 0.04*(rank-1)
  const p1 = [0.52, 0.4, 0.44, 0.56, 0.48, 0.6];
  const keyA = dareStreamKey(seed, name, 0);
  const got1 = Array.from(dellaKeepMask(tau, [6], 0.5, 0.1, seed, name, 0));
  const exp1 = [3, 0, 1, 4, 2, 5].map((rank, j) => (dareU(keyA, j) < T(dellaProbability(0.5, 0.1, rank + 1, 6)) ? 1 : 0));
  assert.deepEqual(got1, exp1);
  p1.forEach((q, j) => close([dellaProbability(0.5, 0.1, [3, 0, 1, 4, 2, 5][j]! + 1, 6)], [q], 1e-15));
  // 3-D [2, 1, 3] is [2, 3] rows (shape[0] x the rest)
  assert.deepEqual(Array.from(dellaKeepMask(tau, [2, 1, 3], 0.5, 0.1, seed, name, 1)), expected);
  // On a long row larger magnitudes are kept more often: density 0.5, epsilon 0.15 -> p from 0.35 to 0.65.
  const long = new Float32Array(4000);
  for (let j = 0; j < long.length; j++) long[j] = (j % 2 ? -1 : 1) * (j + 1);
  const keep = dellaKeepMask(long, [4000], 0.5, 0.15, 1, "x", 0);
  let low = 0, high = 0;
  for (let j = 0; j < 1000; j++) low += keep[j]!;
  for (let j = 3000; j < 4000; j++) high += keep[j]!;
  assert.ok(low > 330 && low < 420, `low ranks kept ${low}/1000 (expected about 387)`);
  assert.ok(high > 580 && high < 670, `high ranks kept ${high}/1000 (expected about 612)`);
});

test("della_linear and della: merges with the mask, L1 rescale, consensus, normalize; parameter errors", () => {
  // one model, tensor [2, 3], base 1, weight 1, density 0.5, epsilon 0.1 (the mask of the test above for
  // non-base position 0), della_linear: rescale (default true), no consensus, normalize false.
  const tauVals = [0.25, -0.125, 0.5, -0.5, 0.25, 1];
  const seed = 9;
  const models = taskModels([tauVals], [1, 1, 1, 1, 1, 1], [2, 3]);
  const key = dareStreamKey(seed, "w", 0);
  const T = (q: number) => Math.min(Math.floor(q * 2 ** 32), 2 ** 32 - 1);
  // row 0 [0.25, -0.125, 0.5]: ranks j1:1, j0:2, j2:3; row 1 [-0.5, 0.25, 1]: j4:1, j3:2, j5:3
  const p = [0.5, 0.4, 0.6, 0.5, 0.4, 0.6];
  const kept = p.map((q, j) => dareU(key, j) < T(q));
  const A = tauVals.reduce((s, v) => s + Math.abs(v), 0);
  const B = tauVals.reduce((s, v, j) => s + (kept[j] ? Math.abs(v) : 0), 0);
  assert.ok(B > 0, "this seed keeps something");
  const r = fr(A / B);
  const expected = tauVals.map((v, j) => fr(1 + (kept[j] ? fr(v * r) : 0)));
  close(vals(referenceMerge(taskRecipe("della_linear", [{ weight: 1, density: 0.5, epsilon: 0.1 }]), models, { seed }), "w"), expected, 0);
  // della with one model: consensus keeps every nonzero value, normalize divides by the weight 1 -> the same
  close(vals(referenceMerge(taskRecipe("della", [{ weight: 1, density: 0.5, epsilon: 0.1 }]), models, { seed }), "w"), expected, 0);
  // density 1 -> untouched; density 0 -> nothing (out = base)
  close(vals(referenceMerge(taskRecipe("della", [{ weight: 1, density: 1 }]), models, { seed }), "w"), tauVals.map((v) => 1 + v), 0);
  close(vals(referenceMerge(taskRecipe("della_linear", [{ weight: 1, density: 0 }]), models, { seed }), "w"), [1, 1, 1, 1, 1, 1], 0);
  // density - epsilon <= 0 or density + epsilon >= 1 is an error naming the model and epsilon
  assert.throws(() => referenceMerge(taskRecipe("della", [{ weight: 1, density: 0.1 }]), models), /m1.*epsilon/);
  assert.throws(() => referenceMerge(taskRecipe("della_linear", [{ weight: 1, density: 0.9, epsilon: 0.1 }]), models), /m1.*epsilon/);
  referenceMerge(taskRecipe("della_linear", [{ weight: 1, density: 0.85, epsilon: 0.1 }]), models); // fine
});

test("TIES vote variants: consensus_method count, vote_weighted false", () => {
  // base 0; taus [3], [-1], [-1]; weights 1. sum vote: 1 -> +, m1 agrees -> ties (normalize) 3.
  // count vote: 1 - 2 = -1 -> -, m2 and m3 agree -> -2/2 = -1.
  const three = taskModels([[3], [-1], [-1]]);
  const w1 = [{ weight: 1 }, { weight: 1 }, { weight: 1 }];
  close(vals(referenceMerge(taskRecipe("ties", w1), three), "w"), [3], 0);
  close(vals(referenceMerge(taskRecipe("ties", w1, { consensus_method: "sum" }), three), "w"), [3], 0);
  close(vals(referenceMerge(taskRecipe("ties", w1, { consensus_method: "count" }), three), "w"), [-1], 0);
  for (const method of ["dare_ties", "breadcrumbs_ties"]) {
    // normalize false: count -> mixed -2
    close(vals(referenceMerge(taskRecipe(method, w1, { consensus_method: "count" }), three), "w"), [-2], 0);
  }
  // della: normalize true
  close(vals(referenceMerge(taskRecipe("della", w1, { consensus_method: "count" }), three), "w"), [-1], 0);
  // count ties at 0 -> +: taus [3], [-1]
  close(vals(referenceMerge(taskRecipe("ties", [{ weight: 1 }, { weight: 1 }], { consensus_method: "count" }), taskModels([[3], [-1]])), "w"), [3], 0);
  // vote_weighted false: taus [1], [-1.5], weights 1, 0.5. Weighted: p = 1, -0.75 -> + -> 1.
  // Unweighted: v = 1, -1.5 -> S = -0.5 -> -, m2 agrees: mixed = p2 = -0.75, div = 0.5 -> -1.5 (normalize off: -0.75)
  const two = taskModels([[1], [-1.5]]);
  const wh = [{ weight: 1 }, { weight: 0.5 }];
  close(vals(referenceMerge(taskRecipe("ties", wh), two), "w"), [1], 0);
  close(vals(referenceMerge(taskRecipe("ties", wh, { vote_weighted: false }), two), "w"), [-1.5], 0);
  close(vals(referenceMerge(taskRecipe("ties", wh, { vote_weighted: false, normalize: false }), two), "w"), [-0.75], 0);
  // count on unweighted values: +1 - 1 = 0 -> +: m1 agrees -> 1
  close(vals(referenceMerge(taskRecipe("ties", wh, { vote_weighted: false, consensus_method: "count" }), two), "w"), [1], 0);
  // a negative weight: taus [1], [1], weights 1, -1. Weighted: p = 1, -1 -> S = 0 -> +, m1 agrees -> 1.
  // Unweighted: both agree: mixed = 1 + -1 = 0, div = 0 -> 1 -> 0.
  const neg = taskModels([[1], [1]]);
  const wn = [{ weight: 1 }, { weight: -1 }];
  close(vals(referenceMerge(taskRecipe("ties", wn), neg), "w"), [1], 0);
  close(vals(referenceMerge(taskRecipe("ties", wn, { vote_weighted: false }), neg), "w"), [0], 0);
  assert.throws(() => referenceMerge(taskRecipe("ties", w1, { consensus_method: "median" }), three), /consensus_method/);
});

test("sce: select by variance, weights from mean squares, sign erase", () => {
  // base 0; 3 models at 4 positions
  const taus = [[1, 2, 0, -1], [1, -2, 0, 1], [1, 4, 3, -1]];
  const models = taskModels(taus);
  // no select: c = mean(tau^2) = [6/4, 6/4, 27/4] -> normalized [2/13, 2/13, 9/13]
  // j0: S = 3 (+), all agree -> 1; j1: S = 4 (+), m1 and m3: (2/13*2 + 9/13*4)/(11/13) = 40/11;
  // j2: only m3 -> 3; j3: S = -1 (-), m1 and m3 -> -1
  const r = { merge_method: "sce", base_model: "base", models: [{ model: "m1" }, { model: "m2" }, { model: "m3" }] };
  close(vals(referenceMerge(r, models), "w"), [1, fr(40 / 11), 3, -1], 0);
  // select_topk 0.5: variances j0 0, j1 [2,-2,4] -> 168/27, j2 [0,0,3] -> 2, j3 [-1,1,-1] -> 24/27.
  // nonzero 3 -> k = 1: only j1 is kept. c = [1, 1, 4] -> [1/6, 1/6, 4/6]; j1: (1/6*2 + 4/6*4)/(5/6) = 3.6
  assert.deepEqual(Array.from(sceSelectMask(taus.map((t) => Float32Array.from(t)), 0.5)), [0, 1, 0, 0]);
  close(vals(referenceMerge({ ...r, parameters: { select_topk: 0.5 } }, models), "w"), [0, fr(3.6), 0, 0], 0);
  // select_topk 0.7: k = 2 -> j1, j2
  assert.deepEqual(Array.from(sceSelectMask(taus.map((t) => Float32Array.from(t)), 0.7)), [0, 1, 1, 0]);
  // select_topk 0.2: k = 0 -> everything zeroed -> out = base
  close(vals(referenceMerge({ ...r, parameters: { select_topk: 0.2 } }, models), "w"), [0, 0, 0, 0], 0);
  // tiny task vectors (scale 2^-12): sum of c < 1e-6 -> uniform weights 1/3: j1 = (2 + 4)/2 * s = 3s
  const s = 2 ** -12;
  const tiny = taskModels(taus.map((t) => t.map((v) => v * s)));
  close(vals(referenceMerge(r, tiny), "w"), [s, 3 * s, 3 * s, -s], 0);
  // equal variances are taken by lower index: [1, -1] at every position -> select 0.5 of 4 -> j0, j1
  assert.deepEqual(Array.from(sceSelectMask([Float32Array.from([1, 1, 1, 1]), Float32Array.from([-1, -1, -1, -1])], 0.5)), [1, 1, 0, 0]);
  // k is mergekit's float32 product: 400003 nonzero variances at 0.3333 keep 133321 (float32 133321.0),
  // not the float64 product's floor, 133320 (hand-worked: 400003 * 0.33329999446868896 = 133320.9978,
  // whose nearest float32 is 133321.0; float32 steps are 1/64 there).
  const wide = [new Float32Array(400003).map((_, i) => (i % 7) + 1), new Float32Array(400003)];
  assert.equal(Array.from(sceSelectMask(wide, 0.3333)).reduce((a, b) => a + b, 0), 133321);
});

test("ram and ramplus_tl: unique changes summed, shared ones averaged, lambda from shared/unique counts", () => {
  // base 1 (so 1 + 1e-6 rounds to a tau of about 9.5e-7, inactive at epsilon 1e-5)
  const taus = [[0.5, 0.5, 0, 1e-6, -1], [0, 0.25, 0, 0.5, 1], [0, 0.75, 0.125, 0, 0]];
  const models = taskModels(taus, [1, 1, 1, 1, 1]);
  // active: m1 [1,1,0,0,1], m2 [0,1,0,1,1], m3 [0,1,1,0,0]; c = [1, 3, 1, 1, 2]
  // ram: j0 0.5; j1 (0.5+0.25+0.75)/3 = 0.5; j2 0.125; j3 0.5 (m2 only); j4 (-1+1)/2 = 0
  const r = (method: string, parameters?: Record<string, unknown>) => ({ merge_method: method, base_model: "base", models: [{ model: "m1" }, { model: "m2" }, { model: "m3" }], ...(parameters ? { parameters } : {}) });
  close(vals(referenceMerge(r("ram"), models), "w"), [1.5, 1.5, 1.125, 1.5, 1], 0);
  // epsilon 0.3: m2's 0.25 and m3's 0.125 become inactive: c = [1, 2, 0, 1, 2]; j1 (0.5+0.75)/2 = 0.625
  close(vals(referenceMerge(r("ram", { epsilon: 0.3 }), models), "w"), [1.5, 1.625, 1, 1.5, 1], 0);
  // ramplus_tl: shared/unique: m1 2/1, m2 2/1, m3 1/1. alpha 5, r 0.1: lambda = 1.2, 1.2, 1.1
  // j0 1.2*0.5 = 0.6; j2 1.1*0.125 = 0.1375; j3 1.2*0.5 = 0.6; shared ones as ram
  close(vals(referenceMerge(r("ramplus_tl", { alpha: 5 }), models), "w"), [fr(1.6), 1.5, fr(1.1375), fr(1.6), 1], 0);
  // defaults r 0.1, alpha 0.2: every rho is clipped to 0.2 -> lambda 1.02
  close(vals(referenceMerge(r("ramplus_tl"), models), "w"), [fr(1.51), 1.5, fr(1 + 0.1275), fr(1.51), 1], 0);
  // shapes must agree, even for embeddings
  const mis = new Map([
    ["base", model(null, [["lm_head.weight", [1, 2, 3, 4], [2, 2]]])],
    ["m1", model(null, [["lm_head.weight", [1, 2, 3, 4, 5, 6], [3, 2]]])],
  ]);
  assert.throws(() => referenceMerge({ merge_method: "ram", base_model: "base", models: [{ model: "m1" }] }, mis), /shapes differ/);
  assert.throws(() => referenceMerge({ merge_method: "sce", base_model: "base", models: [{ model: "m1" }] }, mis), /shapes differ/);
});

// ---------------------------------------------------------------------------------------------
// issue 10 methods (methods.ts): geometric methods

/** Models named by key, each with one tensor "w" of the given values and shape. */
function oneTensor(list: Record<string, number[]>, shape?: number[]): Map<string, RefModel> {
  return new Map(Object.entries(list).map(([k, v]) => [k, model(null, [["w", v, shape]])]));
}

const H = Math.SQRT1_2; // sqrt(2)/2

test("nuslerp: flattened, rows, columns, with a base, t from the weights", () => {
  const r = (models: string[], weights: number[], parameters?: Record<string, unknown>, base?: string) => ({
    merge_method: "nuslerp",
    ...(base ? { base_model: base } : {}),
    models: models.map((m, i) => ({ model: m, parameters: { weight: weights[i] } })),
    ...(parameters ? { parameters } : {}),
  });
  // orthogonal [1, 0] and [0, 1], weights 1, 1: t = 0.5, theta = pi/2: sin(pi/4) each
  const orth = oneTensor({ x: [1, 0], y: [0, 1] });
  close(vals(referenceMerge(r(["x", "y"], [1, 1]), orth), "w"), [H, H]);
  // weights 1, 3: t = 0.75 -> [sin(pi/8), sin(3pi/8)]
  close(vals(referenceMerge(r(["x", "y"], [1, 3]), orth), "w"), [Math.sin(Math.PI / 8), Math.sin((3 * Math.PI) / 8)]);
  // weights 1, -1: |sum| < 1e-6 -> t = 0.5
  close(vals(referenceMerge(r(["x", "y"], [1, -1]), orth), "w"), [H, H]);
  // unnormalised: [2, 0] and [0, 4] at t = 0.5 -> [2H, 4H] (the coefficients apply to the vectors as they are)
  close(vals(referenceMerge(r(["x", "y"], [1, 1]), oneTensor({ x: [2, 0], y: [0, 4] })), "w"), [2 * H, 4 * H]);
  // [2, 2]: x = [[1, 2], [0, 0]], y = [[0, 4], [1, 0]]
  const m22 = oneTensor({ x: [1, 2, 0, 0], y: [0, 4, 1, 0] }, [2, 2]);
  // columns (row_wise): col 0 (1,0)/(0,1) orthogonal -> (H, H); col 1 (2,0)/(4,0) colinear -> lerp (3, 0)
  close(vals(referenceMerge(r(["x", "y"], [1, 1], { nuslerp_flatten: false, nuslerp_row_wise: true }), m22), "w"), [H, 3, H, 0]);
  // rows: row 0 (1,2)/(0,4): cos = 8/(4 sqrt 5); row 1 (0,0)/(1,0): a zero vector -> cos 0 -> (0, H)
  const th = Math.acos(8 / (4 * Math.sqrt(5)));
  const c = Math.sin(th / 2) / Math.sin(th);
  close(vals(referenceMerge(r(["x", "y"], [1, 1], { nuslerp_flatten: false }), m22), "w"), [c * 1, c * 6, H, 0]);
  // flattened: [1,2,0,0] and [0,4,1,0]: cos = 8/(sqrt 5 sqrt 17)
  const thf = Math.acos(8 / (Math.sqrt(5) * Math.sqrt(17)));
  const cf = Math.sin(thf / 2) / Math.sin(thf);
  close(vals(referenceMerge(r(["x", "y"], [1, 1]), m22), "w"), [cf, cf * 6, cf, 0]);
  // with a base [1, 1]: task vectors [1, 0] and [0, 1] -> 1 + [H, H]
  const withBase = oneTensor({ base: [1, 1], x: [2, 1], y: [1, 2] });
  close(vals(referenceMerge(r(["x", "y"], [1, 1], undefined, "base"), withBase), "w"), [1 + H, 1 + H]);
  // 1-D with flatten false: one vector, the same
  close(vals(referenceMerge(r(["x", "y"], [1, 1], { nuslerp_flatten: false, nuslerp_row_wise: true }, "base"), withBase), "w"), [1 + H, 1 + H]);
  assert.throws(() => referenceMerge(r(["x", "y", "base"], [1, 1, 1]), withBase), /exactly two/);
});

test("multislerp: weighted mean direction times the weighted mean norm; antipodal fallback", () => {
  const r = (models: string[], weights: number[], parameters?: Record<string, unknown>, base?: string) => ({
    merge_method: "multislerp",
    ...(base ? { base_model: base } : {}),
    models: models.map((m, i) => ({ model: m, parameters: { weight: weights[i] } })),
    ...(parameters ? { parameters } : {}),
  });
  // [2, 0] and [0, 1], weights 1, 1 -> 0.5 each; mean direction (H, H); scale 0.5*2 + 0.5*1 = 1.5
  const m2 = oneTensor({ x: [2, 0], y: [0, 1] });
  close(vals(referenceMerge(r(["x", "y"], [1, 1]), m2), "w"), [1.5 * H, 1.5 * H]);
  // weights 3, 1 -> 0.75, 0.25: m = (0.75, 0.25), direction (3, 1)/sqrt 10; scale 0.75*2 + 0.25 = 1.75
  close(vals(referenceMerge(r(["x", "y"], [3, 1]), m2), "w"), [(1.75 * 3) / Math.sqrt(10), 1.75 / Math.sqrt(10)]);
  // normalize_weights false, weights 1, 1: direction (H, H), scale 2 + 1 = 3
  close(vals(referenceMerge(r(["x", "y"], [1, 1], { normalize_weights: false }), m2), "w"), [3 * H, 3 * H]);
  // the base is the origin: base [1, 1], x [3, 1], y [1, 2] -> 1 + 1.5*(H, H)
  close(vals(referenceMerge(r(["x", "y"], [1, 1], undefined, "base"), oneTensor({ base: [1, 1], x: [3, 1], y: [1, 2] })), "w"), [1 + 1.5 * H, 1 + 1.5 * H]);
  // antipodal pair [1, 0] and [-3, 0]: |m| < eps -> 0.5*1 + 0.5*(-3) = -1
  close(vals(referenceMerge(r(["x", "y"], [1, 1]), oneTensor({ x: [1, 0], y: [-3, 0] })), "w"), [-1, 0]);
  // antipodal with three inputs: an error
  assert.throws(() => referenceMerge(r(["x", "y", "z"], [1, 1, 1]), oneTensor({ x: [1, 0], y: [-1, 0], z: [0, 0] })), /antipodal/);
  // one input: returned as is
  close(vals(referenceMerge(r(["x"], [0.3]), m2), "w"), [2, 0], 0);
  const mis = new Map([["x", model(null, [["lm_head.weight", [1, 2, 3, 4], [2, 2]]])], ["y", model(null, [["lm_head.weight", [1, 2, 3, 4, 5, 6], [3, 2]]])]]);
  assert.throws(() => referenceMerge(r(["x", "y"], [1, 1]), mis), /shapes differ/);
});

test("karcher: orthogonal vectors give the bisector times the mean norm; circle mean; base as an input", () => {
  const r = (models: string[], parameters?: Record<string, unknown>, base?: string) => ({
    merge_method: "karcher",
    ...(base ? { base_model: base } : {}),
    models: models.map((m) => ({ model: m })),
    ...(parameters ? { parameters } : {}),
  });
  // [2, 0] and [0, 4]: the initial guess is the bisector, T = 0 there; scale (2 + 4)/2 = 3
  close(vals(referenceMerge(r(["x", "y"]), oneTensor({ x: [2, 0], y: [0, 4] })), "w"), [3 * H, 3 * H]);
  // three orthogonal unit vectors: (1, 1, 1)/sqrt 3
  const s3 = 1 / Math.sqrt(3);
  close(vals(referenceMerge(r(["x", "y", "z"]), oneTensor({ x: [1, 0, 0], y: [0, 1, 0], z: [0, 0, 1] })), "w"), [s3, s3, s3]);
  // angles 0, 0, pi/2 on the circle: the Karcher mean is the mean angle pi/6 (the first step reaches it)
  const circle = oneTensor({ x: [1, 0], y: [1, 0], z: [0, 1] });
  close(vals(referenceMerge(r(["x", "y", "z"]), circle), "w"), [Math.cos(Math.PI / 6), 0.5]);
  // max_iter 0: the normalised mean (2, 1)/sqrt 5
  close(vals(referenceMerge(r(["x", "y", "z"], { max_iter: 0 }), circle), "w"), [2 / Math.sqrt(5), 1 / Math.sqrt(5)]);
  // the declared base is an ordinary input (added to models:), and a weight is ignored
  const withBase = { ...r(["x", "y"], undefined, "z"), models: [{ model: "x", parameters: { weight: 5 } }, { model: "y" }] };
  close(vals(referenceMerge(withBase, circle), "w"), [Math.cos(Math.PI / 6), 0.5]);
  // a zero input takes no part in the direction but counts in the scale: (2 + 4 + 0)/3 = 2
  close(vals(referenceMerge(r(["x", "y", "z"]), oneTensor({ x: [2, 0], y: [0, 4], z: [0, 0] })), "w"), [2 * H, 2 * H]);
  close(vals(referenceMerge(r(["x", "y"]), oneTensor({ x: [0, 0], y: [0, 0] })), "w"), [0, 0], 0);
  const mis = new Map([["x", model(null, [["lm_head.weight", [1, 2, 3, 4], [2, 2]]])], ["y", model(null, [["lm_head.weight", [1, 2, 3, 4, 5, 6], [3, 2]]])]]);
  assert.throws(() => referenceMerge(r(["x", "y"]), mis), /shapes differ/);
});

test("model_stock: t from the mean pairwise cosine, flattened and filter-wise", () => {
  close([modelStockT(2, 0.5), modelStockT(3, 0), modelStockT(2, 1), modelStockT(3, 0.2)], [2 / 3, 0, 1, 3 / 7], 1e-15);
  const r = (models: string[], parameters?: Record<string, unknown>) => ({
    merge_method: "model_stock",
    base_model: "base",
    models: models.map((m) => ({ model: m })),
    ...(parameters ? { parameters } : {}),
  });
  // base [1, 1]; deltas [3, 4] and [4, 3]: cos = 24/25, t = 1.92/1.96 = 48/49; mean [4.5, 4.5]
  // out = 48/49 * 4.5 + 1/49 * 1 = 217/49
  close(vals(referenceMerge(r(["x", "y"]), oneTensor({ base: [1, 1], x: [4, 5], y: [5, 4] })), "w"), [217 / 49, 217 / 49]);
  // [2, 2], base 0: row 0 deltas [3, 4], [4, 3]; row 1 deltas [1, 0], [0, 1]
  const m22 = oneTensor({ base: [0, 0, 0, 0], x: [3, 4, 1, 0], y: [4, 3, 0, 1] }, [2, 2]);
  // flattened: cos = 24/26, t = (24/13)/(25/13) = 24/25; out = 24/25 * mean
  close(vals(referenceMerge(r(["x", "y"]), m22), "w"), [0.96 * 3.5, 0.96 * 3.5, 0.96 * 0.5, 0.96 * 0.5]);
  // filter_wise: row 0 t = 48/49, row 1 cos 0 -> t 0 -> the base
  close(vals(referenceMerge(r(["x", "y"], { filter_wise: true }), m22), "w"), [(48 / 49) * 3.5, (48 / 49) * 3.5, 0, 0]);
  // three models, base 0: [1,0], [0,1], [1,1]: cosines 0, H, H -> c = 2H/3 ... t = 3c/(1+2c); mean [2/3, 2/3]
  const c = (2 * H) / 3;
  const t = (3 * c) / (1 + 2 * c);
  close(vals(referenceMerge(r(["x", "y", "z"]), oneTensor({ base: [0, 0], x: [1, 0], y: [0, 1], z: [1, 1] })), "w"), [(t * 2) / 3, (t * 2) / 3]);
  // only the base -> the base; one other model -> an error
  close(vals(referenceMerge(r(["base"]), oneTensor({ base: [1, 2] })), "w"), [1, 2], 0);
  assert.throws(() => referenceMerge(r(["x"]), oneTensor({ base: [1, 1], x: [2, 2] })), /at least two/);
});

test("nearswap: s = clamp(t / max(|a - b|, 1e-6), 0, 1) per element", () => {
  const models = oneTensor({ base: [0, 0, 0, 1, 5], x: [0.25, 1, 4, 1, -5] });
  const r = (t: unknown) => ({ merge_method: "nearswap", base_model: "base", models: [{ model: "x" }], ...(t === undefined ? {} : { parameters: { t } }) });
  // t = 0.5: |a-b| = 0.25 -> s 2 -> 1 (b); 1 -> 0.5; 4 -> 0.125 (0.5); 0 -> 1e-6 -> 1 (b); 10 -> 0.05: 0.05*-5 + 0.95*5 = 4.5
  close(vals(referenceMerge(r(0.5), models), "w"), [0.25, 0.5, 0.5, 1, 4.5]);
  close(vals(referenceMerge(r(0), models), "w"), [0, 0, 0, 1, 5], 0);
  close(vals(referenceMerge(r(-1), models), "w"), [0, 0, 0, 1, 5], 0);
  assert.equal(nearswapFactor(1, 1, 1e-7), fr(fr(1e-7) / fr(1e-6)));
  assert.throws(() => referenceMerge(r(undefined), models), /t is required/);
  const three = oneTensor({ base: [0], x: [1], y: [2] });
  assert.throws(() => referenceMerge({ merge_method: "nearswap", base_model: "base", models: [{ model: "x" }, { model: "y" }], parameters: { t: 1 } }, three), /exactly one/);
});

test("arcee_fusion: KL per row times |b - a|, Tukey fence on exact quantiles", () => {
  // KL(softmax([2,0,0,0]) + 1e-8 || uniform + 1e-8): p0 = e^2/(e^2+3) = 0.711235, others 0.0962551:
  // 0.711235 ln(4*0.711235) + 3*0.0962551 ln(4*0.0962551) = 0.743624 - 0.275614 = 0.468010
  const zero = new Float32Array(4);
  close([rowKl(zero, Float32Array.from([2, 0, 0, 0]))], [0.46801], 1e-5);
  // softmax([0.1, 0.2, 0.3, 0.4]) = [0.213838, 0.236329, 0.261183, 0.288651]
  // -> sum p ln(4p) = -0.033410 - 0.013290 + 0.011430 + 0.041495 = 0.0062235
  close([rowKl(zero, Float32Array.from([0.1, 0.2, 0.3, 0.4]))], [0.0062235], 1e-6);
  assert.equal(rowKl(Float32Array.from([1, 2]), Float32Array.from([1, 2])), 0);
  // a = 0 ([2, 4]); b row 0 = [0.1, 0.2, 0.3, 0.4], row 1 = [2, 0, 0, 0]
  // I = [0.000622, 0.001245, 0.001867, 0.002489, 0.936021, 0, 0, 0]
  // sorted: 0, 0, 0, 0.000622, 0.001245, 0.001867, 0.002489, 0.936021
  // Q(0.5) = s[3] = 0.000622, Q(0.75) = s[5] = 0.001867, Q(0.25) = s[1] = 0 -> thr = 0.000622 + 1.5*0.001867 = 0.003423
  const a = new Float32Array(8);
  const b = Float32Array.from([0.1, 0.2, 0.3, 0.4, 2, 0, 0, 0]);
  const { importance, threshold, mask } = arceeFusionMask(a, b, [2, 4]);
  close(Array.from(importance), [0.000622, 0.001245, 0.001867, 0.002489, 0.936021, 0, 0, 0], 1e-6);
  close([threshold], [0.003423], 1e-6);
  assert.deepEqual(Array.from(mask), [0, 0, 0, 0, 1, 0, 0, 0]);
  const models = oneTensor({ base: Array.from(a), x: Array.from(b) }, [2, 4]);
  const r = { merge_method: "arcee_fusion", base_model: "base", models: [{ model: "x" }] };
  close(vals(referenceMerge(r, models), "w"), [0, 0, 0, 0, 2, 0, 0, 0], 0);
  // as one row of 8 (1-D) the KL differs and so does the mask: only the [2] stands out again
  const flat = oneTensor({ base: Array.from(a), x: Array.from(b) });
  close(vals(referenceMerge(r, flat), "w"), [0, 0, 0, 0, 2, 0, 0, 0], 0);
  // b - a everywhere equal in a row: I equal -> Q's equal -> thr = I -> every element (I >= thr) is b
  close(vals(referenceMerge(r, oneTensor({ base: [0, 0, 0], x: [1, 1, 1] })), "w"), [1, 1, 1], 0);
  const three = oneTensor({ base: [0], x: [1], y: [2] });
  assert.throws(() => referenceMerge({ merge_method: "arcee_fusion", base_model: "base", models: [{ model: "x" }, { model: "y" }] }, three), /exactly one/);
});

test("issue 10 shape rules: nuslerp and model_stock cut embeddings to the common block, della to the base's", () => {
  const emb = (rows: number, seed: number) => Array.from({ length: rows * 2 }, (_, i) => ((i * 7 + seed) % 5) - 2 + seed * 0.5);
  const models = new Map([
    ["base", model(null, [["lm_head.weight", emb(3, 1), [3, 2]]])],
    ["x", model(null, [["lm_head.weight", emb(4, 2), [4, 2]]])],
    ["y", model(null, [["lm_head.weight", emb(3, 3), [3, 2]]])],
  ]);
  const shapeOf = (recipe: unknown) => referenceMerge(recipe, models).tensors.get("lm_head.weight")!.shape;
  assert.deepEqual(shapeOf({ merge_method: "nuslerp", base_model: "base", models: [{ model: "x", parameters: { weight: 1 } }, { model: "y", parameters: { weight: 1 } }] }), [3, 2]);
  assert.deepEqual(shapeOf({ merge_method: "model_stock", base_model: "base", models: [{ model: "x" }, { model: "y" }] }), [3, 2]);
  assert.deepEqual(shapeOf({ merge_method: "della", base_model: "base", models: [{ model: "x", parameters: { weight: 1 } }] }), [3, 2]);
  assert.throws(() => shapeOf({ merge_method: "karcher", models: [{ model: "x" }, { model: "y" }] }), /shapes differ/);
  assert.throws(() => shapeOf({ merge_method: "nearswap", base_model: "base", models: [{ model: "x" }], parameters: { t: 1 } }), /shapes differ/);
});
