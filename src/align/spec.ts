/**
 * @file Permutation specs: which hidden-unit permutations act on which axes of which tensors.
 *
 * The reference implementation's form (a group name or null per axis) covers MLPs. Attention needs
 * structured axes: q_proj's rows are (KV group, query head in the group, dim in the head), and the
 * three parts are permuted by different groups, the inner ones chosen per outer index (each KV head
 * has its own V/O within-head permutation). So an axis may also be a list of levels, outer to inner,
 * whose sizes multiply to the axis length. A level's group is a name, null, or a table indexed by the
 * *source* indices of the outer levels (the unit of the original model that lands there), nested as
 * deep as it needs: `["vo.0", "vo.1"]` on the innermost level of o_proj's columns picks the V/O
 * permutation by KV head whatever the query head is.
 *
 * A permutation is an index vector: along an axis, new[i] = old[perm[i]]. A structured axis's
 * source index is built level by level: s_0 = P_0[d_0], s_1 = P_1(s_0)[d_1], ...
 */
import { AlignmentError } from "../errors";

export type GroupRef = string | null | readonly GroupRef[];
export interface AxisLevel {
  size: number;
  group: GroupRef;
}
export type AxisSpec = string | null | readonly AxisLevel[];
/** Tensor name → one entry per axis. Tensors the spec does not name are never permuted. */
export type PermutationSpec = Record<string, readonly AxisSpec[]>;
export type Permutations = Map<string, Int32Array>;

/** One place a group acts: a level of one axis of one tensor, under one tuple of outer source indices. */
export interface GroupUse {
  tensor: string;
  axis: number;
  level: number;
  outer: number[];
}

export interface CheckedSpec {
  spec: PermutationSpec;
  /** Every named tensor's shape and its axes as level lists (null: axis not permuted). */
  tensors: Map<string, { shape: number[]; axes: (readonly AxisLevel[] | null)[] }>;
  /** Group → number of units, groups in natural name order. */
  sizes: Map<string, number>;
  uses: Map<string, GroupUse[]>;
}

const natural = (x: string, y: string) => x.localeCompare(y, "en", { numeric: true });

/** The group a level uses under the given outer source indices. */
export function resolveGroup(ref: GroupRef, outer: readonly number[]): string | null {
  let r = ref, depth = 0;
  while (Array.isArray(r)) r = (r as readonly GroupRef[])[outer[depth++]!]!;
  return r as string | null;
}

function levelsOf(axis: AxisSpec, length: number): readonly AxisLevel[] | null {
  if (axis === null) return null;
  return typeof axis === "string" ? [{ size: length, group: axis }] : axis;
}

/**
 * Checks a spec against tensor shapes: every named tensor exists with as many axes as the spec gives;
 * level sizes multiply to the axis length; group tables have one entry per outer index; a group has
 * one size everywhere and never acts on two axes of one tensor (that would make its subproblem
 * quadratic instead of a linear assignment).
 */
