// Kernel specs for dtype conversion, on hand-worked values. (The exhaustive 65,536-pattern checks
// against an independent reference run in tests/conversions.test.ts.)
import { decode, encode, quantize } from "../../assembly/convert";
import { DTYPE_BF16, DTYPE_F16 } from "../../assembly/layout";

// 11 values: the SIMD path handles 8, the scalar tail 3, and both must agree.
const VALUES: f32[] = [1.0, -2.0, 65504.0, 65520.0, 5.960464477539063e-8, 2.9802322387695312e-8, 8.940696716308594e-8, 0.0, -0.0, Infinity, 1.00390625];
// f16 has 10 mantissa bits, so 1 + 2^-8 is exact there (0x3c04).
const F16: u16[] = [0x3c00, 0xc000, 0x7bff, 0x7c00, 0x0001, 0x0000, 0x0002, 0x0000, 0x8000, 0x7c00, 0x3c04];
// bf16 of 1.00390625 (= 1 + 2^-8, exactly halfway between 1.0 and 1.0078125): ties to even, 0x3f80.
const BF16: u16[] = [0x3f80, 0xc000, 0x4780, 0x4780, 0x3380, 0x3300, 0x33c0, 0x0000, 0x8000, 0x7f80, 0x3f80];

function f32s(values: f32[]): usize {
  const p = heap.alloc(values.length * 4);
  for (let i = 0; i < values.length; i++) store<f32>(p + (<usize>i << 2), values[i]);
  return p;
}

describe("encode", () => {
  it("rounds float32 to f16 to nearest even, with subnormals and overflow to infinity", () => {
    const src = f32s(VALUES);
    const dst = heap.alloc(VALUES.length * 2);
    encode(src, DTYPE_F16, dst, VALUES.length);
    for (let i = 0; i < VALUES.length; i++) expect(load<u16>(dst + (<usize>i << 1))).toBe(F16[i], "value " + i.toString());
  });
  it("rounds float32 to bf16 to nearest even", () => {
    const src = f32s(VALUES);
    const dst = heap.alloc(VALUES.length * 2);
    encode(src, DTYPE_BF16, dst, VALUES.length);
    for (let i = 0; i < VALUES.length; i++) expect(load<u16>(dst + (<usize>i << 1))).toBe(BF16[i], "value " + i.toString());
  });
  it("keeps NaN a quiet NaN with its sign", () => {
    const src = f32s([NaN, NaN, NaN, NaN, NaN, NaN, NaN, NaN, -NaN]);
    store<u32>(src + 32, 0xff800001); // a negative signalling NaN in the scalar tail
    const dst = heap.alloc(18);
    encode(src, DTYPE_F16, dst, 9);
    expect(load<u16>(dst)).toBe(0x7e00);
    expect(load<u16>(dst + 16)).toBe(0xfe00);
    encode(src, DTYPE_BF16, dst, 9);
    expect(load<u16>(dst)).toBe(0x7fc0);
    expect(load<u16>(dst + 16)).toBe(0xffc0);
  });
});

describe("decode", () => {
  it("widens f16 exactly, including subnormals and infinity", () => {
    const src = heap.alloc(22);
    for (let i = 0; i < 11; i++) store<u16>(src + (<usize>i << 1), F16[i]);
    const dst = heap.alloc(44);
    decode(src, DTYPE_F16, dst, 11);
    expect(load<f32>(dst)).toBe(1.0);
    expect(load<f32>(dst + 4)).toBe(-2.0);
    expect(load<f32>(dst + 8)).toBe(65504.0);
    expect(load<f32>(dst + 12)).toBe(Infinity);
    expect(load<f32>(dst + 16)).toBe(5.960464477539063e-8); // 2^-24, the smallest subnormal
    expect(load<u32>(dst + 32)).toBe(0x80000000); // -0
    expect(load<f32>(dst + 24)).toBe(1.1920928955078125e-7); // 2 * 2^-24
  });
  it("widens bf16 by shifting", () => {
    const src = heap.alloc(18);
    for (let i = 0; i < 9; i++) store<u16>(src + (<usize>i << 1), <u16>(0x3f80 + i));
    const dst = heap.alloc(36);
    decode(src, DTYPE_BF16, dst, 9);
    for (let i = 0; i < 9; i++) expect(load<u32>(dst + (<usize>i << 2))).toBe(<u32>(0x3f80 + i) << 16);
  });
});

describe("quantize", () => {
  it("rounds values in place as a load-time cast to bf16 would", () => {
    const buf = f32s([1.00390625, 1.01171875, 3.0, 1.0e-3, 1.00390625]);
    quantize(buf, DTYPE_BF16, 5);
    expect(load<f32>(buf)).toBe(1.0); // halfway: to even
    expect(load<f32>(buf + 4)).toBe(1.015625); // halfway between 1.0078125 (odd) and 1.015625 (even)
    expect(load<f32>(buf + 8)).toBe(3.0);
    expect(load<f32>(buf + 16)).toBe(1.0); // the scalar tail agrees with SIMD
  });
});
