/**
 * @file Running models over token sequences with the worker pool, one layer at a time. The sequences
 * are dealt to the workers (sequence i to worker i mod W), each worker keeps its sequences' hidden
 * states, and every layer's weights are sent to all workers together: memory holds one layer plus the
 * activations, whatever the model's size. A sequence is always computed whole in one worker, with the
 * same kernels, so its numbers do not depend on the number of workers.
 */
import { DataError, RecipeError, WeightsoupError, WorkerError } from "../errors";
import type { WorkerPool } from "../pool/pool";
import { positionLimit, type DecoderSpec } from "./architecture";
import type { EvalEvent, LayerWeights, SequenceScores } from "./protocol";
import type { DecoderSource } from "./sources";
import { Phases } from "./profile";
import { scoreBytes, SESSION_FIXED_BYTES } from "./session";

/** Per predicted token of every sequence, in sequence order. */
export interface ModelScores {
  model: string;
  nll: Float64Array;
  against: { model: string; kl: Float64Array; agree: Uint8Array }[];
}

export interface ScoreOptions {
  signal?: AbortSignal;
  onProgress?: (event: EvalEvent) => void;
  /** Bytes of each worker's evaluation instance (evalOpen's): bounds how many models' hidden states are held at once. */
  forwardBudget?: number;
}

/**
 * How many of `models` can keep their hidden states in the workers at once beside `against`'s; at
 * least one. A worker holds its sequences' rows, plus one sequence of room for a layer's temporaries.
 * The states get half of each worker's evaluation budget (the other half is a layer's working memory),
 * and less where scoring needs more than that half beside them (scoreBytes: a long context's logit
 * chunks), less what the instance holds anyway (SESSION_FIXED_BYTES). Sized by the largest model's
 * states and scoring, so the order models come in does not matter.
 */
export function statesThatFit(forwardBudget: number, dealt: readonly (readonly Int32Array[])[], models: readonly DecoderSource[], against: readonly DecoderSource[]): number {
  const rows = Math.max(...dealt.map((seqs) => seqs.reduce((n, s) => n + s.length, 0)));
  const longest = Math.max(...dealt.flat().map((s) => s.length));
  const predicted = Math.max(...dealt.map((seqs) => seqs.reduce((n, s) => n + Math.max(0, s.length - 1), 0)));
  const stateBytes = (m: DecoderSource) => (rows + longest) * m.spec.hidden * 4;
  const againstBytes = against.reduce((n, a) => n + stateBytes(a), 0);
  const scoring = Math.max(...models.map((m) => scoreBytes(predicted, longest, m.spec, against.map((a) => a.spec))));
  // A wide model's layer may need more than half (found by the stop 37 audit: hidden 1024 at 40 MiB failed in every pass size).
  const layer = Math.max(...[...models, ...against].map((m) => layerBytes(m.spec, longest)));
  const forStates = Math.min(forwardBudget / 2, forwardBudget - scoring, forwardBudget - layer) - SESSION_FIXED_BYTES - againstBytes;
  return Math.max(1, Math.floor(forStates / Math.max(...models.map(stateBytes))));
}

/**
 * At most the bytes one layer of `spec` takes from a worker's instance for sequences of `longest`
 * tokens (session.ts layer, layer.ts decoderLayer): its weights as read (taken as float32, the widest a
 * checkpoint stores; vectors decoded beside them) and one sequence's activations, 16 bytes of rounding
 * per allocation. For planning passes (statesThatFit).
 */
export function layerBytes(spec: DecoderSpec, longest: number): number {
  const { hidden: H, heads, kvHeads, headDim: D, intermediate: I } = spec;
  const q = heads * D, kv = kvHeads * D, mlps = spec.mlp === "gated-silu" ? 3 : 2;
  const matrices = H * (q + 2 * kv) + q * H + mlps * H * I;
  // Two norms (weight and bias), q/k norms, every projection's bias: each read, then decoded.
  const vectors = 4 * H + 2 * D + (q + 2 * kv) + H + (mlps - 1) * I + H;
  const T = longest;
  const activations = [T * H, T * Math.max(3 * H, q + 2 * kv), T * q, T * (D + 4) + 40, T * H, T * I, T * I];
  const allocations = 16 + activations.length + 2 * 16;
  return 4 * (matrices + 2 * vectors + activations.reduce((n, x) => n + x, 0)) + 16 * allocations;
}

