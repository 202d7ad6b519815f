/**
 * @file The worker side of evaluation: a set of token sequences held in one kernel instance, taken
 * through a model one layer at a time. The evaluating thread sends each layer's weights (references
 * the worker reads itself, or bytes) and the worker runs that layer over every sequence it holds; the
 * hidden states stay in wasm memory between layers, and only one layer's weights are in memory at
 * a time. After the last layer and the final norm, the output projection is streamed in vocabulary
 * chunks and folded into per-token scores (assembly/scoring.ts), so no row of logits is ever whole.
 */
import { MATMUL_SCRATCH_BYTES, SCRATCH_BYTES, SCORE_BEST_A, SCORE_BEST_E, SCORE_M_A, SCORE_M_E, SCORE_RECORD, SCORE_S_A, SCORE_S_E, SCORE_TARGET, SCORE_W_A } from "../../assembly/layout";
import { WorkerError } from "../errors";
import type { Kernels } from "../kernels/kernels";
import type { DecoderSpec } from "./architecture";
import type { LayerWeights, SequenceScores, WeightRef } from "./protocol";
import { ropeTables } from "./rope";
import { decoderLayer, norm as normRows, type LayerContext, type LoadedLayer } from "./layer";
import { dtypeCode, elementBytes, WeightReader } from "./weight-reader";
import { Phases } from "./profile";
import { mib } from "../units";

/** Vocabulary entries per scoring chunk: the output projection is read this many rows at a time. */
export const VOCAB_CHUNK = 2048;

/**
 * What an evaluation instance holds whatever it runs: the kernels' scratch (loadKernels), the session's
 * matmul scratch, and 64 KiB for the kernels' static data below the arena (about 12 KiB).
 */
export const SESSION_FIXED_BYTES = 65536 + SCRATCH_BYTES + MATMUL_SCRATCH_BYTES;

/**
 * At most the bytes score() takes from a worker's instance beside the hidden states: its records and
 * targets for `predicted` positions, a vocabulary chunk of each output projection (taken as float32),
 * and two chunks of logits for a sequence of `longest` tokens (16 bytes of rounding per allocation).
 * For planning how many models' states fit with it (engine.ts statesThatFit).
 */
export function scoreBytes(predicted: number, longest: number, model: { vocab: number; hidden: number }, against: readonly { hidden: number }[]): number {
  const chunk = Math.min(VOCAB_CHUNK, model.vocab);
  const allocations = [
    ...Array.from({ length: Math.max(1, against.length) }, () => predicted * SCORE_RECORD),
    predicted * 4,
    chunk * model.hidden * 4,
    ...against.map((a) => chunk * a.hidden * 4),
    longest * chunk * 4,
    longest * chunk * 4,
  ];
  return allocations.reduce((n, b) => n + b + 16, 0);
}

interface Sequence {
  ids: Int32Array;
  /** First row of this sequence in the hidden-state buffers. */
  row: number;
}


export class EvalSession {
  private readonly reader: WeightReader;
  private sequences: Sequence[] = [];
  private rows = 0;
  private maxLength = 0;
  /** Hidden states per model (rows × hidden, float32), kept from embedding to scoring. */
  private readonly hidden = new Map<string, number>();
  /** cos/sin tables per model, for positions 0..maxLength−1. */
  private readonly tables = new Map<string, { cos: number; sin: number }>();
  /** Arena top above everything kept between calls: each call's temporaries are released down to it. */
  private kept = 0;
  /** Arena top above what the session keeps for its whole life (the matmul scratch): new sequences release down to it. */
  private readonly base: number;
  private matmulScratch = 0;
  private readonly phases = new Phases("worker");

  constructor(private readonly k: Kernels) {
    this.reader = new WeightReader(k);
    this.matmulScratch = k.arena.alloc(MATMUL_SCRATCH_BYTES);
    this.kept = this.base = k.arena.mark();
  }

  /** The sequences this worker evaluates (replacing any earlier ones and every model's states). */
  setSequences(sequences: readonly Int32Array[]): void {
    // Every model's hidden states and tables go with the old sequences (a sweep's or an evaluation's next pass).
    this.k.arena.release(this.base);
    this.hidden.clear();
    this.tables.clear();
    let row = 0;
    this.sequences = sequences.map((ids) => {
      const s = { ids, row };
      row += ids.length;
      return s;
    });
    this.rows = row;
    this.maxLength = Math.max(0, ...sequences.map((s) => s.length));
    this.kept = this.k.arena.mark();
  }

