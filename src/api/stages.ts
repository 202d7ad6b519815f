/**
 * @file Running a multi-stage recipe (recipe/stages.ts orders its documents): each stage is planned
 * and merged like a one-document recipe, the earlier ones into intermediate folders that later stages
 * read as models, the last into the output. Intermediates live in a scratch folder inside the output's
 * staging area (or in memory, for outputs that have none), are deleted as soon as no later stage reads
 * them, and never become visible: the output is committed as a one-stage merge's is, once, at the end.
 */
import { RecipeError, ValidationError, WeightsoupError } from "../errors";
import type { MergeEvent } from "../events";
import { lookUpModel, type ModelFolder } from "../io/folder";
import { MemoryOutputFolder } from "../io/memory-output";
import type { OutputFolder, ScratchFolder } from "../io/output";
import type { SourceRef } from "../io/source";
import { runPlan, type EngineOptions } from "../merge/engine";
import type { Ledger } from "../ledger/ledger";
import type { OutputTarget } from "../merge/job";
import { openModel } from "../model/model";
import { methodOf, referencedModels, type MergePlan } from "../plan/plan";
import type { Recipe } from "../recipe/recipe";
import type { MergeOptions, MergeSummary } from "./merge";
import { nowMs } from "../clock";

/** api/merge.ts's prepare: parse, open the models, plan (passed in, so the two files do not import each other). */
export type Prepare = (recipe: Recipe, models: MergeOptions["models"], signal?: AbortSignal, options?: Pick<MergeOptions, "workers" | "workerUrl">) => Promise<MergePlan>;

/**
 * Evaluation and generation merge a recipe tensor by tensor in memory, with no folder to hold an
 * intermediate model: a multi-stage recipe is refused with a clear error instead.
 */
export function refuseStages(recipe: Recipe): void {
  if (!recipe.stages?.length) return;
  throw new RecipeError("E_METHOD_UNSUPPORTED", `${recipe.file}: ends a multi-stage recipe of ${recipe.stages.length + 1} documents; only a merge runs those (each later document reads what an earlier one merged), while planning, evaluation, generation, diagnosis and sweeps take one-document recipes. Merge it first (weightsoup merge) and use the merged folder, or give one document on its own`,
    { file: recipe.file, key: "stages" });
}

