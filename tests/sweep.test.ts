// Sweeps: every point's numbers equal writing that point's merge (merge API) and evaluating the written
// folder (evaluate), bit for bit; merged tensors whose jobs are equal across points are computed once
// (counted by hand from the model's tensor names); point by point and layer-major give the same bits;
// keys and SPECs parse as the README defines them (hand-worked values) and bad ones are typed errors
// naming the key; the CLI's JSON, CSV and --write-best.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { AbortError, evaluate, merge, sweep, parseVary, assignValues, OptionError, WeightsoupError, type SweepEvent } from "../src/node";
import { parseRecipe } from "../src/recipe/recipe";
import { CLI, removeDir, tempDir, WORKER_URL } from "./helpers/fixtures";
import { decoderIds, decoderModel, writeDecoderModel } from "./helpers/decoder-models";

let root: string;
let n = 0;
before(async () => { root = await tempDir("ws-sweep-"); });
after(async () => { await removeDir(root); });

/** base, a, b: three random llama-gqa-untied models (BF16) in a fresh folder. */
async function family(): Promise<string> {
  const dir = join(root, `f${n++}`);
  for (const [name, seed] of [["base", 21], ["a", 22], ["b", 23]] as const) await writeDecoderModel(join(dir, name), decoderModel("llama-gqa-untied", { seed, dtype: "BF16" }));
  return dir;
}

const ids = decoderIds(160, 41, 5);

/** The reference: the point's recipe written by merge() and its folder evaluated by evaluate(). */
async function written(dir: string, recipeText: string, against: string[], tokens: number[] = ids): Promise<{ nll: number; perplexity: number; against: { model: string; kl: number; top1Agreement: number }[] }> {
  const file = join(dir, `point-${n++}.yml`);
  await writeFile(file, recipeText);
  const out = join(dir, `merged-${n++}`);
  await merge(file, { out, workerUrl: WORKER_URL });
  const { results } = await evaluate([out], { ids: tokens, context: 16, against, workerUrl: WORKER_URL, workers: 2 });
  const r = results[0]!;
  return { nll: r.nll, perplexity: r.perplexity, against: r.against.map((a) => ({ model: a.model, kl: a.kl, top1Agreement: a.top1Agreement })) };
}

describe("sweep points equal written merges", () => {
  test("a 2-D grid over a task_arithmetic recipe (a model's weight × a gradient anchor), against a parent", async () => {
    const dir = await family();
    const recipe = join(dir, "recipe.yml");
    await writeFile(recipe, "merge_method: task_arithmetic\nbase_model: ./base\nmodels:\n  - model: ./a\n    parameters: {weight: [1.0, 0.5]}\n  - model: ./b\n    parameters: {weight: 0.5}\ndtype: bfloat16\n");
    const against = [join(dir, "a")];
    const r = await sweep(recipe, ["models[1].parameters.weight=0.2,0.9", "models[0].parameters.weight[1]=0:1:3"], { ids, context: 16, against, workerUrl: WORKER_URL, workers: 2 });
    assert.deepEqual(r.points.map((p) => ({ ...p.values })), [
      { "models[1].parameters.weight": 0.2, "models[0].parameters.weight[1]": 0 },
      { "models[1].parameters.weight": 0.2, "models[0].parameters.weight[1]": 0.5 },
      { "models[1].parameters.weight": 0.2, "models[0].parameters.weight[1]": 1 },
      { "models[1].parameters.weight": 0.9, "models[0].parameters.weight[1]": 0 },
      { "models[1].parameters.weight": 0.9, "models[0].parameters.weight[1]": 0.5 },
      { "models[1].parameters.weight": 0.9, "models[0].parameters.weight[1]": 1 },
    ]);
    // Three of the six points, each written and evaluated separately.
    for (const i of [0, 4, 5]) {
      const p = r.points[i]!;
      const ref = await written(dir, p.recipe, against);
      assert.deepEqual({ nll: p.nll, perplexity: p.perplexity, against: p.against }, ref, `point ${i}`);
    }
    // Points differ (the sweep did vary something), and best is the lowest NLL.
    assert.ok(new Set(r.points.map((p) => p.nll)).size > 1);
    assert.equal(r.points[r.best]!.nll, Math.min(...r.points.map((p) => p.nll)));
  });

  test("point by point (maxPointsPerPass 1) and layer-major give the same bits, for 1 and 2 workers", async () => {
    const dir = await family();
    const recipe = join(dir, "recipe.yml");
    await writeFile(recipe, "merge_method: slerp\nbase_model: ./a\nmodels:\n  - model: ./a\n  - model: ./b\nparameters:\n  t: [0.1, 0.9]\ndtype: bfloat16\n");
    const runs = [];
    for (const [workers, maxPointsPerPass] of [[2, undefined], [2, 1], [1, 2]] as const) {
      runs.push(await sweep(recipe, ["parameters.t[0]=0,0.5,1"], { ids, context: 16, workerUrl: WORKER_URL, workers, ...(maxPointsPerPass ? { maxPointsPerPass } : {}) }));
    }
    assert.equal(runs[1]!.pointsPerPass, 1);
    for (const run of runs.slice(1)) assert.deepEqual(run.points, runs[0]!.points);
    const ref = await written(dir, runs[0]!.points[1]!.recipe, []);
    assert.equal(runs[0]!.points[1]!.nll, ref.nll);
  });
});

