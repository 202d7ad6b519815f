/**
 * @file One merge case run by weightsoup and by the independent scalar reference (tests/reference),
 * every output tensor compared: float32 within 1e-6 (relative to the largest of 1, the value and the
 * inputs at that element), bf16/f16 within 1 ulp or that bound, integer tensors byte-equal; arcee_fusion outside its threshold band (SPEC) exactly. Used by the
 * methods' parity tests and by the randomized parity suite.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { merge } from "../../src/node";
import { referenceMerge, type RefModel, type RefOutput } from "../reference/merge";
import { bf16BitsToF32, f16BitsToF32, roundToDtype, type FloatDtype } from "../reference/float16";
import { arceeFusionMask } from "../reference/methods";
import { compareTensor, readOutput, WORKER_URL, writeCase, type OutputTensor } from "./fixtures";

export interface Case {
  name: string;
  models: Record<string, RefModel>;
  recipe: Record<string, unknown>;
  seed?: number;
  workers?: number;
  chunkElements?: number;
}

/**
 * The difference float32 arithmetic may leave, relative to the largest of 1, the value and the inputs at
 * that element (a sum of large terms that cancels keeps their rounding): the float32 outputs' bound,
 * and bf16/f16 outputs' where that is more than their ulp (near 0).
 */
const FLOAT32_SLACK = 1e-6;

/**
 * Per element: max(1, |reference|, |every finite input value at that flat index|) over the same-named
 * input tensors, and the largest term of the linear combination the output is where the reference gives
 * it (multislerp's coefficients can be far over 1) (never infinite: an infinity must match exactly).
 */
function scaleOf(c: Case, name: string, ref: Float32Array, termScale?: Float64Array): Float32Array {
  const scale = ref.map((v, i) => Math.max(Number.isFinite(v) ? Math.max(1, Math.abs(v)) : 1, Number.isFinite(termScale?.[i]) ? termScale![i]! : 0));
  for (const model of Object.values(c.models)) {
    const values = model.tensors.get(name)?.values;
    if (!values) continue;
    for (let i = 0; i < Math.min(values.length, scale.length); i++) if (Number.isFinite(values[i]!) && Math.abs(values[i]!) > scale[i]!) scale[i] = Math.abs(values[i]!);
  }
  return scale;
}

