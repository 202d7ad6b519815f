// Every method against the independent scalar reference (tests/reference/merge.ts) on small random
// checkpoints: float32 outputs within 1e-6, bf16/f16 outputs within 1 ulp, integer tensors byte-equal.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { join } from "node:path";
import { merge } from "../src/node";
import { referenceMerge } from "./reference/merge";
import type { RefModel } from "./reference/merge";
import { baseModel, compareTensor, fineTune, readOutput, removeDir, tempDir, TINY, WORKER_URL, writeCase, type Shape } from "./helpers/fixtures";

let root: string;
before(async () => { root = await tempDir(); });
after(async () => { await removeDir(root); });

interface Case {
  name: string;
  models: Record<string, RefModel>;
  recipe: Record<string, unknown>;
  shards?: Record<string, number>;
  seed?: number;
  outShardSize?: number;
  workers?: number;
  /** The recipe the reference computes, where weightsoup's is another spelling of it. */
  reference?: Record<string, unknown>;
}

let counter = 0;
/** Runs weightsoup and the reference on one case and checks every output tensor. */
async function check(c: Case, onFiles?: (files: string[]) => void): Promise<void> {
  const dir = join(root, `case-${counter++}`);
  const recipePath = await writeCase(dir, c.models, c.recipe, c.shards);
  const out = join(dir, "out");
  const summary = await merge(recipePath, { out, workers: c.workers ?? 2, seed: c.seed ?? 0, workerUrl: WORKER_URL, ...(c.outShardSize ? { outShardSize: c.outShardSize } : {}) });
  const expected = referenceMerge(c.reference ?? c.recipe, new Map(Object.entries(c.models).map(([k, v]) => [`./${k}`, v])), { seed: c.seed ?? 0 });
  const ours = await readOutput(out);
  assert.deepEqual([...ours.tensors.keys()].sort(), [...expected.tensors.keys()].sort(), "the same tensors");
  assert.equal(summary.tensors, expected.tensors.size);
  for (const [name, ref] of expected.tensors) {
    const got = ours.tensors.get(name)!;
    const { maxAbs, maxUlp, at } = compareTensor(got, ref);
    if (got.dtype === "F32") assert.ok(maxAbs <= 1e-6, `${c.name}: ${name}: max abs diff ${maxAbs} at ${at}`);
    else if (got.dtype === "BF16" || got.dtype === "F16") assert.ok(maxUlp <= 1, `${c.name}: ${name}: ${maxUlp} ulps apart (abs ${maxAbs}) at ${at}`);
    else assert.equal(maxAbs, 0, `${c.name}: ${name}: integer tensor differs`);
  }
  onFiles?.(ours.files);
}

const models = (...list: [string, RefModel][]) => Object.fromEntries(list);
const m = (name: string, parameters?: Record<string, unknown>) => ({ model: `./${name}`, ...(parameters ? { parameters } : {}) });

describe("linear", () => {
  const base = baseModel(1, "F32", TINY, { ints: true });
  const a = fineTune(base, 2, 0.2), b = fineTune(base, 3, 0.2), c = fineTune(base, 4, 0.2);
  test("normalized weighted average with a negative weight", () => check({
    name: "linear", models: models(["a", a], ["b", b], ["c", c]),
    recipe: { merge_method: "linear", models: [m("a", { weight: 1 }), m("b", { weight: -0.25 }), m("c", { weight: 0.5 })] },
  }));
  test("normalize off, weights from a filter list and a gradient, bf16 output", () => check({
    name: "linear-bf16", models: models(["a", a], ["b", b]),
    recipe: {
      merge_method: "linear", parameters: { normalize: false },
      models: [m("a", { weight: [{ filter: "mlp", value: [0.2, 0.8] }, { value: 0.5 }] }), m("b", { weight: 0.5 })],
      out_dtype: "bfloat16",
    },
  }));
  test("normalize as a list of booleans is a gradient of 0s and 1s (Python's bool is an int): on from halfway, where it is 0.5", async () => {
    // weightsoup stepped such a list, so layer 1 (t = 0.5) took false and came out unnormalized, 4x too large.
    await check({
      name: "linear-bool-gradient", models: models(["a", a], ["b", b]),
      recipe: { merge_method: "linear", parameters: { normalize: [false, true] }, models: [m("a", { weight: 1 }), m("b", { weight: 3 })] },
    });
    const out = (await readOutput(join(root, `case-${counter - 1}`, "out"))).tensors;
    const name = (layer: number) => `model.layers.${layer}.mlp.up_proj.weight`;
    for (const [layer, divisor] of [[0, 1], [1, 4], [2, 4]] as const) {
      const got = new Float32Array(out.get(name(layer))!.data.slice().buffer);
      const [x, y] = [a.tensors.get(name(layer))!.values!, b.tensors.get(name(layer))!.values!];
      for (let i = 0; i < got.length; i += 7) assert.ok(Math.abs(got[i]! - (x[i]! + 3 * y[i]!) / divisor) < 1e-6, `layer ${layer}, element ${i}: ${got[i]} against (a + 3b) / ${divisor}`);
    }
  });
  test("a boolean where a number goes is 1 or 0, as mergekit's pydantic reads it (weight: true, a filter's value: false)", () => check({
    name: "linear-bool-weight", models: models(["a", a], ["b", b], ["c", c]),
    recipe: { merge_method: "linear", models: [m("a", { weight: true }), m("b", { weight: [{ filter: "mlp", value: false }, { value: 0.5 }] }), m("c", { weight: 0.5 })] },
    reference: { merge_method: "linear", models: [m("a", { weight: 1 }), m("b", { weight: [{ filter: "mlp", value: 0 }, { value: 0.5 }] }), m("c", { weight: 0.5 })] },
  }));
  test("a declared base listed with its own weight, bf16 inputs", () => {
    const base16 = baseModel(5, "BF16");
    return check({
      name: "linear-base", models: models(["base", base16], ["x", fineTune(base16, 6, 0.1)]),
      recipe: { merge_method: "linear", base_model: "./base", models: [m("base", { weight: 0.3 }), m("x", { weight: 0.7 })] },
    });
  });
});

