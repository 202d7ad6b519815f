// Y[m×n] = X[m×k] · Wᵀ for the forward pass: X f32 activations, W a checkpoint's weight matrix in F32,
// BF16 or F16, read where it lies.
//
// Summation order (the determinism contract). Every output Y[i][j] is summed the same way in every
// code path: lane l of one f32x4 accumulator adds x[t]·w[t] for t = l, l+4, l+8, ... below k & ~3, in
// increasing t (a fused multiply-add in the relaxed build, a multiply then an add in the plain one);
// the four lanes are then added as (l0 + l1) + (l2 + l3); the last k % 4 products are added one by
// one in increasing t (multiply then add, in both builds); with `accumulate` the sum is finally
// added to the old Y[i][j]. Nothing else enters the sum, so Y[i][j] depends on X's row i, W's row j
// and k only: not on m, on the rows around it, on how calls are blocked, or on which path ran.
// linearKN keeps the same order with W's column j, so it equals linear with Wᵀ bit for bit.
//
// Paths. Prefill (many rows): W is cut into panels of rows that stay in L2; BF16/F16 panels are
// decoded once into `scratch` as f32, F32 panels are used in place; every 4 rows of X then sweep the
// panel with a 4 × 2 register block (8 accumulators; each loaded vector of X serves 2 outputs and each
// of W 4). Decode (few rows): W is streamed once from where it lies, BF16/F16 widened in registers,
// against all rows of X at a time. linearKN transposes panels of W's columns into scratch and shares
// the prefill path; with few rows it reads W's rows in order and keeps its accumulators in scratch.

import { DTYPE_BF16, DTYPE_F16, DTYPE_F32, MATMUL_SCRATCH_BYTES } from "./layout";
import { decode, elementBytes, loadLanes, loadOne } from "./convert";

// The weight dtype is a type parameter, so each dtype gets its own copy of the loops with nothing
// tested inside them (a constant argument is not enough: Binaryen folds the three inlined copies back
// into one loop that tests the dtype per load). Marker types: f32 for F32, u16 for BF16 bits, i16 for
// F16 bits.
type BF16 = u16;
type F16 = i16;

// @ts-ignore: decorator
@inline function dtypeOf<D>(): i32 {
  return isFloat<D>() ? DTYPE_F32 : isSigned<D>() ? DTYPE_F16 : DTYPE_BF16;
}

/** Below this many rows of X, W is read in place (converted in registers) instead of packed. */
const PACK_MIN_ROWS = 8;

// @ts-ignore: decorator
@inline function madd(a: v128, b: v128, acc: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, acc);
  return f32x4.add(acc, f32x4.mul(a, b));
}

// @ts-ignore: decorator
@inline function hsum(c: v128): f32 {
  return (f32x4.extract_lane(c, 0) + f32x4.extract_lane(c, 1)) + (f32x4.extract_lane(c, 2) + f32x4.extract_lane(c, 3));
}

/**
 * Finishes one output: the lane sum, the k % 4 tail products in order, then the store.
 * x, w: the row of X and of W; y: the output element.
 */
// @ts-ignore: decorator
@inline function finish<D>(c: v128, x: usize, w: usize, k4: i32, k: i32, y: usize, accumulate: i32): void {
  let s = hsum(c);
  for (let t = k4; t < k; t++) s += load<f32>(x + (<usize>t << 2)) * loadOne(w, dtypeOf<D>(), t);
  store<f32>(y, accumulate ? load<f32>(y) + s : s);
}

// @ts-ignore: decorator
@inline function loadW<D>(p: usize): v128 {
  if (isFloat<D>()) return v128.load(p);
  return loadLanes(p, dtypeOf<D>(), 0);
}

/**
 * An R × C block of Y (R, C ≤ 4, constants once inlined): rows x + r·xs of X against rows w + c·ws of
 * W, into y + r·ys + c·yc.
 */