describe("reuse", () => {
  test("a value that changes only attention tensors merges every other tensor once for all points", async () => {
    const dir = await family();
    const recipe = join(dir, "recipe.yml");
    await writeFile(recipe, "merge_method: linear\nmodels:\n  - model: ./a\n    parameters:\n      weight:\n        - {filter: self_attn, value: 0.5}\n        - {value: 0.7}\n  - model: ./b\n    parameters: {weight: 0.4}\ndtype: bfloat16\n");
    const r = await sweep(recipe, ["models[0].parameters.weight[0].value=0.1,0.3,0.6"], { ids, context: 16, workerUrl: WORKER_URL, workers: 2 });
    const header = JSON.parse((await readFile(join(dir, "a", "model.safetensors"))).subarray(8, 8 + Number((await readFile(join(dir, "a", "model.safetensors"))).readBigUInt64LE(0))).toString()) as Record<string, unknown>;
    const names = Object.keys(header).filter((k) => k !== "__metadata__");
    const attention = names.filter((k) => k.includes("self_attn")).length, other = names.length - attention;
    assert.ok(attention > 0 && other > 0);
    // Each tensor is used once per point (this model has its own lm_head); attention differs per point.
    // The embedding step is the same job at all three points, so it runs once (one use, nothing to share).
    assert.equal(r.tensorsComputed, other + 3 * attention);
    assert.equal(r.tensorsShared, 2 * (other - 1));
    assert.equal(r.layerRuns, 3 * 2, "attention differs from layer 0 on: no layer is shared");
    const ref = await written(dir, r.points[2]!.recipe, []);
    assert.equal(r.points[2]!.nll, ref.nll);
  });
});

describe("tied output projection", () => {
  test("a tied embedding is merged once per point (embedding and output projection), and the points equal the written merges", async () => {
    const dir = join(root, `f${n++}`);
    for (const [name, seed] of [["a", 31], ["b", 32]] as const) await writeDecoderModel(join(dir, name), decoderModel("llama-tied-headdim", { seed, dtype: "BF16" }));
    const recipe = join(dir, "recipe.yml");
    await writeFile(recipe, "merge_method: slerp\nbase_model: ./a\nmodels:\n  - model: ./a\n  - model: ./b\nparameters:\n  t: 0.5\ndtype: bfloat16\n");
    const tiedIds = decoderIds(128, 41, 5);
    const r = await sweep(recipe, ["parameters.t=0.2,0.5,0.8"], { ids: tiedIds, context: 16, workerUrl: WORKER_URL, workers: 2 });
    const file = await readFile(join(dir, "a", "model.safetensors"));
    const names = Object.keys(JSON.parse(file.subarray(8, 8 + Number(file.readBigUInt64LE(0))).toString()) as Record<string, unknown>).filter((k) => k !== "__metadata__");
    assert.ok(!names.includes("lm_head.weight") && names.includes("model.embed_tokens.weight"), "the model is tied");
    // t changes every tensor's job, so nothing is shared between points; within a point, the output
    // projection is the embedding merged for the embedding step.
    assert.equal(r.tensorsComputed, 3 * names.length);
    assert.equal(r.tensorsShared, 3);
    for (const i of [0, 1, 2]) {
      const ref = await written(dir, r.points[i]!.recipe, [], tiedIds);
      assert.deepEqual({ nll: r.points[i]!.nll, perplexity: r.points[i]!.perplexity, against: r.points[i]!.against }, ref, `point ${i}`);
    }
    // Point by point (a pass per point) gives the same bits.
    const alone = await sweep(recipe, ["parameters.t=0.2,0.5,0.8"], { ids: tiedIds, context: 16, workerUrl: WORKER_URL, workers: 1, maxPointsPerPass: 1 });
    assert.deepEqual(alone.points, r.points);
  });
});

