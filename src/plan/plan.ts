/**
 * @file Planning a merge: from a recipe and its opened models to the list of output tensors, each with
 * its inputs, its parameters resolved for that tensor, and its output dtype and shape. This follows
 * mergekit's plan.py (tests/reference/SPEC.md section 3 states it precisely). Every problem is
 * collected before any tensor data is read, and all of them are reported together.
 */
import { describeValue, RecipeError, ValidationError, WeightsoupError, type ErrorCode } from "../errors";
import { DTYPES, type FloatDtype } from "../format/dtypes";
import { METHODS, MERGEKIT_ONLY_METHODS, type MethodSpec, type Sparsifier } from "../merge/methods";
import type { LoadedModel, TensorInfo } from "../model/model";
import { findTensor, isEmbedding, isVocabShaped, layerName, tensorRole } from "../model/roles";
import { buildLedger, type Ledger } from "../ledger/ledger";
import { layoutOf, type ModelLayout } from "./layout";
import { checkMovedLayers, decoderConfigs } from "./layer-config";
import { lookupParameter, type ParameterScope, type Value } from "../recipe/parameters";
import type { OutputSlice, Recipe } from "../recipe/recipe";
import { dellaRows, sparsifierProblem, voteOptions } from "./task-family";
import { planGeometric, type GeometricOp } from "./geometric";
import { rebuildEmbeddingInputs } from "../vocab/embeddings";
import type { RowMap } from "../vocab/row-map";
import type { TokenizerOutput } from "../vocab/tokenizer-files";
import type { OutputVocabulary } from "../vocab/vocabulary";
import type { LoraDelta } from "../lora/delta";
import { loraInput } from "../lora/model-ref";
import { planModules } from "./modules";

export interface PlannedInput {
  model: string;
  tensor: TensorInfo;
  /** Read only this top-left [rows, cols] block of a 2-D tensor (embedding rectification). */
  block?: { rows: number; cols: number };
  /** Embeddings rebuilt to the output vocabulary: where each row comes from (src/vocab). */
  rows?: RowMap;
  /** A LoRA delta added to the tensor as it is read (a base+adapter model). */
  lora?: LoraDelta;
}

/** Per task model of the task-vector family. */
export interface TaskSpec {
  /** float32-rounded weight. */
  weight: number;
  density: number;
  /** breadcrumbs: fraction of the largest |tau| dropped as outliers. */
  gamma?: number;
  /** della: half-width of the keep probabilities around density. */
  epsilon?: number;
}

export type TensorOp =
  /** The bytes of inputs[0], unchanged. */
  | { kind: "copy" }
  /** out = sum_i weights[i] * x_i, divided by `divisor` when normalize (weights float32-rounded). */
  | { kind: "sum"; weights: number[]; normalize: boolean; divisor: number }
  /** inputs = [base, other]. */
  | { kind: "slerp"; t: number }
  /** inputs = [base, ...tasks]. */
  | {
      kind: "taskVector"; consensus: boolean; sparsify: Sparsifier | undefined; normalize: boolean;
      rescale: boolean; lambda: number; divisor: number; tasks: TaskSpec[];
      /** TIES vote variants (consensus only; defaults "sum" and true). */
      consensusMethod?: "sum" | "count"; voteWeighted?: boolean;
      /** della: elements per block under one index of dim 0 (chunks hold whole blocks). */
      rowLength?: number;
      /** della: elements ranked together (a row; with three or more dimensions, a fiber along dim 1). */
      fiber?: number;
    }
  /** inputs = [base, ...tasks]: sce (select_topk >= 1 selects every position). */
  | { kind: "sce"; selectTopk: number }
  /** inputs = [base, ...tasks]: ram, or ramplus_tl with `plus`. */
  | { kind: "ram"; epsilon: number; plus?: { r: number; alpha: number } }
  | GeometricOp;

export interface PlannedTensor {
  name: string;
  shape: number[];
  numel: number;
  /** Output dtype (safetensors name). */
  dtype: string;
  op: TensorOp;
  inputs: PlannedInput[];
  inputBytes: number;
  outputBytes: number;
}

