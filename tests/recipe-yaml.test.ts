// Recipe YAML is read as mergekit reads it, with PyYAML's safe_load (YAML 1.1), not by YAML 1.2's core
// schema. The expected values are PyYAML's resolver rules (resolver.py), worked out by hand: booleans are
// yes/no/true/false/on/off in three spellings each, and y/n are text; 010 is octal; underscores and
// sexagesimal numbers are numbers; `<<` merges a mapping. Dates stay text here (PyYAML makes a date that
// no recipe field takes). The merges check the numbers against float32 arithmetic done here.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { WeightsoupError } from "../src/errors";
import { merge } from "../src/node";
import fc from "fast-check";
import { parseRecipe } from "../src/recipe/recipe";
import { PROTOTYPE_NAMES } from "./helpers/fuzz-json";
import { assignValues } from "../src/sweep/keys";
import { readForm, setIncluded, starterRecipe } from "../site/ui/recipe-doc";
import { baseModel, fineTune, readOutput, removeDir, tempDir, toYaml, WORKER_URL, writeModel } from "./helpers/fixtures";

let root: string;
before(async () => { root = await tempDir(); });
after(async () => { await removeDir(root); });

const linear = (extra: string) => parseRecipe(`merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 1}\n${extra}`, "r.yml");

describe("empty keys", () => {
  test("a key with nothing under it (YAML null) is absent, as mergekit's Optional fields take None: parameters at every level, base_model, dtype (found by the stop 38 audit: mergekit's examples/ties.yml was refused)", () => {
    const withNulls = parseRecipe([
      "merge_method: ties", "base_model: base", "models:", "  - model: a", "    parameters: {weight: 1, density: 0.5}", "  - model: b", "    parameters:",
      "parameters:", "dtype:", "tokenizer_source:", "",
    ].join("\n"), "r.yml");
    const without = parseRecipe(["merge_method: ties", "base_model: base", "models:", "  - model: a", "    parameters: {weight: 1, density: 0.5}", "  - model: b", ""].join("\n"), "r.yml");
    assert.deepEqual({ ...withNulls, text: "" }, { ...without, text: "" });
    assert.equal(withNulls.parameters, undefined);
    assert.equal(withNulls.models![1]!.parameters, undefined);
    const slices = parseRecipe("merge_method: passthrough\nslices:\n  - sources:\n      - {model: a, layer_range: [0, 2], parameters: }\n    parameters:\n    base_model:\n", "r.yml");
    assert.deepEqual(slices.slices, [{ sources: [{ model: "a", layerRange: [0, 2] }] }]);
    // Required keys stay required.
    assert.throws(() => parseRecipe("merge_method:\nmodels:\n  - model: a\n", "r.yml"), (e: unknown) => e instanceof WeightsoupError && /merge_method: is required/.test(e.message));
  });
});

describe("keys mergekit does not read (a property)", () => {
  test("any other key, at the top level or in a model entry, prototype names included, is ignored with one warning naming it; the recipe reads as without it", () => {
    const base = { merge_method: "ties", base_model: "b", models: [{ model: "a", parameters: { weight: 1, density: 0.5 } }, { model: "b" }], parameters: { normalize: true } };
    const known = new Set(["merge_method", "models", "slices", "base_model", "parameters", "dtype", "out_dtype", "tokenizer_source", "tokenizer", "chat_template", "modules", "name", "align", "model", "layer_range"]);
    const keyArb = fc.oneof(fc.constantFrom(...PROTOTYPE_NAMES, "select_topk", "pad_to_multiple_of", "out_path"), fc.stringMatching(/^[a-z_]{1,12}$/)).filter((k) => !known.has(k));
    const valueArb = fc.oneof(fc.integer(), fc.double({ noNaN: true }), fc.string(), fc.boolean(), fc.array(fc.integer(), { maxLength: 3 }), fc.dictionary(fc.stringMatching(/^[a-z]{1,5}$/), fc.integer(), { maxKeys: 2 }));
    const read = (recipe: object) => { const r = parseRecipe(toYaml(recipe), "r.yml"); return { ...r, text: "", ignoredKeys: [] }; };
    const plain = read(base);
    fc.assert(fc.property(keyArb, valueArb, fc.boolean(), (key, value, inModel) => {
      const recipe = structuredClone(base) as Record<string, unknown> & { models: Record<string, unknown>[] };
      if (inModel) Object.defineProperty(recipe.models[0], key, { value, enumerable: true, configurable: true, writable: true });
      else Object.defineProperty(recipe, key, { value, enumerable: true, configurable: true, writable: true });
      const parsed = parseRecipe(toYaml(recipe), "r.yml");
      assert.equal(parsed.ignoredKeys.length, 1, parsed.ignoredKeys.join("\n"));
      assert.ok(parsed.ignoredKeys[0]!.startsWith(`r.yml: ${inModel ? "models[0]." : ""}${key}: not a recipe key`), parsed.ignoredKeys[0]);
      assert.deepEqual({ ...parsed, text: "", ignoredKeys: [] }, plain);
    }), { numRuns: 200, seed: 38 });
  });
});

