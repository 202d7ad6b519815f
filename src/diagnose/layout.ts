/**
 * @file The per-tile record of the diagnostics pass: float64 sums over one TILE of a tensor, in this
 * order, for T task vectors (task i is the i-th non-base input; pairs (i, j), i < j, in row order).
 * Shared by the worker (which fills it) and the driver (which adds the tiles up in tile order).
 */

/** Σ b² over the tile (b = the base model's values). */
export const BASE_SQUARES = 0;
/** Coordinates where at least two kept task values are non-zero ("eligible" for a sign conflict). */
export const ELIGIBLE = 1;
/** Eligible coordinates where two kept task values have opposite signs. */
export const CONFLICTS = 2;
/** Σ_i |m_i| over eligible coordinates (m_i = task i's value after trimming, before rescale and weight). */
export const ELIGIBLE_MASS = 3;
/** Σ_i |m_i| over conflicting coordinates. */
export const CONFLICT_MASS = 4;
const HEAD = 5;

/** Per task: Σ τ², Σ |τ|, Σ |m| (kept), Σ |m| where the elected sign drops it. */
export const TASK_FIELDS = 4;
export const TAU_SQUARES = 0;
export const TAU_L1 = 1;
export const KEPT_L1 = 2;
export const DISCARDED_L1 = 3;

export function pairCount(tasks: number): number {
  return (tasks * (tasks - 1)) / 2;
}

/** f64 values per tile. */
export function recordLength(tasks: number): number {
  return HEAD + TASK_FIELDS * tasks + pairCount(tasks);
}

export function taskField(task: number, field: number): number {
  return HEAD + TASK_FIELDS * task + field;
}

/** Index of pair (i, j), i < j, after the task fields: Σ τ_i τ_j. */
export function pairField(tasks: number, i: number, j: number): number {
  return HEAD + TASK_FIELDS * tasks + i * tasks - (i * (i + 1)) / 2 + (j - i - 1);
}
