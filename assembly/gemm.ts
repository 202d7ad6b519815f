// C (n x m) += A (n x k) · B (m x k)ᵀ, all f32 row-major, so both operands run contiguously over t.
// Its user is the barrier's MLP classifier (dense layers X · Wᵀ, with W in the [out, in] layout
// checkpoints use, and the MLP training script in bench/rebasin). Weight matching's similarity
// matrices moved to the forward pass's `linear` (assembly/matmul.ts): 2-2.5x the speed on the same
// product, and every entry summed from its own two rows alone, so a matrix can be split by rows over
// workers without changing a bit.
//
// Register blocking: a 4 x 4 block of C is sixteen f32x4 accumulators fed by four rows of A and four
// of B, four t at a time (8 loads for 16 multiply-adds). Cache blocking: k is cut into tiles of
// K_TILE and the rows of B into tiles of J_TILE, so a tile of B (J_TILE x K_TILE floats, 64 KiB) stays
// in cache while every block of A's rows passes over it. Partial sums over one k-tile are f32; they are
// added into C tile by tile, so no sum runs over more than K_TILE products before reaching C.

const K_TILE = 256;
const J_TILE = 64;

// @ts-ignore: decorator
@inline function rowPtr(base: usize, row: i32, k: i32): usize {
  return base + ((<usize>row * <usize>k) << 2);
}

/** C (n x m) += A (n x k) · B (m x k)ᵀ. */
export function accumulateProduct(a: usize, b: usize, n: i32, m: i32, k: i32, s: usize): void {
  const k4 = k & ~3;
  for (let t0 = 0; t0 < k; t0 += K_TILE) {
    const t1 = min(k, t0 + K_TILE), t1v = min(k4, t1);
    for (let j0 = 0; j0 < m; j0 += J_TILE) {
      const j1 = min(m, j0 + J_TILE);
      let i = 0;
      for (; i + 4 <= n; i += 4) {
        let j = j0;
        for (; j + 4 <= j1; j += 4) block4x4(a, b, m, k, s, i, j, t0, t1v, t1);
        for (; j < j1; j++) for (let ii = 0; ii < 4; ii++) dotInto(a, b, m, k, s, i + ii, j, t0, t1);
      }
      for (; i < n; i++) for (let j = j0; j < j1; j++) dotInto(a, b, m, k, s, i, j, t0, t1);
    }
  }
}

/** The 4 x 4 block of C at (i, j), C having m columns, over t in [t0, t1): vector part up to t1v, scalar tail after. */
function block4x4(a: usize, b: usize, m: i32, k: i32, s: usize, i: i32, j: i32, t0: i32, t1v: i32, t1: i32): void {
  const a0 = rowPtr(a, i, k), a1 = rowPtr(a, i + 1, k), a2 = rowPtr(a, i + 2, k), a3 = rowPtr(a, i + 3, k);
  const b0 = rowPtr(b, j, k), b1 = rowPtr(b, j + 1, k), b2 = rowPtr(b, j + 2, k), b3 = rowPtr(b, j + 3, k);
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c02 = f32x4.splat(0), c03 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0), c12 = f32x4.splat(0), c13 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c22 = f32x4.splat(0), c23 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0), c32 = f32x4.splat(0), c33 = f32x4.splat(0);
  let t = t0;
  for (; t + 4 <= t1v; t += 4) {
    const off = <usize>t << 2;
    const x0 = v128.load(a0 + off), x1 = v128.load(a1 + off), x2 = v128.load(a2 + off), x3 = v128.load(a3 + off);
    const y0 = v128.load(b0 + off), y1 = v128.load(b1 + off), y2 = v128.load(b2 + off), y3 = v128.load(b3 + off);
    c00 = f32x4.add(c00, f32x4.mul(x0, y0)); c01 = f32x4.add(c01, f32x4.mul(x0, y1));
    c02 = f32x4.add(c02, f32x4.mul(x0, y2)); c03 = f32x4.add(c03, f32x4.mul(x0, y3));
    c10 = f32x4.add(c10, f32x4.mul(x1, y0)); c11 = f32x4.add(c11, f32x4.mul(x1, y1));
    c12 = f32x4.add(c12, f32x4.mul(x1, y2)); c13 = f32x4.add(c13, f32x4.mul(x1, y3));
    c20 = f32x4.add(c20, f32x4.mul(x2, y0)); c21 = f32x4.add(c21, f32x4.mul(x2, y1));
    c22 = f32x4.add(c22, f32x4.mul(x2, y2)); c23 = f32x4.add(c23, f32x4.mul(x2, y3));
    c30 = f32x4.add(c30, f32x4.mul(x3, y0)); c31 = f32x4.add(c31, f32x4.mul(x3, y1));
    c32 = f32x4.add(c32, f32x4.mul(x3, y2)); c33 = f32x4.add(c33, f32x4.mul(x3, y3));
  }
  const row0 = s + ((<usize>i * <usize>m + <usize>j) << 2), stride = <usize>m << 2;
  addRow(row0, c00, c01, c02, c03, a0, b0, b1, b2, b3, t, t1);
  addRow(row0 + stride, c10, c11, c12, c13, a1, b0, b1, b2, b3, t, t1);
  addRow(row0 + 2 * stride, c20, c21, c22, c23, a2, b0, b1, b2, b3, t, t1);
  addRow(row0 + 3 * stride, c30, c31, c32, c33, a3, b0, b1, b2, b3, t, t1);
}

/** Adds one row of a block (four lane sums, plus the scalar tail t..t1) into C at `out`. */
// @ts-ignore: decorator
@inline function addRow(out: usize, c0: v128, c1: v128, c2: v128, c3: v128, x: usize, b0: usize, b1: usize, b2: usize, b3: usize, t: i32, t1: i32): void {
  let s0 = hsum(c0), s1 = hsum(c1), s2 = hsum(c2), s3 = hsum(c3);
  for (let u = t; u < t1; u++) {
    const xv = load<f32>(x + (<usize>u << 2));
    s0 += xv * load<f32>(b0 + (<usize>u << 2));
    s1 += xv * load<f32>(b1 + (<usize>u << 2));
    s2 += xv * load<f32>(b2 + (<usize>u << 2));
    s3 += xv * load<f32>(b3 + (<usize>u << 2));
  }
  v128.store(out, f32x4.add(v128.load(out), f32x4(s0, s1, s2, s3)));
}

// @ts-ignore: decorator
@inline function hsum(c: v128): f32 {
  return (f32x4.extract_lane(c, 0) + f32x4.extract_lane(c, 1)) + (f32x4.extract_lane(c, 2) + f32x4.extract_lane(c, 3));
}

/** One entry of C (m columns) over t in [t0, t1), for the edges of C a 4 x 4 block does not cover. */
function dotInto(a: usize, b: usize, m: i32, k: i32, s: usize, i: i32, j: i32, t0: i32, t1: i32): void {
  const x = rowPtr(a, i, k), y = rowPtr(b, j, k);
  let sum: f32 = 0;
  for (let t = t0; t < t1; t++) sum += load<f32>(x + (<usize>t << 2)) * load<f32>(y + (<usize>t << 2));
  const p = s + ((<usize>i * <usize>m + <usize>j) << 2);
  store<f32>(p, load<f32>(p) + sum);
}
