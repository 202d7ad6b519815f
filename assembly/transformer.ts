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
 * Every score is Σ_c q_c·k_c added in order of c, one float32 rounding per step, and every output
 * Σ_j p_j·v_j in order of j. Blocks of four query rows share each load of the (transposed) keys and
 * of the values; a single decoding row goes key by key. Either way the same numbers come out (a block
 * adds weights of exactly 0 for keys a row does not see, which leaves its sums unchanged).
 * `scratch` holds tk·(d + 4) + 40 floats.
 */
export function attention(
  q: usize, qStride: i32, k: usize, v: usize, kvStride: i32, tq: i32, tk: i32, p0: i32,
  heads: i32, kvHeads: i32, d: i32, scale: f32, window: i32, out: usize, outStride: i32, scratch: usize,
): void {
  const rep = heads / kvHeads;
  const blocked = tq >= 4;
  const kt = scratch, rows = scratch + (<usize>(d * tk + 8) << 2);
  for (let g = 0; g < kvHeads; g++) {
    if (blocked) {
      // kt[c][j] = k[j][g·d + c]: keys along rows of d, so lanes hold consecutive keys.
      for (let j = 0; j < tk; j++) {
        const row = at(k, j * kvStride + g * d);
        for (let c = 0; c < d; c++) store<f32>(at(kt, c * tk + j), load<f32>(at(row, c)));
      }
    }
    for (let h = g * rep; h < (g + 1) * rep; h++) {
      let i = 0;
      if (blocked && (d & 7) == 0) for (; i + 4 <= tq; i += 4) attendFour(q, qStride, v, kvStride, tk, p0 + i, i, h, g, d, scale, window, out, outStride, kt, rows);
      for (; i < tq; i++) attendOne(q, qStride, k, v, kvStride, tk, p0 + i, i, h, g, d, scale, window, out, outStride, blocked ? kt : 0, rows);
    }
  }
}

/** The keys row `pos` sees: [first, last]. */
// @ts-ignore: decorator
@inline function firstKey(pos: i32, window: i32): i32 {
  return window > 0 ? max(0, pos - window + 1) : 0;
}

