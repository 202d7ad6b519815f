// The pieces of a decoder layer besides its matrix products (matmul.ts): norms, rotary position
// embedding, causal attention, the MLP activations and residual adds. Activations are float32 rows,
// one token per row; small weight vectors (norms, biases) arrive decoded to float32. Every output row
// depends only on its own inputs (and, in attention, on the keys and values it may see), computed in
// the same order whatever else is in the call: a token's numbers do not depend on batching, so a
// KV-cached decoding step reproduces the full forward pass bit for bit.

import { expf1, expf4 } from "./vecmath";

// @ts-ignore: decorator
@inline function at(base: usize, i: i32): usize {
  return base + (<usize>i << 2);
}

/**
 * RMSNorm (llama family): out = w ⊙ x · r, r = 1 / sqrt(mean(x²) + eps), per row of n. The mean of
 * squares is summed in float64 (it is the one long sum); out may be x.
 */
export function rmsNorm(x: usize, rows: i32, n: i32, w: usize, eps: f32, out: usize): void {
  for (let row = 0; row < rows; row++) {
    const xr = at(x, row * n), yr = at(out, row * n);
    let sum: f64 = 0;
    for (let i = 0; i < n; i++) {
      const v = <f64>load<f32>(at(xr, i));
      sum += v * v;
    }
    const r = <f32>(1 / Math.sqrt(sum / <f64>n + <f64>eps));
    const rv = f32x4.splat(r);
    let i = 0;
    for (; i + 4 <= n; i += 4) v128.store(at(yr, i), f32x4.mul(v128.load(at(w, i)), f32x4.mul(v128.load(at(xr, i)), rv)));
    for (; i < n; i++) store<f32>(at(yr, i), load<f32>(at(w, i)) * (load<f32>(at(xr, i)) * r));
  }
}

/** LayerNorm (GPT-2): out = (x − μ) / sqrt(σ² + eps) ⊙ w + b per row, μ and σ² (biased) in float64. */
export function layerNorm(x: usize, rows: i32, n: i32, w: usize, b: usize, eps: f32, out: usize): void {
  for (let row = 0; row < rows; row++) {
    const xr = at(x, row * n), yr = at(out, row * n);
    let sum: f64 = 0;
    for (let i = 0; i < n; i++) sum += <f64>load<f32>(at(xr, i));
    const mean = sum / <f64>n;
    let sq: f64 = 0;
    for (let i = 0; i < n; i++) {
      const d = <f64>load<f32>(at(xr, i)) - mean;
      sq += d * d;
    }
    const r = <f32>(1 / Math.sqrt(sq / <f64>n + <f64>eps));
    const mu = <f32>mean;
    for (let i = 0; i < n; i++) store<f32>(at(yr, i), (load<f32>(at(xr, i)) - mu) * r * load<f32>(at(w, i)) + load<f32>(at(b, i)));
  }
}

/** y[r] += v for every row r of y (rows × n): biases. */
export function addRowVector(y: usize, rows: i32, n: i32, v: usize): void {
  for (let row = 0; row < rows; row++) {
    const yr = at(y, row * n);
    let i = 0;
    for (; i + 4 <= n; i += 4) v128.store(at(yr, i), f32x4.add(v128.load(at(yr, i)), v128.load(at(v, i))));
    for (; i < n; i++) store<f32>(at(yr, i), load<f32>(at(yr, i)) + load<f32>(at(v, i)));
  }
}

/** dst += src over `count` floats: the residual stream. */
export function addInPlace(dst: usize, src: usize, count: i32): void {
  let i = 0;
  for (; i + 4 <= count; i += 4) v128.store(at(dst, i), f32x4.add(v128.load(at(dst, i)), v128.load(at(src, i))));
  for (; i < count; i++) store<f32>(at(dst, i), load<f32>(at(dst, i)) + load<f32>(at(src, i)));
}

/**
 * Rotary position embedding in place, rotate-half pairing: in each head of d dims, dim i is paired
 * with i + rot/2 (i < rot/2); dims rot..d−1 pass through. Row r (of `rows`, row stride `stride`
 * floats, heads at columns h·d) has position `pos0 + r`; cos and sin hold rot/2 values per position.
 */
