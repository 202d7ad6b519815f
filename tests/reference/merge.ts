// The reference merge: an independent, scalar implementation of tests/reference/SPEC.md sections 1-5.
// Every float32 operation is rounded with Math.fround in the order SPEC.md section 5 gives.
// Whole-tensor reductions (slerp norms/dot, rescale L1 norms) are float64.

import { roundToDtype, type FloatDtype } from "./float16";
import { decodeFloat, isFloatDtype, numelOf } from "./safetensors";
import { dareKeepThreshold, dareStreamKey, dareU } from "./rng";
import { CUT_TO_BASE_METHODS, CUT_TO_COMMON_METHODS, mergeNewMethod, mergeTaskVectorFamily, TERM_SCALES } from "./methods";

const fr = Math.fround;

// ---------------------------------------------------------------------------------------------
// Public types

/** Float tensors carry decoded float32 `values` (or `raw` bytes, decoded on use); integer/bool tensors carry `raw`. */
export interface RefTensor {
  dtype: string;
  shape: number[];
  values?: Float32Array;
  raw?: Uint8Array;
}

export interface RefModel {
  config: Record<string, unknown> | null;
  tensors: Map<string, RefTensor>;
}

export interface RefOutputTensor {
  dtype: string;
  shape: number[];
  /** Float outputs: the final numbers after rounding to the output dtype. */
  values?: Float32Array;
  /** Integer/bool outputs: the bytes copied from the base (or first) input. */
  raw?: Uint8Array;
  /** Per element, the largest term of the linear combination the output is, where that can exceed the inputs (methods.ts TERM_SCALES). */
  termScale?: Float64Array;
}

export interface RefOutput {
  tensors: Map<string, RefOutputTensor>;
  /** Output tensor names in plan order (SPEC section 3). */
  order: string[];
  config: Record<string, unknown> | null;
}

export const REF_METHODS = [
  "linear",
  "task_arithmetic",
  "ties",
  "dare_linear",
  "dare_ties",
  "slerp",
  "passthrough",
  // issue 10 (tests/reference/methods.ts)
  "breadcrumbs",
  "breadcrumbs_ties",
  "della",
  "della_linear",
  "sce",
  "ram",
  "ramplus_tl",
  "nuslerp",
  "multislerp",
  "karcher",
  "model_stock",
  "nearswap",
  "arcee_fusion",
] as const;
export type RefMethod = (typeof REF_METHODS)[number];

const INTEGER_DTYPES = new Set(["I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64", "BOOL"]);

// ---------------------------------------------------------------------------------------------
// Names (SPEC section 2)

export interface LayerName {
  /** The layer index: the first dot-separated component that is all digits. */
  index: number;
  /** Everything before that component (including the trailing dot, if any). */
  prefix: string;
  /** Everything after that component (including the leading dot, if any). */
  suffix: string;
}

/** Parse a tensor name's layer index and layer template, or null when it has no all-digit component. */
export function layerNameOf(name: string): LayerName | null {
  const parts = name.split(".");
  for (let i = 0; i < parts.length; i++) {
    if (/^[0-9]+$/.test(parts[i]!)) {
      const before = parts.slice(0, i).join(".");
      const after = parts.slice(i + 1).join(".");
      return {
        index: Number(parts[i]),
        prefix: i > 0 ? before + "." : "",
        suffix: i < parts.length - 1 ? "." + after : "",
      };
    }
  }
  return null;
}

/**
 * A tensor with no layer index is pre-layer if its name contains embed, wte, wpe or pos_emb, except
 * GPT-NeoX's output head embed_out (mergekit's gpt-neox.json lists it among the post-layer weights).
 */
export function isPreLayerName(name: string): boolean {
  if (layerNameOf(name) !== null || name.split(".").includes("embed_out")) return false;
  return ["embed", "wte", "wpe", "pos_emb"].some((part) => name.includes(part));
}

const EMBED_SUFFIXES = [
  "embed_tokens.weight",
  "lm_head.weight",
  "wte.weight",
  "word_embeddings.weight",
  "embed_out.weight",
  "tok_embeddings.weight",
  "embeddings.weight",
  "output.weight",
];

/** Embedding tensors (for shape rectification): no layer index and one of the known names as its last two parts. */
export function isEmbeddingName(name: string): boolean {
  return layerNameOf(name) === null && EMBED_SUFFIXES.some((s) => name === s || name.endsWith(`.${s}`));
}

