/**
 * @file A diagnosis shown to a person: the plain-language summary, the layer × tensor-kind heatmap and
 * the HTML report's sections. Pure functions of the diagnosis (same diagnosis, same text and bytes).
 */
import type { HeatmapSpec, ReportSpec } from "../chart/spec";
import { heatmapSvg } from "../chart/svg";
import { formatValue } from "../chart/text";
import type { GroupStats, LayerDiagnosis, TensorDiagnosis } from "./statistics";

export interface Diagnosis {
  recipe: string;
  method: string;
  base: string;
  /** Task models (every model but the base), in recipe order. */
  models: string[];
  /** Tensors measured (those with task vectors), in plan order. */
  tensors: TensorDiagnosis[];
  /** Every layer stack's layers, the decoder's first (see layerDiagnoses). */
  layers: LayerDiagnosis[];
  /** The decoder stack's prefix ("model.layers"; the stack `layer_range` counts), null without layers. */
  decoder: string | null;
  total: GroupStats;
  summary: string[];
  warnings: string[];
}

/** "41%", "3.2%", "0.04%": two significant digits below 10%. */
export function percent(x: number): string {
  if (!Number.isFinite(x)) return formatValue(x);
  const p = 100 * x;
  if (p === 0) return "0%";
  return `${p >= 10 ? Math.round(p) : Number(p.toPrecision(2))}%`;
}

/** A layer's name: the decoder's by its index, another stack's as its tensors' names start ("vision_model.encoder.layers.3"). */
export function layerLabel(l: Pick<LayerDiagnosis, "stack" | "layer">, decoder: string | null): string {
  return l.stack === decoder ? String(l.layer) : `${l.stack}.${l.layer}`;
}

/**
 * The contiguous run of layers that conflict most: around the layer with the largest conflicting mass
 * fraction, each adjacent layer of the same stack whose fraction is at least halfway from the layers'
 * median to that maximum. Its fraction is that of the run's tensors together.
 */
export function hottestLayers(layers: LayerDiagnosis[]): { stack: string; first: number; last: number; mass: number } | null {
  const rated = layers.filter((l) => l.conflict.mass !== null && l.nonFinite.length === 0);
  if (rated.length === 0) return null;
  const sorted = rated.map((l) => l.conflict.mass!).sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  let top = 0;
  rated.forEach((l, i) => {
    if (l.conflict.mass! > rated[top]!.conflict.mass!) top = i;
  });
  const bar = (median + rated[top]!.conflict.mass!) / 2;
  const joins = (i: number, j: number) => rated[i]!.stack === rated[j]!.stack && Math.abs(rated[i]!.layer - rated[j]!.layer) === 1 && rated[i]!.conflict.mass! >= bar;
  let a = top, b = top;
  while (a > 0 && joins(a - 1, a)) a--;
  while (b < rated.length - 1 && joins(b + 1, b)) b++;
  let conflict = 0, eligible = 0;
  for (let i = a; i <= b; i++) {
    conflict += rated[i]!.conflict.conflictMass;
    eligible += rated[i]!.conflict.eligibleMass;
  }
  return { stack: rated[a]!.stack, first: rated[a]!.layer, last: rated[b]!.layer, mass: conflict / eligible };
}

const list = (items: string[]) => items.join(", ");

