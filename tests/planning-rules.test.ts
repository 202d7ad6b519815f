// Planning rules that once gave wrong models without an error (issue 8, items 1-3, 5, 9, 12-14, 17):
// post-layer tensors and gradients, layer counts from the tensors, duplicate models, names that are
// also Object.prototype's, and hostile YAML and JSON. Expected values are worked out by hand here.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { inspect, merge } from "../src/node";
import { parseRecipe } from "../src/recipe/recipe";
import { WeightsoupError } from "../src/errors";
import { baseModel, CLI, fineTune, readOutput, removeDir, tempDir, TINY, WORKER_URL, writeCase, writeModel } from "./helpers/fixtures";
import { aliasBombText, deepText } from "./helpers/fuzz-json";
import { parseRecipeInThread } from "./helpers/recipe-thread";
import { decodeFloat, encodeTensor } from "./reference/safetensors";
import type { RefModel } from "./reference/merge";

let root: string;
let n = 0;
before(async () => { root = await tempDir(); });
after(async () => { await removeDir(root); });

const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });

/** Runs the library on a recipe and returns the error it rejects with (failing if it resolves). */
async function failure(recipe: string, out = join(root, `out-${n++}`)): Promise<WeightsoupError> {
  try {
    await merge(recipe, { out, workerUrl: WORKER_URL, workers: 1 });
  } catch (e) {
    assert.ok(e instanceof WeightsoupError, `a WeightsoupError, got ${String(e)}`);
    assert.ok(!existsSync(out), "nothing is written after a failure");
    return e;
  }
  assert.fail("the merge succeeded");
}

/** Codes of an error and, for a ValidationError, of each problem in it. */
const codes = (e: WeightsoupError) => ("problems" in e ? (e as unknown as { problems: WeightsoupError[] }).problems.map((p) => p.code) : [e.code]);

describe("post-layer tensors take a gradient's first value (t = 0), as mergekit v0.1.4 plans them", () => {
  test("linear with weights [1, 0] and [0, 1]: embeddings, the first layer, the final norm and lm_head are model a's; the last layer is b's", async () => {
    const dir = join(root, `case-${n++}`);
    const base = baseModel(11);
    const a = fineTune(base, 12, 0.2), b = fineTune(base, 13, 0.2);
    const recipe = await writeCase(dir, { a, b }, {
      merge_method: "linear", parameters: { normalize: false },
      models: [{ model: "./a", parameters: { weight: [1, 0] } }, { model: "./b", parameters: { weight: [0, 1] } }],
    });
    const out = join(dir, "out");
    await merge(recipe, { out, workerUrl: WORKER_URL });
    const { tensors } = await readOutput(out);
    // 1·x + 0·y = x exactly in float32, for finite y.
    const bytes = (m: RefModel, name: string) => encodeTensor("F32", m.tensors.get(name)!.values!);
    for (const name of ["model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight", "model.norm.weight", "lm_head.weight"]) {
      assert.deepEqual(tensors.get(name)!.data, bytes(a, name), `${name} is a's`);
    }
    assert.deepEqual(tensors.get("model.layers.2.mlp.up_proj.weight")!.data, bytes(b, "model.layers.2.mlp.up_proj.weight"), "the last layer is b's (t = 1)");
  });
});

