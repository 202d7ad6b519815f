/**
 * @file A truncated SVD of a task vector ΔW = W_ft − W_base [m × n], computed in wasm by a randomized
 * SVD with power iterations (Halko, Martinsson & Tropp 2011, algorithms 4.4 and 5.1), ΔW streamed in
 * blocks of rows, so memory is a few [l × max(m, n)] matrices plus one block, whatever m is:
 *
 *   Y = ΔW·Ω, Q = basis(Y)                   Ω [n × l] seeded, l = min(rank + oversample, m, n)
 *   repeat q times: Z = ΔWᵀQ, Q' = basis(Z), Y = ΔW·Q', Q = basis(Y)
 *   B = QᵀΔW [l × n];  Bᵀ = Q₂R;  Rᵀ = P Σ Ṽ_Rᵀ (one-sided Jacobi);  ΔW ≈ (Q·P) Σ (Q₂Ṽ_R)ᵀ
 *
 * Each product with ΔW is one pass over its rows through the GEMM kernels (matmul.ts `linear` for
 * ΔW·X, `linearKN` for ΔWᵀ·X accumulated block by block); basis() is Householder QR (svd.ts). When l
 * reaches min(m, n) the range is captured exactly and the result is the exact SVD up to rounding.
 * A last pass measures ‖ΔW − BA‖_F with the factors as they will be stored (rounded to their dtype).
 * Block size and summation order are fixed by the options alone, so results are deterministic.
 */
import { DTYPE_F32, MATMUL_SCRATCH_BYTES } from "../../assembly/layout";
import { DTYPES, type FloatDtype } from "../format/dtypes";
import type { Kernels } from "../kernels/kernels";

/** One checkpoint tensor [m × n] as a reader of whole rows. */
export interface RowReader {
  dtype: string;
  /** Fills `into` with the stored bytes of rows [row, row + rows). */
  readRows(row: number, rows: number, into: Uint8Array): Promise<void>;
}

export interface RsvdOptions {
  /** Largest rank kept. */
  rank: number;
  /** Singular values at or below this are dropped (rank = min(rank, #σ > ε)). */
  svEpsilon: number;
  /** Extra columns of the range finder beyond the rank. */
  oversample: number;
  powerIterations: number;
  /** Seed of Ω. */
  seed: number;
  /** Bytes of ΔW rows (as f32) held at once: when the whole ΔW fits, it is read once for all passes. */
  blockBytes: number;
  /** The dtype the factors are stored in (they are rounded to it before the error is measured). */
  dtype: FloatDtype;
  /**
   * true: A = √Σ_r V_rᵀ and B = U_r √Σ_r (mergekit's default); false: A = Σ_r V_rᵀ and B = U_r
   * (mergekit's --no-distribute-scale). B·A is the same either way.
   */
  distributeScale: boolean;
}

export interface RsvdResult {
  /** Rank kept (0 when every singular value is ≤ ε: no factors). */
  rank: number;
  /** The l singular values found, descending. */
  sigma: Float64Array;
  /** lora_A = √Σ_r Ṽ_rᵀ [rank × n] and lora_B = U_r √Σ_r [m × rank] (or Σ_r Ṽ_rᵀ and U_r), stored bytes in `dtype`. */
  a: Uint8Array;
  b: Uint8Array;
  /** ‖ΔW‖_F. */
  norm: number;
  /** ‖ΔW − BA‖_F / ‖ΔW‖_F (0 when ΔW = 0). */
  relativeError: number;
}

/** Rows of ΔW per block: as many as the block budget allows, at least one. */
export function blockRows(m: number, n: number, blockBytes: number): number {
  return Math.max(1, Math.min(m, Math.floor(blockBytes / (n * 4))));
}