export function checkSpec(spec: PermutationSpec, shapes: ReadonlyMap<string, readonly number[]>): CheckedSpec {
  const tensors: CheckedSpec["tensors"] = new Map();
  const sizes = new Map<string, number>();
  const uses = new Map<string, GroupUse[]>();
  for (const [name, axes] of Object.entries(spec)) {
    const shape = shapes.get(name);
    if (!shape) throw new AlignmentError("E_TENSOR_MISSING", `permutation spec names tensor "${name}", which the model does not have`, { tensor: name });
    if (!Array.isArray(axes) || shape.length !== axes.length) {
      throw new AlignmentError("E_SPEC", `tensor "${name}" has shape [${shape.join(", ")}] but the spec gives ${Array.isArray(axes) ? axes.length : "no list of"} axes`, { tensor: name });
    }
    const levels = axes.map((axis, a) => levelsOf(axis, shape[a]!));
    if (shape.length > 2 && levels.some((l) => l !== null)) {
      throw new AlignmentError("E_SPEC", `tensor "${name}" has ${shape.length} axes; permuted tensors have 1 or 2`, { tensor: name });
    }
    const groupAxis = new Map<string, number>();
    levels.forEach((axisLevels, a) => {
      if (!axisLevels) return;
      const where = `axis ${a} of "${name}"`;
      const product = axisLevels.reduce((p, l) => {
        if (!Number.isInteger(l?.size) || l.size < 1) throw new AlignmentError("E_SPEC", `${where}: every level needs a positive integer size`, { tensor: name });
        return p * l.size;
      }, 1);
      if (product !== shape[a]) throw new AlignmentError("E_SPEC", `${where} has length ${shape[a]} but its levels multiply to ${product}`, { tensor: name });
      // Walk every tuple of outer source indices once per level, collecting where each group acts.
      axisLevels.forEach((level, l) => {
        const outer: number[] = [];
        const visit = (ref: GroupRef, depth: number): void => {
          if (Array.isArray(ref)) {
            if (depth >= l) throw new AlignmentError("E_SPEC", `${where}: level ${l}'s group table is nested deeper than its ${l} outer levels`, { tensor: name });
            if (ref.length !== axisLevels[depth]!.size) {
              throw new AlignmentError("E_SPEC", `${where}: level ${l}'s group table has ${ref.length} entries at depth ${depth}, expected ${axisLevels[depth]!.size}`, { tensor: name });
            }
            ref.forEach((inner: GroupRef, i: number) => { outer.push(i); visit(inner, depth + 1); outer.pop(); });
            return;
          }
          if (ref !== null && typeof ref !== "string") throw new AlignmentError("E_SPEC", `${where}: a group is a name, null or a table of them`, { tensor: name });
          if (ref === null) return;
          if (groupAxis.has(ref) && groupAxis.get(ref) !== a) throw new AlignmentError("E_SPEC", `group "${ref}" acts on two axes of "${name}"`, { tensor: name });
          groupAxis.set(ref, a);
          const size = sizes.get(ref);
          if (size !== undefined && size !== level.size) {
            throw new AlignmentError("E_SPEC", `group "${ref}" has ${size} units but level ${l} of ${where} has ${level.size}`, { tensor: name });
          }
          sizes.set(ref, level.size);
          // A name reached at a shallower depth applies to every deeper outer index.
          const expand = (prefix: number[]): void => {
            if (prefix.length === l) { (uses.get(ref) ?? uses.set(ref, []).get(ref)!).push({ tensor: name, axis: a, level: l, outer: [...prefix] }); return; }
            for (let i = 0; i < axisLevels[prefix.length]!.size; i++) expand([...prefix, i]);
          };
          expand([...outer]);
        };
        visit(level.group, 0);
      });
    });
    tensors.set(name, { shape: [...shape], axes: levels });
  }
  const order = [...sizes.keys()].sort(natural);
  return { spec, tensors, sizes: new Map(order.map((g) => [g, sizes.get(g)!])), uses: new Map(order.map((g) => [g, uses.get(g)!])) };
}

/**
 * The source index of every position along an axis under the current permutations (groups equal to
 * `except` count as the identity), or null when nothing moves.
 */
export function axisSourceMap(levels: readonly AxisLevel[] | null, perms: Permutations, except?: string): Int32Array | null {
  if (!levels) return null;
  const length = levels.reduce((p, l) => p * l.size, 1);
  const strides = levels.map((_, l) => levels.slice(l + 1).reduce((p, x) => p * x.size, 1));
  const out = new Int32Array(length);
  let moved = false;
  const outer: number[] = [];
  const walk = (l: number, dest: number, source: number): void => {
    const group = resolveGroup(levels[l]!.group, outer);
    const perm = group !== null && group !== except ? perms.get(group) : undefined;
    const { size } = levels[l]!, stride = strides[l]!;
    if (l === levels.length - 1) {
      for (let d = 0; d < size; d++) {
        const s = perm ? perm[d]! : d;
        if (s !== d) moved = true;
        out[dest + d] = source + s;
      }
      return;
    }
    for (let d = 0; d < size; d++) {
      const s = perm ? perm[d]! : d;
      if (s !== d) moved = true;
      outer.push(s);
      walk(l + 1, dest + d * stride, source + s * stride);
      outer.pop();
    }
  };
  walk(0, 0, 0);
  return moved ? out : null;
}

