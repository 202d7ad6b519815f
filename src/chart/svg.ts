/**
 * Self-contained SVG charts (no fonts, scripts, ids or external references) so the same text can be a
 * file from the CLI, an inline figure in an HTML report and a DOM node in the page; several can share a
 * document without id clashes. Deterministic: a pure function of the spec, coordinates rounded to 0.01.
 */
import { finiteRange, linear, niceTicks } from "./scale";
import type { HeatmapSpec, LineChartSpec } from "./spec";
import { coord, escapeXml, formatValue } from "./text";

export type { HeatmapSpec, LineChartSpec } from "./spec";

const FONT = `font-family="system-ui, sans-serif"`;
/** Distinguishable on white and for common colour-vision deficiencies (Okabe-Ito). */
const PALETTE = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442"];

function svgOpen(width: number, height: number, title: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="12">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${coord(width / 2)}" y="20" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
  ];
}

export function lineChartSvg(spec: LineChartSpec): string {
  const width = 720;
  const legendRows = spec.series.length > 1 ? spec.series.length : 0;
  const plotTop = 36;
  const plotH = 320;
  const left = 72;
  const right = width - 24;
  const bottom = plotTop + plotH;
  const height = bottom + 48 + legendRows * 18;

  const xs = spec.series.flatMap((s) => s.points.map((p) => p[0])).concat((spec.markers ?? []).map((m) => m.x));
  const xRange = finiteRange(xs);
  const yRange = finiteRange(spec.series.flatMap((s) => s.points.map((p) => p[1])));
  const sx = linear(xRange, left, right);
  const sy = linear(yRange, bottom, plotTop);

  const out = svgOpen(width, height, spec.title);
  out.push(`<rect x="${left}" y="${plotTop}" width="${right - left}" height="${plotH}" fill="none" stroke="#999999"/>`);
  for (const t of niceTicks(yRange)) {
    const y = coord(sy(t));
    out.push(`<line x1="${left}" y1="${y}" x2="${right}" y2="${y}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${escapeXml(formatValue(t))}</text>`);
  }
  for (const t of niceTicks(xRange, 8)) {
    const x = coord(sx(t));
    out.push(`<line x1="${x}" y1="${bottom}" x2="${x}" y2="${bottom + 4}" stroke="#999999"/>`);
    out.push(`<text x="${x}" y="${bottom + 16}" text-anchor="middle">${escapeXml(formatValue(t))}</text>`);
  }
  out.push(`<text x="${coord((left + right) / 2)}" y="${bottom + 34}" text-anchor="middle">${escapeXml(spec.xLabel)}</text>`);
  out.push(
    `<text x="16" y="${coord(plotTop + plotH / 2)}" text-anchor="middle" transform="rotate(-90 16 ${coord(plotTop + plotH / 2)})">${escapeXml(spec.yLabel)}</text>`,
  );

  for (const m of spec.markers ?? []) {
    if (!Number.isFinite(m.x)) continue;
    const x = coord(sx(m.x));
    out.push(`<line x1="${x}" y1="${plotTop}" x2="${x}" y2="${bottom}" stroke="#666666" stroke-dasharray="4 3"/>`);
    out.push(`<text x="${x}" y="${plotTop + 12}" text-anchor="middle" font-size="11" fill="#444444">${escapeXml(m.label)}</text>`);
  }

  spec.series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length]!;
    // A non-finite point breaks the line: each run of finite points is its own subpath.
    const runs: string[][] = [[]];
    for (const [x, y] of s.points) {
      if (Number.isFinite(x) && Number.isFinite(y)) runs[runs.length - 1]!.push(`${coord(sx(x))},${coord(sy(y))}`);
      else if (runs[runs.length - 1]!.length > 0) runs.push([]);
    }
    const d = runs.filter((r) => r.length > 0).map((r) => `M${r.join("L")}`).join("");
    out.push(`<g><title>${escapeXml(s.name)}</title>`);
    if (d) out.push(`<path d="${d}" fill="none" stroke="${colour}" stroke-width="2"/>`);
    for (const [x, y] of s.points) {
      if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
      out.push(`<circle cx="${coord(sx(x))}" cy="${coord(sy(y))}" r="3" fill="${colour}"/>`);
    }
    out.push(`</g>`);
    if (legendRows > 0) {
      const y = bottom + 52 + i * 18;
      out.push(`<rect x="${left}" y="${y - 9}" width="14" height="4" fill="${colour}"/>`);
      out.push(`<text x="${left + 20}" y="${y - 7}" dominant-baseline="middle">${escapeXml(s.name)}</text>`);
    }
  });
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}