/**
 * The largest layer index + 1 (0 if none). A config that states a layer count (num_hidden_layers or
 * n_layer) must state this one.
 */
export function layerCountOf(model: RefModel): number {
  let max = -1;
  for (const name of model.tensors.keys()) {
    const l = layerNameOf(name);
    if (l !== null && l.index > max) max = l.index;
  }
  const c = model.config;
  const declared = c === null || c === undefined ? undefined : hasOwn(c, "num_hidden_layers") ? c.num_hidden_layers : hasOwn(c, "n_layer") ? c.n_layer : undefined;
  if (declared !== undefined && declared !== max + 1) throw new Error(`config says ${String(declared)} layers, the tensors span ${max + 1}`);
  return max + 1;
}

/** mergekit's generalized_task_arithmetic.py methods. */
const TASK_ARITHMETIC_FAMILY = new Set(["task_arithmetic", "ties", "dare_linear", "dare_ties", "breadcrumbs", "breadcrumbs_ties", "della", "della_linear"]);

/** Recipe dtype names: bfloat16, float16, float32, optionally prefixed with `torch.`. */
export function parseDtypeName(name: unknown): FloatDtype {
  if (typeof name !== "string") throw new Error(`dtype must be a string, got ${JSON.stringify(name)}`);
  const n = name.startsWith("torch.") ? name.slice("torch.".length) : name;
  if (n === "bfloat16") return "BF16";
  if (n === "float16") return "F16";
  if (n === "float32") return "F32";
  throw new Error(`unsupported dtype name ${JSON.stringify(name)} (expected bfloat16, float16 or float32)`);
}

const DTYPE_TO_TORCH: Record<FloatDtype, string> = { BF16: "bfloat16", F16: "float16", F32: "float32" };

// ---------------------------------------------------------------------------------------------
// Parameter settings (SPEC section 4)

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function hasOwn(o: Record<string, unknown>, k: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, k);
}

function filterMatches(filter: unknown, tensorName: string): boolean {
  if (filter === undefined || filter === null || filter === "*") return true;
  if (typeof filter !== "string") throw new Error(`parameter filter must be a string, got ${JSON.stringify(filter)}`);
  return tensorName.includes(filter);
}

/**
 * Evaluate a parameter setting for a tensor at relative position t:
 * scalar -> itself; list of numbers (booleans as 0/1) -> piecewise-linear gradient (float64); list of non-numeric
 * scalars -> v[floor(t*(n-1))]; list of {filter?, value} (or one such object) -> first match's value,
 * evaluated recursively, or undefined if none matches. null/undefined -> undefined.
 */
export function evaluateSetting(setting: unknown, tensorName: string, t: number): unknown {
  if (setting === undefined || setting === null) return undefined;
  if (typeof setting === "number" || typeof setting === "string" || typeof setting === "boolean") return setting;
  if (Array.isArray(setting)) {
    const n = setting.length;
    if (n === 0) throw new Error("parameter setting is an empty list");
    if (setting.every((v) => typeof v === "number" || typeof v === "boolean")) {
      // Python's bool is an int: mergekit interpolates booleans as 0 and 1.
      const v = (setting as (number | boolean)[]).map((x) => (x === true ? 1 : x === false ? 0 : x));
      const s = t * (n - 1);
      const i0 = Math.floor(s);
      const i1 = Math.min(n - 1, i0 + 1);
      const f = s - i0;
      return (1 - f) * v[i0]! + f * v[i1]!;
    }
    if (setting.every((v) => typeof v === "string" || typeof v === "boolean" || typeof v === "number")) {
      return setting[Math.floor(t * (n - 1))];
    }
    if (setting.every((v) => isPlainObject(v))) {
      for (const entry of setting as Record<string, unknown>[]) {
        if (!hasOwn(entry, "value")) throw new Error(`conditional parameter entry has no value: ${JSON.stringify(entry)}`);
        if (filterMatches(entry.filter, tensorName)) return evaluateSetting(entry.value, tensorName, t);
      }
      return undefined;
    }
    throw new Error(`parameter list mixes kinds of values: ${JSON.stringify(setting)}`);
  }
  if (isPlainObject(setting)) {
    if (!hasOwn(setting, "value")) throw new Error(`parameter object has no value: ${JSON.stringify(setting)}`);
    return filterMatches(setting.filter, tensorName) ? evaluateSetting(setting.value, tensorName, t) : undefined;
  }
  throw new Error(`unsupported parameter setting ${JSON.stringify(setting)}`);
}

