// Linear assignment: the cheapest way to give each of n rows its own column of an n x m cost matrix
// (n <= m; the caller transposes for the other shape). Every kernel reads the costs times `sign`, so
// -1 maximises without rewriting the matrix.
//
// A shortest-augmenting-path solver of the Jonker-Volgenant family. Column prices v and row prices u
// keep every reduced cost C[i][j] - u[i] - v[j] non-negative for assigned rows and zero on their
// assigned edges (the LP duals). Each free row is then assigned by a Dijkstra search over reduced
// costs to the nearest free column, the path is flipped and the prices moved by the distances found,
// which keeps the invariant (Crouse 2016's formulation of JV's augmentation). Square matrices with
// finite costs first go through JV's column reduction and reduction transfer, which assign about two
// rows in three for O(n^2) work. (JV's third step, the auction-like augmenting row reduction, is left
// out: on uniform random matrices its bidding wars cost several times the whole search, measured.)
//
// All prices and distances are f64. Every choice among equals follows a fixed scan order, so the
// result depends only on the matrix.
//
// Memory, all provided by the caller, 16-byte aligned: cost f64[n*m] row-major; v, d, pred, reached,
// held f64[m]; u f64[n]; colOfRow i32[n] (the answer); rowOfCol, reachedCols i32[m]; scannedRows,
// free i32[n].

// @ts-ignore: decorator
@inline function f64At(base: usize, i: i32): f64 {
  return load<f64>(base + (<usize>i << 3));
}
// @ts-ignore: decorator
@inline function f64Put(base: usize, i: i32, x: f64): void {
  store<f64>(base + (<usize>i << 3), x);
}
// @ts-ignore: decorator
@inline function i32At(base: usize, i: i32): i32 {
  return load<i32>(base + (<usize>i << 2));
}
// @ts-ignore: decorator
@inline function i32Put(base: usize, i: i32, x: i32): void {
  store<i32>(base + (<usize>i << 2), x);
}

/**
 * Solves the assignment after prepareCosts; returns 0, or 1 when some row can reach no column at
 * finite cost (infeasible). `finite` is prepareCosts' verdict (no +inf: the JV reductions may run,
 * from the column minima it left in v and rowOfCol).
 */
export function assignMin(
  cost: usize, n: i32, m: i32, finite: i32, sign: f64,
  v: usize, u: usize, d: usize, colOfRow: usize, rowOfCol: usize, pred: usize, reachedCols: usize,
  scannedRows: usize, free: usize, reached: usize, held: usize,
): i32 {
  for (let i = 0; i < n; i++) {
    f64Put(u, i, 0);
    i32Put(colOfRow, i, -1);
  }
  let numFree = n;
  if (finite && n == m && n > 1) {
    // scannedRows is free until the searches start: it holds the per-row counts meanwhile.
    numFree = initialise(cost, n, sign, v, colOfRow, rowOfCol, free, scannedRows);
    // Row prices that make every assigned edge tight: u[i] = C[i][x_i] - v[x_i] (the row minimum).
    for (let i = 0; i < n; i++) {
      const j = i32At(colOfRow, i);
      if (j >= 0) f64Put(u, i, sign * f64At(cost, i * m + j) - f64At(v, j));
    }
  } else {
    for (let j = 0; j < m; j++) {
      f64Put(v, j, 0);
      i32Put(rowOfCol, j, -1);
    }
    for (let i = 0; i < n; i++) i32Put(free, i, i);
  }
  for (let k = 0; k < numFree; k++) {
    if (!augment(cost, n, m, sign, i32At(free, k), v, u, d, colOfRow, rowOfCol, pred, reachedCols, scannedRows, reached, held)) return 1;
  }
  return 0;
}

/**
 * JV's initial reductions for a square matrix with finite costs. Leaves prices v under which every
 * assigned row's column is one of its cheapest (C[i][j] - v[j] minimal), and the free rows in `free`.
 */