describe("slerp", () => {
  const base = baseModel(11);
  const other = fineTune(base, 12, 0.8);
  test("a scalar t", () => check({
    name: "slerp", models: models(["base", base], ["other", other]),
    recipe: { merge_method: "slerp", base_model: "./base", models: [m("base"), m("other")], parameters: { t: 0.3 } },
  }));
  test("per-module t gradients (mergekit's gradient-slerp example), f16 compute dtype", () => check({
    name: "slerp-gradient", models: models(["base", base], ["other", other]),
    recipe: {
      merge_method: "slerp", base_model: "./base",
      slices: [{ sources: [{ model: "./base", layer_range: [0, 3] }, { model: "./other", layer_range: [0, 3] }] }],
      parameters: { t: [{ filter: "self_attn", value: [0, 0.5, 1] }, { filter: "mlp", value: [1, 0.5, 0] }, { value: 0.5 }] },
      dtype: "float16",
    },
  }));
  test("nearly colinear tensors fall back to linear interpolation", () => {
    const scaled: RefModel = { config: base.config, tensors: new Map([...base.tensors].map(([k, t]) => [k, { ...t, values: t.values!.map((v) => Math.fround(v * 1.5)) }])) };
    return check({
      name: "slerp-colinear", models: models(["base", base], ["scaled", scaled]),
      recipe: { merge_method: "slerp", base_model: "./base", models: [m("base"), m("scaled")], parameters: { t: 0.25 } },
    });
  });
});

