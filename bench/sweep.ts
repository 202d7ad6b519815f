// Bench section: a sweep against doing it by hand, on a SmolLM-135M-shaped Llama (bench section 9's
// generator): two such models (different random weights) slerped, `parameters.t` swept over 0:1:11,
// scored on 2 windows of 512 tokens with 2 workers. By hand = for each of the 11 points, merge() the
// point's recipe into a folder and evaluate() the folder (library calls in this process, so process
// start-up is not counted on either side). The sweep's points are checked bit-identical to the
// hand-made ones.
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { evaluate, merge, sweep } from "../src/node";
import { SMOLLM_SHAPE, writeTiedLlama } from "./forward";

export async function sweepSection(dir: string, quick: boolean, line: (s?: string) => void, workerUrl: URL): Promise<void> {
  const shape = quick ? { ...SMOLLM_SHAPE, layers: 4, vocab: 8192 } : SMOLLM_SHAPE;
  const root = join(dir, quick ? "sweep-quick" : "sweep-135m");
  await mkdir(root, { recursive: true });
  await writeTiedLlama(join(root, "a"), shape, 0x12345678);
  await writeTiedLlama(join(root, "b"), shape, 0x9e3779b9);
  const recipe = join(root, "recipe.yml");
  await writeFile(recipe, "merge_method: slerp\nbase_model: ./a\nmodels:\n  - model: ./a\n  - model: ./b\nparameters:\n  t: 0.5\ndtype: bfloat16\n");
  const windows = 2, context = 512, points = 11;
  const ids = Array.from({ length: windows * context }, (_, i) => (Math.imul(i + 7, 2654435761) >>> 0) % shape.vocab);
  line(`10. Sweep: slerp of two ${quick ? "4-layer" : "SmolLM-135M-shaped"} Llamas (${shape.layers} layers, vocab ${shape.vocab}, BF16), parameters.t = 0:1:${points}, ${windows} × ${context} tokens per point, 2 workers`);

  const t0 = performance.now();
  const swept = await sweep(recipe, [`parameters.t=0:1:${points}`], { ids, context, workers: 2, workerUrl });
  const sweepSeconds = (performance.now() - t0) / 1000;

  let mergeSeconds = 0, evalSeconds = 0, identical = 0;
  for (const [i, p] of swept.points.entries()) {
    const file = join(root, `point-${i}.yml`), out = join(root, `point-${i}`);
    await writeFile(file, p.recipe);
    const m0 = performance.now();
    await merge(file, { out, force: true, workers: 2, workerUrl });
    const e0 = performance.now();
    const { results } = await evaluate([out], { ids, context, workers: 2, workerUrl });
    evalSeconds += (performance.now() - e0) / 1000;
    mergeSeconds += (e0 - m0) / 1000;
    if (results[0]!.nll === p.nll && results[0]!.perplexity === p.perplexity) identical++;
    await rm(out, { recursive: true, force: true });
  }
  const byHand = mergeSeconds + evalSeconds;
  line(`   sweep: ${sweepSeconds.toFixed(1)} s (${swept.tensorsComputed} tensors merged, ${swept.tensorsShared} shared uses, ${swept.pointsPerPass} points per layer-major pass)`);
  line(`   by hand, 11 × (merge + eval): ${byHand.toFixed(1)} s (merge ${mergeSeconds.toFixed(1)} s, eval ${evalSeconds.toFixed(1)} s)`);
  line(`   sweep / by hand: ${(sweepSeconds / byHand).toFixed(2)}x (target <= 0.5x); points bit-identical to the written merges: ${identical}/${swept.points.length}`);
  line(`   NLL over t: ${swept.points.map((p) => p.nll.toFixed(3)).join(" ")}`);
  line();
}
