/**
 * @file The safetensors element types: their sizes, what weightsoup does with each, and the codes the
 * kernels use for the ones it computes on.
 */
import { DTYPE_BF16, DTYPE_F16, DTYPE_F32, DTYPE_F64 } from "../../assembly/layout";
import { table } from "../table";

/** How a dtype takes part in a merge. */
export type DtypeKind =
  | "float" // merged (computed in float32)
  | "float64" // merged only when the recipe sets a narrower `dtype`, otherwise rejected
  | "integer" // copied from the base model
  | "opaque"; // valid in a file, but weightsoup cannot merge it (FP8/FP6/FP4, complex): rejected if a merge needs it

export interface DtypeInfo {
  bits: number;
  kind: DtypeKind;
  /** Kernel code (assembly/layout.ts) for dtypes the kernels read or write. */
  code?: number;
}

/** Every dtype of the reference reader (safetensors/src/tensor.rs), with its bit size. */
export const DTYPES: Readonly<Record<string, DtypeInfo>> = table({
  BOOL: { bits: 8, kind: "integer" },
  F4: { bits: 4, kind: "opaque" },
  F6_E2M3: { bits: 6, kind: "opaque" },
  F6_E3M2: { bits: 6, kind: "opaque" },
  U8: { bits: 8, kind: "integer" },
  I8: { bits: 8, kind: "integer" },
  F8_E5M2: { bits: 8, kind: "opaque" },
  F8_E4M3: { bits: 8, kind: "opaque" },
  F8_E8M0: { bits: 8, kind: "opaque" },
  F8_E4M3FNUZ: { bits: 8, kind: "opaque" },
  F8_E5M2FNUZ: { bits: 8, kind: "opaque" },
  I16: { bits: 16, kind: "integer" },
  U16: { bits: 16, kind: "integer" },
  F16: { bits: 16, kind: "float", code: DTYPE_F16 },
  BF16: { bits: 16, kind: "float", code: DTYPE_BF16 },
  I32: { bits: 32, kind: "integer" },
  U32: { bits: 32, kind: "integer" },
  F32: { bits: 32, kind: "float", code: DTYPE_F32 },
  C64: { bits: 64, kind: "opaque" },
  F64: { bits: 64, kind: "float64", code: DTYPE_F64 },
  I64: { bits: 64, kind: "integer" },
  U64: { bits: 64, kind: "integer" },
});

/** The dtype of that name, or undefined for a name that is not a safetensors dtype. */
export function dtypeInfo(name: string): DtypeInfo | undefined {
  return DTYPES[name];
}

/** The float dtypes a merge can write, by the names recipes use for them. */
export type FloatDtype = "F32" | "F16" | "BF16";

/** mergekit's dtype names (common.py dtype_from_name), with or without "torch.". */
const RECIPE_DTYPE_NAMES: Readonly<Record<string, FloatDtype>> = table({
  float32: "F32",
  float16: "F16",
  bfloat16: "BF16",
});

/** The recipe name -> safetensors dtype, or undefined if the name is not one weightsoup can compute in. */
export function dtypeFromRecipeName(name: string): FloatDtype | undefined {
  return RECIPE_DTYPE_NAMES[name.startsWith("torch.") ? name.slice(6) : name];
}

/** The torch_dtype string config.json uses for a float dtype. */
export function torchDtypeName(dtype: FloatDtype): string {
  return dtype === "F32" ? "float32" : dtype === "F16" ? "float16" : "bfloat16";
}

/** Bytes of one element (only for whole-byte dtypes). */
export function elementBytes(dtype: string): number {
  return DTYPES[dtype]!.bits / 8;
}
