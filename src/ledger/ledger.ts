/**
 * @file The ledger: every tensor of every model a recipe names, and what the merge does with it:
 * merged into which output tensors, copied (and why), or refused, that is not written (and why).
 * mergekit drops tensors its architecture description lacks without a word; weightsoup builds this
 * list while planning and refuses to run when a tensor would vanish without a stated reason.
 */
import { RecipeError, ValidationError, type WeightsoupError } from "../errors";
import { DTYPES } from "../format/dtypes";
import type { LoadedModel } from "../model/model";
import type { ModelLayout } from "../plan/layout";
import type { PlannedTensor } from "../plan/plan";
import type { OutputSlice } from "../recipe/recipe";

export type LedgerStatus = "merged" | "copied" | "refused";

export interface LedgerEntry {
  /** The model as the recipe names it. */
  model: string;
  /** The weight file holding the tensor. */
  file: string;
  tensor: string;
  status: LedgerStatus;
  /** Output tensors it goes into (several when a slice repeats a layer or a tied embedding serves as lm_head). */
  into: string[];
  /** Why it is copied or refused; for merged tensors, anything unusual about how (a cut block, a tied head). */
  why?: string;
}

export interface LedgerCounts {
  /** Input tensors listed (every tensor of every model). */
  inputs: number;
  merged: number;
  copied: number;
  refused: number;
  /** Tensors the output gets. */
  outputs: number;
}

export interface Ledger {
  entries: LedgerEntry[];
  counts: LedgerCounts;
}

/** What the planner knows when it has planned every output tensor. */
export interface LedgerInput {
  recipeFile: string;
  method: string;
  models: ReadonlyMap<string, LoadedModel>;
  layouts: ReadonlyMap<string, ModelLayout>;
  slices: readonly OutputSlice[];
  tensors: readonly PlannedTensor[];
  /** Per output tensor, the input tensor each of its slice's sources offered (before a method picked among them). */
  offered: ReadonlyMap<string, readonly { model: string; tensor: string }[]>;
  /** The model whose config.json and tokenizer files the output gets. */
  donor: string;
}

interface Use {
  into: string;
  status: "merged" | "copied";
  why?: string;
}

const key = (model: string, tensor: string) => `${model}\u0000${tensor}`;

/**
 * Builds the ledger of a plan. Throws E_TENSOR_UNACCOUNTED (naming model, file and tensor) for any
 * input tensor that no output tensor takes and no rule excludes on purpose.
 */
export function buildLedger(input: LedgerInput): Ledger {
  const uses = new Map<string, Use[]>();
  const offeredTo = new Map<string, string>(); // tensors offered for an output that took another model's
  for (const t of input.tensors) {
    const status = copies(t) ? "copied" : "merged";
    for (const i of t.inputs) {
      const list = uses.get(key(i.model, i.tensor.name)) ?? [];
      list.push({ into: t.name, status, why: status === "copied" ? copyReason(t, input.method) : mergeNote(t, i) });
      uses.set(key(i.model, i.tensor.name), list);
    }
    for (const o of input.offered.get(t.name) ?? []) {
      if (!t.inputs.some((i) => i.model === o.model)) offeredTo.set(key(o.model, o.tensor), notTakenReason(t));
    }
  }

  const outer = new Map([...input.layouts].map(([name, l]) => [name, { pre: new Set(l.pre), post: new Set(l.post) }]));
  const entries: LedgerEntry[] = [];
  const problems: WeightsoupError[] = [];
  for (const [name, model] of input.models) {
    for (const [listed, info] of [...model.tensors].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      // A module's view may list a tied model's embedding under the lm_head's name (plan/modules.ts).
      const tensor = info.name;
      const used = uses.get(key(name, tensor));
      if (used) {
        const merged = used.some((u) => u.status === "merged");
        const whys = [...new Set(used.filter((u) => u.status === (merged ? "merged" : "copied")).map((u) => u.why).filter((w) => w !== undefined))];
        entries.push({ model: name, file: info.file, tensor, status: merged ? "merged" : "copied", into: used.map((u) => u.into), ...(whys.length ? { why: whys.join("; ") } : {}) });
        continue;
      }
      const why = offeredTo.get(key(name, tensor)) ?? refusalReason(input, outer.get(name), name, listed);
      if (why !== undefined) {
        entries.push({ model: name, file: info.file, tensor, status: "refused", into: [], why });
        continue;
      }
      problems.push(new RecipeError("E_TENSOR_UNACCOUNTED",
        `${info.file}: tensor "${tensor}" of model ${name} would be left out of the output with no rule saying why; weightsoup refuses to drop it silently (this is a bug or a layout weightsoup does not understand: please report it with the model's tensor names)`,
        { file: info.file, model: name, tensor }));
    }
  }
  if (problems.length === 1) throw problems[0]!;
  if (problems.length > 1) throw new ValidationError(problems);
  const count = (s: LedgerStatus) => entries.filter((e) => e.status === s).length;
  return { entries, counts: { inputs: entries.length, merged: count("merged"), copied: count("copied"), refused: count("refused"), outputs: input.tensors.length } };
}

