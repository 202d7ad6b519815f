// linearSumAssignment (SciPy linear_sum_assignment semantics) against two independent references in
// tests/reference/hungarian.ts: exhaustive search on every matrix up to 8 x 8 (thousands of seeded
// random cases: ties, negative values, rectangular shapes, forbidden pairs, maximize), and a plain
// scalar Hungarian up to n = 512. The references are first checked against each other and against a
// dual optimality certificate, so a bug in a reference shows up as its own failure.
// Hand-worked literal cases list every assignment in a comment.

import { test } from "node:test";
import assert from "node:assert/strict";
import { linearSumAssignment } from "../src/align/assignment";
import { WeightsoupError } from "../src/errors";
import {
  bruteForceAssignment,
  hungarianMin,
  referenceAssignment,
  type RefAssignment,
  type RefResult,
} from "./reference/hungarian";

const INF = Infinity;

// ---------------------------------------------------------------------------------------------
// seeded PRNG (mulberry32) and matrix generators

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(rnd: () => number): number {
  let u = 0;
  while (u === 0) u = rnd();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rnd());
}

function matrix(n: number, m: number, f: (i: number, j: number) => number): number[][] {
  return Array.from({ length: n }, (_, i) => Array.from({ length: m }, (_, j) => f(i, j)));
}

function shuffled(n: number, rnd: () => number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

/**
 * Re-basin-like similarity S = A Bᵀ (n x m, m >= n): A is n x d Gaussian, B's row perm[i] is a noisy
 * copy of A's row i (noise sd `noise`), and B's remaining m - n rows are fresh Gaussian rows. The
 * maximum assignment sends row i to column perm[i] when the noise is small (for m = n it is the unique
 * optimum of the noise-free Gram matrix: <a,b> <= (|a|^2 + |b|^2) / 2 with equality iff a = b).
 */
function rebasinLike(n: number, m: number, d: number, noise: number, rnd: () => number, f32: boolean) {
  const A = matrix(n, d, () => gaussian(rnd));
  const perm = shuffled(m, rnd).slice(0, n);
  const B = matrix(m, d, () => gaussian(rnd));
  for (let i = 0; i < n; i++) B[perm[i]!] = A[i]!.map((x) => x + noise * gaussian(rnd));
  const S = matrix(n, m, (i, j) => {
    let s = 0;
    const a = A[i]!;
    const b = B[j]!;
    for (let t = 0; t < d; t++) s += a[t]! * b[t]!;
    return f32 ? Math.fround(s) : s;
  });
  return { S, perm };
}

// ---------------------------------------------------------------------------------------------
// input forms

type Form = "rows" | "typedRows" | "dense64" | "dense32";
const FORMS: Form[] = ["rows", "typedRows", "dense64", "dense32"];
type CostInput = Parameters<typeof linearSumAssignment>[0];

function toInput(cost: number[][], form: Form, cols = cost.length ? cost[0]!.length : 0): CostInput {
  const n = cost.length;
  if (form === "rows") return cost;
  if (form === "typedRows") return cost.map((r) => Float64Array.from(r));
  const data = form === "dense32" ? new Float32Array(n * cols) : new Float64Array(n * cols);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < cols; j++) {
      const x = cost[i]![j]!;
      if (form === "dense32" && Math.fround(x) !== x && !Number.isNaN(x)) {
        throw new Error(`test bug: ${x} is not a float32 value`);
      }
      data[i * cols + j] = x;
    }
  }
  return { rows: n, cols, data };
}

// ---------------------------------------------------------------------------------------------
// checks

type Solved = Awaited<ReturnType<typeof linearSumAssignment>>;

function close(a: number, b: number, rel = 1e-9): boolean {
  return Math.abs(a - b) <= rel * Math.max(1, Math.abs(a), Math.abs(b));
}