export interface Source {
  model: string;
  range: [number, number];
  parameters: Record<string, unknown> | undefined;
}

export interface Slice {
  sources: Source[];
  base: string | undefined;
  parameters: Record<string, unknown> | undefined;
}

/**
 * value(name, model, tensorName, t) of SPEC section 4. `model` undefined = a global parameter.
 */
export function paramValue(
  name: string,
  model: string | undefined,
  slice: Slice,
  top: readonly (Record<string, unknown> | undefined)[],
  tensorName: string,
  t: number,
): unknown {
  if (model !== undefined) {
    const src = slice.sources.find((s) => s.model === model && s.parameters !== undefined && hasOwn(s.parameters, name));
    if (src !== undefined) {
      const v = evaluateSetting(src.parameters![name], tensorName, t);
      if (v !== undefined) return v;
    }
  }
  if (slice.parameters !== undefined && hasOwn(slice.parameters, name)) {
    const v = evaluateSetting(slice.parameters[name], tensorName, t);
    if (v !== undefined) return v;
  }
  for (const block of top) {
    if (block === undefined || !hasOwn(block, name)) continue;
    const v = evaluateSetting(block[name], tensorName, t);
    if (v !== undefined) return v;
  }
  return undefined;
}

export function asNumber(v: unknown, what: string): number {
  if (typeof v !== "number") throw new Error(`${what} must be a number, got ${JSON.stringify(v)}`);
  return v;
}

export function asBool(v: unknown, dflt: boolean, what: string): boolean {
  if (v === undefined) return dflt;
  if (typeof v === "boolean") return v;
  if (typeof v === "number") return v !== 0;
  throw new Error(`${what} must be a boolean, got ${JSON.stringify(v)}`);
}

// ---------------------------------------------------------------------------------------------
// Recipe parsing and planning (SPEC section 3)

function modelRef(v: unknown, where: string): string {
  if (typeof v !== "string" || v.length === 0) throw new Error(`${where}: model must be a non-empty string`);
  return v;
}

function paramsBlock(v: unknown, where: string): Record<string, unknown> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isPlainObject(v)) throw new Error(`${where}: parameters must be a mapping`);
  return v;
}

function getModel(models: Map<string, RefModel>, name: string): RefModel {
  const m = models.get(name);
  if (m === undefined) throw new Error(`model ${JSON.stringify(name)} is referenced by the recipe but was not provided`);
  return m;
}

function buildSlices(recipe: Record<string, unknown>, models: Map<string, RefModel>): Slice[] {
  const topBase = recipe.base_model === undefined || recipe.base_model === null ? undefined : modelRef(recipe.base_model, "base_model");
  const hasModels = recipe.models !== undefined && recipe.models !== null;
  const hasSlices = recipe.slices !== undefined && recipe.slices !== null;
  if (recipe.modules !== undefined && recipe.modules !== null) throw new Error("modules: is not supported by the reference");
  if (hasModels === hasSlices) throw new Error("exactly one of models: and slices: must be given");

  if (hasModels) {
    if (!Array.isArray(recipe.models) || recipe.models.length === 0) throw new Error("models: must be a non-empty list");
    const sources: Source[] = recipe.models.map((m: unknown, i: number) => {
      if (!isPlainObject(m)) throw new Error(`models[${i}] must be a mapping with a model key`);
      const name = modelRef(m.model, `models[${i}]`);
      return { model: name, range: [0, layerCountOf(getModel(models, name))], parameters: paramsBlock(m.parameters, `models[${i}]`) };
    });
    if (topBase !== undefined && !sources.some((s) => s.model === topBase)) {
      sources.push({ model: topBase, range: [0, layerCountOf(getModel(models, topBase))], parameters: undefined });
    }
    if (sources.some((s) => s.range[1] !== sources[0]!.range[1])) throw new Error("models: with different layer counts (needs slices:)");
    return [{ sources, base: topBase, parameters: undefined }];
  }

  if (!Array.isArray(recipe.slices) || recipe.slices.length === 0) throw new Error("slices: must be a non-empty list");
  return recipe.slices.map((s: unknown, si: number): Slice => {
    if (!isPlainObject(s)) throw new Error(`slices[${si}] must be a mapping`);
    if (!Array.isArray(s.sources) || s.sources.length === 0) throw new Error(`slices[${si}].sources must be a non-empty list`);
    const sources = s.sources.map((src: unknown, j: number): Source => {
      const where = `slices[${si}].sources[${j}]`;
      if (!isPlainObject(src)) throw new Error(`${where} must be a mapping`);
      const name = modelRef(src.model, where);
      getModel(models, name);
      const lr = src.layer_range;
      if (
        !Array.isArray(lr) ||
        lr.length !== 2 ||
        !Number.isInteger(lr[0]) ||
        !Number.isInteger(lr[1]) ||
        (lr[0] as number) < 0 ||
        (lr[1] as number) < (lr[0] as number)
      ) {
        throw new Error(`${where}.layer_range must be [start, end] with 0 <= start <= end`);
      }
      return { model: name, range: [lr[0] as number, lr[1] as number], parameters: paramsBlock(src.parameters, where) };
    });
    const base = s.base_model === undefined || s.base_model === null ? topBase : modelRef(s.base_model, `slices[${si}].base_model`);
    return { sources, base, parameters: paramsBlock(s.parameters, `slices[${si}]`) };
  });
}