describe("shared first layers", () => {
  test("points that differ only in the last slice run the first layer once, fork, and equal the written merges", async () => {
    const dir = await family();
    const recipe = join(dir, "recipe.yml");
    await writeFile(recipe, `merge_method: linear
slices:
  - sources:
      - {model: ./a, layer_range: [0, 1], parameters: {weight: 0.5}}
      - {model: ./b, layer_range: [0, 1], parameters: {weight: 0.5}}
  - sources:
      - {model: ./a, layer_range: [1, 2], parameters: {weight: 0.5}}
      - {model: ./b, layer_range: [1, 2], parameters: {weight: 0.3}}
dtype: bfloat16
`);
    const vary = ["slices[1].sources[1].parameters.weight=0.1,0.3,0.6"];
    const together = await sweep(recipe, vary, { ids, context: 16, workerUrl: WORKER_URL, workers: 2, against: [join(dir, "a")] });
    const alone = await sweep(recipe, vary, { ids, context: 16, workerUrl: WORKER_URL, workers: 2, against: [join(dir, "a")], maxPointsPerPass: 1 });
    // Point by point: 3 passes × (2 layers of the against model + 2 of the point) = 12 layer runs.
    // Together: the against model's 2, and layer 0 (the first slice, the same job at every point) once + layer 1 three times.
    assert.equal(alone.layerRuns, 12);
    assert.equal(together.layerRuns, 2 + 1 + 3);
    assert.deepEqual(together.points, alone.points);
    for (const i of [0, 2]) {
      const ref = await written(dir, together.points[i]!.recipe, [join(dir, "a")]);
      assert.deepEqual({ nll: together.points[i]!.nll, perplexity: together.points[i]!.perplexity, against: together.points[i]!.against }, ref, `point ${i}`);
    }
  });
});

describe("points of different depths", () => {
  // A point whose layers are the first layers of another's shares its hidden states up to its last
  // layer; the deeper point must fork them there, not run its extra layers on them in place (the
  // shallower point was scored on the deeper one's states: same NLL for both).
  test("a point whose layers are another point's first layers keeps its own states, in either order, and both equal the written merges", async () => {
    const dir = await family();
    const recipe = join(dir, "recipe.yml");
    await writeFile(recipe, `merge_method: passthrough
slices:
  - sources:
      - {model: ./a, layer_range: [0, 1]}
  - sources:
      - {model: ./b, layer_range: [0, 1]}
dtype: bfloat16
`);
    const against = [join(dir, "a")];
    const refs = new Map<number, Awaited<ReturnType<typeof written>>>();
    for (const order of ["1,2", "2,1"]) {
      const { points } = await sweep(recipe, [`slices[1].sources[0].layer_range[1]=${order}`], { ids, context: 16, workerUrl: WORKER_URL, workers: 2, against });
      assert.notEqual(points[0]!.nll, points[1]!.nll, `${order}: two and three layers score differently`);
      for (const p of points) {
        const end = p.values["slices[1].sources[0].layer_range[1]"]!;
        if (!refs.has(end)) refs.set(end, await written(dir, p.recipe, against));
        assert.deepEqual({ nll: p.nll, perplexity: p.perplexity, against: p.against }, refs.get(end), `order ${order}: layer_range end ${end}`);
      }
    }
  });
});

