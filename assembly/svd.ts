// Linear algebra for LoRA extraction (a truncated SVD of a task vector ΔW = W_ft − W_base, [m × n])
// and for applying a LoRA to a weight on the fly.
//
// The extraction is a randomized SVD (Halko, Martinsson & Tropp 2011, algorithms 4.4 and 5.1) driven
// from TypeScript (src/lora/rsvd.ts), which streams ΔW in blocks of rows through the GEMM kernels of
// matmul.ts. What lives here are the pieces that are not products with ΔW:
//   - the delta of a block of rows, decoded from the two checkpoints' dtypes to f32;
//   - the seeded test matrix Ω;
//   - Householder QR of a tall matrix (an orthonormal basis of its columns), in f64;
//   - the SVD of the small projected matrix B = QᵀΔW [l × n] by one-sided Jacobi, in f64;
//   - transposes and block copies between the layouts the GEMMs want.
// Tall matrices are stored column-major (each column of m values contiguous, i.e. as the rows of
// their transpose): Householder reflections and Jacobi rotations then run over contiguous memory.
// Numbers and pointers in, nothing allocated here: JavaScript sizes every buffer.

import { decode, loadOne, storeOne } from "./convert";
import { DTYPE_F32 } from "./layout";

/** dst[i] = ft[i] − base[i] as f32 (each decoded from its dtype), for i < n. */
export function deltaRows(ft: usize, ftDtype: i32, base: usize, baseDtype: i32, n: i32, dst: usize): void {
  // Decode the fine-tune into dst, then subtract the base element by element (4 lanes at a time when
  // the base is f32 already).
  decode(ft, ftDtype, dst, n);
  let i = 0;
  if (baseDtype == DTYPE_F32) {
    for (; i + 4 <= n; i += 4) {
      const p = dst + (<usize>i << 2);
      v128.store(p, f32x4.sub(v128.load(p), v128.load(base + (<usize>i << 2))));
    }
  }
  for (; i < n; i++) {
    const p = dst + (<usize>i << 2);
    store<f32>(p, load<f32>(p) - loadOne(base, baseDtype, i));
  }
}

/** out[0] += Σ a², out[1] += Σ (a − b)² over n f32 values, summed in f64 (b = 0 when b is null). */
export function sumSquares(a: usize, b: usize, n: i32, out: usize): void {
  let s = 0.0, d = 0.0;
  for (let i = 0; i < n; i++) {
    const x = <f64>load<f32>(a + (<usize>i << 2));
    s += x * x;
    if (b) {
      const e = x - <f64>load<f32>(b + (<usize>i << 2));
      d += e * e;
    }
  }
  store<f64>(out, load<f64>(out) + s);
  store<f64>(out, load<f64>(out, 8) + d, 8);
}

/**
 * Fills n f32 values with uniform numbers in [−1, 1) from (seed, index): a counter-based hash, so Ω
 * depends only on the seed. (Any distribution with a density serves the range finder; uniform values
 * need no transcendental functions.)
 */
export function fillRandom(dst: usize, n: i32, seed: u32): void {
  for (let i = 0; i < n; i++) {
    let x: u32 = (<u32>i * 0x9e3779b1) ^ (seed * 0x85ebca77 + 0x165667b1);
    x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16;
    store<f32>(dst + (<usize>i << 2), <f32>(<f64>x / 2147483648.0 - 1.0));
  }
}

/** dst[c·dstStride + r] = src[r·cols + c]: a [rows × cols] f32 block transposed into a wider matrix. */
export function transposeInto(src: usize, rows: i32, cols: i32, dst: usize, dstStride: i32): void {
  for (let r = 0; r < rows; r++) {
    const s = src + ((<usize>r * <usize>cols) << 2);
    for (let c = 0; c < cols; c++) store<f32>(dst + ((<usize>c * <usize>dstStride + <usize>r) << 2), load<f32>(s + (<usize>c << 2)));
  }
}

