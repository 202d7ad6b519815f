/**
 * @file Planning rules of the task-vector family's newer members (issue 10): the per-model parameters
 * breadcrumbs and DELLA add, the TIES vote variants, and the rows DELLA ranks within. plan.ts calls
 * these so its own switch stays a list of cases.
 */
import type { Sparsifier } from "../merge/methods";
import type { Value } from "../recipe/parameters";

/** What is wrong with one model's sparsification parameters, if anything. */
export function sparsifierProblem(sparsify: Sparsifier | undefined, density: number, gamma: number | undefined, epsilon: number | undefined): { key: string; message: string } | undefined {
  if (sparsify === "breadcrumbs" && gamma !== undefined && gamma < 0) {
    return { key: "gamma", message: `gamma ${gamma} is negative (it is the fraction of largest changes dropped as outliers)` };
  }
  if (sparsify === "della" && epsilon !== undefined && density > 0 && density < 1) {
    if (epsilon < 0) return { key: "epsilon", message: `epsilon ${epsilon} is negative` };
    // mergekit's della_magprune refuses these too: keep probabilities must stay inside (0, 1).
    if (!(density - epsilon > 0) || !(density + epsilon < 1)) {
      return { key: "epsilon", message: `density ${density} and epsilon ${epsilon} give keep probabilities from ${density - epsilon} to ${density + epsilon}; DELLA needs density - epsilon > 0 and density + epsilon < 1` };
    }
  }
  return undefined;
}

/** The vote options of a consensus method (defaults: mergekit's sum of weighted values). */
export function voteOptions(consensus: boolean, globals: Record<string, Value | undefined>): { consensusMethod?: "sum" | "count"; voteWeighted?: boolean } {
  if (!consensus) return {};
  return { consensusMethod: globals.consensus_method === "count" ? "count" : "sum", voteWeighted: globals.vote_weighted !== false };
}

/**
 * DELLA's ranking units, as mergekit's argsort along dim 1: a 1-D tensor is one row; a 2-D tensor's rows;
 * with more dimensions, the fibers along dim 1 (shape[1] elements, `inner` = shape[2] x ... apart) of
 * each block [shape[1] x inner] under one index of dim 0. `rowLength` is the block (chunks hold whole
 * blocks), `fiber` the elements ranked together.
 */
export function dellaRows(shape: number[]): { rowLength: number; fiber: number } {
  const numel = shape.reduce((a, b) => a * b, 1);
  if (shape.length <= 1) return { rowLength: Math.max(numel, 1), fiber: Math.max(numel, 1) };
  const rowLength = shape[0]! === 0 ? 1 : numel / shape[0]!;
  return { rowLength, fiber: shape.length === 2 || rowLength <= 1 ? rowLength : Math.max(shape[1]!, 1) };
}