export interface MergePlan {
  recipe: Recipe;
  method: MethodSpec;
  tensors: PlannedTensor[];
  /** The model whose config.json and tokenizer files the output gets (the base, else the first model). */
  donor: string;
  /** Models by recipe name. */
  models: ReadonlyMap<string, LoadedModel>;
  /** Layers of the output (set when slices change the count). */
  outputLayers: number | undefined;
  /**
   * Where each output layer comes from: the slice's base model if it is one of the slice's sources,
   * else its first source, and that model's layer (per-layer config lists are rebuilt from these).
   */
  layerSources: { model: string; layer: number }[];
  /** The recipe's load dtype (inputs are rounded to it first), if any. */
  loadDtype: FloatDtype | undefined;
  /** Float dtype written to config.json, when the recipe sets one. */
  configDtype: FloatDtype | undefined;
  /** Tokenizer files written instead of the donor's (recipes with tokenizer keys; src/vocab/prepare.ts). */
  tokenizerOutput?: TokenizerOutput;
  /** Every tensor of every model and what the merge does with it (src/ledger). */
  ledger: Ledger;
  /** What the recipe sets that mergekit does not read, ignored as it ignores it (recipeWarnings): the merge's first warnings. */
  warnings: string[];
}

/** Every model name a recipe refers to, base first. */
export function referencedModels(recipe: Recipe): string[] {
  const names = new Set<string>();
  if (recipe.baseModel) names.add(recipe.baseModel);
  for (const m of recipe.models ?? []) names.add(m.model);
  for (const s of recipe.slices ?? []) {
    if (s.baseModel) names.add(s.baseModel);
    for (const src of s.sources) names.add(src.model);
  }
  for (const m of recipe.modules ?? []) for (const name of referencedModels(m.recipe)) names.add(name);
  return [...names];
}

/** The method a recipe names, or the error for an unknown or not-yet-supported one. */
export function methodOf(recipe: Recipe): MethodSpec {
  const method = METHODS[recipe.mergeMethod];
  if (method) return method;
  const shown = describeValue(recipe.mergeMethod);
  const known = Object.keys(METHODS).join(", ");
  if (MERGEKIT_ONLY_METHODS.includes(recipe.mergeMethod)) {
    throw new RecipeError("E_METHOD_UNSUPPORTED", `${recipe.file}: merge_method ${shown} is a mergekit method weightsoup does not run yet (supported: ${known})`, { file: recipe.file, key: "merge_method" });
  }
  throw new RecipeError("E_METHOD_UNKNOWN", `${recipe.file}: merge_method ${shown} is not a known merge method (supported: ${known})`, { file: recipe.file, key: "merge_method" });
}

/**
 * What a recipe sets that mergekit does not read: keys outside its configuration (Recipe.ignoredKeys),
 * parameters the method does not have, and method-wide parameters set in a model's block. mergekit
 * ignores them, and model cards' recipes carry them (an sce recipe with weights, a multislerp with
 * normalize), so they are ignored here too, each with a warning naming it: a typo shows, and the
 * recipe still gives mergekit's tensors.
 */
export function recipeWarnings(recipe: Recipe, method: MethodSpec): string[] {
  const warnings = [...recipe.ignoredKeys];
  const allNames = [...Object.keys(method.global), ...Object.keys(method.perModel)];
  const check = (file: string, block: Record<string, unknown> | undefined, key: string, perModelOnly: boolean) => {
    for (const name of Object.keys(block ?? {})) {
      if (perModelOnly && name in method.global) {
        warnings.push(`${file}: ${key}.${name}: "${name}" is a method-wide parameter of ${method.name}, which a model's block cannot set; ignored, as mergekit ignores it (set it in the top-level or a slice's parameters)`);
      } else if (!allNames.includes(name)) {
        warnings.push(`${file}: ${key}.${name}: ${method.name} has no parameter "${name}" (its parameters: ${allNames.join(", ") || "none"}); ignored, as mergekit ignores it`);
      }
    }
  };
  const blocks = (r: Recipe) => {
    check(r.file, r.parameters, "parameters", false);
    r.models?.forEach((m, i) => check(r.file, m.parameters, `models[${i}].parameters`, true));
    r.slices?.forEach((sl, i) => {
      check(r.file, sl.parameters, `slices[${i}].parameters`, false);
      sl.sources.forEach((src, j) => check(r.file, src.parameters, `slices[${i}].sources[${j}].parameters`, true));
    });
    for (const m of r.modules ?? []) blocks(m.recipe);
  };
  blocks(recipe);
  return warnings;
}