/**
 * Scores each model of `evaluated` on `sequences` (each a separate forward pass from position 0),
 * and against each model of `against` at the same positions. The pool's workers must have opened
 * their evaluation instances.
 */
export async function scoreModels(pool: WorkerPool, sequences: readonly Int32Array[], evaluated: readonly DecoderSource[], against: readonly DecoderSource[], options: ScoreOptions = {}): Promise<ModelScores[]> {
  const { signal } = options;
  const emit = (e: EvalEvent) => options.onProgress?.(e);
  const workers = Math.max(1, Math.min(pool.size, sequences.length));
  checkInputs(sequences, [...evaluated, ...against], evaluated, against);
  const dealt = Array.from({ length: workers }, (_, w) => sequences.filter((_, i) => i % workers === w));
  // Memory holds the hidden states of as many evaluated models as fit (every model, usually); more
  // models (a loss path of thousands of points) go in passes, each running the against models again.
  const perPass = options.forwardBudget === undefined ? evaluated.length : statesThatFit(options.forwardBudget, dealt, evaluated, against);
  const phases = new Phases("evaluate");
  const out: ModelScores[] = [];
  for (let from = 0; from < evaluated.length; from += perPass) {
    const pass = evaluated.slice(from, from + perPass);
    // A fresh session per pass: every state of the last pass released.
    await Promise.all(dealt.map((seqs, w) => pool.on(w, (api) => api.evalSequences(seqs))));
    // Each distinct model once; its id in the workers is its position here.
    const models = [...new Set([...against, ...pass])];
    const id = (m: DecoderSource) => `m${models.indexOf(m)}`;
    for (const m of models) {
      signal?.throwIfAborted();
      await runModel(pool, workers, id(m), m, emit, signal, phases);
    }
    for (const e of pass) {
      signal?.throwIfAborted();
      emit({ type: "scoring", model: e.name, against: against.map((a) => a.name) });
      const heads = await phases.time("wait for weights", e.weights([e.spec.lmHead]));
      const againstHeads = await Promise.all(against.map(async (a) => ({ model: id(a), lmHead: (await a.weights([a.spec.lmHead])).get(a.spec.lmHead)! })));
      const perWorker = await phases.time("scoring", forModel(e.name, Promise.all(dealt.map((_, w) => pool.on(w, (api) => api.evalScore(id(e), heads.get(e.spec.lmHead)!, againstHeads))))));
      out.push(gather(e.name, against.map((a) => a.name), sequences, dealt, perWorker));
    }
  }
  phases.report();
  return out;
}

/** The logits of one model at every position of each sequence ([length × vocab] per sequence). */
export async function modelLogits(pool: WorkerPool, sequences: readonly Int32Array[], m: DecoderSource, options: ScoreOptions = {}): Promise<Float32Array[]> {
  const workers = Math.max(1, Math.min(pool.size, sequences.length));
  checkInputs(sequences, [m], [m], []);
  const dealt = Array.from({ length: workers }, (_, w) => sequences.filter((_, i) => i % workers === w));
  await Promise.all(dealt.map((seqs, w) => pool.on(w, (api) => api.evalSequences(seqs))));
  await runModel(pool, workers, "m0", m, (e) => options.onProgress?.(e), options.signal);
  const head = (await m.weights([m.spec.lmHead])).get(m.spec.lmHead)!;
  const perWorker = await forModel(m.name, Promise.all(dealt.map((_, w) => pool.on(w, (api) => api.evalLogits("m0", head)))));
  const V = m.spec.vocab, cursor = new Array<number>(workers).fill(0);
  return sequences.map((s, i) => {
    const w = i % workers, from = cursor[w]!;
    cursor[w] = from + s.length * V;
    return perWorker[w]!.slice(from, from + s.length * V);
  });
}

/** A call for `model` on the workers, which know models by ids ("m0", a sweep's states): a budget overflow is told with its name. */
export async function forModel<T>(model: string, call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (e) {
    if (e instanceof WeightsoupError && e.code === "E_MEMORY_BUDGET") throw new WorkerError(e.code, `${model}: ${e.message}`, { ...e.details, model }, { cause: e });
    throw e;
  }
}