function initialise(cost: usize, n: i32, sign: f64, v: usize, colOfRow: usize, rowOfCol: usize, free: usize, chosenBy: usize): i32 {
  // 1. Column reduction: each column's price is its minimum (found by prepareCosts, with the row in
  //    rowOfCol); a row that is the minimum of several columns keeps the cheapest one. `chosenBy`
  //    counts, per row, how many columns chose it.
  const pairs = n & ~1;
  const signV = f64x2.splat(sign);
  for (let i = 0; i < n; i++) {
    i32Put(chosenBy, i, 0);
    i32Put(colOfRow, i, -1);
  }
  for (let j = n - 1; j >= 0; j--) {
    const imin = i32At(rowOfCol, j), best = f64At(v, j);
    i32Put(rowOfCol, j, -1);
    const chosen = i32At(chosenBy, imin) + 1;
    i32Put(chosenBy, imin, chosen);
    if (chosen == 1) {
      i32Put(colOfRow, imin, j);
      i32Put(rowOfCol, j, imin);
    } else if (best < f64At(v, i32At(colOfRow, imin))) {
      i32Put(rowOfCol, i32At(colOfRow, imin), -1);
      i32Put(colOfRow, imin, j);
      i32Put(rowOfCol, j, imin);
    }
  }
  // 2. Rows nobody chose are free. When there are none, the assignment is already optimal (every row
  //    has a column at reduced cost 0, and no reduced cost is negative).
  let numFree = 0;
  for (let i = 0; i < n; i++) {
    if (i32At(chosenBy, i) == 0) i32Put(free, numFree++, i);
  }
  if (numFree == 0) return 0;
  // 3. Reduction transfer: a row that alone chose its column gives that column the slack to its next
  //    best column, so the column is cheaper to take away in the searches that follow.
  for (let i = 0; i < n; i++) {
    if (i32At(chosenBy, i) != 1) continue;
    const j1 = i32At(colOfRow, i);
    // min over j != j1 of C[i][j] - v[j]: price j1 at -inf for the scan so it drops out.
    const price = f64At(v, j1);
    f64Put(v, j1, -Infinity);
    const row = cost + (<usize>(i * n) << 3);
    let lowest = f64x2.splat(Infinity);
    for (let j = 0; j < pairs; j += 2) {
      lowest = f64x2.min(lowest, f64x2.sub(f64x2.mul(v128.load(row + (<usize>j << 3)), signV), v128.load(v + (<usize>j << 3))));
    }
    let slack = min(f64x2.extract_lane(lowest, 0), f64x2.extract_lane(lowest, 1));
    if (pairs < n) slack = min(slack, sign * f64At(row, pairs) - f64At(v, pairs));
    f64Put(v, j1, price - slack);
  }
  return numFree;
}

/**
 * Assigns free row `start` along a shortest augmenting path; false if no free column is reachable.
 *
 * Dijkstra over columns: d[j] is the shortest known reduced-cost path to column j. Each step scans the
 * row just reached against every column, two at a time, and takes the closest unreached column (the
 * lowest index among equals). A reached column leaves the search without a branch in the scan: its
 * final distance and price move to `reached`/`held`, its d becomes +inf (never chosen) and its price
 * -inf (so no path ever looks shorter through it); the prices are restored, updated, at the end.
 */
function augment(
  cost: usize, n: i32, m: i32, sign: f64, start: i32,
  v: usize, u: usize, d: usize, colOfRow: usize, rowOfCol: usize, pred: usize, reachedCols: usize,
  scannedRows: usize, reached: usize, held: usize,
): bool {
  for (let j = 0; j < m; j++) {
    f64Put(d, j, Infinity);
    f64Put(pred, j, -1);
  }
  const pairs = m & ~1;
  const inf = f64x2.splat(Infinity), two = f64x2.splat(2), signV = f64x2.splat(sign);
  let numReached = 0, numScanned = 0;
  let minVal: f64 = 0;
  let i = start, sink = -1, found = true;
  while (sink < 0) {
    i32Put(scannedRows, numScanned++, i);
    const row = cost + (<usize>(i * m) << 3);
    const base = minVal - f64At(u, i);
    const baseV = f64x2.splat(base), rowV = f64x2.splat(<f64>i);
    let best = inf, bestAt = f64x2.splat(-1), index = f64x2(0, 1);
    for (let j = 0; j < pairs; j += 2) {
      const off = <usize>j << 3;
      const r = f64x2.sub(f64x2.add(baseV, f64x2.mul(v128.load(row + off), signV)), v128.load(v + off));
      let dj = v128.load(d + off);
      const closer = f64x2.lt(r, dj);
      if (v128.any_true(closer)) {
        dj = v128.bitselect(r, dj, closer);
        v128.store(d + off, dj);
        v128.store(pred + off, v128.bitselect(rowV, v128.load(pred + off), closer));
      }
      const lower = f64x2.lt(dj, best);
      best = v128.bitselect(dj, best, lower);
      bestAt = v128.bitselect(index, bestAt, lower);
      index = f64x2.add(index, two);
    }
    let lowest = f64x2.extract_lane(best, 0), at = <i32>f64x2.extract_lane(bestAt, 0);
    const b1 = f64x2.extract_lane(best, 1), a1 = <i32>f64x2.extract_lane(bestAt, 1);
    if (b1 < lowest || (b1 == lowest && a1 >= 0 && (at < 0 || a1 < at))) {
      lowest = b1;
      at = a1;
    }
    if (pairs < m) {
      const j = pairs;
      const r = base + sign * f64At(row, j) - f64At(v, j);
      let dj = f64At(d, j);
      if (r < dj) {
        dj = r;
        f64Put(d, j, r);
        f64Put(pred, j, <f64>i);
      }
      if (dj < lowest || (dj == lowest && at < 0 && dj != Infinity)) {
        lowest = dj;
        at = j;
      }
    }
    if (at < 0 || lowest == Infinity) {
      found = false;
      break;
    }
    minVal = lowest;
    f64Put(reached, at, lowest);
    f64Put(held, at, f64At(v, at));
    i32Put(reachedCols, numReached++, at);
    f64Put(d, at, Infinity);
    f64Put(v, at, -Infinity);
    if (i32At(rowOfCol, at) < 0) sink = at;
    else i = i32At(rowOfCol, at);
  }
  if (!found) {
    for (let k = 0; k < numReached; k++) {
      const j = i32At(reachedCols, k);
      f64Put(v, j, f64At(held, j));
    }
    return false;
  }
  // Move prices by the distances found: assigned edges stay tight, reduced costs stay non-negative.
  f64Put(u, start, f64At(u, start) + minVal);
  for (let s = 1; s < numScanned; s++) {
    const r = i32At(scannedRows, s);
    f64Put(u, r, f64At(u, r) + minVal - f64At(reached, i32At(colOfRow, r)));
  }
  for (let k = 0; k < numReached; k++) {
    const j = i32At(reachedCols, k);
    f64Put(v, j, f64At(held, j) - (minVal - f64At(reached, j)));
  }
  // Flip the alternating path from the sink back to the start row.
  let j = sink;
  for (;;) {
    const r = <i32>f64At(pred, j);
    i32Put(rowOfCol, j, r);
    const previous = i32At(colOfRow, r);
    i32Put(colOfRow, r, j);
    if (r == start) break;
    j = previous;
  }
  return true;
}