function throwProblems(problems: WeightsoupError[]): void {
  if (problems.length === 1) throw problems[0]!;
  if (problems.length > 1) throw new ValidationError(problems);
}

export function planMerge(recipe: Recipe, models: ReadonlyMap<string, LoadedModel>, vocabulary?: OutputVocabulary): MergePlan {
  const method = methodOf(recipe);
  if (recipe.modules) return { ...planModules(recipe, recipe.modules, models, planMerge, vocabulary), warnings: recipeWarnings(recipe, method) };
  const problems: WeightsoupError[] = [];
  const seen = new Map<string, number>();
  const report = (code: ErrorCode, message: string, details: Record<string, unknown>, dedupe?: string) => {
    if (dedupe !== undefined) {
      const n = seen.get(dedupe) ?? 0;
      seen.set(dedupe, n + 1);
      if (n > 0) return;
    }
    problems.push(new RecipeError(code, message, details));
  };
  const layouts = new Map([...models].map(([name, m]) => [name, layoutOf(m)]));

  // mergekit's normalize_config: `models:` becomes one slice over all layers, with the base appended.
  // Every model must then have the same layers: a shorter one would silently cut the merge short
  // (or, listed second, fail), so differing counts need explicit slices.
  let slices: OutputSlice[];
  if (recipe.models) {
    const counted = [...new Set([...recipe.models.map((m) => m.model), ...(recipe.baseModel ? [recipe.baseModel] : [])])];
    const first = counted[0]!;
    for (const name of counted.slice(1)) {
      const [a, b] = [layouts.get(first)!.count, layouts.get(name)!.count];
      if (a !== b) {
        report("E_LAYER_MISMATCH", `${recipe.file}: ${first} has ${a} layers but ${name} has ${b} layers; a models: recipe merges every layer of every model, so their counts must agree (use slices: with layer_range to merge some layers)`,
          { file: recipe.file, key: "models", model: name, models: [first, name], layers: [a, b] });
      }
    }
    throwProblems(problems);
    const sources = recipe.models.map((m) => ({ ...m, layerRange: [0, layouts.get(m.model)!.count] as [number, number] }));
    if (recipe.baseModel && !recipe.models.some((m) => m.model === recipe.baseModel)) {
      sources.push({ model: recipe.baseModel, layerRange: [0, layouts.get(recipe.baseModel)!.count] });
    }
    slices = [{ sources }];
  } else {
    slices = recipe.slices!;
    slices.forEach((s, i) => s.sources.forEach((src, j) => {
      const count = layouts.get(src.model)!.count;
      if (src.layerRange![1] > count) {
        report("E_RECIPE", `${recipe.file}: slices[${i}].sources[${j}].layer_range: [${src.layerRange!.join(", ")}] goes past the ${count} layers of ${src.model}`, { file: recipe.file, key: `slices[${i}].sources[${j}].layer_range`, model: src.model });
      }
    }));
  }
  slices.forEach((s, i) => {
    const base = s.baseModel ?? recipe.baseModel;
    if (method.needsBase && !base) {
      report("E_PARAMETER_MISSING", `${recipe.file}: ${method.name} needs a base_model`, { file: recipe.file, key: "base_model" }, "base");
    } else if (method.needsBase && !s.sources.some((src) => src.model === base)) {
      report("E_RECIPE", `${recipe.file}: slices[${i}]: base model ${base} must be one of the slice's sources for ${method.name}`, { file: recipe.file, key: `slices[${i}].sources`, model: base });
    }
  });
  throwProblems(problems);

  const tensors: PlannedTensor[] = [];
  const planned = new Set<string>();
  const offered = new Map<string, { model: string; tensor: string }[]>();
  const plan = (slice: OutputSlice, outName: string, inNames: string[], t: number) => {
    if (planned.has(outName)) return;
    planned.add(outName);
    offered.set(outName, slice.sources.map((src, i) => ({ model: src.model, tensor: findTensor(models.get(src.model)!, inNames[i]!)?.name ?? inNames[i]! })));
    const p = planTensor(recipe, method, slice, outName, inNames, t, models, layouts, report, vocabulary);
    if (p) tensors.push(p);
  };

  // 1. Pre-layer tensors of the first slice (t = 0).
  const first = slices[0]!, last = slices[slices.length - 1]!;
  for (const name of outerNames(first, layouts, "pre")) plan(first, name, first.sources.map(() => name), 0);
  // 1b. Layer stacks other than the decoder's (vision towers, projectors) and their modules' other
  // tensors, from the first slice like the pre-layer tensors, tensor by tensor; t runs over each stack's
  // own depth (src/plan/layout.ts).
  for (const name of union(first.sources.map((s) => [...layouts.get(s.model)!.side.keys()]))) {
    const side = first.sources.map((s) => layouts.get(s.model)!.side.get(name)).find((x) => x !== undefined)!;
    plan(first, name, first.sources.map(() => name), side.t);
  }
  // 2. Layers, renumbered across slices; t runs from 0 to 1 within each slice.
  let outLayer = 0;
  const layerSources: MergePlan["layerSources"] = [];
  for (const slice of slices) {
    const [start, end] = slice.sources[0]!.layerRange!;
    const len = end - start;
    const base = slice.baseModel ?? recipe.baseModel;
    const principal = slice.sources.find((s) => s.model === base) ?? slice.sources[0]!;
    for (let idx = 0; idx < len; idx++) {
      layerSources.push({ model: principal.model, layer: principal.layerRange![0] + idx });
      const t = len > 1 ? idx / (len - 1) : 1;
      // Every source's tensors at this layer: one lacking a tensor another has is reported, not dropped.
      const templates = union(slice.sources.map((s) => layouts.get(s.model)!.layers.get(s.layerRange![0] + idx) ?? []));
      for (const template of templates) {
        plan(slice, layerName(template, outLayer), slice.sources.map((s) => layerName(template, s.layerRange![0] + idx)), t);
      }
      outLayer++;
    }
  }
  // 3. Post-layer tensors of the last slice. Like the pre-layer ones they take a gradient's first value
  // (t = 0): mergekit's plan_module reads them with the module's t = 0 config reader.
  for (const name of outerNames(last, layouts, "post")) plan(last, name, last.sources.map(() => name), 0);

  throwProblems(problems);
  if (tensors.length === 0) throw new RecipeError("E_RECIPE", `${recipe.file}: the recipe selects no tensors`, { file: recipe.file });
  const donor = recipe.baseModel ?? first.sources[0]!.model;
  if (recipe.slices) {
    checkMovedLayers(recipe.file, layerSources, (name) => decoderConfigs(models.get(name)!), { donor, templates: (name, layer) => layouts.get(name)!.layers.get(layer) });
  }
  const ledger = buildLedger({ recipeFile: recipe.file, method: method.name, models, layouts, slices, tensors, offered, donor });
  return {
    recipe, method, tensors, donor, models, ledger, warnings: recipeWarnings(recipe, method),
    outputLayers: recipe.slices ? outLayer : undefined,
    layerSources,
    loadDtype: recipe.dtype,
    configDtype: recipe.outDtype ?? recipe.dtype,
  };
}

