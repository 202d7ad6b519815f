// Same recipe, inputs and seed: bit-identical output files with one or several workers and with
// different chunk sizes (chunking forces the multi-chunk path: passes spread over workers, radix select
// without a sample bracket, tie counts per chunk, float64 sums from per-tile partials).
import assert from "node:assert/strict";
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { merge } from "../src/node";
import { baseModel, fineTune, removeDir, tempDir, WORKER_URL, writeCase, type Shape } from "./helpers/fixtures";

let dir: string;
// Tensors of 40 x 512 = 20480 elements: five 4096-element chunks at the smallest chunk size.
const SHAPE: Shape = { vocab: 512, hidden: 40, intermediate: 512, layers: 2, heads: 4, kvHeads: 2 };
before(async () => {
  dir = await tempDir();
  const base = baseModel(61, "BF16", SHAPE);
  const ft = (seed: number) => fineTune(base, seed, 0.05, { quantum: 2 ** -8 }); // many equal |tau|
  await writeCase(dir, { base, a: ft(62), b: ft(63), c: ft(64) }, {}, {});
});
after(async () => { await removeDir(dir); });

const RECIPES: Record<string, string> = {
  ties: `merge_method: ties\nbase_model: ./base\nmodels:\n  - {model: ./a, parameters: {weight: 1, density: 0.3}}\n  - {model: ./b, parameters: {weight: 0.5, density: 0.6}}\n  - {model: ./c, parameters: {weight: 0.8, density: 0.45}}\nparameters: {rescale: true}\n`,
  dare_ties: `merge_method: dare_ties\nbase_model: ./base\nmodels:\n  - {model: ./a, parameters: {weight: 1, density: 0.3}}\n  - {model: ./b, parameters: {weight: 0.5, density: 0.6}}\n`,
  slerp: `merge_method: slerp\nbase_model: ./base\nmodels:\n  - {model: ./base}\n  - {model: ./c}\nparameters: {t: [0, 0.7]}\n`,
  breadcrumbs_ties: `merge_method: breadcrumbs_ties\nbase_model: ./base\nmodels:\n  - {model: ./a, parameters: {weight: 1, density: 0.4, gamma: 0.05}}\n  - {model: ./b, parameters: {weight: 0.5, density: 0.6}}\nparameters: {rescale: true, consensus_method: count}\n`,
  della: `merge_method: della\nbase_model: ./base\nmodels:\n  - {model: ./a, parameters: {weight: 1, density: 0.4}}\n  - {model: ./b, parameters: {weight: 0.5, density: 0.6, epsilon: 0.1}}\nparameters: {vote_weighted: false}\n`,
  sce: `merge_method: sce\nbase_model: ./base\nmodels:\n  - {model: ./a}\n  - {model: ./b}\n  - {model: ./c}\nparameters: {select_topk: 0.3}\n`,
  ramplus_tl: `merge_method: ramplus_tl\nbase_model: ./base\nmodels:\n  - {model: ./a}\n  - {model: ./b}\n  - {model: ./c}\nparameters: {epsilon: 0.004}\n`,
};

async function run(name: string, options: { workers: number; chunkElements?: number }): Promise<Map<string, Buffer>> {
  const recipe = join(dir, `${name}.yml`);
  await import("node:fs/promises").then((fs) => fs.writeFile(recipe, RECIPES[name]!));
  const out = join(dir, `out-${name}-${options.workers}-${options.chunkElements ?? 0}`);
  await merge(recipe, { out, seed: 99, workerUrl: WORKER_URL, ...options });
  const files = new Map<string, Buffer>();
  for (const f of (await readdir(out)).filter((f) => f.endsWith(".safetensors"))) files.set(f, await readFile(join(out, f)));
  return files;
}

for (const name of Object.keys(RECIPES)) {
  test(`${name}: identical bytes for 1 or 3 workers and for whole, 4096- and 12288-element chunks`, async () => {
    const reference = await run(name, { workers: 1 });
    for (const options of [{ workers: 3 }, { workers: 1, chunkElements: 4096 }, { workers: 3, chunkElements: 4096 }, { workers: 2, chunkElements: 12288 }]) {
      const got = await run(name, options);
      assert.deepEqual([...got.keys()], [...reference.keys()]);
      for (const [file, bytes] of reference) assert.ok(bytes.equals(got.get(file)!), `${name}: ${file} differs with ${JSON.stringify(options)}`);
    }
  });
}
