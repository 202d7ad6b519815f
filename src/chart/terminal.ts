/**
 * A compact line chart for the terminal: plain text, one glyph per series, no colours, so it survives
 * logs and copy-paste. Shares the SVG chart's spec and axis rules (non-finite points are gaps).
 */
import { finiteRange, linear } from "./scale";
import type { LineChartSpec } from "./spec";
import { formatValue } from "./text";

const GLYPHS = ["*", "o", "+", "x", "#", "@", "%", "&"];

export function lineChartText(spec: LineChartSpec, width = 64, height = 16): string {
  const w = Math.max(8, Math.floor(width));
  const h = Math.max(3, Math.floor(height));
  const xRange = finiteRange(spec.series.flatMap((s) => s.points.map((p) => p[0])).concat((spec.markers ?? []).map((m) => m.x)));
  const yRange = finiteRange(spec.series.flatMap((s) => s.points.map((p) => p[1])));
  const col = (x: number) => Math.round(linear(xRange, 0, w - 1)(x));
  const row = (y: number) => Math.round(linear(yRange, h - 1, 0)(y));
  const grid: string[][] = Array.from({ length: h }, () => Array<string>(w).fill(" "));

  for (const m of spec.markers ?? []) {
    if (!Number.isFinite(m.x)) continue;
    const c = col(m.x);
    for (let r = 0; r < h; r++) grid[r]![c] = ":";
  }
  spec.series.forEach((s, i) => {
    const glyph = GLYPHS[i % GLYPHS.length]!;
    const dot = i === 0 ? "." : "'";
    let prev: [number, number] | null = null;
    for (const [x, y] of s.points) {
      if (!Number.isFinite(x) || !Number.isFinite(y)) {
        prev = null;
        continue;
      }
      const p: [number, number] = [col(x), row(y)];
      // Join consecutive points with light dots so the shape reads between sparse samples.
      if (prev) {
        const steps = Math.max(Math.abs(p[0] - prev[0]), Math.abs(p[1] - prev[1]));
        for (let k = 1; k < steps; k++) {
          const c = Math.round(prev[0] + ((p[0] - prev[0]) * k) / steps);
          const r = Math.round(prev[1] + ((p[1] - prev[1]) * k) / steps);
          if (grid[r]![c] === " " || grid[r]![c] === ":") grid[r]![c] = dot;
        }
      }
      grid[p[1]]![p[0]] = glyph;
      prev = p;
    }
  });

  const top = formatValue(yRange.hi);
  const bottom = formatValue(yRange.lo);
  const gutter = Math.max(top.length, bottom.length);
  const lines = [spec.title];
  grid.forEach((cells, r) => {
    const label = r === 0 ? top : r === h - 1 ? bottom : "";
    lines.push(`${label.padStart(gutter)} |${cells.join("").trimEnd()}`);
  });
  lines.push(`${" ".repeat(gutter)} +${"-".repeat(w)}`);
  const xLo = formatValue(xRange.lo);
  const xHi = formatValue(xRange.hi);
  lines.push(`${" ".repeat(gutter + 2)}${xLo}${xHi.padStart(Math.max(1, w - xLo.length))}`);
  lines.push(`${" ".repeat(gutter + 2)}x: ${spec.xLabel}   y: ${spec.yLabel}`);
  if (spec.series.length > 1) lines.push(spec.series.map((s, i) => `${GLYPHS[i % GLYPHS.length]} ${s.name}`).join("   "));
  for (const m of spec.markers ?? []) if (Number.isFinite(m.x)) lines.push(`: ${m.label} at x = ${formatValue(m.x)}`);
  return lines.join("\n") + "\n";
}