/** Embeddings, every layer, the final norm: the model's hidden states end up in the workers. */
async function runModel(pool: WorkerPool, workers: number, id: string, m: DecoderSource, emit: (e: EvalEvent) => void, signal?: AbortSignal, phases = new Phases("model")): Promise<void> {
  const { spec } = m;
  const all = <T>(task: (api: Parameters<Parameters<WorkerPool["on"]>[1]>[0]) => Promise<T>) => forModel(m.name, Promise.all(Array.from({ length: workers }, (_, w) => pool.on(w, task))));
  emit({ type: "model-start", model: m.name, layers: spec.layers });
  const outer = await phases.time("wait for weights", m.weights([spec.embed, ...(spec.positions ? [spec.positions] : [])]));
  await phases.time("forward (embed, layers, norm)", () => all((api) => api.evalEmbed(id, spec, outer.get(spec.embed)!, spec.positions ? outer.get(spec.positions) : undefined)));
  for (let l = 0; l < spec.layers; l++) {
    signal?.throwIfAborted();
    const names = spec.layerNames[l]!;
    const refs = await phases.time("wait for weights", m.weights(Object.values(names).filter((n): n is string => n !== undefined)));
    const weights: LayerWeights = {};
    for (const [role, name] of Object.entries(names) as [keyof LayerWeights, string | undefined][]) if (name !== undefined) weights[role] = refs.get(name)!;
    await phases.time("forward (embed, layers, norm)", () => all((api) => api.evalLayer(id, spec, l, weights)));
    emit({ type: "layer-done", model: m.name, layer: l, layers: spec.layers });
  }
  const norms = await m.weights([spec.finalNorm, ...(spec.finalNormBias ? [spec.finalNormBias] : [])]);
  await all((api) => api.evalFinalNorm(id, spec, norms.get(spec.finalNorm)!, spec.finalNormBias ? norms.get(spec.finalNormBias) : undefined));
}

/** The per-worker scores back in the order of the sequences. */
export function gather(model: string, againstNames: string[], sequences: readonly Int32Array[], dealt: Int32Array[][], perWorker: SequenceScores[]): ModelScores {
  const predicted = sequences.reduce((n, s) => n + Math.max(0, s.length - 1), 0);
  const nll = new Float64Array(predicted);
  const against = againstNames.map((a) => ({ model: a, kl: new Float64Array(predicted), agree: new Uint8Array(predicted) }));
  const workers = dealt.length;
  const cursor = new Array<number>(workers).fill(0);
  let at = 0;
  sequences.forEach((s, i) => {
    const w = i % workers, n = Math.max(0, s.length - 1), from = cursor[w]!;
    nll.set(perWorker[w]!.nll.subarray(from, from + n), at);
    against.forEach((a, j) => {
      a.kl.set(perWorker[w]!.against[j]!.kl.subarray(from, from + n), at);
      a.agree.set(perWorker[w]!.against[j]!.agree.subarray(from, from + n), at);
    });
    cursor[w] = from + n;
    at += n;
  });
  return { model, nll, against };
}

/**
 * What must hold before any layer runs: ids within every vocabulary, lengths within position limits,
 * and for KL every model of `evaluated` with the vocabulary of every model of `against`.
 */
export function checkInputs(sequences: readonly Int32Array[], models: readonly DecoderSource[], evaluated: readonly DecoderSource[], against: readonly DecoderSource[]): void {
  let maxId = -1, longest = 0;
  for (const s of sequences) {
    longest = Math.max(longest, s.length);
    for (const id of s) if (id > maxId) maxId = id;
  }
  for (const m of models) {
    if (maxId >= m.spec.vocab) {
      throw new DataError("E_DATA", `${m.name}: token id ${maxId} is outside its vocabulary of ${m.spec.vocab}`, { model: m.name });
    }
    const positions = positionLimit(m.spec);
    if (positions && longest > positions.limit) {
      const where = positions.why ? `weightsoup evaluates this model at (${positions.why})` : "the model has";
      throw new DataError("E_DATA", `${m.name}: a sequence of ${longest} tokens is longer than the ${positions.limit} positions ${where}; use a shorter context`, { model: m.name, key: "context" });
    }
  }
  for (const e of evaluated) {
    for (const a of against) {
      if (a.spec.vocab !== e.spec.vocab) {
        throw new RecipeError("E_VOCAB_MISMATCH", `${a.name} has a vocabulary of ${a.spec.vocab} tokens but ${e.name} has ${e.spec.vocab}: KL divergence compares distributions over the same vocabulary`, { model: a.name });
      }
    }
  }
}


