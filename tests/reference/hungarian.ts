// Independent scalar reference for the linear assignment problem (SciPy's linear_sum_assignment
// semantics), written from the math in ../shared/reference/rebasin-and-evaluation.md section 3, never
// from src/ or assembly/. Two solvers that share no code:
//
//  * referenceAssignment: the O(n^2 m) Hungarian method in its shortest-augmenting-path form (row and
//    column potentials u, v; one Dijkstra over reduced costs c_ij - u_i - v_j per row). float64 only.
//  * bruteForceAssignment: enumerates every injective map from the smaller side into the larger one
//    (n, m <= 8). It maximises directly when asked, instead of negating.
//
// Conventions: n rows, m columns, k = min(n, m) pairs. When minimising, +Infinity marks a forbidden
// pair; when maximising, -Infinity does. If no k pairs avoid forbidden entries the result is
// "infeasible". Results list the pairs sorted by row; `total` is the f64 sum of the original costs of
// the pairs, taken in ascending row order.

export interface RefAssignment {
  /** Rows that received a column, ascending. For n <= m this is 0..n-1. */
  rowIndices: number[];
  /** columnIndices[t] is the column of rowIndices[t]. */
  columnIndices: number[];
  /** Sum of cost[rowIndices[t]][columnIndices[t]] in float64, ascending row order. */
  total: number;
}

export type RefResult = RefAssignment | "infeasible";

/** Output of the core minimiser on a matrix with rows <= cols: the assignment and an optimal dual. */
export interface HungarianCore {
  /** colOfRow[i] is the column given to row i. */
  colOfRow: number[];
  /** Row potentials. */
  u: number[];
  /** Column potentials; all <= 0, and exactly 0 on columns left unassigned. */
  v: number[];
}

function shapeOf(cost: ArrayLike<number>[]): { n: number; m: number } {
  const n = cost.length;
  const m = n === 0 ? 0 : cost[0]!.length;
  for (let i = 0; i < n; i++) {
    if (cost[i]!.length !== m) throw new Error(`reference: ragged cost matrix (row ${i} has ${cost[i]!.length} entries, row 0 has ${m})`);
    for (let j = 0; j < m; j++) {
      if (Number.isNaN(cost[i]![j])) throw new Error(`reference: NaN at row ${i}, column ${j}`);
    }
  }
  return { n, m };
}

/**
 * Minimum-cost assignment of every row of `c` (n x m, n <= m) to a distinct column. +Infinity entries
 * are forbidden (they never get finite reduced cost). Returns null if some row cannot be added
 * without using a forbidden pair (then no complete assignment exists: see the note at the end).
 *
 * Invariants kept (the LP dual of min sum c_ij x_ij, sum_j x_ij = 1, sum_i x_ij <= 1):
 *   u_i + v_j <= c_ij for every pair, with equality on assigned pairs; v_j <= 0.
 * Each new row r starts a Dijkstra over the alternating tree: a virtual column 0 holds r; slack[j] is
 * the smallest reduced cost of reaching column j from a row in the tree. Moving the cheapest column
 * into the tree and shifting the duals of the tree by that amount keeps every tree edge tight. When
 * the column reached is free, flipping the path back to column 0 adds row r to the matching.
 */
export function hungarianMin(c: ArrayLike<number>[], n: number, m: number): HungarianCore | null {
  if (n > m) throw new Error("hungarianMin: needs rows <= cols");
  // 1-based rows and columns; column 0 and row 0 are the virtual start of each search.
  const u = new Float64Array(n + 1);
  const v = new Float64Array(m + 1);
  const owner = new Int32Array(m + 1); // owner[j] = row (1-based) holding column j, 0 = free
  const via = new Int32Array(m + 1); // via[j] = previous column on the cheapest path to j
  const slack = new Float64Array(m + 1);
  const inTree = new Uint8Array(m + 1);

  for (let r = 1; r <= n; r++) {
    owner[0] = r;
    slack.fill(Infinity);
    inTree.fill(0);
    let col = 0;
    for (;;) {
      inTree[col] = 1;
      const row = owner[col]!;
      const crow = c[row - 1]!;
      const ur = u[row]!;
      let best = Infinity;
      let bestCol = -1;
      for (let j = 1; j <= m; j++) {
        if (inTree[j]) continue;
        const reduced = crow[j - 1]! - ur - v[j]!;
        if (reduced < slack[j]!) {
          slack[j] = reduced;
          via[j] = col;
        }
        if (slack[j]! < best) {
          best = slack[j]!;
          bestCol = j;
        }
      }
      if (bestCol < 0) return null; // every reachable column costs +Infinity: no augmenting path
      for (let j = 0; j <= m; j++) {
        if (inTree[j]) {
          u[owner[j]!] += best;
          v[j] -= best;
        } else {
          slack[j] -= best;
        }
      }
      col = bestCol;
      if (owner[col] === 0) break;
    }
    // Flip the path: each column on it takes the row of the column before it.
    while (col !== 0) {
      const prev = via[col]!;
      owner[col] = owner[prev]!;
      col = prev;
    }
  }
  // Note on infeasibility: rows 1..r-1 are matched when row r is added. If a complete matching M' of
  // rows 1..r existed, the symmetric difference of M' and the current matching would contain an
  // alternating path from r ending at a free column (it cannot end at a row: all of 1..r are matched
  // in M'), i.e. an augmenting path of finite edges, which the search would have found.
  const colOfRow = new Array<number>(n).fill(-1);
  for (let j = 1; j <= m; j++) if (owner[j]! > 0) colOfRow[owner[j]! - 1] = j - 1;
  return { colOfRow, u: Array.from(u.subarray(1)), v: Array.from(v.subarray(1)) };
}

