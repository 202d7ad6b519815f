// Kernel specs for the merge kernels, on small hand-worked cases.
import { weightedSum } from "../../assembly/blend";
import { slerpStats } from "../../assembly/reduce";
import { taskVectorMerge, maskedL1 } from "../../assembly/taskvector";
import { absDeltaRange, keyRange } from "../../assembly/select";
import { setScratch } from "../../assembly/tile";
import {
  DTYPE_BF16, DTYPE_F16, DTYPE_F32, DTYPE_NONE, SCRATCH_BYTES, SUM_RECORD, TRIM_MAGNITUDE, TRIM_NONE, TRIM_RANDOM, TV_CONSENSUS,
  TV_KEY, TV_MODE, TV_NORMALIZE, TV_RECORD, TV_RESCALE, TV_THRESHOLD, TV_TIES, TV_WEIGHT, RANGE_ABOVE, RANGE_INSIDE, RANGE_KEPT,
} from "../../assembly/layout";

setScratch(heap.alloc(SCRATCH_BYTES));

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

/**
 * A range pass from lo = 2.0 with no upper bound (hi = 2^31) over |x - 0| for x = 1, -2, 3, -4, 0.5, 8, 2
 * (stored as xDtype, the zero base as bDtype): a key equal to lo is inside, nothing is above.
 */
function expectOpenRange(x: usize, xDtype: i32, base: usize, bDtype: i32): void {
  const lo = reinterpret<u32>(<f32>2.0), shift: u32 = 20;
  const hist = heap.alloc(4 * 1025);
  memory.fill(hist, 0, 4 * 1025);
  const cand = heap.alloc(64), stats = heap.alloc(24);
  absDeltaRange(x, xDtype, base, bDtype, 7, DTYPE_NONE, lo, 0x80000000, shift, hist, cand, 16, stats);
  expect(load<f64>(stats, RANGE_ABOVE)).toBe(0.0);
  expect(load<f64>(stats, RANGE_INSIDE)).toBe(5.0); // 2, 3, 4, 8, 2
  expect(load<f64>(stats, RANGE_KEPT)).toBe(5.0);
  expect(load<u32>(cand)).toBe(lo);
  expect(load<u32>(cand + 16)).toBe(lo); // the last element, from the scalar tail
  // Buckets of 2^20 key steps from 2.0: 3.0 is 2^22 steps up, 4.0 2^23, 8.0 2^24.
  expect(load<u32>(hist)).toBe(2);
  expect(load<u32>(hist + (4 << 2))).toBe(1);
  expect(load<u32>(hist + (8 << 2))).toBe(1);
  expect(load<u32>(hist + (16 << 2))).toBe(1);
}

function tvRecord(table: usize, i: i32, ptr: usize, weight: f32, mode: u32, threshold: u32, ties: u32): void {
  const rec = table + <usize>i * TV_RECORD;
  store<u32>(rec, <u32>ptr);
  store<u32>(rec, DTYPE_F32, 4);
  store<f32>(rec, weight, TV_WEIGHT);
  store<f32>(rec, 1.0, TV_RESCALE);
  store<u32>(rec, mode, TV_MODE);
  store<u32>(rec, threshold, TV_THRESHOLD);
  store<u32>(rec, ties, TV_TIES);
  store<u32>(rec, 0, TV_KEY);
}

describe("weightedSum", () => {
  it("sums weighted inputs and divides by the weight sum", () => {
    const a = f32s([1, 2, 3, 4, 5]), b = f32s([10, 20, 30, 40, 50]);
    const table = heap.alloc(2 * SUM_RECORD);
    store<u32>(table, <u32>a); store<u32>(table, DTYPE_F32, 4); store<f32>(table, 0.25, 8);
    store<u32>(table + SUM_RECORD, <u32>b); store<u32>(table + SUM_RECORD, DTYPE_F32, 4); store<f32>(table + SUM_RECORD, 0.75, 8);
    const out = heap.alloc(20);
    weightedSum(table, 2, 5, DTYPE_NONE, true, 0.5, out, DTYPE_F32);
    // (0.25*1 + 0.75*10) / 0.5 = 15.5, and likewise 31, 46.5, 62, 77.5
    expect(load<f32>(out)).toBe(15.5);
    expect(load<f32>(out + 4)).toBe(31.0);
    expect(load<f32>(out + 16)).toBe(77.5);
  });
  it("writes bf16 when asked", () => {
    const a = f32s([1.00390625]);
    const table = heap.alloc(SUM_RECORD);
    store<u32>(table, <u32>a); store<u32>(table, DTYPE_F32, 4); store<f32>(table, 3.0, 8);
    const out = heap.alloc(2);
    weightedSum(table, 1, 1, DTYPE_NONE, false, 1, out, DTYPE_BF16);
    expect(load<u16>(out)).toBe(0x4041); // 3.01171875 is 3/4 of a bf16 step (2^-6) above 3: rounds up to 3.015625
  });
});

