/**
 * @file What a sweep varies: `KEY=SPEC` arguments and the grid of points they span.
 *
 * SPEC is a list of numbers (`0.2,0.5,0.8`, in that order, repeats allowed) or a range
 * `START:STOP:COUNT`: COUNT evenly spaced numbers from START to STOP, both ends included
 * (value i = START + (STOP − START) · i / (COUNT − 1), the last exactly STOP; COUNT ≥ 2). Several keys
 * give the full grid, the first key varying slowest.
 */
import { keyError, parseKey } from "./keys";

export interface Vary {
  key: string;
  values: number[];
}

/** The most points one sweep may have: every point is a full forward pass. */
export const MAX_POINTS = 10_000;

const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** Parses `KEY=SPEC`. */
export function parseVary(argument: string): Vary {
  const eq = argument.indexOf("=");
  if (eq <= 0) throw keyError(argument, "expected KEY=SPEC, e.g. parameters.t=0:1:11 or models[1].parameters.weight=0.2,0.5");
  const key = argument.slice(0, eq).trim();
  parseKey(key);
  return { key, values: parseValues(key, argument.slice(eq + 1).trim()) };
}

/** A SPEC's numbers. */
export function parseValues(key: string, spec: string): number[] {
  const number = (s: string, what: string) => {
    if (!NUMBER.test(s.trim()) || !Number.isFinite(Number(s))) throw keyError(key, `${what} "${s}" is not a finite number (SPEC is a list 0.2,0.5,0.8 or a range START:STOP:COUNT)`);
    return Number(s);
  };
  const parts = spec.split(":");
  if (parts.length === 3) {
    const start = number(parts[0]!, "START"), stop = number(parts[1]!, "STOP");
    const count = Number(parts[2]);
    if (!/^\d+$/.test(parts[2]!.trim()) || count < 2 || count > MAX_POINTS) throw keyError(key, `COUNT "${parts[2]}" must be an integer from 2 to ${MAX_POINTS} (both ends are included)`);
    const values = Array.from({ length: count }, (_, i) => (i === count - 1 ? stop : start + ((stop - start) * i) / (count - 1)));
    // Finite ends can still overflow in STOP − START (1e308:-1e308:3): such values are no numbers to set.
    const wrong = values.find((v) => !Number.isFinite(v));
    if (wrong !== undefined) throw keyError(key, `the range ${spec} gives the value ${wrong}, not a finite number (STOP − START overflows)`);
    return values;
  }
  if (parts.length !== 1) throw keyError(key, `"${spec}" is neither a list (0.2,0.5,0.8) nor a range (START:STOP:COUNT)`);
  if (spec === "") throw keyError(key, "has no values");
  return spec.split(",").map((s) => number(s, "value"));
}

/** Every combination of the keys' values, the first key slowest; each point maps key → value. */
export function gridPoints(vary: readonly Vary[]): Map<string, number>[] {
  const keys = new Set<string>();
  for (const v of vary) {
    if (keys.has(v.key)) throw keyError(v.key, "is varied twice; give all its values in one --vary");
    keys.add(v.key);
  }
  const total = vary.reduce((n, v) => n * v.values.length, 1);
  if (vary.length === 0) throw keyError("", "a sweep needs at least one --vary KEY=SPEC");
  if (total > MAX_POINTS) throw keyError(vary.map((v) => v.key).join(", "), `the grid has ${total} points; at most ${MAX_POINTS} are allowed`);
  let points: Map<string, number>[] = [new Map()];
  for (const v of vary) points = points.flatMap((p) => v.values.map((x) => new Map([...p, [v.key, x]])));
  return points;
}