// @ts-ignore: decorator
@inline function block<D>(R: i32, C: i32, k: i32, x: usize, xs: usize, w: usize, ws: usize, y: usize, ys: usize, yc: usize, accumulate: i32): void {
  const x0 = x, x1 = x + xs, x2 = x + 2 * xs, x3 = x + 3 * xs;
  const w0 = w, w1 = w + ws, w2 = w + 2 * ws, w3 = w + 3 * ws;
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c02 = f32x4.splat(0), c03 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0), c12 = f32x4.splat(0), c13 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c22 = f32x4.splat(0), c23 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0), c32 = f32x4.splat(0), c33 = f32x4.splat(0);
  const k4 = k & ~3;
  const sz = <usize>sizeof<D>();
  for (let t = 0; t < k4; t += 4) {
    const o = <usize>t << 2, p = <usize>t * sz;
    const b0 = loadW<D>(w0 + p);
    const b1 = C > 1 ? loadW<D>(w1 + p) : b0;
    const b2 = C > 2 ? loadW<D>(w2 + p) : b0;
    const b3 = C > 3 ? loadW<D>(w3 + p) : b0;
    const a0 = v128.load(x0 + o);
    c00 = madd(a0, b0, c00);
    if (C > 1) c01 = madd(a0, b1, c01);
    if (C > 2) c02 = madd(a0, b2, c02);
    if (C > 3) c03 = madd(a0, b3, c03);
    if (R > 1) {
      const a1 = v128.load(x1 + o);
      c10 = madd(a1, b0, c10);
      if (C > 1) c11 = madd(a1, b1, c11);
      if (C > 2) c12 = madd(a1, b2, c12);
      if (C > 3) c13 = madd(a1, b3, c13);
    }
    if (R > 2) {
      const a2 = v128.load(x2 + o);
      c20 = madd(a2, b0, c20);
      if (C > 1) c21 = madd(a2, b1, c21);
      if (C > 2) c22 = madd(a2, b2, c22);
      if (C > 3) c23 = madd(a2, b3, c23);
    }
    if (R > 3) {
      const a3 = v128.load(x3 + o);
      c30 = madd(a3, b0, c30);
      if (C > 1) c31 = madd(a3, b1, c31);
      if (C > 2) c32 = madd(a3, b2, c32);
      if (C > 3) c33 = madd(a3, b3, c33);
    }
  }
  finish<D>(c00, x0, w0, k4, k, y, accumulate);
  if (C > 1) finish<D>(c01, x0, w1, k4, k, y + yc, accumulate);
  if (C > 2) finish<D>(c02, x0, w2, k4, k, y + 2 * yc, accumulate);
  if (C > 3) finish<D>(c03, x0, w3, k4, k, y + 3 * yc, accumulate);
  if (R > 1) {
    const y1 = y + ys;
    finish<D>(c10, x1, w0, k4, k, y1, accumulate);
    if (C > 1) finish<D>(c11, x1, w1, k4, k, y1 + yc, accumulate);
    if (C > 2) finish<D>(c12, x1, w2, k4, k, y1 + 2 * yc, accumulate);
    if (C > 3) finish<D>(c13, x1, w3, k4, k, y1 + 3 * yc, accumulate);
  }
  if (R > 2) {
    const y2 = y + 2 * ys;
    finish<D>(c20, x2, w0, k4, k, y2, accumulate);
    if (C > 1) finish<D>(c21, x2, w1, k4, k, y2 + yc, accumulate);
    if (C > 2) finish<D>(c22, x2, w2, k4, k, y2 + 2 * yc, accumulate);
    if (C > 3) finish<D>(c23, x2, w3, k4, k, y2 + 3 * yc, accumulate);
  }
  if (R > 3) {
    const y3 = y + 3 * ys;
    finish<D>(c30, x3, w0, k4, k, y3, accumulate);
    if (C > 1) finish<D>(c31, x3, w1, k4, k, y3 + yc, accumulate);
    if (C > 2) finish<D>(c32, x3, w2, k4, k, y3 + 2 * yc, accumulate);
    if (C > 3) finish<D>(c33, x3, w3, k4, k, y3 + 3 * yc, accumulate);
  }
}

