// Interference diagnostics (src/diagnose/): the task vectors of one tile exactly as the merge stages
// them, so "trimmed", "kept" and "discarded by the elected sign" mean what taskVectorMerge does. The
// statistics themselves are float64 sums taken by the caller.

import { TILE, TV_RECORD } from "./layout";
import { stageTask } from "./taskvector";
import { tileOf } from "./tile";

/**
 * Stages elements [t, t + count) of a chunk (count <= TILE; the chunk's first flat element is
 * startHi:startLo) for each task input i of `table`: its masked, rescaled, weighted values (stageTask,
 * consuming the record's tie budgets in element order, as the merge does) at out + (i - 1) * TILE
 * floats, then the base tile at out + tasks * TILE floats. Tiles must be staged in order.
 */
export function diagnoseStage(table: usize, nInputs: i32, t: i32, count: i32, startLo: u32, startHi: u32, quant: i32, unweighted: i32, out: usize): void {
  const index = ((<u64>startHi << 32) | <u64>startLo) + <u64>t;
  const b = tileOf(load<u32>(table), load<u32>(table, 4), t, count, quant, 0);
  for (let i = 1; i < nInputs; i++) {
    const rec = table + <usize>i * TV_RECORD;
    const x = tileOf(load<u32>(rec), load<u32>(rec, 4), t, count, quant, i);
    stageTask(rec, x, b, count, <u32>index, <u32>(index >>> 32), t, out + <usize>(i - 1) * (TILE << 2), unweighted != 0);
  }
  memory.copy(out + <usize>(nInputs - 1) * (TILE << 2), b, <usize>count << 2);
}
