/**
 * @file Linear sum assignment, usable on its own: the SciPy-style front end of the wasm solver in
 * assembly/assignment.ts. It puts the matrix in wasm memory as f64 (transposed when there are more
 * rows than columns), has the kernels check and solve it (times -1 to maximise) and reads the
 * assignment back.
 */
import { AlignmentError } from "../errors";
import type { Kernels } from "../kernels/kernels";
import { alignmentKernels } from "./kernels";

/** Rows of numbers (arrays or typed arrays of one length), or a dense row-major matrix. */
export type CostMatrix = ArrayLike<ArrayLike<number>> | { rows: number; cols: number; data: ArrayLike<number> };

export interface AssignmentResult {
  /** Rows that got a column, ascending (all rows when there are no more rows than columns). */
  rowIndices: Int32Array;
  /** columnIndices[k] is the column of rowIndices[k]. */
  columnIndices: Int32Array;
  /** Sum of the assigned entries (float64). */
  total: number;
}


/**
 * Pairs rows with distinct columns (min(rows, cols) pairs) so that the sum of the chosen entries is
 * minimal, or maximal with `maximize`. +Infinity marks a forbidden pair (-Infinity when maximising);
 * NaN is an error, and so is a matrix whose forbidden pairs leave no complete assignment. It solves in
 * `kernels` (resetting its arena) when given, else in the calling thread's alignment instance.
 */
export async function linearSumAssignment(cost: CostMatrix, options: { maximize?: boolean; kernels?: Kernels } = {}): Promise<AssignmentResult> {
  const { rows, cols, at } = dense(cost);
  const transposed = rows > cols;
  const n = Math.min(rows, cols), m = Math.max(rows, cols);
  if (n === 0) return { rowIndices: new Int32Array(0), columnIndices: new Int32Array(0), total: 0 };

  const { exports, arena } = options.kernels ?? (await alignmentKernels());
  arena.reset();
  const c = arena.alloc(n * m * 8), v = arena.alloc(m * 8), u = arena.alloc(n * 8), d = arena.alloc(m * 8);
  const colOfRow = arena.alloc(n * 4), rowOfCol = arena.alloc(m * 4), pred = arena.alloc(m * 8), reachedCols = arena.alloc(m * 4);
  const scanned = arena.alloc(n * 4), free = arena.alloc(n * 4), reached = arena.alloc(m * 8), held = arena.alloc(m * 8);
  const matrix = arena.f64(c, n * m);
  fill(matrix, cost, rows, cols, transposed);
  const infinite = arena.alloc(4);
  const sign = options.maximize ? -1 : 1;
  if (exports.prepareCosts(c, n, m, sign, v, rowOfCol, infinite) >= 0) throw invalidEntry(rows, cols, at, options.maximize ?? false);
  const finite = arena.u32(infinite, 1)[0] ? 0 : 1;
  if (exports.assignMin(c, n, m, finite, sign, v, u, d, colOfRow, rowOfCol, pred, reachedCols, scanned, free, reached, held) !== 0) {
    throw new AlignmentError("E_ASSIGNMENT_INFEASIBLE", `cost matrix (${rows}x${cols}): the forbidden pairs leave no complete assignment`, { rows, cols });
  }
  const assigned = arena.copyU32(colOfRow, n);
  const pairs: [number, number][] = [];
  for (let i = 0; i < n; i++) pairs.push(transposed ? [assigned[i]!, i] : [i, assigned[i]!]);
  if (transposed) pairs.sort((a, b) => a[0] - b[0]);
  const rowIndices = new Int32Array(n), columnIndices = new Int32Array(n);
  let total = 0;
  pairs.forEach(([r, k], idx) => {
    rowIndices[idx] = r;
    columnIndices[idx] = k;
    total += at(r, k);
  });
  return { rowIndices, columnIndices, total };
}

/** The error for the first NaN (or always-chosen infinity) in the caller's row-major order. */
function invalidEntry(rows: number, cols: number, at: (i: number, j: number) => number, maximize: boolean): AlignmentError {
  const forbidding = maximize ? -Infinity : Infinity;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const x = at(r, c);
      if (Number.isNaN(x)) return new AlignmentError("E_COST_INVALID", `cost matrix: entry [${r}][${c}] is NaN (forbid a pair with ${forbidding} instead)`, { row: r, column: c });
      if (x === -forbidding) return new AlignmentError("E_COST_INVALID", `cost matrix: entry [${r}][${c}] is ${x}, which would always be chosen (${forbidding} forbids a pair)`, { row: r, column: c });
    }
  }
  return new AlignmentError("E_COST_INVALID", "cost matrix: invalid entry", {});
}

/** Copies the matrix into `out` (n x m, transposed when the caller has more rows than columns). */
function fill(out: Float64Array, cost: CostMatrix, rows: number, cols: number, transposed: boolean): void {
  const data = "data" in cost && typeof (cost as { rows?: unknown }).rows === "number" ? (cost as { data: ArrayLike<number> }).data : undefined;
  if (!transposed) {
    if (data) out.set(data);
    else for (let i = 0; i < rows; i++) out.set((cost as ArrayLike<ArrayLike<number>>)[i]!, i * cols);
    return;
  }
  for (let i = 0; i < rows; i++) {
    const row = data ? undefined : (cost as ArrayLike<ArrayLike<number>>)[i]!;
    for (let j = 0; j < cols; j++) out[j * rows + i] = row ? row[j]! : data![i * cols + j]!;
  }
}

/** Shape and an element accessor, after checking that rows are all the same length. */
function dense(cost: CostMatrix): { rows: number; cols: number; at: (i: number, j: number) => number } {
  if ("data" in cost && typeof (cost as { rows?: unknown }).rows === "number") {
    const { rows, cols, data } = cost as { rows: number; cols: number; data: ArrayLike<number> };
    if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0 || data.length !== rows * cols) {
      throw new AlignmentError("E_COST_INVALID", `cost matrix: ${data.length} values do not make ${rows}x${cols}`, { rows, cols });
    }
    return { rows, cols, at: (i, j) => data[i * cols + j]! };
  }
  const list = cost as ArrayLike<ArrayLike<number>>;
  const rows = list.length, cols = rows ? list[0]!.length : 0;
  for (let i = 0; i < rows; i++) {
    if (list[i]!.length !== cols) {
      throw new AlignmentError("E_COST_INVALID", `cost matrix: row ${i} has ${list[i]!.length} entries, row 0 has ${cols}`, { row: i });
    }
  }
  return { rows, cols: rows ? cols : 0, at: (i, j) => list[i]![j]! };
}