/**
 * R rows of X (at x) against `cols` rows of W (at w), into Y at y (row stride n). The rows of W are
 * cut into C equal runs swept side by side (block b takes row b of each run), so W is read as C long
 * sequential streams, which the hardware prefetcher follows; C consecutive rows at a time would be C
 * short streams restarting every C rows, and decode (W streamed from memory) ran at half the speed.
 * The rows left over go one by one.
 */
// @ts-ignore: decorator
@inline function rows<D>(R: i32, C: i32, x: usize, k: i32, w: usize, cols: i32, y: usize, n: i32, accumulate: i32): void {
  const xs = <usize>k << 2, wr = <usize>k * <usize>sizeof<D>(), ys = <usize>n << 2;
  const run = cols / C;
  for (let j = 0; j < run; j++) block<D>(R, C, k, x, xs, w + <usize>j * wr, <usize>run * wr, y + (<usize>j << 2), ys, <usize>run << 2, accumulate);
  for (let j = run * C; j < cols; j++) block<D>(R, 1, k, x, xs, w + <usize>j * wr, wr, y + (<usize>j << 2), ys, 4, accumulate);
}

/** Rows of X [0, m) against `cols` rows of W: four rows of X at a time, then the rest. */
function sweep<D>(x: usize, m: i32, k: i32, w: usize, cols: i32, y: usize, n: i32, accumulate: i32): void {
  const xs = <usize>k << 2, ys = <usize>n << 2;
  let i = 0;
  for (; i + 4 <= m; i += 4) rows<D>(4, 2, x + <usize>i * xs, k, w, cols, y + <usize>i * ys, n, accumulate);
  const left = m - i, xi = x + <usize>i * xs, yi = y + <usize>i * ys;
  if (left == 3) rows<D>(3, 2, xi, k, w, cols, yi, n, accumulate);
  else if (left == 2) rows<D>(2, 4, xi, k, w, cols, yi, n, accumulate);
  else if (left == 1) rows<D>(1, 4, xi, k, w, cols, yi, n, accumulate);
}

/** Rows of W per packed panel: as many as fit the scratch, a multiple of 4 (0: k too long to pack). */
function panelRows(k: i32): i32 {
  if (k <= 0) return 0;
  const fit = <i32>(<usize>MATMUL_SCRATCH_BYTES / (<usize>k << 2));
  return fit >= 4 ? fit & ~3 : 0;
}

/**
 * Y[m×n] = X[m×k] · Wᵀ (Y += X · Wᵀ when accumulate != 0). X: f32, row stride k. W: n rows of k
 * elements (nn.Linear's [out, in]) in wDtype (DTYPE_F32 / DTYPE_F16 / DTYPE_BF16). Y: f32, row stride
 * n. scratch: MATMUL_SCRATCH_BYTES bytes.
 */
export function linear(x: usize, m: i32, k: i32, w: usize, wDtype: i32, n: i32, y: usize, accumulate: i32, scratch: usize): void {
  if (m <= 0 || n <= 0) return;
  const panel = panelRows(k);
  if (m < PACK_MIN_ROWS || panel == 0) {
    // Few rows: W streamed once, straight from where it lies.
    if (wDtype == DTYPE_F32) sweep<f32>(x, m, k, w, n, y, n, accumulate);
    else if (wDtype == DTYPE_BF16) sweep<BF16>(x, m, k, w, n, y, n, accumulate);
    else sweep<F16>(x, m, k, w, n, y, n, accumulate);
    return;
  }
  // Many rows: W in panels that stay in cache while every row of X passes over them; F32 panels are
  // W's own rows, others are decoded into scratch first.
  const wRow = <usize>k * <usize>elementBytes(wDtype);
  for (let j0 = 0; j0 < n; j0 += panel) {
    const cols = min(panel, n - j0);
    let p = w + <usize>j0 * wRow;
    if (wDtype != DTYPE_F32) {
      decode(p, wDtype, scratch, cols * k);
      p = scratch;
    }
    sweep<f32>(x, m, k, p, cols, y + (<usize>j0 << 2), n, accumulate);
  }
}