/**
 * Where a use's block starts along its axis in the *destination* order (the aligned model's), and
 * how many positions each of its units spans: the use acts on outer source tuple `outer`, which sits
 * at the destination tuple the outer permutations send it to.
 */
export function useBlock(levels: readonly AxisLevel[], use: GroupUse, perms: Permutations): { start: number; inner: number } {
  let start = 0;
  for (let l = 0; l < use.level; l++) {
    const group = resolveGroup(levels[l]!.group, use.outer.slice(0, l));
    const perm = group !== null ? perms.get(group) : undefined;
    const dest = perm ? perm.indexOf(use.outer[l]!) : use.outer[l]!;
    start = start * levels[l]!.size + dest;
  }
  const inner = levels.slice(use.level + 1).reduce((p, x) => p * x.size, 1);
  return { start: start * levels[use.level]!.size * inner, inner };
}

export function identityPermutations(sizes: ReadonlyMap<string, number>): Permutations {
  return new Map([...sizes].map(([g, n]) => [g, Int32Array.from({ length: n }, (_, i) => i)]));
}

/** A typed array of any element type, to gather raw elements without decoding them. */
export type Elements = Float32Array | Float64Array | Uint8Array | Uint16Array | Uint32Array | Int32Array;

/** `data` (shape [rows] or [rows, cols]) gathered by source maps per axis into `out` (same length). */
export function gather<T extends Elements>(data: T, shape: readonly number[], maps: (Int32Array | null)[], out: T): T {
  if (shape.length === 1) {
    const m = maps[0];
    if (!m) out.set(data);
    else for (let i = 0; i < out.length; i++) out[i] = data[m[i]!]!;
    return out;
  }
  const [rows, cols] = shape as [number, number];
  const [rowMap, colMap] = maps;
  for (let i = 0; i < rows; i++) {
    const from = (rowMap ? rowMap[i]! : i) * cols, to = i * cols;
    if (!colMap) out.set(data.subarray(from, from + cols), to);
    else for (let j = 0; j < cols; j++) out[to + j] = data[from + colMap[j]!]!;
  }
  return out;
}

/** The source maps of every axis of a checked tensor under `perms`. */
export function tensorMaps(checked: CheckedSpec, name: string, perms: Permutations, except?: string): (Int32Array | null)[] {
  return checked.tensors.get(name)!.axes.map((levels) => axisSourceMap(levels, perms, except));
}

/**
 * Reads a spec given as JSON: `{ "tensors": { name: [axis, ...] } }` (or the tensor map alone, or a
 * weightsoup_alignment.json, whose `spec` is in that form), an axis being a group name, null, or a
 * list of `{ "size": n, "group": name | null | table }` levels.
 */
export function parseSpec(text: string, file: string): PermutationSpec {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new AlignmentError("E_SPEC", `${file}: not valid JSON (${(cause as Error).message})`, { file }, { cause });
  }
  // An alignment record keeps its spec as { kind, tensors } under "spec" (a tensor may be named "spec" too).
  const recorded = (value as { spec?: unknown } | null)?.spec;
  const form = recorded && typeof recorded === "object" && !Array.isArray(recorded) && "tensors" in recorded ? recorded : value;
  const body = form && typeof form === "object" && "tensors" in form ? (form as { tensors: unknown }).tensors : form;
  if (!body || typeof body !== "object" || Array.isArray(body)) throw new AlignmentError("E_SPEC", `${file}: expected an object mapping tensor names to lists of axes`, { file });
  for (const [name, axes] of Object.entries(body)) {
    if (!Array.isArray(axes)) throw new AlignmentError("E_SPEC", `${file}: tensor "${name}" needs a list of axes`, { file, tensor: name });
    for (const axis of axes) {
      if (axis === null || typeof axis === "string") continue;
      if (!Array.isArray(axis) || axis.some((l) => !l || typeof l !== "object" || typeof l.size !== "number" || !("group" in l))) {
        throw new AlignmentError("E_SPEC", `${file}: tensor "${name}": an axis is a group name, null, or a list of {size, group} levels`, { file, tensor: name });
      }
    }
  }
  return body as PermutationSpec;
}