describe("events and abort", () => {
  test("a sweep-point event per point with its numbers, in order; an aborted sweep rejects with AbortError", async () => {
    const dir = await family();
    const recipe = join(dir, "recipe.yml");
    await writeFile(recipe, "merge_method: linear\nmodels:\n  - model: ./a\n    parameters: {weight: 0.5}\n  - model: ./b\n    parameters: {weight: 0.5}\ndtype: bfloat16\n");
    const events: SweepEvent[] = [];
    const r = await sweep(recipe, ["models[1].parameters.weight=0.2,0.8"], { ids, context: 16, workerUrl: WORKER_URL, onProgress: (e) => events.push(e) });
    const points = events.filter((e): e is Extract<SweepEvent, { type: "sweep-point" }> => e.type === "sweep-point");
    assert.deepEqual(points.map((e) => [e.index, e.nll, e.perplexity]), r.points.map((p, i) => [i, p.nll, p.perplexity]));
    assert.equal(events[0]!.type, "sweep-plan");
    assert.equal(events.at(-1)!.type, "sweep-done");
    const controller = new AbortController();
    const aborted = sweep(recipe, ["models[1].parameters.weight=0.2,0.8"], { ids, context: 16, workerUrl: WORKER_URL, signal: controller.signal, onProgress: (e) => { if (e.type === "sweep-layer") controller.abort(); } });
    await assert.rejects(aborted, (e: unknown) => e instanceof AbortError);
  });
});

describe("warnings", () => {
  test("a tensor merged NaN throughout (an infinite input) is the written merge's warning, once per sweep however many points merge it", async () => {
    const dir = await family();
    const name = "model.layers.1.self_attn.o_proj.weight";
    const b = decoderModel("llama-gqa-untied", { seed: 23, dtype: "BF16" });
    b.tensors.get(name)!.values[3] = Infinity; // dare_ties' L1 rescale of b's task vector is NaN at every point
    await writeDecoderModel(join(dir, "b"), b);
    const recipe = join(dir, "recipe.yml");
    await writeFile(recipe, "merge_method: dare_ties\nbase_model: ./base\nmodels:\n  - {model: ./a, parameters: {weight: 1, density: 0.5}}\n  - {model: ./b, parameters: {weight: 1, density: 0.5}}\ndtype: bfloat16\n");
    const written: string[] = [], swept: string[] = [];
    await merge(recipe, { out: join(dir, "merged"), workerUrl: WORKER_URL, onProgress: (e) => { if (e.type === "warning") written.push(e.message); } });
    assert.equal(written.length, 1, written.join("\n"));
    // Three points, each with its own job for the tensor (b's weight differs): three NaN tensors, one message.
    await sweep(recipe, ["models[1].parameters.weight=0.5,1,2"], { ids, context: 16, workerUrl: WORKER_URL, onProgress: (e) => { if (e.type === "warning") swept.push(e.message); } });
    assert.deepEqual(swept, written);
    // `weightsoup sweep` prints it on stderr, --quiet or not, and exits 0.
    await writeFile(join(dir, "ids.json"), JSON.stringify(ids));
    const run = spawnSync(process.execPath, [CLI, "sweep", recipe, "--vary", "models[1].parameters.weight=0.5,1", "--ids", join(dir, "ids.json"), "--context", "16", "--quiet"], { encoding: "utf8", timeout: 120_000, killSignal: "SIGKILL" });
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(run.stderr.split("\n").filter((l) => l.startsWith("weightsoup: warning: ")).map((l) => l.slice("weightsoup: warning: ".length)), written);
  });
});

