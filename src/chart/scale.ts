/** Axis ranges and "nice" tick positions shared by the SVG and terminal line charts. */

export interface Range {
  lo: number;
  hi: number;
}

/**
 * The [lo, hi] of the finite numbers in `values`, widened when degenerate so a scale never divides by
 * zero: a constant series v gets [v - 1, v + 1] (or ±|v|/10 when that is larger), no values get [0, 1].
 */
export function finiteRange(values: Iterable<number>): Range {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo > hi) return { lo: 0, hi: 1 };
  if (lo === hi) {
    const pad = Math.max(1, Math.abs(lo) / 10);
    return { lo: lo - pad, hi: hi + pad };
  }
  return { lo, hi };
}

/** About `count` evenly spaced round numbers (steps of 1, 2 or 5 × 10^k) inside [lo, hi]. */
export function niceTicks(range: Range, count = 5): number[] {
  const span = range.hi - range.lo;
  if (!(span > 0) || !Number.isFinite(span)) return [range.lo];
  const raw = span / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = raw / power;
  const step = (unit >= 5 ? 10 : unit >= 2 ? 5 : unit >= 1 ? 2 : 1) * power;
  const first = Math.ceil(range.lo / step - 1e-9);
  const last = Math.floor(range.hi / step + 1e-9);
  const ticks: number[] = [];
  // Multiplying an integer index (not accumulating steps) keeps 0.1 + 0.2 drift out of the labels.
  for (let i = first; i <= last; i++) ticks.push(Number((i * step).toPrecision(12)));
  return ticks;
}

/** Linear map of [range.lo, range.hi] onto [a, b]. */
export function linear(range: Range, a: number, b: number): (v: number) => number {
  const k = (b - a) / (range.hi - range.lo);
  return (v) => a + (v - range.lo) * k;
}
