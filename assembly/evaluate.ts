// Evaluating a small classifier (an MLP from a checkpoint) on a dataset: the dense layers are
// gemm.ts's X · Wᵀ; these kernels add the bias with the activation, and score the logits.

/** y (rows x cols) = relu(y + bias) when `relu` != 0, else y + bias; bias has cols entries. */
export function addBias(y: usize, bias: usize, rows: i32, cols: i32, relu: i32): void {
  const zero = f32x4.splat(0);
  for (let r = 0; r < rows; r++) {
    const row = y + ((<usize>r * <usize>cols) << 2);
    let c = 0;
    for (; c + 4 <= cols; c += 4) {
      const at = row + (<usize>c << 2);
      let v = f32x4.add(v128.load(at), v128.load(bias + (<usize>c << 2)));
      if (relu) v = f32x4.max(v, zero);
      v128.store(at, v);
    }
    for (; c < cols; c++) {
      const at = row + (<usize>c << 2);
      let v = load<f32>(at) + load<f32>(bias + (<usize>c << 2));
      if (relu && v < 0) v = 0;
      store<f32>(at, v);
    }
  }
}

/**
 * Softmax cross-entropy of `logits` (rows x classes, f32) against `labels` (rows i32), in f64:
 * loss_r = log Σ_c exp(z_c - max) + max - z_label, the max subtracted so exp never overflows.
 * Adds the summed loss to out[0] and the number of rows whose first largest logit is the label to
 * out[1] (both f64). Labels outside [0, classes) are the caller's to reject.
 */
export function crossEntropy(logits: usize, labels: usize, rows: i32, classes: i32, out: usize): void {
  let loss: f64 = 0, correct: f64 = 0;
  for (let r = 0; r < rows; r++) {
    const row = logits + ((<usize>r * <usize>classes) << 2);
    let best = 0;
    let max = load<f32>(row);
    for (let c = 1; c < classes; c++) {
      const z = load<f32>(row + (<usize>c << 2));
      if (z > max) { max = z; best = c; }
    }
    let sum: f64 = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(<f64>load<f32>(row + (<usize>c << 2)) - <f64>max);
    const label = load<i32>(labels + (<usize>r << 2));
    loss += Math.log(sum) + <f64>max - <f64>load<f32>(row + (<usize>label << 2));
    if (best == label) correct += 1;
  }
  store<f64>(out, load<f64>(out) + loss);
  store<f64>(out + 8, load<f64>(out + 8) + correct);
}