  /** Starts `model`: its token (and, for GPT-2, position) embeddings become the hidden states. */
  async embed(model: string, spec: DecoderSpec, embed: WeightRef, positions: WeightRef | undefined): Promise<void> {
    const { arena, exports } = this.k;
    if (this.hidden.has(model)) throw new Error(`model ${model} is already embedded`);
    const H = spec.hidden;
    const hidden = this.sized("the hidden states", () => arena.alloc(this.rows * H * 4));
    if (spec.rope) {
      this.tables.set(model, ropeTables(spec.rope, Math.max(1, this.maxLength), this.k));
    }
    this.kept = arena.mark();
    this.hidden.set(model, hidden);
    try {
      await this.sized("the embedding", () => this.gatherRows(embed, hidden));
      if (positions) {
        const pb = elementBytes(positions.dtype);
        const table = arena.alloc(this.maxLength * H * Math.max(pb, 4));
        await this.reader.read(positions, 0, arena.u8(table, this.maxLength * H * pb));
        const decoded = arena.alloc(this.maxLength * H * 4);
        exports.decode(table, dtypeCode(positions.dtype), decoded, this.maxLength * H);
        for (const seq of this.sequences) exports.addInPlace(hidden + seq.row * H * 4, decoded, seq.ids.length * H);
      }
    } finally {
      arena.release(this.kept);
    }
  }

  /**
   * hidden rows ← the embedding rows of the sequences' ids, decoded. Each distinct id is read once;
   * runs of consecutive ids are one read; all reads are issued together (in a browser each read of a
   * picked file is a separate request, and one at a time they cost seconds).
   */
  private async gatherRows(embed: WeightRef, hidden: number): Promise<void> {
    const { arena, exports } = this.k;
    const H = embed.shape[1]!, rowBytes = H * elementBytes(embed.dtype), code = dtypeCode(embed.dtype);
    const distinct = [...new Set(this.sequences.flatMap((s) => [...s.ids]))].sort((a, b) => a - b);
    for (const id of distinct) {
      if (id < 0 || id >= embed.shape[0]!) throw new WorkerError("E_DATA", `token id ${id} is outside the vocabulary of ${embed.shape[0]} (tensor "${embed.name}")`, { tensor: embed.name });
    }
    const raw = arena.alloc(distinct.length * rowBytes);
    const slot = new Map(distinct.map((id, i) => [id, i]));
    const runs: [number, number][] = []; // [first index in distinct, length]
    for (let i = 0; i < distinct.length; i++) {
      const last = runs[runs.length - 1];
      if (last && distinct[last[0] + last[1] - 1]! + 1 === distinct[i]) last[1]++;
      else runs.push([i, 1]);
    }
    // Every region exists before the first read starts: no allocation can detach a view mid-read.
    await Promise.all(runs.map(([i, n]) => this.reader.read(embed, distinct[i]! * rowBytes, arena.u8(raw + i * rowBytes, n * rowBytes))));
    for (const seq of this.sequences) {
      for (let t = 0; t < seq.ids.length; t++) exports.decode(raw + slot.get(seq.ids[t]!)! * rowBytes, code, hidden + (seq.row + t) * H * 4, H);
    }
  }

  /** `to` starts with a copy of `from`'s hidden states (`hidden` wide) and position tables. */
  fork(from: string, to: string, hidden: number): void {
    if (this.hidden.has(to)) throw new Error(`model ${to} is already embedded`);
    const source = this.state(from), bytes = this.rows * hidden * 4;
    const copy = this.k.arena.alloc(bytes);
    this.k.arena.u8(copy, bytes).set(this.k.arena.u8(source, bytes));
    this.kept = this.k.arena.mark();
    this.hidden.set(to, copy);
    const tables = this.tables.get(from);
    if (tables) this.tables.set(to, tables);
  }

