/**
 * @file What the randomized parity suite (parity-fuzz.test.ts) draws: a merge method with its
 * parameters (scalars, gradients, filter lists; global, per slice, per model), how the recipe lists its
 * models, input and load dtypes, value magnitudes, how each fine-tune moves from the base, and the run's
 * workers and chunking; and `caseOf`, the models and recipe of one draw.
 */
import fc from "fast-check";
import type { RefModel } from "../reference/merge";
import { roundToDtype } from "../reference/float16";
import { baseModel, fineTune, type Shape } from "./fixtures";
import type { Case } from "./parity-check";

// Embeddings and lm_head of 300 x 32 = 9600 elements (three 4096-element chunks, the last partial) or
// of 700 x 32 (six: more than two workers hold at once, so multi-pass tensors are read again), MLP
// weights of 5120 (two), attention weights and norms in one; three layers, for gradients and splits.
export const SHAPE: Shape = { vocab: 300, hidden: 32, intermediate: 160, layers: 3, heads: 4, kvHeads: 2 };
/** Rows the last fine-tune's embeddings have beyond the base's when it has a larger vocabulary. */
export const EXTRA_ROWS = 8;
export type Dtype = "F32" | "BF16" | "F16";
export const DTYPES: Dtype[] = ["F32", "BF16", "F16"];
export const TORCH = { F32: "float32", BF16: "bfloat16", F16: "float16" } as const;

/** How a fine-tune moves away from the base. */
export interface Move { seed: number; scale: number; dtype: Dtype; quantum: boolean; only?: "mlp" | "self_attn" }
export const moveArb: fc.Arbitrary<Move> = fc.record({
  seed: fc.integer({ min: 1, max: 10_000 }),
  // 30: a model far from the base (values 15x the base's), whose rows' softmax maxima lie far from the base's.
  scale: fc.constantFrom(0, 0.01, 0.1, 0.3, 0.3, 30),
  dtype: fc.constantFrom(...DTYPES),
  quantum: fc.boolean(),
  only: fc.option(fc.constantFrom("mlp" as const, "self_attn" as const), { nil: undefined }),
});

/** A parameter's setting: a scalar, a gradient over the layers, or a filter list with a fallback. */
export function settingArb<T>(value: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 6, arbitrary: value },
    { weight: 2, arbitrary: fc.array(value, { minLength: 2, maxLength: 5 }) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom("mlp", "self_attn", "embed"), value, value).map(([filter, a, b]) => [{ filter, value: a }, { value: b }]) },
  );
}
/** Numbers that float32 and the YAML both keep exactly enough: a few decimals. */
export const num = (min: number, max: number) => fc.integer({ min: Math.round(min * 100), max: Math.round(max * 100) }).map((i) => i / 100);
export const someOf = (entries: Record<string, fc.Arbitrary<unknown>>) => fc.record(entries, { requiredKeys: [] });

export interface MethodRule {
  /** Non-base models: fewest and most (some methods refuse some of these counts, as the reference does). */
  models: [number, number];
  base: "required" | "optional" | "none";
  global: fc.Arbitrary<Record<string, unknown>>;
  perModel: fc.Arbitrary<Record<string, unknown>>;
}

const weight = settingArb(num(-0.5, 1.5));
const positiveWeight = settingArb(num(0.1, 1.5));
const density = settingArb(num(0, 1));
const lambda = settingArb(num(0.5, 1.5));
const consensus = { consensus_method: fc.constantFrom("sum", "count"), vote_weighted: fc.boolean(), int8_mask: fc.boolean() };
const normalize = fc.boolean();

