/**
 * @file Measuring linear mode connectivity: the loss and accuracy of an MLP classifier along the
 * straight line (1 - λ)·A + λ·B, and the barrier as Git Re-Basin defines it (Def. 2.2: the largest loss
 * on the path minus the mean of the two endpoint losses). The forward pass runs in wasm: gemm.ts for
 * X · Wᵀ, evaluate.ts for bias + ReLU and the softmax cross-entropy.
 *
 * A dataset is a safetensors file with `inputs` (float, [N, features]) and `labels` (integer class
 * indices, [N]).
 */
import { AlignmentError } from "../errors";
import type { LoadedModel } from "../model/model";
import { mlpSpec } from "./architectures";
import { readFloatTensors, readTensorBytes } from "./checkpoint";
import { alignmentKernels } from "./kernels";
import { applyPermutations, weightMatching, type Tensor } from "./weight-matching";

export interface Dataset {
  inputs: Float32Array;
  labels: Int32Array;
  count: number;
  features: number;
  /** For messages. */
  name: string;
}

export interface Evaluation {
  /** Mean cross-entropy (nats). */
  loss: number;
  accuracy: number;
}

export interface PathPoint extends Evaluation {
  lambda: number;
}

export interface BarrierReport {
  points: PathPoint[];
  /** max_λ L(λ) − (L(0) + L(1)) / 2. */
  barrier: number;
  /** max_λ L(λ) − ((1 − λ)·L(0) + λ·L(1)): the gap to the line between the endpoint losses. */
  gap: number;
  /** (acc(0) + acc(1)) / 2 − min_λ acc(λ). */
  accuracyDrop: number;
  /** Where the loss is largest. */
  worstLambda: number;
  /** The point nearest λ = 0.5. */
  midpoint: PathPoint;
}

const ROWS_PER_BATCH = 256;

/** Reads a dataset file (already opened as a one-file model). */
export async function loadDataset(file: LoadedModel): Promise<Dataset> {
  const inputsInfo = file.tensors.get("inputs"), labelsInfo = file.tensors.get("labels");
  const fail = (tensor: string, what: string) => new AlignmentError("E_DATA", `${file.location}: ${what}`, { file: file.location, tensor });
  if (!inputsInfo) throw fail("inputs", `no tensor "inputs" (a dataset holds "inputs" [N, features] and "labels" [N])`);
  if (!labelsInfo) throw fail("labels", `no tensor "labels" (a dataset holds "inputs" [N, features] and "labels" [N])`);
  if (inputsInfo.shape.length !== 2) throw fail("inputs", `"inputs" has shape [${inputsInfo.shape.join(", ")}]; expected [N, features]`);
  const [count, features] = inputsInfo.shape as [number, number];
  if (labelsInfo.shape.length !== 1 || labelsInfo.shape[0] !== count) throw fail("labels", `"labels" has shape [${labelsInfo.shape.join(", ")}]; expected [${count}]`);
  const inputs = (await readFloatTensors(file, ["inputs"])).get("inputs")!.data;
  const raw = await readTensorBytes(labelsInfo);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const read: Record<string, (i: number) => number> = {
    I64: (i) => Number(view.getBigInt64(i * 8, true)), I32: (i) => view.getInt32(i * 4, true),
    I16: (i) => view.getInt16(i * 2, true), I8: (i) => view.getInt8(i), U8: (i) => view.getUint8(i),
  };
  const get = read[labelsInfo.dtype];
  if (!get) throw fail("labels", `"labels" is ${labelsInfo.dtype}; expected an integer dtype (I64, I32, I16, I8, U8)`);
  if (count === 0) throw fail("inputs", "holds no examples (\"inputs\" has 0 rows), so there is no loss to measure");
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const label = get(i);
    // Held as int32 from here on: a larger label would wrap round to another class.
    if (label < 0 || label > 0x7fffffff) throw fail("labels", `label ${label} (example ${i}) is not a class index`);
    labels[i] = label;
  }
  return { inputs, labels, count, features, name: file.location };
}

