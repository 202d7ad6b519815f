/**
 * @file A sweep point as an evaluated model: recipeSource (src/eval/sources.ts) with its tensors
 * computed through the sweep's shared jobs, so the bytes are the written merge's and equal jobs of
 * different points are merged once.
 */
import { outputConfig } from "../merge/card";
import type { MergePlan } from "../plan/plan";
import { decoderSpec } from "../eval/architecture";
import type { WeightRef } from "../eval/protocol";
import { mergedFolder, type DecoderSource } from "../eval/sources";
import type { PointTensors } from "./shared-tensors";

export interface PointSource extends DecoderSource {
  /** Announces one use of each named tensor (see SharedTensors). */
  expect(names: readonly string[]): void;
  /** A tensor's job identity: equal at two points, equal bytes. */
  key(name: string): string;
  /** The merged tensor's size in bytes. */
  sizeOf(name: string): number;
}

export function pointSource(name: string, plan: MergePlan, tensors: PointTensors): PointSource {
  const configText = outputConfig(plan);
  const shapes = new Map(plan.tensors.map((t) => [t.name, { shape: t.shape, dtype: t.dtype }]));
  const config = configText === null ? null : (JSON.parse(configText) as Record<string, unknown>);
  const spec = decoderSpec(config, shapes, `${plan.recipe.file} (the merged model)`);
  const planned = new Map(plan.tensors.map((t) => [t.name, t]));
  return {
    // The written merge's config.json and tokenizer files (a recipe with tokenizer keys rebuilds them).
    name, spec, folder: mergedFolder(plan, configText),
    key: (n) => tensors.key(n),
    sizeOf: (n) => planned.get(n)!.outputBytes,
    expect(names) {
      for (const n of names) tensors.expect(n);
    },
    async weights(names) {
      const out = new Map<string, WeightRef>();
      await Promise.all(names.map(async (n) => {
        const bytes = await tensors.bytes(n);
        const t = planned.get(n)!;
        out.set(n, { name: n, dtype: t.dtype, shape: t.shape, bytes });
      }));
      return out;
    },
  };
}
