/**
 * @file The merge methods weightsoup runs, declared the way mergekit's registry declares them: which
 * parameters are global (method-wide, may vary per tensor) and which are per model, their defaults, and
 * whether a base model is required. The math lives in the kernels (assembly/) and merge/run-tensor.ts.
 * Every table here is looked up with names from recipes, so none has a prototype (see table.ts).
 */
import { table } from "../table";

export interface ParameterSpec {
  type: "number" | "boolean" | "string";
  /** Default when unset; undefined with `required: false` means "unset is meaningful" (passthrough scale). */
  default?: number | boolean | string;
  required?: boolean;
  /** A string parameter's allowed values. */
  values?: readonly string[];
  /** One line saying what it does (the page's form; parameter-descriptions.ts has the ones left out here). */
  description?: string;
}

export type MethodKind = "linear" | "slerp" | "passthrough" | "taskVector";

export interface MethodSpec {
  name: string;
  title: string;
  paper?: string;
  kind: MethodKind;
  /** A base model must be declared and is treated specially (task vectors are relative to it). */
  needsBase: boolean;
  global: Readonly<Record<string, ParameterSpec>>;
  perModel: Readonly<Record<string, ParameterSpec>>;
  /** Task-vector family: sign consensus (TIES) and sparsification. */
  consensus?: boolean;
  sparsify?: "magnitude" | "random";
}

function taskVector(name: string, title: string, paper: string, normalize: boolean, rescale: boolean, consensus: boolean, sparsify?: "magnitude" | "random"): MethodSpec {
  return {
    name, title, paper, kind: "taskVector", needsBase: true, consensus, ...(sparsify ? { sparsify } : {}),
    global: table<ParameterSpec>({
      normalize: { type: "boolean", default: normalize },
      rescale: { type: "boolean", default: rescale },
      lambda: { type: "number", default: 1 },
      // Only changes how mergekit stores masks (int8 instead of float); the result is the same.
      int8_mask: { type: "boolean", default: false },
    }),
    perModel: table<ParameterSpec>({ weight: { type: "number", required: true }, density: { type: "number", default: 1 } }),
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
});

/** mergekit methods weightsoup does not run yet (a recipe naming one gets E_METHOD_UNSUPPORTED). */
export const MERGEKIT_ONLY_METHODS = [
  "nuslerp", "multislerp", "karcher", "breadcrumbs", "breadcrumbs_ties", "della", "della_linear", "sce", "ram",
  "ramplus_tl", "model_stock", "nearswap", "arcee_fusion", "lrp",
];
