// The issue 10 merge methods against the independent scalar reference (tests/reference/methods.ts,
// tests/reference/SPEC.md section 5) on small random checkpoints: float32 outputs within 1e-6 (relative
// to the largest of 1, the value and the inputs there), bf16/f16 outputs within 1 ulp, integer tensors
// byte-equal (helpers/parity-check.ts). Each method also gives
// bit-identical files for 1 or 2 workers and for several chunks per tensor, and refuses the inputs its
// contract refuses with a typed error. One describe() per method: run one with
// `node --test --test-name-pattern='^nuslerp$' .build/tests/merge-methods-parity.test.js`.
import assert from "node:assert/strict";
import { readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { merge } from "../src/node";
import { WeightsoupError } from "../src/errors";
import type { RefModel, RefTensor } from "./reference/merge";
import { roundToDtype } from "./reference/float16";
import { baseModel, fineTune, readOutput, removeDir, tempDir, TINY, toYaml, uniform, WORKER_URL, writeCase, type Shape } from "./helpers/fixtures";
import { ARCEE_BAND, arceeBand, check, type Case } from "./helpers/parity-check";

let root: string;
before(async () => { root = await tempDir(); });
after(async () => { await removeDir(root); });
let counter = 0;

/** Codes of an error and, for a ValidationError, of each problem in it. */
const codes = (e: WeightsoupError): string[] => ("problems" in e ? (e as unknown as { problems: WeightsoupError[] }).problems.map((p) => p.code) : [e.code]);
const messages = (e: WeightsoupError): string => ("problems" in e ? (e as unknown as { problems: WeightsoupError[] }).problems.map((p) => p.message).join("\n") : e.message);

/** Runs a case that must fail with a typed error of `code` whose message matches every pattern. */
async function refused(c: Case, code: string, ...patterns: RegExp[]): Promise<void> {
  const dir = join(root, `local-${counter++}`);
  const recipePath = await writeCase(dir, c.models, c.recipe);
  try {
    await merge(recipePath, { out: join(dir, "out"), workers: 1, seed: c.seed ?? 0, workerUrl: WORKER_URL });
  } catch (e) {
    assert.ok(e instanceof WeightsoupError, `${c.name}: a WeightsoupError, got ${String(e)}`);
    assert.ok(codes(e).includes(code), `${c.name}: code ${code}, got ${codes(e).join(", ")}: ${e.message}`);
    for (const p of patterns) assert.match(messages(e), p, `${c.name}: the message names ${p}`);
    return;
  }
  assert.fail(`${c.name}: the merge succeeded`);
}

const models = (...list: [string, RefModel][]) => Object.fromEntries(list);
const m = (name: string, parameters?: Record<string, unknown>) => ({ model: `./${name}`, ...(parameters ? { parameters } : {}) });

/**
 * A fine-tune that moves only some elements (each with probability `fraction`), so that task vectors
 * overlap partly: what ram's unique/shared split needs.
 */
function sparseFineTune(base: RefModel, seed: number, scale: number, fraction: number): RefModel {
  const tensors = new Map<string, RefTensor>();
  let k = 0;
  for (const [name, t] of base.tensors) {
    k++;
    if (!t.values) { tensors.set(name, { ...t, raw: t.raw!.slice() }); continue; }
    const dtype = t.dtype as "F32" | "F16" | "BF16";
    const values = t.values.map((v, i) => (uniform(seed * 131 + k, i) < fraction ? roundToDtype(v + scale * (uniform(seed * 733 + k, i) - 0.5), dtype) : v));
    tensors.set(name, { dtype, shape: t.shape, values });
  }
  return { config: base.config, tensors };
}

// ---------------------------------------------------------------------------------------------
// Determinism: bit-identical output for 1 or 2 workers and for several chunks per tensor.

// Tensors of 256 x 40 = 10240 elements: three 4096-element chunks (the smallest chunk, one tile), the
// last one partial, or two 8192-element chunks.
const BIG: Shape = { vocab: 256, hidden: 40, intermediate: 256, layers: 1, heads: 4, kvHeads: 2 };
let bigDir: string | undefined;
async function bigModels(): Promise<string> {
  if (bigDir === undefined) {
    const dir = join(root, "big");
    const base = baseModel(61, "BF16", BIG);
    const ft = (seed: number) => fineTune(base, seed, 0.05, { quantum: 2 ** -8 }); // many equal |tau|, some zero
    await writeCase(dir, { base, a: ft(62), b: ft(63), c: ft(64) }, {});
    bigDir = dir;
  }
  return bigDir;
}

// Against one worker with whole tensors: two workers with 4096-element chunks (3 per large tensor, on
// both workers), one worker with 8192-element chunks (2 per large tensor).
const RUNS = [{ workers: 2, chunkElements: 4096 }, { workers: 1, chunkElements: 8192 }];

async function runBig(name: string, recipe: Record<string, unknown>, options: { workers: number; chunkElements?: number }): Promise<Map<string, Buffer>> {
  const dir = await bigModels();
  const recipePath = join(dir, `${name}.yml`);
  await writeFile(recipePath, toYaml(recipe));
  const out = join(dir, `out-${name}-${options.workers}-${options.chunkElements ?? 0}`);
  await merge(recipePath, { out, seed: 99, workerUrl: WORKER_URL, ...options });
  const files = new Map<string, Buffer>();
  for (const f of (await readdir(out)).filter((f) => f.endsWith(".safetensors"))) files.set(f, await readFile(join(out, f)));
  return files;
}

/** The test of one recipe: 1 worker whole tensors vs 2 workers, 4096- and 12288-element chunks. */
function deterministic(name: string, recipe: Record<string, unknown>): void {
  test(`determinism: ${name}: identical bytes for 1 worker with whole tensors, 2 workers with 4096-element chunks, 1 worker with 8192-element chunks`, async () => {
    const reference = await runBig(name, recipe, { workers: 1 });
    for (const options of RUNS) {
      const got = await runBig(name, recipe, options);
      assert.deepEqual([...got.keys()], [...reference.keys()]);
      for (const [file, bytes] of reference) assert.ok(bytes.equals(got.get(file)!), `${name}: ${file} differs with ${JSON.stringify(options)}`);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Shared fixtures (small; written per case)

const base32 = baseModel(101, "F32", TINY, { ints: true });
const ft32 = [fineTune(base32, 102, 0.1), fineTune(base32, 103, 0.1, { only: "mlp" }), fineTune(base32, 104, 0.3)];
const three32 = models(["base", base32], ["a", ft32[0]!], ["b", ft32[1]!], ["c", ft32[2]!]);
const base16 = baseModel(111, "BF16");
const q16 = (seed: number) => fineTune(base16, seed, 0.05, { quantum: 2 ** -7 }); // many equal |tau|
const three16 = models(["base", base16], ["a", q16(112)], ["b", q16(113)], ["c", q16(114)]);
// Embeddings with a larger vocabulary in one fine-tune (rectification rules); the models next to it have
// no integer tensor (the larger-vocabulary one has none either).
const plain32 = baseModel(101, "F32");
const plainFt = fineTune(plain32, 102, 0.1);
const bigVocab = (seed: number) => fineTune(baseModel(101, "F32", { ...TINY, vocab: 56 }), seed, 0.2);

// ---------------------------------------------------------------------------------------------
// Task-vector family additions (branch tvm)

describe("breadcrumbs", () => {
  test("defaults (gamma 0.01, normalize false, rescale false) with densities below 1", () => check(root, {
    name: "breadcrumbs", models: three32,
    recipe: { merge_method: "breadcrumbs", base_model: "./base", models: [m("a", { weight: 1, density: 0.5 }), m("b", { weight: 0.5, density: 0.8 }), m("c", { weight: 0.3, density: 1 })] },
  }));
  test("density and weight gradients, gamma from a filter list (incl. 0), rescale, normalize, lambda", () => check(root, {
    name: "breadcrumbs-gradients", models: three32,
    recipe: {
      merge_method: "breadcrumbs", base_model: "./base", parameters: { rescale: true, normalize: true, lambda: 0.8 },
      models: [
        m("a", { weight: [0.2, 1], density: [0.9, 0.3], gamma: [{ filter: "mlp", value: 0.05 }, { filter: "self_attn", value: 0 }, { value: 0.2 }] }),
        m("b", { weight: 1, density: 0.6, gamma: [0, 0.1] }),
        m("c", { weight: -0.4, density: 0.95, gamma: 0.1 }),
      ],
    },
  }));
  test("bf16 checkpoints with many equal |tau| (rank ties), f16 output", () => check(root, {
    name: "breadcrumbs-bf16", models: three16,
    recipe: { merge_method: "breadcrumbs", base_model: "./base", out_dtype: "float16", models: [m("a", { weight: 1, density: 0.5, gamma: 0.1 }), m("b", { weight: 1, density: 0.3, gamma: 0.02 }), m("c", { weight: 0.5, density: 0.7 })] },
  }));
  test("embeddings of a larger vocabulary are cut to the base's shape", () => check(root, {
    name: "breadcrumbs-vocab", models: models(["base", plain32], ["big", bigVocab(105)], ["a", plainFt]),
    recipe: { merge_method: "breadcrumbs", base_model: "./base", models: [m("big", { weight: 1, density: 0.5, gamma: 0.1 }), m("a", { weight: 1, density: 0.5 })] },
  }));
  deterministic("breadcrumbs", {
    merge_method: "breadcrumbs", base_model: "./base", parameters: { rescale: true },
    models: [m("a", { weight: 1, density: 0.5, gamma: 0.05 }), m("b", { weight: 0.5, density: 0.7 }), m("c", { weight: 0.8, density: 0.3, gamma: 0.1 })],
  });
});

describe("breadcrumbs_ties", () => {
  test("defaults with densities below 1", () => check(root, {
    name: "breadcrumbs-ties", models: three32,
    recipe: { merge_method: "breadcrumbs_ties", base_model: "./base", models: [m("a", { weight: 1, density: 0.5 }), m("b", { weight: 1, density: 0.7 }), m("c", { weight: 0.5, density: 0.4 })] },
  }));
  test("gradients and filter lists, normalize, count vote on unweighted values, bf16", () => check(root, {
    name: "breadcrumbs-ties-bf16", models: three16,
    recipe: {
      merge_method: "breadcrumbs_ties", base_model: "./base", parameters: { normalize: true, consensus_method: "count", vote_weighted: false, lambda: [1, 1.5] },
      models: [
        m("a", { weight: [{ filter: "mlp", value: 0.5 }, { value: 1 }], density: [0.8, 0.4], gamma: 0.05 }),
        m("b", { weight: 1, density: 0.5, gamma: [0.2, 0] }),
        m("c", { weight: -0.5, density: 0.6 }),
      ],
    },
  }));
  deterministic("breadcrumbs_ties", {
    merge_method: "breadcrumbs_ties", base_model: "./base", parameters: { consensus_method: "count" },
    models: [m("a", { weight: 1, density: 0.5, gamma: 0.05 }), m("b", { weight: 0.5, density: 0.7 }), m("c", { weight: 0.8, density: 0.3, gamma: 0.1 })],
  });
});

describe("della", () => {
  test("defaults (epsilon 0.15, normalize, rescale, consensus) with a seed", () => check(root, {
    name: "della", models: three32, seed: 17,
    recipe: { merge_method: "della", base_model: "./base", models: [m("a", { weight: 1, density: 0.5 }), m("b", { weight: 1, density: 0.7 }), m("c", { weight: 0.5, density: 0.4 })] },
  }));
  test("epsilon and density gradients and filter lists, density 1 and 0, vote variants, bf16", () => check(root, {
    name: "della-bf16", models: three16, seed: 4242,
    recipe: {
      merge_method: "della", base_model: "./base", parameters: { consensus_method: "count", vote_weighted: false, lambda: 1.2 },
      models: [
        m("a", { weight: 1, density: [0.5, 0.7], epsilon: [0.05, 0.2] }),
        m("b", { weight: 0.7, density: [{ filter: "mlp", value: 1 }, { value: 0 }] }),
        m("c", { weight: [0.3, 0.9], density: 0.4, epsilon: [{ filter: "self_attn", value: 0.3 }, { value: 0.1 }] }),
      ],
    },
  }));
  test("rescale and normalize off; embeddings cut to the base's shape", () => check(root, {
    name: "della-vocab", models: models(["base", plain32], ["big", bigVocab(106)], ["a", plainFt]), seed: 3,
    recipe: { merge_method: "della", base_model: "./base", parameters: { rescale: false, normalize: false }, models: [m("big", { weight: 1, density: 0.6 }), m("a", { weight: 1, density: 0.3, epsilon: 0.25 })] },
  }));
  test("density - epsilon <= 0 is a typed error naming the model and epsilon", () => refused({
    name: "della-epsilon", models: three32,
    recipe: { merge_method: "della", base_model: "./base", models: [m("a", { weight: 1, density: 0.5 }), m("b", { weight: 1, density: 0.1 })] },
  }, "E_PARAMETER_INVALID", /\.\/b/, /epsilon/));
  test("density + epsilon >= 1 is a typed error naming the model and epsilon", () => refused({
    name: "della-epsilon-high", models: three32,
    recipe: { merge_method: "della_linear", base_model: "./base", models: [m("c", { weight: 1, density: 0.9, epsilon: 0.1 })] },
  }, "E_PARAMETER_INVALID", /\.\/c/, /epsilon/));
  deterministic("della", {
    merge_method: "della", base_model: "./base", parameters: { vote_weighted: false },
    models: [m("a", { weight: 1, density: 0.5, epsilon: 0.1 }), m("b", { weight: 0.5, density: 0.6 }), m("c", { weight: 0.8, density: 0.3, epsilon: 0.2 })],
  });
});

describe("della_linear", () => {
  test("defaults (epsilon 0.15, rescale, no consensus) with a seed", () => check(root, {
    name: "della-linear", models: three32, seed: 5,
    recipe: { merge_method: "della_linear", base_model: "./base", models: [m("a", { weight: 1, density: 0.5 }), m("c", { weight: 0.5, density: 0.6 })] },
  }));
  test("gradients and filter lists for weight, density, epsilon and lambda; normalize on; bf16 in, f32 out", () => check(root, {
    name: "della-linear-grad", models: three16, seed: 77,
    recipe: {
      merge_method: "della_linear", base_model: "./base", out_dtype: "float32", parameters: { normalize: true, lambda: [{ filter: "mlp", value: [0.5, 1.5] }, { value: 1 }] },
      models: [m("a", { weight: [1, 0.2], density: [0.3, 0.8], epsilon: 0.1 }), m("b", { weight: 0.6, density: 0.5, epsilon: [0.4, 0.05] }), m("c", { weight: 0.4, density: 0.7 })],
    },
  }));
  deterministic("della_linear", {
    merge_method: "della_linear", base_model: "./base",
    models: [m("a", { weight: 1, density: 0.4, epsilon: 0.2 }), m("b", { weight: 0.5, density: 0.6 })],
  });
});

describe("ties vote variants (consensus_method, vote_weighted)", () => {
  test("ties: count vote", () => check(root, {
    name: "ties-count", models: three32,
    recipe: { merge_method: "ties", base_model: "./base", parameters: { consensus_method: "count" }, models: [m("a", { weight: 1, density: 0.5 }), m("b", { weight: 0.5, density: 0.7 }), m("c", { weight: 1, density: 0.3 })] },
  }));
  test("ties: unweighted sum vote with a negative weight, bf16", () => check(root, {
    name: "ties-unweighted", models: three16,
    recipe: { merge_method: "ties", base_model: "./base", parameters: { vote_weighted: false, consensus_method: "sum" }, models: [m("a", { weight: 1, density: 0.5 }), m("b", { weight: -0.5, density: 0.7 }), m("c", { weight: 2, density: 0.3 })] },
  }));
  test("dare_ties: count vote on unweighted values, parameters from filter lists", () => check(root, {
    name: "dare-ties-vote", models: three32, seed: 11,
    recipe: {
      merge_method: "dare_ties", base_model: "./base",
      parameters: { consensus_method: [{ filter: "mlp", value: "count" }, { value: "sum" }], vote_weighted: [{ filter: "self_attn", value: false }, { value: true }] },
      models: [m("a", { weight: 1, density: 0.5 }), m("b", { weight: 0.3, density: 0.7 }), m("c", { weight: 1.5, density: 0.4 })],
    },
  }));
  deterministic("ties-vote", {
    merge_method: "ties", base_model: "./base", parameters: { consensus_method: "count", vote_weighted: false, rescale: true },
    models: [m("a", { weight: 1, density: 0.3 }), m("b", { weight: 0.5, density: 0.6 }), m("c", { weight: 0.8, density: 0.45 })],
  });
});

describe("sce", () => {
  test("defaults (select_topk 1)", () => check(root, {
    name: "sce", models: three32,
    recipe: { merge_method: "sce", base_model: "./base", models: [m("a"), m("b"), m("c")] },
  }));
  test("select_topk from a gradient and a filter list, int8_mask ignored, bf16", () => check(root, {
    name: "sce-grad", models: three16,
    recipe: {
      merge_method: "sce", base_model: "./base", parameters: { int8_mask: true, select_topk: [{ filter: "mlp", value: [0.9, 0.2] }, { value: 0.5 }] },
      models: [m("a"), m("b"), m("c")],
    },
  }));
  test("select_topk small enough to keep nothing returns the base", () => check(root, {
    name: "sce-none", models: three32,
    recipe: { merge_method: "sce", base_model: "./base", parameters: { select_topk: 0.001 }, models: [m("a"), m("c")] },
  }));
  deterministic("sce", { merge_method: "sce", base_model: "./base", parameters: { select_topk: 0.4 }, models: [m("a"), m("b"), m("c")] });
  test("k is mergekit's float32 product: select_topk 0.29 of 100 nonzero variances keeps 29 (float64: 28), 0.53 keeps 52 (float64: 53)", async () => {
    // Found by an audit. Projections of 10 x 10: 100 positions, every variance nonzero.
    const shape: Shape = { vocab: 20, hidden: 10, intermediate: 30, layers: 1, heads: 2, kvHeads: 1 };
    const base = baseModel(131, "F32", shape);
    const list = models(["base", base], ["a", fineTune(base, 132, 0.05)], ["b", fineTune(base, 133, 0.05)]);
    for (const selectTopk of [0.29, 0.53]) {
      await check(root, { name: `sce-k-${selectTopk}`, models: list, recipe: { merge_method: "sce", base_model: "./base", parameters: { select_topk: selectTopk }, models: [m("a"), m("b")] } });
    }
  });
});

describe("ram", () => {
  const sparse = models(["base", base32], ["a", sparseFineTune(base32, 121, 0.2, 0.5)], ["b", sparseFineTune(base32, 122, 0.2, 0.5)], ["c", sparseFineTune(base32, 123, 0.2, 0.3)]);
  test("defaults (epsilon 1e-5) on partly overlapping task vectors", () => check(root, {
    name: "ram", models: sparse,
    recipe: { merge_method: "ram", base_model: "./base", models: [m("a"), m("b"), m("c")] },
  }));
  test("epsilon from a gradient and a filter list, bf16", () => check(root, {
    name: "ram-grad", models: three16,
    recipe: { merge_method: "ram", base_model: "./base", parameters: { epsilon: [{ filter: "mlp", value: [0.001, 0.02] }, { value: 0.01 }] }, models: [m("a"), m("b"), m("c")] },
  }));
  test("shapes that differ are a typed error (no rectification)", () => refused({
    name: "ram-shape", models: models(["base", plain32], ["big", bigVocab(107)]),
    recipe: { merge_method: "ram", base_model: "./base", models: [m("big")] },
  }, "E_SHAPE_MISMATCH"));
  deterministic("ram", { merge_method: "ram", base_model: "./base", parameters: { epsilon: 0.01 }, models: [m("a"), m("b"), m("c")] });
});

describe("ramplus_tl", () => {
  const sparse = models(["base", base32], ["a", sparseFineTune(base32, 131, 0.2, 0.6)], ["b", sparseFineTune(base32, 132, 0.2, 0.2)], ["c", sparseFineTune(base32, 133, 0.2, 0.4)]);
  test("defaults (r 0.1, alpha 0.2, epsilon 1e-5)", () => check(root, {
    name: "ramplus", models: sparse,
    recipe: { merge_method: "ramplus_tl", base_model: "./base", models: [m("a"), m("b"), m("c")] },
  }));
  test("r, alpha and epsilon from gradients and filter lists, bf16", () => check(root, {
    name: "ramplus-grad", models: three16,
    recipe: {
      merge_method: "ramplus_tl", base_model: "./base",
      parameters: { r: [0.1, 0.5], alpha: [{ filter: "mlp", value: 3 }, { value: [0.1, 1] }], epsilon: [{ filter: "self_attn", value: 0.015 }, { value: 0.005 }] },
      models: [m("a"), m("b"), m("c")],
    },
  }));
  deterministic("ramplus_tl", { merge_method: "ramplus_tl", base_model: "./base", parameters: { epsilon: 0.01, alpha: 0.5 }, models: [m("a"), m("b"), m("c")] });
});

// ---------------------------------------------------------------------------------------------
// Geometric methods (branch geo)

describe("nuslerp", () => {
  test("defaults (flattened, no base): t from the weights", () => check(root, {
    name: "nuslerp", models: three32,
    recipe: { merge_method: "nuslerp", models: [m("a", { weight: 1 }), m("c", { weight: 3 })] },
  }));
  test("with a base (task vectors), column vectors (row_wise), weight gradients, bf16", () => check(root, {
    name: "nuslerp-cols", models: three16,
    recipe: { merge_method: "nuslerp", base_model: "./base", parameters: { nuslerp_flatten: false, nuslerp_row_wise: true }, models: [m("a", { weight: [1, 0.2] }), m("b", { weight: [0.3, 1] })] },
  }));
  test("row vectors, weights from filter lists, a zero task vector in some tensors", () => check(root, {
    name: "nuslerp-rows", models: three32,
    recipe: {
      merge_method: "nuslerp", base_model: "./base", parameters: { nuslerp_flatten: false },
      models: [m("a", { weight: [{ filter: "mlp", value: 2 }, { value: 0.5 }] }), m("b", { weight: 1 })], // b moves only mlp
    },
  }));
  test("embeddings of a larger vocabulary are cut to the common block", () => check(root, {
    name: "nuslerp-vocab", models: models(["a", plainFt], ["big", bigVocab(108)]),
    recipe: { merge_method: "nuslerp", models: [m("a", { weight: 1 }), m("big", { weight: 1 })] },
  }));
  deterministic("nuslerp", { merge_method: "nuslerp", base_model: "./base", models: [m("a", { weight: 1 }), m("b", { weight: 2 })] });
  deterministic("nuslerp-rowwise", {
    merge_method: "nuslerp", base_model: "./base", parameters: { nuslerp_flatten: false, nuslerp_row_wise: true },
    models: [m("a", { weight: 1 }), m("c", { weight: 0.5 })],
  });
});

describe("multislerp", () => {
  test("defaults (no base, normalized weights), three models", () => check(root, {
    name: "multislerp", models: three32,
    recipe: { merge_method: "multislerp", models: [m("a", { weight: 1 }), m("b", { weight: 0.5 }), m("c", { weight: 2 })] },
  }));
  test("the base as the origin, weight gradients and filter lists, normalize_weights off, eps, bf16", () => check(root, {
    name: "multislerp-base", models: three16,
    recipe: {
      merge_method: "multislerp", base_model: "./base", parameters: { normalize_weights: false, eps: [1e-8, 1e-6] },
      models: [m("a", { weight: [0.2, 0.8] }), m("b", { weight: [{ filter: "mlp", value: 0.1 }, { value: 0.4 }] }), m("c", { weight: 0.3 })],
    },
  }));
  test("shapes that differ are a typed error, embeddings too", () => refused({
    name: "multislerp-shape", models: models(["a", plainFt], ["big", bigVocab(109)]),
    recipe: { merge_method: "multislerp", models: [m("a", { weight: 1 }), m("big", { weight: 1 })] },
  }, "E_SHAPE_MISMATCH"));
  deterministic("multislerp", { merge_method: "multislerp", base_model: "./base", models: [m("a", { weight: 1 }), m("b", { weight: 0.5 }), m("c", { weight: 0.8 })] });
});

describe("karcher", () => {
  const independent = models(["x", baseModel(141)], ["y", baseModel(142)], ["z", baseModel(143)]);
  // The iterations stop when |T| < tol; these inputs keep every |T| at least 7% away from tol (checked
  // with the reference), so float32 rounding in the engine cannot change the number of iterations.
  test("defaults: the declared base is an ordinary input", () => check(root, {
    name: "karcher", models: three32,
    recipe: { merge_method: "karcher", base_model: "./base", models: [m("a"), m("b"), m("c")] },
  }));
  test("independent models (wide angles), max_iter from a filter list, tol from a gradient, a weight that is ignored", () => check(root, {
    name: "karcher-wide", models: independent,
    recipe: {
      merge_method: "karcher", parameters: { max_iter: [{ filter: "mlp", value: 3 }, { value: 10 }], tol: [2e-5, 1e-2] },
      models: [m("x", { weight: 5 }), m("y"), m("z")],
    },
  }));
  test("bf16 inputs, f16 output", () => check(root, {
    name: "karcher-bf16", models: three16,
    recipe: { merge_method: "karcher", out_dtype: "float16", models: [m("a"), m("b"), m("c")] },
  }));
  test("embeddings of different sizes are a typed error (no rectification)", () => refused({
    name: "karcher-shape", models: models(["a", plainFt], ["big", bigVocab(110)]),
    recipe: { merge_method: "karcher", models: [m("a"), m("big")] },
  }, "E_SHAPE_MISMATCH"));
  deterministic("karcher", { merge_method: "karcher", base_model: "./base", models: [m("a"), m("b"), m("c")] });
});

describe("model_stock", () => {
  // Fine-tunes sharing a common move (so the pairwise cosines, and t, are far from 0).
  const shared = fineTune(base32, 151, 0.2);
  const corr = models(["base", base32], ["a", fineTune(shared, 152, 0.15)], ["b", fineTune(shared, 153, 0.15)], ["c", fineTune(shared, 154, 0.3)]);
  const plainShared = fineTune(plain32, 151, 0.2);
  test("defaults (flattened), three fine-tunes", () => check(root, {
    name: "model-stock", models: corr,
    recipe: { merge_method: "model_stock", base_model: "./base", models: [m("a"), m("b"), m("c")] },
  }));
  test("filter_wise from a filter list, two fine-tunes, bf16", () => check(root, {
    name: "model-stock-rows", models: three16,
    recipe: { merge_method: "model_stock", base_model: "./base", parameters: { filter_wise: [{ filter: "mlp", value: true }, { value: false }] }, models: [m("a"), m("b")] },
  }));
  test("filter_wise everywhere (1-D tensors are one row); embeddings cut to the common block", () => check(root, {
    name: "model-stock-vocab", models: models(["base", plain32], ["big", bigVocab(155)], ["a", fineTune(plainShared, 152, 0.15)], ["b", fineTune(plainShared, 153, 0.15)]),
    recipe: { merge_method: "model_stock", base_model: "./base", parameters: { filter_wise: true }, models: [m("big"), m("a"), m("b")] },
  }));
  test("one model besides the base is a typed error", () => refused({
    name: "model-stock-one", models: three32,
    recipe: { merge_method: "model_stock", base_model: "./base", models: [m("a")] },
  }, "E_RECIPE", /model_stock/));
  deterministic("model_stock", { merge_method: "model_stock", base_model: "./base", models: [m("a"), m("b"), m("c")] });
  deterministic("model_stock-filterwise", { merge_method: "model_stock", base_model: "./base", parameters: { filter_wise: true }, models: [m("a"), m("b"), m("c")] });
});

describe("nearswap", () => {
  test("a scalar t (required)", () => check(root, {
    name: "nearswap", models: three32,
    recipe: { merge_method: "nearswap", base_model: "./base", parameters: { t: 0.02 }, models: [m("c")] },
  }));
  test("t from a gradient and a filter list, bf16", () => check(root, {
    name: "nearswap-grad", models: three16,
    recipe: { merge_method: "nearswap", base_model: "./base", parameters: { t: [{ filter: "self_attn", value: [0.001, 0.05] }, { value: 0.01 }] }, models: [m("a")] },
  }));
  test("two models besides the base are a typed error", () => refused({
    name: "nearswap-two", models: three32,
    recipe: { merge_method: "nearswap", base_model: "./base", parameters: { t: 0.01 }, models: [m("a"), m("b")] },
  }, "E_RECIPE", /nearswap/));
  deterministic("nearswap", { merge_method: "nearswap", base_model: "./base", parameters: { t: 0.01 }, models: [m("a")] });
});

describe("arcee_fusion", () => {
  test("defaults (no parameters)", () => check(root, {
    name: "arcee", models: three32,
    recipe: { merge_method: "arcee_fusion", base_model: "./base", models: [m("c")] },
  }));
  test("bf16 inputs with many equal differences, f16 output", () => check(root, {
    name: "arcee-bf16", models: three16,
    recipe: { merge_method: "arcee_fusion", base_model: "./base", out_dtype: "float16", models: [m("b")] },
  }));
  test("embeddings of a larger vocabulary are cut to the common block", () => check(root, {
    name: "arcee-vocab", models: models(["base", plain32], ["big", bigVocab(156)]),
    recipe: { merge_method: "arcee_fusion", base_model: "./base", models: [m("big")] },
  }));
  test("two models besides the base are a typed error", () => refused({
    name: "arcee-two", models: three32,
    recipe: { merge_method: "arcee_fusion", base_model: "./base", models: [m("a"), m("b")] },
  }, "E_RECIPE", /arcee_fusion/));
  deterministic("arcee_fusion", { merge_method: "arcee_fusion", base_model: "./base", models: [m("a")] });
  test("elements within the threshold band (compared loosely) are few", () => {
    console.log(`arcee_fusion: ${arceeBand.elements} element(s) within ${ARCEE_BAND} of the reference threshold`);
    assert.ok(arceeBand.elements < 50, `${arceeBand.elements} elements in the band`);
  });
});

// ---------------------------------------------------------------------------------------------
// Fine-tunes stored in other dtypes than their base: the task-arithmetic family rounds each to the base's
// dtype before taking x - b (mergekit's GTATask casts x to b's dtype), with or without out_dtype; the
// recipe's dtype rounds every input first and the base's is then the same. The reference rounds them so;
// each case first checks that the rounding changes some input values, so the case can tell.

describe("fine-tunes in other dtypes than the base (task-arithmetic family)", () => {
  // a: full float32 precision; b: float16. Both move more than a bf16 ulp, so rounding them to bf16 changes values.
  const mixed = models(["base", base16], ["a", fineTune(base16, 121, 0.05, { dtype: "F32" })], ["b", fineTune(base16, 122, 0.05, { dtype: "F16" })]);
  test("rounding the fine-tunes to bf16 changes them", () => {
    for (const key of ["a", "b"]) {
      const values = mixed[key]!.tensors.get("model.layers.0.mlp.up_proj.weight")!.values!;
      assert.ok(values.some((v) => roundToDtype(v, "BF16") !== v), `${key} holds values bf16 cannot`);
    }
  });
  const two = (params: Record<string, unknown>) => [m("a", { weight: 0.7, ...params }), m("b", { weight: 0.5, ...params })];
  for (const [method, params] of [
    ["task_arithmetic", {}], ["ties", { density: 0.5 }], ["dare_linear", { density: 0.6 }], ["dare_ties", { density: 0.6 }],
    ["breadcrumbs", { density: 0.8 }], ["breadcrumbs_ties", { density: 0.8 }], ["della", { density: 0.5 }], ["della_linear", { density: 0.5 }],
  ] as const) {
    test(method, () => check(root, { name: `mixed-${method}`, models: mixed, recipe: { merge_method: method, base_model: "./base", models: two(params) } }));
  }
  test("ties with out_dtype float32", () => check(root, { name: "mixed-ties-out32", models: mixed, recipe: { merge_method: "ties", base_model: "./base", out_dtype: "float32", models: two({ density: 0.5 }) } }));
  test("ties with dtype float32 (every input kept as it is)", () => check(root, { name: "mixed-ties-load32", models: mixed, recipe: { merge_method: "ties", base_model: "./base", dtype: "float32", models: two({ density: 0.5 }) } }));
});

// ---------------------------------------------------------------------------------------------
// NaN and infinite inputs: every method against the reference, which takes them through the same
// arithmetic (NaN first in rank orders; sce's mask multiplied in, as mergekit does).

/** A copy of `model` with about 1% NaN, 1% +inf and 1% -inf among its float values (`infinities`: +inf at one element in 50 only, from the 8th). */
function withNonFinite(model: RefModel, seed: number, infinities = false): RefModel {
  const tensors = new Map<string, RefTensor>();
  for (const [name, t] of model.tensors) {
    if (!t.values) { tensors.set(name, t); continue; }
    const values = t.values.map((v, i) => {
      const u = uniform(seed, i + name.length * 1000);
      if (infinities) return i % 50 === 7 ? Infinity : v;
      return u < 0.01 ? NaN : u < 0.02 ? Infinity : u < 0.03 ? -Infinity : v;
    });
    tensors.set(name, { ...t, values });
  }
  return { ...model, tensors };
}

/**
 * Every F32 tensor of the output NaN throughout (at least one) has exactly one warning, naming b's file
 * and the tensor, and the base when the method works on task vectors.
 */
async function assertNaNWarnings(out: string, warnings: string[], minusBase: boolean): Promise<void> {
  const allNaN = [...(await readOutput(out)).tensors].filter(([, t]) => t.dtype === "F32" && new Float32Array(t.data.slice().buffer).every(Number.isNaN)).map(([name]) => name);
  assert.ok(allNaN.length > 0, "some tensors are NaN throughout");
  assert.equal(warnings.length, allNaN.length, warnings.join("\n"));
  for (const name of allNaN) {
    const w = warnings.find((message) => message.startsWith(`${name}:`));
    assert.ok(w, `a warning for ${name}`);
    assert.match(w, new RegExp(`NaN or infinite values in \\S*b\\S*model\\.safetensors \\(tensor ${name.replaceAll(".", "\\.")}\\)${minusBase ? " minus the base \\S*base\\S*" : "; the merged"}`));
  }
}

describe("NaN and infinite inputs", () => {
  const nonFinite = models(["base", base32], ["a", withNonFinite(ft32[0]!, 5)], ["b", ft32[1]!], ["c", withNonFinite(ft32[2]!, 6)]);
  const weighted = (params: Record<string, unknown>) => [m("a", { weight: 1, ...params }), m("b", { weight: 0.5, ...params }), m("c", { weight: 0.7, ...params })];
  for (const [method, params] of [
    ["task_arithmetic", {}], ["ties", { density: 0.5 }], ["dare_ties", { density: 0.5 }], ["dare_linear", { density: 0.5 }],
    ["breadcrumbs", { density: 0.8 }], ["breadcrumbs_ties", { density: 0.8 }], ["della", { density: 0.5 }], ["della_linear", { density: 0.5 }],
    ["multislerp", {}], ["karcher", {}],
  ] as const) {
    test(method, () => check(root, { name: `nonfinite-${method}`, models: nonFinite, recipe: { merge_method: method, base_model: "./base", models: weighted(params) } }));
  }
  // Rescaled trims: a NaN or infinite tau makes the whole tensor NaN (SPEC step 1), infinities alone too
  // (their ratio is inf or NaN); breadcrumbs keeping nothing (density 0.05 of a 16-element norm) too, as its
  // all-zero mask is multiplied in and its rescale sees the infinite norm (mergekit's sparsify.py).
  const infinite = models(["base", base32], ["a", withNonFinite(ft32[0]!, 8, true)], ["b", ft32[1]!], ["c", ft32[2]!]);
  for (const [method, density, rescale] of [["dare_ties", 0.5, undefined], ["dare_linear", 0.5, undefined], ["della", 0.5, undefined], ["ties", 0.5, true], ["breadcrumbs", 0.05, true]] as const) {
    test(`${method}${rescale ? " with rescale" : ""}, infinities only`, () => check(root, {
      name: `infinite-${method}`, models: infinite,
      recipe: { merge_method: method, base_model: "./base", ...(rescale ? { parameters: { rescale } } : {}), models: weighted({ density }) },
    }));
  }
  // The geometric means with infinities alone (no NaN to carry them): a's unit vector is NaN at its
  // infinities, so mergekit's mean and output are NaN throughout, with two or three models, and with a
  // second model equal to the base (a zero task vector: the mean's norm is then below eps, multislerp's
  // linear fallback, where a coefficient of 0 for a would have dropped its NaN).
  const zeroTau = models(["base", base32], ["a", withNonFinite(ft32[0]!, 8, true)], ["z", base32]);
  for (const method of ["multislerp", "karcher"] as const) {
    for (const count of [2, 3]) {
      test(`${method} of ${count} models, infinities only`, () => check(root, {
        name: `infinite-${method}-${count}`, models: infinite,
        recipe: { merge_method: method, base_model: "./base", models: weighted({}).slice(0, count) },
      }));
    }
    test(`${method}, infinities only, with a zero task vector`, () => check(root, {
      name: `infinite-${method}-zero`, models: zeroTau,
      recipe: { merge_method: method, base_model: "./base", models: [m("a", { weight: 1 }), m("z", { weight: 0.5 })] },
    }));
  }
  // Not silent: each tensor written NaN throughout is a warning naming the model's file and tensor.
  for (const [method, parameters, list, options] of [
    ["sce", { select_topk: 0.5 }, "whole", {}], ["sce", { select_topk: 0.5 }, "chunked", { chunkElements: 4096 }], ["dare_ties", {}, "whole", {}], ["dare_ties", {}, "chunked", { chunkElements: 4096 }],
  ] as const) {
    test(`${method}, ${list}: a tensor written NaN throughout is a warning naming the file and tensor`, async () => {
      const dir = join(root, `local-${counter++}`);
      const recipe = { merge_method: method, base_model: "./base", parameters, models: method === "sce" ? [m("a"), m("b")] : [m("a", { weight: 1, density: 0.5 }), m("b", { weight: 1, density: 0.5 })] };
      const big = list === "chunked";
      const inputs = big ? models(["base", bigBase], ["a", fineTune(bigBase, 62, 0.05)], ["b", withNonFinite(fineTune(bigBase, 63, 0.05), 9, true)]) : models(["base", base32], ["a", ft32[0]!], ["b", withNonFinite(ft32[1]!, 9, true)]);
      const recipePath = await writeCase(dir, inputs, recipe);
      const warnings: string[] = [];
      await merge(recipePath, { out: join(dir, "out"), workers: 2, workerUrl: WORKER_URL, ...options, onProgress: (e) => { if (e.type === "warning") warnings.push(e.message); } });
      await assertNaNWarnings(join(dir, "out"), warnings, true);
    });
  }
  // The geometric methods too (they wrote NaN throughout without a word): the warning names b, whose
  // infinities reach every element through the coefficients, minus the base where the method works on
  // task vectors.
  for (const [method, recipe, minusBase] of [
    ["slerp", { base_model: "./base", parameters: { t: 0.3 }, models: [m("base"), m("b")] }, false],
    ["multislerp", { base_model: "./base", models: [m("a", { weight: 1 }), m("b", { weight: 1 })] }, true],
    ["karcher", { models: [m("a"), m("b")] }, false],
    ["nuslerp", { base_model: "./base", models: [m("a", { weight: 1 }), m("b", { weight: 2 })] }, true],
    ["model_stock", { base_model: "./base", models: [m("a"), m("b")] }, true],
  ] as const) {
    test(`${method}: a tensor written NaN throughout is a warning naming the file and tensor`, async () => {
      const dir = join(root, `local-${counter++}`);
      const recipePath = await writeCase(dir, models(["base", base32], ["a", ft32[0]!], ["b", withNonFinite(ft32[1]!, 9, true)]), { merge_method: method, ...recipe });
      const warnings: string[] = [];
      await merge(recipePath, { out: join(dir, "out"), workers: 2, workerUrl: WORKER_URL, onProgress: (e) => { if (e.type === "warning") warnings.push(e.message); } });
      await assertNaNWarnings(join(dir, "out"), warnings, minusBase);
    });
  }
  test("linear", () => check(root, { name: "nonfinite-linear", models: nonFinite, recipe: { merge_method: "linear", models: [m("base", { weight: 0.2 }), ...weighted({})] } }));
  test("slerp", () => check(root, { name: "nonfinite-slerp", models: nonFinite, recipe: { merge_method: "slerp", base_model: "./base", parameters: { t: 0.3 }, models: [m("base"), m("a")] } }));
  test("nearswap", () => check(root, { name: "nonfinite-nearswap", models: nonFinite, recipe: { merge_method: "nearswap", base_model: "./base", parameters: { t: 0.05 }, models: [m("a")] } }));
  test("nuslerp", () => check(root, { name: "nonfinite-nuslerp", models: nonFinite, recipe: { merge_method: "nuslerp", models: [m("a", { weight: 1 }), m("c", { weight: 2 })] } }));
  test("arcee_fusion", () => check(root, { name: "nonfinite-arcee", models: nonFinite, recipe: { merge_method: "arcee_fusion", base_model: "./base", models: [m("a")] } }));
  for (const method of ["ram", "ramplus_tl", "model_stock"]) {
    test(method, () => check(root, { name: `nonfinite-${method}`, models: nonFinite, recipe: { merge_method: method, base_model: "./base", models: [m("a"), m("b"), m("c")] } }));
  }
  // sce: a NaN or infinite tau makes the whole tensor NaN, whether it is kept (select_topk 1, 0.5), the cut
  // falls among the NaN variances (0.01) or nothing is kept (0: k = 0 with nonzero variances); the tensors
  // whose inputs are all finite merge as usual. Whole tensors, and BIG's tensors in 4096-element chunks.
  const bigBase = baseModel(61, "F32", BIG);
  const bigNonFinite = models(["base", bigBase], ["a", withNonFinite(fineTune(bigBase, 62, 0.05), 7)], ["b", fineTune(bigBase, 63, 0.05)], ["c", fineTune(bigBase, 64, 0.05)]);
  for (const selectTopk of [1, 0.5, 0.01, 0]) {
    for (const [how, list, options] of [["whole", nonFinite, {}], ["chunked", bigNonFinite, { chunkElements: 4096 }]] as const) {
      test(`sce, select_topk ${selectTopk}, ${how}`, () => check(root, {
        name: `nonfinite-sce-${selectTopk}-${how}`, models: list, ...options,
        recipe: { merge_method: "sce", base_model: "./base", parameters: { select_topk: selectTopk }, models: [m("a"), m("b"), m("c")] },
      }));
    }
  }
});