export interface PlannedTensor {
  outName: string;
  t: number;
  slice: Slice;
  /** One entry per source of the slice, in source order. */
  inputs: Array<{ model: string; name: string }>;
}

function plan(slices: Slice[], models: Map<string, RefModel>): { planned: PlannedTensor[]; layers: number } {
  for (const [si, s] of slices.entries()) {
    const seen = new Set<string>();
    for (const src of s.sources) {
      if (seen.has(src.model)) {
        throw new Error(`slice ${si} lists model ${src.model} more than once (not supported by the reference)`);
      }
      seen.add(src.model);
    }
    const len0 = s.sources[0]!.range[1] - s.sources[0]!.range[0];
    for (const src of s.sources) {
      if (src.range[1] - src.range[0] !== len0) {
        throw new Error(`slice ${si}: sources have different layer counts (${len0} vs ${src.range[1] - src.range[0]} for ${src.model})`);
      }
    }
  }

  const planned: PlannedTensor[] = [];
  const first = slices[0]!;
  const last = slices[slices.length - 1]!;

  // 1. pre-layer tensors of the first source of the first slice, t = 0.
  for (const name of getModel(models, first.sources[0]!.model).tensors.keys()) {
    if (isPreLayerName(name)) {
      planned.push({ outName: name, t: 0, slice: first, inputs: first.sources.map((s) => ({ model: s.model, name })) });
    }
  }

  // 2. layers, slice by slice.
  let outLayer = 0;
  for (const s of slices) {
    const src0 = s.sources[0]!;
    const len = src0.range[1] - src0.range[0];
    // Templates of each layer of the first source, in its tensor order.
    const byLayer = new Map<number, LayerName[]>();
    for (const name of getModel(models, src0.model).tensors.keys()) {
      const l = layerNameOf(name);
      if (l === null) continue;
      let list = byLayer.get(l.index);
      if (list === undefined) byLayer.set(l.index, (list = []));
      list.push(l);
    }
    for (let idx = 0; idx < len; idx++) {
      const t = len === 1 ? 1 : idx / (len - 1);
      const templates = byLayer.get(src0.range[0] + idx);
      if (templates === undefined || templates.length === 0) {
        throw new Error(`model ${src0.model} has no tensors for layer ${src0.range[0] + idx}`);
      }
      for (const tpl of templates) {
        planned.push({
          outName: tpl.prefix + String(outLayer) + tpl.suffix,
          t,
          slice: s,
          inputs: s.sources.map((src) => ({ model: src.model, name: tpl.prefix + String(src.range[0] + idx) + tpl.suffix })),
        });
      }
      outLayer++;
    }
  }

  // 3. post-layer tensors of the first source of the last slice, t = 0.
  for (const name of getModel(models, last.sources[0]!.model).tensors.keys()) {
    if (layerNameOf(name) === null && !isPreLayerName(name)) {
      planned.push({ outName: name, t: 0, slice: last, inputs: last.sources.map((s) => ({ model: s.model, name })) });
    }
  }

  const names = new Set<string>();
  for (const p of planned) {
    if (names.has(p.outName)) throw new Error(`two output tensors are both named ${p.outName}`);
    names.add(p.outName);
  }
  return { planned, layers: outLayer };
}

