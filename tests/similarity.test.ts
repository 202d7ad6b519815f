// The similarity kernel (assembly/similarity.ts via src/align/similarity.ts) against a plain float64
// sum written here: S[i][j] = Σ over pairs Σ_t unit_i(A)[t] · unit_j(B)[t], where a unit is a row of an
// [n, k] tensor (axis 0), a column of a [k, n] tensor (axis 1), or one entry of an [n] vector.
import assert from "node:assert/strict";
import { test } from "node:test";
import { alignmentKernels } from "../src/align/kernels";
import { similarityMatrix as unfoldedSimilarity, similarityRows, tensorUnfolding, wholeAxis } from "../src/align/similarity";

interface UnfoldedPair {
  a: Float32Array;
  b: Float32Array;
  shape: number[];
  axis: 0 | 1;
}

const similarityMatrix = (n: number, pairs: UnfoldedPair[]) => unfoldedSimilarity(n, pairs.map((p) => wholeAxis(p.shape, p.a, p.b, p.axis)));

function values(seed: number, count: number): Float32Array {
  const out = new Float32Array(count);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = x / 4294967296 - 0.5;
  }
  return out;
}

function referenceSimilarity(n: number, pairs: UnfoldedPair[]): Float64Array {
  const s = new Float64Array(n * n);
  for (const p of pairs) {
    const k = p.a.length / n;
    const unit = (m: Float32Array, i: number, t: number) => (p.axis === 0 ? m[i * k + t]! : m[t * n + i]!);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let t = 0; t < k; t++) sum += unit(p.a, i, t) * unit(p.b, j, t);
      s[i * n + j] += sum;
    }
  }
  return s;
}

/** f32 partial sums over at most 256 products: error bound ~ k · 2^-24 · Σ|a·b|, checked loosely. */
function assertClose(got: Float32Array, want: Float64Array, pairs: UnfoldedPair[], n: number, what: string): void {
  const k = pairs.reduce((sum, p) => sum + p.a.length / n, 0);
  const tolerance = 1e-6 * Math.max(1, k);
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i]! - want[i]!) <= tolerance, `${what}: S[${Math.floor(i / n)}][${i % n}] = ${got[i]}, expected ${want[i]} (tolerance ${tolerance})`);
  }
}

test("one [n, k] tensor, axis 0: every edge case of the 4 x 4 blocks and 256-wide k tiles", async () => {
  for (const n of [1, 3, 4, 5, 8, 17, 70]) {
    for (const k of [1, 3, 4, 7, 255, 256, 257, 600]) {
      const pair: UnfoldedPair = { a: values(n * 1000 + k, n * k), b: values(n * 7 + k * 13, n * k), shape: [n, k], axis: 0 };
      assertClose(await similarityMatrix(n, [pair]), referenceSimilarity(n, [pair]), [pair], n, `n=${n} k=${k}`);
    }
  }
});

test("[k, n] tensors on axis 1 are unfolded by columns", async () => {
  for (const [k, n] of [[5, 3], [64, 20], [300, 33]] as const) {
    const pair: UnfoldedPair = { a: values(k + n, k * n), b: values(k * n + 1, k * n), shape: [k, n], axis: 1 };
    assertClose(await similarityMatrix(n, [pair]), referenceSimilarity(n, [pair]), [pair], n, `${k}x${n} axis 1`);
  }
});

test("several tensors of one group add up, vectors included (an MLP layer: weight rows, bias, next weight columns)", async () => {
  const n = 24, fanIn = 10, fanOut = 6;
  const pairs: UnfoldedPair[] = [
    { a: values(1, n * fanIn), b: values(2, n * fanIn), shape: [n, fanIn], axis: 0 },
    { a: values(3, n), b: values(4, n), shape: [n], axis: 0 },
    { a: values(5, fanOut * n), b: values(6, fanOut * n), shape: [fanOut, n], axis: 1 },
  ];
  assertClose(await similarityMatrix(n, pairs), referenceSimilarity(n, pairs), pairs, n, "MLP group");
});

test("a planted permutation shows as each row's largest entry", async () => {
  const n = 64, k = 128;
  const a = values(9, n * k);
  const perm = Array.from({ length: n }, (_, i) => (i * 37 + 11) % n);
  const b = new Float32Array(n * k);
  for (let j = 0; j < n; j++) for (let t = 0; t < k; t++) b[j * k + t] = a[perm[j]! * k + t]!;
  const s = await similarityMatrix(n, [{ a, b, shape: [n, k], axis: 0 }]);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < n; j++) if (s[i * n + j]! > s[i * n + best]!) best = j;
    assert.equal(perm[best], i, `unit ${i} of A is unit ${best} of B`);
  }
});

test("a pair whose shape does not match n is refused", async () => {
  await assert.rejects(similarityMatrix(4, [{ a: values(1, 12), b: values(2, 12), shape: [3, 4], axis: 0 }]), (e: Error & { code?: string }) => e.code === "E_COST_INVALID");
});