/** One query row: scores (four keys per lane group from kt when given, else key by key), softmax, weighted values. */
function attendOne(
  q: usize, qStride: i32, k: usize, v: usize, kvStride: i32, tk: i32, pos: i32, i: i32, h: i32, g: i32, d: i32,
  scale: f32, window: i32, out: usize, outStride: i32, kt: usize, scores: usize,
): void {
  const last = min(pos, tk - 1), first = firstKey(pos, window);
  const qv = at(q, i * qStride + h * d);
  let j = first;
  if (kt != 0) {
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

/**
 * Four consecutive query rows (positions pos0..pos0+3) of head h: each load of eight transposed keys
 * and of eight value columns serves all four. Scores cover the union of the rows' key ranges; each
 * row's softmax then uses its own range and zeroes the rest, so its weighted sum adds exact zeros.
 */
function attendFour(
  q: usize, qStride: i32, v: usize, kvStride: i32, tk: i32, pos0: i32, i0: i32, h: i32, g: i32, d: i32,
  scale: f32, window: i32, out: usize, outStride: i32, kt: usize, rows: usize,
): void {
  const lo = firstKey(pos0, window), hi = min(pos0 + 3, tk - 1);
  const q0 = at(q, i0 * qStride + h * d), q1 = q0 + (<usize>qStride << 2), q2 = q1 + (<usize>qStride << 2), q3 = q2 + (<usize>qStride << 2);
  // Rows of scores tk + 8 apart: the last group of eight keys may run past hi.
  const stride = tk + 8;
  const s0 = rows, s1 = at(rows, stride), s2 = at(rows, 2 * stride), s3 = at(rows, 3 * stride);
  const sv = f32x4.splat(scale);
  for (let j = lo; j <= hi; j += 8) {
    let a0 = f32x4.splat(0), b0 = f32x4.splat(0), a1 = f32x4.splat(0), b1 = f32x4.splat(0);
    let a2 = f32x4.splat(0), b2 = f32x4.splat(0), a3 = f32x4.splat(0), b3 = f32x4.splat(0);
    for (let c = 0; c < d; c++) {
      const kp = at(kt, c * tk + j);
      const k0 = v128.load(kp), k1 = v128.load(kp, 16);
      const x0 = f32x4.splat(load<f32>(at(q0, c))), x1 = f32x4.splat(load<f32>(at(q1, c)));
      const x2 = f32x4.splat(load<f32>(at(q2, c))), x3 = f32x4.splat(load<f32>(at(q3, c)));
      a0 = f32x4.add(a0, f32x4.mul(x0, k0)); b0 = f32x4.add(b0, f32x4.mul(x0, k1));
      a1 = f32x4.add(a1, f32x4.mul(x1, k0)); b1 = f32x4.add(b1, f32x4.mul(x1, k1));
      a2 = f32x4.add(a2, f32x4.mul(x2, k0)); b2 = f32x4.add(b2, f32x4.mul(x2, k1));
      a3 = f32x4.add(a3, f32x4.mul(x3, k0)); b3 = f32x4.add(b3, f32x4.mul(x3, k1));
    }
    v128.store(at(s0, j), f32x4.mul(a0, sv)); v128.store(at(s0, j + 4), f32x4.mul(b0, sv));
    v128.store(at(s1, j), f32x4.mul(a1, sv)); v128.store(at(s1, j + 4), f32x4.mul(b1, sv));
    v128.store(at(s2, j), f32x4.mul(a2, sv)); v128.store(at(s2, j + 4), f32x4.mul(b2, sv));
    v128.store(at(s3, j), f32x4.mul(a3, sv)); v128.store(at(s3, j + 4), f32x4.mul(b3, sv));
  }
  for (let r = 0; r < 4; r++) {
    const s = at(rows, r * stride), pos = pos0 + r;
    const first = firstKey(pos, window), last = min(pos, tk - 1);
    softmaxInPlace(s, first, last);
    for (let j = lo; j < first; j++) store<f32>(at(s, j), 0);
    for (let j = last + 1; j <= hi; j++) store<f32>(at(s, j), 0);
  }
  const o0 = at(out, i0 * outStride + h * d), o1 = o0 + (<usize>outStride << 2), o2 = o1 + (<usize>outStride << 2), o3 = o2 + (<usize>outStride << 2);
  for (let c = 0; c < d; c += 8) {
    let a0 = f32x4.splat(0), b0 = f32x4.splat(0), a1 = f32x4.splat(0), b1 = f32x4.splat(0);
    let a2 = f32x4.splat(0), b2 = f32x4.splat(0), a3 = f32x4.splat(0), b3 = f32x4.splat(0);
    for (let j = lo; j <= hi; j++) {
      const vp = at(v, j * kvStride + g * d + c);
      const v0 = v128.load(vp), v1 = v128.load(vp, 16);
      const p0 = f32x4.splat(load<f32>(at(s0, j))), p1 = f32x4.splat(load<f32>(at(s1, j)));
      const p2 = f32x4.splat(load<f32>(at(s2, j))), p3 = f32x4.splat(load<f32>(at(s3, j)));
      a0 = f32x4.add(a0, f32x4.mul(p0, v0)); b0 = f32x4.add(b0, f32x4.mul(p0, v1));
      a1 = f32x4.add(a1, f32x4.mul(p1, v0)); b1 = f32x4.add(b1, f32x4.mul(p1, v1));
      a2 = f32x4.add(a2, f32x4.mul(p2, v0)); b2 = f32x4.add(b2, f32x4.mul(p2, v1));
      a3 = f32x4.add(a3, f32x4.mul(p3, v0)); b3 = f32x4.add(b3, f32x4.mul(p3, v1));
    }
    v128.store(at(o0, c), a0); v128.store(at(o0, c + 4), b0);
    v128.store(at(o1, c), a1); v128.store(at(o1, c + 4), b1);
    v128.store(at(o2, c), a2); v128.store(at(o2, c + 4), b2);
    v128.store(at(o3, c), a3); v128.store(at(o3, c + 4), b3);
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