// ---------------------------------------------------------------------------------------------------
// W stored [k × n] (GPT-2's Conv1D): Y = X · W.

/**
 * Y[m×n] = X[m×k] · W (Y += X · W when accumulate != 0), W stored [k × n] in wDtype. The same sums as
 * linear with Wᵀ, bit for bit. scratch: MATMUL_SCRATCH_BYTES bytes.
 */
export function linearKN(x: usize, m: i32, k: i32, w: usize, wDtype: i32, n: i32, y: usize, accumulate: i32, scratch: usize): void {
  if (m <= 0 || n <= 0) return;
  const panel = panelRows(k);
  if (m < PACK_MIN_ROWS || panel == 0) {
    if (wDtype == DTYPE_F32) columns<f32>(x, m, k, w, n, y, accumulate, scratch);
    else if (wDtype == DTYPE_BF16) columns<BF16>(x, m, k, w, n, y, accumulate, scratch);
    else columns<F16>(x, m, k, w, n, y, accumulate, scratch);
    return;
  }
  // Many rows: each panel of columns is transposed into scratch as f32 rows, then swept as in linear.
  for (let j0 = 0; j0 < n; j0 += panel) {
    const cols = min(panel, n - j0);
    if (wDtype == DTYPE_F32) transpose<f32>(w, k, n, j0, cols, scratch);
    else if (wDtype == DTYPE_BF16) transpose<BF16>(w, k, n, j0, cols, scratch);
    else transpose<F16>(w, k, n, j0, cols, scratch);
    sweep<f32>(x, m, k, scratch, cols, y + (<usize>j0 << 2), n, accumulate);
  }
}

/** Columns [j0, j0 + cols) of W ([k × n], in D) as `cols` f32 rows of k at dst, 4 × 4 blocks at a time. */
function transpose<D>(w: usize, k: i32, n: i32, j0: i32, cols: i32, dst: usize): void {
  const sz = <usize>sizeof<D>(), wr = <usize>n * sz, dr = <usize>k << 2;
  const k4 = k & ~3, c4 = cols & ~3;
  for (let c = 0; c < c4; c += 4) {
    const src = w + <usize>(j0 + c) * sz, out = dst + <usize>c * dr;
    for (let t = 0; t < k4; t += 4) {
      const p = src + <usize>t * wr;
      const r0 = loadW<D>(p), r1 = loadW<D>(p + wr), r2 = loadW<D>(p + 2 * wr), r3 = loadW<D>(p + 3 * wr);
      const t0 = i32x4.shuffle(r0, r1, 0, 4, 1, 5), t1 = i32x4.shuffle(r0, r1, 2, 6, 3, 7);
      const t2 = i32x4.shuffle(r2, r3, 0, 4, 1, 5), t3 = i32x4.shuffle(r2, r3, 2, 6, 3, 7);
      const o = out + (<usize>t << 2);
      v128.store(o, i32x4.shuffle(t0, t2, 0, 1, 4, 5));
      v128.store(o + dr, i32x4.shuffle(t0, t2, 2, 3, 6, 7));
      v128.store(o + 2 * dr, i32x4.shuffle(t1, t3, 0, 1, 4, 5));
      v128.store(o + 3 * dr, i32x4.shuffle(t1, t3, 2, 3, 6, 7));
    }
    for (let t = k4; t < k; t++) {
      for (let q = 0; q < 4; q++) store<f32>(out + <usize>q * dr + (<usize>t << 2), loadOne(w, dtypeOf<D>(), t * n + j0 + c + q));
    }
  }
  for (let c = c4; c < cols; c++) {
    const out = dst + <usize>c * dr;
    for (let t = 0; t < k; t++) store<f32>(out + (<usize>t << 2), loadOne(w, dtypeOf<D>(), t * n + j0 + c));
  }
}