describe("keys and SPECs", () => {
  test("ranges include both ends; lists keep their order", () => {
    assert.deepEqual(parseVary("parameters.t=0:1:5").values, [0, 0.25, 0.5, 0.75, 1]);
    assert.deepEqual(parseVary("parameters.t=1:-1:3").values, [1, 0, -1]);
    assert.deepEqual(parseVary("models[1].parameters.weight=0.8,0.2,.5,1e-1").values, [0.8, 0.2, 0.5, 0.1]);
    assert.equal(parseVary("parameters.t=0:1:11").values[10], 1);
  });

  test("values are set in the YAML text, where the key says", () => {
    const text = "merge_method: ties\nmodels:\n  - model: a\n    parameters: {weight: [1, 2, 3]}\n  - model: b\nparameters:\n  normalize: true\n";
    const out = parseRecipe(assignValues(text, "r.yml", new Map([["models[0].parameters.weight[2]", 0.25], ["parameters.density", 0.5]])), "r.yml");
    assert.deepEqual(out.models![0]!.parameters!.weight, [1, 2, 0.25]);
    assert.equal(out.parameters!.density, 0.5);
    assert.equal(out.parameters!.normalize, true);
  });

  test("a point's recipe is the recipe's text with only the varied numbers rewritten: flow style, quotes and comments as written", () => {
    const text = "merge_method: ties   # kept as written\nmodels:\n  - {model: 'a', parameters: {weight: [1, 2, 3], density: 0.5}}\n  - model: b\nparameters:\n  normalize: true\n";
    const out = assignValues(text, "r.yml", new Map([["models[0].parameters.weight[2]", 0.25], ["models[0].parameters.density", 1e-7]]));
    assert.equal(out, text.replace("3]", "0.25]").replace("0.5}", "1e-7}"));
    assert.equal(parseRecipe(out, "r.yml").models![0]!.parameters!.density, 1e-7);
    // -0 stays -0 (the merge tells it from 0: nuslerp's and ties' sign rules).
    assert.ok(Object.is(parseRecipe(assignValues(text, "r.yml", new Map([["models[0].parameters.density", -0]])), "r.yml").models![0]!.parameters!.density, -0));
  });

  const bad: [string, string, RegExp][] = [
    ["parameters.t=0:1:1", "parameters.t", /COUNT/],
    ["parameters.t=0:x:3", "parameters.t", /STOP "x"/],
    ["parameters.t=", "parameters.t", /no values/],
    ["models[1]..weight=1", "models[1]..weight", /not a recipe key/],
    ["=1", "=1", /KEY=SPEC/],
    // Found by the fuzz suite: finite ends whose difference overflows gave NaN and ±Infinity values.
    ["parameters.t=1e308:-1e308:3", "parameters.t", /not a finite number/],
    ["parameters.t=-1.7e308:1.7e308:2", "parameters.t", /not a finite number/],
  ];
  for (const [arg, key, message] of bad) {
    test(`refused: ${arg}`, () => {
      assert.throws(() => parseVary(arg), (e: unknown) => e instanceof OptionError && e.code === "E_OPTION" && e.details.key === key && message.test(e.message));
    });
  }

  const recipe = "merge_method: slerp\nbase_model: a\nmodels:\n  - model: a\n  - model: b\nparameters:\n  t: [0.1, 0.9]\n";
  const badPaths: [string, RegExp][] = [
    ["models[2].parameters.weight", /r\.yml:4:3: models has 2 entries, so there is no \[2\]/],
    ["parameters.t", /r\.yml:7:6: parameters\.t is a list/],
    ["slices[0].parameters.t", /no slices/],
    ["models[0].parameters.weight", /no models\[0\]\.parameters/],
    ["merge_method", /"slerp", not a number/],
    // Found by the fuzz suite: an index of ten or more digits was called "not a recipe key", without its place.
    ["models[99999999999].parameters.weight", /r\.yml:4:3: models has 2 entries, so there is no \[99999999999\]/],
    ["parameters.t[0][1000000000]", /r\.yml:7:7: parameters\.t\[0\] is not a list/],
  ];
  for (const [key, message] of badPaths) {
    test(`refused with the key and its place: ${key}`, () => {
      assert.throws(() => assignValues(recipe, "r.yml", new Map([[key, 1]])), (e: unknown) => e instanceof WeightsoupError && e.code === "E_OPTION" && e.details.key === key && message.test(e.message));
    });
  }
});