/** Sequential light-to-dark scale (stops sampled from viridis, reversed so "more" reads darker). */
const RAMP: [number, number, number][] = [
  [253, 231, 37],
  [122, 209, 81],
  [34, 168, 132],
  [42, 120, 142],
  [65, 68, 135],
  [68, 1, 84],
];

/** The ramp colour at t ∈ [0, 1] (clamped), as #rrggbb. */
export function rampColour(t: number): string {
  const c = Math.min(1, Math.max(0, t)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(c));
  const f = c - i;
  const a = RAMP[i]!;
  const b = RAMP[i + 1]!;
  return "#" + [0, 1, 2].map((k) => Math.round(a[k]! + (b[k]! - a[k]!) * f).toString(16).padStart(2, "0")).join("");
}

export function heatmapSvg(spec: HeatmapSpec): string {
  const rows = spec.rowLabels.length;
  const cols = spec.colLabels.length;
  const cell = rows > 48 || cols > 24 ? 12 : 22;
  // Label gutters sized from the longest label (about 7 px per character at 12 px).
  const left = 16 + Math.min(240, 7 * Math.max(1, ...spec.rowLabels.map((l) => l.length)));
  const colLabelH = 16 + Math.min(200, 6 * Math.max(1, ...spec.colLabels.map((l) => l.length)));
  const top = 36 + colLabelH;
  const gridW = cols * cell;
  const legendX = left + gridW + 24;
  const width = Math.max(360, legendX + 120);
  const height = Math.max(top + rows * cell + 24, top + 180);

  let lo = Infinity;
  let hi = -Infinity;
  for (const row of spec.values) for (const v of row) if (Number.isFinite(v)) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
  if (lo > hi) (lo = 0), (hi = 1);
  lo = spec.min ?? lo;
  hi = spec.max ?? hi;
  const span = hi - lo;
  const t = (v: number) => (span > 0 ? (v - lo) / span : 0.5);

  const out = svgOpen(width, height, spec.title);
  spec.colLabels.forEach((label, c) => {
    const x = coord(left + c * cell + cell / 2 + 4);
    const y = coord(top - 6);
    out.push(`<text x="${x}" y="${y}" font-size="11" transform="rotate(-60 ${x} ${y})">${escapeXml(label)}</text>`);
  });
  spec.rowLabels.forEach((label, r) => {
    out.push(`<text x="${left - 6}" y="${coord(top + r * cell + cell / 2)}" text-anchor="end" dominant-baseline="middle" font-size="11">${escapeXml(label)}</text>`);
  });
  out.push(`<rect x="${left}" y="${top}" width="${gridW}" height="${rows * cell}" fill="#f4f4f4"/>`);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = spec.values[r]?.[c];
      if (v === undefined || !Number.isFinite(v)) continue;
      const tip = `${spec.rowLabels[r]} · ${spec.colLabels[c]}: ${formatValue(v)}`;
      out.push(
        `<rect x="${left + c * cell}" y="${top + r * cell}" width="${cell}" height="${cell}" fill="${rampColour(t(v))}" stroke="#ffffff" stroke-width="0.5"><title>${escapeXml(tip)}</title></rect>`,
      );
    }
  }

  // Legend: stepped bar (no gradient ids, so many charts can share one HTML document).
  const steps = 32;
  const barH = 128;
  out.push(`<text x="${legendX}" y="${top - 8}" font-size="11">${escapeXml(spec.valueLabel)}</text>`);
  for (let i = 0; i < steps; i++) {
    const y = coord(top + (barH * i) / steps);
    out.push(`<rect x="${legendX}" y="${y}" width="14" height="${coord(barH / steps + 0.5)}" fill="${rampColour(1 - i / (steps - 1))}"/>`);
  }
  out.push(`<text x="${legendX + 20}" y="${top + 8}" font-size="11">${escapeXml(formatValue(hi))}</text>`);
  out.push(`<text x="${legendX + 20}" y="${top + barH}" font-size="11">${escapeXml(formatValue(lo))}</text>`);
  out.push(`<rect x="${legendX}" y="${top + barH + 12}" width="14" height="14" fill="#f4f4f4" stroke="#cccccc"/>`);
  out.push(`<text x="${legendX + 20}" y="${top + barH + 23}" font-size="11">no value</text>`);
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