export const RULES = new Map<string, MethodRule>(Object.entries({
  linear: { models: [1, 4], base: "none", global: someOf({ normalize }), perModel: fc.record({ weight: positiveWeight }) },
  task_arithmetic: { models: [1, 3], base: "required", global: someOf({ normalize, lambda, int8_mask: fc.boolean() }), perModel: fc.record({ weight }) },
  ties: { models: [1, 3], base: "required", global: someOf({ normalize, lambda, rescale: fc.boolean(), ...consensus }), perModel: fc.record({ weight, density }) },
  dare_ties: { models: [1, 3], base: "required", global: someOf({ normalize, lambda, rescale: fc.boolean(), ...consensus }), perModel: fc.record({ weight, density }) },
  dare_linear: { models: [1, 3], base: "required", global: someOf({ normalize, lambda, rescale: fc.boolean() }), perModel: fc.record({ weight, density }) },
  breadcrumbs: { models: [1, 3], base: "required", global: someOf({ normalize, lambda, rescale: fc.boolean() }), perModel: someOf({ weight, density, gamma: settingArb(num(0, 0.1)) }).map((p) => ({ weight: 1, ...p })) },
  breadcrumbs_ties: { models: [1, 3], base: "required", global: someOf({ normalize, lambda, rescale: fc.boolean(), ...consensus }), perModel: someOf({ weight, density, gamma: settingArb(num(0, 0.1)) }).map((p) => ({ weight: 1, ...p })) },
  // della: density ± epsilon must lie strictly inside (0, 1); some draws do not.
  della: { models: [1, 3], base: "required", global: someOf({ normalize, lambda, rescale: fc.boolean(), ...consensus }), perModel: fc.record({ weight, density: num(0.05, 0.95), epsilon: num(0, 0.5) }) },
  della_linear: { models: [1, 3], base: "required", global: someOf({ normalize, lambda, rescale: fc.boolean() }), perModel: fc.record({ weight, density: num(0.05, 0.95), epsilon: num(0, 0.5) }) },
  sce: { models: [1, 3], base: "required", global: someOf({ select_topk: settingArb(num(0, 1)), int8_mask: fc.boolean() }), perModel: fc.constant({}) },
  ram: { models: [1, 3], base: "required", global: someOf({ epsilon: fc.constantFrom(1e-5, 0.001, 0.01) }), perModel: fc.constant({}) },
  ramplus_tl: { models: [1, 3], base: "required", global: someOf({ epsilon: fc.constantFrom(1e-5, 0.001, 0.01), r: num(0, 0.5), alpha: num(0, 1) }), perModel: fc.constant({}) },
  slerp: { models: [1, 2], base: "required", global: fc.record({ t: settingArb(num(0, 1)) }), perModel: fc.constant({}) },
  nuslerp: { models: [1, 3], base: "optional", global: someOf({ nuslerp_flatten: fc.boolean(), nuslerp_row_wise: fc.boolean() }), perModel: fc.record({ weight: positiveWeight }) },
  multislerp: { models: [1, 3], base: "optional", global: someOf({ normalize_weights: fc.boolean() }), perModel: fc.record({ weight: positiveWeight }) },
  karcher: { models: [1, 3], base: "optional", global: someOf({ max_iter: fc.integer({ min: 1, max: 10 }), tol: fc.constantFrom(1e-5, 1e-3) }), perModel: fc.constant({}) },
  model_stock: { models: [1, 3], base: "required", global: someOf({ filter_wise: fc.boolean() }), perModel: fc.constant({}) },
  nearswap: { models: [1, 2], base: "required", global: fc.record({ t: settingArb(num(0.001, 0.1)) }), perModel: fc.constant({}) },
  arcee_fusion: { models: [1, 2], base: "required", global: fc.constant({}), perModel: fc.constant({}) },
  // Layers stacked from slices of one source each (a "frankenmerge"): see `stack`.
  passthrough: { models: [1, 3], base: "none", global: fc.constant({}), perModel: fc.constant({}) },
} satisfies Record<string, MethodRule>));

/** passthrough's slices: which model (0 = the base, i = the i-th fine-tune), its layers, and a `scale`. */
export interface StackSlice { model: number; from: number; to: number; scale?: unknown }
export const stackArb: fc.Arbitrary<StackSlice[]> = fc.array(
  fc.tuple(fc.nat(3), fc.integer({ min: 0, max: SHAPE.layers - 1 }), fc.integer({ min: 1, max: SHAPE.layers }), fc.option(settingArb(num(0, 2)), { nil: undefined }))
    .map(([model, a, b, scale]) => ({ model, from: Math.min(a, b - 1), to: Math.max(a + 1, b), ...(scale !== undefined ? { scale } : {}) })),
  { minLength: 1, maxLength: 3 });

export interface Drawn {
  method: string;
  base: Move & { withBase: boolean };
  moves: Move[];
  global: Record<string, unknown>;
  perModel: Record<string, unknown>[];
  /** `models:`; one slice over every layer; or two slices split after layer `split`, the second with its own parameters. */
  form: "models" | "slice" | "split";
  vocab: number;
  /** The last fine-tune has EXTRA_ROWS more embedding rows (the same first rows): the methods' rectification rules. */
  largerVocab: boolean;
  stack: StackSlice[];
  /** Every value (and every move) times this: F16's range (65504) is within reach of large sums at 3e4. */
  magnitude: number;
  split: number;
  sliceParameters: Record<string, unknown>;
  loadDtype?: Dtype;
  outDtype?: Dtype;
  workers: 1 | 2;
  chunked: boolean;
  seed: number;
}