/** A few sentences: where conflicts concentrate, how aligned the task vectors are, what trimming and the vote remove. */
export function summarize(total: GroupStats, layers: LayerDiagnosis[], decoder: string | null): string[] {
  const lines: string[] = [];
  if (total.nonFinite.length > 0) {
    lines.push(`NaN or infinite values in ${list(total.nonFinite)} (see the warnings): the figures computed from them are NaN (null in --json)`);
  }
  const hot = hottestLayers(layers);
  // A layer with NaN or infinite values has no rate to rank: say it was left out rather than skip it.
  const unrated = layers.filter((l) => l.nonFinite.length > 0).map((l) => (l.stack === decoder ? String(l.layer) : layerLabel(l, decoder)));
  const left = unrated.length > 0 ? ` (not rated, NaN or infinite values: ${unrated.length === 1 ? "layer" : "layers"} ${list(unrated)})` : "";
  if (hot && layers.length > 1) {
    const range = hot.first === hot.last ? `${hot.first} conflicts` : `${hot.first}-${hot.last} conflict`;
    const where = hot.stack === decoder ? `layer${hot.first === hot.last ? "" : "s"} ${range}` : `${hot.stack} ${range}`;
    lines.push(`${where} most: ${percent(hot.mass)} of mass${left}`);
  } else if (unrated.length > 0) lines.push(`no layer's conflicts can be rated${left}`);
  if (total.conflict.coordinates !== null && total.conflict.mass !== null) {
    lines.push(`overall, task vectors disagree in sign on ${percent(total.conflict.coordinates)} of the coordinates where two or more are non-zero, ${percent(total.conflict.mass)} of their mass`);
  } else {
    lines.push(`no coordinate has two non-zero task vectors: nothing can conflict`);
  }
  const pairs = total.pairs.filter((p) => p.cosine !== null && Number.isFinite(p.cosine));
  if (pairs.length > 0) {
    const shown = pairs.length <= 3 ? pairs : [...pairs].sort((x, y) => x.cosine! - y.cosine!).filter((_, i, all) => i === 0 || i === all.length - 1);
    lines.push(`cosine of task vectors: ${list(shown.map((p) => `${p.a} vs ${p.b} ${formatValue(p.cosine!, 3)}`))}`);
  }
  lines.push(`task-vector norm relative to the base weights: ${list(total.tasks.map((t) => `${t.model} ${t.baseRatio === null ? "n/a" : percent(t.baseRatio)}`))}`);
  const trimmed = total.tasks.filter((t) => t.trimmed !== null);
  if (trimmed.length > 0) lines.push(`trimming/dropping removes ${list(trimmed.map((t) => `${percent(t.trimmed!)} of ${t.model}'s mass`))}`);
  const discarded = total.tasks.filter((t) => t.discarded !== null);
  if (discarded.length > 0) lines.push(`the elected sign then discards ${list(discarded.map((t) => `${percent(t.discarded!)} of ${t.model}'s kept mass`))}`);
  return lines;
}

/**
 * Layers × tensor kinds, each cell a tensor's conflicting mass fraction (no cell: no eligible
 * coordinate). A row is one layer of one stack (the rows of d.layers), so a vision tower's layer 0
 * and the decoder's are two rows.
 */
export function conflictHeatmap(d: Pick<Diagnosis, "tensors" | "layers" | "decoder" | "recipe">): HeatmapSpec {
  const inLayers = d.tensors.filter((t) => t.layer !== null);
  const row = new Map(d.layers.map((l, i) => [`${l.stack}\u0000${l.layer}`, i]));
  const kinds = [...new Set(inLayers.map((t) => t.kind))];
  const values = d.layers.map(() => kinds.map(() => NaN));
  for (const t of inLayers) values[row.get(`${t.stack}\u0000${t.layer}`)!]![kinds.indexOf(t.kind)] = t.conflict.mass ?? NaN;
  return {
    title: `Sign conflicts: ${d.recipe}`,
    rowLabels: d.layers.map((l) => (l.stack === d.decoder ? `layer ${l.layer}` : layerLabel(l, d.decoder))),
    colLabels: kinds,
    values,
    valueLabel: "conflicting mass",
    min: 0,
  };
}

const orNA = (x: number | null) => (x === null ? "n/a" : x);

/**
 * A column of the per-layer table. A cell is null where the statistic is undefined ("n/a") and
 * undefined where the layer lacks the model or the pair (a slices recipe may leave models out of some
 * layers): cells are looked up by model and pair, never by position, since a layer's pairs need not be
 * the total's.
 */
export interface LayerColumn {
  label: string;
  kind: "layer" | "fraction" | "cosine";
  cell: (l: LayerDiagnosis) => number | string | null | undefined;
}

/** The per-layer table's columns, shared by the CLI's text table and the HTML report's. */
export function layerColumns(d: Pick<Diagnosis, "models" | "total" | "decoder">): LayerColumn[] {
  return [
    { label: "layer", kind: "layer", cell: (l) => (l.stack === d.decoder ? l.layer : layerLabel(l, d.decoder)) },
    { label: "conflict coords", kind: "fraction", cell: (l) => l.conflict.coordinates },
    { label: "conflict mass", kind: "fraction", cell: (l) => l.conflict.mass },
    ...d.models.map((m): LayerColumn => ({ label: `‖τ‖/‖b‖ ${m}`, kind: "fraction", cell: (l) => l.tasks.find((t) => t.model === m)?.baseRatio })),
    ...d.total.pairs.map(({ a, b }): LayerColumn => ({ label: `cos ${a}/${b}`, kind: "cosine", cell: (l) => l.pairs.find((p) => p.a === a && p.b === b)?.cosine })),
  ];
}

export function diagnosisReport(d: Diagnosis): ReportSpec {
  const cols = layerColumns(d);
  return {
    title: `Interference diagnostics: ${d.recipe}`,
    sections: [
      { heading: "Summary", text: [`method ${d.method}, base ${d.base}, task models ${list(d.models)}`, ...d.summary, ...d.warnings.map((w) => `warning: ${w}`)].join("\n") },
      { heading: "Sign conflicts by layer and tensor", svg: heatmapSvg(conflictHeatmap(d)) },
      {
        heading: "Per layer",
        table: {
          columns: cols.map((c) => c.label),
          rows: d.layers.map((l) => cols.map((c) => {
            const x = c.cell(l);
            return x === undefined ? "" : typeof x === "string" ? x : orNA(x);
          })),
        },
      },
      {
        heading: "Per tensor",
        table: {
          columns: ["tensor", "conflict (coords)", "conflict (mass)", ...d.models.flatMap((m) => [`‖τ‖ ${m}`, `trimmed ${m}`, `discarded ${m}`])],
          rows: d.tensors.map((t) => [t.name, orNA(t.conflict.coordinates), orNA(t.conflict.mass), ...d.models.flatMap((m) => {
            const x = t.tasks.find((k) => k.model === m);
            return x ? [x.norm, orNA(x.trimmed), orNA(x.discarded)] : ["n/a", "n/a", "n/a"];
          })]),
        },
      },
    ],
  };
}