/** Copies a [rows × cols] f32 block from a matrix of row stride srcStride to one of row stride dstStride. */
export function copyBlock(src: usize, srcStride: i32, rows: i32, cols: i32, dst: usize, dstStride: i32): void {
  for (let r = 0; r < rows; r++) {
    memory.copy(dst + ((<usize>r * <usize>dstStride) << 2), src + ((<usize>r * <usize>srcStride) << 2), <usize>cols << 2);
  }
}

/** Row i of an f64 matrix with rows of `stride` values. */
// @ts-ignore: decorator
@inline function rowOf64(base: usize, i: i32, stride: i32): usize {
  return base + ((<usize>i * <usize>stride) << 3);
}

// @ts-ignore: decorator
@inline function dot64(a: usize, b: usize, n: i32): f64 {
  // Two f64 lanes, then their sum: a fixed order, so results do not depend on anything but a and b.
  let acc = f64x2.splat(0);
  let i = 0;
  for (; i + 2 <= n; i += 2) acc = f64x2.add(acc, f64x2.mul(v128.load(a + (<usize>i << 3)), v128.load(b + (<usize>i << 3))));
  let s = f64x2.extract_lane(acc, 0) + f64x2.extract_lane(acc, 1);
  for (; i < n; i++) s += load<f64>(a + (<usize>i << 3)) * load<f64>(b + (<usize>i << 3));
  return s;
}

/** y += f·x over n f64. */
// @ts-ignore: decorator
@inline function axpy64(y: usize, x: usize, f: f64, n: i32): void {
  const fv = f64x2.splat(f);
  let i = 0;
  for (; i + 2 <= n; i += 2) {
    const p = y + (<usize>i << 3);
    v128.store(p, f64x2.add(v128.load(p), f64x2.mul(fv, v128.load(x + (<usize>i << 3)))));
  }
  for (; i < n; i++) store<f64>(y + (<usize>i << 3), load<f64>(y + (<usize>i << 3)) + f * load<f64>(x + (<usize>i << 3)));
}

/**
 * An orthonormal basis of the columns of a tall matrix, by Householder QR in f64.
 *
 * a: the matrix [m × l] column-major (l columns of m f32 values), m ≥ l. work: (m·l + l + m) f64.
 * q: out, [m × l] column-major f32: Q with A = QR, QᵀQ = I.
 *
 * Householder (unlike Gram–Schmidt or Cholesky QR) stays orthonormal when A is rank-deficient, which
 * happens whenever ΔW's rank is below l (a LoRA-trained fine-tune, a full-rank request on a small
 * matrix): the reflections then complete the basis with arbitrary orthonormal directions, and those
 * carry no part of ΔW.
 *
 * Reflection j maps column j's entries j..m−1 onto a multiple of e_j: v = x + sign(x₀)‖x‖e₀,
 * H = I − 2vvᵀ/vᵀv; it is applied to the columns after j, then stored in place of column j (the R part
 * is not needed). Q = H₀H₁…H_{l−1} applied to the first l columns of the identity.
 */
export function householderBasis(a: usize, m: i32, l: i32, work: usize, q: usize): void {
  const betas = work + ((<usize>m * <usize>l) << 3); // 2/vᵀv per reflection (0: none needed)
  for (let j = 0; j < l; j++) {
    const s = a + ((<usize>j * <usize>m) << 2), d = rowOf64(work, j, m);
    for (let i = 0; i < m; i++) store<f64>(d + (<usize>i << 3), <f64>load<f32>(s + (<usize>i << 2)));
  }
  for (let j = 0; j < l; j++) {
    const v = rowOf64(work, j, m) + (<usize>j << 3), len = m - j;
    const norm = Math.sqrt(dot64(v, v, len));
    let beta = 0.0;
    if (norm > 0) {
      const x0 = load<f64>(v);
      store<f64>(v, x0 + (x0 >= 0 ? norm : -norm));
      const vv = dot64(v, v, len);
      beta = 2.0 / vv;
      for (let k = j + 1; k < l; k++) {
        const c = rowOf64(work, k, m) + (<usize>j << 3);
        axpy64(c, v, -beta * dot64(v, c, len), len);
      }
    }
    store<f64>(betas + (<usize>j << 3), beta);
  }
  // Q's column k: e_k with the reflections applied last to first, built in f64 after the betas.
  const e = betas + (<usize>l << 3);
  for (let k = 0; k < l; k++) {
    memory.fill(e, 0, <usize>m << 3);
    store<f64>(e + (<usize>k << 3), 1.0);
    for (let j = k; j >= 0; j--) {
      const beta = load<f64>(betas + (<usize>j << 3));
      if (beta == 0) continue;
      const v = rowOf64(work, j, m) + (<usize>j << 3), x = e + (<usize>j << 3), len = m - j;
      axpy64(x, v, -beta * dot64(v, x, len), len);
    }
    const out = q + ((<usize>k * <usize>m) << 2);
    for (let i = 0; i < m; i++) store<f32>(out + (<usize>i << 2), <f32>load<f64>(e + (<usize>i << 3)));
  }
}