// ---------------------------------------------------------------------------------------------
// Tensor arithmetic (SPEC section 5)

export interface FloatInput {
  model: string;
  name: string;
  dtype: string;
  shape: number[];
  values: Float32Array;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Top-left [rows, cols] submatrix of a row-major 2-D tensor with `srcCols` columns. */
function cut2d(values: Float32Array, srcCols: number, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[r * cols + c] = values[r * srcCols + c]!;
  }
  return out;
}

const GTA_METHODS = new Set(["task_arithmetic", "ties", "dare_linear", "dare_ties"]);

/** Embedding rectification; returns the common shape and the (possibly cut) input values. */
function rectify(method: string, outName: string, inputs: FloatInput[], baseIdx: number): { shape: number[]; vals: Float32Array[] } {
  const shape0 = inputs[0]!.shape;
  if (inputs.every((x) => sameShape(x.shape, shape0))) return { shape: shape0.slice(), vals: inputs.map((x) => x.values) };
  const desc = inputs.map((x) => `${x.model}:[${x.shape.join(",")}]`).join(" ");
  if (!isEmbeddingName(outName) || !inputs.every((x) => x.shape.length === 2)) {
    throw new Error(`tensor ${outName}: input shapes differ (${desc})`);
  }
  if (method === "linear" || method === "slerp" || CUT_TO_COMMON_METHODS.has(method)) {
    const rows = Math.min(...inputs.map((x) => x.shape[0]!));
    const cols = Math.min(...inputs.map((x) => x.shape[1]!));
    return { shape: [rows, cols], vals: inputs.map((x) => cut2d(x.values, x.shape[1]!, rows, cols)) };
  }
  if (GTA_METHODS.has(method) || CUT_TO_BASE_METHODS.has(method)) {
    if (baseIdx < 0) throw new Error(`${method}: base_model is required and must be an input of ${outName}`);
    const [rows, cols] = inputs[baseIdx]!.shape as [number, number];
    const vals = inputs.map((x, i) => {
      if (i === baseIdx) return x.values;
      if (x.shape[0]! < rows || x.shape[1]! < cols) {
        throw new Error(`tensor ${outName}: ${x.model}'s embedding [${x.shape.join(",")}] is smaller than the base's [${rows},${cols}]`);
      }
      return cut2d(x.values, x.shape[1]!, rows, cols);
    });
    return { shape: [rows, cols], vals };
  }
  throw new Error(`tensor ${outName}: input shapes differ (${desc})`);
}

export interface Ctx {
  method: RefMethod;
  /** The recipe's `parameters`, then (for a module of a `modules:` recipe) the top level's. */
  top: readonly (Record<string, unknown> | undefined)[];
  seed: number;
}

function mergeLinear(ctx: Ctx, p: PlannedTensor, inputs: FloatInput[], vals: Float32Array[]): Float32Array {
  const w = inputs.map((x) => {
    const v = paramValue("weight", x.model, p.slice, ctx.top, x.name, p.t);
    if (v === undefined) throw new Error(`linear: weight is required for model ${x.model} (tensor ${x.name})`);
    return fr(asNumber(v, `weight of ${x.model} for ${x.name}`));
  });
  const normalize = asBool(paramValue("normalize", undefined, p.slice, ctx.top, p.outName, p.t), true, "normalize");
  let W = w[0]!;
  for (let i = 1; i < w.length; i++) W = fr(W + w[i]!);
  const n = vals[0]!.length;
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    let acc = fr(w[0]! * vals[0]![j]!);
    for (let i = 1; i < vals.length; i++) acc = fr(acc + fr(w[i]! * vals[i]![j]!));
    out[j] = normalize ? fr(acc / W) : acc;
  }
  return out;
}

