/**
 * @file Several models through the workers' sequences layer by layer together: the embeddings of every
 * model, then layer 0 of every model, then layer 1, ... Each model keeps its own hidden states in the
 * workers (as scoreModels does one model after another), and each model's layer runs with the same
 * kernels on the same sequences, so its numbers are those of running it alone. What changes is the
 * order: a layer's merged tensors that several points share are merged once and used by all of them
 * while they are in memory, and the next model's weights are merged while this one's layer runs.
 */
import type { WorkerPool } from "../pool/pool";
import type { LayerWeights, WeightRef } from "../eval/protocol";
import type { DecoderSource } from "../eval/sources";

export interface RunEntry {
  /** The id its hidden states have in the workers. */
  id: string;
  source: DecoderSource & { expect?: (names: readonly string[]) => void };
}

type WorkerApi = Parameters<Parameters<WorkerPool["on"]>[1]>[0];

export async function runLayerMajor(pool: WorkerPool, workers: number, entries: readonly RunEntry[], onLayer: (layer: number, layers: number) => void, signal?: AbortSignal): Promise<void> {
  const all = (task: (api: WorkerApi) => Promise<unknown>) => Promise.all(Array.from({ length: workers }, (_, w) => pool.on(w, task)));

  /** One step for every entry that has it: weights announced, the next entry's merged while this one's run. */
  const step = async (namesOf: (e: RunEntry) => string[] | null, run: (e: RunEntry, refs: Map<string, WeightRef>) => Promise<unknown>) => {
    const active = entries.flatMap((e) => { const names = namesOf(e); return names ? [{ e, names }] : []; });
    for (const { e, names } of active) e.source.expect?.(names);
    const fetch = (i: number) => {
      const p = active[i]!.e.source.weights(active[i]!.names);
      p.catch(() => undefined); // awaited below; a failure while an earlier step runs is not unhandled
      return p;
    };
    let next = active.length > 0 ? fetch(0) : undefined;
    for (let i = 0; i < active.length; i++) {
      signal?.throwIfAborted();
      const refs = await next!;
      next = i + 1 < active.length ? fetch(i + 1) : undefined;
      await run(active[i]!.e, refs);
    }
  };

  await step(({ source: { spec } }) => [spec.embed, ...(spec.positions ? [spec.positions] : [])], async ({ id, source: { spec } }, refs) =>
    all((api) => api.evalEmbed(id, spec, refs.get(spec.embed)!, spec.positions ? refs.get(spec.positions) : undefined)));
  const layers = Math.max(...entries.map((e) => e.source.spec.layers));
  for (let l = 0; l < layers; l++) {
    await step(({ source: { spec } }) => (l < spec.layers ? Object.values(spec.layerNames[l]!).filter((n): n is string => n !== undefined) : null), async ({ id, source: { spec } }, refs) => {
      const weights: LayerWeights = {};
      for (const [role, name] of Object.entries(spec.layerNames[l]!) as [keyof LayerWeights, string | undefined][]) if (name !== undefined) weights[role] = refs.get(name)!;
      return all((api) => api.evalLayer(id, spec, l, weights));
    });
    onLayer(l, layers);
  }
  await step(({ source: { spec } }) => [spec.finalNorm, ...(spec.finalNormBias ? [spec.finalNormBias] : [])], async ({ id, source: { spec } }, refs) =>
    all((api) => api.evalFinalNorm(id, spec, refs.get(spec.finalNorm)!, spec.finalNormBias ? refs.get(spec.finalNormBias) : undefined)));
}
