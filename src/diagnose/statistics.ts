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
  /** ⟨τa, τb⟩ / (‖τa‖ ‖τb‖) over the tensors both models are in (null when either is zero there). */
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
  /**
   * Models (the base too) with NaN or infinite values (of τ, or of the base's values) in these tensors:
   * the figures computed from them are NaN (null in JSON), not zero.
   */
  nonFinite: string[];
  tasks: TaskStats[];
  pairs: PairStats[];
  conflict: ConflictStats;
}

export interface TensorDiagnosis extends GroupStats {
  name: string;
  /** Layer index within its stack, null for tensors outside the layers. */
  layer: number | null;
  /** The layer stack: the name before the layer index ("model.layers", "vision_model.encoder.layers"), null outside the layers. */
  stack: string | null;
  /** The name within a layer ("self_attn.q_proj.weight"), or the whole name outside the layers. */
  kind: string;
  numel: number;
}

/** One layer of one stack: a vision tower's layer 3 is not the decoder's. */
export interface LayerDiagnosis extends GroupStats {
  stack: string;
  layer: number;
  tensors: number;
}

interface TaskSums { squares: number; l1: number; kept: number; discarded: number }

/**
 * Sums of a set of tensors by model. A pair is one entry whatever order a tensor lists its models in
 * (a slices recipe may list them differently in each slice): named and listed in `order` (the task
 * models in the order the recipe names them), its cosine taken over the tensors both models are in, so
 * a model missing from some slices does not bring the other's norm there into it.
 */
export class GroupSums {
  baseSquares = 0;
  eligible = 0;
  conflicts = 0;
  eligibleMass = 0;
  conflictMass = 0;
  sparsified = false;
  elected = false;
  readonly tasks = new Map<string, TaskSums>();
  readonly pairs = new Map<string, { a: string; b: string; dot: number; squaresA: number; squaresB: number }>();
  readonly nonFinite = new Set<string>();
  private readonly rank: (model: string) => number;

  constructor(order: readonly string[]) {
    const ranks = new Map(order.map((m, i) => [m, i]));
    // A model the order lacks goes last, in name order: still one canonical order.
    this.rank = (m) => ranks.get(m) ?? order.length;
  }