export async function mergeStages(recipe: Recipe, options: MergeOptions, engine: EngineOptions, prepare: Prepare): Promise<MergeSummary> {
  const started = nowMs();
  const { signal } = options;
  // The final document is planned as a one-document recipe (its text stays the whole file's).
  const { stages: earlier, ...final } = recipe;
  const stages: Recipe[] = [...earlier!, final];
  const emit = (e: MergeEvent) => options.onProgress?.(e);
  const produced = new Set(stages.flatMap((s) => (s.name === undefined ? [] : [s.name])));

  // Before anything is written: every document's method and parameter names, and every model from
  // outside the recipe found and readable. Each is looked up once (Node records them as inputs the
  // output must not overwrite).
  const problems: WeightsoupError[] = [];
  const collect = (e: unknown) => {
    if (!(e instanceof WeightsoupError)) throw e;
    problems.push(...(e instanceof ValidationError ? e.problems : [e]));
  };
  for (const stage of stages) {
    try {
      methodOf(stage);
    } catch (e) {
      collect(e);
    }
  }
  const users = new Map<string, Recipe[]>();
  for (const stage of stages) {
    for (const name of referencedModels(stage)) if (!produced.has(name)) users.set(name, [...(users.get(name) ?? []), stage]);
  }
  const folders = new Map<string, ModelFolder>();
  for (const [name, readers] of users) {
    signal?.throwIfAborted();
    try {
      const folder = await lookUpModel(options.models, name);
      await openModel(folder);
      folders.set(name, folder);
    } catch (e) {
      if (e instanceof WeightsoupError && e.code === "E_MODEL_NOT_FOUND") {
        const names = [...produced].map((n) => `"${n}"`).join(", ");
        problems.push(new RecipeError("E_STAGE_UNKNOWN", `${readers[0]!.file}: "${name}" is neither the name of a document of this recipe (${names}) nor a model that can be found (${e.message})`,
          { file: readers[0]!.file, model: name, documents: readers.map((r) => r.file) }, { cause: e }));
      } else {
        collect(e);
      }
    }
  }
  if (problems.length === 1) throw problems[0]!;
  if (problems.length > 1) throw new ValidationError(problems);

  // The last stage that reads each intermediate: it is deleted once that stage is done.
  const lastReader = new Map<string, number>();
  stages.forEach((stage, i) => referencedModels(stage).forEach((name) => { if (produced.has(name)) lastReader.set(name, i); }));
  const intermediates = new Map<string, { scratch: ScratchFolder; folder: ModelFolder }>();
  const removeRead = async (upTo: number) => {
    for (const [name, held] of intermediates) {
      if ((lastReader.get(name) ?? -1) > upTo) continue;
      intermediates.delete(name);
      await held.scratch.remove();
    }
  };
  const models = (name: string) => intermediates.get(name)?.folder ?? folders.get(name) ?? options.models(name);

  let out: OutputFolder | undefined;
  const done: NonNullable<MergeSummary["stages"]> = [];
  try {
    let summary: Omit<MergeSummary, "ledger"> | undefined;
    let ledger: Ledger | undefined;
    for (const [i, stage] of stages.entries()) {
      signal?.throwIfAborted();
      const last = i === stages.length - 1;
      emit({ type: "stage", index: i, stages: stages.length, name: stage.name, method: stage.mergeMethod });
      const plan = await prepare(stage, models, signal, { workers: options.workers, workerUrl: options.workerUrl });
      if (last) ledger = plan.ledger; // the final output's; earlier stages' are their own folders'
      // The output is opened for the first stage: intermediates live inside its staging area.
      out ??= typeof options.out === "function" ? await options.out(plan) : options.out;
      const scratch = last ? undefined : await (out.scratch?.(`${i + 1}-${stage.name}`) ?? memoryScratch(`${stage.name} (intermediate stage of ${recipe.file})`));
      const onProgress = (e: MergeEvent) => {
        if (e.type !== "done") return emit(e);
        emit({ type: "stage-done", index: i, stages: stages.length, name: stage.name, tensors: e.tensors, seconds: e.seconds });
        if (last) emit({ ...e, seconds: (nowMs() - started) / 1000 });
      };
      summary = await runPlan(plan, scratch?.output ?? new FinalOutput(out, () => removeRead(Infinity)), { ...engine, onProgress });
      done.push({ name: stage.name, method: summary.method, tensors: summary.tensors, inputBytes: summary.inputBytes, outputBytes: summary.outputBytes, seconds: summary.seconds });
      if (scratch) intermediates.set(stage.name!, { scratch, folder: await scratch.folder() });
      await removeRead(i);
    }
    return { ...summary!, seconds: (nowMs() - started) / 1000, stages: done, ledger: ledger! };
  } catch (e) {
    await removeRead(Infinity).catch(() => undefined);
    await out?.discard().catch(() => undefined);
    throw e;
  }
}

/** An intermediate held in memory, for outputs without scratch folders (the in-memory output, tests). */
function memoryScratch(name: string): ScratchFolder {
  const output = new MemoryOutputFolder(name);
  return { output, folder: async () => output.folder(), remove: () => output.discard() };
}

/** The real output, whose intermediates are deleted just before it is committed or discarded. */
class FinalOutput implements OutputFolder {
  constructor(private readonly out: OutputFolder, private readonly beforeClose: () => Promise<void>) {}
  get name(): string {
    return this.out.name;
  }
  createFile(file: string, size: number, head: Uint8Array): Promise<OutputTarget> {
    return this.out.createFile(file, size, head);
  }
  write(file: string, offset: number, bytes: Uint8Array): Promise<void> {
    return this.out.write(file, offset, bytes);
  }
  writeText(file: string, text: string): Promise<void> {
    return this.out.writeText(file, text);
  }
  copyFrom(file: string, source: SourceRef): Promise<void> {
    return this.out.copyFrom(file, source);
  }
  async commit(): Promise<string[]> {
    await this.beforeClose();
    return this.out.commit();
  }
  async discard(): Promise<void> {
    await this.beforeClose().catch(() => undefined);
    await this.out.discard();
  }
}
