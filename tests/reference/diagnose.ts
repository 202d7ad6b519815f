// Independent scalar reference of `weightsoup diagnose`, written from README "Diagnostics": plain loops
// over whole tensors in float64 (no tiles, no chunks, nothing from src/). The trimming and dropping are
// the test reference's own (tests/reference/merge.ts, methods.ts, rng.ts: written from
// tests/reference/SPEC.md section 5 and the counter-based generator of its section 6), so every
// task-vector method is covered: task_arithmetic; ties (magnitude top-k); dare_linear, dare_ties (random
// drop, rescale); breadcrumbs, breadcrumbs_ties (both tails of the magnitude ranking); della,
// della_linear (magnitude-ranked keep probabilities per row, seeded drops, rescale); sce (select_topk 1:
// raw task vectors, a sum vote on the unweighted τ) and ram (raw task vectors). The elected sign is
// SPEC's step 3 with the vote variants.

import { dareKeepMask, magnitudeKeepMask } from "./merge";
import { breadcrumbsKeepMask, dellaKeepMask } from "./methods";

const fr = Math.fround;

export interface RefTask {
  model: string;
  values: Float32Array;
  weight: number;
  /** Default 1 (nothing trimmed). */
  density?: number;
  /** breadcrumbs*: the share of largest |τ| dropped (default 0.01). */
  gamma?: number;
  /** della*: half the spread of the keep probabilities (default 0.15). */
  epsilon?: number;
}

export interface RefTensorInput {
  name: string;
  /** della ranks within rows (SPEC "Rows"). */
  shape: readonly number[];
  base: Float32Array;
  tasks: RefTask[];
}

export const REF_DIAGNOSE_METHODS = [
  "task_arithmetic", "ties", "dare_linear", "dare_ties", "breadcrumbs", "breadcrumbs_ties", "della", "della_linear", "sce", "ram",
] as const;
export type RefMethod = (typeof REF_DIAGNOSE_METHODS)[number];

type Sparsifier = "none" | "magnitude" | "random" | "breadcrumbs" | "della";

/** SPEC section 5's table: which sparsifier, whether a sign is elected, whether kept values are rescaled by default. */
const METHODS: Record<RefMethod, { sparsifier: Sparsifier; consensus: boolean; rescale: boolean; unweightedVote?: boolean }> = {
  task_arithmetic: { sparsifier: "none", consensus: false, rescale: false },
  ties: { sparsifier: "magnitude", consensus: true, rescale: false },
  dare_linear: { sparsifier: "random", consensus: false, rescale: true },
  dare_ties: { sparsifier: "random", consensus: true, rescale: true },
  breadcrumbs: { sparsifier: "breadcrumbs", consensus: false, rescale: false },
  breadcrumbs_ties: { sparsifier: "breadcrumbs", consensus: true, rescale: false },
  della: { sparsifier: "della", consensus: true, rescale: true },
  della_linear: { sparsifier: "della", consensus: false, rescale: true },
  // README: "m_i = τ_i when the method does not sparsify"; diagnose measures sce (select_topk 1 only)
  // and ram on their raw task vectors; sce's sign mask is a sum consensus on the unweighted τ.
  sce: { sparsifier: "none", consensus: true, rescale: false, unweightedVote: true },
  ram: { sparsifier: "none", consensus: false, rescale: false },
};

export function electsSign(method: RefMethod): boolean {
  return METHODS[method].consensus;
}

/** The recipe's global settings that change what diagnose measures. */
export interface RefOptions {
  seed?: number;
  /** Overrides the method's default. */
  rescale?: boolean;
  consensusMethod?: "sum" | "count";
  voteWeighted?: boolean;
}

/** Raw sums of one tensor (or of several, added). */
export interface RefSums {
  baseSq: number;
  sq: Map<string, number>;
  l1: Map<string, number>;
  kept: Map<string, number>;
  discarded: Map<string, number>;
  dot: Map<string, number>;
  eligible: number;
  conflicts: number;
  eligibleMass: number;
  conflictMass: number;
  /** Some task vector of these tensors was trimmed or dropped (a density below 1). */
  sparsified: boolean;
}

const pairKey = (a: string, b: string) => `${a}|${b}`;
const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);

function emptySums(): RefSums {
  return {
    baseSq: 0, sq: new Map(), l1: new Map(), kept: new Map(), discarded: new Map(), dot: new Map(),
    eligible: 0, conflicts: 0, eligibleMass: 0, conflictMass: 0, sparsified: false,
  };
}

/** Task i's keep mask (density < 1), SPEC section 5's sparsifier of the method. */
function keepMask(method: RefMethod, t: RefTensorInput, tau: Float32Array, i: number, seed: number): Uint8Array {
  const task = t.tasks[i]!;
  const n = tau.length;
  const d = task.density ?? 1;
  switch (METHODS[method].sparsifier) {
    case "magnitude":
      return magnitudeKeepMask(tau, Math.floor(d * n));
    case "random":
      return dareKeepMask(n, d, seed, t.name, i);
    case "breadcrumbs":
      return breadcrumbsKeepMask(tau, d, task.gamma ?? 0.01);
    case "della":
      return d <= 0 ? new Uint8Array(n) : dellaKeepMask(tau, t.shape, d, task.epsilon ?? 0.15, seed, t.name, i);
    case "none":
      return new Uint8Array(n).fill(1);
  }
}

/** r = fround(‖τ‖₁ / ‖m‖₁) (float64 sums), 1 when either is below 1e-7, NaN when ‖τ‖₁ is not finite (SPEC step 1). */
function rescaleOf(tau: Float32Array, m: Float32Array): number {
  let a = 0, b = 0;
  for (let j = 0; j < tau.length; j++) {
    a += Math.abs(tau[j]!);
    b += Math.abs(m[j]!);
  }
  return !Number.isFinite(a) ? NaN : a >= 1e-7 && b >= 1e-7 ? fr(a / b) : 1;
}