/** Exact optimum by the Hungarian method (see hungarianMin), any shape, minimise or maximise. */
export function referenceAssignment(cost: ArrayLike<number>[], maximize = false): RefResult {
  const { n, m } = shapeOf(cost);
  if (n === 0 || m === 0) return { rowIndices: [], columnIndices: [], total: 0 };
  const transpose = n > m;
  const a = transpose ? m : n;
  const b = transpose ? n : m;
  const work: Float64Array[] = [];
  for (let i = 0; i < a; i++) {
    const row = new Float64Array(b);
    for (let j = 0; j < b; j++) {
      const x = transpose ? cost[j]![i]! : cost[i]![j]!;
      row[j] = maximize ? -x : x;
    }
    work.push(row);
  }
  const core = hungarianMin(work, a, b);
  if (core === null) return "infeasible";
  const pairs: Array<[number, number]> = [];
  for (let i = 0; i < a; i++) pairs.push(transpose ? [core.colOfRow[i]!, i] : [i, core.colOfRow[i]!]);
  pairs.sort((p, q) => p[0] - q[0]);
  let total = 0;
  for (const [i, j] of pairs) total += cost[i]![j]!;
  return { rowIndices: pairs.map((p) => p[0]), columnIndices: pairs.map((p) => p[1]), total };
}

/**
 * Exhaustive search over all injective maps from the smaller side into the larger (n, m <= 8).
 * Skips forbidden entries (+Infinity when minimising, -Infinity when maximising) and compares sums
 * directly with < or >. Among equal optima the first one found (lexicographic order) is returned.
 */
export function bruteForceAssignment(cost: ArrayLike<number>[], maximize = false): RefResult {
  const { n, m } = shapeOf(cost);
  if (n > 8 || m > 8) throw new Error("bruteForceAssignment: at most 8 x 8");
  if (n === 0 || m === 0) return { rowIndices: [], columnIndices: [], total: 0 };
  const byRows = n <= m; // the smaller side picks distinct partners on the larger side
  const a = byRows ? n : m;
  const b = byRows ? m : n;
  const entry = (s: number, t: number): number => (byRows ? cost[s]![t]! : cost[t]![s]!);
  const forbidden = maximize ? -Infinity : Infinity;
  const pick = new Array<number>(a).fill(-1);
  const used = new Array<boolean>(b).fill(false);
  let bestPick: number[] | null = null;
  let bestSum = 0;
  const visit = (s: number, sum: number): void => {
    if (s === a) {
      if (bestPick === null || (maximize ? sum > bestSum : sum < bestSum)) {
        bestSum = sum;
        bestPick = pick.slice();
      }
      return;
    }
    for (let t = 0; t < b; t++) {
      if (used[t]) continue;
      const x = entry(s, t);
      if (x === forbidden) continue;
      used[t] = true;
      pick[s] = t;
      visit(s + 1, sum + x);
      used[t] = false;
    }
  };
  visit(0, 0);
  if (bestPick === null) return "infeasible";
  const chosen: number[] = bestPick;
  const pairs: Array<[number, number]> = [];
  for (let s = 0; s < a; s++) pairs.push(byRows ? [s, chosen[s]!] : [chosen[s]!, s]);
  pairs.sort((p, q) => p[0] - q[0]);
  let total = 0;
  for (const [i, j] of pairs) total += cost[i]![j]!;
  return { rowIndices: pairs.map((p) => p[0]), columnIndices: pairs.map((p) => p[1]), total };
}
