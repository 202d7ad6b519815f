/**
 * @file Git Re-Basin weight matching (Ainsworth et al. 2023, §1.3 of our notes): find permutations of
 * model B's hidden units that maximise Σ ⟨A, π(B)⟩ over every tensor, by coordinate descent over
 * permutation groups. With the other groups fixed, one group's best permutation is a linear assignment
 * on its similarity matrix S[i][j] = Σ ⟨unit i of A, unit j of B with the other axes permuted⟩.
 *
 * A permutation is an index vector `perm`; applied along an axis it gathers: new[i] = old[perm[i]].
 */
import { AlignmentError } from "../errors";
import { linearSumAssignment } from "./assignment";
import { similarityMatrix, type UnfoldedPair } from "./similarity";

/** Which permutation group acts on each axis of each tensor (null: none). Tensors of 1 or 2 axes. */
export type PermutationSpec = Record<string, (string | null)[]>;

export interface Tensor {
  shape: number[];
  data: Float32Array;
}

export type Permutations = Map<string, Int32Array>;

export interface MatchingOptions {
  /** Seeds the order groups are visited in, each sweep (default 0). */
  seed?: number;
  /** Stop after this many sweeps even if still improving (default 100). */
  maxSweeps?: number;
}

export interface MatchingResult {
  permutations: Permutations;
  sweeps: number;
  /** Per group, Σ_i S[i][i] before matching (identity) and Σ_i S[i][perm[i]] after, from the last sweep's S. */
  similarity: Map<string, { before: number; after: number }>;
}

/** Group sizes, checking that every axis a group touches has the same length. */
export function groupSizes(spec: PermutationSpec, tensors: ReadonlyMap<string, Tensor>): Map<string, number> {
  const sizes = new Map<string, number>();
  for (const [name, axes] of Object.entries(spec)) {
    const t = tensors.get(name);
    if (!t) throw new AlignmentError("E_TENSOR_MISSING", `permutation spec names tensor "${name}", which the model does not have`, { tensor: name });
    if (t.shape.length !== axes.length || axes.length > 2) {
      throw new AlignmentError("E_SHAPE_MISMATCH", `tensor "${name}" has shape [${t.shape.join(", ")}] but the spec gives ${axes.length} axes (1 or 2 supported)`, { tensor: name });
    }
    axes.forEach((group, axis) => {
      if (group === null) return;
      const size = sizes.get(group);
      if (size !== undefined && size !== t.shape[axis]) {
        throw new AlignmentError("E_SHAPE_MISMATCH", `group "${group}" has ${size} units but axis ${axis} of "${name}" has ${t.shape[axis]}`, { tensor: name });
      }
      sizes.set(group, t.shape[axis]!);
    });
    if (axes[0] !== null && axes[0] === axes[1]) throw new AlignmentError("E_SHAPE_MISMATCH", `group "${axes[0]}" acts on both axes of "${name}"`, { tensor: name });
  }
  return sizes;
}

/** `t` with each axis gathered by its group's permutation (axes whose group is `except` left alone). */
export function permuteTensor(t: Tensor, axes: (string | null)[], perms: Permutations, except?: string): Tensor {
  const p0 = axes[0] && axes[0] !== except ? perms.get(axes[0]) : undefined;
  const p1 = axes[1] && axes[1] !== except ? perms.get(axes[1]) : undefined;
  if (!p0 && !p1) return t;
  const out = new Float32Array(t.data.length);
  if (t.shape.length === 1) {
    for (let i = 0; i < out.length; i++) out[i] = t.data[p0![i]!]!;
  } else {
    const [rows, cols] = t.shape as [number, number];
    for (let i = 0; i < rows; i++) {
      const from = (p0 ? p0[i]! : i) * cols;
      for (let j = 0; j < cols; j++) out[i * cols + j] = t.data[from + (p1 ? p1[j]! : j)]!;
    }
  }
  return { shape: t.shape, data: out };
}

/** Applies permutations to every tensor the spec names; other tensors are returned as they are. */
export function applyPermutations(spec: PermutationSpec, tensors: ReadonlyMap<string, Tensor>, perms: Permutations): Map<string, Tensor> {
  const out = new Map(tensors);
  for (const [name, axes] of Object.entries(spec)) out.set(name, permuteTensor(tensors.get(name)!, axes, perms));
  return out;
}

