// `modules:` recipes on a made-up two-module model (a text decoder under `language_model.`, in
// transformers 4's layout, and a vision tower under `model.vision_tower.`, in transformers 5's): the
// output equals the scalar reference run on each module separately (each model cut down to the
// module's tensors, the module's parameters in front of the recipe's, written out by hand), and the
// ways a module recipe can go wrong are typed errors naming the module, model and tensor.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { merge } from "../src/node";
import { parseRecipe } from "../src/recipe/recipe";
import { ValidationError, WeightsoupError } from "../src/errors";
import { referenceMerge, type RefModel, type RefTensor } from "./reference/merge";
import { roundToDtype } from "./reference/float16";
import { baseModel, compareTensor, fineTune, readOutput, removeDir, tempDir, TINY, toYaml, uniform, WORKER_URL, writeModel } from "./helpers/fixtures";
import { wordLevel, writeTokenizer } from "./helpers/tokenizer-files";
import { HIDDEN, only, TEXT_LAYERS, tensorShapes, VOCAB, vlmConfig } from "./helpers/vlm";

let root: string;
before(async () => { root = await tempDir("ws-modules-"); });
after(async () => { await removeDir(root); });

/** A model of the made-up tensors (helpers/vlm.ts): seed 0 is the base, other seeds move it by `scale` times U(-0.5, 0.5). */
function vlm(seed: number, base?: RefModel, extra: Record<string, number[]> = {}): RefModel {
  const tensors = new Map<string, RefTensor>();
  tensorShapes(extra).forEach(([name, shape], k) => {
    const n = shape.reduce((p, d) => p * d, 1);
    const values = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const from = base?.tensors.get(name)?.values?.[i] ?? uniform(1000 + k, i) - 0.5;
      values[i] = roundToDtype(base ? from + 0.3 * (uniform(seed * 131 + k, i) - 0.5) : from, "BF16");
    }
    tensors.set(name, { dtype: "BF16", shape, values });
  });
  return { config: vlmConfig(), tensors };
}

const base = vlm(0), a = vlm(1, base), b = vlm(2, base);

async function writeCase(name: string, recipe: object, models: Record<string, RefModel> = { base, a, b }): Promise<string> {
  const dir = join(root, name);
  for (const [n, m] of Object.entries(models)) await writeModel(join(dir, n), m);
  await writeFile(join(dir, "recipe.yml"), toYaml(recipe));
  return dir;
}

async function errorOf(p: Promise<unknown>): Promise<WeightsoupError[]> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof WeightsoupError, `a typed error, got ${String(e)}`);
    return e instanceof ValidationError ? e.problems : [e];
  }
  assert.fail("expected an error");
}