export const drawnArb: fc.Arbitrary<Drawn> = fc.constantFrom(...RULES.keys()).chain((method) => {
  const rule = RULES.get(method)!;
  return fc.integer({ min: rule.models[0], max: rule.models[1] }).chain((count) => fc.record({
    method: fc.constant(method),
    base: fc.record({ seed: fc.integer({ min: 1, max: 10_000 }), scale: fc.constant(0), dtype: fc.constantFrom(...DTYPES), quantum: fc.constant(false), withBase: rule.base === "optional" ? fc.boolean() : fc.constant(rule.base === "required") }),
    moves: fc.array(moveArb, { minLength: count, maxLength: count }),
    global: rule.global,
    perModel: fc.array(rule.perModel, { minLength: count, maxLength: count }),
    form: fc.constantFrom("models" as const, "models" as const, "slice" as const, "split" as const),
    split: fc.integer({ min: 1, max: SHAPE.layers - 1 }),
    vocab: fc.constantFrom(SHAPE.vocab, SHAPE.vocab, 700),
    stack: stackArb,
    magnitude: fc.constantFrom(1, 1, 1, 100, 30_000),
    largerVocab: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    sliceParameters: rule.global,
    loadDtype: fc.option(fc.constantFrom(...DTYPES), { nil: undefined }),
    outDtype: fc.option(fc.constantFrom(...DTYPES), { nil: undefined }),
    workers: fc.constantFrom(1 as const, 2 as const),
    chunked: fc.boolean(),
    seed: fc.integer({ min: 0, max: 1000 }),
  }));
});

/** The model with every float value times `factor`, rounded to its dtype. */
export function scaled(model: RefModel, factor: number): RefModel {
  if (factor === 1) return model;
  const tensors = new Map([...model.tensors].map(([name, t]) => [name, t.values ? { ...t, values: t.values.map((v) => roundToDtype(v * factor, t.dtype as Dtype)) } : t]));
  return { ...model, tensors };
}

/** The case: models written from their moves, and the recipe. */
export function caseOf(d: Drawn, index: number): Case {
  const shape = { ...SHAPE, vocab: d.vocab };
  const base = scaled(baseModel(d.base.seed, d.base.dtype, shape), d.magnitude);
  // The same seed gives the same values at the same flat index: the larger base's first rows are the base's.
  const larger = scaled(baseModel(d.base.seed, d.base.dtype, { ...shape, vocab: d.vocab + EXTRA_ROWS }), d.magnitude);
  const models: Record<string, RefModel> = { base };
  const names = d.moves.map((_, i) => `m${i}`);
  d.moves.forEach((mv, i) => {
    const from = d.largerVocab && i === d.moves.length - 1 ? larger : base;
    models[names[i]!] = fineTune(from, mv.seed, mv.scale * d.magnitude, { dtype: mv.dtype, ...(mv.quantum ? { quantum: 2 ** -7 * d.magnitude } : {}), ...(mv.only ? { only: mv.only } : {}) });
  });
  const entries = names.map((n, i) => ({ model: `./${n}`, ...(Object.keys(d.perModel[i]!).length ? { parameters: d.perModel[i] } : {}) }));
  // linear takes the base as one of its models; the others list only the fine-tunes.
  const list = d.method === "linear" ? [{ model: "./base", parameters: { weight: 1 } }, ...entries] : entries;
  // In slices, the base is one of the sources (mergekit's rule); `models:` adds it itself.
  const sources = (from: number, to: number) => [...list, ...(d.base.withBase && d.method !== "linear" ? [{ model: "./base" }] : [])]
    .map((s) => ({ ...s, layer_range: [from, to] }));
  const stacked = d.stack.map((s) => {
    const model = s.model === 0 ? "./base" : `./${names[(s.model - 1) % names.length]}`;
    return { sources: [{ model, layer_range: [s.from, s.to], ...(s.scale !== undefined ? { parameters: { scale: s.scale } } : {}) }] };
  });
  const layers = d.method === "passthrough" ? { slices: stacked }
    : d.form === "models" ? { models: list }
    : d.form === "slice" ? { slices: [{ sources: sources(0, SHAPE.layers) }] }
      : { slices: [{ sources: sources(0, d.split) }, { sources: sources(d.split, SHAPE.layers), ...(Object.keys(d.sliceParameters).length ? { parameters: d.sliceParameters } : {}) }] };
  const recipe: Record<string, unknown> = {
    merge_method: d.method,
    ...(d.base.withBase ? { base_model: "./base" } : {}),
    ...(Object.keys(d.global).length ? { parameters: d.global } : {}),
    ...layers,
    ...(d.loadDtype ? { dtype: TORCH[d.loadDtype] } : {}),
    ...(d.outDtype ? { out_dtype: TORCH[d.outDtype] } : {}),
  };
  return { name: `random case ${index} (${d.method})`, models, recipe, seed: d.seed, workers: d.workers, ...(d.chunked ? { chunkElements: 4096 } : {}) };
}
