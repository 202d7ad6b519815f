// Shared pieces of the reference transformer models (llama.ts, gpt2.ts): the tensor types, a seeded
// Gaussian generator, and shape-checked tensor lookup. Nothing here depends on src/.

/** A row-major float32 tensor, the way it sits in a safetensors file. */
export interface RefTensor {
  shape: number[];
  data: Float32Array;
}

export type RefTensors = Map<string, RefTensor>;

/**
 * Standard normal samples from a seed: mulberry32 for uniforms, Box-Muller for the normals.
 * Kept self-contained so the reference models do not move when the engine's own generators change.
 */
export function normalStream(seed: number): () => number {
  let state = seed >>> 0;
  const uniform = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
  };
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    // 1 - u lies in (0, 1], so the logarithm stays finite.
    const r = Math.sqrt(-2 * Math.log(1 - uniform()));
    const angle = 2 * Math.PI * uniform();
    spare = r * Math.sin(angle);
    return r * Math.cos(angle);
  };
}

/** offset + scale * N(0, 1) in every element. */
export function randomTensor(shape: number[], normal: () => number, scale: number, offset = 0): RefTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = offset + scale * normal();
  return { shape: [...shape], data };
}

/** The data of `name`, after checking that it exists and has exactly `shape`. */
export function tensorData(t: RefTensors, name: string, shape: number[]): Float32Array {
  const found = t.get(name);
  if (!found) throw new Error(`reference model: missing tensor ${name}`);
  if (found.shape.length !== shape.length || found.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`reference model: ${name} has shape [${found.shape}], expected [${shape}]`);
  }
  const n = shape.reduce((a, b) => a * b, 1);
  if (found.data.length !== n) throw new Error(`reference model: ${name} holds ${found.data.length} values, expected ${n}`);
  return found.data;
}

export function checkTokens(tokens: number[], vocab: number): void {
  if (tokens.length === 0) throw new Error("reference model: empty token sequence");
  for (const tok of tokens) {
    if (!Number.isInteger(tok) || tok < 0 || tok >= vocab) throw new Error(`reference model: token ${tok} outside [0, ${vocab})`);
  }
}

/**
 * Causal softmax attention over rows already projected to q/k/v, for one query head reading one
 * key/value head. Row p of the output only ever reads rows 0..p of k and v.
 * q, k, v, out are [T, stride] row-major; the head occupies columns [offset, offset + headDim).
 */
export function causalHeadAttention(
  T: number,
  headDim: number,
  q: Float64Array, qStride: number, qOffset: number,
  k: Float64Array, v: Float64Array, kvStride: number, kvOffset: number,
  out: Float64Array, outStride: number, outOffset: number,
): void {
  const scale = 1 / Math.sqrt(headDim);
  const scores = new Float64Array(T);
  for (let p = 0; p < T; p++) {
    let max = -Infinity;
    for (let j = 0; j <= p; j++) {
      let s = 0;
      for (let d = 0; d < headDim; d++) s += q[p * qStride + qOffset + d]! * k[j * kvStride + kvOffset + d]!;
      s *= scale;
      scores[j] = s;
      if (s > max) max = s;
    }
    // Subtracting the max keeps exp() in range; it cancels in the normalisation.
    let sum = 0;
    for (let j = 0; j <= p; j++) {
      const e = Math.exp(scores[j]! - max);
      scores[j] = e;
      sum += e;
    }
    for (let d = 0; d < headDim; d++) {
      let acc = 0;
      for (let j = 0; j <= p; j++) acc += scores[j]! * v[j * kvStride + kvOffset + d]!;
      out[p * outStride + outOffset + d] = acc / sum;
    }
  }
}