describe("a modules: recipe", () => {
  // text_decoder: slices over its 3 layers; b's weight set by a module filter for mlp tensors only, so
  // b's other tensors fall through to the recipe's weight. vision_tower: models: with a gradient that
  // spans the tower's own 2 layers, and a module-level lambda.
  const recipe = {
    merge_method: "task_arithmetic",
    base_model: "./base",
    parameters: { weight: 0.5 },
    modules: {
      text_decoder: {
        slices: [{ sources: [
          { model: "./base", layer_range: [0, TEXT_LAYERS] },
          { model: "./a", layer_range: [0, TEXT_LAYERS], parameters: { weight: [0.2, 1.0] } },
          { model: "./b", layer_range: [0, TEXT_LAYERS] },
        ] }],
        parameters: { weight: [{ filter: "mlp", value: 1.5 }] },
      },
      vision_tower: {
        models: [{ model: "./a", parameters: { weight: [1.0, 0.25] } }, { model: "./b" }],
        parameters: { lambda: 0.75 },
      },
    },
  };

  test("equals the scalar reference run on each module alone", async () => {
    const dir = await writeCase("two-modules", recipe);
    const summary = await merge(join(dir, "recipe.yml"), { out: join(dir, "out"), workers: 2, workerUrl: WORKER_URL });

    // Each module by hand: the models cut to its tensors, its parameters in front of the recipe's.
    const text = referenceMerge({
      merge_method: "task_arithmetic", base_model: "./base", slices: recipe.modules.text_decoder.slices,
      parameters: { weight: [{ filter: "mlp", value: 1.5 }, { value: 0.5 }] },
    }, new Map([["./base", only(base, "language_model.")], ["./a", only(a, "language_model.")], ["./b", only(b, "language_model.")]]));
    const vision = referenceMerge({
      merge_method: "task_arithmetic", base_model: "./base", models: recipe.modules.vision_tower.models,
      parameters: { weight: 0.5, lambda: 0.75 },
    }, new Map([["./base", only(base, "model.vision_tower.")], ["./a", only(a, "model.vision_tower.")], ["./b", only(b, "model.vision_tower.")]]));

    const ours = await readOutput(join(dir, "out"));
    const expected = new Map([...text.tensors, ...vision.tensors]);
    assert.deepEqual([...ours.tensors.keys()].sort(), [...base.tensors.keys()].sort(), "every tensor of the model, once");
    assert.equal(summary.tensors, expected.size);
    for (const [name, ref] of expected) {
      const { maxUlp, maxAbs, at } = compareTensor(ours.tensors.get(name)!, ref);
      assert.ok(maxUlp <= 1, `${name}: ${maxUlp} ulps apart (abs ${maxAbs}) at ${at}`);
    }
  });

  test("the ledger lists every tensor of every model once; a module's tensors of a model it does not use are refused, saying so", async () => {
    const narrow = { ...recipe, modules: { ...recipe.modules, vision_tower: { models: [{ model: "./a", parameters: { weight: 1 } }] } } };
    const dir = await writeCase("ledger-modules", narrow);
    const summary = await merge(join(dir, "recipe.yml"), { out: join(dir, "out"), workers: 1, workerUrl: WORKER_URL });
    const every = ([["./base", base], ["./a", a], ["./b", b]] as const).flatMap(([name, m]) => [...m.tensors.keys()].map((t) => `${name} ${t}`)).sort();
    assert.deepEqual(summary.ledger.entries.map((e) => `${e.model} ${e.tensor}`).sort(), every, "each input tensor, once");
    assert.equal(summary.ledger.counts.inputs, every.length);
    const bTower = summary.ledger.entries.filter((e) => e.model === "./b" && e.tensor.startsWith("model.vision_tower."));
    assert.ok(bTower.length > 0, "fixture: b has vision-tower tensors");
    for (const e of bTower) {
      assert.equal(e.status, "refused", e.tensor);
      assert.match(e.why ?? "", /vision_tower/, e.tensor);
    }
  });

  test("reads `modules:` keys into one sub-recipe per module, in order", () => {
    const parsed = parseRecipe(toYaml(recipe), "r.yml");
    assert.deepEqual(parsed.modules!.map((m) => [m.name, m.recipe.file, m.recipe.slices ? "slices" : "models"]),
      [["text_decoder", "r.yml: modules.text_decoder", "slices"], ["vision_tower", "r.yml: modules.vision_tower", "models"]]);
  });
});