/** Returns a description of what is wrong with `res` as an assignment of `cost`, or null. */
function invalidity(res: Solved, cost: number[][], maximize: boolean): string | null {
  const n = cost.length;
  const m = n ? cost[0]!.length : 0;
  const k = Math.min(n, m);
  if (!(res.rowIndices instanceof Int32Array)) return "rowIndices is not an Int32Array";
  if (!(res.columnIndices instanceof Int32Array)) return "columnIndices is not an Int32Array";
  if (typeof res.total !== "number") return "total is not a number";
  if (res.rowIndices.length !== k) return `rowIndices has ${res.rowIndices.length} entries, expected ${k}`;
  if (res.columnIndices.length !== k) return `columnIndices has ${res.columnIndices.length} entries, expected ${k}`;
  const forbidden = maximize ? -INF : INF;
  const colUsed = new Uint8Array(m);
  let sum = 0;
  for (let t = 0; t < k; t++) {
    const i = res.rowIndices[t]!;
    const j = res.columnIndices[t]!;
    if (n <= m && i !== t) return `rowIndices[${t}] = ${i}, expected ${t} (n <= m)`;
    if (i < 0 || i >= n) return `row ${i} out of range`;
    if (t > 0 && i <= res.rowIndices[t - 1]!) return `rowIndices not strictly ascending at ${t}`;
    if (j < 0 || j >= m) return `column ${j} out of range`;
    if (colUsed[j]) return `column ${j} assigned twice`;
    colUsed[j] = 1;
    const x = cost[i]![j]!;
    if (x === forbidden) return `forbidden pair (${i}, ${j}) assigned`;
    sum += x;
  }
  if (!close(res.total, sum)) return `total ${res.total} differs from the sum of the assigned costs ${sum}`;
  return null;
}