describe("layer counts", () => {
  test("a models: recipe over a 2-layer and a 4-layer model is refused in either order, naming both", async () => {
    const dir = join(root, `case-${n++}`);
    const small = baseModel(21, "F32", { ...TINY, layers: 2 });
    const big = baseModel(22, "F32", { ...TINY, layers: 4 });
    await writeCase(dir, { small, big }, {});
    for (const [first, second] of [["small", "big"], ["big", "small"]] as const) {
      const recipe = join(dir, `${first}-${second}.yml`);
      await writeFile(recipe, `merge_method: linear\nmodels:\n  - {model: ./${first}, parameters: {weight: 1}}\n  - {model: ./${second}, parameters: {weight: 1}}\n`);
      const e = await failure(recipe);
      assert.deepEqual(codes(e), ["E_LAYER_MISMATCH"], e.message);
      for (const word of ["./small", "./big"]) assert.ok(e.message.includes(word), `"${word}" in: ${e.message}`);
      assert.match(e.message, /\b2 layers\b/);
      assert.match(e.message, /\b4 layers\b/);
      const r = cli("merge", recipe, join(dir, `cli-${first}`), "--quiet");
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /\[E_LAYER_MISMATCH\]/);
    }
  });

  test("slices may still take different layer ranges from models of different depths", async () => {
    const dir = join(root, `case-${n++}`);
    const small = baseModel(23, "F32", { ...TINY, layers: 2 });
    const big = baseModel(24, "F32", { ...TINY, layers: 4 });
    const recipe = await writeCase(dir, { small, big }, {
      merge_method: "passthrough",
      slices: [{ sources: [{ model: "./small", layer_range: [0, 2] }] }, { sources: [{ model: "./big", layer_range: [2, 4] }] }],
    });
    const out = join(dir, "out");
    await merge(recipe, { out, workerUrl: WORKER_URL });
    const config = JSON.parse(await readFile(join(out, "config.json"), "utf8"));
    assert.equal(config.num_hidden_layers, 4);
    const { tensors } = await readOutput(out);
    const name = "model.layers.3.self_attn.q_proj.weight";
    assert.deepEqual(tensors.get(name)!.data, encodeTensor("F32", big.tensors.get(name)!.values!));
  });

  for (const [label, value, hang] of [["-3", -3, false], ["1e12", 1e12, true], ["2.5", 2.5, false], ['"3"', "3", false], ["5 (the weights hold 3)", 5, false]] as const) {
    test(`num_hidden_layers ${label} in config.json is refused when the model is opened`, async () => {
      const dir = join(root, `case-${n++}`);
      const base = baseModel(31);
      const bad: RefModel = { ...fineTune(base, 32, 0.1), config: { ...base.config, num_hidden_layers: value } };
      const recipe = await writeCase(dir, { base, bad }, {
        merge_method: "ties", base_model: "./base", models: [{ model: "./bad", parameters: { weight: 1, density: 0.5 } }],
      });
      // 1e12 once planned forever: the CLI must answer, and promptly.
      const r = cli("merge", recipe, join(dir, "out"), "--quiet");
      assert.notEqual(r.signal, "SIGKILL", hang ? "planning a trillion layers hangs" : "the CLI hung");
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /\[E_CONFIG\]/);
      assert.ok(r.stderr.includes("bad/config.json") && r.stderr.includes("num_hidden_layers"), r.stderr);
      assert.ok(!existsSync(join(dir, "out")));
      await assert.rejects(inspect(join(dir, "bad")), (e: unknown) => e instanceof WeightsoupError && e.code === "E_CONFIG");
    });
  }

  for (const [label, text] of [["the number 5", "5"], ["a string", '"text"'], ["a list", "[1, 2]"], ["null", "null"], ["nested 100,000 deep", "[".repeat(100_000) + "]".repeat(100_000)]] as const) {
    test(`a config.json that is ${label} is refused when the model is opened, before any tensor is computed`, async () => {
      const dir = join(root, `case-${n++}`);
      const base = baseModel(33);
      const recipe = await writeCase(dir, { base, a: fineTune(base, 34, 0.1) }, {
        merge_method: "task_arithmetic", base_model: "./base", models: [{ model: "./a", parameters: { weight: 1 } }],
      });
      await writeFile(join(dir, "a", "config.json"), text);
      const events: string[] = [];
      await assert.rejects(merge(recipe, { out: join(dir, "out"), workerUrl: WORKER_URL, onProgress: (e) => events.push(e.type) }), (e: unknown) => {
        assert.ok(e instanceof WeightsoupError && e.code === "E_CONFIG", String(e));
        assert.ok(e.message.includes("a/config.json"), e.message);
        assert.ok(e.message.length < 400, "the message does not repeat the file");
        return true;
      });
      assert.deepEqual(events, [], "no tensor was planned or computed");
    });
  }
});