/** Permutations of B's units that make B most like A. */
export async function weightMatching(spec: PermutationSpec, a: ReadonlyMap<string, Tensor>, b: ReadonlyMap<string, Tensor>, options: MatchingOptions = {}): Promise<MatchingResult> {
  const sizes = groupSizes(spec, a);
  const sizesB = groupSizes(spec, b);
  for (const [g, n] of sizes) {
    if (sizesB.get(g) !== n) throw new AlignmentError("E_SHAPE_MISMATCH", `group "${g}" has ${n} units in the reference model and ${sizesB.get(g)} in the other`, {});
  }
  const groups = [...sizes.keys()].sort();
  const perms: Permutations = new Map(groups.map((g) => [g, Int32Array.from({ length: sizes.get(g)! }, (_, i) => i)]));
  const touching = new Map(groups.map((g) => [g, Object.entries(spec).filter(([, axes]) => axes.includes(g))]));
  const similarity = new Map<string, { before: number; after: number }>();
  const maxSweeps = options.maxSweeps ?? 100;
  let random = (options.seed ?? 0) >>> 0 || 0x9e3779b9;
  const next = () => {
    random ^= random << 13; random >>>= 0; random ^= random >>> 17; random ^= random << 5; random >>>= 0;
    return random / 4294967296;
  };
  let sweeps = 0;
  for (; sweeps < maxSweeps; ) {
    sweeps++;
    const order = [...groups];
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    let progress = false;
    for (const g of order) {
      const n = sizes.get(g)!;
      const pairs: UnfoldedPair[] = touching.get(g)!.map(([name, axes]) => {
        const other = permuteTensor(b.get(name)!, axes, perms, g);
        return { a: a.get(name)!.data, b: other.data, shape: a.get(name)!.shape, axis: axes.indexOf(g) as 0 | 1 };
      });
      const s = await similarityMatrix(n, pairs);
      const { columnIndices } = await linearSumAssignment({ rows: n, cols: n, data: s }, { maximize: true });
      const old = perms.get(g)!;
      let before = 0, after = 0, identity = 0;
      for (let i = 0; i < n; i++) {
        before += s[i * n + old[i]!]!;
        after += s[i * n + columnIndices[i]!]!;
        identity += s[i * n + i]!;
      }
      // Relative tolerance: the sums are of f32 products, so ties must not count as progress.
      if (after > before + 1e-9 * Math.abs(before)) progress = true;
      perms.set(g, columnIndices);
      const seen = similarity.get(g);
      similarity.set(g, { before: seen?.before ?? identity, after });
    }
    if (!progress) break;
  }
  return { permutations: perms, sweeps, similarity };
}

/**
 * The spec of a plain MLP: tensors `<layer>.weight` [out, in] with optional `<layer>.bias` [out],
 * chained in name order (natural number order) where each layer's out matches the next one's in.
 * Hidden layer i's units form group `P_i`; the input and output layers' outer axes are not permuted.
 */
export function mlpSpec(shapes: ReadonlyMap<string, number[]>): PermutationSpec {
  const layers = [...shapes.keys()].filter((n) => n.endsWith(".weight") && shapes.get(n)!.length === 2)
    .map((n) => n.slice(0, -".weight".length))
    .sort((x, y) => x.localeCompare(y, "en", { numeric: true }));
  if (layers.length < 2) throw new AlignmentError("E_SPEC", `an MLP needs at least two linear layers (<name>.weight of shape [out, in]); found ${layers.length}`, {});
  const spec: PermutationSpec = {};
  layers.forEach((layer, i) => {
    const [out, inp] = shapes.get(`${layer}.weight`)! as [number, number];
    if (i > 0) {
      const previousOut = shapes.get(`${layers[i - 1]}.weight`)![0];
      if (previousOut !== inp) {
        throw new AlignmentError("E_SPEC", `${layer}.weight takes ${inp} inputs but ${layers[i - 1]}.weight gives ${previousOut}: not a chain of linear layers`, { tensor: `${layer}.weight` });
      }
    }
    const outGroup = i < layers.length - 1 ? `P_${i}` : null, inGroup = i > 0 ? `P_${i - 1}` : null;
    spec[`${layer}.weight`] = [outGroup, inGroup];
    const bias = shapes.get(`${layer}.bias`);
    if (bias) {
      if (bias.length !== 1 || bias[0] !== out) throw new AlignmentError("E_SPEC", `${layer}.bias has shape [${bias.join(", ")}], expected [${out}]`, { tensor: `${layer}.bias` });
      spec[`${layer}.bias`] = [outGroup];
    }
  });
  for (const name of shapes.keys()) {
    if (!(name in spec)) throw new AlignmentError("E_SPEC", `tensor "${name}" is not part of a chain of linear layers; give the permutation spec explicitly`, { tensor: name });
  }
  return spec;
}