/**
 * TIES magnitude selection: keep the k elements of largest |tau| (float32 magnitudes), ties broken by
 * lower flat index. NaN magnitudes count as larger than everything (torch's descending sort order).
 *
 * Equivalent to "sort indices by (|tau| descending, index ascending) and keep the first k"
 * (magnitudeKeepMaskBySort below does exactly that and the self-check compares the two), but uses a
 * native numeric sort of the magnitudes to find the k-th largest one, which is much faster:
 * every element strictly above it is kept, then elements equal to it in index order until k are kept.
 */
export function magnitudeKeepMask(tau: Float32Array, k: number): Uint8Array {
  const n = tau.length;
  const keep = new Uint8Array(n);
  if (k <= 0) return keep;
  if (k >= n) return keep.fill(1);
  const mag = new Float32Array(n);
  for (let j = 0; j < n; j++) mag[j] = Math.abs(tau[j]!);
  const sorted = mag.slice().sort(); // ascending numeric, NaN last
  const thr = sorted[n - k]!; // the k-th largest magnitude
  const thrNaN = thr !== thr;
  let kept = 0;
  for (let j = 0; j < n; j++) {
    const m = mag[j]!;
    const above = thrNaN ? false : m !== m || m > thr;
    if (above) {
      keep[j] = 1;
      kept++;
    }
  }
  for (let j = 0; j < n && kept < k; j++) {
    const m = mag[j]!;
    const equal = thrNaN ? m !== m : m === thr;
    if (equal) {
      keep[j] = 1;
      kept++;
    }
  }
  return keep;
}

/** The literal definition: sort indices by (|tau| desc, NaN first; index asc) and keep the first k. Slow. */
export function magnitudeKeepMaskBySort(tau: Float32Array, k: number): Uint8Array {
  const n = tau.length;
  const keep = new Uint8Array(n);
  const idx = new Array<number>(n);
  for (let j = 0; j < n; j++) idx[j] = j;
  idx.sort((a, b) => {
    const ma = Math.abs(tau[a]!);
    const mb = Math.abs(tau[b]!);
    const an = ma !== ma;
    const bn = mb !== mb;
    if (an || bn) {
      if (an && bn) return a - b;
      return an ? -1 : 1;
    }
    if (ma > mb) return -1;
    if (ma < mb) return 1;
    return a - b;
  });
  for (let r = 0; r < Math.min(k, n); r++) keep[idx[r]!] = 1;
  return keep;
}

/** DARE random selection of SPEC section 6: keep j iff u(j) < T. */
export function dareKeepMask(n: number, density: number, seed: number, outName: string, nonBaseIndex: number): Uint8Array {
  const keep = new Uint8Array(n);
  const T = dareKeepThreshold(density);
  const key = dareStreamKey(seed, outName, nonBaseIndex);
  for (let j = 0; j < n; j++) keep[j] = dareU(key, j) < T ? 1 : 0;
  return keep;
}

function mergeSlerp(ctx: Ctx, p: PlannedTensor, inputs: FloatInput[], vals: Float32Array[], baseIdx: number): Float32Array {
  if (inputs.length === 1) return vals[0]!.slice();
  if (inputs.length !== 2) throw new Error(`slerp: needs exactly 2 inputs, ${p.outName} has ${inputs.length}`);
  if (baseIdx < 0) throw new Error(`slerp: base_model is required and must be an input of ${p.outName}`);
  const tRaw = paramValue("t", undefined, p.slice, ctx.top, p.outName, p.t);
  if (tRaw === undefined) throw new Error(`slerp: parameter t is required (tensor ${p.outName})`);
  const t = asNumber(tRaw, "t");
  const v0 = vals[baseIdx]!;
  const v1 = vals[1 - baseIdx]!;
  const n = v0.length;
  let s00 = 0;
  let s11 = 0;
  let dot = 0;
  for (let j = 0; j < n; j++) {
    s00 += v0[j]! * v0[j]!;
    s11 += v1[j]! * v1[j]!;
    dot += v0[j]! * v1[j]!;
  }
  const n0 = Math.sqrt(s00);
  const n1 = Math.sqrt(s11);
  const d = dot / ((n0 > 1e-8 ? n0 : 1) * (n1 > 1e-8 ? n1 : 1));
  let c0: number;
  let c1: number;
  if (Math.abs(d) > 0.9995) {
    c0 = fr(1 - t);
    c1 = fr(t);
  } else {
    const theta = Math.acos(d);
    const thetaT = theta * t;
    const s0 = Math.sin(theta - thetaT) / Math.sin(theta);
    const s1 = Math.sin(thetaT) / Math.sin(theta);
    c0 = fr(s0);
    c1 = fr(s1);
  }
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) out[j] = fr(fr(c0 * v0[j]!) + fr(c1 * v1[j]!));
  return out;
}

