/**
 * The chart module's inputs. Plain data so the CLI (files, terminal) and the page (the same SVG in the
 * DOM) draw from one description; every renderer is a pure function of its spec (same spec, same bytes).
 */

/** Lines over a numeric x axis. Non-finite points are gaps (the line breaks there), not zeros. */
export interface LineChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  series: { name: string; points: [number, number][] }[];
  /** Vertical rules at x, labelled (e.g. "best", an endpoint). */
  markers?: { x: number; label: string }[];
}

/** A grid of coloured cells; `values[row][col]`, NaN (or a missing entry) = no cell drawn. */
export interface HeatmapSpec {
  title: string;
  rowLabels: string[];
  colLabels: string[];
  values: number[][];
  valueLabel: string;
  /** Colour scale ends; default: the finite values' min and max. */
  min?: number;
  max?: number;
}

/** A self-contained HTML report: sections in order, each with any of text, a table, an inline SVG. */
export interface ReportSpec {
  title: string;
  sections: ReportSection[];
}

export interface ReportSection {
  heading: string;
  text?: string;
  table?: { columns: string[]; rows: (string | number)[][] };
  svg?: string;
}