/**
 * One read of a fresh cost matrix, row by row: checks it and finds each column's minimum (v[j], its
 * row in rowOfCol[j]; the first row among equals), all of `sign` times the matrix (-1 maximises: the
 * matrix itself is never rewritten). Returns the index of the first entry that is NaN or -inf after
 * the sign (-inf would always be chosen), or -1; sets `infinite[0]` to 1 if some entry is +inf (a
 * forbidden pair).
 */
export function prepareCosts(cost: usize, n: i32, m: i32, sign: f64, v: usize, rowOfCol: usize, infinite: usize): i32 {
  const signV = f64x2.splat(sign), minusInf = f64x2.splat(-Infinity), plusInf = f64x2.splat(Infinity);
  for (let j = 0; j < m; j++) {
    f64Put(v, j, Infinity);
    i32Put(rowOfCol, j, 0);
  }
  let infs = i32x4.splat(0);
  const pairs = m & ~1;
  for (let i = 0; i < n; i++) {
    const row = cost + (<usize>(i * m) << 3);
    const rowI = i32x4.splat(i);
    // Flags gather over the whole row; only a row with a bad entry is looked at again, one by one.
    let bad = i32x4.splat(0);
    for (let j = 0; j < pairs; j += 2) {
      const x = f64x2.mul(v128.load(row + (<usize>j << 3)), signV);
      bad = v128.or(bad, v128.or(f64x2.ne(x, x), f64x2.eq(x, minusInf)));
      infs = v128.or(infs, f64x2.eq(x, plusInf));
      const best = v128.load(v + (<usize>j << 3));
      const lower = f64x2.lt(x, best);
      if (v128.any_true(lower)) {
        v128.store(v + (<usize>j << 3), v128.bitselect(x, best, lower));
        // Row indices are i32 pairs: narrow the 64-bit lane mask to the two low 32-bit lanes.
        const mask = i32x4.shuffle(lower, lower, 0, 2, 0, 2);
        v128.store64_lane(rowOfCol + (<usize>j << 2), v128.bitselect(rowI, v128.load64_zero(rowOfCol + (<usize>j << 2)), mask), 0);
      }
    }
    for (let j = v128.any_true(bad) ? 0 : pairs; j < m; j++) {
      const x = load<f64>(row + (<usize>j << 3)) * sign;
      if (isNaN(x) || x == -Infinity) {
        store<i32>(infinite, v128.any_true(infs) ? 1 : 0);
        return i * m + j;
      }
      if (x == Infinity) infs = i32x4.splat(-1);
      if (j >= pairs && x < f64At(v, j)) {
        f64Put(v, j, x);
        i32Put(rowOfCol, j, i);
      }
    }
  }
  store<i32>(infinite, v128.any_true(infs) ? 1 : 0);
  return -1;
}
