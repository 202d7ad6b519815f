/**
 * @file The tensor blocks a permutation group acts on, unfolded for similarity products: every place
 * the group acts (for its similarity matrix), or one unit of it (for the inner product of one
 * position of the aligned model with the reference).
 */
import { tensorUnfolding, type Unfolding } from "./similarity";
import { tensorMaps, useBlock, type CheckedSpec, type GroupUse, type Permutations } from "./spec";
import type { Tensor } from "./weight-matching";

type Tensors = ReadonlyMap<string, Tensor>;

function unfold(checked: CheckedSpec, uses: GroupUse[], n: number, unit: number | undefined, a: Tensors, b: Tensors, perms: Permutations, except?: string): Unfolding[] {
  const out: Unfolding[] = [];
  const maps = new Map<string, (Int32Array | null)[]>();
  for (const use of uses) {
    const { shape, axes } = checked.tensors.get(use.tensor)!;
    if (!maps.has(use.tensor)) maps.set(use.tensor, tensorMaps(checked, use.tensor, perms, except));
    const { start, inner } = useBlock(axes[use.axis]!, use, perms);
    out.push(tensorUnfolding({
      shape, a: a.get(use.tensor)!.data, b: b.get(use.tensor)!.data, axis: use.axis,
      start: unit === undefined ? start : start + unit * inner, inner, n: unit === undefined ? n : 1, mapsB: maps.get(use.tensor)!,
    }));
  }
  return out;
}

/** The unfoldings of every place `group` acts, B permuted by `perms` except on `except`. */
export function groupUnfoldings(checked: CheckedSpec, group: string, a: Tensors, b: Tensors, perms: Permutations, except?: string): Unfolding[] {
  return unfold(checked, checked.uses.get(group)!, checked.sizes.get(group)!, undefined, a, b, perms, except);
}

/**
 * Position `unit` of `group` everywhere it acts (one unit each): A's unit there against the B unit
 * `perms` puts there, with B's other axes and inner levels permuted by `perms` too.
 */
export function unitUnfoldings(checked: CheckedSpec, group: string, unit: number, a: Tensors, b: Tensors, perms: Permutations): Unfolding[] {
  return unfold(checked, checked.uses.get(group)!, checked.sizes.get(group)!, unit, a, b, perms);
}