test("a tensor larger than the window streams through it in column chunks", async () => {
  // 8 x 300000 floats is 2.4 M per operand; the window holds 1 M, so three chunks add into S.
  for (const [shape, axis] of [[[8, 300_000], 0], [[300_000, 8], 1]] as const) {
    const size = shape[0] * shape[1], n = shape[axis];
    const pair: UnfoldedPair = { a: values(size + axis, size), b: values(size * 3 + axis, size), shape: [...shape], axis };
    assertClose(await similarityMatrix(n, [pair]), referenceSimilarity(n, [pair]), [pair], n, `[${shape}] axis ${axis}`);
  }
});

test("a block of a structured axis, B read through source maps on both axes", async () => {
  // A [12, 10] tensor whose rows are (3 blocks) x (2 units) x (2 positions); the units of block 1 are
  // the group. B is read through a row map and a column map, as weight matching does for the other
  // groups. Reference: gather B explicitly, then unit i = rows 4 + 2i .. 4 + 2i + 1, all columns.
  const rows = 12, cols = 10, start = 4, n = 2, inner = 2;
  const a = values(77, rows * cols), b = values(78, rows * cols);
  const rowMap = Int32Array.from([3, 2, 1, 0, 7, 6, 5, 4, 11, 9, 10, 8]);
  const colMap = Int32Array.from({ length: cols }, (_, j) => (j * 3) % cols);
  const gathered = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) gathered[r * cols + c] = b[rowMap[r]! * cols + colMap[c]!]!;
  const want = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    for (let q = 0; q < inner; q++) for (let c = 0; c < cols; c++) {
      want[i * n + j] += a[(start + i * inner + q) * cols + c]! * gathered[(start + j * inner + q) * cols + c]!;
    }
  }
  for (const axis of [0, 1] as const) {
    // The same block read as axis 1 of the transposed tensor.
    const at = axis === 0 ? a : transposeOf(a, rows, cols), bt = axis === 0 ? b : transposeOf(b, rows, cols);
    const shape = axis === 0 ? [rows, cols] : [cols, rows];
    const maps = axis === 0 ? [rowMap, colMap] : [colMap, rowMap];
    const got = await unfoldedSimilarity(n, [tensorUnfolding({ shape, a: at, b: bt, axis, start, n, inner, mapsB: maps })]);
    for (let e = 0; e < n * n; e++) assert.ok(Math.abs(got[e]! - want[e]!) < 1e-5, `axis ${axis}: S[${e}] = ${got[e]}, expected ${want[e]}`);
  }
});

test("rows of S computed in separate pieces, cut anywhere, are the whole matrix's rows bit for bit", async () => {
  // Long enough (k = 33000) that each product runs over three column chunks; B read through maps on
  // both axes; units on axis 0 of one tensor and axis 1 of another. Each piece is also checked against
  // the float64 reference, so equal pieces cannot both be wrong.
  const n = 70, k = 33000;
  const colMap = Int32Array.from({ length: k }, (_, j) => (j * 7) % k), unitMap = Int32Array.from({ length: n }, (_, i) => (i * 3) % n);
  const a0 = values(31, n * k), b0 = values(32, n * k), a1 = values(33, k * n), b1 = values(34, k * n);
  const unfoldings = () => [
    tensorUnfolding({ shape: [n, k], a: a0, b: b0, axis: 0, start: 0, n, inner: 1, mapsB: [unitMap, colMap] }),
    tensorUnfolding({ shape: [k, n], a: a1, b: b1, axis: 1, start: 0, n, inner: 1, mapsB: [colMap, unitMap] }),
  ];
  const want = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    for (let t = 0; t < k; t++) want[i * n + j] += a0[i * k + t]! * b0[unitMap[j]! * k + colMap[t]!]! + a1[t * n + i]! * b1[colMap[t]! * n + unitMap[j]!]!;
  }
  const kernels = await alignmentKernels();
  const whole = await similarityRows(kernels, n, unfoldings());
  for (const cuts of [[0, 35, 70], [0, 1, 6, 33, 69, 70], [0, 4, 8, 70]]) {
    for (let c = 0; c + 1 < cuts.length; c++) {
      const [u0, u1] = [cuts[c]!, cuts[c + 1]!];
      const part = await similarityRows(kernels, n, unfoldings(), u0, u1);
      for (let e = 0; e < part.length; e++) {
        assert.ok(Object.is(part[e], whole[u0 * n + e]), `rows ${u0}..${u1}: S[${u0 * n + e}] = ${part[e]}, whole matrix ${whole[u0 * n + e]}`);
        assert.ok(Math.abs(part[e]! - want[u0 * n + e]!) < 1e-3, `S[${u0 * n + e}] = ${part[e]}, float64 ${want[u0 * n + e]}`);
      }
    }
  }
});

function transposeOf(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = m[r * cols + c]!;
  return out;
}
