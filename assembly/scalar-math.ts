// Transcendental functions for the JavaScript side. JavaScript's Math.sin/cos/exp/log/pow/acos are not
// specified to the bit, and V8 has changed them between versions (Node 20 and Chromium 156 round some
// results differently), so any number that passes through them can differ between the CLI and the
// page. AssemblyScript's Math (a port of musl's libm) is compiled into this module: plain float64
// arithmetic, the same bits in every runtime. JavaScript calls these wherever a result reaches a
// merged tensor, an evaluation number or a sampled token.

export function scalarSin(x: f64): f64 {
  return Math.sin(x);
}

export function scalarCos(x: f64): f64 {
  return Math.cos(x);
}

export function scalarAcos(x: f64): f64 {
  return Math.acos(x);
}

export function scalarExp(x: f64): f64 {
  return Math.exp(x);
}

export function scalarLog(x: f64): f64 {
  return Math.log(x);
}

export function scalarPow(x: f64, y: f64): f64 {
  return Math.pow(x, y);
}

/**
 * RoPE's cos and sin tables for positions 0..rows−1, float32 as transformers makes them
 * (decoder-forward.md 3.4): φ = f32(f32(t) · f_i), then cos φ and sin φ in float64 rounded once to
 * float32, times the attention factor and rounded again. Row t holds `half` values of each table.
 */
export function ropeTables(invFreq: usize, half: i32, rows: i32, attentionFactor: f64, cos: usize, sin: usize): void {
  for (let t = 0; t < rows; t++) {
    const row = <usize>t * <usize>half << 2;
    for (let i = 0; i < half; i++) {
      const phi = <f64>(<f32>t * load<f32>(invFreq + (<usize>i << 2)));
      store<f32>(cos + row + (<usize>i << 2), <f32>(<f64><f32>Math.cos(phi) * attentionFactor));
      store<f32>(sin + row + (<usize>i << 2), <f32>(<f64><f32>Math.sin(phi) * attentionFactor));
    }
  }
}

/**
 * Samples softmax(z / temperature) over n float32 logits: float64 sums of exp((z_i − m) / temperature),
 * m the largest logit (at index `best`); u in [0, 1) picks the first index where the running sum of
 * u · Σ is passed. Returns `best` if rounding leaves u unspent.
 */
export function sampleSoftmax(logits: usize, n: i32, best: i32, temperature: f64, u: f64): i32 {
  const m = <f64>load<f32>(logits + (<usize>best << 2));
  let sum = 0.0;
  for (let i = 0; i < n; i++) sum += Math.exp((<f64>load<f32>(logits + (<usize>i << 2)) - m) / temperature);
  let left = u * sum;
  for (let i = 0; i < n; i++) {
    left -= Math.exp((<f64>load<f32>(logits + (<usize>i << 2)) - m) / temperature);
    if (left < 0) return i;
  }
  return best;
}
