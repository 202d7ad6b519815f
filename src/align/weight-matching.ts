/**
 * @file Git Re-Basin weight matching (Ainsworth et al. 2023, §1.3 of our notes): find permutations of
 * model B's hidden units that maximise Σ ⟨A, π(B)⟩ over every tensor, by coordinate descent over
 * permutation groups. With the other groups fixed, one group's best permutation is a linear assignment
 * on its similarity matrix S[i][j] = Σ ⟨unit i of A, unit j of B with the other axes permuted⟩. A
 * group whose units own groups of their own (heads and their within-head dims) is solved jointly with
 * them (./nested-groups.ts).
 *
 * A permutation is an index vector `perm`; applied along an axis it gathers: new[i] = old[perm[i]].
 */
import { AlignmentError } from "../errors";
import { memoryEngine, type SimilarityEngine } from "./engine";
import { groupBlocks } from "./group-similarity";
import { improves, nestedGroups, solveGroup, solveWithNested, type NestedGroups } from "./nested-groups";
import { checkSpec, gather, identityPermutations, tensorMaps, type CheckedSpec, type PermutationSpec, type Permutations } from "./spec";

export interface Tensor {
  shape: number[];
  data: Float32Array;
}

export interface MatchingOptions {
  /** Seeds the order groups are visited in, each sweep (default 0). */
  seed?: number;
  /** Stop after this many sweeps even if still improving (default 100). */
  maxSweeps?: number;
  /** Called after each group is solved. */
  onGroup?: (event: { sweep: number; group: string; done: number; groups: number }) => void;
  signal?: AbortSignal;
}

export interface GroupSimilarity {
  /** Σ over the group's units of <unit of A, same unit of B>, before (no permutation) and after. */
  before: number;
  after: number;
  /** The same as cosines: divided by the norms of the units' weights in A and B. */
  cosineBefore: number;
  cosineAfter: number;
}

export interface MatchingResult {
  permutations: Permutations;
  sweeps: number;
  similarity: Map<string, GroupSimilarity>;
}

/** Every tensor `spec` names, checked for the same shape in both models. */
function checkModels(spec: PermutationSpec, a: ReadonlyMap<string, Tensor>, b: ReadonlyMap<string, Tensor>): CheckedSpec {
  const checked = checkSpec(spec, new Map([...a].map(([name, t]) => [name, t.shape])));
  for (const [name, { shape }] of checked.tensors) {
    const other = b.get(name);
    if (!other) throw new AlignmentError("E_TENSOR_MISSING", `the model to align has no tensor "${name}"`, { tensor: name });
    if (other.shape.join() !== shape.join()) {
      throw new AlignmentError("E_SHAPE_MISMATCH", `"${name}" is [${shape.join(", ")}] in the reference model and [${other.shape.join(", ")}] in the other`, { tensor: name });
    }
  }
  return checked;
}

/** Applies permutations to every tensor the spec names; other tensors are returned as they are. */
export function applyPermutations(spec: PermutationSpec, tensors: ReadonlyMap<string, Tensor>, perms: Permutations): Map<string, Tensor> {
  const checked = checkSpec(spec, new Map([...tensors].map(([name, t]) => [name, t.shape])));
  const out = new Map(tensors);
  for (const name of checked.tensors.keys()) {
    const t = tensors.get(name)!;
    out.set(name, { shape: t.shape, data: gather(t.data, t.shape, tensorMaps(checked, name, perms), new Float32Array(t.data.length)) });
  }
  return out;
}

/** Permutations of B's units that make B most like A. */
export async function weightMatching(spec: PermutationSpec, a: ReadonlyMap<string, Tensor>, b: ReadonlyMap<string, Tensor>, options: MatchingOptions = {}): Promise<MatchingResult> {
  return matchGroups(checkModels(spec, a, b), memoryEngine(a, b), options);
}

/**
 * Weight matching over a checked spec, with similarity matrices from `engine` (the tensors in memory,
 * or read by a pool's workers): the same engine answers give the same permutations.
 */