describe("task arithmetic family", () => {
  const base = baseModel(21, "F32", TINY, { ints: true });
  const ft = [fineTune(base, 22, 0.1), fineTune(base, 23, 0.1, { only: "mlp" }), fineTune(base, 24, 0.3)];
  const three = models(["base", base], ["a", ft[0]!], ["b", ft[1]!], ["c", ft[2]!]);
  test("task_arithmetic: negative weight, lambda, normalize off", () => check({
    name: "ta", models: three,
    recipe: { merge_method: "task_arithmetic", base_model: "./base", models: [m("a", { weight: 1 }), m("b", { weight: -0.5 }), m("c", { weight: 0.3 })], parameters: { lambda: 0.7 } },
  }));
  test("task_arithmetic: normalize on", () => check({
    name: "ta-norm", models: three,
    recipe: { merge_method: "task_arithmetic", base_model: "./base", models: [m("a", { weight: 1 }), m("b", { weight: 2 })], parameters: { normalize: true } },
  }));
  test("ties: densities below 1, one at 1, a density gradient", () => check({
    name: "ties", models: three,
    recipe: {
      merge_method: "ties", base_model: "./base",
      models: [m("a", { weight: 1, density: [0.9, 0.5, 0.2] }), m("b", { weight: 0.6, density: 1 }), m("c", { weight: -0.4, density: 0.33 })],
    },
  }));
  test("ties: bf16 checkpoints with many equal |tau| (tie rule), normalize off, rescale on", () => {
    const b16 = baseModel(31, "BF16");
    const q = (seed: number) => fineTune(b16, seed, 0.05, { quantum: 2 ** -7 });
    return check({
      name: "ties-bf16", models: models(["base", b16], ["a", q(32)], ["b", q(33)], ["c", q(34)]),
      recipe: {
        merge_method: "ties", base_model: "./base", parameters: { normalize: false, rescale: true },
        models: [m("a", { weight: 1, density: 0.5 }), m("b", { weight: 1, density: 0.3 }), m("c", { weight: 0.5, density: 0.7 })],
      },
    });
  });
  test("dare_linear: rescaled random masks with a seed", () => check({
    name: "dare-linear", models: three, seed: 7,
    recipe: { merge_method: "dare_linear", base_model: "./base", models: [m("a", { weight: 1, density: 0.4 }), m("c", { weight: 0.5, density: 0.6 })] },
  }));
  test("dare_ties: consensus, normalize, lambda, a density of 1", () => check({
    name: "dare-ties", models: three, seed: 123456789,
    recipe: {
      merge_method: "dare_ties", base_model: "./base", parameters: { normalize: true, lambda: 1.3 },
      models: [m("a", { weight: 1, density: 0.5 }), m("b", { weight: 1, density: 1 }), m("c", { weight: 0.7, density: 0.2 })],
    },
  }));
  test("dare_ties without rescaling, f16 output", () => check({
    name: "dare-ties-f16", models: three, seed: 3,
    recipe: {
      merge_method: "dare_ties", base_model: "./base", parameters: { rescale: false }, out_dtype: "float16",
      models: [m("a", { weight: 0.5, density: 0.5 }), m("c", { weight: 0.5, density: 0.5 })],
    },
  }));
});

// The kernels' loops for checkpoints stored all in BF16 (linear of 2-4 models, task_arithmetic of 1-3
// task models: inputs read in place, eight values a load), against the reference with distinct weights
// so that a weight given to the wrong input shows; tensors whose sizes are not multiples of 8 reach the
// general loop's tail too.
describe("all-bf16 checkpoints", () => {
  const ODD: Shape = { vocab: 37, hidden: 12, intermediate: 20, layers: 2, heads: 3, kvHeads: 1 };
  const base = baseModel(41, "BF16", ODD);
  const ft = [fineTune(base, 42, 0.1), fineTune(base, 43, 0.2), fineTune(base, 44, 0.3), fineTune(base, 45, 0.15)];
  const all = models(["base", base], ["a", ft[0]!], ["b", ft[1]!], ["c", ft[2]!], ["d", ft[3]!]);
  const weights = [0.7, -0.35, 0.45, 1.1];
  const names = ["a", "b", "c", "d"];
  for (const count of [2, 3, 4]) {
    for (const [normalize, outDtype] of [[true, "bfloat16"], [false, "float32"], [true, "float16"]] as const) {
      test(`linear of ${count} bf16 models, normalize ${normalize}, ${outDtype} output`, () => check({
        name: `linear-bf16-${count}`, models: all,
        recipe: { merge_method: "linear", parameters: { normalize }, models: names.slice(0, count).map((n, i) => m(n, { weight: weights[i] })), out_dtype: outDtype },
      }));
    }
  }
  for (const tasks of [1, 2, 3]) {
    for (const [normalize, lambda, outDtype] of [[false, 1, "bfloat16"], [true, 0.8, "float32"], [false, 1.25, "float16"]] as const) {
      test(`task_arithmetic with ${tasks} bf16 task models, normalize ${normalize}, lambda ${lambda}, ${outDtype} output`, () => check({
        name: `ta-bf16-${tasks}`, models: all,
        recipe: {
          merge_method: "task_arithmetic", base_model: "./base", parameters: { normalize, lambda },
          models: names.slice(0, tasks).map((n, i) => m(n, { weight: weights[i] })), out_dtype: outDtype,
        },
      }));
    }
  }
});