/** Columns of Y per strip of the few-rows KN path (its accumulators, 4 rows × 4 phases, fill 16 KiB). */
const STRIP = 256;

/**
 * Few rows, W [k × n]: W is read row by row, once, converted in registers. The order of linear is kept
 * with four accumulators per output ("phases"): phase p adds x[t]·W[t][j] for t = p, p+4, ..., which
 * is exactly lane p of linear's accumulator, and the phases are added as (p0 + p1) + (p2 + p3). The
 * accumulators of a strip of STRIP columns live in scratch; four rows of X at a time.
 */
function columns<D>(x: usize, m: i32, k: i32, w: usize, n: i32, y: usize, accumulate: i32, acc: usize): void {
  const xs = <usize>k << 2, ys = <usize>n << 2;
  for (let i = 0; i < m; i += 4) {
    const R = min(4, m - i), xi = x + <usize>i * xs, yi = y + <usize>i * ys;
    for (let j0 = 0; j0 < n; j0 += STRIP) {
      const cols = min(STRIP, n - j0);
      if (R == 4) strip<D>(4, xi, k, w, n, j0, cols, yi, accumulate, acc);
      else if (R == 3) strip<D>(3, xi, k, w, n, j0, cols, yi, accumulate, acc);
      else if (R == 2) strip<D>(2, xi, k, w, n, j0, cols, yi, accumulate, acc);
      else strip<D>(1, xi, k, w, n, j0, cols, yi, accumulate, acc);
    }
  }
}

/** Lanes [0, count) of W's row at p (count < 4), the rest zero: a strip's last, partial vector. */
// @ts-ignore: decorator
@inline function loadPart<D>(p: usize, count: i32): v128 {
  let v = f32x4.splat(0);
  v = f32x4.replace_lane(v, 0, loadOne(p, dtypeOf<D>(), 0));
  if (count > 1) v = f32x4.replace_lane(v, 1, loadOne(p, dtypeOf<D>(), 1));
  if (count > 2) v = f32x4.replace_lane(v, 2, loadOne(p, dtypeOf<D>(), 2));
  return v;
}

// @ts-ignore: decorator
@inline function loadSome<D>(p: usize, count: i32): v128 {
  return count >= 4 ? loadW<D>(p) : loadPart<D>(p, count);
}

/**
 * Rows t0..t0+15 of one vector of W's columns (at w, row stride wr) into the four phase accumulators
 * of one row of X at q (x: that row at t0): phase p takes rows p, p+4, p+8 and p+12, in that order.
 */
// @ts-ignore: decorator
@inline function phases16<D>(q: usize, phase: usize, x: usize, w: usize, wr: usize): void {
  let p0 = v128.load(q), p1 = v128.load(q + phase), p2 = v128.load(q + 2 * phase), p3 = v128.load(q + 3 * phase);
  for (let u: usize = 0; u < 16; u += 4) {
    p0 = madd(v128.load32_splat(x + (u << 2)), loadW<D>(w + u * wr), p0);
    p1 = madd(v128.load32_splat(x + ((u + 1) << 2)), loadW<D>(w + (u + 1) * wr), p1);
    p2 = madd(v128.load32_splat(x + ((u + 2) << 2)), loadW<D>(w + (u + 2) * wr), p2);
    p3 = madd(v128.load32_splat(x + ((u + 3) << 2)), loadW<D>(w + (u + 3) * wr), p3);
  }
  v128.store(q, p0);
  v128.store(q + phase, p1);
  v128.store(q + 2 * phase, p2);
  v128.store(q + 3 * phase, p3);
}