/**
 * SVD of a short wide matrix B [l × n] (rows f32, l ≤ n) by one-sided Jacobi (Hestenes) in f64.
 * (rsvd.ts first reduces B to the square Rᵀ of Bᵀ = Q₂R, so n = l here in practice: a sweep then
 * costs O(l³) instead of O(l²n).)
 *
 * The rows c_i of B are rotated in pairs until all are mutually orthogonal: for a pair with
 * α = ‖c_i‖², β = ‖c_j‖², γ = c_i·c_j, the rotation with ζ = (β − α)/2γ, t = sign(ζ)/(|ζ| + √(1+ζ²)),
 * cs = 1/√(1+t²), sn = cs·t zeroes their inner product. Each rotation is an orthogonal G on the left,
 * so after convergence G·B = Σ·Ṽᵀ (row i = σ_i ṽ_iᵀ, ‖ṽ_i‖ = 1) and B = Gᵀ Σ Ṽᵀ: the left singular
 * vectors of B are the columns of Gᵀ, i.e. the rows of G, which P accumulates (P = G·I).
 * Sweeps stop when every pair has |γ| ≤ 1e-15·√(αβ) (or after 60 sweeps). One-sided Jacobi computes
 * small singular values to high relative accuracy, which the rank cut-off (σ > ε) relies on.
 *
 * b: [l × n] f32. work: l·n f64 (out: the rotated rows, sorted, row i = σ_i ṽ_iᵀ). p: l·l f64 (out:
 * row i = the left singular vector of σ_i). sigma: l f64 (out, descending).
 */
export function jacobiSvd(b: usize, l: i32, n: i32, work: usize, p: usize, sigma: usize): i32 {
  for (let i = 0; i < l; i++) {
    const s = b + ((<usize>i * <usize>n) << 2), d = rowOf64(work, i, n);
    for (let t = 0; t < n; t++) store<f64>(d + (<usize>t << 3), <f64>load<f32>(s + (<usize>t << 2)));
    memory.fill(rowOf64(p, i, l), 0, <usize>l << 3);
    store<f64>(rowOf64(p, i, l) + (<usize>i << 3), 1.0);
  }
  let sweeps = 0;
  for (; sweeps < 60; sweeps++) {
    let rotated = false;
    for (let i = 0; i < l - 1; i++) {
      for (let j = i + 1; j < l; j++) {
        const ci = rowOf64(work, i, n), cj = rowOf64(work, j, n);
        const alpha = dot64(ci, ci, n), beta = dot64(cj, cj, n), gamma = dot64(ci, cj, n);
        if (gamma == 0 || Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1.0 : -1.0) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const cs = 1 / Math.sqrt(1 + t * t), sn = cs * t;
        rotate(ci, cj, n, cs, sn);
        rotate(rowOf64(p, i, l), rowOf64(p, j, l), l, cs, sn);
      }
    }
    if (!rotated) break;
  }
  // σ_i = ‖c_i‖; rows sorted by σ descending (selection sort: l is small), P's rows with them.
  for (let i = 0; i < l; i++) store<f64>(sigma + (<usize>i << 3), Math.sqrt(dot64(rowOf64(work, i, n), rowOf64(work, i, n), n)));
  for (let i = 0; i < l - 1; i++) {
    let best = i;
    for (let j = i + 1; j < l; j++) if (load<f64>(sigma + (<usize>j << 3)) > load<f64>(sigma + (<usize>best << 3))) best = j;
    if (best == i) continue;
    const si = load<f64>(sigma + (<usize>i << 3));
    store<f64>(sigma + (<usize>i << 3), load<f64>(sigma + (<usize>best << 3)));
    store<f64>(sigma + (<usize>best << 3), si);
    swap64(rowOf64(work, i, n), rowOf64(work, best, n), n);
    swap64(rowOf64(p, i, l), rowOf64(p, best, l), l);
  }
  return sweeps;
}

