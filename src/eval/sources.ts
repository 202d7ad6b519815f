/**
 * @file Where an evaluated model's weights come from: a checkpoint (references into its files, which
 * the workers read themselves), or a recipe merged on the spot, a few tensors at a time, just before
 * they are needed (the bytes are exactly those the merge would write, so evaluating a recipe gives the
 * same numbers as evaluating its written output, without writing it).
 */
import { ModelError } from "../errors";
import { OverlayFolder, type ModelFolder } from "../io/folder";
import { outputConfig } from "../merge/card";
import { chunkElementsFor, computeTensorBytes, tensorJob, type EngineOptions } from "../merge/engine";
import type { LoadedModel } from "../model/model";
import type { MergePlan, PlannedTensor } from "../plan/plan";
import type { WorkerPool } from "../pool/pool";
import { decoderSpec, type DecoderSpec } from "./architecture";
import type { WeightRef } from "./protocol";

export interface DecoderSource {
  /** As the person named it (a path, a recipe file), for results and messages. */
  readonly name: string;
  readonly spec: DecoderSpec;
  /** The folder its tokenizer files are in (a recipe's: its donor model's, which the merge copies). */
  readonly folder: ModelFolder;
  /** References to these tensors, ready to send to workers (computing them first, for a recipe). */
  weights(names: readonly string[]): Promise<Map<string, WeightRef>>;
}

/** A checkpoint: references into its files. */
export function checkpointSource(name: string, model: LoadedModel): DecoderSource {
  const spec = decoderSpec(model.config, model.tensors, model.location);
  return {
    name, spec, folder: model.folder,
    async weights(names) {
      return new Map(names.map((n) => {
        const t = model.tensors.get(n)!;
        return [n, { name: n, dtype: t.dtype, shape: t.shape, source: t.source, offset: t.offset }];
      }));
    },
  };
}

/**
 * The folder a recipe's merge would write, as far as evaluating it reads one: the donor's files, with
 * the merge's config.json (`configText`, outputConfig's) and, where the recipe has tokenizer keys, the
 * rebuilt tokenizer files, so that text is tokenized as the written merge's would be.
 */
export function mergedFolder(plan: MergePlan, configText: string | null): ModelFolder {
  const donor = plan.models.get(plan.donor)!;
  const texts = new Map(plan.tokenizerOutput?.files ?? []);
  if (configText !== null) texts.set("config.json", configText);
  return new OverlayFolder(donor.folder.name, donor.folder, texts, plan.tokenizerOutput?.omit);
}

/**
 * A recipe, merged tensor by tensor on `pool` when its weights are asked for. The merge's options
 * (seed, memory budget, chunk size) are the merge's own, so the bytes equal the written file's.
 */
export function recipeSource(name: string, plan: MergePlan, pool: () => WorkerPool, options: Pick<EngineOptions, "memoryBudget" | "chunkBytes" | "chunkElements" | "seed">, onWarning?: (message: string) => void): DecoderSource {
  const configText = outputConfig(plan);
  const tensors = new Map<string, PlannedTensor>(plan.tensors.map((t) => [t.name, t]));
  const shapes = new Map([...tensors].map(([n, t]) => [n, { shape: t.shape, dtype: t.dtype }]));
  const config = configText === null ? null : (JSON.parse(configText) as Record<string, unknown>);
  const spec = decoderSpec(config, shapes, `${plan.recipe.file} (the merged model)`);
  const indexOf = new Map(plan.tensors.map((t, i) => [t, i]));
  const folder = mergedFolder(plan, configText);
  for (const message of plan.warnings) onWarning?.(message);
  return {
    name, spec, folder,
    async weights(names) {
      const out = new Map<string, WeightRef>();
      await Promise.all(names.map(async (n) => {
        const t = tensors.get(n);
        if (!t) throw new ModelError("E_TENSOR_MISSING", `${plan.recipe.file}: the merged model has no tensor "${n}"`, { file: plan.recipe.file, tensor: n });
        const job = tensorJob(plan, t, indexOf.get(t)!, { target: { kind: "return" }, offset: 0 }, chunkElementsFor(t, options), options.seed);
        out.set(n, { name: n, dtype: t.dtype, shape: t.shape, bytes: await computeTensorBytes(pool(), job, t.outputBytes, onWarning) });
      }));
      return out;
    },
  };
}