describe("documents", () => {
  // Found by the fuzz suite: both were an untyped "Document with errors cannot be stringified".
  test("a multi-stage recipe is refused with a typed error naming the file", () => {
    const stages = "name: first\nmerge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 0.5}\n  - model: b\n---\nmerge_method: linear\nmodels:\n  - model: first\n  - model: c\n";
    assert.throws(() => assignValues(stages, "r.yml", new Map([["models[0].parameters.weight", 1]])),
      (e: unknown) => e instanceof WeightsoupError && e.code === "E_METHOD_UNSUPPORTED" && /r\.yml: .*multi-stage/.test(e.message) && e.details.file === "r.yml");
  });

  test("a recipe ending in a stray --- is one document (as parseRecipe reads it): its keys are set", () => {
    const text = "merge_method: slerp\nbase_model: a\nmodels:\n  - model: a\n  - model: b\nparameters:\n  t: 0.5\n---\n";
    const out = parseRecipe(assignValues(text, "r.yml", new Map([["parameters.t", 0.25]])), "r.yml");
    assert.equal(out.parameters!.t, 0.25);
    assert.equal(out.mergeMethod, "slerp");
  });
});

describe("weightsoup sweep", () => {
  test("--json, --csv, --svg and --write-best (the lowest-NLL point's merge, evaluated again)", async () => {
    const dir = await family();
    const recipe = join(dir, "recipe.yml");
    await writeFile(recipe, "merge_method: linear\nmodels:\n  - model: ./a\n    parameters: {weight: 0.5}\n  - model: ./b\n    parameters: {weight: 0.5}\ndtype: bfloat16\n");
    await writeFile(join(dir, "ids.json"), JSON.stringify(ids));
    const best = join(dir, "best");
    const run = spawnSync(process.execPath, [CLI, "sweep", recipe, "--vary", "models[0].parameters.weight=0:1:3", "--ids", join(dir, "ids.json"), "--context", "16",
      "--against", join(dir, "b"), "--json", "--csv", join(dir, "s.csv"), "--svg", join(dir, "s.svg"), "--write-best", best, "--workers", "2"], { encoding: "utf8" });
    assert.equal(run.status, 0, run.stderr);
    const out = JSON.parse(run.stdout) as { points: { values: Record<string, number>; nll: number; perplexity: number; bitsPerByte: number | null; against: { model: string; kl: number }[]; recipe: string }[]; best: number };
    assert.deepEqual(out.points.map((p) => p.values["models[0].parameters.weight"]), [0, 0.5, 1]);
    // Each point's recipe and bits per byte, as the library gives them (found by the stop 38 README audit: dropped).
    const lib = await sweep(recipe, ["models[0].parameters.weight=0:1:3"], { ids, context: 16, against: [join(dir, "b")], workerUrl: WORKER_URL, workers: 1 });
    assert.deepEqual(out.points.map((p) => [p.recipe, p.bitsPerByte]), lib.points.map((p) => [p.recipe, p.bitsPerByte]));
    assert.match(out.points[1]!.recipe, /- model: \.\/a\n    parameters: \{weight: 0\.5\}/);
    assert.equal(out.points[0]!.against[0]!.model, join(dir, "b"));
    const lowest = out.points.reduce((b, p, i) => (p.nll < out.points[b]!.nll ? i : b), 0);
    assert.equal(out.best, lowest);
    const { results } = await evaluate([best], { ids, context: 16, workerUrl: WORKER_URL });
    assert.equal(results[0]!.nll, out.points[lowest]!.nll, "the written best point scores as in the sweep");
    assert.equal(await readFile(join(best, "mergekit_config.yml"), "utf8"), out.points[lowest]!.recipe, "the written best point is its recipe");
    const csv = (await readFile(join(dir, "s.csv"), "utf8")).trim().split("\r\n");
    assert.equal(csv[0], `models[0].parameters.weight,nll,perplexity,kl ${join(dir, "b")},top1 ${join(dir, "b")}`);
    assert.equal(Number(csv[2]!.split(",")[1]), out.points[1]!.nll);
    assert.match(await readFile(join(dir, "s.svg"), "utf8"), /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  });

  // Found by the fuzz survey: a weight beyond float32's range makes a point's weights, and its NLL, NaN;
  // `nll < best` is false for NaN, so a NaN first point stayed "best" and --write-best wrote it.
  test("a NaN point is never best while another point is finite; --write-best refuses when every point is NaN", async () => {
    const dir = await family();
    const recipe = join(dir, "recipe.yml");
    await writeFile(recipe, "merge_method: linear\nmodels:\n  - model: ./a\n    parameters: {weight: 0.5}\n  - model: ./b\n    parameters: {weight: 0.5}\nparameters: {normalize: false}\ndtype: bfloat16\n");
    // Weights beyond float32 are refused by the planner; one just inside makes activations overflow.
    const r = await sweep(recipe, ["models[0].parameters.weight=3e38,0.5,0.25"], { ids, context: 16, workerUrl: WORKER_URL, workers: 1 });
    assert.ok(Number.isNaN(r.points[0]!.nll), `point 0 (weight 3e38) has NLL ${r.points[0]!.nll}`);
    assert.ok(Number.isFinite(r.points[1]!.nll) && Number.isFinite(r.points[2]!.nll));
    assert.equal(r.best, r.points[1]!.nll <= r.points[2]!.nll ? 1 : 2);
    await writeFile(join(dir, "ids.json"), JSON.stringify(ids));
    const best = join(dir, "best-nan");
    const run = spawnSync(process.execPath, [CLI, "sweep", recipe, "--vary", "models[0].parameters.weight=3e38,2e38", "--ids", join(dir, "ids.json"), "--context", "16", "--write-best", best, "--workers", "1"], { encoding: "utf8" });
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /\[E_DATA\] .*no point of the sweep has a finite NLL/);
    assert.equal(existsSync(best), false, "nothing written");
  });

  test("--write-best's folder is checked before any point is evaluated: a non-empty one fails at once, nothing written (found by the stop 38 README audit: after the whole sweep)", async () => {
    const dir = await family();
    const recipe = join(dir, "recipe.yml");
    await writeFile(recipe, "merge_method: linear\nmodels:\n  - model: ./a\n    parameters: {weight: 0.5}\n  - model: ./b\n    parameters: {weight: 0.5}\n");
    await writeFile(join(dir, "ids.json"), JSON.stringify(ids));
    await mkdir(join(dir, "taken"));
    await writeFile(join(dir, "taken", "notes.txt"), "mine");
    const run = spawnSync(process.execPath, [CLI, "sweep", recipe, "--vary", "models[0].parameters.weight=0:1:3", "--ids", join(dir, "ids.json"), "--context", "16",
      "--csv", join(dir, "early.csv"), "--write-best", join(dir, "taken"), "--workers", "1"], { encoding: "utf8" });
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /\[E_OUTPUT_EXISTS\] .*taken: output folder is not empty/);
    assert.doesNotMatch(run.stderr, /point 1/, "no point was evaluated");
    assert.equal(existsSync(join(dir, "early.csv")), false, "the CSV is written after the sweep, so it was never reached");
    assert.deepEqual(await readdir(join(dir, "taken")), ["notes.txt"]);
    assert.deepEqual((await readdir(dir)).filter((f) => f.includes("weightsoup")), [], "no lock or staging folder left");
    // An input as --write-best is refused as merge refuses it.
    const input = spawnSync(process.execPath, [CLI, "sweep", recipe, "--vary", "models[0].parameters.weight=0:1:3", "--ids", join(dir, "ids.json"), "--write-best", join(dir, "a"), "--force"], { encoding: "utf8" });
    assert.equal(input.status, 1, input.stderr);
    assert.match(input.stderr, /\[E_OUTPUT_IS_INPUT\]/);
  });

  test("a key the recipe does not have: exit 2, [E_OPTION] naming the key", async () => {
    const dir = await family();
    const recipe = join(dir, "recipe.yml");
    await writeFile(recipe, "merge_method: linear\nmodels:\n  - model: ./a\n  - model: ./b\n");
    const run = spawnSync(process.execPath, [CLI, "sweep", recipe, "--vary", "models[0].parameters.weight=0,1"], { encoding: "utf8" });
    assert.equal(run.status, 2);
    assert.match(run.stderr, /\[E_OPTION\] --vary models\[0\]\.parameters\.weight: .*no models\[0\]\.parameters/);
  });
});