describe("slices and passthrough", () => {
  const a = baseModel(41), b = baseModel(42);
  test("a frankenmerge stacking layers of two models, with scale filters", async () => {
    await check({
      name: "passthrough", models: models(["a", a], ["b", b]),
      recipe: {
        merge_method: "passthrough",
        slices: [
          { sources: [{ model: "./a", layer_range: [0, 2] }] },
          { sources: [{ model: "./b", layer_range: [1, 3], parameters: { scale: [{ filter: "o_proj", value: 0.5 }, { filter: "down_proj", value: 0.5 }, { value: 1 }] } }] },
        ],
      },
    });
  });
  test("GPT-NeoX's embed_out is the output head: a frankenmerge takes it from the last slice, with the final norm", async () => {
    // It was taken for an input embedding (its name holds "embed"), so it came from the first slice's model.
    const neox = (m: RefModel): RefModel => ({ ...m, tensors: new Map([...m.tensors].map(([name, t]) => [name === "lm_head.weight" ? "embed_out.weight" : name, t])) });
    await check({
      name: "neox-embed-out", models: models(["a", neox(a)], ["b", neox(b)]),
      recipe: { merge_method: "passthrough", slices: [{ sources: [{ model: "./a", layer_range: [0, 2] }] }, { sources: [{ model: "./b", layer_range: [0, 2] }] }] },
    });
    const out = (await readOutput(join(root, `case-${counter - 1}`, "out"))).tensors;
    for (const [name, from] of [["embed_out.weight", b.tensors.get("lm_head.weight")!], ["model.norm.weight", b.tensors.get("model.norm.weight")!], ["model.embed_tokens.weight", a.tensors.get("model.embed_tokens.weight")!]] as const) {
      assert.deepEqual(new Float32Array(out.get(name)!.data.slice().buffer), from.values, `${name} is ${from === a.tensors.get("model.embed_tokens.weight") ? "a" : "b"}'s`);
    }
  });
  test("slerp over two slices: gradients restart in each slice, slice parameters win over top-level", () => {
    const base = baseModel(43), other = fineTune(base, 44, 0.5);
    return check({
      name: "slices-slerp", models: models(["base", base], ["other", other]),
      recipe: {
        merge_method: "slerp", base_model: "./base", parameters: { t: 0.9 },
        slices: [
          { sources: [{ model: "./base", layer_range: [0, 2] }, { model: "./other", layer_range: [0, 2] }], parameters: { t: [0, 1] } },
          { sources: [{ model: "./base", layer_range: [2, 3] }, { model: "./other", layer_range: [2, 3] }] },
        ],
      },
    });
  });
  test("per-source parameters in slices for ties", () => {
    const base = baseModel(45), x = fineTune(base, 46, 0.2), y = fineTune(base, 47, 0.2);
    return check({
      name: "slices-ties", models: models(["base", base], ["x", x], ["y", y]),
      recipe: {
        merge_method: "ties", base_model: "./base",
        slices: [{
          sources: [
            { model: "./base", layer_range: [0, 3] },
            { model: "./x", layer_range: [0, 3], parameters: { weight: 1, density: 0.6 } },
            { model: "./y", layer_range: [0, 3], parameters: { weight: [0.2, 1], density: 0.4 } },
          ],
        }],
      },
    });
  });
});

describe("inputs and outputs", () => {
  const base = baseModel(51, "BF16");
  const a = fineTune(base, 52, 0.1), b = fineTune(base, 53, 0.1);
  test("sharded inputs and a sharded output", async () => {
    let files: string[] = [];
    await check({
      name: "sharded", models: models(["base", base], ["a", a], ["b", b]), shards: { base: 3, a: 2 }, outShardSize: 2000,
      recipe: { merge_method: "ties", base_model: "./base", models: [m("a", { weight: 1, density: 0.5 }), m("b", { weight: 1, density: 0.5 })] },
    }, (f) => { files = f; });
    const shards = files.filter((f) => f.endsWith(".safetensors"));
    assert.ok(shards.length > 3, `expected several output shards, got ${shards.join(", ")}`);
    assert.ok(files.includes("model.safetensors.index.json"));
  });
  test("dtype rounds float32 inputs at load; out_dtype sets the output", () => {
    const f32 = baseModel(54, "F32");
    return check({
      name: "dtypes", models: models(["base", f32], ["a", fineTune(f32, 55, 0.3)]),
      recipe: { merge_method: "task_arithmetic", base_model: "./base", models: [m("a", { weight: 0.8 })], dtype: "bfloat16", out_dtype: "float16" },
    });
  });
  test("embeddings with different vocabulary sizes are cut to the common block", async () => {
    const big = baseModel(56, "F32", { ...TINY, vocab: 56 });
    const small = fineTune(baseModel(56, "F32"), 57, 0.2);
    await check({
      name: "vocab-linear", models: models(["big", big], ["small", small]),
      recipe: { merge_method: "linear", models: [m("big", { weight: 0.5 }), m("small", { weight: 0.5 })] },
    });
    await check({
      name: "vocab-ties", models: models(["base", baseModel(56, "F32")], ["big", fineTune(big, 58, 0.2)]),
      recipe: { merge_method: "ties", base_model: "./base", models: [m("big", { weight: 1, density: 0.5 })] },
    });
  });
});
