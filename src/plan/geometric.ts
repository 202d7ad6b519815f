/**
 * @file Planning the geometric methods: which inputs a tensor takes and in what order, how many models
 * each method accepts (mergekit's rules, as typed errors), and how a tensor is cut into vectors.
 */
import type { ErrorCode } from "../errors";
import type { MethodSpec } from "../merge/methods";
import type { Value } from "../recipe/parameters";
import type { Recipe } from "../recipe/recipe";
import type { PlannedInput, PlannedTensor, TensorOp } from "./plan";

/**
 * How a tensor is cut into vectors: the whole tensor, each row of the last axis (`cols` = the last
 * dimension), or each column of the tensor viewed as [shape[0], rest] (`cols` = rest).
 */
export type VectorLayout = "flat" | "rows" | "columns";

export type GeometricOp =
  /** inputs = [base, x1, x2] with offsets (SLERP of task vectors), else [x1, x2]. */
  | { kind: "nuslerp"; t: number; layout: VectorLayout; cols: number; offsets: boolean }
  /** inputs = [base, ...others] with offsets (the base is the origin), else the models. */
  | { kind: "multislerp"; weights: number[]; normalizeWeights: boolean; eps: number; offsets: boolean }
  /** inputs = every model, the base included. */
  | { kind: "karcher"; maxIter: number; tol: number }
  /** inputs = [base, ...others]; vectors are the task vectors, per row with filter_wise. */
  | { kind: "modelStock"; layout: "flat" | "rows"; cols: number }
  /** inputs = [base, other]. */
  | { kind: "nearswap"; t: number }
  /** inputs = [base, other]; rows of `cols` elements. */
  | { kind: "arceeFusion"; cols: number };

/** Row length a chunk boundary must respect, and whether chunks must hold a power of two rows. */
export function geometricRowAlignment(op: TensorOp): { cols: number; powerOfTwo: boolean } | undefined {
  if ((op.kind === "nuslerp" || op.kind === "modelStock") && op.layout !== "flat") return { cols: op.cols, powerOfTwo: op.layout === "columns" };
  if (op.kind === "arceeFusion") return { cols: op.cols, powerOfTwo: false };
  return undefined;
}

/** Operations that read their inputs more than once (statistics, then the output). */
export function isGeometricMultiPass(op: TensorOp): boolean {
  return op.kind === "nuslerp" || op.kind === "multislerp" || op.kind === "karcher" || op.kind === "modelStock" || op.kind === "arceeFusion";
}

/** Bytes per element a resident tensor of this operation needs beyond its inputs and output. */
export function geometricExtraBytes(op: TensorOp): number {
  return op.kind === "arceeFusion" ? 4 : 0; // the importance keys of a select pass
}

type Report = (code: ErrorCode, message: string, details: Record<string, unknown>, dedupe?: string) => void;

export interface GeometricPlan {
  recipe: Recipe;
  method: MethodSpec;
  outName: string;
  /** In the slice's source order. */
  inputs: PlannedInput[];
  base: string | undefined;
  globals: Record<string, Value | undefined>;
  perModel: Map<string, Record<string, Value | undefined>>;
  shape: number[];
  outDtype: string;
  report: Report;
  finish: (name: string, shape: number[], dtype: string, op: TensorOp, inputs: PlannedInput[]) => PlannedTensor;
}

export function planGeometric(p: GeometricPlan): PlannedTensor | undefined {
  const { recipe, method, outName, inputs, base, globals, shape, outDtype, report, finish } = p;
  const where = { file: recipe.file, tensor: outName };
  const baseInput = base === undefined ? undefined : inputs.find((i) => i.model === base);
  const others = inputs.filter((i) => i !== baseInput);
  const weightOf = (i: PlannedInput) => p.perModel.get(i.model)!.weight as number;
  const done = (op: TensorOp, list: PlannedInput[]) => finish(outName, shape, outDtype, op, list);
  const identity = (input: PlannedInput) => done({ kind: "sum", weights: [1], normalize: false, divisor: 1 }, [input]);
  const count = (rule: string) => {
    const listing = inputs.map((i) => i.model).join(", ");
    report("E_RECIPE", `${recipe.file}: ${method.name} ${rule}; tensor "${outName}" has ${inputs.length} input${inputs.length === 1 ? "" : "s"} (${listing})${base ? `, base ${base}` : ""}`,
      { ...where, key: "models", models: inputs.map((i) => i.model) }, `${method.name}-count`);
    return undefined;
  };
  const last = Math.max(1, shape.length > 0 ? shape[shape.length - 1]! : 1);
  const numel = shape.reduce((a, b) => a * b, 1);

  switch (method.kind) {
    case "nuslerp": {
      if (inputs.length === 1) return identity(inputs[0]!);
      if (base !== undefined ? !baseInput || inputs.length !== 3 : inputs.length !== 2) {
        return count(base !== undefined ? "merges exactly two models besides the base (the base must be a third, distinct model)" : "merges exactly two models");
      }
      const [w1, w2] = others.map(weightOf) as [number, number];
      const t = Math.abs(w1 + w2) < 1e-6 ? 0.5 : w2 / (w1 + w2);
      let layout: VectorLayout = "flat";
      if (globals.nuslerp_flatten === false && shape.length >= 2) layout = globals.nuslerp_row_wise === true ? "columns" : "rows";
      const cols = layout === "columns" ? Math.max(1, numel / Math.max(1, shape[0]!)) : last;
      return done({ kind: "nuslerp", t, layout, cols, offsets: !!baseInput }, baseInput ? [baseInput, ...others] : others);
    }
    case "multislerp": {
      if (others.length === 0) return count("needs at least one model besides the base");
      if (others.length === 1) return identity(others[0]!);
      const op: GeometricOp = { kind: "multislerp", weights: others.map(weightOf), normalizeWeights: globals.normalize_weights as boolean, eps: globals.eps as number, offsets: !!baseInput };
      return done(op, baseInput ? [baseInput, ...others] : others);
    }
    case "karcher": {
      const maxIter = globals.max_iter as number;
      if (!Number.isInteger(maxIter) || maxIter < 0) {
        report("E_PARAMETER_INVALID", `${recipe.file}: parameter "max_iter" must be a whole number >= 0, got ${maxIter} (tensor "${outName}")`, { ...where, key: "max_iter" }, "karcher-max-iter");
        return undefined;
      }
      if (inputs.length === 1) return identity(inputs[0]!);
      return done({ kind: "karcher", maxIter, tol: globals.tol as number }, inputs);
    }
    case "modelStock": {
      if (others.length === 0) return identity(baseInput!);
      if (others.length < 2) return count("needs the base and at least two other models");
      const rows = globals.filter_wise === true && shape.length >= 2;
      return done({ kind: "modelStock", layout: rows ? "rows" : "flat", cols: rows ? last : Math.max(1, numel) }, [baseInput!, ...others]);
    }
    case "nearswap":
    case "arceeFusion": {
      if (!baseInput || others.length !== 1) return count("merges exactly two models: the base and one other");
      const op: GeometricOp = method.kind === "nearswap" ? { kind: "nearswap", t: globals.t as number } : { kind: "arceeFusion", cols: last };
      return done(op, [baseInput, others[0]!]);
    }
  }
  throw new Error(`not a geometric method: ${method.name}`);
}
