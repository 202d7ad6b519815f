// Bench section: a sweep against doing it by hand, on a SmolLM-135M-shaped Llama (bench section 9's
// generator): two such models (different random weights) slerped, 11 points, scored on 2 windows of
// 512 tokens with 2 workers. Two sweeps:
//   - `parameters.t` = 0:1:11: every tensor changes from point to point, so nothing can be shared
//     (the worst case: each point costs a merge and a forward pass whatever the tool);
//   - `parameters.t[3]` = 0:1:11 of the gradient t: [0, 0, 0, X]: the upper third of the layers (and
//     the final norm) changes, the rest is the same at every point, so the sweep merges and runs it once.
// Two by-hand baselines for each, timed in the same run:
//   (a) the CLI, as a person does it: per point `weightsoup merge POINT.yml DIR` then
//       `weightsoup eval DIR --ids ...` as separate processes (start-up, writing and reading back
//       included), the folder removed after;
//   (b) the library in this process: per point merge() into a folder, then evaluate() of it (no
//       process start-up; the written merge is still written and read back).
// Every point's NLL from both baselines is checked bit-identical to the sweep's.
import { spawnSync } from "node:child_process";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { evaluate, merge, sweep } from "../src/node";
import { SMOLLM_SHAPE, writeTiedLlama } from "./forward";

const CLI = fileURLToPath(new URL("../../dist/cli.cjs", import.meta.url));

export async function sweepSection(dir: string, quick: boolean, line: (s?: string) => void, workerUrl: URL): Promise<void> {
  const shape = quick ? { ...SMOLLM_SHAPE, layers: 4, vocab: 8192 } : SMOLLM_SHAPE;
  const root = join(dir, quick ? "sweep-quick" : "sweep-135m");
  await mkdir(root, { recursive: true });
  await writeTiedLlama(join(root, "a"), shape, 0x12345678);
  await writeTiedLlama(join(root, "b"), shape, 0x9e3779b9);
  const windows = 2, context = 512, points = 11;
  const ids = Array.from({ length: windows * context }, (_, i) => (Math.imul(i + 7, 2654435761) >>> 0) % shape.vocab);
  const idsFile = join(root, "ids.json");
  await writeFile(idsFile, JSON.stringify(ids));
  line(`10. Sweep: slerp of two ${quick ? "4-layer" : "SmolLM-135M-shaped"} Llamas (${shape.layers} layers, vocab ${shape.vocab}, BF16), ${points} points, ${windows} × ${context} tokens per point, 2 workers`);
  const cases = [
    { what: "parameters.t = 0:1:11 (every tensor changes)", t: "0.5", vary: `parameters.t=0:1:${points}`, everyTensor: true },
    { what: "parameters.t[3] = 0:1:11 of t: [0, 0, 0, X] (the upper third of the layers changes)", t: "[0, 0, 0, 0.5]", vary: `parameters.t[3]=0:1:${points}`, everyTensor: false },
  ];
  for (const c of cases) {
    const recipe = join(root, "recipe.yml");
    await writeFile(recipe, `merge_method: slerp\nbase_model: ./a\nmodels:\n  - model: ./a\n  - model: ./b\nparameters:\n  t: ${c.t}\ndtype: bfloat16\n`);
    const t0 = performance.now();
    const swept = await sweep(recipe, [c.vary], { ids, context, workers: 2, workerUrl });
    const sweepSeconds = (performance.now() - t0) / 1000;

    // (a) The CLI, two processes per point.
    let cliMerge = 0, cliEval = 0, cliIdentical = 0;
    for (const [i, p] of swept.points.entries()) {
      const file = join(root, `point-${i}.yml`), out = join(root, `cli-point-${i}`);
      await writeFile(file, p.recipe);
      const m0 = performance.now();
      const m = spawnSync(process.execPath, [CLI, "merge", file, out, "--force", "--workers", "2", "--quiet"], { encoding: "utf8" });
      const e0 = performance.now();
      if (m.status !== 0) throw new Error(`weightsoup merge failed: ${m.stderr}`);
      const e = spawnSync(process.execPath, [CLI, "eval", out, "--ids", idsFile, "--context", String(context), "--workers", "2", "--json", "--quiet"], { encoding: "utf8" });
      cliEval += (performance.now() - e0) / 1000;
      cliMerge += (e0 - m0) / 1000;
      if (e.status !== 0) throw new Error(`weightsoup eval failed: ${e.stderr}`);
      // JSON numbers print the shortest round-trip form, so equal doubles read back equal.
      const nll = (JSON.parse(e.stdout) as { results: { nll: number }[] }).results[0]!.nll;
      if (nll === p.nll) cliIdentical++;
      await rm(out, { recursive: true, force: true });
    }

    // (b) The library in this process.
    let libMerge = 0, libEval = 0, libIdentical = 0;
    for (const [i, p] of swept.points.entries()) {
      const file = join(root, `point-${i}.yml`), out = join(root, `point-${i}`);
      const m0 = performance.now();
      await merge(file, { out, force: true, workers: 2, workerUrl });
      const e0 = performance.now();
      const { results } = await evaluate([out], { ids, context, workers: 2, workerUrl });
      libEval += (performance.now() - e0) / 1000;
      libMerge += (e0 - m0) / 1000;
      if (results[0]!.nll === p.nll && results[0]!.perplexity === p.perplexity) libIdentical++;
      await rm(out, { recursive: true, force: true });
    }
    const cli = cliMerge + cliEval, lib = libMerge + libEval;
    line(`   ${c.what}:`);
    line(`     sweep: ${sweepSeconds.toFixed(1)} s (${swept.tensorsComputed} tensors merged, ${swept.tensorsShared} shared uses, ${swept.layerRuns} layer runs, ${swept.pointsPerPass} points per layer-major pass)`);
    line(`     (a) by hand with the CLI, ${points} × (weightsoup merge + weightsoup eval processes): ${cli.toFixed(1)} s (merge ${cliMerge.toFixed(1)} s, eval ${cliEval.toFixed(1)} s); sweep / (a): ${(sweepSeconds / cli).toFixed(2)}x (target <= 0.5x)`);
    line(`     (b) by hand in one process, ${points} × (merge() + evaluate()): ${lib.toFixed(1)} s (merge ${libMerge.toFixed(1)} s, eval ${libEval.toFixed(1)} s); sweep / (b): ${(sweepSeconds / lib).toFixed(2)}x`);
    // What no sweep that changes every tensor can go below: scoring every point's model costs a forward pass per point even when
    // merging is free, and (b)'s eval is exactly that (11 evaluate() calls of models already merged).
    if (c.everyTensor) line(`     floor: the ${points} forward passes alone ((b)'s eval) are ${(libEval / cli).toFixed(2)}x of (a); the sweep spends ${(sweepSeconds - libEval).toFixed(1)} s above them`);
    line(`     points bit-identical to the written merges: CLI ${cliIdentical}/${swept.points.length}, library ${libIdentical}/${swept.points.length}`);
    line(`     NLL: ${swept.points.map((p) => p.nll.toFixed(3)).join(" ")}`);
  }
  line();
}