export function refTensorSums(t: RefTensorInput, method: RefMethod, options: RefOptions = {}): RefSums {
  const seed = options.seed ?? 0;
  const spec = METHODS[method];
  const n = t.base.length;
  const s = emptySums();
  const taus = t.tasks.map((task) => Float32Array.from(task.values, (x, j) => fr(x - t.base[j]!)));
  const trimmed = t.tasks.map((task) => spec.sparsifier !== "none" && (task.density ?? 1) < 1);
  s.sparsified = trimmed.some((x) => x);
  // m_i: τ_i after trimming, before rescale and weight.
  const kept = taus.map((tau, i) => {
    if (!trimmed[i]) return tau.slice();
    const keep = keepMask(method, t, tau, i, seed);
    return Float32Array.from(tau, (v, j) => (keep[j] ? v : 0));
  });
  // The values the merge votes with: q_i = fround(m_i·r_i) (rescale only where trimmed), p_i = fround(q_i·w_i).
  const rescale = options.rescale ?? spec.rescale;
  const qs = kept.map((m, i) => {
    const r = rescale && trimmed[i] ? rescaleOf(taus[i]!, m) : 1;
    return Float32Array.from(m, (v) => fr(v * r));
  });
  const ps = qs.map((q, i) => {
    const w = fr(t.tasks[i]!.weight);
    return Float32Array.from(q, (v) => fr(v * w));
  });
  const votes = options.voteWeighted === false || spec.unweightedVote ? qs : ps;

  for (const task of t.tasks) for (const m of [s.sq, s.l1, s.kept, s.discarded]) m.set(task.model, 0);
  for (let j = 0; j < n; j++) s.baseSq += t.base[j]! * t.base[j]!;
  t.tasks.forEach((task, i) => {
    for (let j = 0; j < n; j++) {
      add(s.sq, task.model, taus[i]![j]! * taus[i]![j]!);
      add(s.l1, task.model, Math.abs(taus[i]![j]!));
      add(s.kept, task.model, Math.abs(kept[i]![j]!));
    }
    for (let k = i + 1; k < t.tasks.length; k++) {
      let dot = 0;
      for (let j = 0; j < n; j++) dot += taus[i]![j]! * taus[k]![j]!;
      add(s.dot, pairKey(task.model, t.tasks[k]!.model), dot);
    }
  });
  for (let j = 0; j < n; j++) {
    const ms = kept.map((m) => m[j]!);
    const nonzero = ms.filter((m) => m !== 0);
    if (nonzero.length >= 2) {
      const mass = nonzero.reduce((a, m) => a + Math.abs(m), 0);
      s.eligible++;
      s.eligibleMass += mass;
      if (nonzero.some((m) => m > 0) && nonzero.some((m) => m < 0)) {
        s.conflicts++;
        s.conflictMass += mass;
      }
    }
    if (spec.consensus) {
      // Elected sign: the sequential float32 sum of the votes, or the count of their signs; 0 counts as positive.
      const v = votes.map((x) => x[j]!);
      let positive: boolean;
      if (options.consensusMethod === "count") {
        positive = v.reduce((c, x) => c + (x > 0 ? 1 : x < 0 ? -1 : 0), 0) >= 0;
      } else {
        let sum = v[0]!;
        for (let i = 1; i < v.length; i++) sum = fr(sum + v[i]!);
        positive = sum >= 0;
      }
      v.forEach((x, i) => {
        const agrees = positive ? x > 0 : x < 0;
        if (ms[i] !== 0 && !agrees) add(s.discarded, t.tasks[i]!.model, Math.abs(ms[i]!));
      });
    }
  }
  return s;
}

export function addSums(all: RefSums[]): RefSums {
  const s = emptySums();
  for (const x of all) {
    s.baseSq += x.baseSq; s.eligible += x.eligible; s.conflicts += x.conflicts; s.eligibleMass += x.eligibleMass; s.conflictMass += x.conflictMass;
    s.sparsified ||= x.sparsified;
    for (const key of ["sq", "l1", "kept", "discarded", "dot"] as const) for (const [k, v] of x[key]) add(s[key], k, v);
  }
  return s;
}

/** The README's statistics from sums. */
export function refStatistics(s: RefSums, method: RefMethod) {
  const models = [...s.sq.keys()];
  const norm = (m: string) => Math.sqrt(s.sq.get(m)!);
  const baseNorm = Math.sqrt(s.baseSq);
  return {
    baseNorm,
    tasks: models.map((model) => ({
      model,
      norm: norm(model),
      baseRatio: baseNorm > 0 ? norm(model) / baseNorm : null,
      trimmed: !s.sparsified || s.l1.get(model)! === 0 ? null : 1 - s.kept.get(model)! / s.l1.get(model)!,
      discarded: electsSign(method) && s.kept.get(model)! > 0 ? s.discarded.get(model)! / s.kept.get(model)! : null,
    })),
    pairs: [...s.dot].map(([key, dot]) => {
      const [a, b] = key.split("|") as [string, string];
      return { a, b, cosine: norm(a) * norm(b) > 0 ? dot / (norm(a) * norm(b)) : null };
    }),
    conflict: {
      eligible: s.eligible,
      coordinates: s.eligible > 0 ? s.conflicts / s.eligible : null,
      mass: s.eligibleMass > 0 ? s.conflictMass / s.eligibleMass : null,
    },
  };
}