describe("duplicate model entries", () => {
  test("a model listed again exactly (same parameters) is counted once with a warning, as mergekit's dict of models counts it (found by the stop 38 recipe audit: a model card's karcher was refused)", async () => {
    const dir = join(root, `case-${n++}`);
    const base = baseModel(43);
    const a = fineTune(base, 44, 0.1);
    const recipe = await writeCase(dir, { base, a }, {
      merge_method: "linear", models: [{ model: "./a", parameters: { weight: 1 } }, { model: "./base", parameters: { weight: 1 } }, { model: "./a", parameters: { weight: 1 } }],
    });
    const warnings: string[] = [];
    await merge(recipe, { out: join(dir, "out"), workerUrl: WORKER_URL, onProgress: (e) => { if (e.type === "warning") warnings.push(e.message); } });
    assert.deepEqual(warnings.length, 1, warnings.join("\n"));
    assert.match(warnings[0]!, /models\[2\]\.model: "\.\/a" repeats models\[0\] exactly; counted once/);
    // (a + base) / 2 in float32: a counted once.
    const { tensors } = await readOutput(join(dir, "out"));
    for (const [name, t] of base.tensors) {
      if (!t.values) continue;
      const x = a.tensors.get(name)!.values!, ours = decodeFloat("F32", tensors.get(name)!.data);
      for (let i = 0; i < ours.length; i++) assert.equal(ours[i], Math.fround(Math.fround(x[i]! + t.values[i]!) / 2), `${name}[${i}]`);
    }
  });

  test("a model listed twice in models: with other parameters is refused, naming it (mergekit would ignore the second entry's)", async () => {
    const dir = join(root, `case-${n++}`);
    const base = baseModel(41);
    const recipe = await writeCase(dir, { base, a: fineTune(base, 42, 0.1) }, {
      merge_method: "linear", models: [{ model: "./a", parameters: { weight: 1 } }, { model: "./base", parameters: { weight: 1 } }, { model: "./a", parameters: { weight: 0.5 } }],
    });
    const e = await failure(recipe);
    assert.equal(e.code, "E_DUPLICATE_MODEL");
    assert.ok(e.message.includes("./a") && e.message.includes("models[2]") && e.message.includes("models[0]"), e.message);
  });

  test("a model twice among one slice's sources is refused; across slices it is normal", () => {
    assert.throws(() => parseRecipe("merge_method: linear\nslices:\n  - sources:\n      - {model: a, layer_range: [0, 2], parameters: {weight: 1}}\n      - {model: a, layer_range: [2, 4], parameters: {weight: 1}}\n"),
      (e: unknown) => e instanceof WeightsoupError && e.code === "E_DUPLICATE_MODEL" && e.message.includes("slices[0].sources[1]"));
    const ok = parseRecipe("merge_method: passthrough\nslices:\n  - sources: [{model: a, layer_range: [0, 2]}]\n  - sources: [{model: a, layer_range: [1, 3]}]\n");
    assert.equal(ok.slices!.length, 2);
  });
});

describe("names that are also Object.prototype's", () => {
  test("tensors named __proto__, constructor and toString are merged and written like any other", async () => {
    const dir = join(root, `case-${n++}`);
    const withOdd = (m: RefModel, seed: number): RefModel => {
      const tensors = new Map(m.tensors);
      ["__proto__", "constructor", "toString"].forEach((name, i) => tensors.set(name, { dtype: "F32", shape: [3], values: new Float32Array([seed, i, 1]) }));
      return { ...m, tensors };
    };
    const base = baseModel(51);
    const recipe = await writeCase(dir, { a: withOdd(base, 2), b: withOdd(fineTune(base, 52, 0.1), 4) }, {
      merge_method: "linear", models: [{ model: "./a", parameters: { weight: 1 } }, { model: "./b", parameters: { weight: 1 } }],
    });
    const out = join(dir, "out");
    await merge(recipe, { out, workerUrl: WORKER_URL });
    const { tensors } = await readOutput(out);
    // normalize: (x_a + x_b) / 2
    assert.deepEqual([...new Float32Array(tensors.get("__proto__")!.data.slice().buffer)], [3, 0, 1]);
    assert.deepEqual([...new Float32Array(tensors.get("constructor")!.data.slice().buffer)], [3, 1, 1]);
    assert.deepEqual([...new Float32Array(tensors.get("toString")!.data.slice().buffer)], [3, 2, 1]);
    const report = await inspect(join(out, "model.safetensors"));
    assert.ok(report.tensors.some((t) => t.name === "__proto__"), "weightsoup reads back what it wrote");
  });

  test('a header dtype "constructor" is an unknown dtype', async () => {
    const dir = join(root, `case-${n++}`);
    const json = JSON.stringify({ w: { dtype: "constructor", shape: [1], data_offsets: [0, 4] } });
    const bytes = new Uint8Array(8 + json.length + 4);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
    bytes.set(new TextEncoder().encode(json), 8);
    await writeFile(join(dir + ".safetensors"), bytes);
    await assert.rejects(inspect(dir + ".safetensors"), (e: unknown) => e instanceof WeightsoupError && e.code === "E_UNKNOWN_DTYPE" && e.message.includes("constructor"));
  });

  for (const [text, code] of [
    ["merge_method: constructor\nmodels: [{model: a}]\n", "E_METHOD_UNKNOWN"],
    ["merge_method: toString\nmodels: [{model: a}]\n", "E_METHOD_UNKNOWN"],
    ["merge_method: linear\ndtype: __proto__\nmodels: [{model: a, parameters: {weight: 1}}]\n", "E_RECIPE"],
    ["merge_method: linear\ndtype: constructor\nmodels: [{model: a, parameters: {weight: 1}}]\n", "E_RECIPE"],
  ] as const) {
    test(`${JSON.stringify(text.split("\n")[0]!)}... is a typed ${code}`, async () => {
      const dir = join(root, `case-${n++}`);
      const base = baseModel(53);
      await writeModel(join(dir, "a"), base);
      await writeFile(join(dir, "r.yml"), text);
      const e = await failure(join(dir, "r.yml"));
      assert.ok(codes(e).includes(code), `${codes(e)} includes ${code}: ${e.message}`);
    });
  }
});