  /** Runs layer `layer` of `model` over every sequence. */
  async layer(model: string, spec: DecoderSpec, layer: number, weights: LayerWeights): Promise<void> {
    const { arena } = this.k;
    const hidden = this.state(model);
    try {
      const stored = Object.values(weights).reduce((n, ref) => n + ref.shape.reduce((a, b) => a * b, 1) * elementBytes(ref.dtype), 0);
      await this.sized(`layer ${layer} (its weights, ${mib(stored)} as stored, and its work for sequences of ${this.maxLength} tokens)`, async () => {
        // Vectors (norms, biases) are decoded to float32; matrices stay in their stored dtype.
        const w: LoadedLayer = Object.fromEntries(await this.phases.time("layer weights into wasm", this.reader.loadAll(Object.entries(weights) as [keyof LayerWeights, WeightRef][])));
        const ctx = this.context(model, spec);
        await this.phases.time("layer compute", async () => {
          for (const seq of this.sequences) decoderLayer(ctx, layer, w, hidden + seq.row * spec.hidden * 4, seq.ids.length, 0, undefined);
        });
      });
    } finally {
      arena.release(this.kept);
    }
  }

  /**
   * Runs `step`; where it overflows the budget, the error says which part of the forward pass needed
   * the memory, and how much of it the hidden states held between calls take (the calling thread
   * names the model: engine.ts forModel).
   */
  private sized<T>(part: string, step: () => T): T {
    const fail = (e: unknown): never => {
      if (!(e instanceof WorkerError) || e.code !== "E_MEMORY_BUDGET" || typeof e.details.needed !== "number") throw e;
      const held = this.kept - this.base;
      throw new WorkerError("E_MEMORY_BUDGET", `${part} needs more than ${mib(e.details.needed)} of wasm memory, ${mib(held)} of it the hidden states held between layers, `
        + `but the forward pass has ${mib(this.k.arena.budget)} (what --memory-budget leaves per worker once the merge kernels have their share); `
        + "raise --memory-budget (option memoryBudget), or evaluate shorter windows (--context)", e.details, { cause: e });
    };
    try {
      const result = step();
      return result instanceof Promise ? result.catch(fail) as T : result;
    } catch (e) {
      return fail(e);
    }
  }

  private context(model: string, spec: DecoderSpec): LayerContext {
    return { k: this.k, spec, matmulScratch: this.matmulScratch, tables: this.tables.get(model) };
  }

  /** Applies the final norm to `model`'s hidden states, in place. */
  async finalNorm(model: string, spec: DecoderSpec, norm: WeightRef, bias: WeightRef | undefined): Promise<void> {
    const hidden = this.state(model);
    try {
      const w = await this.reader.vector(norm), b = bias ? await this.reader.vector(bias) : undefined;
      normRows(this.context(model, spec), hidden, this.rows, w, b, hidden);
    } finally {
      this.k.arena.release(this.kept);
    }
  }

  /**
   * Scores `model`'s predictions (every position but a sequence's last predicts the next id) through
   * its output projection `lmHead` ([vocab, hidden]), and against each model of `against` (already
   * through their final norms) with theirs. Returns per predicted position, in sequence order.
   */
  async score(model: string, lmHead: WeightRef, against: readonly { model: string; lmHead: WeightRef }[]): Promise<SequenceScores> {
    const { arena, exports: k } = this.k;
    const he = this.state(model);
    const hs = against.map((a) => this.state(a.model));
    const [V, H] = lmHead.shape as [number, number];
    // An against model shares the vocabulary, not necessarily the hidden size.
    const hA = against.map((a) => a.lmHead.shape[1]!);
    const predicted = this.sequences.reduce((n, s) => n + Math.max(0, s.ids.length - 1), 0);
    const records = Math.max(1, against.length);
    const chunk = Math.min(VOCAB_CHUNK, V);
    try {
      return await this.sized(`scoring (records of ${predicted} positions, ${chunk} rows of each output projection at a time and their logits)`, async () => {
        const states = Array.from({ length: records }, () => arena.alloc(predicted * SCORE_RECORD));
        for (const s of states) k.scoreReset(s, predicted);
        const targets = arena.alloc(predicted * 4);
        const t32 = arena.u32(targets, predicted);
        let r = 0;
        for (const seq of this.sequences) for (let t = 1; t < seq.ids.length; t++) t32[r++] = seq.ids[t]!;
        const wE = arena.alloc(chunk * H * elementBytes(lmHead.dtype));
        const wA = against.map((a, i) => arena.alloc(chunk * hA[i]! * elementBytes(a.lmHead.dtype)));
        const ze = arena.alloc(this.maxLength * chunk * 4), za = arena.alloc(this.maxLength * chunk * 4);
        for (let v0 = 0; v0 < V; v0 += chunk) {
          const n = Math.min(chunk, V - v0);
          await this.reader.read(lmHead, v0 * H * elementBytes(lmHead.dtype), arena.u8(wE, n * H * elementBytes(lmHead.dtype)));
          for (const [i, a] of against.entries()) {
            await this.reader.read(a.lmHead, v0 * hA[i]! * elementBytes(a.lmHead.dtype), arena.u8(wA[i]!, n * hA[i]! * elementBytes(a.lmHead.dtype)));
          }
          let row = 0;
          for (const seq of this.sequences) {
            const T = seq.ids.length - 1;
            if (T <= 0) continue;
            k.linear(he + seq.row * H * 4, T, H, wE, dtypeCode(lmHead.dtype), n, ze, 0, this.matmulScratch);
            if (against.length === 0) k.scoreChunk(ze, 0, T, n, v0, targets + row * 4, states[0]! + row * SCORE_RECORD);
            for (const [i, a] of against.entries()) {
              k.linear(hs[i]! + seq.row * hA[i]! * 4, T, hA[i]!, wA[i]!, dtypeCode(a.lmHead.dtype), n, za, 0, this.matmulScratch);
              k.scoreChunk(ze, za, T, n, v0, targets + row * 4, states[i]! + row * SCORE_RECORD);
            }
            row += T;
          }
        }
        return this.results(states, predicted, against.length);
      });
    } finally {
      arena.release(this.kept);
    }
  }