/**
 * Pre- or post-layer names of a slice: those of every source (a source lacking one is then reported),
 * except that lm_head is not required of tied models, which supply their input embedding instead.
 */
function outerNames(slice: OutputSlice, layouts: Map<string, ModelLayout>, which: "pre" | "post"): string[] {
  return union(slice.sources.map((s) => layouts.get(s.model)![which]));
}

/** Names in first-seen order. */
function union(lists: string[][]): string[] {
  return [...new Set(lists.flat())];
}

type Report = (code: ErrorCode, message: string, details: Record<string, unknown>, dedupe?: string) => void;

function planTensor(
  recipe: Recipe, method: MethodSpec, slice: OutputSlice, outName: string, inNames: string[], t: number,
  models: ReadonlyMap<string, LoadedModel>, layouts: ReadonlyMap<string, ModelLayout>, report: Report, vocabulary?: OutputVocabulary,
): PlannedTensor | undefined {
  const base = slice.baseModel ?? recipe.baseModel;
  const scope: ParameterScope = { recipe, slice, t };
  let inputs: PlannedInput[] = [];
  let missing = false;
  slice.sources.forEach((src, i) => {
    const model = models.get(src.model)!;
    const tensor = findTensor(model, inNames[i]!);
    if (!tensor) {
      missing = true;
      report("E_TENSOR_MISSING", missingMessage(model, src.model, inNames[i]!, outName, slice.sources.map((s, j) => ({ model: s.model, tensor: findTensor(models.get(s.model)!, inNames[j]!) }))),
        { file: model.location, model: src.model, tensor: inNames[i] });
      return;
    }
    inputs.push({ model: src.model, tensor, ...loraInput(model, tensor) });
  });
  if (missing) return undefined;
  const inNameOf = new Map(slice.sources.map((s, i) => [s.model, inNames[i]!]));
  const inName = (input: PlannedInput) => inNameOf.get(input.model)!;

  // Integer and bool tensors (position ids, masks) are copied from the base, or the first model.
  const donorInput = inputs.find((i) => i.model === base) ?? inputs[0]!;
  const donorKind = DTYPES[donorInput.tensor.dtype]!.kind;
  if (donorKind === "integer") {
    return finish(outName, donorInput.tensor.shape, donorInput.tensor.dtype, { kind: "copy" }, [donorInput]);
  }
  for (const input of inputs) {
    const { dtype, file, name } = input.tensor;
    const kind = DTYPES[dtype]!.kind;
    const why = kind === "integer" ? `is ${dtype} while ${donorInput.model}'s is ${donorInput.tensor.dtype}`
      : kind === "opaque" ? `is ${dtype}, which weightsoup cannot merge (F32, F16 and BF16 are merged)`
      : kind === "float64" && !recipe.dtype ? "is F64; set the recipe's dtype (bfloat16, float16 or float32) to merge float64 checkpoints"
      : undefined;
    if (why) {
      report("E_DTYPE_UNSUPPORTED", `${file}: tensor "${name}" ${why}`, { file, tensor: name, model: input.model, dtype }, `dtype:${input.model}:${dtype}`);
      return undefined;
    }
  }
  const outDtype = recipe.outDtype ?? recipe.dtype ?? donorInput.tensor.dtype;

  // Method-wide parameters, read with the output tensor's name.
  const globals: Record<string, Value | undefined> = Object.create(null);
  for (const [name, spec] of Object.entries(method.global)) {
    const value = parameter(recipe, scope, name, spec, outName, undefined, outName, report);
    if (value === null) return undefined;
    globals[name] = value;
  }
  // Per-model parameters, read with each input's own tensor name.
  const perModel = new Map<string, Record<string, Value | undefined>>();
  for (const input of inputs) {
    const values: Record<string, Value | undefined> = Object.create(null);
    for (const [name, spec] of Object.entries(method.perModel)) {
      // The base never needs per-model parameters, except in linear where it is an ordinary input.
      const required = spec.required && (input.model !== base || method.kind === "linear");
      const value = parameter(recipe, scope, name, { ...spec, required }, inName(input), input.model, outName, report);
      if (value === null) return undefined;
      values[name] = value;
    }
    perModel.set(input.model, values);
  }

  // With tokenizer keys, embeddings are rebuilt to the output vocabulary instead of rectified (without
  // the vocabulary, as in the page's header-only check, their shapes are not compared).
  const vocabularyRows = hasVocabularyRows(outName, inputs, models, layouts);
  const shape = vocabulary && vocabularyRows ? rebuildEmbeddingInputs({ vocabulary, file: recipe.file, base, models, findTensor, report, loadDtype: recipe.dtype }, outName, inputs)
    : recipe.tokenizer && vocabularyRows ? inputs[0]!.tensor.shape
    : rectify(method, inputs, base, report, vocabularyRows);
  if (!shape) return undefined;
  const numel = shape.reduce((a, b) => a * b, 1);
  const where = { file: recipe.file, tensor: outName };

  switch (method.kind) {
    case "linear": {
      const weights = inputs.map((i) => Math.fround(perModel.get(i.model)!.weight as number));
      const normalize = globals.normalize as boolean;
      const divisor = f32Sum(weights);
      if (normalize && divisor === 0) {
        report("E_PARAMETER_INVALID", `${recipe.file}: tensor "${outName}": the weights sum to 0, so normalize would divide by zero`, { ...where, key: "weight" }, "linear-zero");
        return undefined;
      }
      return finish(outName, shape, outDtype, { kind: "sum", weights, normalize, divisor }, inputs);
    }
    case "passthrough": {
      if (inputs.length !== 1) {
        report("E_RECIPE", `${recipe.file}: passthrough takes exactly one model per slice, tensor "${outName}" has ${inputs.length}`, where, "passthrough-count");
        return undefined;
      }
      const scale = perModel.get(inputs[0]!.model)!.scale as number | undefined;
      const stored = inputs[0]!.tensor.dtype;
      const convert = stored !== outDtype || (recipe.dtype !== undefined && recipe.dtype !== stored);
      if (scale === undefined && !convert) return finish(outName, shape, outDtype, { kind: "copy" }, inputs);
      return finish(outName, shape, outDtype, { kind: "sum", weights: [Math.fround(scale ?? 1)], normalize: false, divisor: 1 }, inputs);
    }
    case "slerp": {
      const baseInput = inputs.find((i) => i.model === base);
      if (inputs.length === 1) return finish(outName, shape, outDtype, { kind: "sum", weights: [1], normalize: false, divisor: 1 }, inputs);
      if (inputs.length !== 2 || !baseInput) {
        report("E_RECIPE", `${recipe.file}: slerp merges exactly two models, the base and one other; tensor "${outName}" has ${inputs.length} inputs`, where, "slerp-count");
        return undefined;
      }
      inputs = [baseInput, inputs.find((i) => i !== baseInput)!];
      return finish(outName, shape, outDtype, { kind: "slerp", t: globals.t as number }, inputs);
    }
    case "taskVector": {
      const baseInput = inputs.find((i) => i.model === base)!;
      const others = inputs.filter((i) => i !== baseInput);
      const tasks: TaskSpec[] = [];
      for (const input of others) {
        const { weight, density, gamma, epsilon } = perModel.get(input.model)! as { weight: number; density: number; gamma?: number; epsilon?: number };
        if (density < 0) {
          report("E_PARAMETER_INVALID", `${recipe.file}: model ${input.model}: density ${density} is negative`, { ...where, model: input.model, key: "density" }, `density:${input.model}`);
          return undefined;
        }
        const problem = sparsifierProblem(method.sparsify, density, gamma, epsilon);
        if (problem) {
          report("E_PARAMETER_INVALID", `${recipe.file}: model ${input.model}: ${problem.message} (tensor "${outName}")`, { ...where, model: input.model, key: problem.key }, `${problem.key}:${input.model}`);
          return undefined;
        }
        if (method.sparsify === "magnitude" && density < 1 && Math.floor(density * numel) === 0) {
          report("E_PARAMETER_INVALID", `${recipe.file}: tensor "${outName}": density ${density} of model ${input.model} keeps 0 of its ${numel} elements (mergekit refuses this too); raise the density for this tensor`,
            { ...where, model: input.model, key: "density" });
          return undefined;
        }
        tasks.push({ weight: Math.fround(weight), density, ...(gamma !== undefined ? { gamma } : {}), ...(epsilon !== undefined ? { epsilon } : {}) });
      }
      let divisor = f32Sum(tasks.map((x) => x.weight));
      if (Math.abs(divisor) < 1e-8) divisor = 1;
      if (tasks.length === 0) return finish(outName, shape, outDtype, { kind: "sum", weights: [1], normalize: false, divisor: 1 }, [baseInput]);
      return finish(outName, shape, outDtype, {
        kind: "taskVector", consensus: method.consensus ?? false, sparsify: method.sparsify, normalize: globals.normalize as boolean,
        rescale: globals.rescale as boolean, lambda: globals.lambda as number, divisor, tasks,
        ...voteOptions(method.consensus ?? false, globals), ...(method.sparsify === "della" ? dellaRows(shape) : {}),
      }, [baseInput, ...others]);
    }
    case "sce":
    case "ram": {
      const baseInput = inputs.find((i) => i.model === base)!;
      const others = inputs.filter((i) => i !== baseInput);
      if (others.length === 0) return finish(outName, shape, outDtype, { kind: "sum", weights: [1], normalize: false, divisor: 1 }, [baseInput]);
      if (method.kind === "sce") {
        const selectTopk = globals.select_topk as number;
        if (selectTopk < 0) {
          report("E_PARAMETER_INVALID", `${recipe.file}: select_topk ${selectTopk} is negative (tensor "${outName}")`, { ...where, key: "select_topk" }, "select_topk");
          return undefined;
        }
        return finish(outName, shape, outDtype, { kind: "sce", selectTopk }, [baseInput, ...others]);
      }
      const plus = method.name === "ramplus_tl" ? { r: globals.r as number, alpha: globals.alpha as number } : undefined;
      return finish(outName, shape, outDtype, { kind: "ram", epsilon: globals.epsilon as number, ...(plus ? { plus } : {}) }, [baseInput, ...others]);
    }
    case "nuslerp": case "multislerp": case "karcher": case "modelStock": case "nearswap": case "arceeFusion":
      return planGeometric({ recipe, method, outName, inputs, base, globals, perModel, shape, outDtype, report, finish });
  }
}

