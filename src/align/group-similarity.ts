/**
 * @file The tensor blocks a permutation group acts on, described without their data (so a
 * description can be sent to a worker that reads the tensors itself), and their unfoldings for
 * similarity products once the data is at hand.
 */
import { tensorUnfolding, type Unfolding } from "./similarity";
import { tensorMaps, useBlock, type CheckedSpec, type Permutations } from "./spec";

/** One place a group acts: a block of one axis of one tensor, and how B is permuted around it. */
export interface BlockRef {
  tensor: string;
  /** The permuted axis. */
  axis: number;
  /** Unit i spans positions start + i*inner .. + inner of the axis. */
  start: number;
  n: number;
  inner: number;
  /** B's source index per position of each axis (null: identity); A is read as it is. */
  mapsB: (Int32Array | null)[];
}

/** A tensor of both models as float32. */
export interface TensorPair {
  shape: readonly number[];
  a: Float32Array;
  b: Float32Array;
}

/** The blocks of every place `group` acts, B permuted by `perms` except on `except`. */
export function groupBlocks(checked: CheckedSpec, group: string, perms: Permutations, except?: string): BlockRef[] {
  const out: BlockRef[] = [];
  const maps = new Map<string, (Int32Array | null)[]>();
  for (const use of checked.uses.get(group)!) {
    const { axes } = checked.tensors.get(use.tensor)!;
    if (!maps.has(use.tensor)) maps.set(use.tensor, tensorMaps(checked, use.tensor, perms, except));
    const { start, inner } = useBlock(axes[use.axis]!, use, perms);
    out.push({ tensor: use.tensor, axis: use.axis, start, n: checked.sizes.get(group)!, inner, mapsB: maps.get(use.tensor)! });
  }
  return out;
}

/** The blocks' unfoldings over tensors at hand. */
export function unfoldLoaded(blocks: readonly BlockRef[], load: (tensor: string) => TensorPair): Unfolding[] {
  return blocks.map((block) => unfolding(block, load(block.tensor)));
}

function unfolding(block: BlockRef, { shape, a, b }: TensorPair): Unfolding {
  return tensorUnfolding({ shape, a, b, axis: block.axis, start: block.start, n: block.n, inner: block.inner, mapsB: block.mapsB });
}

/** The blocks' unfoldings, each tensor pair fetched by `load` only when its turn comes. */
export async function* unfoldBlocks(blocks: readonly BlockRef[], load: (tensor: string) => TensorPair | Promise<TensorPair>): AsyncGenerator<Unfolding> {
  for (const block of blocks) yield unfolding(block, await load(block.tensor));
}