/** R rows of X (at x) times columns [j0, j0 + cols) of W, into Y at y (row stride n). */
// @ts-ignore: decorator
@inline function strip<D>(R: i32, x: usize, k: i32, w: usize, n: i32, j0: i32, cols: i32, y: usize, accumulate: i32, acc: usize): void {
  const xs = <usize>k << 2, ys = <usize>n << 2, sz = <usize>sizeof<D>(), wr = <usize>n * sz;
  const vecs = (cols + 3) >> 2;
  // acc + ((r·4 + p)·vecs + v)·16: row r, phase p, vector v of the strip.
  const phase = <usize>vecs << 4, row = phase << 2;
  memory.fill(acc, 0, <usize>R * row);
  const k4 = k & ~3, w0 = w + <usize>j0 * sz, full = cols >> 2;
  // With one or two rows, sixteen rows of W at a time: each whole vector's four phase accumulators
  // stay in registers for them (at 3 and 4 rows the loads of W this repeats cost more than it saves).
  const blocked = R <= 2 ? k & ~15 : 0;
  for (let t0 = 0; t0 < blocked; t0 += 16) {
    const wt = w0 + <usize>t0 * wr, xt = x + (<usize>t0 << 2);
    for (let v = 0; v < full; v++) {
      const q = acc + (<usize>v << 4), wv = wt + (<usize>v << 2) * sz;
      phases16<D>(q, phase, xt, wv, wr);
      if (R > 1) phases16<D>(q + row, phase, xt + xs, wv, wr);
    }
  }
  // Otherwise (and for the partial last vector) one row of W at a time, into accumulators in scratch.
  for (let t = 0; t < k4; t++) {
    const p = <usize>(t & 3);
    const a0 = v128.load32_splat(x + (<usize>t << 2));
    const a1 = R > 1 ? v128.load32_splat(x + xs + (<usize>t << 2)) : a0;
    const a2 = R > 2 ? v128.load32_splat(x + 2 * xs + (<usize>t << 2)) : a0;
    const a3 = R > 3 ? v128.load32_splat(x + 3 * xs + (<usize>t << 2)) : a0;
    const wt = w0 + <usize>t * wr;
    let v = t < blocked ? full : 0;
    let q = acc + p * phase + (<usize>v << 4);
    for (; v < full; v++, q += 16) {
      const b = loadW<D>(wt + (<usize>v << 2) * sz);
      v128.store(q, madd(a0, b, v128.load(q)));
      if (R > 1) v128.store(q + row, madd(a1, b, v128.load(q + row)));
      if (R > 2) v128.store(q + 2 * row, madd(a2, b, v128.load(q + 2 * row)));
      if (R > 3) v128.store(q + 3 * row, madd(a3, b, v128.load(q + 3 * row)));
    }
    if (v < vecs) {
      const b = loadPart<D>(wt + (<usize>v << 2) * sz, cols & 3);
      v128.store(q, madd(a0, b, v128.load(q)));
      if (R > 1) v128.store(q + row, madd(a1, b, v128.load(q + row)));
      if (R > 2) v128.store(q + 2 * row, madd(a2, b, v128.load(q + 2 * row)));
      if (R > 3) v128.store(q + 3 * row, madd(a3, b, v128.load(q + 3 * row)));
    }
  }
  for (let r = 0; r < R; r++) {
    const xr = x + <usize>r * xs, yr = y + <usize>r * ys + (<usize>j0 << 2);
    for (let v = 0; v < vecs; v++) {
      const q = acc + <usize>r * row + (<usize>v << 4);
      let s = f32x4.add(f32x4.add(v128.load(q), v128.load(q + phase)), f32x4.add(v128.load(q + 2 * phase), v128.load(q + 3 * phase)));
      const count = min(4, cols - (v << 2)), wv = w0 + (<usize>v << 2) * sz;
      for (let t = k4; t < k; t++) s = f32x4.add(s, f32x4.mul(v128.load32_splat(xr + (<usize>t << 2)), loadSome<D>(wv + <usize>t * wr, count)));
      const out = yr + (<usize>v << 4);
      for (let c = 0; c < count; c++) {
        const sum = f32x4.extract_lane(s, 0);
        store<f32>(out + (<usize>c << 2), accumulate ? load<f32>(out + (<usize>c << 2)) + sum : sum);
        s = i32x4.shuffle(s, s, 1, 2, 3, 0);
      }
    }
  }
}
