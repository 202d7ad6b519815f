/**
 * @file The merge methods weightsoup runs, declared the way mergekit's registry declares them: which
 * parameters are global (method-wide, may vary per tensor) and which are per model, their defaults, and
 * whether a base model is required. The math lives in the kernels (assembly/) and merge/run-tensor.ts.
 * Every table here is looked up with names from recipes, so none has a prototype (see table.ts).
 */
import { table } from "../table";
import { GEOMETRIC_METHODS, type GeometricKind } from "./methods/geometric";

export interface ParameterSpec {
  type: "number" | "boolean" | "string";
  /** Default when unset; undefined with `required: false` means "unset is meaningful" (passthrough scale). */
  default?: number | boolean | string;
  required?: boolean;
  /** A string parameter's allowed values. */
  values?: readonly string[];
  /** One line saying what it does (the page's form; parameter-descriptions.ts has the ones left out here). */
  description?: string;
  /** Accepted, as mergekit accepts it, but without effect on the result: the page's form shows no field for it. */
  ignored?: boolean;
}

export type MethodKind = "linear" | "slerp" | "passthrough" | "taskVector" | "sce" | "ram" | GeometricKind;

/** How the task-vector family sparsifies each task vector (see run-tensor.ts and assembly/taskvector.ts). */
export type Sparsifier = "magnitude" | "random" | "breadcrumbs" | "della";

export interface MethodSpec {
  name: string;
  title: string;
  paper?: string;
  kind: MethodKind;
  /** A base model must be declared and is treated specially (task vectors are relative to it). */
  needsBase: boolean;
  /** A declared base is used (the origin of the task vectors) but not required: nuslerp, multislerp. */
  optionalBase?: boolean;
  global: Readonly<Record<string, ParameterSpec>>;
  perModel: Readonly<Record<string, ParameterSpec>>;
  /** Task-vector family: sign consensus (TIES) and sparsification. */
  consensus?: boolean;
  sparsify?: Sparsifier;
  /** Inputs of different shapes are an error even for embeddings (mergekit cuts none for this method). */
  strictShapes?: boolean;
}

function taskVector(name: string, title: string, paper: string, normalize: boolean, rescale: boolean, consensus: boolean, sparsify?: Sparsifier): MethodSpec {
  return {
    name, title, paper, kind: "taskVector", needsBase: true, consensus, ...(sparsify ? { sparsify } : {}),
    global: table<ParameterSpec>({
      normalize: { type: "boolean", default: normalize },
      rescale: { type: "boolean", default: rescale },
      lambda: { type: "number", default: 1 },
      // Only changes how mergekit stores masks (int8 instead of float); the result is the same.
      int8_mask: { type: "boolean", default: false },
      // TIES vote variants (issue 10): mergekit's sum of weighted values by default.
      ...(consensus ? {
        consensus_method: { type: "string", default: "sum", values: ["sum", "count"] },
        vote_weighted: { type: "boolean", default: true },
      } : {}),
    }),
    perModel: table<ParameterSpec>({
      weight: { type: "number", required: true },
      // Without a sparsifier (task_arithmetic) nothing is pruned: accepted and unused, as in mergekit.
      density: { type: "number", default: 1, ...(sparsify ? {} : { ignored: true }) },
      ...(sparsify === "breadcrumbs" ? { gamma: { type: "number", default: 0.01 } } : {}),
      ...(sparsify === "della" ? { epsilon: { type: "number", default: 0.15 } } : {}),
    }),
  };
}

export const METHODS: Readonly<Record<string, MethodSpec>> = table({
  linear: {
    name: "linear", title: "Linear (model soup)", paper: "https://arxiv.org/abs/2203.05482", kind: "linear", needsBase: false,
    global: table<ParameterSpec>({ normalize: { type: "boolean", default: true } }),
    perModel: table<ParameterSpec>({ weight: { type: "number", required: true } }),
  },
  slerp: {
    name: "slerp", title: "SLERP", paper: "https://en.wikipedia.org/wiki/Slerp", kind: "slerp", needsBase: true,
    global: table<ParameterSpec>({ t: { type: "number", required: true } }),
    perModel: table<ParameterSpec>({}),
  },
  passthrough: {
    name: "passthrough", title: "Passthrough", kind: "passthrough", needsBase: false,
    global: table<ParameterSpec>({}),
    perModel: table<ParameterSpec>({ scale: { type: "number" } }),
  },
  task_arithmetic: taskVector("task_arithmetic", "Task Arithmetic", "https://arxiv.org/abs/2212.04089", false, false, false),
  ties: taskVector("ties", "TIES", "https://arxiv.org/abs/2306.01708", true, false, true, "magnitude"),
  dare_ties: taskVector("dare_ties", "DARE TIES", "https://arxiv.org/abs/2311.03099", false, true, true, "random"),
  dare_linear: taskVector("dare_linear", "Linear DARE", "https://arxiv.org/abs/2311.03099", false, true, false, "random"),
  breadcrumbs: taskVector("breadcrumbs", "Breadcrumbs", "https://arxiv.org/abs/2312.06795", false, false, false, "breadcrumbs"),
  breadcrumbs_ties: taskVector("breadcrumbs_ties", "Breadcrumbs + TIES", "https://arxiv.org/abs/2312.06795", false, false, true, "breadcrumbs"),
  della: taskVector("della", "DELLA", "https://arxiv.org/abs/2406.11617", true, true, true, "della"),
  della_linear: taskVector("della_linear", "DELLA (linear)", "https://arxiv.org/abs/2406.11617", false, true, false, "della"),
  sce: {
    name: "sce", title: "SCE", paper: "https://arxiv.org/abs/2408.07990", kind: "sce", needsBase: true,
    global: table<ParameterSpec>({
      select_topk: { type: "number", default: 1 },
      int8_mask: { type: "boolean", default: false },
    }),
    perModel: table<ParameterSpec>({}),
  },
  ram: {
    name: "ram", title: "RAM", paper: "https://arxiv.org/abs/2601.13572", kind: "ram", needsBase: true,
    global: table<ParameterSpec>({ epsilon: { type: "number", default: 1e-5 } }),
    perModel: table<ParameterSpec>({}),
  },
  ramplus_tl: {
    name: "ramplus_tl", title: "RAM+ (tensor-local)", paper: "https://arxiv.org/abs/2601.13572", kind: "ram", needsBase: true,
    global: table<ParameterSpec>({
      r: { type: "number", default: 0.1 },
      alpha: { type: "number", default: 0.2 },
      epsilon: { type: "number", default: 1e-5 },
    }),
    perModel: table<ParameterSpec>({}),
  },
  ...GEOMETRIC_METHODS,
});

/** mergekit methods weightsoup does not run yet (a recipe naming one gets E_METHOD_UNSUPPORTED). */
export const MERGEKIT_ONLY_METHODS = [
  "lrp",
];
