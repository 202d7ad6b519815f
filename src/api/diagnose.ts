/**
 * @file The library call diagnose(recipe, options): interference diagnostics of a merge recipe, measured
 * in one streaming pass over its inputs without writing the merge (src/diagnose/). For an `align:`
 * recipe the pass runs on the inputs as given and again as aligned, to show what alignment changed.
 */
import { abortable } from "./abortable";
import { engineOptions, prepare, type MergeOptions } from "./merge";
import { checkCallbackOption, checkIntegerOptions, checkOptionKinds } from "./options";
import { diagnoseSums, type DiagnoseEngineOptions, type TensorSums } from "../diagnose/run";
import { layerDiagnoses, nonFiniteWarnings, tensorDiagnoses, totalDiagnosis, type GroupStats } from "../diagnose/statistics";
import { summarize, type Diagnosis } from "../diagnose/present";
import { parseRecipe, type Recipe } from "../recipe/recipe";
import { referencedModels, type MergePlan } from "../plan/plan";
import { tensorRole } from "../model/roles";
import { decoderStack, layerStacks } from "../model/stacks";
import { refuseStages } from "./stages";
import { nowMs } from "../clock";

export interface DiagnoseOptions extends Pick<MergeOptions, "models" | "workers" | "seed" | "memoryBudget" | "chunkBytes" | "chunkElements" | "workerUrl" | "signal"> {
  onProgress?: (event: DiagnoseEvent) => void;
}

export type DiagnoseEvent =
  | { type: "diagnose-start"; recipe: string; method: string; tensors: number; pass: "inputs" | "aligned" }
  | { type: "tensor-done"; name: string; tensorsDone: number; tensorsTotal: number; pass: "inputs" | "aligned" }
  | { type: "warning"; message: string }
  | { type: "diagnose-done"; seconds: number };

/** What `align:` changed: each model's task-vector cosine to the reference's, before and after. */
export interface AlignmentChange {
  reference: string;
  models: { model: string; cosineBefore: number | null; cosineAfter: number | null; normBefore: number; normAfter: number }[];
  /** The aligned inputs gave exactly the same sums as the given ones: alignment permuted nothing. */
  noOp: boolean;
}

export interface DiagnosisResult extends Diagnosis {
  alignment?: AlignmentChange;
}

/** The task models in the order the recipe first names them (a slices recipe may list them differently in each slice). */
function taskModels(plan: MergePlan, sums: TensorSums[]): string[] {
  const measured = new Set(sums.flatMap((s) => s.models.slice(1)));
  return [...new Set([...referencedModels(plan.recipe), ...measured])].filter((m) => measured.has(m));
}

/**
 * The output's decoder stack, as the planner tells it from side stacks (a vision tower): the donor's,
 * whose layer names the output keeps. Without one, the first stack measured stands in for it.
 */
function decoderOf(plan: MergePlan, sums: TensorSums[]): string | null {
  const donor = plan.models.get(plan.donor);
  const decoder = donor ? decoderStack(layerStacks(donor.tensors.keys()), donor.config, donor.location)?.prefix : undefined;
  return decoder ?? sums.map((s) => tensorRole(s.tensor.name).stack).find((stack) => stack !== undefined) ?? null;
}

function diagnosisOf(recipe: string, plan: MergePlan, sums: TensorSums[]): Diagnosis {
  const first = sums[0]!;
  const models = taskModels(plan, sums);
  const decoder = decoderOf(plan, sums);
  const total = totalDiagnosis(sums, models);
  const layers = layerDiagnoses(sums, models, decoder);
  return {
    recipe, method: plan.method.name, base: first.models[0]!, models, tensors: tensorDiagnoses(sums, models), layers, decoder, total,
    summary: summarize(total, layers, decoder), warnings: nonFiniteWarnings(sums),
  };
}

function cosineTo(stats: GroupStats, reference: string, model: string): number | null {
  return stats.pairs.find((p) => (p.a === reference && p.b === model) || (p.a === model && p.b === reference))?.cosine ?? null;
}

function sameSums(a: TensorSums[], b: TensorSums[]): boolean {
  return a.length === b.length && a.every((x, i) => x.sums.length === b[i]!.sums.length && x.sums.every((v, k) => Object.is(v, b[i]!.sums[k])));
}

export async function diagnose(recipe: Recipe | string, options: DiagnoseOptions): Promise<DiagnosisResult> {
  checkOptionKinds("diagnose", options, { signal: "signal" });
  checkIntegerOptions(options, ["workers", "seed", "memoryBudget", "chunkBytes", "chunkElements"]);
  checkCallbackOption(options, "onProgress");
  const started = nowMs();
  const emit = (e: DiagnoseEvent) => options.onProgress?.(e);
  return abortable(options.signal, async () => {
    const parsed = typeof recipe === "string" ? parseRecipe(recipe) : recipe;
    refuseStages(parsed);
    // The merge's engine options and defaults; diagnose's own progress events are not the merge's.
    const { onProgress: _events, ...merged } = options;
    const engine: DiagnoseEngineOptions = await engineOptions(merged);
    const measure = async (align: boolean, pass: "inputs" | "aligned") => {
      const plan = await prepare(parsed, options.models, options.signal, { align, workers: options.workers, workerUrl: options.workerUrl });
      emit({ type: "diagnose-start", recipe: parsed.file, method: plan.method.name, tensors: plan.tensors.length, pass });
      const sums = await diagnoseSums(plan, engine, (tensorsDone, tensorsTotal, name) => emit({ type: "tensor-done", name, tensorsDone, tensorsTotal, pass }));
      return { plan, sums };
    };
    // With align:, the given inputs are measured first (the "before"), then the aligned ones (what the merge uses).
    const before = parsed.align ? await measure(false, "inputs") : undefined;
    const after = await measure(true, parsed.align ? "aligned" : "inputs");
    const result: DiagnosisResult = diagnosisOf(parsed.file, after.plan, after.sums);
    // What the recipe sets that mergekit ignores: the merge would warn of it first.
    result.warnings.unshift(...after.plan.warnings);
    if (parsed.align && before) {
      const reference = parsed.align.to;
      const b = totalDiagnosis(before.sums, result.models), a = result.total;
      const noOp = sameSums(before.sums, after.sums);
      result.alignment = {
        reference, noOp,
        models: result.models.filter((m) => m !== reference).map((model) => ({
          model,
          cosineBefore: cosineTo(b, reference, model), cosineAfter: cosineTo(a, reference, model),
          normBefore: b.tasks.find((t) => t.model === model)?.norm ?? 0, normAfter: a.tasks.find((t) => t.model === model)?.norm ?? 0,
        })),
      };
      if (noOp) {
        result.warnings.push(`align: changed nothing: every model already matches ${reference} unit for unit (models fine-tuned from one base share its hidden-unit order), so alignment is a no-op here`);
      }
    }
    for (const message of result.warnings) emit({ type: "warning", message });
    emit({ type: "diagnose-done", seconds: (nowMs() - started) / 1000 });
    return result;
  });
}