export function rope(x: usize, rows: i32, stride: i32, heads: i32, d: i32, rot: i32, cos: usize, sin: usize, pos0: i32): void {
  const half = rot >> 1;
  for (let row = 0; row < rows; row++) {
    const c = at(cos, (pos0 + row) * half), s = at(sin, (pos0 + row) * half);
    for (let h = 0; h < heads; h++) {
      const base = at(x, row * stride + h * d);
      let i = 0;
      for (; i + 4 <= half; i += 4) {
        const a = v128.load(at(base, i)), b = v128.load(at(base, i + half));
        const cv = v128.load(at(c, i)), sv = v128.load(at(s, i));
        v128.store(at(base, i), f32x4.sub(f32x4.mul(a, cv), f32x4.mul(b, sv)));
        v128.store(at(base, i + half), f32x4.add(f32x4.mul(b, cv), f32x4.mul(a, sv)));
      }
      for (; i < half; i++) {
        const a = load<f32>(at(base, i)), b = load<f32>(at(base, i + half));
        const cv = load<f32>(at(c, i)), sv = load<f32>(at(s, i));
        store<f32>(at(base, i), a * cv - b * sv);
        store<f32>(at(base, i + half), b * cv + a * sv);
      }
    }
  }
}

/**
 * Causal softmax attention with grouped KV heads. Query row i (of tq) is at position p0 + i; key and
 * value rows 0..tk−1 are at positions 0..tk−1 (a whole sequence, or a decoding cache). Query head h
 * reads KV head ⌊h / (heads / kvHeads)⌋ (consecutive query heads share one). Row i sees key j iff
 * j ≤ p0 + i and, when window > 0, p0 + i − j < window. Scores are (q·k)·scale; the softmax
 * subtracts the row's largest score and sums its exponentials in float64. out row i, head h (stride
 * outStride) = Σ_j p_j v_j.
 *
 * Every score is Σ_d q_d·k_d added in order of d, one float32 rounding per step, and every output
 * Σ_j p_j·v_j in order of j: whether a block of queries is computed (keys transposed so four keys go
 * through the lanes at once) or a single decoding row (one key at a time), the same numbers come out.
 * `scratch` holds tk·(d + 1) floats.
 */
export function attention(
  q: usize, qStride: i32, k: usize, v: usize, kvStride: i32, tq: i32, tk: i32, p0: i32,
  heads: i32, kvHeads: i32, d: i32, scale: f32, window: i32, out: usize, outStride: i32, scratch: usize,
): void {
  const rep = heads / kvHeads;
  const scores = scratch, kt = scratch + (<usize>tk << 2);
  const blocked = tq >= 4;
  for (let g = 0; g < kvHeads; g++) {
    if (blocked) {
      // kt[c][j] = k[j][g·d + c]: keys along rows of d, so lanes hold four keys.
      for (let j = 0; j < tk; j++) {
        const row = at(k, j * kvStride + g * d);
        for (let c = 0; c < d; c++) store<f32>(at(kt, c * tk + j), load<f32>(at(row, c)));
      }
    }
    for (let h = g * rep; h < (g + 1) * rep; h++) {
      for (let i = 0; i < tq; i++) {
        const pos = p0 + i;
        const last = min(pos, tk - 1);
        const first = window > 0 ? max(0, pos - window + 1) : 0;
        const qv = at(q, i * qStride + h * d);
        let j = first;
        if (blocked) {
          for (; j + 4 <= last + 1; j += 4) {
            let acc = f32x4.splat(0);
            for (let c = 0; c < d; c++) acc = f32x4.add(acc, f32x4.mul(f32x4.splat(load<f32>(at(qv, c))), v128.load(at(kt, c * tk + j))));
            v128.store(at(scores, j), f32x4.mul(acc, f32x4.splat(scale)));
          }
        }
        for (; j <= last; j++) {
          const kr = at(k, j * kvStride + g * d);
          let acc: f32 = 0;
          for (let c = 0; c < d; c++) acc += load<f32>(at(qv, c)) * load<f32>(at(kr, c));
          store<f32>(at(scores, j), acc * scale);
        }
        softmaxInPlace(scores, first, last);
        const o = at(out, i * outStride + h * d);
        let c = 0;
        for (; c + 4 <= d; c += 4) {
          let acc = f32x4.splat(0);
          for (let jj = first; jj <= last; jj++) acc = f32x4.add(acc, f32x4.mul(f32x4.splat(load<f32>(at(scores, jj))), v128.load(at(v, jj * kvStride + g * d + c))));
          v128.store(at(o, c), acc);
        }
        for (; c < d; c++) {
          let acc: f32 = 0;
          for (let jj = first; jj <= last; jj++) acc += load<f32>(at(scores, jj)) * load<f32>(at(v, jj * kvStride + g * d + c));
          store<f32>(at(o, c), acc);
        }
      }
    }
  }
}