describe("parameters named like Object.prototype's members", () => {
  for (const [text, name] of [
    ["merge_method: linear\nmodels: [{model: ./a, parameters: {weight: 1, constructor: 2}}]\n", "constructor"],
    ["merge_method: linear\nmodels: [{model: ./a, parameters: {weight: 1, __proto__: 2}}]\n", "__proto__"],
    ["merge_method: ties\nbase_model: ./a\nparameters: {hasOwnProperty: 1}\nmodels: [{model: ./a}]\n", "hasOwnProperty"],
  ] as const) {
    test(`${name} is a parameter the method does not have: a warning naming it, as for any other name, and the merge runs`, async () => {
      const dir = join(root, `case-${n++}`);
      await writeModel(join(dir, "a"), baseModel(53));
      await writeFile(join(dir, "r.yml"), text);
      const warnings: string[] = [];
      await merge(join(dir, "r.yml"), { out: join(dir, "out"), workerUrl: WORKER_URL, onProgress: (e) => { if (e.type === "warning") warnings.push(e.message); } });
      assert.equal(warnings.length, 1, warnings.join("\n"));
      assert.match(warnings[0]!, new RegExp(`parameters\\.${name}: (linear|ties) has no parameter "${name}".*ignored, as mergekit ignores it`));
    });
  }
});