/** The chain of layers of an MLP checkpoint, in order, checked against the dataset. */
function layersOf(model: ReadonlyMap<string, Tensor>, data: Dataset, name: string): { weight: string; bias?: string }[] {
  const spec = mlpSpec(new Map([...model].map(([k, t]) => [k, t.shape])));
  const layers = Object.keys(spec).filter((k) => k.endsWith(".weight")).map((weight) => {
    const bias = weight.slice(0, -".weight".length) + ".bias";
    return model.has(bias) ? { weight, bias } : { weight };
  });
  const first = model.get(layers[0]!.weight)!.shape[1]!, classes = model.get(layers.at(-1)!.weight)!.shape[0]!;
  if (first !== data.features) {
    throw new AlignmentError("E_DATA", `${data.name}: inputs have ${data.features} features but ${name}'s first layer (${layers[0]!.weight}) takes ${first}`, { file: data.name, tensor: layers[0]!.weight });
  }
  const bad = data.labels.findIndex((l) => l < 0 || l >= classes);
  if (bad >= 0) throw new AlignmentError("E_DATA", `${data.name}: label ${data.labels[bad]} (example ${bad}) is not a class of ${name}, which has ${classes} outputs`, { file: data.name, tensor: "labels" });
  return layers;
}

/** Mean loss and accuracy of an MLP (ReLU between layers, logits out) on a dataset. */
export async function evaluateMlp(model: ReadonlyMap<string, Tensor>, data: Dataset, name = "the model"): Promise<Evaluation> {
  const layers = layersOf(model, data, name);
  const { exports, arena } = await alignmentKernels();
  arena.reset();
  const placed = layers.map(({ weight, bias }) => {
    const w = model.get(weight)!, [out, inp] = w.shape as [number, number];
    const wPtr = arena.alloc(w.data.length * 4);
    arena.f32(wPtr, w.data.length).set(w.data);
    // A layer without a bias gets zeros, so one kernel adds the bias and applies ReLU everywhere.
    const bPtr = arena.alloc(out * 4);
    if (bias) arena.f32(bPtr, out).set(model.get(bias)!.data);
    else arena.f32(bPtr, out).fill(0);
    return { wPtr, bPtr, out, inp };
  });
  const widest = Math.max(data.features, ...placed.map((l) => l.out));
  const ping = arena.alloc(ROWS_PER_BATCH * widest * 4), pong = arena.alloc(ROWS_PER_BATCH * widest * 4);
  const labels = arena.alloc(ROWS_PER_BATCH * 4), totals = arena.alloc(16);
  arena.f64(totals, 2).fill(0);
  for (let row0 = 0; row0 < data.count; row0 += ROWS_PER_BATCH) {
    const rows = Math.min(ROWS_PER_BATCH, data.count - row0);
    arena.f32(ping, rows * data.features).set(data.inputs.subarray(row0 * data.features, (row0 + rows) * data.features));
    new Int32Array(arena.memory.buffer, labels, rows).set(data.labels.subarray(row0, row0 + rows));
    let x = ping, y = pong;
    placed.forEach((l, i) => {
      arena.f32(y, rows * l.out).fill(0);
      exports.accumulateProduct(x, l.wPtr, rows, l.out, l.inp, y);
      exports.addBias(y, l.bPtr, rows, l.out, i === placed.length - 1 ? 0 : 1);
      [x, y] = [y, x];
    });
    exports.crossEntropy(x, labels, rows, placed.at(-1)!.out, totals);
  }
  const [loss, correct] = arena.f64(totals, 2) as unknown as [number, number];
  return { loss: loss / data.count, accuracy: correct / data.count };
}