describe("align.to", () => {
  test("a path spelled otherwise than the recipe lists it (a, ./a/) is that model, named as listed; an unknown name is kept for the planner's error (found by the stop 38 README audit: E_RECIPE)", () => {
    const withTo = (to: string) => parseRecipe(`merge_method: linear\nmodels:\n  - {model: ./model-a, parameters: {weight: 0.5}}\n  - {model: ./model-b, parameters: {weight: 0.5}}\nalign: {to: ${to}}\n`, "r.yml").align!.to;
    assert.equal(withTo("model-a"), "./model-a");
    assert.equal(withTo("./model-a/"), "./model-a");
    assert.equal(withTo("./model-b"), "./model-b");
    assert.equal(withTo("model-c"), "model-c");
  });
});

describe("scalars resolve as PyYAML resolves them", () => {
  test("every PyYAML boolean spelling is a boolean", () => {
    for (const [word, value] of [["yes", true], ["Yes", true], ["YES", true], ["on", true], ["On", true], ["ON", true], ["True", true],
      ["no", false], ["No", false], ["NO", false], ["off", false], ["Off", false], ["OFF", false], ["FALSE", false]] as const) {
      assert.equal(linear(`parameters: {normalize: ${word}}\n`).parameters?.normalize, value, word);
    }
  });
  test("y, n and mixed spellings are text, as in PyYAML (the yaml package's 1.1 schema would read y/n as booleans)", () => {
    for (const word of ["y", "Y", "n", "N", "oN", "yES", "tRUE"]) {
      const r = parseRecipe(`merge_method: linear\nmodels:\n  - model: ${word}\n    parameters: {weight: 1}\n`, "r.yml");
      assert.equal(r.models?.[0]?.model, word);
    }
  });
  test("integers: 0-prefixed octal, binary, hex, underscores and sexagesimal", () => {
    for (const [text, value] of [["010", 8], ["-010", -8], ["0b101", 5], ["0x1f", 31], ["1_000", 1000], ["1:30", 90], ["08", 8], ["12", 12]] as const) {
      assert.equal(linear(`parameters: {weight: ${text}}\n`).parameters?.weight, value, text);
    }
  });
  test("floats: underscores, sexagesimal, a leading dot, infinities", () => {
    for (const [text, value] of [["1_0.5", 10.5], ["1:30.5", 90.5], [".25", 0.25], ["-.inf", -Infinity], ["1.5e+2", 150]] as const) {
      assert.equal(linear(`parameters: {t: ${text}}\n`).parameters?.t, value, text);
    }
  });
  test("a %YAML 1.2 directive changes nothing: PyYAML reads every document by its 1.1 rules", () => {
    assert.equal(parseRecipe("%YAML 1.2\n---\nmerge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 010}\nparameters: {normalize: off}\n", "r.yml").parameters?.normalize, false);
    assert.equal(parseRecipe("%YAML 1.2\n---\nmerge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 010}\n", "r.yml").models?.[0]?.parameters?.weight, 8);
  });
  test("a date stays text", () => {
    assert.equal(linear("name: 2024-01-31\n").name, "2024-01-31");
  });
  test("`<<` merges an anchored mapping, and the keys written beside it win", () => {
    const r = parseRecipe([
      "merge_method: ties", "base_model: base", "models:",
      "  - model: a", "    parameters: &p {weight: 0.5, density: 0.4}",
      "  - model: b", "    parameters:", "      <<: *p", "      weight: 0.3",
      "  - model: c", "    parameters:", "      <<: [{density: 0.9}, *p]", "",
    ].join("\n"), "r.yml");
    assert.deepEqual(r.models?.map((m) => ({ ...m.parameters })), [{ weight: 0.5, density: 0.4 }, { weight: 0.3, density: 0.4 }, { density: 0.9, weight: 0.5 }]);
  });
});