/**
 * A tensor one input lacks: where it was looked for and which other input has it, so that a tensor
 * removed from one model is found at once (merging without it would silently give a smaller output).
 */
function missingMessage(model: LoadedModel, name: string, tensor: string, outName: string, found: { model: string; tensor: TensorInfo | undefined }[]): string {
  const files = model.weightFiles.map((f) => f.file).join(", ");
  const holder = found.find((f) => f.tensor !== undefined);
  const has = holder ? `; ${holder.model} has it (in ${holder.tensor!.file})` : "";
  return `${model.location}: tensor "${tensor}" is missing from model ${name} (not in ${files || "its weight files"})${has}; needed for output tensor "${outName}", and weightsoup never leaves a tensor out silently`;
}

/** Sequential float32 sum (how torch sums a short float32 vector of weights). */
function f32Sum(values: number[]): number {
  let s = 0;
  values.forEach((v, i) => (s = i === 0 ? v : Math.fround(s + v)));
  return s;
}

/** Resolves one parameter; null after reporting a problem. */
function parameter(
  recipe: Recipe, scope: ParameterScope, name: string, spec: { type: string; default?: number | boolean | string; required?: boolean; values?: readonly string[] },
  tensorName: string, model: string | undefined, outName: string, report: Report,
): Value | undefined | null {
  let value = lookupParameter(scope, name, tensorName, model);
  const whose = model ? `model ${model}: ` : "";
  if (value === undefined) {
    if (spec.required) {
      report("E_PARAMETER_MISSING", `${recipe.file}: ${whose}parameter "${name}" is required by ${recipe.mergeMethod} but not set for tensor "${outName}"${model ? ` (set it in this model's parameters)` : ""}`,
        { file: recipe.file, tensor: outName, model, key: name }, `missing:${model}:${name}`);
      return null;
    }
    return spec.default;
  }
  // A number where a boolean goes is true unless 0, as mergekit's `if normalize:` reads it (a gradient of booleans gives such numbers).
  if (spec.type === "boolean" && typeof value === "number" && Number.isFinite(value)) value = value !== 0;
  // A boolean where a number goes is 1 or 0, as mergekit's pydantic reads it (a float field takes a bool
  // in lax mode), and as a list of booleans already gives a gradient of 1s and 0s.
  if (spec.type === "number" && typeof value === "boolean") value = value ? 1 : 0;
  // The kernels compute in float32: a number beyond its range (about ±3.4e38) would become infinite
  // there and make the merged weights infinite or NaN without a word, so it is refused here.
  if (typeof value !== spec.type || (typeof value === "number" && !Number.isFinite(Math.fround(value))) || (spec.values && !spec.values.includes(value as string))) {
    // A quoted number or boolean is text in YAML; mergekit's pydantic would convert some such texts by
    // rules of its own, so weightsoup refuses them, saying what to write instead.
    const quoted = typeof value === "string" && ((spec.type === "number" && value.trim() !== "" && Number.isFinite(Number(value))) || (spec.type === "boolean" && /^(true|false)$/i.test(value.trim())));
    report("E_PARAMETER_INVALID", `${recipe.file}: ${whose}parameter "${name}" must be ${spec.values ? `one of ${spec.values.join(", ")}` : `a ${typeof value === "number" ? "finite number within float32's range (±3.4e38)" : spec.type}`}, got ${describeValue(value)}${quoted ? ", which is text: write it without quotes" : ""} (tensor "${outName}")`,
      { file: recipe.file, tensor: outName, model, key: name }, `invalid:${model}:${name}`);
    return null;
  }
  return value;
}

/**
 * An embedding or output head (mergekit's is_embed): by name, or by shape in every input (one row per
 * token of its model's vocabulary, whatever the name: Mamba's backbone.embeddings, RWKV's head), so a
 * tokenizer rebuild and the embedding shape rules reach every architecture's, not only the names listed.
 * Not a tensor of a vision tower or projector (layout.ts's side tensors): Gemma 3's
 * `multi_modal_projector.mm_input_projection_weight` may have as many rows as the text vocabulary.
 */
function hasVocabularyRows(outName: string, inputs: readonly PlannedInput[], models: ReadonlyMap<string, LoadedModel>, layouts: ReadonlyMap<string, ModelLayout>): boolean {
  return isEmbedding(outName) || inputs.every((i) => !layouts.get(i.model)!.side.has(i.tensor.name) && isVocabShaped(i.tensor.name, i.tensor.shape, models.get(i.model)!.config));
}

/**
 * The output shape, applying mergekit's embedding rules when input shapes differ: linear and slerp keep
 * the largest common top-left block, the task-vector family cuts every other model to the base's shape.
 * Any other difference is an error. Inputs that are larger than the output get a `block` to read.
 */
function rectify(method: MethodSpec, inputs: PlannedInput[], base: string | undefined, report: Report, vocabularyRows: boolean): number[] | undefined {
  const first = inputs[0]!.tensor.shape;
  const same = (s: number[]) => s.length === first.length && s.every((d, i) => d === first[i]);
  if (inputs.every((i) => same(i.tensor.shape))) return first;
  const listing = inputs.map((i) => `${i.model} [${i.tensor.shape.join(", ")}]`).join(", ");
  const mismatch = () => {
    const odd = inputs.find((i) => !same(i.tensor.shape))!;
    report("E_SHAPE_MISMATCH", `${odd.tensor.file}: tensor "${odd.tensor.name}": shapes differ between models: ${listing}`,
      { file: odd.tensor.file, tensor: odd.tensor.name, model: odd.model });
    return undefined;
  };
  // mergekit's decorator-defined methods (sce, ram*) do no rectification and fail on any mismatch.
  if (method.kind === "sce" || method.kind === "ram") return mismatch();
  if (!vocabularyRows || !inputs.every((i) => i.tensor.shape.length === 2) || method.strictShapes) return mismatch();
  let rows: number, cols: number;
  if (method.kind === "taskVector") {
    const b = inputs.find((i) => i.model === base)!.tensor.shape;
    [rows, cols] = [b[0]!, b[1]!];
    if (inputs.some((i) => i.tensor.shape[0]! < rows || i.tensor.shape[1]! < cols)) return mismatch();
  } else {
    rows = Math.min(...inputs.map((i) => i.tensor.shape[0]!));
    cols = Math.min(...inputs.map((i) => i.tensor.shape[1]!));
  }
  for (const input of inputs) {
    if (input.tensor.shape[0] !== rows || input.tensor.shape[1] !== cols) input.block = { rows, cols };
  }
  return [rows, cols];
}

function finish(name: string, shape: number[], dtype: string, op: TensorOp, inputs: PlannedInput[]): PlannedTensor {
  const numel = shape.reduce((a, b) => a * b, 1);
  const outBytes = (numel * DTYPES[dtype]!.bits) / 8;
  const inputBytes = inputs.reduce((sum, i) => sum + (numel * DTYPES[i.tensor.dtype]!.bits) / 8, 0);
  return { name, shape, numel, dtype, op, inputs, inputBytes, outputBytes: outBytes };
}
