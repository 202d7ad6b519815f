// Independent scalar reference of `weightsoup diagnose`, written from README "Diagnostics": plain loops
// over whole tensors in float64 (no tiles, no chunks, nothing from src/). Trimming uses the test
// references of TIES and DARE (tests/reference/merge.ts). Supports the methods the tests use:
// task_arithmetic, ties (magnitude trim, sum vote on weight·m), dare_linear (random drop, no vote).

import { dareKeepMask, magnitudeKeepMask } from "./merge";

export interface RefTask {
  model: string;
  values: Float32Array;
  weight: number;
  density: number;
}

export interface RefTensorInput {
  name: string;
  base: Float32Array;
  tasks: RefTask[];
}

export type RefMethod = "task_arithmetic" | "ties" | "dare_linear";

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
}

const pairKey = (a: string, b: string) => `${a}|${b}`;
const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);

export function refTensorSums(t: RefTensorInput, method: RefMethod, seed = 0): RefSums {
  const n = t.base.length;
  const taus = t.tasks.map((task) => Float32Array.from(task.values, (x, j) => Math.fround(x - t.base[j]!)));
  const kept = taus.map((tau, i) => {
    const task = t.tasks[i]!;
    if (method === "task_arithmetic" || task.density >= 1) return tau.slice();
    const keep = method === "ties" ? magnitudeKeepMask(tau, Math.floor(task.density * n)) : dareKeepMask(n, task.density, seed, t.name, i);
    return Float32Array.from(tau, (v, j) => (keep[j] ? v : 0));
  });
  const s: RefSums = {
    baseSq: 0, sq: new Map(), l1: new Map(), kept: new Map(), discarded: new Map(), dot: new Map(),
    eligible: 0, conflicts: 0, eligibleMass: 0, conflictMass: 0,
  };
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
    if (method === "ties") {
      // Elected sign: the sign of Σ weight·m in float32, task order; 0 counts as positive.
      const votes = ms.map((m, i) => Math.fround(m * Math.fround(t.tasks[i]!.weight)));
      let sum = 0;
      votes.forEach((v, i) => { sum = i === 0 ? v : Math.fround(sum + v); });
      votes.forEach((v, i) => {
        const agrees = sum >= 0 ? v > 0 : v < 0;
        if (ms[i] !== 0 && !agrees) add(s.discarded, t.tasks[i]!.model, Math.abs(ms[i]!));
      });
    }
  }
  return s;
}

export function addSums(all: RefSums[]): RefSums {
  const s: RefSums = {
    baseSq: 0, sq: new Map(), l1: new Map(), kept: new Map(), discarded: new Map(), dot: new Map(),
    eligible: 0, conflicts: 0, eligibleMass: 0, conflictMass: 0,
  };
  for (const x of all) {
    s.baseSq += x.baseSq; s.eligible += x.eligible; s.conflicts += x.conflicts; s.eligibleMass += x.eligibleMass; s.conflictMass += x.conflictMass;
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
      trimmed: method === "task_arithmetic" || s.l1.get(model)! === 0 ? null : 1 - s.kept.get(model)! / s.l1.get(model)!,
      discarded: method === "ties" && s.kept.get(model)! > 0 ? s.discarded.get(model)! / s.kept.get(model)! : null,
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