function errorCodeOf(e: unknown): string {
  if (e instanceof WeightsoupError) return e.code;
  return `not a WeightsoupError: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
}

/** Runs the solver; returns the result or the error (async wrapper: a synchronous throw counts too). */
async function attempt(cost: CostInput, maximize: boolean): Promise<Solved | { error: unknown }> {
  try {
    return await (async () => linearSumAssignment(cost, { maximize }))();
  } catch (error) {
    return { error };
  }
}

/**
 * Compares one solver call with a reference result; returns a failure description (null if it
 * matches) and the solver's result when it returned one.
 */
async function check(
  label: string,
  cost: number[][],
  maximize: boolean,
  form: Form,
  expected: RefResult,
  rel = 1e-9,
): Promise<{ failure: string | null; result?: Solved }> {
  const out = await attempt(toInput(cost, form), maximize);
  const what = `${label} [${cost.length}x${cost.length ? cost[0]!.length : 0} ${form} ${maximize ? "max" : "min"}]`;
  if ("error" in out) {
    const code = errorCodeOf(out.error);
    if (expected === "infeasible" && code === "E_ASSIGNMENT_INFEASIBLE") return { failure: null };
    return { failure: `${what}: threw ${code} (${(out.error as Error)?.message}), expected ${expected === "infeasible" ? "E_ASSIGNMENT_INFEASIBLE" : `total ${expected.total}`}` };
  }
  if (expected === "infeasible") return { failure: `${what}: returned total ${out.total}, expected E_ASSIGNMENT_INFEASIBLE`, result: out };
  const bad = invalidity(out, cost, maximize);
  if (bad) return { failure: `${what}: ${bad}`, result: out };
  if (!close(out.total, expected.total, rel)) {
    return { failure: `${what}: total ${out.total}, optimum ${expected.total} (${maximize ? "below" : "above"} by ${Math.abs(out.total - expected.total)})`, result: out };
  }
  return { failure: null, result: out };
}

async function compare(label: string, cost: number[][], maximize: boolean, form: Form, expected: RefResult): Promise<string | null> {
  return (await check(label, cost, maximize, form, expected)).failure;
}

function report(failures: string[], of: number): void {
  if (failures.length) {
    assert.fail(`${failures.length} of ${of} cases failed; first ones:\n${failures.slice(0, 8).join("\n")}`);
  }
}

/** Checks an optimal dual for the reference on a big matrix (u_i + v_j <= c_ij, tight on the pairs). */
function certifyReference(cost: number[][], maximize: boolean): string | null {
  const n = cost.length;
  const m = cost[0]!.length;
  const tr = n > m;
  const a = tr ? m : n;
  const b = tr ? n : m;
  const work = matrix(a, b, (i, j) => {
    const x = tr ? cost[j]![i]! : cost[i]![j]!;
    return maximize ? -x : x;
  });
  const core = hungarianMin(work, a, b);
  if (!core) return "reference: infeasible";
  let scale = 1;
  for (const r of work) for (const x of r) if (Number.isFinite(x)) scale = Math.max(scale, Math.abs(x));
  const tol = 1e-9 * scale;
  const assigned = new Uint8Array(b);
  for (let i = 0; i < a; i++) {
    const j = core.colOfRow[i]!;
    assigned[j] = 1;
    if (Math.abs(core.u[i]! + core.v[j]! - work[i]![j]!) > tol) return `reference: pair (${i}, ${j}) not tight`;
    for (let q = 0; q < b; q++) {
      if (core.u[i]! + core.v[q]! > work[i]![q]! + tol) return `reference: dual infeasible at (${i}, ${q})`;
    }
  }
  for (let q = 0; q < b; q++) {
    if (core.v[q]! > tol) return `reference: v[${q}] = ${core.v[q]} > 0`;
    if (!assigned[q] && Math.abs(core.v[q]!) > tol) return `reference: unassigned column ${q} has v = ${core.v[q]}`;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// thousands of random small cases (n, m in 1..8)

interface SmallCase {
  cost: number[][];
  maximize: boolean;
  form: Form;
  kind: string;
}

const SMALL_KINDS = ["int0to2", "intNeg3to3", "binary", "int0to9", "floatSym", "floatWideRange", "allEqual", "floatNeg"] as const;

function smallCases(count: number, seed: number): SmallCase[] {
  const rnd = prng(seed);
  const cases: SmallCase[] = [];
  for (let c = 0; c < count; c++) {
    const n = 1 + Math.floor(rnd() * 8);
    const m = rnd() < 0.3 ? n : 1 + Math.floor(rnd() * 8);
    const kind = SMALL_KINDS[c % SMALL_KINDS.length]!;
    const maximize = rnd() < 0.5;
    const form = FORMS[Math.floor(c / SMALL_KINDS.length) % FORMS.length]!;
    const constant = Math.round(rnd() * 10) - 5 + (rnd() < 0.5 ? 0.25 : 0);
    let value: () => number;
    switch (kind) {
      case "int0to2": value = () => Math.floor(rnd() * 3); break;
      case "intNeg3to3": value = () => Math.floor(rnd() * 7) - 3; break;
      case "binary": value = () => (rnd() < 0.5 ? 0 : 1); break;
      case "int0to9": value = () => Math.floor(rnd() * 10); break;
      case "floatSym": value = () => rnd() * 2 - 1; break;
      case "floatWideRange": value = () => (rnd() < 0.5 ? -1 : 1) * 10 ** (rnd() * 6 - 3); break;
      case "allEqual": value = () => constant; break;
      case "floatNeg": value = () => -100 * rnd(); break;
      default: throw new Error(kind);
    }
    const cost = matrix(n, m, () => (form === "dense32" ? Math.fround(value()) : value()));
    // Forbidden pairs: none in about half the cases; otherwise a random density, sometimes a whole
    // row or column.
    const forbidden = maximize ? -INF : INF;
    const r = rnd();
    if (r >= 0.5) {
      const density = [0.15, 0.35, 0.6, 0.85][Math.floor(rnd() * 4)]!;
      for (const row of cost) for (let j = 0; j < m; j++) if (rnd() < density) row[j] = forbidden;
    }
    if (rnd() < 0.06) cost[Math.floor(rnd() * n)]!.fill(forbidden);
    if (rnd() < 0.06) {
      const j = Math.floor(rnd() * m);
      for (const row of cost) row[j] = forbidden;
    }
    cases.push({ cost, maximize, form, kind });
  }
  return cases;
}

const SMALL = smallCases(4000, 20240611);
const SMALL_EXPECTED = SMALL.map((c) => bruteForceAssignment(c.cost, c.maximize));

test("the generated small cases cover ties, shapes, forbidden pairs and infeasibility", () => {
  const count = (p: (c: SmallCase, i: number) => boolean) => SMALL.filter(p).length;
  const hasForbidden = (c: SmallCase) => c.cost.some((r) => r.some((x) => !Number.isFinite(x)));
  const infeasible = count((_, i) => SMALL_EXPECTED[i] === "infeasible");
  const stats = {
    square: count((c) => c.cost.length === c.cost[0]!.length),
    wide: count((c) => c.cost.length < c.cost[0]!.length),
    tall: count((c) => c.cost.length > c.cost[0]!.length),
    maximize: count((c) => c.maximize),
    feasibleWithForbidden: count((c, i) => hasForbidden(c) && SMALL_EXPECTED[i] !== "infeasible"),
    infeasible,
    eightByEight: count((c) => c.cost.length === 8 && c.cost[0]!.length === 8),
  };
  for (const [key, value] of Object.entries(stats)) assert.ok(value >= 100, `${key}: only ${value} cases`);
});

test("reference Hungarian equals brute force on every small case", () => {
  const failures: string[] = [];
  SMALL.forEach((c, i) => {
    const ref = referenceAssignment(c.cost, c.maximize);
    const bf = SMALL_EXPECTED[i]!;
    if (ref === "infeasible" || bf === "infeasible") {
      if (ref !== bf) failures.push(`case ${i}: reference ${ref === "infeasible" ? "infeasible" : ref.total}, brute force ${bf === "infeasible" ? "infeasible" : bf.total}`);
      return;
    }
    if (!close(ref.total, bf.total)) failures.push(`case ${i} ${JSON.stringify(c.cost)} max=${c.maximize}: reference ${ref.total}, brute force ${bf.total}`);
  });
  report(failures, SMALL.length);
});

test("solver total equals brute force on 4000 random matrices up to 8 x 8", async () => {
  const failures: string[] = [];
  for (let i = 0; i < SMALL.length; i++) {
    const c = SMALL[i]!;
    const f = await compare(`small case ${i} (${c.kind}) ${JSON.stringify(c.cost)}`, c.cost, c.maximize, c.form, SMALL_EXPECTED[i]!);
    if (f) failures.push(f);
  }
  report(failures, SMALL.length);
});

test("exhaustive: every 0/1 matrix of size 3x3 and every {0, 1, +inf} 2x3 and 3x2 matrix", async () => {
  const failures: string[] = [];
  let total = 0;
  for (let bits = 0; bits < 512; bits++) {
    const cost = matrix(3, 3, (i, j) => (bits >> (i * 3 + j)) & 1);
    for (const maximize of [false, true]) {
      total++;
      const f = await compare(`0/1 ${JSON.stringify(cost)}`, cost, maximize, "rows", bruteForceAssignment(cost, maximize));
      if (f) failures.push(f);
    }
  }
  for (const [n, m] of [[2, 3], [3, 2]] as const) {
    for (let code = 0; code < 3 ** 6; code++) {
      let x = code;
      const cost = matrix(n, m, () => {
        const d = x % 3;
        x = Math.floor(x / 3);
        return d === 2 ? INF : d;
      });
      total++;
      const f = await compare(`{0,1,inf} ${JSON.stringify(cost)}`, cost, false, "dense64", bruteForceAssignment(cost, false));
      if (f) failures.push(f);
    }
  }
  report(failures, total);
});

// ---------------------------------------------------------------------------------------------
// hand-worked cases

interface HandCase {
  name: string;
  cost: number[][];
  maximize: boolean;
  rows: number[];
  cols: number[];
  total: number;
}

const HAND: HandCase[] = [
  // 3! assignments (columns of rows 0,1,2): 012: 4+0+2=6, 021: 4+5+2=11, 102: 1+2+2=5,
  // 120: 1+5+3=9, 201: 3+2+2=7, 210: 3+0+3=6. Minimum 5 (unique), maximum 11 (unique).
  { name: "3x3 min", cost: [[4, 1, 3], [2, 0, 5], [3, 2, 2]], maximize: false, rows: [0, 1, 2], cols: [1, 0, 2], total: 5 },
  { name: "3x3 max", cost: [[4, 1, 3], [2, 0, 5], [3, 2, 2]], maximize: true, rows: [0, 1, 2], cols: [0, 2, 1], total: 11 },
  // 012: 10+0+1=11 (the greedy choice), 021: 10+0+0=10, 102: 9+9+1=19, 120: 9+0+0=9, 201: 0+9+0=9,
  // 210: 0+0+0=0. Maximum 19 (unique).
  { name: "max beats greedy", cost: [[10, 9, 0], [9, 0, 0], [0, 0, 1]], maximize: true, rows: [0, 1, 2], cols: [1, 0, 2], total: 19 },
  // 01: -5-8=-13, 10: -1-2=-3.
  { name: "negative min", cost: [[-5, -1], [-2, -8]], maximize: false, rows: [0, 1], cols: [0, 1], total: -13 },
  { name: "negative max", cost: [[-5, -1], [-2, -8]], maximize: true, rows: [0, 1], cols: [1, 0], total: -3 },
  // Row 0 / row 1 columns: 01: 1+4=5, 02: 1+6=7, 10: 2+2=4, 12: 2+6=8, 20: 3+2=5, 21: 3+4=7.
  { name: "2x3 min", cost: [[1, 2, 3], [2, 4, 6]], maximize: false, rows: [0, 1], cols: [1, 0], total: 4 },
  // Transpose of the above: (0,1)+(1,0) = 2+2 = 4; the other five choices give 5, 7, 5, 8, 7.
  { name: "3x2 min", cost: [[1, 2], [2, 4], [3, 6]], maximize: false, rows: [0, 1], cols: [1, 0], total: 4 },
  // Rows 1 and 2 take columns 0 and 1 for 1+1=2; any pair using row 0 costs at least 5+1=6.
  { name: "3x2 unmatched first row", cost: [[5, 5], [1, 9], [9, 1]], maximize: false, rows: [1, 2], cols: [0, 1], total: 2 },
  // Maximize, the six choices: rows 0,1: (0,0)+(1,1)=14, (0,1)+(1,0)=6; rows 0,2: (0,0)+(2,1)=6,
  // (0,1)+(2,0)=14; rows 1,2: (1,0)+(2,1)=2, (1,1)+(2,0)=18. Maximum 18: rows 1, 2 -> columns 1, 0.
  { name: "3x2 max", cost: [[5, 5], [1, 9], [9, 1]], maximize: true, rows: [1, 2], cols: [1, 0], total: 18 },
  { name: "1x1", cost: [[3.5]], maximize: false, rows: [0], cols: [0], total: 3.5 },
  { name: "1x4 min", cost: [[3, 1, 2, 1.5]], maximize: false, rows: [0], cols: [1], total: 1 },
  { name: "1x4 max", cost: [[3, 1, 2, 1.5]], maximize: true, rows: [0], cols: [0], total: 3 },
  { name: "4x1 min", cost: [[3], [1], [2], [1.5]], maximize: false, rows: [1], cols: [0], total: 1 },
  { name: "4x1 max", cost: [[3], [1], [2], [1.5]], maximize: true, rows: [0], cols: [0], total: 3 },
  // Only the anti-diagonal is allowed.
  { name: "forbidden diagonal", cost: [[INF, 1], [1, INF]], maximize: false, rows: [0, 1], cols: [1, 0], total: 2 },
  // Allowed complete assignments: 012: 7+8+6=21 and 201: 3+2+4=9; every other one meets a -inf.
  { name: "max with -inf", cost: [[7, -INF, 3], [2, 8, -INF], [-INF, 4, 6]], maximize: true, rows: [0, 1, 2], cols: [0, 1, 2], total: 21 },
  // Rows 0 and 1 are fully forbidden; row 3 can only take column 0 (3), so row 2 takes column 1 (2).
  { name: "4x2 with forbidden rows", cost: [[INF, INF], [INF, INF], [1, 2], [3, INF]], maximize: false, rows: [2, 3], cols: [1, 0], total: 5 },
  // c_ij = i*j on 5x5: the optimum pairs i with 4-i (rearrangement inequality): 0+3+4+3+0 = 10.
  { name: "i*j anti-sorted", cost: matrix(5, 5, (i, j) => i * j), maximize: false, rows: [0, 1, 2, 3, 4], cols: [4, 3, 2, 1, 0], total: 10 },
];

test("hand-worked cases give the known assignment and total", async () => {
  for (const h of HAND) {
    for (const form of FORMS) {
      const res = await linearSumAssignment(toInput(h.cost, form), { maximize: h.maximize });
      const where = `${h.name} (${form})`;
      assert.deepEqual(Array.from(res.rowIndices), h.rows, `${where}: rowIndices`);
      assert.deepEqual(Array.from(res.columnIndices), h.cols, `${where}: columnIndices`);
      assert.equal(res.total, h.total, `${where}: total`);
    }
    // The references agree with the hand-worked answer as well.
    for (const ref of [referenceAssignment(h.cost, h.maximize), bruteForceAssignment(h.cost, h.maximize)]) {
      assert.notEqual(ref, "infeasible", h.name);
      assert.equal((ref as RefAssignment).total, h.total, `${h.name}: reference`);
    }
  }
});

const INFEASIBLE: Array<{ name: string; cost: number[][]; maximize: boolean }> = [
  { name: "1x1 +inf", cost: [[INF]], maximize: false },
  { name: "row all +inf", cost: [[INF, INF], [1, 2]], maximize: false },
  // Both rows can only use column 0 (Hall's condition fails though every row has a finite entry).
  { name: "two rows one column", cost: [[1, INF, INF], [2, INF, INF]], maximize: false },
  // Tall: k = 2 columns must both be used, but column 1 is forbidden everywhere.
  { name: "tall dead column", cost: [[1, INF], [2, INF], [3, INF]], maximize: false },
  { name: "max dead column", cost: [[-INF, 1], [-INF, 2]], maximize: true },
  // Three rows confined to two columns inside a 4x4.
  { name: "hall 3 into 2", cost: [[1, 2, INF, INF], [3, 4, INF, INF], [5, 6, INF, INF], [7, 8, 9, 10]], maximize: false },
];

test("infeasible forbidden patterns throw E_ASSIGNMENT_INFEASIBLE", async () => {
  for (const c of INFEASIBLE) {
    assert.equal(bruteForceAssignment(c.cost, c.maximize), "infeasible", `${c.name}: brute force`);
    assert.equal(referenceAssignment(c.cost, c.maximize), "infeasible", `${c.name}: reference`);
    for (const form of FORMS) {
      await assert.rejects(
        async () => linearSumAssignment(toInput(c.cost, form), { maximize: c.maximize }),
        (e: unknown) => {
          assert.ok(e instanceof WeightsoupError, `${c.name} (${form}): ${String(e)}`);
          assert.equal(e.code, "E_ASSIGNMENT_INFEASIBLE", `${c.name} (${form}): ${e.message}`);
          return true;
        },
      );
    }
  }
});

// ---------------------------------------------------------------------------------------------
// invalid and empty input

function namesRowAndColumn(message: string, row: number, col: number): boolean {
  return (
    (new RegExp(`row\\D{0,3}${row}\\b`, "i").test(message) && new RegExp(`col(umn)?\\D{0,3}${col}\\b`, "i").test(message)) ||
    new RegExp(`\\[\\s*${row}\\s*\\]\\s*\\[\\s*${col}\\s*\\]`).test(message) ||
    new RegExp(`\\(\\s*${row}\\s*,\\s*${col}\\s*\\)`).test(message)
  );
}

async function expectCostInvalid(label: string, cost: CostInput, maximize: boolean, at?: [number, number]): Promise<void> {
  await assert.rejects(
    async () => linearSumAssignment(cost, { maximize }),
    (e: unknown) => {
      assert.ok(e instanceof WeightsoupError, `${label}: ${String(e)}`);
      assert.equal(e.code, "E_COST_INVALID", `${label}: ${e.message}`);
      if (at) assert.ok(namesRowAndColumn(e.message, at[0], at[1]), `${label}: message does not name row ${at[0]}, column ${at[1]}: ${e.message}`);
      return true;
    },
  );
}

test("NaN entries throw E_COST_INVALID naming the first NaN's row and column", async () => {
  // 4x7 with NaN at (2, 5) and a later one at (3, 0): the first in row-major order is (2, 5).
  const cost = matrix(4, 7, (i, j) => i * 7 + j);
  cost[2]![5] = NaN;
  cost[3]![0] = NaN;
  for (const form of FORMS) {
    for (const maximize of [false, true]) await expectCostInvalid(`4x7 ${form} max=${maximize}`, toInput(cost, form), maximize, [2, 5]);
  }
  // Tall (solved transposed internally) still reports the original row and column.
  const tall = matrix(6, 3, () => 1);
  tall[4]![1] = NaN;
  for (const form of FORMS) await expectCostInvalid(`6x3 ${form}`, toInput(tall, form), false, [4, 1]);
  // NaN wins over infeasibility.
  await expectCostInvalid("NaN in infeasible matrix", [[INF, INF], [NaN, 1]], false, [1, 0]);
  await expectCostInvalid("1x1 NaN", [[NaN]], true, [0, 0]);
});

test("ragged rows throw E_COST_INVALID", async () => {
  await expectCostInvalid("short second row", [[1, 2, 3], [4, 5]], false);
  await expectCostInvalid("long second row", [[1, 2], [3, 4, 5]], false);
  await expectCostInvalid("empty second row", [[1], []], false);
  await expectCostInvalid("typed rows", [new Float64Array(3), new Float64Array(2), new Float64Array(3)], true);
});

test("empty matrices return empty results with total 0", async () => {
  const empties: Array<[string, CostInput]> = [
    ["[]", []],
    ["3 empty rows", [[], [], []]],
    ["dense 0x4", { rows: 0, cols: 4, data: new Float64Array(0) }],
    ["dense 3x0", { rows: 3, cols: 0, data: new Float32Array(0) }],
    ["dense 0x0", { rows: 0, cols: 0, data: new Float64Array(0) }],
  ];
  for (const [name, cost] of empties) {
    for (const maximize of [false, true]) {
      const res = await linearSumAssignment(cost, { maximize });
      assert.ok(res.rowIndices instanceof Int32Array && res.columnIndices instanceof Int32Array, name);
      assert.equal(res.rowIndices.length, 0, name);
      assert.equal(res.columnIndices.length, 0, name);
      assert.equal(res.total, 0, name);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// determinism

test("the same input gives the same assignment (ties everywhere, calls interleaved)", async () => {
  const rnd = prng(7);
  const inputs: Array<[string, number[][], boolean]> = [
    ["64x64 zeros", matrix(64, 64, () => 0), false],
    ["100x80 binary", matrix(100, 80, () => (rnd() < 0.5 ? 0 : 1)), false],
    ["80x100 int0to2 max", matrix(80, 100, () => Math.floor(rnd() * 3)), true],
    ["8x8 all 3", matrix(8, 8, () => 3), true],
  ];
  const first: Solved[] = [];
  for (const [, c, mx] of inputs) first.push(await linearSumAssignment(c, { maximize: mx }));
  for (let round = 0; round < 2; round++) {
    for (let t = inputs.length - 1; t >= 0; t--) {
      const [name, c, mx] = inputs[t]!;
      const again = await linearSumAssignment(c, { maximize: mx });
      assert.deepEqual(Array.from(again.rowIndices), Array.from(first[t]!.rowIndices), `${name}: rowIndices`);
      assert.deepEqual(Array.from(again.columnIndices), Array.from(first[t]!.columnIndices), `${name}: columnIndices`);
      assert.equal(again.total, first[t]!.total, name);
    }
  }
  // The zero matrix's total is 0 and the all-3 8x8's is 24, whatever the tie-break.
  assert.equal(first[0]!.total, 0);
  assert.equal(first[3]!.total, 24);
});

// ---------------------------------------------------------------------------------------------
// versus the reference Hungarian up to n = 512

interface BigCase {
  name: string;
  cost: number[][];
  maximize: boolean;
  form: Form;
  /** For planted re-basin problems: the expected column of each row. */
  planted?: number[];
}

let bigCache: BigCase[] | null = null;
function bigCases(): BigCase[] {
  return (bigCache ??= makeBigCases());
}

function makeBigCases(): BigCase[] {
  const out: BigCase[] = [];
  const rnd = prng(99);
  for (const n of [16, 64, 128, 256, 512]) {
    out.push({ name: `uniform ${n}`, cost: matrix(n, n, () => rnd()), maximize: false, form: n === 128 ? "dense64" : "rows" });
    out.push({ name: `int0to9 ${n}`, cost: matrix(n, n, () => Math.floor(rnd() * 10)), maximize: false, form: n === 256 ? "typedRows" : "rows" });
    out.push({ name: `intNeg3to3 max ${n}`, cost: matrix(n, n, () => Math.floor(rnd() * 7) - 3), maximize: true, form: n === 64 ? "dense32" : "rows" });
    const { S, perm } = rebasinLike(n, n, 64, 0.01, rnd, false);
    out.push({ name: `rebasin ${n}`, cost: S, maximize: true, form: "rows", planted: perm });
  }
  out.push({ name: "uniform 300x512", cost: matrix(300, 512, () => rnd()), maximize: false, form: "rows" });
  out.push({ name: "uniform 512x300", cost: matrix(512, 300, () => rnd()), maximize: false, form: "dense64" });
  out.push({ name: "int0to4 max 300x512", cost: matrix(300, 512, () => Math.floor(rnd() * 5)), maximize: true, form: "typedRows" });
  out.push({ name: "gaussian max 512x300", cost: matrix(512, 300, () => gaussian(rnd)), maximize: true, form: "rows" });
  {
    const { S } = rebasinLike(300, 512, 64, 0.01, rnd, false);
    out.push({ name: "rebasin 300x512", cost: S, maximize: true, form: "rows" });
    const { S: S2 } = rebasinLike(300, 512, 64, 0.01, rnd, false);
    out.push({ name: "rebasin 512x300 (transposed)", cost: matrix(512, 300, (i, j) => S2[j]![i]!), maximize: true, form: "dense64" });
  }
  // float32 dense input
  out.push({ name: "f32 uniform 512", cost: matrix(512, 512, () => Math.fround(rnd())), maximize: false, form: "dense32" });
  {
    const { S, perm } = rebasinLike(512, 512, 64, 0.01, rnd, true);
    out.push({ name: "f32 rebasin 512", cost: S, maximize: true, form: "dense32", planted: perm });
  }
  out.push({ name: "f32 gaussian 300x512", cost: matrix(300, 512, () => Math.fround(gaussian(rnd))), maximize: false, form: "dense32" });
  out.push({ name: "f32 gaussian max 512x300", cost: matrix(512, 300, () => Math.fround(gaussian(rnd))), maximize: true, form: "dense32" });
  // forbidden pairs at scale (feasible with overwhelming probability; the reference decides)
  out.push({ name: "half forbidden 256", cost: matrix(256, 256, () => (rnd() < 0.5 ? INF : rnd())), maximize: false, form: "rows" });
  out.push({ name: "90% forbidden max 200x256", cost: matrix(200, 256, () => (rnd() < 0.9 ? -INF : rnd())), maximize: true, form: "dense64" });
  // a structured hard case: c_ij = i*j pairs i with n-1-i (rearrangement inequality)
  out.push({ name: "i*j 128", cost: matrix(128, 128, (i, j) => i * j), maximize: false, form: "rows" });
  // big common offset: differences between assignments are far below the magnitude of the costs
  out.push({ name: "offset 1e6 256", cost: matrix(256, 256, () => 1e6 + rnd()), maximize: false, form: "rows" });
  return out;
}

test("reference Hungarian carries an optimal dual certificate on the big cases", () => {
  const failures: string[] = [];
  const cases = bigCases();
  for (const c of cases) {
    const bad = certifyReference(c.cost, c.maximize);
    if (bad) failures.push(`${c.name}: ${bad}`);
  }
  report(failures, cases.length);
});

test("solver total equals the reference Hungarian up to n = 512, and recovers planted permutations", async () => {
  const failures: string[] = [];
  const cases = bigCases();
  for (const c of cases) {
    const ref = referenceAssignment(c.cost, c.maximize);
    const { failure, result } = await check(c.name, c.cost, c.maximize, c.form, ref);
    if (failure || !result) {
      failures.push(failure ?? `${c.name}: no result`);
      continue;
    }
    const res = result;
    if (c.planted) {
      const wrong = c.planted.filter((col, i) => res.columnIndices[i] !== col).length;
      if (wrong) failures.push(`${c.name}: ${wrong} rows differ from the planted permutation`);
      const refWrong = c.planted.filter((col, i) => (ref as RefAssignment).columnIndices[i] !== col).length;
      if (refWrong) failures.push(`${c.name}: the reference misses the planted permutation on ${refWrong} rows`);
    }
    if (c.name === "i*j 128") {
      let expected = 0;
      for (let i = 0; i < 128; i++) expected += i * (127 - i);
      if (res.total !== expected) failures.push(`${c.name}: total ${res.total}, expected ${expected}`);
    }
    if (c.name.startsWith("offset")) {
      // The offset cancels between complete assignments: compare the residual sums exactly-ish.
      const residual = (rows: ArrayLike<number>, cols: ArrayLike<number>) => {
        let s = 0;
        for (let t = 0; t < rows.length; t++) s += c.cost[rows[t]!]![cols[t]!]! - 1e6;
        return s;
      };
      const r = ref as RefAssignment;
      const got = residual(res.rowIndices, res.columnIndices);
      const want = residual(r.rowIndices, r.columnIndices);
      if (got > want + 1e-9) failures.push(`${c.name}: residual ${got} above the reference's ${want}`);
    }
  }
  report(failures, cases.length);
});

test("a large infeasible problem throws E_ASSIGNMENT_INFEASIBLE", async () => {
  const rnd = prng(5);
  // 200x200: rows 0..2 may only use columns 0..1.
  const a = matrix(200, 200, (i, j) => (i < 3 && j >= 2 ? INF : rnd()));
  // 512x300 maximize: column 7 is forbidden for every row, yet all 300 columns must be used.
  const b = matrix(512, 300, (_, j) => (j === 7 ? -INF : rnd()));
  for (const [name, cost, maximize] of [["hall 200", a, false], ["dead column 512x300", b, true]] as const) {
    assert.equal(referenceAssignment(cost, maximize), "infeasible", `${name}: reference`);
    const f = await compare(name, cost, maximize, "rows", "infeasible");
    assert.equal(f, null);
  }
});
