/**
 * @file From float64 sums to the reported statistics, per tensor, per layer and over the whole model
 * (README "Diagnostics" defines each one). A layer's or the model's statistics are those of the
 * concatenation of its tensors: their sums are added (in plan order) before any ratio is taken.
 */
import { tensorRole } from "../model/roles";
import {
  BASE_SQUARES, CONFLICT_MASS, CONFLICTS, DISCARDED_L1, ELIGIBLE, ELIGIBLE_MASS, KEPT_L1, pairField, TAU_L1, TAU_SQUARES, taskField,
} from "./layout";
import type { TensorSums } from "./run";

export interface TaskStats {
  model: string;
  /** ‖τ‖₂. */
  norm: number;
  /** ‖τ‖₂ / ‖b‖₂ (null when the base is all zeros). */
  baseRatio: number | null;
  /** Fraction of ‖τ‖₁ that trimming/dropping removes (null when the method does not sparsify). */
  trimmed: number | null;
  /** Fraction of the kept ‖m‖₁ whose sign loses the election (null without sign election). */
  discarded: number | null;
}

export interface PairStats {
  a: string;
  b: string;
  /** ⟨τa, τb⟩ / (‖τa‖ ‖τb‖) (null when either is zero). */
  cosine: number | null;
}

export interface ConflictStats {
  /** Coordinates where at least two kept task values are non-zero. */
  eligible: number;
  /** Fraction of those with opposite signs among them (null when there are none). */
  coordinates: number | null;
  /** Fraction of their kept mass Σᵢ|mᵢ| that sits on conflicting coordinates (null when there is none). */
  mass: number | null;
  /** Σᵢ|mᵢ| over the eligible coordinates, and over the conflicting ones (the fraction's parts). */
  eligibleMass: number;
  conflictMass: number;
}

export interface GroupStats {
  /** ‖b‖₂. */
  baseNorm: number;
  tasks: TaskStats[];
  pairs: PairStats[];
  conflict: ConflictStats;
}

export interface TensorDiagnosis extends GroupStats {
  name: string;
  /** Decoder layer index, null for tensors outside the layers. */
  layer: number | null;
  /** The name within a layer ("self_attn.q_proj.weight"), or the whole name outside the layers. */
  kind: string;
  numel: number;
}

export interface LayerDiagnosis extends GroupStats {
  layer: number;
  tensors: number;
}

interface TaskSums { squares: number; l1: number; kept: number; discarded: number }

/** Sums of a set of tensors, keyed by model name in first-seen order. */
export class GroupSums {
  baseSquares = 0;
  eligible = 0;
  conflicts = 0;
  eligibleMass = 0;
  conflictMass = 0;
  sparsified = false;
  elected = false;
  readonly tasks = new Map<string, TaskSums>();
  readonly pairs = new Map<string, { a: string; b: string; dot: number }>();

  add(t: TensorSums): void {
    const s = t.sums;
    const tasks = t.models.slice(1);
    this.baseSquares += s[BASE_SQUARES]!;
    this.eligible += s[ELIGIBLE]!;
    this.conflicts += s[CONFLICTS]!;
    this.eligibleMass += s[ELIGIBLE_MASS]!;
    this.conflictMass += s[CONFLICT_MASS]!;
    this.sparsified ||= t.sparsified;
    this.elected ||= t.elected;
    tasks.forEach((model, i) => {
      const x = this.tasks.get(model) ?? { squares: 0, l1: 0, kept: 0, discarded: 0 };
      x.squares += s[taskField(i, TAU_SQUARES)]!;
      x.l1 += s[taskField(i, TAU_L1)]!;
      x.kept += s[taskField(i, KEPT_L1)]!;
      x.discarded += s[taskField(i, DISCARDED_L1)]!;
      this.tasks.set(model, x);
      for (let j = i + 1; j < tasks.length; j++) {
        const key = `${model}\u0000${tasks[j]}`;
        const p = this.pairs.get(key) ?? { a: model, b: tasks[j]!, dot: 0 };
        p.dot += s[pairField(tasks.length, i, j)]!;
        this.pairs.set(key, p);
      }
    });
  }

  stats(): GroupStats {
    const baseNorm = Math.sqrt(this.baseSquares);
    const norms = new Map([...this.tasks].map(([m, x]) => [m, Math.sqrt(x.squares)]));
    return {
      baseNorm,
      tasks: [...this.tasks].map(([model, x]) => ({
        model,
        norm: norms.get(model)!,
        baseRatio: baseNorm > 0 ? norms.get(model)! / baseNorm : null,
        trimmed: this.sparsified && x.l1 > 0 ? (x.l1 - x.kept) / x.l1 : null,
        discarded: this.elected && x.kept > 0 ? x.discarded / x.kept : null,
      })),
      pairs: [...this.pairs.values()].map(({ a, b, dot }) => {
        const d = norms.get(a)! * norms.get(b)!;
        return { a, b, cosine: d > 0 ? dot / d : null };
      }),
      conflict: {
        eligible: this.eligible,
        coordinates: this.eligible > 0 ? this.conflicts / this.eligible : null,
        mass: this.eligibleMass > 0 ? this.conflictMass / this.eligibleMass : null,
        eligibleMass: this.eligibleMass,
        conflictMass: this.conflictMass,
      },
    };
  }
}

/** Where a tensor sits: its layer and its name within the layer. */
export function tensorPlace(name: string): { layer: number | null; kind: string } {
  const role = tensorRole(name);
  if (role.layer === undefined || role.template === undefined) return { layer: null, kind: name };
  return { layer: role.layer, kind: role.template.slice(role.template.indexOf("{}") + 3) || name };
}

export function tensorDiagnoses(all: TensorSums[]): TensorDiagnosis[] {
  return all.map((t) => {
    const g = new GroupSums();
    g.add(t);
    return { name: t.tensor.name, ...tensorPlace(t.tensor.name), numel: t.tensor.numel, ...g.stats() };
  });
}

export function layerDiagnoses(all: TensorSums[]): LayerDiagnosis[] {
  const layers = new Map<number, { g: GroupSums; tensors: number }>();
  for (const t of all) {
    const { layer } = tensorPlace(t.tensor.name);
    if (layer === null) continue;
    const entry = layers.get(layer) ?? { g: new GroupSums(), tensors: 0 };
    entry.g.add(t);
    entry.tensors++;
    layers.set(layer, entry);
  }
  return [...layers].sort((a, b) => a[0] - b[0]).map(([layer, { g, tensors }]) => ({ layer, tensors, ...g.stats() }));
}

export function totalDiagnosis(all: TensorSums[]): GroupStats {
  const g = new GroupSums();
  for (const t of all) g.add(t);
  return g.stats();
}