describe("text written back reads the same", () => {
  test("the page's starter recipe quotes model names that would read as booleans or numbers", () => {
    const names = ["yes", "off", "010", "1:30", "y"];
    const text = starterRecipe(names);
    assert.deepEqual(parseRecipe(text, "r.yml").models?.map((m) => m.model), names);
    const form = readForm(setIncluded(text, "yes", false, { resolve: (n) => n, defaultBase: "" }), names, (n) => n);
    assert.deepEqual([...form.rows].filter(([, row]) => row.included).map(([name]) => name), ["off", "010", "1:30", "y"]);
  });
  test("a sweep's assignment keeps `on` a boolean, and gives a model that merges `<<` its own value", () => {
    const text = "merge_method: linear\nmodels:\n  - model: a\n    parameters: &p {weight: 1}\n  - model: b\n    parameters: {<<: *p}\nparameters:\n  normalize: on\n";
    const r = parseRecipe(assignValues(text, "r.yml", new Map([["models[1].parameters.weight", 0.25]])), "r.yml");
    assert.equal(r.parameters?.normalize, true);
    assert.deepEqual(r.models?.map((m) => m.parameters?.weight), [1, 0.25]);
  });
  test("a sweep key into an anchor used again, or through an alias, is refused: the number is shared", () => {
    const refused = (text: string, key: string, pattern: RegExp) => assert.throws(() => assignValues(text, "r.yml", new Map([[key, 0.25]])),
      (e: unknown) => e instanceof WeightsoupError && e.code === "E_OPTION" && pattern.test(e.message), key);
    const merged = "merge_method: linear\nmodels:\n  - model: a\n    parameters: &p {weight: 1}\n  - model: b\n    parameters: {<<: *p}\n";
    refused(merged, "models[0].parameters.weight", /^--vary models\[0\]\.parameters\.weight: r\.yml:4:20: models\[0\]\.parameters is anchored as &p and used again through \*p/);
    const scalar = "merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: &w 1}\n  - model: b\n    parameters: {weight: *w}\n";
    refused(scalar, "models[0].parameters.weight", /models\[0\]\.parameters\.weight is anchored as &w/);
    refused(scalar, "models[1].parameters.weight", /models\[1\]\.parameters\.weight is \*w, an alias/);
    // An anchor no alias uses is an ordinary value.
    const lone = "merge_method: linear\nmodels:\n  - model: a\n    parameters: &p {weight: &w 1}\n";
    assert.equal(parseRecipe(assignValues(lone, "r.yml", new Map([["models[0].parameters.weight", 0.25]])), "r.yml").models?.[0]?.parameters?.weight, 0.25);
  });
});

describe("merges", () => {
  test("normalize: off and normalize: on give the float32 sum and mean of two models", async () => {
    const base = baseModel(801);
    const other = fineTune(base, 802, 0.3);
    await writeModel(join(root, "a"), base);
    await writeModel(join(root, "b"), other);
    for (const [word, normalize] of [["off", false], ["On", true]] as const) {
      const recipe = join(root, `r-${word}.yml`);
      await writeFile(recipe, `merge_method: linear\nmodels:\n  - model: ./a\n    parameters: {weight: 1}\n  - model: ./b\n    parameters: {weight: 1}\nparameters:\n  normalize: ${word}\n`);
      const out = join(root, `out-${word}`);
      await merge(recipe, { out, workerUrl: WORKER_URL, workers: 1 });
      const { tensors } = await readOutput(out);
      const name = "model.layers.1.mlp.down_proj.weight";
      const x = base.tensors.get(name)!.values!, y = other.tensors.get(name)!.values!;
      const got = new Float32Array(tensors.get(name)!.data.slice().buffer);
      for (let i = 0; i < x.length; i++) {
        const sum = Math.fround(x[i]! + y[i]!);
        assert.equal(got[i], normalize ? Math.fround(sum / 2) : sum, `${word}, element ${i}`);
      }
    }
  });
});