describe("taskVectorMerge", () => {
  it("reproduces the TIES worked example (trim to 3 of 6, elect sign, disjoint mean)", () => {
    const base = f32s([0, 0, 0, 0, 0, 0]);
    const t1 = f32s([0.80, -0.05, 0.60, -0.02, 0.01, 0.50]);
    const t2 = f32s([0.70, 0.04, -0.55, 0.03, -0.02, -0.40]);
    const t3 = f32s([-0.10, 0.90, 0.05, 0.85, 0.02, 0.45]);
    const table = heap.alloc(4 * TV_RECORD);
    tvRecord(table, 0, base, 0, TRIM_NONE, 0, 0);
    // Third-largest |tau| of each row, each held by exactly one element.
    tvRecord(table, 1, t1, 1, TRIM_MAGNITUDE, reinterpret<u32>(<f32>0.50), 1);
    tvRecord(table, 2, t2, 1, TRIM_MAGNITUDE, reinterpret<u32>(<f32>0.40), 1);
    tvRecord(table, 3, t3, 1, TRIM_MAGNITUDE, reinterpret<u32>(<f32>0.45), 1);
    const out = heap.alloc(24);
    taskVectorMerge(table, 4, 6, 0, 0, DTYPE_NONE, TV_CONSENSUS | TV_NORMALIZE, 1, 1, out, DTYPE_F32);
    // Kept: t1 {0.8, 0.6, 0.5}, t2 {0.7, -0.55, -0.4}, t3 {0.9, 0.85, 0.45}. Elected signs are all +.
    // Column 0: (0.8+0.7)/2; 1: 0.9; 2: 0.6 (t2 disagrees); 3: 0.85; 4: nothing kept; 5: (0.5+0.45)/2.
    expect(load<f32>(out)).toBeCloseTo(0.75);
    expect(load<f32>(out + 4)).toBeCloseTo(0.9);
    expect(load<f32>(out + 8)).toBeCloseTo(0.6);
    expect(load<f32>(out + 12)).toBeCloseTo(0.85);
    expect(load<f32>(out + 16)).toBe(0.0);
    expect(load<f32>(out + 20)).toBeCloseTo(0.475);
  });
  it("keeps only the tie budget's worth of elements equal to the threshold, lowest index first", () => {
    const base = f32s([0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const t = f32s([1, 1, 2, 1, 1, 1, 1, 1, 1]); // 8 ties at 1.0: the first three vector lanes, then the tail
    const table = heap.alloc(2 * TV_RECORD);
    tvRecord(table, 0, base, 0, TRIM_NONE, 0, 0);
    tvRecord(table, 1, t, 1, TRIM_MAGNITUDE, reinterpret<u32>(<f32>1.0), 5);
    const out = heap.alloc(36);
    taskVectorMerge(table, 2, 9, 0, 0, DTYPE_NONE, 0, 1, 1, out, DTYPE_F32);
    const expected: f32[] = [1, 1, 2, 1, 1, 1, 0, 0, 0];
    for (let i = 0; i < 9; i++) expect(load<f32>(out + (<usize>i << 2))).toBe(expected[i], "element " + i.toString());
    expect(load<u32>(table + TV_RECORD + TV_TIES)).toBe(0); // the budget was used up
  });
  it("sums weighted task vectors without consensus and applies lambda", () => {
    const base = f32s([1, 1]);
    const x1 = f32s([2, 0]), x2 = f32s([3, 5]);
    const table = heap.alloc(3 * TV_RECORD);
    tvRecord(table, 0, base, 0, TRIM_NONE, 0, 0);
    tvRecord(table, 1, x1, 0.5, TRIM_NONE, 0, 0);
    tvRecord(table, 2, x2, -1, TRIM_NONE, 0, 0);
    const out = heap.alloc(8);
    taskVectorMerge(table, 3, 2, 0, 0, DTYPE_NONE, 0, 1, 2, out, DTYPE_F32);
    // element 0: 1 + 2*(0.5*1 + -1*2) = -2; element 1: 1 + 2*(0.5*-1 + -1*4) = -8
    expect(load<f32>(out)).toBe(-2.0);
    expect(load<f32>(out + 4)).toBe(-8.0);
  });
  it("keeps about `density` of the elements in random mode, the same ones whatever the chunking", () => {
    const n = 1 << 14;
    const base = heap.alloc(n * 4), x = heap.alloc(n * 4);
    for (let i = 0; i < n; i++) { store<f32>(base + (<usize>i << 2), 0); store<f32>(x + (<usize>i << 2), 1); }
    const table = heap.alloc(2 * TV_RECORD);
    tvRecord(table, 0, base, 0, TRIM_NONE, 0, 0);
    tvRecord(table, 1, x, 1, TRIM_RANDOM, 0x4ccccccd, 0); // density 0.3
    store<u32>(table + TV_RECORD + TV_KEY, 12345);
    const whole = heap.alloc(n * 4);
    taskVectorMerge(table, 2, n, 0, 0, DTYPE_NONE, 0, 1, 1, whole, DTYPE_F32);
    let kept = 0;
    for (let i = 0; i < n; i++) kept += <i32>load<f32>(whole + (<usize>i << 2));
    expect(<f64>kept / <f64>n).toBeCloseTo(0.3, 1);
    // The second half as its own chunk starting at element n/2 gives the same mask.
    const half = heap.alloc(n * 2);
    tvRecord(table, 0, base + (<usize>n << 1), 0, TRIM_NONE, 0, 0);
    store<u32>(table + TV_RECORD, <u32>(x + (<usize>n << 1)));
    taskVectorMerge(table, 2, n / 2, n / 2, 0, DTYPE_NONE, 0, 1, 1, half, DTYPE_F32);
    for (let i = 0; i < n / 2; i++) expect(load<f32>(half + (<usize>i << 2))).toBe(load<f32>(whole + (<usize>(i + n / 2) << 2)));
  });
});

describe("maskedL1", () => {
  it("sums |tau| and |kept tau| per tile", () => {
    const base = f32s([0, 0, 0, 0, 0]);
    const t = f32s([-3, 1, 2, -0.5, 4]);
    const table = heap.alloc(2 * TV_RECORD);
    tvRecord(table, 0, base, 0, TRIM_NONE, 0, 0);
    tvRecord(table, 1, t, 1, TRIM_MAGNITUDE, reinterpret<u32>(<f32>2.0), 1);
    const partials = heap.alloc(16);
    maskedL1(table, 2, 5, 0, 0, DTYPE_NONE, partials);
    expect(load<f64>(partials)).toBe(10.5);
    expect(load<f64>(partials + 8)).toBe(9.0); // 3 + 2 + 4
  });
});

describe("slerpStats", () => {
  it("accumulates squared norms and the dot product in float64", () => {
    const a = f32s([1, 2, 3, 4, 5]), b = f32s([2, 0, -1, 1, 1]);
    const partials = heap.alloc(24);
    slerpStats(a, DTYPE_F32, b, DTYPE_F32, 5, DTYPE_NONE, partials);
    expect(load<f64>(partials)).toBe(55.0);
    expect(load<f64>(partials + 8)).toBe(7.0);
    expect(load<f64>(partials + 16)).toBe(8.0); // 2 + 0 - 3 + 4 + 5
  });
});

describe("radix select passes", () => {
  it("counts keys above the range, histograms and compacts the ones inside", () => {
    const base = f32s([0, 0, 0, 0, 0, 0, 0]);
    const x = f32s([1, -2, 3, -4, 0.5, 8, 2]);
    const lo = reinterpret<u32>(<f32>1.5), hi = reinterpret<u32>(<f32>4.0);
    const hist = heap.alloc(4 * 1024);
    memory.fill(hist, 0, 4 * 1024);
    const cand = heap.alloc(64), stats = heap.alloc(24);
    absDeltaRange(x, DTYPE_F32, base, DTYPE_F32, 7, DTYPE_NONE, lo, hi, 20, hist, cand, 16, stats);
    expect(load<f64>(stats, RANGE_ABOVE)).toBe(2.0); // |-4| and 8
    expect(load<f64>(stats, RANGE_INSIDE)).toBe(3.0); // 2, 3, 2
    expect(load<f64>(stats, RANGE_KEPT)).toBe(3.0);
    expect(load<u32>(cand)).toBe(reinterpret<u32>(<f32>2.0));
    expect(load<u32>(cand + 4)).toBe(reinterpret<u32>(<f32>3.0));
    // keyRange narrows the candidates to [3, 4) and moves them to the front.
    memory.fill(hist, 0, 4 * 1024);
    keyRange(cand, 3, reinterpret<u32>(<f32>3.0), hi, 0, hist, true, stats);
    expect(load<f64>(stats, RANGE_ABOVE)).toBe(0.0);
    expect(load<f64>(stats, RANGE_INSIDE)).toBe(1.0);
    expect(load<u32>(cand)).toBe(reinterpret<u32>(<f32>3.0));
    expect(load<u32>(hist)).toBe(1);
  });

  it("reads BF16 and F16 inputs in place, with lo inclusive and hi = 2^31 as no upper bound", () => {
    // The same values as bf16 (the top half of the float32 bits) and as f16 patterns.
    const xb = u16s([0x3f80, 0xc000, 0x4040, 0xc080, 0x3f00, 0x4100, 0x4000]);
    const xh = u16s([0x3c00, 0xc000, 0x4200, 0xc400, 0x3800, 0x4800, 0x4000]);
    const zeros16 = u16s([0, 0, 0, 0, 0, 0, 0]), zeros32 = f32s([0, 0, 0, 0, 0, 0, 0]);
    expectOpenRange(xb, DTYPE_BF16, zeros16, DTYPE_BF16);
    expectOpenRange(xh, DTYPE_F16, zeros16, DTYPE_F16);
    expectOpenRange(xb, DTYPE_BF16, zeros32, DTYPE_F32);
    expectOpenRange(f32s([1, -2, 3, -4, 0.5, 8, 2]), DTYPE_F32, zeros16, DTYPE_BF16);
  });
});
