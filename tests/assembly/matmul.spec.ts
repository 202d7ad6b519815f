// Kernel specs for the forward pass's matrix products, on hand-worked cases. (The float64 comparisons
// over many shapes, both builds and the determinism contract in full run in tests/matmul.test.ts.)
import { linear, linearKN } from "../../assembly/matmul";
import { DTYPE_BF16, DTYPE_F16, DTYPE_F32, MATMUL_SCRATCH_BYTES } from "../../assembly/layout";

const scratch = heap.alloc(MATMUL_SCRATCH_BYTES);

function f32s(values: f32[]): usize {
  const p = heap.alloc(values.length * 4);
  for (let i = 0; i < values.length; i++) store<f32>(p + (<usize>i << 2), values[i]);
  return p;
}

function u16s(values: u16[]): usize {
  const p = heap.alloc(values.length * 2);
  for (let i = 0; i < values.length; i++) store<u16>(p + (<usize>i << 1), values[i]);
  return p;
}

function expectY(y: usize, want: f32[], what: string): void {
  for (let i = 0; i < want.length; i++) expect(load<f32>(y + (<usize>i << 2))).toBe(want[i], what + ", element " + i.toString());
}

// X = [[1, 2, 3], [4, 5, 6]], W = [[1, 0, -1], [0.5, 2, -3]] (n = 2 outputs, k = 3), all exact in every
// dtype: Y = X·Wᵀ = [[1 - 3, 0.5 + 4 - 9], [4 - 6, 2 + 10 - 18]] = [[-2, -4.5], [-2, -6]].
const X: f32[] = [1, 2, 3, 4, 5, 6];
const Y: f32[] = [-2, -4.5, -2, -6];

describe("linear", () => {
  it("multiplies by Wᵀ with F32, BF16 and F16 weights", () => {
    const x = f32s(X), y = heap.alloc(16);
    linear(x, 2, 3, f32s([1, 0, -1, 0.5, 2, -3]), DTYPE_F32, 2, y, 0, scratch);
    expectY(y, Y, "F32");
    linear(x, 2, 3, u16s([0x3f80, 0x0000, 0xbf80, 0x3f00, 0x4000, 0xc040]), DTYPE_BF16, 2, y, 0, scratch);
    expectY(y, Y, "BF16");
    linear(x, 2, 3, u16s([0x3c00, 0x0000, 0xbc00, 0x3800, 0x4000, 0xc200]), DTYPE_F16, 2, y, 0, scratch);
    expectY(y, Y, "F16");
  });
  it("adds to Y with accumulate", () => {
    const y = f32s([10, 20, 30, 40]);
    linear(f32s(X), 2, 3, f32s([1, 0, -1, 0.5, 2, -3]), DTYPE_F32, 2, y, 1, scratch);
    expectY(y, [8, 15.5, 28, 34], "accumulated");
  });
  it("sums lanes over k, then (l0 + l1) + (l2 + l3), then the k % 4 tail, whatever the number of rows", () => {
    // k = 5, x = 1: the lanes hold 2^24, 1, 1, -2^24. (2^24 + 1) rounds to 2^24 and (1 - 2^24) is
    // exact, so the lane sum is 1; the tail adds 0.5. Summed in order of t it would be 0.5.
    const w = f32s([16777216, 1, 1, -16777216, 0.5]);
    const ones: f32[] = [];
    for (let i = 0; i < 9 * 5; i++) ones.push(1);
    const y = heap.alloc(9 * 4);
    linear(f32s(ones), 1, 5, w, DTYPE_F32, 1, y, 0, scratch); // one row: W read in place
    expectY(y, [1.5], "m = 1");
    linear(f32s(ones), 9, 5, w, DTYPE_F32, 1, y, 0, scratch); // nine rows: W packed in panels
    expectY(y, [1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5], "m = 9");
  });
  it("gives each row the same bits alone as among nine rows", () => {
    const m = 9, k = 7, n = 6;
    const xs: f32[] = [], ws: u16[] = [];
    for (let i = 0; i < m * k; i++) xs.push(<f32>Math.sin(<f64>i * 0.37));
    for (let i = 0; i < n * k; i++) ws.push(<u16>((0x3c00 + ((i * 977) & 0x3ff)) | (i & 1 ? 0x8000 : 0)));
    const x = f32s(xs), w = u16s(ws), all = heap.alloc(m * n * 4), one = heap.alloc(n * 4);
    linear(x, m, k, w, DTYPE_F16, n, all, 0, scratch);
    for (let i = 0; i < m; i++) {
      linear(x + <usize>(i * k * 4), 1, k, w, DTYPE_F16, n, one, 0, scratch);
      for (let j = 0; j < n; j++) expect(load<u32>(one + (<usize>j << 2))).toBe(load<u32>(all + (<usize>(i * n + j) << 2)), "row " + i.toString() + ", column " + j.toString());
    }
  });
});

describe("linearKN", () => {
  it("multiplies by W stored [k, n] with F32, BF16 and F16 weights", () => {
    // W [k = 3, n = 2] = [[1, 0.5], [0, 2], [-1, -3]]: the same W as above, transposed.
    const x = f32s(X), y = heap.alloc(16);
    linearKN(x, 2, 3, f32s([1, 0.5, 0, 2, -1, -3]), DTYPE_F32, 2, y, 0, scratch);
    expectY(y, Y, "F32");
    linearKN(x, 2, 3, u16s([0x3f80, 0x3f00, 0x0000, 0x4000, 0xbf80, 0xc040]), DTYPE_BF16, 2, y, 0, scratch);
    expectY(y, Y, "BF16");
    linearKN(x, 2, 3, u16s([0x3c00, 0x3800, 0x0000, 0x4000, 0xbc00, 0xc200]), DTYPE_F16, 2, y, 0, scratch);
    expectY(y, Y, "F16");
    const acc = f32s([10, 20, 30, 40]);
    linearKN(x, 2, 3, f32s([1, 0.5, 0, 2, -1, -3]), DTYPE_F32, 2, acc, 1, scratch);
    expectY(acc, [8, 15.5, 28, 34], "accumulated");
  });
  it("keeps linear's summation order on both of its paths", () => {
    const w = f32s([16777216, 1, 1, -16777216, 0.5]); // [k = 5, n = 1]: the same column as above
    const ones: f32[] = [];
    for (let i = 0; i < 9 * 5; i++) ones.push(1);
    const y = heap.alloc(9 * 4);
    linearKN(f32s(ones), 1, 5, w, DTYPE_F32, 1, y, 0, scratch);
    expectY(y, [1.5], "m = 1");
    linearKN(f32s(ones), 9, 5, w, DTYPE_F32, 1, y, 0, scratch);
    expectY(y, [1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5], "m = 9");
  });
});