  private before(x: string, y: string): boolean {
    return this.rank(x) - this.rank(y) < 0 || (this.rank(x) === this.rank(y) && x < y);
  }

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
    // A sum of squares of float32 values cannot overflow float64: only a NaN or infinite value makes it so.
    if (!Number.isFinite(s[BASE_SQUARES]!)) this.nonFinite.add(t.models[0]!);
    tasks.forEach((model, i) => {
      if (!Number.isFinite(s[taskField(i, TAU_SQUARES)]!)) this.nonFinite.add(model);
      const x = this.tasks.get(model) ?? { squares: 0, l1: 0, kept: 0, discarded: 0 };
      x.squares += s[taskField(i, TAU_SQUARES)]!;
      x.l1 += s[taskField(i, TAU_L1)]!;
      x.kept += s[taskField(i, KEPT_L1)]!;
      x.discarded += s[taskField(i, DISCARDED_L1)]!;
      this.tasks.set(model, x);
      for (let j = i + 1; j < tasks.length; j++) {
        const [a, ia, b, ib] = this.before(model, tasks[j]!) ? [model, i, tasks[j]!, j] : [tasks[j]!, j, model, i];
        const key = `${a}\u0000${b}`;
        const p = this.pairs.get(key) ?? { a, b, dot: 0, squaresA: 0, squaresB: 0 };
        p.dot += s[pairField(tasks.length, i, j)]!;
        p.squaresA += s[taskField(ia, TAU_SQUARES)]!;
        p.squaresB += s[taskField(ib, TAU_SQUARES)]!;
        this.pairs.set(key, p);
      }
    });
  }

  stats(): GroupStats {
    const baseNorm = Math.sqrt(this.baseSquares);
    const byOrder = <T>(entries: T[], key: (e: T) => [string, string?]) => entries.sort((x, y) => {
      const [x1, x2] = key(x), [y1, y2] = key(y);
      if (x1 !== y1) return this.before(x1, y1) ? -1 : 1;
      return x2 === y2 ? 0 : this.before(x2!, y2!) ? -1 : 1;
    });
    return {
      baseNorm,
      nonFinite: [...this.nonFinite],
      tasks: byOrder([...this.tasks], ([m]) => [m]).map(([model, x]) => {
        const norm = Math.sqrt(x.squares);
        return {
          model,
          norm,
          baseRatio: baseNorm > 0 ? norm / baseNorm : null,
          trimmed: this.sparsified && x.l1 > 0 ? (x.l1 - x.kept) / x.l1 : null,
          discarded: this.elected && x.kept > 0 ? x.discarded / x.kept : null,
        };
      }),
      pairs: byOrder([...this.pairs.values()], (p) => [p.a, p.b]).map(({ a, b, dot, squaresA, squaresB }) => {
        const d = Math.sqrt(squaresA) * Math.sqrt(squaresB);
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

/** Where a tensor sits: its stack, its layer and its name within the layer. */
export function tensorPlace(name: string): { layer: number | null; stack: string | null; kind: string } {
  const role = tensorRole(name);
  if (role.layer === undefined || role.template === undefined) return { layer: null, stack: null, kind: name };
  return { layer: role.layer, stack: role.stack!, kind: role.template.slice(role.template.indexOf("{}") + 3) || name };
}

/** Task models in the order the recipe names them: the order pairs are named and listed in. */
/**
 * A warning per tensor and model whose task vector (or the base itself) has NaN or infinite values, as
 * the merge warns of the tensors they make NaN: every figure computed from them is NaN.
 */
export function nonFiniteWarnings(all: TensorSums[]): string[] {
  const warnings: string[] = [];
  for (const t of all) {
    const [base, ...tasks] = t.tensor.inputs;
    const where = (i: { tensor: { file: string; name: string } }) => `${i.tensor.file} (tensor ${i.tensor.name})`;
    if (!Number.isFinite(t.sums[BASE_SQUARES]!)) warnings.push(`${t.tensor.name}: NaN or infinite values in the base ${where(base!)}; its diagnostics are NaN (null in --json)`);
    tasks.forEach((input, i) => {
      if (Number.isFinite(t.sums[taskField(i, TAU_SQUARES)]!)) return;
      warnings.push(`${t.tensor.name}: NaN or infinite values in ${where(input)} minus the base ${where(base!)}; ${input.model}'s diagnostics there, and its layer's and the total's, are NaN (null in --json)`);
    });
  }
  return warnings;
}

export function tensorDiagnoses(all: TensorSums[], order: readonly string[]): TensorDiagnosis[] {
  return all.map((t) => {
    const g = new GroupSums(order);
    g.add(t);
    return { name: t.tensor.name, ...tensorPlace(t.tensor.name), numel: t.tensor.numel, ...g.stats() };
  });
}

/** Layers of every stack, keyed by stack and index: the decoder's first, then the others as first seen, each ascending. */
export function layerDiagnoses(all: TensorSums[], order: readonly string[], decoder: string | null): LayerDiagnosis[] {
  const layers = new Map<string, { stack: string; layer: number; g: GroupSums; tensors: number }>();
  for (const t of all) {
    const { layer, stack } = tensorPlace(t.tensor.name);
    if (layer === null || stack === null) continue;
    const key = `${stack}\u0000${layer}`;
    const entry = layers.get(key) ?? { stack, layer, g: new GroupSums(order), tensors: 0 };
    entry.g.add(t);
    entry.tensors++;
    layers.set(key, entry);
  }
  const stacks = [...new Set([...layers.values()].map((l) => l.stack))].sort((a, b) => Number(b === decoder) - Number(a === decoder));
  return [...layers.values()]
    .sort((x, y) => stacks.indexOf(x.stack) - stacks.indexOf(y.stack) || x.layer - y.layer)
    .map(({ stack, layer, g, tensors }) => ({ stack, layer, tensors, ...g.stats() }));
}

export function totalDiagnosis(all: TensorSums[], order: readonly string[]): GroupStats {
  const g = new GroupSums(order);
  for (const t of all) g.add(t);
  return g.stats();
}
