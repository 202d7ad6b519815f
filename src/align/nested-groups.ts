/**
 * @file Groups that live inside one unit of another group, and solving such a group jointly with them.
 *
 * GPT-2's heads carry their own within-head permutations (Q/K dims, V/O dims), chosen per head. Solved
 * one group at a time, coordinate descent deadlocks there: with the within-head dims scrambled, two
 * heads' weights look unrelated whatever the head pairing, so the head group gets no signal; and
 * within-head dims matched against the wrong head fit noise. From identity starts this sticks at head
 * cosines of 0.1-0.4 on most seeds. (Llama escapes because Q/K dims never move under RoPE, so q_proj
 * and k_proj alone show which heads pair up.)
 *
 * The fix is block coordinate descent: a group is solved together with the groups nested in its units.
 * For every pairing of reference position i with model unit j, the nested groups of j are matched
 * against position i (their best response, starting from their current permutations), and the pair
 * scores its resulting inner product; the group's assignment is then solved on those scores and each
 * chosen pair keeps its nested permutations. The objective still never decreases: the current pairing
 * scores at least its current value.
 */
import type { GroupResponse, SimilarityEngine } from "./engine";
import { groupBlocks } from "./group-similarity";
import { resolveGroup, type CheckedSpec, type GroupUse, type Permutations } from "./spec";

/** Nested groups of one group: per unit, the groups acting only inside it, and whether they interact. */
export interface NestedGroups {
  units: string[][];
  /** Some two of one unit's nested groups act on overlapping blocks (each one's best response moves with the other's). */
  coupled: boolean;
}

/** Rounds of best responses among coupled nested groups, for one pairing. */
const MAX_ROUNDS = 4;

/**
 * For each group that has any, the groups nested in its units: D is nested in unit j of G when every
 * place D acts lies inside unit j of G (G at an outer level of the same axis, at source index j).
 */
export function nestedGroups(checked: CheckedSpec): Map<string, NestedGroups> {
  const out = new Map<string, NestedGroups>();
  for (const [inner, uses] of checked.uses) {
    let owners: Set<string> | undefined;
    for (const use of uses) {
      const levels = checked.tensors.get(use.tensor)!.axes[use.axis]!;
      const here = new Set<string>();
      for (let l = 0; l < use.level; l++) {
        const outer = resolveGroup(levels[l]!.group, use.outer.slice(0, l));
        if (outer !== null && outer !== inner) here.add(`${outer}\u0000${use.outer[l]}`);
      }
      owners = owners === undefined ? here : new Set([...owners].filter((o) => here.has(o)));
    }
    for (const owner of owners ?? []) {
      const [group, unit] = owner.split("\u0000") as [string, string];
      const entry = out.get(group) ?? out.set(group, { units: Array.from({ length: checked.sizes.get(group)! }, () => []), coupled: false }).get(group)!;
      entry.units[Number(unit)]!.push(inner);
    }
  }
  for (const entry of out.values()) entry.coupled = entry.units.some((unit) => unit.some((d, x) => unit.some((e, y) => y > x && overlaps(checked, d, e))));
  return out;
}

/** Whether two groups act on a common tensor where one's blocks can contain the other's. */
function overlaps(checked: CheckedSpec, d: string, e: string): boolean {
  const contains = (outer: GroupUse, inner: GroupUse) => outer.level < inner.level && outer.outer.every((s, l) => inner.outer[l] === s);
  return checked.uses.get(d)!.some((u) => checked.uses.get(e)!.some((v) =>
    u.tensor === v.tensor && (u.axis !== v.axis || contains(u, v) || contains(v, u))));
}

export interface GroupSolution {
  /** The group's objective (Σ over its positions of <A, aligned B>) before and after. */
  before: number;
  after: number;
  /** New permutations of the group and of any nested groups. */
  perms: Permutations;
}

/** `perm` with unit `unit` moved to position `position` (swapped with whatever was there). */
function placing(perm: Int32Array, unit: number, position: number): Int32Array {
  const out = perm.slice(), from = out.indexOf(unit);
  out[from] = out[position]!;
  out[position] = unit;
  return out;
}

/** Best response of `group` to `perms`: its new permutation and the old and new assignment totals. */
function bestResponse(checked: CheckedSpec, group: string, engine: SimilarityEngine, perms: Permutations): Promise<GroupResponse> {
  return engine.bestResponse(checked.sizes.get(group)!, groupBlocks(checked, group, perms, group), perms.get(group)!);
}

/** Whether `after` beats `before` by more than rounding: the sums are of f32 products. */
export const improves = (before: number, after: number) => after > before + 1e-9 * Math.abs(before);

/** One group solved on its own (nothing nested in it). */
export async function solveGroup(checked: CheckedSpec, group: string, engine: SimilarityEngine, perms: Permutations): Promise<GroupSolution> {
  const { perm, before, after } = await bestResponse(checked, group, engine, perms);
  return { before, after, perms: new Map([[group, perm]]) };
}

/** `group` solved jointly with the groups nested in its units (see the file comment). */
export async function solveWithNested(checked: CheckedSpec, group: string, nested: NestedGroups, engine: SimilarityEngine, perms: Permutations): Promise<GroupSolution> {
  const n = checked.sizes.get(group)!, current = perms.get(group)!;
  // Pair (i, j) as things stand; a best response changes the objective by exactly its own gain (it
  // only touches its own blocks), so a pair's score is this plus the gains of its nested groups.
  const scores = Float64Array.from(await engine.similarity(n, groupBlocks(checked, group, perms, group)));
  let before = 0;
  for (let i = 0; i < n; i++) before += scores[i * n + current[i]!]!;
  const chosen: Permutations[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const trial = new Map(perms).set(group, placing(current, j, i));
      const inner = nested.units[j]!;
      for (let round = 0; round < (nested.coupled ? MAX_ROUNDS : 1); round++) {
        let changed = false;
        for (const d of inner) {
          const response = await bestResponse(checked, d, engine, trial);
          // Only a real gain replaces the current permutation, so ties cannot cycle.
          if (!improves(response.before, response.after)) continue;
          trial.set(d, response.perm);
          scores[i * n + j] += response.after - response.before;
          changed = true;
        }
        if (!changed) break;
      }
      chosen[i * n + j] = new Map(inner.map((d) => [d, trial.get(d)!]));
    }
  }
  const columnIndices = await engine.assign(n, scores);
  let after = 0;
  const out: Permutations = new Map([[group, columnIndices]]);
  for (let i = 0; i < n; i++) {
    after += scores[i * n + columnIndices[i]!]!;
    for (const [d, perm] of chosen[i * n + columnIndices[i]!]!) out.set(d, perm);
  }
  return { before, after, perms: out };
}