/** (x, y) ← (cs·x − sn·y, sn·x + cs·y), elementwise over n f64. */
function rotate(x: usize, y: usize, n: i32, cs: f64, sn: f64): void {
  const c = f64x2.splat(cs), s = f64x2.splat(sn);
  let i = 0;
  for (; i + 2 <= n; i += 2) {
    const px = x + (<usize>i << 3), py = y + (<usize>i << 3);
    const a = v128.load(px), b = v128.load(py);
    v128.store(px, f64x2.sub(f64x2.mul(c, a), f64x2.mul(s, b)));
    v128.store(py, f64x2.add(f64x2.mul(s, a), f64x2.mul(c, b)));
  }
  for (; i < n; i++) {
    const px = x + (<usize>i << 3), py = y + (<usize>i << 3);
    const a = load<f64>(px), b = load<f64>(py);
    store<f64>(px, cs * a - sn * b);
    store<f64>(py, sn * a + cs * b);
  }
}

function swap64(x: usize, y: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const px = x + (<usize>i << 3), py = y + (<usize>i << 3);
    const a = load<f64>(px);
    store<f64>(px, load<f64>(py));
    store<f64>(py, a);
  }
}

/**
 * The LoRA factors of the rank-r truncation, with the singular values split evenly (mergekit's
 * default, `--distribute-scale`): A = √Σ_r Ṽ_rᵀ and, for the left side, the [l × r] matrix
 * Wl[k][i] = P[i][k]·√σ_i, so that lora_B = Q·Wl = U_r √Σ_r (Q: the range basis, U = Q·Pᵀ).
 *
 * rows: the sorted rotated rows from jacobiSvd (row i = σ_i ṽ_iᵀ), [l × n] f64. A row i is
 * row_i / √σ_i = √σ_i ṽ_iᵀ. a: out [r × n] f32. wl: out [l × r] f32.
 */
export function loraFactors(rows: usize, p: usize, sigma: usize, l: i32, n: i32, r: i32, a: usize, wl: usize): void {
  for (let i = 0; i < r; i++) {
    const s = load<f64>(sigma + (<usize>i << 3));
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    const src = rows + ((<usize>i * <usize>n) << 3), dst = a + ((<usize>i * <usize>n) << 2);
    for (let t = 0; t < n; t++) store<f32>(dst + (<usize>t << 2), <f32>(load<f64>(src + (<usize>t << 3)) * inv));
    const root = Math.sqrt(s);
    for (let k = 0; k < l; k++) store<f32>(wl + ((<usize>k * <usize>r + <usize>i) << 2), <f32>(load<f64>(p + ((<usize>i * <usize>l + <usize>k) << 3)) * root));
  }
}

/**
 * Adds a scaled f32 delta to values stored in a checkpoint dtype, rounding back to that dtype, in
 * place: x[i] ← round_dtype(x[i] + scale·d[i]) for i < n (a LoRA merged into its base weight, stored
 * as the base's dtype like PEFT's merge does).
 */
export function addScaledInPlace(x: usize, dtype: i32, d: usize, scale: f32, n: i32): void {
  for (let i = 0; i < n; i++) storeOne(x, dtype, i, loadOne(x, dtype, i) + scale * load<f32>(d + (<usize>i << 2)));
}
