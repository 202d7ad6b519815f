// TIES's exact top-k with little memory beside a chunk. A chunked tensor's bracket pass histograms up to
// 2^20 keys per task vector; when that does not fit beside the chunk, the pass counts the bracket piece by
// piece. Found by an audit: with a budget of 8-48 MiB a 1.1M-element F32 tensor of three task vectors
// failed mid-merge ("no memory left for a select pass"), since each task's pieces kept their memory and
// the next task found none. The reference is tests/reference/merge.ts's scalar TIES.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { merge } from "../src/node";
import { referenceMerge, type RefModel } from "./reference/merge";
import { baseModel, compareTensor, fineTune, readOutput, removeDir, tempDir, WORKER_URL, writeCase, type Shape } from "./helpers/fixtures";

// The embedding and lm_head: 2100 x 512 = 1.08M F32 elements, about 17 MB of inputs each.
const SHAPE: Shape = { vocab: 2100, hidden: 512, intermediate: 64, layers: 1, heads: 4, kvHeads: 2 };
const RECIPES: Record<string, object> = {
  ties: {
    merge_method: "ties", base_model: "./base",
    models: ["a", "b", "c"].map((m, i) => ({ model: `./${m}`, parameters: { weight: 1, density: [0.5, 0.3, 0.7][i] } })),
  },
  breadcrumbs_ties: {
    merge_method: "breadcrumbs_ties", base_model: "./base",
    models: ["a", "b", "c"].map((m) => ({ model: `./${m}`, parameters: { weight: 0.6, density: 0.5, gamma: 0.02 } })),
  },
};

let root: string;
const models: Record<string, RefModel> = {};
before(async () => {
  root = await tempDir();
  models.base = baseModel(91, "F32", SHAPE);
  models.a = fineTune(models.base, 92, 0.05);
  models.b = fineTune(models.base, 93, 0.05, { quantum: 2 ** -10 }); // many equal |tau| around the k-th
  models.c = fineTune(models.base, 94, 0.02);
});
after(async () => { await removeDir(root); });

for (const [method, recipe] of Object.entries(RECIPES)) {
  test(`${method}: budgets of 8, 12 and 16 MiB give the reference's tensors (the bracket counted in pieces)`, async () => {
    const path = await writeCase(join(root, method), models, recipe);
    const expected = referenceMerge(recipe, new Map(Object.entries(models).map(([k, v]) => [`./${k}`, v])));
    for (const mib of [8, 12, 16]) {
      const out = join(root, `${method}-${mib}`);
      const summary = await merge(path, { out, workers: 1, memoryBudget: mib << 20, workerUrl: WORKER_URL });
      assert.ok(summary.peakWorkerMemory <= mib << 20, `${mib} MiB: peak wasm memory ${summary.peakWorkerMemory}`);
      assert.ok(summary.bytesRead > summary.inputBytes, `${mib} MiB: the embedding was chunked and read once per pass`);
      const ours = await readOutput(out);
      for (const [name, ref] of expected.tensors) {
        const { maxUlp, at } = compareTensor(ours.tensors.get(name)!, ref);
        assert.ok(maxUlp <= 4, `${method}, ${mib} MiB, ${name}: ${maxUlp} ulps from the reference at ${at}`);
      }
    }
  });
}