export async function matchGroups(checked: CheckedSpec, engine: SimilarityEngine, options: MatchingOptions = {}): Promise<MatchingResult> {
  const groups = [...checked.sizes.keys()];
  const perms = identityPermutations(checked.sizes);
  const nested = nestedGroups(checked);
  const inputs = groupInputs(checked, nested);
  const maxSweeps = options.maxSweeps ?? 100;
  let random = (options.seed ?? 0) >>> 0 || 0x9e3779b9;
  const next = () => {
    random ^= random << 13; random >>>= 0; random ^= random >>> 17; random ^= random << 5; random >>>= 0;
    return random / 4294967296;
  };
  // A group whose inputs (every permutation acting on its tensors) are as they were after its last
  // solve would get the same answer again: it is skipped. Versions count each group's changes.
  const version = new Map(groups.map((g) => [g, 0]));
  const stamp = (g: string) => inputs.get(g)!.map((d) => version.get(d)!).join();
  // Whether solving `g` sets a permutation that `h`'s solve reads.
  const sets = new Map(groups.map((g) => [g, [g, ...(nested.get(g)?.units.flat() ?? [])]]));
  const reads = (g: string, h: string) => sets.get(g)!.some((d) => inputs.get(h)!.includes(d));
  const settled = new Map<string, string>();
  let sweeps = 0;
  for (; sweeps < maxSweeps; ) {
    sweeps++;
    const order = [...groups];
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    let progress = false;
    for (let at = 0; at < order.length; ) {
      options.signal?.throwIfAborted();
      // Consecutive groups none of which reads a permutation another one sets (two layers' MLP
      // groups, say) are solved at once, each on the permutations as they stand: every one gets the
      // answer it would get in turn, and the engine's workers share them.
      const batch: string[] = [];
      for (; at < order.length && batch.length < engine.parallel; at++) {
        const g = order[at]!;
        if (batch.some((h) => reads(h, g) || reads(g, h))) break;
        batch.push(g);
      }
      const solutions = await Promise.all(batch.map((g) => {
        if (settled.get(g) === stamp(g)) return undefined;
        const inner = nested.get(g);
        return inner ? solveWithNested(checked, g, inner, engine, perms) : solveGroup(checked, g, engine, perms);
      }));
      for (const [x, g] of batch.entries()) {
        const solved = solutions[x];
        if (solved) {
          const inner = nested.get(g);
          if (improves(solved.before, solved.after)) progress = true;
          let changed = false;
          for (const [group, perm] of solved.perms) {
            if (perm.every((p, i) => p === perms.get(group)![i])) continue;
            perms.set(group, perm);
            version.set(group, version.get(group)! + 1);
            changed = true;
          }
          // A joint solve starts from its nested groups' permutations, so only one that changed
          // nothing is sure to repeat itself; a plain group's answer never depends on its own.
          if (!inner || !changed) settled.set(g, stamp(g));
        }
        options.onGroup?.({ sweep: sweeps, group: g, done: at - batch.length + x + 1, groups: groups.length });
      }
    }
    if (!progress) break;
  }
  const identity = identityPermutations(checked.sizes);
  const sums = await Promise.all(groups.map((g) => Promise.all([engine.diagonal(groupBlocks(checked, g, identity)), engine.diagonal(groupBlocks(checked, g, perms))])));
  const similarity = new Map(groups.map((g, x) => {
    const [was, now] = sums[x]!;
    // Each with its own norms: a group inside a head is compared with whichever head of B lands there.
    const cosine = (s: typeof was) => s.dot / (Math.sqrt(s.normA * s.normB) || 1);
    return [g, { before: was.dot, after: now.dot, cosineBefore: cosine(was), cosineAfter: cosine(now) }];
  }));
  return { permutations: perms, sweeps, similarity };
}

/** Per group, every group whose permutation its solve reads: those acting on its tensors or its nested groups'. */
function groupInputs(checked: CheckedSpec, nested: ReadonlyMap<string, NestedGroups>): Map<string, string[]> {
  const onTensor = new Map<string, Set<string>>();
  for (const [group, uses] of checked.uses) for (const use of uses) (onTensor.get(use.tensor) ?? onTensor.set(use.tensor, new Set()).get(use.tensor)!).add(group);
  return new Map([...checked.uses.keys()].map((g) => {
    const solved = [g, ...(nested.get(g)?.units.flat() ?? [])];
    const out = new Set<string>();
    for (const s of solved) for (const use of checked.uses.get(s)!) for (const d of onTensor.get(use.tensor)!) out.add(d);
    return [g, [...out].sort()];
  }));
}