/** A model's key in `Case.models` from the recipe's reference to it (`./name` for a folder beside the recipe, or a bare name). */
const keyOf = (reference: unknown) => String(reference).replace(/^\.\//, "");

let counter = 0;
/** Runs weightsoup and the reference on one case (in a new folder under `root`) and checks every output tensor. */
export async function check(root: string, c: Case): Promise<void> {
  await checkedMerge(root, c);
}

/** `check`, returning the case's folder (its models under their keys, the recipe as recipe.yml) and the output's. */
export async function checkedMerge(root: string, c: Case): Promise<{ dir: string; out: string }> {
  const dir = join(root, `case-${counter++}`);
  const recipePath = await writeCase(dir, c.models, c.recipe);
  const out = join(dir, "out");
  const expected = referenceMerge(c.recipe, new Map(Object.entries(c.models).map(([k, v]) => [`./${k}`, v])), { seed: c.seed ?? 0 });
  const summary = await merge(recipePath, { out, workers: c.workers ?? 2, seed: c.seed ?? 0, workerUrl: WORKER_URL, ...(c.chunkElements ? { chunkElements: c.chunkElements } : {}) });
  assert.equal(summary.tensors, expected.tensors.size);
  await checkOutput(c, out, expected);
  return { dir, out };
}

/**
 * Every tensor of weightsoup's output folder `out` against the reference's output for case `c`, whose
 * `models` are the inputs the recipe names (keyed as `keyOf` reads its references).
 */
export async function checkOutput(c: Case, out: string, expected: Pick<RefOutput, "tensors">): Promise<void> {
  const ours = await readOutput(out);
  assert.deepEqual([...ours.tensors.keys()].sort(), [...expected.tensors.keys()].sort(), `${c.name}: the same tensors`);
  const base = c.recipe.base_model === undefined ? undefined : c.models[keyOf(c.recipe.base_model)];
  for (const [name, ref] of expected.tensors) {
    const got = ours.tensors.get(name)!;
    if (c.recipe.merge_method === "arcee_fusion" && ref.values && base?.tensors.has(name)) {
      arceeAgrees(c, base, name, got, ref.values, ref.shape);
      continue;
    }
    const scale = ref.values && scaleOf(c, name, ref.values, ref.termScale);
    const { maxUlp, at } = compareTensor(got, ref, scale && ((i) => FLOAT32_SLACK * scale[i]!));
    if (got.dtype === "F32") {
      const { worst, where } = worstRelative(got.data, ref.values!, scale!);
      assert.ok(worst <= FLOAT32_SLACK, `${c.name}: ${name}: difference ${worst} (relative to the largest of 1, the value and the inputs there) at ${where}`);
    } else if (got.dtype === "BF16" || got.dtype === "F16") assert.ok(maxUlp <= 1, `${c.name}: ${name}: ${maxUlp} ulps apart at ${at}`);
    else assert.equal(compareTensor(got, ref).maxAbs, 0, `${c.name}: ${name}: integer tensor differs`);
  }
}

/** Relative band around the reference's threshold where the engine's importance may fall on the other side (SPEC, arcee_fusion). */
export const ARCEE_BAND = 1e-4;
/** A recipe's `dtype` as the dtype its inputs are rounded to. */
const LOAD_DTYPES = new Map<string, FloatDtype>([["bfloat16", "BF16"], ["float16", "F16"], ["float32", "F32"]]);
/** SPEC, arcee_fusion: the absolute part of the KL tolerance. */
const KL_ABSOLUTE = 1e-12;
/** Elements inside the band, over all arcee_fusion cases (reported by the last test). */
export const arceeBand = { elements: 0 };

/** The output's values decoded to numbers (F32, BF16 or F16). */
function decoded(t: OutputTensor): number[] {
  const v = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  if (t.dtype === "F32") return Array.from({ length: t.data.byteLength / 4 }, (_, i) => v.getFloat32(i * 4, true));
  const bits = (i: number) => v.getUint16(i * 2, true);
  return Array.from({ length: t.data.byteLength / 2 }, (_, i) => (t.dtype === "BF16" ? bf16BitsToF32(bits(i)) : f16BitsToF32(bits(i))));
}

/** Rows x cols top-left block of a tensor's values (arcee_fusion's embedding rectification). */
function block(values: Float32Array, shape: number[], out: number[]): Float32Array {
  if (shape.length !== 2 || (shape[0] === out[0] && shape[1] === out[1])) return values;
  const [rows, cols] = out as [number, number];
  return Float32Array.from({ length: rows * cols }, (_, i) => values[Math.floor(i / cols) * shape[1]! + (i % cols)]!);
}

/**
 * arcee_fusion's output against the reference (SPEC: KL to a relative tolerance, so an element whose
 * reference importance lies within ARCEE_BAND of the reference threshold may take the other input):
 * every element outside the band equals the reference's (its output dtype's rounding), elements inside
 * are counted. The SPEC's absolute KL tolerance (1e-12, for rows so alike that KL is about 0) widens the
 * band by 1e-12 times the element's |b - a| (its importance's share) and the tensor's largest (the
 * threshold's, a quantile of such importances): where the threshold is 0, a relative band is empty.
 */
function arceeAgrees(c: Case, base: RefModel, name: string, got: OutputTensor, ref: Float32Array, shape: number[]): void {
  // The one other model the recipe names (in `models:` or in slices' sources).
  const named = JSON.stringify(c.recipe);
  const other = Object.keys(c.models).find((k) => c.models[k] !== base && (named.includes(`"./${k}"`) || named.includes(`"${k}"`)))!;
  const a0 = base.tensors.get(name)!, b0 = c.models[other]!.tensors.get(name)!;
  // The recipe's `dtype` rounds every input before the merge, as it does in the reference.
  const load = LOAD_DTYPES.get(String(c.recipe.dtype));
  const loaded = (v: Float32Array) => (load ? v.map((x) => roundToDtype(x, load)) : v);
  const a = loaded(block(a0.values!, a0.shape, shape)), b = loaded(block(b0.values!, b0.shape, shape));
  const { importance, threshold } = arceeFusionMask(a, b, shape);
  const ours = decoded(got);
  let largest = 0;
  for (let j = 0; j < a.length; j++) largest = Math.max(largest, Math.abs(b[j]! - a[j]!));
  for (let j = 0; j < ref.length; j++) {
    if (Math.abs(importance[j]! - threshold) <= ARCEE_BAND * Math.abs(threshold) + KL_ABSOLUTE * (Math.abs(b[j]! - a[j]!) + largest)) {
      arceeBand.elements++;
      continue;
    }
    const want = roundToDtype(ref[j]!, got.dtype as FloatDtype);
    assert.ok(Object.is(ours[j], want) || (Number.isNaN(ours[j]) && Number.isNaN(want)), `${c.name}: ${name}[${j}]: ${ours[j]} where the reference has ${want} (importance ${importance[j]}, threshold ${threshold})`);
  }
}

/** Largest |a - b| / scale between float32 output bytes and reference values. */
function worstRelative(data: Uint8Array, ref: Float32Array, scale: Float32Array): { worst: number; where: number } {
  const got = new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  let worst = 0, where = -1;
  for (let i = 0; i < ref.length; i++) {
    const a = got[i]!, b = ref[i]!;
    if (Number.isNaN(a) !== Number.isNaN(b)) return { worst: Infinity, where: i };
    const d = Math.abs(a - b) / scale[i]!;
    if (d > worst) { worst = d; where = i; }
  }
  return { worst, where };
}

