/**
 * @file Several models through the workers' sequences layer by layer together: the embeddings of every
 * model, then layer 0 of every model, then layer 1, ... Each model keeps its own hidden states in the
 * workers (as scoreModels does one model after another), and each model's layer runs with the same
 * kernels on the same sequences, so its numbers are those of running it alone. What the order buys:
 * - models whose weights so far are the same tensor jobs (a sweep's points that differ only in later
 *   layers) share one set of hidden states, computed once; it is copied (forked) for each model at
 *   the first step whose weights differ;
 * - a step's merged tensors that several models share are merged once (SharedTensors);
 * - the next model's weights are merged while this one's layer runs.
 */
import type { WorkerPool } from "../pool/pool";
import type { LayerWeights, WeightRef } from "../eval/protocol";
import type { DecoderSource } from "../eval/sources";
import type { Phases } from "../eval/profile";
import { forModel } from "../eval/engine";

export interface RunEntry {
  /** A name for its hidden states in the workers, unique among the entries. */
  id: string;
  /** `key`: a tensor's job identity (equal keys, equal bytes); without it, nothing is shared. */
  source: DecoderSource & { expect?: (names: readonly string[]) => void; key?: (name: string) => string };
}

type WorkerApi = Parameters<Parameters<WorkerPool["on"]>[1]>[0];

/** Runs every entry through its final norm; returns, per entry id, the id of the hidden states to score, and the layer runs done. */
export async function runLayerMajor(pool: WorkerPool, workers: number, entries: readonly RunEntry[], onLayer: (layer: number, layers: number) => void, signal?: AbortSignal, phases?: Phases): Promise<{ states: Map<string, string>; layerRuns: number }> {
  const all = (task: (api: WorkerApi) => Promise<unknown>) => Promise.all(Array.from({ length: workers }, (_, w) => pool.on(w, task)));
  /** Per entry: the weights it has been through (job keys), and the states holding the result. */
  const path = new Map<RunEntry, string>(entries.map((e) => [e, ""]));
  const state = new Map<RunEntry, string>();
  let layerRuns = 0;

  /**
   * One step for every entry that has it. Entries whose paths are equal after this step form a group,
   * run once, by its first entry; a group that leaves the states it came from to another group forks them.
   */
  const step = async (label: string, namesOf: (e: RunEntry) => string[] | null, run: (e: RunEntry, into: string, refs: Map<string, WeightRef>) => Promise<unknown>) => {
    const groups = new Map<string, RunEntry[]>();
    for (const e of entries) {
      const names = namesOf(e);
      if (!names) continue;
      const keys = names.map((n) => (e.source.key ? e.source.key(n) : `${e.id}\u0000${n}`));
      const p = `${path.get(e)!}\n${keys.join("\t")}`;
      path.set(e, p);
      const group = groups.get(p) ?? [];
      group.push(e);
      groups.set(p, group);
    }
    const runs = [...groups.values()].map((members) => ({ members, rep: members[0]!, names: namesOf(members[0]!)! }));
    for (const { rep, names } of runs) rep.source.expect?.(names);
    const fetch = (i: number) => {
      const p = runs[i]!.rep.source.weights(runs[i]!.names);
      p.catch(() => undefined); // awaited below; a failure while an earlier run is going is not unhandled
      return p;
    };
    // Where each group's result goes, and every copy made before any group changes the states it copies.
    // A group works on the states it comes from in place unless they are taken: by a group before it in
    // this step, or by an entry without this step (a shallower model's, already through its last layer
    // and kept for its final norm). Then it forks them into states no entry holds.
    const stepping = new Set(runs.flatMap((r) => r.members));
    const taken = new Set<string>();
    for (const e of entries) if (!stepping.has(e) && state.has(e)) taken.add(state.get(e)!);
    const held = new Set(state.values());
    const unheld = (id: string) => {
      let name = id;
      for (let n = 1; held.has(name); n++) name = `${id}~${n}`;
      held.add(name);
      return name;
    };
    const intos: string[] = [];
    for (const { rep } of runs) {
      const from = state.get(rep);
      const into = from !== undefined && !taken.has(from) ? from : unheld(rep.id); // the embedding step makes the states
      if (from !== undefined && into !== from) await (phases ? phases.time("fork", all((api) => api.evalFork(from, into, rep.source.spec.hidden))) : all((api) => api.evalFork(from, into, rep.source.spec.hidden)));
      taken.add(into);
      intos.push(into);
    }
    let next = runs.length > 0 ? fetch(0) : undefined;
    for (let i = 0; i < runs.length; i++) {
      signal?.throwIfAborted();
      const { members, rep } = runs[i]!;
      const refs = await (phases ? phases.time(`${label}: wait for merged weights`, next!) : next!);
      next = i + 1 < runs.length ? fetch(i + 1) : undefined;
      const ran = () => forModel(rep.source.name, run(rep, intos[i]!, refs));
      await (phases ? phases.time(`${label}: run`, ran) : ran());
      for (const m of members) state.set(m, intos[i]!);
    }
    return runs.length;
  };

  await step("embed", ({ source: { spec } }) => [spec.embed, ...(spec.positions ? [spec.positions] : [])], async ({ source: { spec } }, into, refs) =>
    all((api) => api.evalEmbed(into, spec, refs.get(spec.embed)!, spec.positions ? refs.get(spec.positions) : undefined)));
  const layers = Math.max(...entries.map((e) => e.source.spec.layers));
  for (let l = 0; l < layers; l++) {
    layerRuns += await step("layers", ({ source: { spec } }) => (l < spec.layers ? Object.values(spec.layerNames[l]!).filter((n): n is string => n !== undefined) : null), async ({ source: { spec } }, into, refs) => {
      const weights: LayerWeights = {};
      for (const [role, name] of Object.entries(spec.layerNames[l]!) as [keyof LayerWeights, string | undefined][]) if (name !== undefined) weights[role] = refs.get(name)!;
      return all((api) => api.evalLayer(into, spec, l, weights));
    });
    onLayer(l, layers);
  }
  await step("final norm", ({ source: { spec } }) => [spec.finalNorm, ...(spec.finalNormBias ? [spec.finalNormBias] : [])], async ({ source: { spec } }, into, refs) =>
    all((api) => api.evalFinalNorm(into, spec, refs.get(spec.finalNorm)!, spec.finalNormBias ? refs.get(spec.finalNormBias) : undefined)));
  return { states: new Map(entries.map((e) => [e.id, state.get(e)!])), layerRuns };
}
