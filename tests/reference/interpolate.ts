// The linear path between two reference models, as SPEC's "linear" computes it with normalize: false.
import type { ReferenceModel, ReferenceTensor } from "./decoder";

/** Per element fround(fround(wa·a) + fround(wb·b)) with wa = fround(1 − λ), wb = fround(λ). */
export function lerpModel(a: ReferenceModel, b: ReferenceModel, lambda: number): ReferenceModel {
  const wa = Math.fround(1 - lambda), wb = Math.fround(lambda);
  const tensors = new Map<string, ReferenceTensor>();
  for (const [name, t] of a.tensors) {
    const u = b.tensors.get(name)!.values;
    tensors.set(name, { shape: t.shape, values: t.values.map((x, i) => Math.fround(Math.fround(wa * x) + Math.fround(wb * u[i]!))) });
  }
  return { config: a.config, tensors };
}