/**
 * Scores [first, last] become softmax weights: exp(s − max), in lanes of four with a scalar tail,
 * divided by their sum (float64).
 */
function softmaxInPlace(scores: usize, first: i32, last: i32): void {
  let m: f32 = -Infinity;
  for (let j = first; j <= last; j++) m = max(m, load<f32>(at(scores, j)));
  let sum: f64 = 0;
  const mv = f32x4.splat(m);
  let j = first;
  for (; j + 4 <= last + 1; j += 4) {
    const e = expf4(f32x4.sub(v128.load(at(scores, j)), mv));
    v128.store(at(scores, j), e);
    sum += <f64>f32x4.extract_lane(e, 0) + <f64>f32x4.extract_lane(e, 1) + <f64>f32x4.extract_lane(e, 2) + <f64>f32x4.extract_lane(e, 3);
  }
  for (; j <= last; j++) {
    const e = expf1(load<f32>(at(scores, j)) - m);
    store<f32>(at(scores, j), e);
    sum += <f64>e;
  }
  const inv = f32x4.splat(<f32>(1 / sum));
  j = first;
  for (; j + 4 <= last + 1; j += 4) v128.store(at(scores, j), f32x4.mul(v128.load(at(scores, j)), inv));
  for (; j <= last; j++) store<f32>(at(scores, j), load<f32>(at(scores, j)) * f32x4.extract_lane(inv, 0));
}

/** gate = silu(gate) ⊙ up over count floats (the gated MLP's middle), silu(x) = x / (1 + e^−x). */
export function siluMul(gate: usize, up: usize, count: i32): void {
  const one = f32x4.splat(1);
  let i = 0;
  for (; i + 4 <= count; i += 4) {
    const g = v128.load(at(gate, i));
    const s = f32x4.div(g, f32x4.add(one, expf4(f32x4.neg(g))));
    v128.store(at(gate, i), f32x4.mul(s, v128.load(at(up, i))));
  }
  for (; i < count; i++) {
    const g = load<f32>(at(gate, i));
    store<f32>(at(gate, i), (g / (1 + expf1(-g))) * load<f32>(at(up, i)));
  }
}

/**
 * Tanh-approximated GELU in place (gelu_new, gelu_pytorch_tanh): 0.5·x·(1 + tanh(√(2/π)·(x +
 * 0.044715·x³))), with tanh(u) = 1 − 2 / (e^{2u} + 1).
 */
export function geluTanh(x: usize, count: i32): void {
  const c0 = f32x4.splat(0.7978845608028654), c1 = f32x4.splat(0.044715), one = f32x4.splat(1), two = f32x4.splat(2), half = f32x4.splat(0.5);
  let i = 0;
  for (; i + 4 <= count; i += 4) {
    const v = v128.load(at(x, i));
    const u = f32x4.mul(c0, f32x4.add(v, f32x4.mul(c1, f32x4.mul(v, f32x4.mul(v, v)))));
    const t = f32x4.sub(one, f32x4.div(two, f32x4.add(expf4(f32x4.mul(two, u)), one)));
    v128.store(at(x, i), f32x4.mul(f32x4.mul(half, v), f32x4.add(one, t)));
  }
  for (; i < count; i++) {
    const v = load<f32>(at(x, i));
    const u: f32 = <f32>0.7978845608028654 * (v + <f32>0.044715 * (v * (v * v)));
    const t: f32 = 1 - 2 / (expf1(2 * u) + 1);
    store<f32>(at(x, i), (<f32>0.5 * v) * (1 + t));
  }
}
