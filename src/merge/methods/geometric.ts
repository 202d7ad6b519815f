/**
 * @file The geometric methods' declarations (mergekit-semantics.md sections 1.4-1.6 and 1.10-1.12):
 * nuslerp, multislerp, karcher, model_stock, nearswap and arcee_fusion. Planning is in
 * plan/geometric.ts, the math in merge/geometric.ts and the kernels in assembly/geometry.ts and
 * assembly/fusion.ts.
 */
import { table } from "../../table";
import type { MethodSpec, ParameterSpec } from "../methods";

export type GeometricKind = "nuslerp" | "multislerp" | "karcher" | "modelStock" | "nearswap" | "arceeFusion";

export const GEOMETRIC_METHODS: Readonly<Record<string, MethodSpec>> = table<MethodSpec>({
  nuslerp: {
    name: "nuslerp", title: "NuSLERP", kind: "nuslerp", needsBase: false, optionalBase: true,
    global: table<ParameterSpec>({ nuslerp_flatten: { type: "boolean", default: true }, nuslerp_row_wise: { type: "boolean", default: false } }),
    perModel: table<ParameterSpec>({ weight: { type: "number", required: true } }),
  },
  multislerp: {
    name: "multislerp", title: "Multi-SLERP", kind: "multislerp", needsBase: false, optionalBase: true, strictShapes: true,
    global: table<ParameterSpec>({ normalize_weights: { type: "boolean", default: true }, eps: { type: "number", default: 1e-8 } }),
    perModel: table<ParameterSpec>({ weight: { type: "number", required: true } }),
  },
  karcher: {
    name: "karcher", title: "Karcher mean", paper: "https://en.wikipedia.org/wiki/Fr%C3%A9chet_mean", kind: "karcher", needsBase: false, strictShapes: true,
    global: table<ParameterSpec>({ max_iter: { type: "number", default: 10 }, tol: { type: "number", default: 1e-5 } }),
    // Accepted and ignored, as in mergekit: every input weighs the same.
    perModel: table<ParameterSpec>({ weight: { type: "number", ignored: true } }),
  },
  model_stock: {
    name: "model_stock", title: "Model Stock", paper: "https://arxiv.org/abs/2403.19522", kind: "modelStock", needsBase: true,
    global: table<ParameterSpec>({ filter_wise: { type: "boolean", default: false } }),
    perModel: table<ParameterSpec>({}),
  },
  nearswap: {
    name: "nearswap", title: "NearSwap", kind: "nearswap", needsBase: true, strictShapes: true,
    global: table<ParameterSpec>({ t: { type: "number", required: true } }),
    perModel: table<ParameterSpec>({}),
  },
  arcee_fusion: {
    name: "arcee_fusion", title: "Arcee Fusion", kind: "arceeFusion", needsBase: true,
    global: table<ParameterSpec>({}),
    perModel: table<ParameterSpec>({}),
  },
});