describe("modules: errors", () => {
  const modules = (extra: Record<string, unknown> = {}) => ({
    merge_method: "linear",
    modules: {
      text_decoder: { models: [{ model: "./a", parameters: { weight: 1 } }, { model: "./b", parameters: { weight: 1 } }] },
      vision_tower: { models: [{ model: "./a", parameters: { weight: 1 } }] },
      ...extra,
    },
  });

  test("a tensor no module claims is refused, not dropped, until a module holds it", async () => {
    const extra = { "multi_modal_projector.linear_1.weight": [HIDDEN, HIDDEN] };
    const models = { a: vlm(1, base, extra), b: vlm(2, base, extra) };
    const dir = await writeCase("unassigned", modules(), models);
    const problems = await errorOf(merge(join(dir, "recipe.yml"), { out: join(dir, "out"), workerUrl: WORKER_URL }));
    assert.deepEqual(problems.map((p) => p.code), ["E_MODULE_UNASSIGNED", "E_MODULE_UNASSIGNED"]);
    assert.match(problems[0]!.message, /1 tensor of \.\/a belong to no module \("multi_modal_projector\.linear_1\.weight"\); the merge would drop them/);
    assert.deepEqual(await readdir(dir).then((f) => f.sort()), ["a", "b", "recipe.yml"], "nothing written");

    await writeFile(join(dir, "recipe.yml"), toYaml(modules({ multi_modal_projector: { models: [{ model: "./b", parameters: { weight: 1 } }] } })));
    await merge(join(dir, "recipe.yml"), { out: join(dir, "out"), workerUrl: WORKER_URL });
    const ours = await readOutput(join(dir, "out"));
    assert.ok(ours.tensors.has("multi_modal_projector.linear_1.weight"));
    const projector = ours.tensors.get("multi_modal_projector.linear_1.weight")!;
    const { maxUlp } = compareTensor(projector, models.b.tensors.get("multi_modal_projector.linear_1.weight")!);
    assert.equal(maxUlp, 0, "the projector module's one model, weight 1, is copied exactly");

    // A module named default (mergekit's name for a model that is not made of parts) holds what the others leave.
    await writeFile(join(dir, "recipe.yml"), toYaml(modules({ default: { models: [{ model: "./a", parameters: { weight: 1 } }] } })));
    await merge(join(dir, "recipe.yml"), { out: join(dir, "out-default"), workerUrl: WORKER_URL });
    const left = (await readOutput(join(dir, "out-default"))).tensors.get("multi_modal_projector.linear_1.weight")!;
    assert.equal(compareTensor(left, models.a.tensors.get("multi_modal_projector.linear_1.weight")!).maxUlp, 0, "the default module's one model, copied");
  });

  test("mergekit's `default` module, as model cards write it for a Llama, is the whole model: the scalar reference of the same slices and parameters without it (found by the stop 38 audit: E_MODULE_UNASSIGNED)", async () => {
    const lb = baseModel(71, "BF16"), la = fineTune(lb, 72, 0.2, { dtype: "BF16" }), lc = fineTune(lb, 73, 0.2, { dtype: "BF16" });
    const slices = [{ sources: [
      { model: "./a", layer_range: [0, TINY.layers], parameters: { weight: 0.7, density: [0.9, 0.4] } },
      { model: "./c", layer_range: [0, TINY.layers], parameters: { weight: 0.5 } },
      { model: "./base", layer_range: [0, TINY.layers] },
    ] }];
    const dir = await writeCase("default-module", {
      merge_method: "ties", base_model: "./base", dtype: "bfloat16",
      modules: { default: { slices, parameters: { density: [{ filter: "mlp", value: 0.3 }] } } },
      parameters: { density: 0.6, normalize: true },
    }, { base: lb, a: la, c: lc });
    await merge(join(dir, "recipe.yml"), { out: join(dir, "out"), workers: 2, workerUrl: WORKER_URL });
    // The module's parameters sit between the slices' and the recipe's: its filter first, then the recipe's value.
    const expected = referenceMerge({
      merge_method: "ties", base_model: "./base", dtype: "bfloat16", slices,
      parameters: { density: [{ filter: "mlp", value: 0.3 }, { value: 0.6 }], normalize: true },
    }, new Map([["./base", lb], ["./a", la], ["./c", lc]]));
    const ours = await readOutput(join(dir, "out"));
    assert.deepEqual([...ours.tensors.keys()].sort(), [...expected.tensors.keys()].sort());
    for (const [name, ref] of expected.tensors) {
      const { maxUlp, at } = compareTensor(ours.tensors.get(name)!, ref);
      assert.ok(maxUlp <= 1, `${name}: ${maxUlp} ulps apart at ${at}`);
    }
  });

  test("`default` alone may change the layer count, as top-level slices do: a frankenmerge written under it is the scalar reference of the same slices (found by the stop 39 audit: E_METHOD_UNSUPPORTED)", async () => {
    const lb = baseModel(74, "BF16"), la = fineTune(lb, 75, 0.2, { dtype: "BF16" });
    // Layers [0, 2) of a and [1, 3) of base: 4 layers from models of 3.
    const slices = [{ sources: [{ model: "./a", layer_range: [0, 2] }] }, { sources: [{ model: "./base", layer_range: [1, 3] }] }];
    const dir = await writeCase("default-frankenmerge", { merge_method: "passthrough", modules: { default: { slices } } }, { base: lb, a: la });
    await merge(join(dir, "recipe.yml"), { out: join(dir, "out"), workerUrl: WORKER_URL });
    const expected = referenceMerge({ merge_method: "passthrough", slices }, new Map([["./base", lb], ["./a", la]]));
    const ours = await readOutput(join(dir, "out"));
    assert.deepEqual([...ours.tensors.keys()].sort(), [...expected.tensors.keys()].sort());
    assert.ok(ours.tensors.has("model.layers.3.mlp.up_proj.weight") && !ours.tensors.has("model.layers.4.mlp.up_proj.weight"), "4 layers");
    for (const [name, ref] of expected.tensors) assert.equal(compareTensor(ours.tensors.get(name)!, ref).maxUlp, 0, name);
    assert.equal(JSON.parse(await readFile(join(dir, "out", "config.json"), "utf8")).num_hidden_layers, 4);
  });

  test("a module that matches nothing in a model", async () => {
    const dir = await writeCase("empty", modules({ audio_tower: { models: [{ model: "./a", parameters: { weight: 1 } }] } }), { a, b });
    const problems = await errorOf(merge(join(dir, "recipe.yml"), { out: join(dir, "out"), workerUrl: WORKER_URL }));
    assert.deepEqual(problems.map((p) => p.code), ["E_MODULE_EMPTY"]);
    assert.match(problems[0]!.message, /modules\.audio_tower: model \.\/a has no tensor under audio_tower\., model\.audio_tower\./);
  });

  test("two modules claiming one tensor", async () => {
    const dir = await writeCase("overlap", modules({ language_model: { models: [{ model: "./b", parameters: { weight: 1 } }] } }), { a, b });
    const problems = await errorOf(merge(join(dir, "recipe.yml"), { out: join(dir, "out"), workerUrl: WORKER_URL }));
    // One problem per model, not one per tensor.
    assert.deepEqual(problems.map((p) => p.code), ["E_MODULE_OVERLAP", "E_MODULE_OVERLAP"]);
    assert.match(problems[0]!.message, /12 tensors of \.\/a are claimed by modules text_decoder and language_model \("language_model\./);
  });

  test("slices that change a module's layer count", async () => {
    const recipe = { merge_method: "passthrough", modules: {
      text_decoder: { slices: [{ sources: [{ model: "./a", layer_range: [0, 2] }] }] },
      vision_tower: { slices: [{ sources: [{ model: "./a", layer_range: [0, 2] }] }] },
    } };
    const dir = await writeCase("layer-count", recipe, { a });
    const problems = await errorOf(merge(join(dir, "recipe.yml"), { out: join(dir, "out"), workerUrl: WORKER_URL }));
    assert.deepEqual(problems.map((p) => p.code), ["E_METHOD_UNSUPPORTED"]);
    assert.match(problems[0]!.message, /modules\.text_decoder: the slices make 2 layers of a module that has 3 in \.\/a/);
  });

  test("parameter names and keys are checked per module, and warnings name the module; mergekit's rules still hold", async () => {
    const dir = await writeCase("names", { ...modules(), modules: { ...modules().modules, vision_tower: { models: [{ model: "./a", parameters: { weight: 1, wieght: 1 } }] } } }, { a, b });
    const warnings: string[] = [];
    await merge(join(dir, "recipe.yml"), { out: join(dir, "out"), workerUrl: WORKER_URL, onProgress: (e) => { if (e.type === "warning") warnings.push(e.message); } });
    assert.equal(warnings.length, 1, warnings.join("\n"));
    assert.match(warnings[0]!, /recipe\.yml: modules\.vision_tower: models\[0\]\.parameters\.wieght: linear has no parameter "wieght".*ignored/);
    // A module's merge_method is not one of its keys in mergekit (the recipe's method holds for every module): ignored, said so.
    const ignored = parseRecipe(toYaml({ merge_method: "linear", modules: { vision_tower: { merge_method: "ties", models: [{ model: "a" }] } } }), "r.yml");
    assert.equal(ignored.modules![0]!.recipe.mergeMethod, "linear");
    assert.deepEqual(ignored.ignoredKeys.map((w) => /r\.yml: modules\.vision_tower\.merge_method: not a recipe key/.test(w)), [true]);
    assert.throws(() => parseRecipe(toYaml({ merge_method: "linear", models: [{ model: "a" }], modules: { v: { models: [{ model: "a" }] } } }), "r.yml"),
      (e: WeightsoupError) => e.code === "E_RECIPE" && /exactly one of 'models', 'slices' or 'modules'/.test(e.message));
  });
});

describe("modules: with a Llama checkpoint and tokenizer keys", () => {
  // Found by an audit: each module was planned without the output vocabulary, so embed_tokens and
  // lm_head kept their rows (ids mixed across tokenizers) under a tokenizer.json and vocab_size of the
  // union; and an lm_head module (no layers) was held to num_hidden_layers and refused.
  test("a model module and an lm_head module give the merge the same recipe as models: gives, vocabulary rebuilt", async () => {
    const dir = join(root, "llama-vocab");
    const llamaBase = baseModel(301, "F32", { ...TINY, vocab: 10 }), other = fineTune(llamaBase, 302, 0.2);
    for (const [name, model] of [["base", llamaBase], ["a", other]] as const) await writeModel(join(dir, name), model);
    await writeTokenizer(join(dir, "base"), wordLevel(["<unk>", "<s>", "</s>", "the", "cat", "sat", "on", "mat", "a", "dog"], [0, 1, 2]));
    await writeTokenizer(join(dir, "a"), wordLevel(["<unk>", "<s>", "</s>", "a", "dog", "ran", "fast", "the", "bird", "cat"], [0, 1, 2]));
    const models = [{ model: "./base", parameters: { weight: 1 } }, { model: "./a", parameters: { weight: 3 } }];
    const common = { merge_method: "linear", base_model: "./base", tokenizer_source: "union" };
    await writeFile(join(dir, "plain.yml"), toYaml({ ...common, models }));
    await writeFile(join(dir, "modules.yml"), toYaml({ ...common, modules: { model: { models }, lm_head: { models } } }));
    await merge(join(dir, "plain.yml"), { out: join(dir, "plain"), workers: 1, workerUrl: WORKER_URL });
    await merge(join(dir, "modules.yml"), { out: join(dir, "modules"), workers: 1, workerUrl: WORKER_URL });
    const [plain, modules] = [await readOutput(join(dir, "plain")), await readOutput(join(dir, "modules"))];
    assert.deepEqual(plain.tensors.get("model.embed_tokens.weight")!.shape, [13, TINY.hidden], "the union: 10 + ran, fast, bird");
    assert.deepEqual([...modules.tensors.keys()].sort(), [...plain.tensors.keys()].sort());
    for (const [name, t] of plain.tensors) assert.deepEqual(modules.tensors.get(name), t, name);
    for (const file of ["tokenizer.json", "config.json"]) {
      assert.equal(await readFile(join(dir, "modules", file), "utf8"), await readFile(join(dir, "plain", file), "utf8"), file);
    }
  });
});

describe("modules: tied models and a base a module does not use (found against a transcription of mergekit's planner)", () => {
  const EMBED = "language_model.model.embed_tokens.weight", HEAD = "language_model.lm_head.weight";
  /** b without its output head: tied to its input embedding. */
  const tied = (m: RefModel): RefModel => ({ ...m, tensors: new Map([...m.tensors].filter(([name]) => name !== HEAD)) });
  /** What a tied model means: its embedding serves as lm_head. */
  const untied = (m: RefModel): RefModel => ({ ...m, tensors: new Map([...m.tensors, [HEAD, m.tensors.get(EMBED)!]]) });
  /** transformers 5's layout of the text decoder: `model.language_model.…`, and `lm_head.weight` at the top. */
  const t5Name = (name: string) => (name === HEAD ? "lm_head.weight" : name.replace(/^language_model\.model\./, "model.language_model."));
  const t5 = (m: RefModel): RefModel => ({ ...m, tensors: new Map([...m.tensors].map(([name, t]) => [t5Name(name), t])) });
  const linear = (entries: object) => ({ merge_method: "linear", parameters: { weight: 0.5 }, ...entries });
  const pair = [{ model: "./a" }, { model: "./b" }];

  function expectClose(ours: Awaited<ReturnType<typeof readOutput>>, expected: Map<string, RefTensor>, rename: (n: string) => string = (n) => n): void {
    assert.deepEqual([...ours.tensors.keys()].sort(), [...expected.keys()].map(rename).sort());
    for (const [name, ref] of expected) {
      const { maxUlp, maxAbs, at } = compareTensor(ours.tensors.get(rename(name))!, ref);
      assert.ok(maxUlp <= 1, `${rename(name)}: ${maxUlp} ulps apart (abs ${maxAbs}) at ${at}`);
    }
  }

  test("a tied model's embedding is its lm_head under a prefix (language_model.lm_head.weight), in models: and in modules:", async () => {
    const expected = referenceMerge(linear({ models: pair }), new Map([["./a", a], ["./b", untied(b)]])).tensors;
    const plainDir = await writeCase("tied-prefixed-plain", linear({ models: pair }), { a, b: tied(b) });
    const plain = await merge(join(plainDir, "recipe.yml"), { out: join(plainDir, "out"), workers: 1, workerUrl: WORKER_URL });
    expectClose(await readOutput(join(plainDir, "out")), expected);
    assert.deepEqual(plain.ledger.entries.find((e) => e.model === "./b" && e.tensor === EMBED)!.into.sort(), [EMBED, HEAD].sort());

    const dir = await writeCase("tied-prefixed-modules", linear({ modules: { text_decoder: { models: pair }, vision_tower: { models: pair } } }), { a, b: tied(b) });
    const summary = await merge(join(dir, "recipe.yml"), { out: join(dir, "out"), workers: 2, workerUrl: WORKER_URL });
    expectClose(await readOutput(join(dir, "out")), expected);
    assert.deepEqual(summary.ledger.counts, plain.ledger.counts, "the same ledger as the one-module recipe");
  });

  test("transformers 5's layout: a module `lm_head` takes a tied model's embedding, listed once in the ledger", async () => {
    const expected = referenceMerge(linear({ models: pair }), new Map([["./a", a], ["./b", untied(b)]])).tensors;
    const modules = { text_decoder: { models: pair }, lm_head: { models: pair }, vision_tower: { models: pair } };
    const dir = await writeCase("tied-t5-modules", linear({ modules }), { a: t5(a), b: t5(tied(b)) });
    const summary = await merge(join(dir, "recipe.yml"), { out: join(dir, "out"), workers: 2, workerUrl: WORKER_URL });
    expectClose(await readOutput(join(dir, "out")), expected, t5Name);
    const embedding = summary.ledger.entries.filter((e) => e.model === "./b" && e.tensor === t5Name(EMBED));
    assert.equal(embedding.length, 1, "b's embedding: one entry");
    assert.deepEqual(embedding[0]!.into.sort(), ["lm_head.weight", t5Name(EMBED)].sort());
    assert.equal(summary.ledger.counts.inputs, a.tensors.size + b.tensors.size - 1);

    // An lm_head module that does not use b: b's embedding is merged by text_decoder alone, and listed once.
    await writeFile(join(dir, "recipe.yml"), toYaml(linear({ modules: { ...modules, lm_head: { models: [{ model: "./a", parameters: { weight: 1 } }] } } })));
    const narrow = await merge(join(dir, "recipe.yml"), { out: join(dir, "out2"), workers: 1, workerUrl: WORKER_URL });
    assert.deepEqual(narrow.ledger.entries.filter((e) => e.model === "./b").map((e) => e.tensor).sort(), [...t5(tied(b)).tensors.keys()].sort());
    assert.deepEqual(narrow.ledger.entries.find((e) => e.model === "./b" && e.tensor === t5Name(EMBED))!.into, [t5Name(EMBED)]);
    assert.equal(narrow.ledger.counts.inputs, a.tensors.size + b.tensors.size - 1);
  });

  test("a module of slices that does not use the recipe's base needs nothing of it (the base may lack the module)", async () => {
    const noTower: RefModel = { ...base, tensors: new Map([...base.tensors].filter(([name]) => !name.startsWith("model.vision_tower."))) };
    const vision = { slices: [{ base_model: "./a", sources: [{ model: "./a", layer_range: [0, 2] }, { model: "./b", layer_range: [0, 2] }] }] };
    const recipe = { merge_method: "task_arithmetic", base_model: "./base", parameters: { weight: 0.5 }, modules: { text_decoder: { models: pair }, vision_tower: vision } };
    const dir = await writeCase("base-unused", recipe, { base: noTower, a, b });
    await merge(join(dir, "recipe.yml"), { out: join(dir, "out"), workers: 1, workerUrl: WORKER_URL });
    const text = referenceMerge({ merge_method: "task_arithmetic", base_model: "./base", parameters: { weight: 0.5 }, models: pair },
      new Map([["./base", only(base, "language_model.")], ["./a", only(a, "language_model.")], ["./b", only(b, "language_model.")]]));
    const tower = referenceMerge({ merge_method: "task_arithmetic", parameters: { weight: 0.5 }, ...vision },
      new Map([["./a", only(a, "model.vision_tower.")], ["./b", only(b, "model.vision_tower.")]]));
    expectClose(await readOutput(join(dir, "out")), new Map([...text.tensors, ...tower.tensors]));
  });
});

describe("modules: tokenizer keys on a multimodal model (found against a transcription of mergekit's tokenizer and module planner)", () => {
  // Text vocabulary of VOCAB tokens, stated in text_config as multimodal configs do; b's tokenizer has
  // three words a lacks, so the union has VOCAB + 3 rows.
  const words = (extra: string[]) => ["<unk>", "<s>", "</s>", ...Array.from({ length: VOCAB - 3 - extra.length }, (_, i) => `w${i}`), ...extra];
  const PROJECTOR = "multi_modal_projector.mm_input_projection_weight";
  const withVocab = (m: RefModel): RefModel => ({ ...m, config: { ...vlmConfig(), text_config: { num_hidden_layers: TEXT_LAYERS, vocab_size: VOCAB } } });
  const pa = withVocab(vlm(1, base, { [PROJECTOR]: [VOCAB, HIDDEN] })), pb = withVocab(vlm(2, base, { [PROJECTOR]: [VOCAB, HIDDEN] }));

  async function write(name: string, recipe: object): Promise<string> {
    const dir = await writeCase(name, recipe, { a: pa, b: pb });
    await writeTokenizer(join(dir, "a"), wordLevel(words([]), [0, 1, 2]));
    await writeTokenizer(join(dir, "b"), wordLevel(words(["red", "green", "blue"]), [0, 1, 2]));
    return dir;
  }

  test("a projector with as many rows as the text vocabulary is merged as it is, not rebuilt as an embedding", async () => {
    const pair = [{ model: "./a" }, { model: "./b" }];
    const recipe = { merge_method: "linear", parameters: { weight: 0.5 }, tokenizer_source: "union", models: pair };
    const dir = await write("projector-rows", recipe);
    await merge(join(dir, "recipe.yml"), { out: join(dir, "out"), workers: 1, workerUrl: WORKER_URL });
    const ours = await readOutput(join(dir, "out"));
    assert.deepEqual(ours.tensors.get("language_model.model.embed_tokens.weight")!.shape, [VOCAB + 3, HIDDEN], "the embedding is rebuilt to the union");
    assert.deepEqual(ours.tensors.get(PROJECTOR)!.shape, [VOCAB, HIDDEN], "the projector keeps its shape");
    const expected = referenceMerge({ merge_method: "linear", parameters: { weight: 0.5 }, models: pair },
      new Map([["./a", only(pa, PROJECTOR)], ["./b", only(pb, PROJECTOR)]])).tensors.get(PROJECTOR)!;
    assert.equal(compareTensor(ours.tensors.get(PROJECTOR)!, expected).maxUlp, 0, "the projector is the plain linear merge");
  });

  test("a token's source that the module holding the embeddings does not use is refused, once, naming the module (was an internal error)", async () => {
    const recipe = {
      merge_method: "linear", parameters: { weight: 0.5 },
      tokenizer: { source: "union", tokens: { w1: { source: "./a" } } },
      modules: { text_decoder: { models: [{ model: "./b" }] }, vision_tower: { models: [{ model: "./a" }] }, multi_modal_projector: { models: [{ model: "./a" }] } },
    };
    const dir = await write("token-source-module", recipe);
    const problems = await errorOf(merge(join(dir, "recipe.yml"), { out: join(dir, "out"), workers: 1, workerUrl: WORKER_URL }));
    assert.deepEqual(problems.map((p) => p.code), ["E_RECIPE"]);
    assert.match(problems[0]!.message, /modules\.text_decoder: tokenizer\.tokens\."w1"\.source: model \.\/a is not one of the models merged here \(\.\/b\)/);
  });
});
