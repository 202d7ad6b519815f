/**
 * @file What the task-vector family's newer operations need of chunking: DELLA ranks within rows, so
 * its chunks hold whole rows as well as whole tiles (a multiple of lcm(TILE, row length)); DELLA's and
 * DARE's keep bits and sce's variances add to the memory per element a chunk needs.
 */
import { TILE } from "../../assembly/layout";
import type { TensorOp } from "../plan/plan";

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** Chunks are a multiple of this many elements. */
export function chunkUnit(op: TensorOp): number {
  if (op.kind !== "taskVector" || op.sparsify !== "della" || !op.rowLength) return TILE;
  return (TILE / gcd(TILE, op.rowLength)) * op.rowLength;
}

/** Bytes per element a chunk keeps besides its inputs and output. */
export function extraBytesPerElement(op: TensorOp): number {
  if (op.kind === "sce") return op.selectTopk < 1 ? 8 : 0;
  // della's keep bits; with fibers (three or more dimensions), the transposed copies of a task and the base (up to 8 bytes each) and their bits.
  if (op.kind === "taskVector" && op.sparsify === "della") return op.tasks.filter((x) => x.density > 0 && x.density < 1).length / 8 + (op.fiber !== undefined && op.fiber !== op.rowLength ? 16.125 : 0);
  // DARE's keep bits as its L1 pass draws them, kept for the merge.
  if (op.kind === "taskVector" && op.sparsify === "random" && op.rescale) return op.tasks.filter((x) => x.density < 1).length / 8;
  return 0;
}

/** The operation reads its inputs more than once (statistics before the output). */
export function needsPasses(op: TensorOp): boolean {
  return op.kind === "sce" || (op.kind === "ram" && op.plus !== undefined);
}