describe("hostile YAML and JSON", () => {
  const recipe = (text: string) => () => parseRecipe(text, "r.yml");
  const syntax = (pattern: RegExp) => (e: unknown) => {
    assert.ok(e instanceof WeightsoupError, String(e));
    assert.equal(e.code, "E_RECIPE_SYNTAX");
    assert.match(e.message, pattern);
    return true;
  };
  test("an alias to no anchor names its line and column", () => {
    assert.throws(recipe("merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: *w}\n"), syntax(/^r\.yml:4:\d+: .*\bw\b/));
  });
  // PyYAML, mergekit's loader, refuses these ("found unhashable key"); the yaml package would have made
  // the key text ("[ a, b ]") with a console warning, and a `tokens:` or `parameters:` name it became could run.
  test("a list or mapping as a mapping key is refused, naming where, directly or through an alias", () => {
    assert.throws(recipe("merge_method: linear\nmodels:\n  - model: a\n    parameters: {[x, y]: 1, weight: 1}\n"), syntax(/^r\.yml:4:18: a mapping key is a list or mapping/));
    assert.throws(recipe("merge_method: linear\nparameters:\n  ? {weight: 1}\n  : 2\n"), syntax(/^r\.yml:3:5: a mapping key is a list or mapping/));
    assert.throws(recipe("merge_method: linear\nname: &k [a]\nparameters:\n  *k : 1\n"), syntax(/^r\.yml:4:3: a mapping key is a list or mapping/));
    // Scalar keys, aliased or not, are still keys.
    const r = parseRecipe("merge_method: linear\nname: &k weight\nmodels:\n  - model: a\n    parameters: {*k : 0.5}\n", "r.yml");
    assert.equal(r.models?.[0]?.parameters?.weight, 0.5);
  });
  test("an alias bomb is refused, not expanded", () => {
    const bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\nmerge_method: linear\n";
    assert.throws(recipe(bomb), syntax(/alias/));
  });
  test("lists nested 100,000 deep are a syntax error, not a RangeError", () => {
    assert.throws(recipe(`merge_method: linear\nparameters: {weight: ${"[".repeat(100_000)}1${"]".repeat(100_000)}}\n`), syntax(/./));
  });
  // Refused from the text before the YAML parser, whose recursion took seconds to end in "Maximum call
  // stack size exceeded" (fuzz seed 99: an `align:` value 100,000 deep); the message names the first bracket too deep.
  test("flow nesting 100,000 deep is refused as too deep at the 65th bracket, in any key", () => {
    for (const [key, open, close] of [["align", "[", "]"], ["parameters", "{a: ", "}"], ["models", "[", "]"]] as const) {
      const text = `merge_method: linear\n${key}: ${open.repeat(100_000)}1${close.repeat(100_000)}\n`;
      const column = key.length + 3 + open.length * 64;
      assert.throws(recipe(text), syntax(new RegExp(`^r\\.yml:2:${column}: nests deeper than 64 levels$`)), key);
    }
  });
  test("brackets that are text (quoted, commented, in a block scalar or a plain scalar) do not count as nesting", () => {
    const many = "[{".repeat(60);
    const text = [
      "merge_method: linear",
      `name: |\n  ${many}\n  ${many}`,
      `models: # ${many}`,
      `  - model: "a${many}"`,
      `    parameters: {weight: 1}`,
      `  - model: 'b''${many}'`,
      `    parameters: {weight: 1}`,
      `  - model: c${many}`,
      `    parameters: {weight: 1}`,
      "",
    ].join("\n");
    const r = parseRecipe(text, "r.yml");
    assert.equal(r.name?.trimEnd(), `${many}\n${many}`);
    assert.deepEqual(r.models?.map((m) => m.model), [`a${many}`, `b'${many}`, `c${many}`]);
  });
  test("lists nested 70 deep (parsable) are refused as too deep", () => {
    assert.throws(recipe(`merge_method: linear\nparameters: {weight: ${"[".repeat(70)}1${"]".repeat(70)}}\n`), syntax(/deeper than/));
  });
  // Aliases are resolved by walking the whole document, once per alias: a deep document made each walk
  // slow and many aliases made many walks, so these took minutes (fuzz seed 4242). 60 s turns such a
  // hang into a failure; both take well under a second.
  const DEADLINE_MS = 60_000;
  const refusedInThread = async (text: string, pattern: RegExp) => {
    const r = await parseRecipeInThread(text, DEADLINE_MS);
    assert.equal(r.outcome, "rejected", JSON.stringify(r));
    if (r.outcome !== "rejected") return;
    assert.ok(r.typed, `a WeightsoupError, got ${r.name}: ${r.message}`);
    assert.equal(r.code, "E_RECIPE_SYNTAX", r.message);
    assert.match(r.message, pattern);
  };
  test("a filter nested 5,000 deep beside an alias bomb is refused as too deep, naming where", async () => {
    await refusedInThread(
      `{merge_method: linear, models: [{model: ./a}], parameters: {weight: [{filter: ${deepText("object", 5_000)}, value: 1}], x: ${aliasBombText(9, 9)}}}\n`,
      /^r\.yml:1:\d+: nests deeper than 64 levels/,
    );
  });
  test("20,000 aliases of one anchor are refused as an alias bomb", async () => {
    await refusedInThread(`merge_method: linear\nmodels: [{model: ./a, parameters: {weight: &w 1}}]\nparameters: {x: [${Array(20_000).fill("*w").join(", ")}]}\n`, /alias/);
  });
  test("a shape element nested 100,000 deep in a header is a typed header error", async () => {
    const json = `{"w":{"dtype":"F32","shape":${"[".repeat(100_000)}${"]".repeat(100_000)},"data_offsets":[0,0]}}`;
    const bytes = new Uint8Array(8 + json.length);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
    bytes.set(new TextEncoder().encode(json), 8);
    const file = join(root, `deep-${n++}.safetensors`);
    await writeFile(file, bytes);
    await assert.rejects(inspect(file), (e: unknown) => e instanceof WeightsoupError && e.code === "E_HEADER_JSON" && e.message.length < 300);
  });
});