function mergePassthrough(ctx: Ctx, p: PlannedTensor, inputs: FloatInput[], vals: Float32Array[]): Float32Array {
  if (inputs.length !== 1) throw new Error(`passthrough: needs exactly 1 input per tensor, ${p.outName} has ${inputs.length}`);
  const x = inputs[0]!;
  const scale = paramValue("scale", x.model, p.slice, ctx.top, x.name, p.t);
  const v = vals[0]!;
  if (typeof scale !== "number") return v.slice();
  const s = fr(scale);
  const out = new Float32Array(v.length);
  for (let j = 0; j < v.length; j++) out[j] = fr(v[j]! * s);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Entry point

function floatValuesOf(t: RefTensor, where: string): Float32Array {
  let v = t.values;
  if (v === undefined) {
    if (t.raw === undefined) throw new Error(`${where}: float tensor has neither values nor raw bytes`);
    v = decodeFloat(t.dtype, t.raw);
  }
  if (v.length !== numelOf(t.shape)) {
    throw new Error(`${where}: ${v.length} values for shape [${t.shape.join(",")}]`);
  }
  return v;
}

/**
 * Merge `models` (keyed by the model strings exactly as the recipe writes them) following `recipe`
 * (an already-parsed YAML object). `opts.seed` seeds DARE (default 0).
 */
/**
 * `opts.outerParameters`: a parameter block looked up after the recipe's own, for one module of a
 * `modules:` recipe run as its own recipe (its `parameters` the module's block; SPEC section 4).
 */
export function referenceMerge(recipe: any, models: Map<string, RefModel>, opts?: { seed?: number; outerParameters?: Record<string, unknown> }): RefOutput {
  if (!isPlainObject(recipe)) throw new Error("recipe must be a mapping");
  const methodName = recipe.merge_method;
  if (typeof methodName !== "string") throw new Error("merge_method is required");
  if (!(REF_METHODS as readonly string[]).includes(methodName)) throw new Error(`unknown or unsupported merge_method ${JSON.stringify(methodName)}`);
  const method = methodName as RefMethod;
  for (const k of ["tokenizer", "tokenizer_source"]) {
    if (recipe[k] !== undefined && recipe[k] !== null) throw new Error(`${k} is not supported by the reference`);
  }
  const seed = opts?.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) throw new Error(`seed must be an integer in [0, 2^32), got ${seed}`);
  const loadDtype = recipe.dtype === undefined || recipe.dtype === null ? undefined : parseDtypeName(recipe.dtype);
  const outDtype = recipe.out_dtype === undefined || recipe.out_dtype === null ? undefined : parseDtypeName(recipe.out_dtype);
  const top = paramsBlock(recipe.parameters, "parameters");

  const slices = buildSlices(recipe, models);
  const topBase = recipe.base_model === undefined || recipe.base_model === null ? undefined : modelRef(recipe.base_model, "base_model");
  if (topBase !== undefined) getModel(models, topBase);
  for (const s of slices) if (s.base !== undefined) getModel(models, s.base);

  const { planned, layers } = plan(slices, models);
  const ctx: Ctx = { method, top: [top, paramsBlock(opts?.outerParameters, "outer parameters")], seed };
  const outTensors = new Map<string, RefOutputTensor>();
  const order: string[] = [];

  for (const p of planned) {
    const refs = p.inputs.map((inp) => {
      const t = getModel(models, inp.model).tensors.get(inp.name);
      if (t === undefined) throw new Error(`model ${inp.model} has no tensor ${inp.name} (needed for ${p.outName})`);
      return { ...inp, t };
    });
    const baseIdx = p.slice.base === undefined ? -1 : refs.findIndex((r) => r.model === p.slice.base);
    const primary = refs[baseIdx >= 0 ? baseIdx : 0]!;

    const isInt = refs.map((r) => INTEGER_DTYPES.has(r.t.dtype));
    if (isInt.some((b) => b)) {
      if (!isInt.every((b) => b)) throw new Error(`tensor ${p.outName}: inputs mix integer and float dtypes`);
      if (primary.t.raw === undefined) throw new Error(`tensor ${primary.name} of ${primary.model}: integer tensor has no raw bytes`);
      outTensors.set(p.outName, { dtype: primary.t.dtype, shape: primary.t.shape.slice(), raw: primary.t.raw.slice() });
      order.push(p.outName);
      continue;
    }
    for (const r of refs) {
      if (!isFloatDtype(r.t.dtype)) throw new Error(`tensor ${r.name} of ${r.model}: unsupported dtype ${r.t.dtype}`);
    }

    const inputs: FloatInput[] = refs.map((r) => {
      let values = floatValuesOf(r.t, `tensor ${r.name} of ${r.model}`);
      if (loadDtype !== undefined) {
        const rounded = new Float32Array(values.length);
        for (let j = 0; j < values.length; j++) rounded[j] = roundToDtype(values[j]!, loadDtype);
        values = rounded;
      }
      return { model: r.model, name: r.name, dtype: r.t.dtype, shape: r.t.shape, values };
    });
    // mergekit's task-arithmetic family (GTATask) casts every other model to the base's dtype before
    // taking x - b: after the recipe's dtype (which the base has then too), so only without it.
    const baseDtype = baseIdx >= 0 ? inputs[baseIdx]!.dtype : undefined;
    if (loadDtype === undefined && TASK_ARITHMETIC_FAMILY.has(method) && (baseDtype === "F16" || baseDtype === "BF16")) {
      for (const [i, x] of inputs.entries()) if (i !== baseIdx) x.values = x.values.map((v) => roundToDtype(v, baseDtype));
    }

    const { shape, vals } = rectify(method, p.outName, inputs, baseIdx);
    let out: Float32Array;
    switch (method) {
      case "linear":
        out = mergeLinear(ctx, p, inputs, vals);
        break;
      case "task_arithmetic":
      case "ties":
      case "dare_linear":
      case "dare_ties":
        out = mergeTaskVectorFamily(ctx, p, inputs, vals, baseIdx, shape);
        break;
      case "slerp":
        out = mergeSlerp(ctx, p, inputs, vals, baseIdx);
        break;
      case "passthrough":
        out = mergePassthrough(ctx, p, inputs, vals);
        break;
      default:
        out = mergeNewMethod(ctx, p, inputs, vals, baseIdx, shape);
        break;
    }

    const dtype: string = outDtype ?? loadDtype ?? primary.t.dtype;
    if (dtype === "F16" || dtype === "BF16") {
      for (let j = 0; j < out.length; j++) out[j] = roundToDtype(out[j]!, dtype);
    }
    outTensors.set(p.outName, { dtype, shape, values: out, termScale: TERM_SCALES.get(out) });
    order.push(p.outName);
  }

  // config.json of the output.
  const cfgModel = topBase ?? slices[0]!.sources[0]!.model;
  const srcCfg = getModel(models, cfgModel).config;
  let config: Record<string, unknown> | null = null;
  if (srcCfg !== null && srcCfg !== undefined) {
    config = JSON.parse(JSON.stringify(srcCfg)) as Record<string, unknown>;
    const hasN = hasOwn(config, "num_hidden_layers");
    const hasNL = hasOwn(config, "n_layer");
    if (hasN || !hasNL) config.num_hidden_layers = layers;
    if (hasNL) config.n_layer = layers;
    const named = outDtype ?? loadDtype;
    if (named !== undefined) config.torch_dtype = DTYPE_TO_TORCH[named];
  }
  return { tensors: outTensors, order, config };
}

/** Build a RefModel from raw tensors (e.g. readSafetensors/readModelDir output): floats decoded, integers kept raw. */
export function refModelFromRaw(
  config: Record<string, unknown> | null,
  tensors: Map<string, { dtype: string; shape: number[]; data: Uint8Array }>,
): RefModel {
  const out = new Map<string, RefTensor>();
  for (const [name, t] of tensors) {
    if (isFloatDtype(t.dtype)) out.set(name, { dtype: t.dtype, shape: t.shape.slice(), values: decodeFloat(t.dtype, t.data) });
    else out.set(name, { dtype: t.dtype, shape: t.shape.slice(), raw: t.data });
  }
  return { config, tensors: out };
}
