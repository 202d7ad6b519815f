/**
 * @file The worker side of generation: the whole model resident in one kernel instance with a key/
 * value cache, so each new token costs one pass over the weights. The prompt is run as one block of
 * rows (its keys and values fill the cache), then one row per new token. The layer code is the
 * evaluation's, and every kernel computes a row the same way whatever other rows it is given, so the
 * logits of a decoding step are exactly those of a full forward pass over the same tokens.
 */
import { DTYPE_F32, MATMUL_SCRATCH_BYTES } from "../../assembly/layout";
import { WorkerError } from "../errors";
import type { Kernels } from "../kernels/kernels";
import type { DecoderSpec } from "./architecture";
import { decoderLayer, norm, type KvCache, type LayerContext, type Loaded, type LoadedLayer } from "./layer";
import type { LayerWeights, WeightRef } from "./protocol";
import { ropeTables } from "./rope";
import { WeightReader, weightBytes } from "./weight-reader";

export interface GenerationWeights {
  embed: WeightRef;
  positions: WeightRef | undefined;
  finalNorm: WeightRef;
  finalNormBias: WeightRef | undefined;
  lmHead: WeightRef;
  layers: LayerWeights[];
}

export interface Sampling {
  /** 0: greedy (the first largest logit). */
  temperature: number;
  seed: number;
}

export class Generator {
  private readonly reader: WeightReader;
  private ctx: LayerContext | undefined;
  private w: { embed: Loaded; positions?: Loaded; finalNorm: Loaded; finalNormBias?: Loaded; lmHead: Loaded; layers: LoadedLayer[] } | undefined;
  private caches: KvCache[] = [];
  private maxLength = 0;

  constructor(private readonly k: Kernels) {
    this.reader = new WeightReader(k);
  }

  /** Bytes of wasm memory generation needs: every weight, the cache, and a prompt's activations. */
  static bytesNeeded(spec: DecoderSpec, weights: GenerationWeights, maxLength: number): number {
    const refs = [weights.embed, weights.positions, weights.finalNorm, weights.finalNormBias, weights.lmHead, ...weights.layers.flatMap((l) => Object.values(l))]
      .filter((r): r is WeightRef => r !== undefined);
    const tensors = refs.reduce((n, r) => n + weightBytes(r) + (r.shape.length === 1 ? r.shape[0]! * 4 : 0), 0);
    const kv = spec.layers * 2 * maxLength * spec.kvHeads * spec.headDim * 4;
    const rows = maxLength * (4 * spec.hidden + 3 * spec.heads * spec.headDim + 3 * spec.hidden + 2 * spec.intermediate + maxLength) * 4;
    const rope = spec.rope ? maxLength * spec.rope.rot * 4 : 0;
    return tensors + kv + rows + rope + spec.vocab * 4 + MATMUL_SCRATCH_BYTES + (4 << 20);
  }

  async load(spec: DecoderSpec, weights: GenerationWeights, maxLength: number): Promise<void> {
    const { arena } = this.k;
    const needed = Generator.bytesNeeded(spec, weights, maxLength);
    if (needed > arena.budget) {
      throw new WorkerError("E_MEMORY_BUDGET", `generating with this model holds all of it in memory: it needs ${Math.ceil(needed / 2 ** 20)} MiB for ${maxLength} tokens, but the memory budget is ${Math.floor(arena.budget / 2 ** 20)} MiB; raise --memory-budget (option memoryBudget)`,
        { needed, budget: arena.budget, key: "memoryBudget" });
    }
    arena.reset();
    const matmulScratch = arena.alloc(MATMUL_SCRATCH_BYTES);
    let tables: { cos: number; sin: number } | undefined;
    if (spec.rope) {
      tables = ropeTables(spec.rope, maxLength, this.k);
    }
    const layers: LoadedLayer[] = [];
    for (const lw of weights.layers) layers.push(Object.fromEntries(await this.reader.loadAll(Object.entries(lw) as [keyof LayerWeights, WeightRef][])));
    this.w = {
      embed: await this.reader.matrix(weights.embed),
      ...(weights.positions ? { positions: await this.reader.matrix(weights.positions) } : {}),
      finalNorm: await this.reader.vector(weights.finalNorm),
      ...(weights.finalNormBias ? { finalNormBias: await this.reader.vector(weights.finalNormBias) } : {}),
      lmHead: await this.reader.matrix(weights.lmHead),
      layers,
    };
    const kvRow = spec.kvHeads * spec.headDim * 4;
    this.caches = layers.map(() => ({ k: arena.alloc(maxLength * kvRow), v: arena.alloc(maxLength * kvRow) }));
    this.maxLength = maxLength;
    this.ctx = { k: this.k, spec, matmulScratch, tables };
    arena.pinFloor();
    await this.reader.close();
  }

