// The permutation convention weightsoup documents, written out by hand for tests (independent of
// src/align/spec.ts): along an axis, output position i takes the model's element at source[i].
//
// A plain axis with group g: source[i] = perm_g[i]. A structured axis is a list of levels, outer to
// inner; a position is read as digits (d_0, d_1, ...) in those sizes, and its source digits are
// s_0 = P_0[d_0], s_1 = P_1[d_1], ..., where level l's group is a name, null (identity) or a table
// indexed by the *source* digits s_0 .. s_{l-1} of the outer levels.

export type Level = { size: number; group: unknown };
export type Axis = string | null | Level[];

function groupAt(ref: unknown, outerSources: number[]): string | null {
  let r = ref;
  for (let depth = 0; Array.isArray(r); depth++) r = r[outerSources[depth]!];
  return r as string | null;
}

/** source[i] for every position i of an axis of length `length`. */
export function sourceIndices(axis: Axis, length: number, perms: ReadonlyMap<string, ArrayLike<number>>): number[] {
  if (axis === null) return Array.from({ length }, (_, i) => i);
  const levels: Level[] = typeof axis === "string" ? [{ size: length, group: axis }] : axis;
  const out: number[] = [];
  for (let position = 0; position < length; position++) {
    // Digits of the position, most significant (outermost level) first.
    const digits: number[] = [];
    let rest = position;
    for (let l = levels.length - 1; l >= 0; l--) { digits[l] = rest % levels[l]!.size; rest = Math.floor(rest / levels[l]!.size); }
    const sources: number[] = [];
    for (let l = 0; l < levels.length; l++) {
      const group = groupAt(levels[l]!.group, sources);
      const perm = group === null ? undefined : perms.get(group);
      if (group !== null && !perm) throw new Error(`no permutation for group ${group}`);
      sources.push(perm ? perm[digits[l]!]! : digits[l]!);
    }
    out.push(sources.reduce((index, s, l) => index * levels[l]!.size + s, 0));
  }
  return out;
}

/** A [rows] or [rows, cols] tensor with each axis gathered by its source indices. */
export function permuteByHand(data: ArrayLike<number>, shape: number[], axes: Axis[], perms: ReadonlyMap<string, ArrayLike<number>>): number[] {
  const maps = shape.map((length, a) => sourceIndices(axes[a] ?? null, length, perms));
  if (shape.length === 1) return maps[0]!.map((s) => data[s]!);
  const [rows, cols] = shape as [number, number];
  const out: number[] = [];
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out.push(data[maps[0]![i]! * cols + maps[1]![j]!]!);
  return out;
}
