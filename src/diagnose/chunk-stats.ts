/**
 * @file The worker side of `diagnose`: per-tile float64 statistics of one loaded chunk. The wasm kernel
 * stages each tile three times with the merge's own stageTask (raw τ; τ after the method's trimming;
 * the values the merge votes with), so trimming and the elected sign are exactly the merge's; the sums
 * are plain float64 loops here, one record per tile (see layout.ts).
 */
import { TILE } from "../../assembly/layout";
import type { Kernels } from "../kernels/kernels";
import type { Trim } from "../merge/job";
import type { LoadedChunk } from "../merge/workspace";
import {
  BASE_SQUARES, CONFLICT_MASS, CONFLICTS, DISCARDED_L1, ELIGIBLE, ELIGIBLE_MASS, KEPT_L1, pairField, recordLength, TAU_L1, TAU_SQUARES, taskField,
} from "./layout";

/** What the diagnostics pass needs of the merge's final request (the driver copies it from there). */
export interface DiagnoseRequest {
  kind: "diagnose";
  trims: Trim[];
  weights: number[];
  rescales: number[];
  /** TIES-style sign election: discards are counted only then. */
  consensus: boolean;
  countVote: boolean;
  unweightedVote: boolean;
}

/** Builds a fresh operand table (its tie budgets are consumed by staging). */
export type TaskTable = (trims: Trim[], weights?: number[], rescales?: number[]) => number;

export function diagnoseChunk(k: Kernels, chunk: LoadedChunk, request: DiagnoseRequest, table: TaskTable, quant: number): Float64Array {
  const { arena, exports } = k;
  const nInputs = chunk.inputs.length;
  const tasks = nInputs - 1;
  const stride = recordLength(tasks);
  const tiles = Math.ceil(chunk.count / TILE);
  const out = new Float64Array(tiles * stride);
  // Three tables, each consuming its own tie budgets in element order as the merge's does.
  const rawTable = table([]);
  const keptTable = table(request.trims);
  const voteTable = table(request.trims, request.weights, request.rescales);
  const staged = (nInputs * TILE) << 2;
  const raw = arena.alloc(staged), kept = arena.alloc(staged), vote = arena.alloc(staged);
  const lo = chunk.start >>> 0, hi = Math.floor(chunk.start / 2 ** 32);
  for (let tile = 0; tile < tiles; tile++) {
    const t = tile * TILE;
    const count = Math.min(TILE, chunk.count - t);
    exports.diagnoseStage(rawTable, nInputs, t, count, lo, hi, quant, 0, raw);
    exports.diagnoseStage(keptTable, nInputs, t, count, lo, hi, quant, 0, kept);
    exports.diagnoseStage(voteTable, nInputs, t, count, lo, hi, quant, request.unweightedVote ? 1 : 0, vote);
    // Views after the last call of the tile: nothing allocates in between.
    const R = arena.f32(raw, nInputs * TILE), M = arena.f32(kept, nInputs * TILE), V = arena.f32(vote, nInputs * TILE);
    tileRecord(R, M, V, tasks, count, request, out.subarray(tile * stride, (tile + 1) * stride));
  }
  return out;
}

function tileRecord(R: Float32Array, M: Float32Array, V: Float32Array, tasks: number, count: number, request: DiagnoseRequest, rec: Float64Array): void {
  const b = tasks * TILE;
  for (let j = 0; j < count; j++) {
    const base = R[b + j]!;
    rec[BASE_SQUARES]! += base * base;
    let positive = 0, negative = 0, mass = 0;
    for (let i = 0; i < tasks; i++) {
      const tau = R[i * TILE + j]!, m = M[i * TILE + j]!;
      rec[taskField(i, TAU_SQUARES)]! += tau * tau;
      rec[taskField(i, TAU_L1)]! += Math.abs(tau);
      rec[taskField(i, KEPT_L1)]! += Math.abs(m);
      if (m > 0) positive++;
      else if (m < 0) negative++;
      mass += Math.abs(m);
      for (let p = i + 1; p < tasks; p++) rec[pairField(tasks, i, p)]! += tau * R[p * TILE + j]!;
    }
    if (positive + negative >= 2) {
      rec[ELIGIBLE]!++;
      rec[ELIGIBLE_MASS]! += mass;
      if (positive > 0 && negative > 0) {
        rec[CONFLICTS]!++;
        rec[CONFLICT_MASS]! += mass;
      }
    }
    if (request.consensus) electedDiscards(M, V, tasks, j, request.countVote, rec);
  }
}

/** The merge's election (assembly/taskvector.ts): the float32 sum of the staged values, or a sign count; 0 counts as +. */
function electedDiscards(M: Float32Array, V: Float32Array, tasks: number, j: number, countVote: boolean, rec: Float64Array): void {
  let sum = 0, votes = 0;
  for (let i = 0; i < tasks; i++) {
    const v = V[i * TILE + j]!;
    sum = i === 0 ? v : Math.fround(sum + v);
    votes += (v > 0 ? 1 : 0) - (v < 0 ? 1 : 0);
  }
  const positive = countVote ? votes >= 0 : sum >= 0;
  for (let i = 0; i < tasks; i++) {
    const m = M[i * TILE + j]!, v = V[i * TILE + j]!;
    const agree = positive ? v > 0 : v < 0;
    if (m !== 0 && !agree) rec[taskField(i, DISCARDED_L1)]! += Math.abs(m);
  }
}