  /**
   * Generates up to `maxNew` tokens after `prompt`, stopping after any of `stop`. `onToken` hears
   * each token as it is chosen. Returns the new tokens.
   */
  run(prompt: Int32Array, maxNew: number, sampling: Sampling, stop: readonly number[], onToken: (id: number) => void): Int32Array {
    const ctx = this.ctx!, w = this.w!, { spec } = ctx;
    const { arena, exports: k } = this.k;
    if (prompt.length + maxNew > this.maxLength) throw new WorkerError("E_DATA", `a prompt of ${prompt.length} tokens and ${maxNew} new ones do not fit the ${this.maxLength} positions prepared`, {});
    const out: number[] = [];
    let tokens = prompt, pos = 0;
    for (let step = 0; step < maxNew; step++) {
      arena.reset();
      const T = tokens.length, H = spec.hidden;
      const x = arena.alloc(T * H * 4);
      this.embedRows(tokens, pos, x);
      for (let l = 0; l < spec.layers; l++) decoderLayer(ctx, l, w.layers[l]!, x, T, pos, this.caches[l]);
      const last = x + (T - 1) * H * 4;
      norm(ctx, last, 1, w.finalNorm, w.finalNormBias, last);
      const logits = arena.alloc(spec.vocab * 4);
      // The output projection is nn.Linear's [vocab, hidden] in every family (GPT-2 included).
      k.linear(last, 1, H, w.lmHead.ptr, w.lmHead.code, spec.vocab, logits, 0, ctx.matmulScratch);
      const id = sample(this.k, logits, spec.vocab, sampling, step);
      out.push(id);
      onToken(id);
      pos += T;
      if (stop.includes(id)) break;
      tokens = Int32Array.of(id);
    }
    return Int32Array.from(out);
  }

  /** x rows ← token embeddings (+ learned positions from `pos`). */
  private embedRows(ids: Int32Array, pos: number, x: number): void {
    const { spec } = this.ctx!, w = this.w!, k = this.k.exports;
    const H = spec.hidden, eb = codeBytes(w.embed.code);
    ids.forEach((id, r) => {
      if (id < 0 || id >= spec.vocab) throw new WorkerError("E_DATA", `token id ${id} is outside the vocabulary of ${spec.vocab}`, {});
      k.decode(w.embed.ptr + id * H * eb, w.embed.code, x + r * H * 4, H);
    });
    if (w.positions) {
      const row = this.k.arena.alloc(H * 4);
      const pb = codeBytes(w.positions.code);
      for (let r = 0; r < ids.length; r++) {
        k.decode(w.positions.ptr + (pos + r) * H * pb, w.positions.code, row, H);
        k.addInPlace(x + r * H * 4, row, H);
      }
    }
  }
}

/**
 * Greedy: the first largest of the `n` float32 logits at `logits`. Else softmax(z / temperature)
 * sampled with a counter-based generator, by the kernels (their exp is the same bits in every runtime).
 */
export function sample(k: Kernels, logits: number, n: number, sampling: Sampling, step: number): number {
  const z = k.arena.f32(logits, n);
  let best = 0;
  for (let i = 1; i < n; i++) if (z[i]! > z[best]!) best = i;
  if (sampling.temperature <= 0) return best;
  return k.exports.sampleSoftmax(logits, n, best, sampling.temperature, samplingUniform(sampling.seed, step));
}

/** A uniform number in [0, 1) from (seed, step) alone: the same seed gives the same tokens. */
export function samplingUniform(seed: number, step: number): number {
  let x = (Math.imul(step + 1, 0x9e3779b1) ^ Math.imul(seed ^ 0x6a09e667, 0x85ebca77)) >>> 0;
  x ^= x >>> 16; x = Math.imul(x, 0x21f0aaad); x ^= x >>> 15; x = Math.imul(x, 0x735a2d97); x ^= x >>> 15;
  return (x >>> 0) / 4294967296;
}

/** Bytes per element of a kernel dtype code (F32, or the 16-bit F16/BF16). */
function codeBytes(code: number): number {
  return code === DTYPE_F32 ? 4 : 2;
}