/** An output tensor whose value is one input's, unchanged or only converted to another dtype. */
function copies(t: PlannedTensor): boolean {
  if (t.op.kind === "copy") return true;
  return t.inputs.length === 1 && t.op.kind === "sum" && t.op.weights[0] === 1 && (!t.op.normalize || t.op.divisor === 1);
}

function copyReason(t: PlannedTensor, method: string): string {
  const input = t.inputs[0]!;
  const from = input.tensor.dtype, to = t.dtype;
  const kind = DTYPES[from]?.kind;
  if (t.op.kind === "copy" && kind === "integer") return `${from} tensor: integer tensors are copied byte for byte from the base (or first) model, never merged`;
  const why = method === "passthrough" ? "passthrough" : `${input.model} is the only input of "${t.name}" (its slice has no other source for it)`;
  return from !== to ? `${why}, converted ${from} to ${to}` : why;
}

function mergeNote(t: PlannedTensor, i: PlannedTensor["inputs"][number]): string | undefined {
  const notes: string[] = [];
  if (i.block) notes.push(`its top-left [${i.block.rows}, ${i.block.cols}] block (embedding sizes differ)`);
  if (i.tensor.name !== t.name && !sameTemplate(i.tensor.name, t.name)) notes.push(`as "${t.name}" (tied embedding)`);
  return notes.length ? notes.join(", ") : undefined;
}

/** Names equal up to their layer index (a layer moved by slices is not worth a note). */
function sameTemplate(a: string, b: string): boolean {
  const strip = (s: string) => s.replace(/(^|\.)\d+(\.|$)/, "$1#$2");
  return strip(a) === strip(b);
}

function notTakenReason(t: PlannedTensor): string {
  const from = t.inputs.map((i) => i.model).join(", ");
  if (t.op.kind === "copy" && DTYPES[t.inputs[0]!.tensor.dtype]?.kind === "integer") {
    return `integer tensor: "${t.name}" is copied from ${from}; integer tensors are never merged`;
  }
  return `"${t.name}" is computed from ${from} only`;
}

/** Why a tensor no output tensor takes is left out on purpose, or undefined when nothing explains it. */
function refusalReason(input: LedgerInput, outer: { pre: Set<string>; post: Set<string> } | undefined, model: string, tensor: string): string | undefined {
  const { slices } = input;
  const sourcesOf = (s: OutputSlice) => s.sources.map((src) => src.model);
  if (!slices.some((s) => sourcesOf(s).includes(model))) {
    return model === input.donor
      ? `${model} is not a source of any slice: only its config.json and tokenizer files are used`
      : `${model} is not a source of any slice`;
  }
  const layout = input.layouts.get(model)!;
  if (!outer) return undefined;
  const list = (names: string[]) => names.join(", ");
  const [first, last] = [slices[0]!, slices[slices.length - 1]!];
  if (outer.pre.has(tensor) || layout.side.has(tensor)) {
    const what = layout.side.has(tensor) ? `${layout.side.get(tensor)!.stack} tensors (beside the decoder's layers)` : "tensors before the layers";
    if (!sourcesOf(first).includes(model)) return `${what} come from the first slice's sources (${list(sourcesOf(first))}), and ${model} is not one`;
    return undefined;
  }
  if (outer.post.has(tensor)) {
    if (!sourcesOf(last).includes(model)) return `tensors after the layers come from the last slice's sources (${list(sourcesOf(last))}), and ${model} is not one`;
    return undefined;
  }
  const layer = layerOf(layout, tensor);
  if (layer === undefined) return undefined;
  const ranges = slices.flatMap((s) => s.sources.filter((src) => src.model === model).map((src) => src.layerRange ?? [0, layout.count]));
  if (ranges.some(([a, b]) => layer >= a && layer < b)) return undefined;
  return `layer ${layer} is outside every layer_range taken from ${model} (${ranges.map(([a, b]) => `[${a}, ${b}]`).join(", ")})`;
}

/** The decoder layer a tensor belongs to (undefined when it is not a decoder-layer tensor). */
function layerOf(layout: ModelLayout, tensor: string): number | undefined {
  if (layout.decoder === undefined || !tensor.startsWith(layout.decoder === "" ? "" : `${layout.decoder}.`)) return undefined;
  const rest = tensor.slice(layout.decoder === "" ? 0 : layout.decoder.length + 1);
  const index = rest.split(".")[0]!;
  return /^\d+$/.test(index) ? Number(index) : undefined;
}
