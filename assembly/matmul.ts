// PLACEHOLDER (replaced by the gemm branch): Y[m×n] = X[m×k] · Wᵀ with W [n×k] (linear) or [k×n]
// (linearKN) in F32/BF16/F16, plain loops.
import { DTYPE_BF16, DTYPE_F16 } from "./layout";

// @ts-ignore: decorator
@inline function wAt(w: usize, dtype: i32, i: usize): f32 {
  if (dtype == DTYPE_BF16) return reinterpret<f32>(<u32>load<u16>(w + (i << 1)) << 16);
  if (dtype == DTYPE_F16) {
    const h = <u32>load<u16>(w + (i << 1));
    const sign = (h & 0x8000) << 16;
    const e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0) return reinterpret<f32>(sign) + (sign ? -1 : 1) * <f32>m * <f32>5.960464477539063e-8;
    if (e == 31) return reinterpret<f32>(sign | 0x7f800000 | (m << 13));
    return reinterpret<f32>(sign | ((e + 112) << 23) | (m << 13));
  }
  return load<f32>(w + (i << 2));
}

export function linear(x: usize, m: i32, k: i32, w: usize, wDtype: i32, n: i32, y: usize, accumulate: i32, scratch: usize): void {
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s: f32 = 0;
      for (let t = 0; t < k; t++) s += load<f32>(x + ((<usize>(i * k + t)) << 2)) * wAt(w, wDtype, <usize>j * <usize>k + <usize>t);
      const at = y + ((<usize>(i * n + j)) << 2);
      store<f32>(at, accumulate ? load<f32>(at) + s : s);
    }
  }
}

export function linearKN(x: usize, m: i32, k: i32, w: usize, wDtype: i32, n: i32, y: usize, accumulate: i32, scratch: usize): void {
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s: f32 = 0;
      for (let t = 0; t < k; t++) s += load<f32>(x + ((<usize>(i * k + t)) << 2)) * wAt(w, wDtype, <usize>t * <usize>n + <usize>j);
      const at = y + ((<usize>(i * n + j)) << 2);
      store<f32>(at, accumulate ? load<f32>(at) + s : s);
    }
  }
}