/** Row i of aSmall [r × l] times √σ_i, column i of wl [l × r] divided by it (σ_i > 0 for i < r). */
function moveScaleToA(aSmall: Float32Array, wl: Float32Array, sigma: Float64Array, r: number, l: number): void {
  for (let i = 0; i < r; i++) {
    const root = Math.sqrt(sigma[i]!);
    for (let t = 0; t < l; t++) aSmall[i * l + t] = aSmall[i * l + t]! * root;
    for (let k = 0; k < l; k++) wl[k * r + i] = wl[k * r + i]! / root;
  }
}

/** Staging buffers (raw reads, the error pass's product) hold rows of about this many bytes. */
const STAGE_BYTES = 4 << 20;

export async function truncatedSvd(k: Kernels, m: number, n: number, ft: RowReader, base: RowReader, o: RsvdOptions, signal?: AbortSignal): Promise<RsvdResult> {
  const { arena, exports: x } = k;
  const l = Math.min(o.rank + o.oversample, m, n);
  const ftCode = DTYPES[ft.dtype]!.code!, baseCode = DTYPES[base.dtype]!.code!;
  const ftBytes = DTYPES[ft.dtype]!.bits / 8, baseBytes = DTYPES[base.dtype]!.bits / 8;
  const rb = blockRows(m, n, o.blockBytes);
  const readRows = Math.max(1, Math.min(rb, Math.floor(STAGE_BYTES / (n * (ftBytes + baseBytes)))));
  const productRows = Math.max(1, Math.min(rb, Math.floor(STAGE_BYTES / (n * 4))));
  const resident = rb >= m;
  const big = Math.max(m, n);
  arena.reset();
  // Every region is allocated before the first read: growing the memory detaches views being read into.
  const f32 = (count: number) => arena.alloc(count * 4);
  const scratch = arena.alloc(MATMUL_SCRATCH_BYTES);
  const w = f32(l * n); //        Ωᵀ, then Zᵀ / Q'ᵀ: [l × n]
  const yt = f32(l * m); //       Yᵀ [l × m] (Y column-major)
  const qt = f32(l * m); //       Qᵀ [l × m]
  const bMat = f32(l * n); //     B = QᵀΔW [l × n]
  const tmpY = f32(rb * l); //    one block of ΔW·X [rb × l]
  const qb = f32(l * rb); //      one block of Qᵀ's columns [l × rb]
  const house = arena.alloc((big * l + l + big) * 8);
  const q2t = f32(l * n), rt = f32(l * l), aSmall = f32(l * l);
  const jac = arena.alloc(l * l * 8), p = arena.alloc(l * l * 8), sig = arena.alloc(l * 8);
  const aF = f32(l * n), wl = f32(l * l), qRows = f32(m * l), lb = f32(m * l);
  const rawFt = arena.alloc(readRows * n * ftBytes), rawBase = arena.alloc(readRows * n * baseBytes);
  const delta = f32(rb * n), product = f32(productRows * n);
  const sums = arena.alloc(16);

  let loaded = -1;
  /** Calls fn for every block of rows of ΔW, in order, with the block's f32 delta at `delta`. */
  const blocks = async (fn: (r0: number, rows: number) => void) => {
    for (let r0 = 0; r0 < m; r0 += rb) {
      signal?.throwIfAborted();
      const rows = Math.min(rb, m - r0);
      if (!(resident && loaded === r0)) {
        for (let s0 = 0; s0 < rows; s0 += readRows) {
          const c = Math.min(readRows, rows - s0);
          await Promise.all([ft.readRows(r0 + s0, c, arena.u8(rawFt, c * n * ftBytes)), base.readRows(r0 + s0, c, arena.u8(rawBase, c * n * baseBytes))]);
          x.deltaRows(rawFt, ftCode, rawBase, baseCode, c * n, delta + s0 * n * 4);
        }
        loaded = r0;
      }
      fn(r0, rows);
    }
  };
  /** Yᵀ = (ΔW · Xᵀᵀ)ᵀ for X = xt [l × n]: Y's rows come block by block, transposed into place. */
  const timesRight = (xt: number) => blocks((r0, rows) => {
    x.linear(delta, rows, n, xt, DTYPE_F32, l, tmpY, 0, scratch);
    x.transposeInto(tmpY, rows, l, yt + r0 * 4, m);
  });
  /** out [l × n] = Qᵀ ΔW = Σ over blocks of Q_blockᵀ ΔW_block. */
  const timesLeft = (out: number) => {
    arena.f32(out, l * n).fill(0);
    return blocks((r0, rows) => {
      x.copyBlock(qt + r0 * 4, m, l, rows, qb, rows);
      x.linearKN(qb, l, rows, delta, DTYPE_F32, n, out, 1, scratch);
    });
  };

  x.fillRandom(w, l * n, o.seed >>> 0);
  await timesRight(w);
  x.householderBasis(yt, m, l, house, qt);
  for (let i = 0; i < o.powerIterations; i++) {
    await timesLeft(w);
    x.householderBasis(w, n, l, house, w);
    await timesRight(w);
    x.householderBasis(yt, m, l, house, qt);
  }
  await timesLeft(bMat);
  // B [l × n] = Rᵀ Q₂ᵀ with Bᵀ = Q₂R (Householder on Bᵀ, whose columns are B's rows): Rᵀ = B·Q₂ is
  // [l × l], so Jacobi works on l² values instead of l·n. Rᵀ = P Σ Ṽ_Rᵀ gives B = P Σ (Q₂Ṽ_R)ᵀ.
  x.householderBasis(bMat, n, l, house, q2t);
  x.linear(bMat, l, n, q2t, DTYPE_F32, l, rt, 0, scratch);
  x.jacobiSvd(rt, l, l, jac, p, sig);
  const sigma = arena.copyF64(sig, l);
  const rank = Math.min(o.rank, sigma.filter((s) => s > o.svEpsilon).length);

  // lora_A = √Σ_r Ṽ_rᵀ; lora_B = Q·Wl with Wl[k][i] = P[i][k]√σ_i, Q's rows from Qᵀ.
  const outCode = DTYPES[o.dtype]!.code!;
  if (rank > 0) {
    x.loraFactors(jac, p, sig, l, l, rank, aSmall, wl);
    // The kernel splits √σ_i into both factors; moving B's share into A keeps B·A and leaves B = U_r.
    if (!o.distributeScale) moveScaleToA(arena.f32(aSmall, rank * l), arena.f32(wl, l * rank), sigma, rank, l);
    x.linearKN(aSmall, rank, l, q2t, DTYPE_F32, n, aF, 0, scratch);
    x.transposeInto(qt, l, m, qRows, l);
    x.linearKN(qRows, m, l, wl, DTYPE_F32, rank, lb, 0, scratch);
    x.quantize(aF, outCode, rank * n);
    x.quantize(lb, outCode, m * rank);
  }
  arena.f64(sums, 2).fill(0);
  await blocks((r0, rows) => {
    for (let s0 = 0; s0 < rows; s0 += productRows) {
      const c = Math.min(productRows, rows - s0);
      if (rank > 0) x.linearKN(lb + (r0 + s0) * rank * 4, c, rank, aF, DTYPE_F32, n, product, 0, scratch);
      else arena.f32(product, c * n).fill(0);
      x.sumSquares(delta + s0 * n * 4, product, c * n, sums);
    }
  });
  const [ss, es] = arena.f64(sums, 2);
  const norm = Math.sqrt(ss!);
  const relativeError = norm > 0 ? Math.sqrt(es!) / norm : 0;

  const stored = (ptr: number, count: number) => {
    const bytes = (count * DTYPES[o.dtype]!.bits) / 8;
    const dst = arena.alloc(bytes);
    x.encode(ptr, outCode, dst, count);
    return arena.copyU8(dst, bytes);
  };
  const a = rank > 0 ? stored(aF, rank * n) : new Uint8Array(0);
  const b = rank > 0 ? stored(lb, m * rank) : new Uint8Array(0);
  arena.reset();
  return { rank, sigma, a, b, norm, relativeError };
}