/** (1 − λ)·A + λ·B for every tensor. */
export function interpolate(a: ReadonlyMap<string, Tensor>, b: ReadonlyMap<string, Tensor>, lambda: number): Map<string, Tensor> {
  return new Map([...a].map(([name, t]) => {
    const u = b.get(name)!.data, out = new Float32Array(t.data.length);
    for (let i = 0; i < out.length; i++) out[i] = (1 - lambda) * t.data[i]! + lambda * u[i]!;
    return [name, { shape: t.shape, data: out }];
  }));
}

/**
 * Loss and accuracy at `points` evenly spaced λ from 0 to 1 (both included), and the barrier. A and B
 * must hold the same tensors with the same shapes (`names` say which models they are, for messages): a
 * tensor only one of them has would be dropped from every point between the ends.
 */
export async function barrierPath(a: ReadonlyMap<string, Tensor>, b: ReadonlyMap<string, Tensor>, data: Dataset, points = 25, names: [string, string] = ["the first model", "the second model"]): Promise<BarrierReport> {
  if (!Number.isInteger(points) || points < 2) throw new RangeError(`points must be an integer of at least 2, got ${points}`);
  for (const [name, t] of a) {
    const u = b.get(name);
    if (!u || u.shape.join() !== t.shape.join()) {
      throw new AlignmentError("E_SHAPE_MISMATCH", `"${name}" is [${t.shape.join(", ")}] in ${names[0]} and ${u ? `[${u.shape.join(", ")}]` : "missing"} in ${names[1]}; the path interpolates every tensor of both`, { tensor: name });
    }
  }
  for (const [name, u] of b) {
    if (!a.has(name)) {
      throw new AlignmentError("E_SHAPE_MISMATCH", `"${name}" is [${u.shape.join(", ")}] in ${names[1]} and missing in ${names[0]}; the path interpolates every tensor of both`, { tensor: name });
    }
  }
  const path: PathPoint[] = [];
  for (let p = 0; p < points; p++) {
    const lambda = p / (points - 1);
    path.push({ lambda, ...(await evaluateMlp(lambda === 0 ? a : lambda === 1 ? b : interpolate(a, b, lambda), data)) });
  }
  const first = path[0]!, last = path.at(-1)!;
  const worst = path.reduce((w, p) => (p.loss > w.loss ? p : w));
  const gap = Math.max(...path.map((p) => p.loss - ((1 - p.lambda) * first.loss + p.lambda * last.loss)));
  const midpoint = path.reduce((m, p) => (Math.abs(p.lambda - 0.5) < Math.abs(m.lambda - 0.5) ? p : m));
  return {
    points: path, barrier: worst.loss - (first.loss + last.loss) / 2, gap,
    accuracyDrop: (first.accuracy + last.accuracy) / 2 - Math.min(...path.map((p) => p.accuracy)),
    worstLambda: worst.lambda, midpoint,
  };
}

export interface BarrierOptions {
  points?: number;
  /** Also measure the path after aligning B to A (weight matching, MLP spec). */
  align?: boolean;
  seed?: number;
}

/** The barrier between two MLP checkpoints on a dataset; with `align`, also after weight matching. */
export async function measureBarrier(a: LoadedModel, b: LoadedModel, data: Dataset, options: BarrierOptions = {}): Promise<{ naive: BarrierReport; aligned?: BarrierReport; sweeps?: number }> {
  const ta = await readFloatTensors(a, a.tensors.keys()), tb = await readFloatTensors(b, b.tensors.keys());
  layersOf(ta, data, a.location);
  layersOf(tb, data, b.location);
  const names: [string, string] = [a.location, b.location];
  const naive = await barrierPath(ta, tb, data, options.points, names);
  if (!options.align) return { naive };
  const spec = mlpSpec(new Map([...ta].map(([k, t]) => [k, t.shape])));
  const matched = await weightMatching(spec, ta, tb, { seed: options.seed ?? 0 });
  const aligned = await barrierPath(ta, applyPermutations(spec, tb, matched.permutations), data, options.points, names);
  return { naive, aligned, sweeps: matched.sweeps };
}
