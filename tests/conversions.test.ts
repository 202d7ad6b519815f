// f16 and bf16 conversions in the kernels, exhaustively over all 65,536 bit patterns, against the
// independent scalar reference (tests/reference/float16.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { DTYPE_BF16, DTYPE_F16 } from "../assembly/layout";
import { loadKernels } from "../src/kernels/kernels";
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from "./reference/float16";

const N = 65536;
const formats = [
  { name: "f16", code: DTYPE_F16, toF32: f16BitsToF32, fromF32: f32ToF16Bits },
  { name: "bf16", code: DTYPE_BF16, toF32: bf16BitsToF32, fromF32: f32ToBf16Bits },
];

/** Runs a kernel conversion over `src` (u16 or f32 values) and returns the result as bits. */
async function kernels() {
  const k = await loadKernels(64 << 20);
  return {
    decode(bits: Uint16Array, code: number): Uint32Array {
      k.arena.reset();
      const src = k.arena.alloc(bits.length * 2), dst = k.arena.alloc(bits.length * 4);
      k.arena.u8(src, bits.length * 2).set(new Uint8Array(bits.buffer));
      k.exports.decode(src, code, dst, bits.length);
      return k.arena.copyU32(dst, bits.length);
    },
    encode(values: Float32Array, code: number): Uint16Array {
      k.arena.reset();
      const src = k.arena.alloc(values.length * 4), dst = k.arena.alloc(values.length * 2);
      k.arena.f32(src, values.length).set(values);
      k.exports.encode(src, code, dst, values.length);
      return new Uint16Array(k.arena.copyU8(dst, values.length * 2).buffer);
    },
    quantize(values: Float32Array, code: number): Float32Array {
      k.arena.reset();
      const buf = k.arena.alloc(values.length * 4);
      k.arena.f32(buf, values.length).set(values);
      k.exports.quantize(buf, code, values.length);
      const out = new Float32Array(values.length);
      out.set(k.arena.f32(buf, values.length));
      return out;
    },
  };
}

const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
const bitsOf = (x: number) => ((f32[0] = x), u32[0]!);
const fromBits = (b: number) => ((u32[0] = b), f32[0]!);

for (const fmt of formats) {
  test(`${fmt.name} -> f32 is exact for all 65,536 patterns`, async () => {
    const k = await kernels();
    const all = new Uint16Array(N).map((_, i) => i);
    const got = k.decode(all, fmt.code);
    for (let i = 0; i < N; i++) {
      const want = fmt.toF32(i);
      if (Number.isNaN(want)) {
        assert.ok(Number.isNaN(fromBits(got[i]!)), `${fmt.name} ${i.toString(16)}: NaN stays NaN`);
        assert.equal(got[i]! >>> 31, i >>> 15, `${fmt.name} ${i.toString(16)}: NaN keeps its sign`);
      } else {
        assert.equal(got[i], bitsOf(want), `${fmt.name} 0x${i.toString(16)}`);
      }
    }
  });

  test(`f32 -> ${fmt.name} rounds every representable value, every halfway point and its neighbours like the reference`, async () => {
    const k = await kernels();
    const values: number[] = [];
    const finite = Array.from({ length: N }, (_, i) => fmt.toF32(i)).filter((v) => Number.isFinite(v));
    const sorted = [...new Set(finite.map((v) => bitsOf(v)))].map(fromBits).sort((a, b) => a - b);
    for (const v of sorted) values.push(v);
    for (let i = 0; i + 1 < sorted.length; i++) {
      // Halfway between neighbours (exact in float32 for both formats), and one float32 ulp either side.
      const mid = Math.fround((sorted[i]! + sorted[i + 1]!) / 2);
      const b = bitsOf(mid);
      values.push(mid, fromBits(b + 1), fromBits(b - 1));
    }
    // Past the largest finite value, infinities, NaNs of both signs, and random float32 bit patterns.
    values.push(65504, 65519.996, 65520, 65536, 1e38, 3.4028234663852886e38, Infinity, -Infinity, NaN, -NaN, fromBits(0x7f800001), fromBits(0xffc00001));
    for (let i = 0; i < 200000; i++) values.push(fromBits((Math.imul(i, 2654435761) ^ (i << 7)) >>> 0));
    const input = Float32Array.from(values);
    const got = k.encode(input, fmt.code);
    for (let i = 0; i < input.length; i++) {
      const want = fmt.fromF32(input[i]!);
      assert.equal(got[i], want, `${fmt.name}(${input[i]} = 0x${bitsOf(input[i]!).toString(16)}): 0x${got[i]!.toString(16)} vs 0x${want.toString(16)}`);
    }
    // Load-time casts (quantize) are encode then decode.
    const q = k.quantize(input, fmt.code);
    for (let i = 0; i < input.length; i += 7) {
      const want = fmt.toF32(fmt.fromF32(input[i]!));
      assert.ok(Number.isNaN(want) ? Number.isNaN(q[i]!) : q[i] === want, `quantize ${input[i]}`);
    }
  });
}