  /** Every position's logits of `model`, sequence after sequence ([rows × vocab], float32). */
  async logits(model: string, lmHead: WeightRef): Promise<Float32Array> {
    const { arena, exports: k } = this.k;
    const hidden = this.state(model);
    const [V, H] = lmHead.shape as [number, number];
    try {
      return await this.sized(`the logits (the output projection, ${mib(V * H * elementBytes(lmHead.dtype))} as stored, and ${this.maxLength} rows of ${V} logits)`, async () => {
        const w = await this.reader.matrix(lmHead);
        const out = new Float32Array(this.rows * V);
        const z = arena.alloc(this.maxLength * V * 4);
        for (const seq of this.sequences) {
          k.linear(hidden + seq.row * H * 4, seq.ids.length, H, w.ptr, w.code, V, z, 0, this.matmulScratch);
          out.set(arena.f32(z, seq.ids.length * V), seq.row * V);
        }
        return out;
      });
    } finally {
      arena.release(this.kept);
    }
  }

  private results(states: number[], predicted: number, againstCount: number): SequenceScores {
    const view = this.k.arena.f64(states[0]!, (predicted * SCORE_RECORD) / 8);
    const at = (records: Float64Array, r: number, field: number) => records[(r * SCORE_RECORD + field) / 8]!;
    const log = this.k.exports.scalarLog; // the kernels' log: the same bits in every runtime (kernels/scalar-math.ts)
    const nll = new Float64Array(predicted);
    for (let r = 0; r < predicted; r++) {
      const lse = at(view, r, SCORE_M_E) + log(at(view, r, SCORE_S_E));
      nll[r] = lse - at(view, r, SCORE_TARGET);
    }
    const against = Array.from({ length: againstCount }, (_, i) => {
      const records = this.k.arena.f64(states[i]!, (predicted * SCORE_RECORD) / 8);
      const kl = new Float64Array(predicted), agree = new Uint8Array(predicted);
      for (let r = 0; r < predicted; r++) {
        const lseE = at(records, r, SCORE_M_E) + log(at(records, r, SCORE_S_E));
        const lseA = at(records, r, SCORE_M_A) + log(at(records, r, SCORE_S_A));
        kl[r] = at(records, r, SCORE_W_A) / at(records, r, SCORE_S_A) - lseA + lseE;
        agree[r] = at(records, r, SCORE_BEST_A) === at(records, r, SCORE_BEST_E) ? 1 : 0;
      }
      return { kl, agree };
    });
    return { nll, against };
  }

  /** Closes the files this session read. */
  async close(): Promise<void> {
    this.phases.report();
    await this.reader.close();
  }

  private state(model: string): number {
    const ptr = this.hidden.get(model);
    if (ptr === undefined) throw new Error(`model ${model} was not embedded in this worker`);
    return ptr;
  }
}