describe("messages name the real value and the real option", () => {
  /** A case folder with models a (a base from `seed`) and b (a fine-tune of it). */
  const twoModels = async (seed: number) => {
    const dir = join(root, `case-${n++}`);
    const base = baseModel(seed);
    await writeModel(join(dir, "a"), base);
    await writeModel(join(dir, "b"), fineTune(base, seed + 1, 0.1));
    return dir;
  };

  test("a NaN weight says NaN, not null", async () => {
    const dir = await twoModels(61);
    await writeFile(join(dir, "r.yml"), "merge_method: linear\nmodels:\n  - {model: ./a, parameters: {weight: .nan}}\n  - {model: ./b, parameters: {weight: 1}}\n");
    const e = await failure(join(dir, "r.yml"));
    assert.ok(codes(e).includes("E_PARAMETER_INVALID"));
    assert.match(e.message, /NaN/);
    assert.doesNotMatch(e.message, /null/);
  });

  test("parameter values outside mergekit's ParameterSetting forms are refused (E_RECIPE naming the key), not read some way", async () => {
    // A conditional inside a conditional merged with its inner value; mergekit's pydantic refuses it.
    const dir = await twoModels(67);
    for (const [label, weight, key] of [
      ["a conditional's value that is a filter list", "[{filter: mlp, value: [{filter: up, value: 3}]}, {value: 1}]", /weight\[0\]\.value: a conditional's value must be/],
      ["a conditional's value that is a conditional", "{filter: mlp, value: {value: 3}}", /weight\.value/],
      ["a list mixing values and conditionals", "[0.5, {filter: mlp, value: 3}]", /weight: a list must hold only values/],
      ["a list of lists", "[[0.5, 1], 1]", /weight: a list must hold only values/],
    ] as const) {
      await writeFile(join(dir, "p.yml"), `merge_method: linear\nmodels:\n  - {model: ./a, parameters: {weight: ${weight}}}\n  - {model: ./b, parameters: {weight: 1}}\n`);
      const e = await failure(join(dir, "p.yml"));
      assert.ok(codes(e).includes("E_RECIPE"), `${label}: ${e.message}`);
      assert.match(e.message, key, label);
    }
    await writeFile(join(dir, "ok.yml"), "merge_method: linear\nmodels:\n  - {model: ./a, parameters: {weight: [{filter: mlp, value: [0.2, 0.8]}, {value: 1}]}}\n  - {model: ./b, parameters: {weight: 1}}\n");
    await merge(join(dir, "ok.yml"), { out: join(root, `out-${n++}`), workerUrl: WORKER_URL, workers: 1 });
  });

  test("a quoted number or boolean is refused as text, saying to write it without quotes", async () => {
    const dir = await twoModels(65);
    await writeFile(join(dir, "w.yml"), "merge_method: linear\nmodels:\n  - {model: ./a, parameters: {weight: \"0.5\"}}\n  - {model: ./b, parameters: {weight: 1}}\n");
    assert.match((await failure(join(dir, "w.yml"))).message, /model \.\/a: parameter "weight" must be a number, got "0\.5", which is text: write it without quotes/);
    await writeFile(join(dir, "n.yml"), "merge_method: linear\nmodels:\n  - {model: ./a, parameters: {weight: 1}}\n  - {model: ./b, parameters: {weight: 1}}\nparameters: {normalize: 'true'}\n");
    assert.match((await failure(join(dir, "n.yml"))).message, /parameter "normalize" must be a boolean, got "true", which is text: write it without quotes/);
    // Other text gets no such advice.
    await writeFile(join(dir, "s.yml"), "merge_method: linear\nmodels:\n  - {model: ./a, parameters: {weight: heavy}}\n  - {model: ./b, parameters: {weight: 1}}\n");
    assert.doesNotMatch((await failure(join(dir, "s.yml"))).message, /without quotes/);
  });

  test("a weight beyond float32's range is refused naming it; the largest float32 is accepted", async () => {
    const dir = await twoModels(63);
    // 3.4028236e38 rounds up past float32's largest value (3.4028234663852886e38) to infinity.
    await writeFile(join(dir, "r.yml"), "merge_method: linear\nmodels:\n  - {model: ./a, parameters: {weight: 3.4028236e38}}\n  - {model: ./b, parameters: {weight: 1}}\nparameters: {normalize: false}\n");
    const e = await failure(join(dir, "r.yml"));
    assert.ok(codes(e).includes("E_PARAMETER_INVALID"), codes(e).join(", "));
    assert.match(e.message, /model \.\/a: parameter "weight" must be a finite number within float32's range .*3\.4028236e\+?38/);
    await writeFile(join(dir, "ok.yml"), "merge_method: linear\nmodels:\n  - {model: ./a, parameters: {weight: 3.4028234663852886e38}}\n  - {model: ./b, parameters: {weight: 1}}\nparameters: {normalize: false}\n");
    await merge(join(dir, "ok.yml"), { out: join(dir, "out-ok"), workerUrl: WORKER_URL, workers: 1 });
  });

  test("--chunk-size 4097 blames the chunk size, not the memory budget", async () => {
    const dir = join(root, `case-${n++}`);
    const base = baseModel(63);
    const recipe = await writeCase(dir, { base, a: fineTune(base, 64, 0.1) }, { merge_method: "linear", models: [{ model: "./base", parameters: { weight: 1 } }, { model: "./a", parameters: { weight: 1 } }] });
    const r = cli("merge", recipe, join(dir, "out"), "--chunk-size", "4097", "--quiet");
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /chunk size of 4097 bytes/);
    assert.doesNotMatch(r.stderr, /budget/);
  });

  test("the least chunk size a refusal names is the one accepted (TIES of three F32 models: one tile of inputs and output)", async () => {
    const dir = join(root, `case-${n++}`);
    // 512 x 16 embeddings: 8192 elements, more than a 4096-element chunk holds resident.
    const base = baseModel(65, "F32", { ...TINY, vocab: 512 });
    const recipe = await writeCase(dir, { base, a: fineTune(base, 66, 0.1), b: fineTune(base, 67, 0.1), c: fineTune(base, 68, 0.1) },
      { merge_method: "ties", base_model: "./base", models: ["a", "b", "c"].map((m) => ({ model: `./${m}`, parameters: { weight: 1, density: 0.5 } })) });
    // Per element: base and three models (4 bytes each) and the output (4): 20 bytes, 81920 per 4096-element tile.
    const least = 4096 * (4 * 4 + 4);
    await assert.rejects(merge(recipe, { out: join(dir, "small"), workerUrl: WORKER_URL, workers: 1, chunkBytes: least - 1 }), (e: unknown) => {
      assert.ok(e instanceof WeightsoupError && e.code === "E_OPTION", String(e));
      assert.ok(e.message.includes(`${least} bytes of this tensor's inputs and output`), e.message);
      assert.equal(e.details.needed, least);
      return true;
    });
    await merge(recipe, { out: join(dir, "least"), workerUrl: WORKER_URL, workers: 1, chunkBytes: least });
    assert.ok(existsSync(join(dir, "least", "model.safetensors")));
  });

  test("a tensor smaller than one tile is one chunk: its refusal names its own size and the chunk size that is then accepted (it named 4096 elements)", async () => {
    const dir = join(root, `case-${n++}`);
    const base = baseModel(69); // TINY: every tensor under 4096 elements
    const recipe = await writeCase(dir, { base, a: fineTune(base, 70, 0.1), b: fineTune(base, 71, 0.1) },
      { merge_method: "ties", base_model: "./base", models: ["a", "b"].map((m) => ({ model: `./${m}`, parameters: { weight: 1, density: 0.5 } })) });
    const sizes = new Map([...base.tensors].map(([name, t]) => [name, t.shape.reduce((p, d) => p * d, 1)]));
    // Raise the chunk size to what each refusal names until the merge runs: each named size is accepted for its tensor.
    let chunkBytes = 256, refusals = 0;
    for (;;) {
      try {
        await merge(recipe, { out: join(dir, `out-${refusals}`), workerUrl: WORKER_URL, workers: 1, chunkBytes });
        break;
      } catch (e) {
        assert.ok(e instanceof WeightsoupError && e.code === "E_OPTION", String(e));
        const tensor = String(e.details.tensor), needed = e.details.needed as number;
        assert.ok(needed > chunkBytes, `${tensor}: ${needed} bytes named at a chunk size of ${chunkBytes}`);
        assert.ok(e.message.endsWith(`this tensor is one chunk of ${sizes.get(tensor)} elements, which needs a chunk size of at least ${needed} bytes`), e.message);
        chunkBytes = needed;
        assert.ok(++refusals < 20, "the named sizes are accepted");
      }
    }
    assert.ok(refusals > 0);
  });
});
