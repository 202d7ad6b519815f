// `weightsoup diagnose` (src/diagnose/, src/api/diagnose.ts): every statistic against the independent
// scalar reference in tests/reference/diagnose.ts (float64, whole tensors, written from README
// "Diagnostics" and tests/reference/SPEC.md) on small random models, for every task-vector method with
// trimming, dropping or a sign vote (ties, dare_*, breadcrumbs*, della*, with the vote variants and a
// seed); bit-identical results across worker counts and chunk sizes; the `align:` no-op warning; the
// CLI's JSON, SVG and HTML files, exit codes and typed errors.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { diagnose } from "../src/node";
import type { DiagnosisResult } from "../src/api/diagnose";
import type { GroupStats, LayerDiagnosis } from "../src/diagnose/statistics";
import { conflictHeatmap, summarize } from "../src/diagnose/present";
import { baseModel, CLI, fineTune, removeDir, tempDir, uniform, WORKER_URL, writeCase, type Shape } from "./helpers/fixtures";
import { roundToDtype } from "./reference/float16";
import type { RefModel } from "./reference/merge";
import { addSums, refStatistics, refTensorSums, type RefMethod, type RefOptions, type RefSums } from "./reference/diagnose";

// Tensors of several tiles (embeddings 8, MLP 3), so chunks of one and two tiles split them differently.
const SHAPE: Shape = { vocab: 512, hidden: 64, intermediate: 160, layers: 2, heads: 4, kvHeads: 2 };
const MODELS = ["a", "b", "c"] as const;
const WEIGHTS: Record<string, number> = { a: 1, b: 0.5, c: 0.7 };
const DENSITIES: Record<string, number> = { a: 0.6, b: 0.4, c: 0.5 };

/** One measured recipe: its method, per-model parameters (over WEIGHTS and DENSITIES), globals, seed, load dtype. */
interface Case {
  method: RefMethod;
  /** A density list is a gradient over the layers (SPEC section 4). */
  perModel?: Record<string, { weight?: number; density?: number | number[]; gamma?: number; epsilon?: number }>;
  globals?: { normalize?: boolean; rescale?: boolean; consensus_method?: "sum" | "count"; vote_weighted?: boolean };
  seed?: number;
  dtype?: "bfloat16" | "float16";
}

// breadcrumbs: both tails dropped; c keeps 95%, so its top tail is cut back to fit (bot < 0).
const CRUMBS = { a: { gamma: 0.1 }, b: { gamma: 0.05 }, c: { density: 0.95, gamma: 0.1 } };
// della: each model its own spread of keep probabilities (c the default 0.15).
const DELLA = { a: { epsilon: 0.1 }, b: { epsilon: 0.2 } };

const CASES = {
  ties: { method: "ties", globals: { normalize: true } },
  dare_linear: { method: "dare_linear" },
  task_arithmetic: { method: "task_arithmetic" },
  // The vote is on weight·rescale·m: each model's rescale differs.
  dare_ties: { method: "dare_ties", seed: 7 },
  breadcrumbs: { method: "breadcrumbs", perModel: CRUMBS },
  breadcrumbs_ties: { method: "breadcrumbs_ties", perModel: CRUMBS, globals: { consensus_method: "count" } },
  della: { method: "della", perModel: DELLA, globals: { vote_weighted: false }, seed: 7 },
  della_linear: { method: "della_linear", perModel: DELLA },
  // Edges: values rounded to bf16 on load (many equal |τ|), an untrimmed model beside trimmed ones, a
  // density gradient, a negative weight (it flips that model's vote).
  ties_edges: { method: "ties", dtype: "bfloat16", perModel: { a: { density: 1 }, b: { density: [0.2, 0.8] }, c: { weight: -0.5 } } },
  // A model with density 0 (everything dropped, nothing kept to discard), a gradient, the count vote.
  della_edges: { method: "della", perModel: { a: { density: [0.3, 0.7] }, c: { density: 0 } }, globals: { consensus_method: "count" } },
  // No rescale in the vote; a model of weight 0 (its votes are 0, which never agree: all it keeps is discarded).
  dare_ties_edges: { method: "dare_ties", globals: { rescale: false }, perModel: { b: { weight: 0 } }, dtype: "float16" },
  // Rescale switched on; gamma 0 keeps the largest; b keeps nothing of the 64-element norm weights.
  breadcrumbs_edges: { method: "breadcrumbs_ties", globals: { rescale: true }, perModel: { a: { gamma: 0 }, b: { density: 0.01 } } },
  // No weights, nothing trimmed, no vote: the raw task vectors.
  sce: { method: "sce" },
  ram: { method: "ram" },
} satisfies Record<string, Case>;
type CaseName = keyof typeof CASES;

let dir: string;
let models: Record<string, RefModel>;

function weightOf(c: Case, m: string): number {
  return c.perModel?.[m]?.weight ?? WEIGHTS[m]!;
}

/** The recipe's density setting of model m (a number or a gradient). */
function densitySetting(c: Case, m: string): number | number[] {
  return UNTRIMMED.has(c.method) ? 1 : c.perModel?.[m]?.density ?? DENSITIES[m]!;
}

/** Methods without density (sce and ram without weights either). */
const UNTRIMMED: ReadonlySet<RefMethod> = new Set(["task_arithmetic", "sce", "ram"]);

function modelParameters(c: Case, m: string): object {
  if (c.method === "sce" || c.method === "ram") return {};
  if (c.method === "task_arithmetic") return { weight: weightOf(c, m) };
  return { ...c.perModel?.[m], density: densitySetting(c, m), weight: weightOf(c, m) };
}

/** The density of model m for one tensor: a gradient is read at the tensor's layer t (0 outside the layers). */
function densityOf(c: Case, m: string, tensor: string): number {
  const d = densitySetting(c, m);
  if (typeof d === "number") return d;
  const layer = /\.layers\.(\d+)\./.exec(tensor);
  const t = layer ? Number(layer[1]) / (SHAPE.layers - 1) : 0;
  const x = t * (d.length - 1), i0 = Math.floor(x), i1 = Math.min(d.length - 1, i0 + 1), f = x - i0;
  return (1 - f) * d[i0]! + f * d[i1]!;
}

function recipe(c: Case, extra: object = {}): object {
  return {
    merge_method: c.method, base_model: "./base",
    models: MODELS.map((m) => ({ model: `./${m}`, parameters: modelParameters(c, m) })),
    ...(c.globals ? { parameters: c.globals } : {}),
    ...(c.dtype ? { dtype: c.dtype } : {}),
    ...extra,
  };
}

before(async () => {
  dir = await tempDir("ws-diagnose-");
  const base = baseModel(11, "F32", SHAPE);
  models = {
    base,
    a: fineTune(base, 1, 0.02),
    // Quantised moves: many equal |τ|, so TIES's tie rule (and della's and breadcrumbs' rank order) decides what is kept.
    b: fineTune(base, 2, 0.02, { quantum: 0.004 }),
    // Moves only the MLPs: elsewhere its τ is zero, so fewer coordinates are eligible for a conflict.
    c: fineTune(base, 3, 0.01, { only: "mlp" }),
  };
  for (const [name, c] of Object.entries(CASES)) await writeCase(join(dir, name), models, recipe(c));
});

after(async () => {
  await removeDir(dir);
});

/** Diagnoses a case's recipe with its seed (the `--seed` of DARE's and DELLA's drops). */
function run(name: CaseName, options: Parameters<typeof diagnose>[1] = {}): Promise<DiagnosisResult> {
  const seed = (CASES[name] as Case).seed;
  return diagnose(join(dir, name, "recipe.yml"), { workerUrl: WORKER_URL, workers: 1, ...(seed !== undefined ? { seed } : {}), ...options });
}

function refOptions(c: Case): RefOptions {
  return {
    seed: c.seed ?? 0,
    ...(c.globals?.consensus_method ? { consensusMethod: c.globals.consensus_method } : {}),
    ...(c.globals?.vote_weighted !== undefined ? { voteWeighted: c.globals.vote_weighted } : {}),
    ...(c.globals?.rescale !== undefined ? { rescale: c.globals.rescale } : {}),
  };
}

function refSums(name: string, c: Case): RefSums {
  const base = models.base!.tensors.get(name)!;
  // The recipe's dtype rounds every input value on load.
  const dtype = c.dtype === "bfloat16" ? "BF16" : c.dtype === "float16" ? "F16" : "F32";
  const load = (m: string) => models[m]!.tensors.get(name)!.values!.map((v) => roundToDtype(v, dtype));
  return refTensorSums({
    name, shape: base.shape, base: load("base"),
    tasks: MODELS.map((m) => ({
      model: `./${m}`, values: load(m), weight: weightOf(c, m), density: densityOf(c, m, name),
      ...(c.perModel?.[m]?.gamma !== undefined ? { gamma: c.perModel[m].gamma } : {}),
      ...(c.perModel?.[m]?.epsilon !== undefined ? { epsilon: c.perModel[m].epsilon } : {}),
    })),
  }, c.method, refOptions(c));
}

function close(actual: number | null, expected: number | null, what: string): void {
  if (expected === null || actual === null) {
    assert.equal(actual, expected, what);
    return;
  }
  assert.ok(Math.abs(actual - expected) <= 1e-10 * Math.max(1e-3, Math.abs(expected)), `${what}: ${actual} vs reference ${expected}`);
}

function compare(actual: GroupStats, expected: ReturnType<typeof refStatistics>, where: string): void {
  close(actual.baseNorm, expected.baseNorm, `${where} base norm`);
  assert.deepEqual(actual.tasks.map((t) => t.model), expected.tasks.map((t) => t.model), `${where} models`);
  actual.tasks.forEach((t, i) => {
    const e = expected.tasks[i]!;
    close(t.norm, e.norm, `${where} ${t.model} norm`);
    close(t.baseRatio, e.baseRatio, `${where} ${t.model} norm ratio`);
    close(t.trimmed, e.trimmed, `${where} ${t.model} trimmed mass`);
    close(t.discarded, e.discarded, `${where} ${t.model} discarded mass`);
  });
  assert.deepEqual(actual.pairs.map((p) => `${p.a}|${p.b}`), expected.pairs.map((p) => `${p.a}|${p.b}`));
  actual.pairs.forEach((p, i) => close(p.cosine, expected.pairs[i]!.cosine, `${where} cosine ${p.a}/${p.b}`));
  assert.equal(actual.conflict.eligible, expected.conflict.eligible, `${where} eligible coordinates`);
  close(actual.conflict.coordinates, expected.conflict.coordinates, `${where} conflict rate (coordinates)`);
  close(actual.conflict.mass, expected.conflict.mass, `${where} conflict rate (mass)`);
}

function checkAgainstReference(d: DiagnosisResult, name: CaseName, override: Partial<Case> = {}): void {
  const c: Case = { ...CASES[name], ...override };
  assert.equal(d.method, c.method);
  const names = [...models.base!.tensors.keys()];
  assert.deepEqual(d.tensors.map((t) => t.name).sort(), [...names].sort(), "every float tensor is measured");
  const sums = new Map(names.map((n) => [n, refSums(n, c)]));
  for (const t of d.tensors) compare(t, refStatistics(sums.get(t.name)!, c.method), t.name);
  for (const l of d.layers) {
    const inLayer = names.filter((n) => n.startsWith(`model.layers.${l.layer}.`));
    assert.equal(l.tensors, inLayer.length);
    compare(l, refStatistics(addSums(inLayer.map((n) => sums.get(n)!)), c.method), `layer ${l.layer}`);
  }
  assert.deepEqual(d.layers.map((l) => l.layer), [0, 1]);
  compare(d.total, refStatistics(addSums(names.map((n) => sums.get(n)!)), c.method), "total");
}

test("ties: norms, ratios, cosines, conflict rates, trimmed and sign-discarded mass equal the scalar reference", async () => {
  const d = await run("ties");
  checkAgainstReference(d, "ties");
  assert.equal(d.method, "ties");
  assert.deepEqual(d.models, ["./a", "./b", "./c"]);
  // The statistics are not degenerate: something is trimmed, conflicts and discards happen.
  assert.ok(d.total.conflict.mass! > 0.1, `conflict mass ${d.total.conflict.mass}`);
  for (const t of d.total.tasks) assert.ok(t.trimmed! > 0.05 && t.discarded! > 0, `${t.model}: trimmed ${t.trimmed}, discarded ${t.discarded}`);
  // c moves only MLPs: its attention task vectors are zero, so their cosines are undefined.
  const q = d.tensors.find((t) => t.name === "model.layers.0.self_attn.q_proj.weight")!;
  assert.equal(q.pairs.find((p) => p.b === "./c")!.cosine, null);
  assert.ok(d.summary.some((s) => /^layers? [\d-]+ conflicts? most: \d+(\.\d+)?% of mass$/.test(s)), d.summary.join("\n"));
});

test("dare_linear (random drop, no vote) and task_arithmetic (nothing trimmed) equal the scalar reference", async () => {
  const dare = await run("dare_linear");
  checkAgainstReference(dare, "dare_linear");
  assert.ok(dare.total.tasks.every((t) => t.trimmed! > 0.3 && t.discarded === null));
  const ta = await run("task_arithmetic");
  checkAgainstReference(ta, "task_arithmetic");
  assert.ok(ta.total.tasks.every((t) => t.trimmed === null && t.discarded === null));
});

test("dare_ties (seeded drop, vote on weight·rescale·m) equals the scalar reference, for its seed and another", async () => {
  const d = await run("dare_ties");
  checkAgainstReference(d, "dare_ties");
  assert.ok(d.total.tasks.every((t) => t.trimmed! > 0.3 && t.discarded! > 0), JSON.stringify(d.total.tasks));
  // The seed reaches the drops: seed 0 drops other elements, and still equals the reference with seed 0.
  const other = await run("dare_ties", { seed: 0 });
  checkAgainstReference(other, "dare_ties", { seed: 0 });
  assert.notEqual(other.total.tasks[0]!.trimmed, d.total.tasks[0]!.trimmed);
});

test("breadcrumbs and breadcrumbs_ties (both tails dropped, sign-count vote) equal the scalar reference", async () => {
  const plain = await run("breadcrumbs");
  checkAgainstReference(plain, "breadcrumbs");
  assert.ok(plain.total.tasks.every((t) => t.trimmed! > 0.05 && t.discarded === null), JSON.stringify(plain.total.tasks));
  const voted = await run("breadcrumbs_ties");
  checkAgainstReference(voted, "breadcrumbs_ties");
  assert.ok(voted.total.tasks.every((t) => t.discarded! > 0), JSON.stringify(voted.total.tasks));
  // The same masks: only the vote differs.
  assert.deepStrictEqual(voted.total.conflict, plain.total.conflict);
});

test("della and della_linear (per-row rank-based keep probabilities, seeded drops, unweighted vote) equal the scalar reference", async () => {
  const della = await run("della");
  checkAgainstReference(della, "della");
  assert.ok(della.total.tasks.every((t) => t.trimmed! > 0.3 && t.discarded! > 0), JSON.stringify(della.total.tasks));
  const linear = await run("della_linear");
  checkAgainstReference(linear, "della_linear");
  assert.ok(linear.total.tasks.every((t) => t.trimmed! > 0.3 && t.discarded === null), JSON.stringify(linear.total.tasks));
});

test("sce (select_topk 1: its sum vote on the unweighted τ) and ram (raw task vectors, no vote) equal the scalar reference", async () => {
  for (const name of ["sce", "ram"] as const) {
    const d = await run(name);
    checkAgainstReference(d, name);
    assert.ok(d.total.tasks.every((t) => t.trimmed === null && (name === "sce" ? t.discarded! > 0 : t.discarded === null)), JSON.stringify(d.total.tasks));
  }
});

test("sce with select_topk below 1 is refused (E_METHOD_UNSUPPORTED naming the recipe, the key and a tensor): diagnose does not stage its selection", async () => {
  const path = join(dir, "sce-topk");
  await writeCase(path, models, recipe(CASES.sce, { parameters: { select_topk: 0.1 } }));
  await assert.rejects(diagnose(join(path, "recipe.yml"), { workerUrl: WORKER_URL, workers: 1 }),
    (e: Error & { code?: string; details?: Record<string, unknown> }) => e.code === "E_METHOD_UNSUPPORTED" && /recipe\.yml: diagnose does not measure sce with select_topk below 1 \(0\.1 for tensor [\w.]+\)/.test(e.message));
  const r = cli("diagnose", join(path, "recipe.yml"));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /\[E_METHOD_UNSUPPORTED\] .*recipe\.yml: .*select_topk/);
});

test("edges equal the scalar reference: load dtype, untrimmed beside trimmed, density gradients and 0, weights 0 and negative, rescale switched", async () => {
  const d = new Map<string, DiagnosisResult>();
  for (const name of ["ties_edges", "della_edges", "dare_ties_edges", "breadcrumbs_edges"] as const) {
    d.set(name, await run(name));
    checkAgainstReference(d.get(name)!, name);
  }
  const task = (name: string, model: string) => d.get(name)!.total.tasks.find((t) => t.model === model)!;
  // By hand: a density of 1 trims nothing; density 0 keeps nothing (so nothing is left to discard); a
  // weight of 0 votes 0, which never agrees, so everything it keeps is discarded.
  assert.equal(task("ties_edges", "./a").trimmed, 0);
  assert.equal(task("della_edges", "./c").trimmed, 1);
  assert.equal(task("della_edges", "./c").discarded, null);
  assert.equal(task("dare_ties_edges", "./b").discarded, 1);
});

test("results are bit-identical across 1 and 2 workers and chunks of one and two tiles, and chunked runs equal the reference", async () => {
  const reference = await run("ties", { workers: 1 });
  for (const [workers, chunkElements] of [[2, 4096], [1, 8192]] as const) {
    const d = await run("ties", { workers, chunkElements });
    assert.deepStrictEqual(d, reference, `workers ${workers}, chunk ${chunkElements}`);
  }
  // della's chunks hold whole rows too: 4096 elements split the embeddings (rows of 64) into 8 chunks
  // and gate/up_proj into 3; down_proj (rows of 160) stays whole.
  for (const name of ["dare_linear", "dare_ties", "breadcrumbs_ties", "della"] as const) {
    const chunked = await run(name, { workers: 2, chunkElements: 4096 });
    checkAgainstReference(chunked, name);
    assert.deepStrictEqual(chunked, await run(name), name);
  }
});

test("what the recipe sets that mergekit ignores is measured as the merge runs it (ignored), and warned of first, as merge warns", async () => {
  const path = join(dir, "ignored");
  await writeCase(path, models, recipe(CASES.ties, { parameters: { ...CASES.ties.globals, densty: 0.2 }, pad_to_multiple_of: 8 }));
  const events: string[] = [];
  const d = await diagnose(join(path, "recipe.yml"), { workerUrl: WORKER_URL, workers: 1, onProgress: (e) => { if (e.type === "warning") events.push(e.message); } });
  checkAgainstReference(d, "ties");
  assert.equal(d.warnings.length, 2, d.warnings.join("\n"));
  assert.match(d.warnings.join("\n"), /pad_to_multiple_of: not a recipe key/);
  assert.match(d.warnings.join("\n"), /parameters\.densty: ties has no parameter "densty"/);
  assert.deepEqual(events, d.warnings);
});

test("align: on fine-tunes of one base is a no-op, and diagnose says so; before and after agree", async () => {
  const path = join(dir, "align");
  await writeCase(path, models, recipe(CASES.ties, { align: { to: "./a" } }));
  const events: string[] = [];
  const d = await diagnose(join(path, "recipe.yml"), { workerUrl: WORKER_URL, workers: 1, onProgress: (e) => { if (e.type === "warning") events.push(e.message); } });
  assert.ok(d.alignment, "an alignment section");
  assert.equal(d.alignment.noOp, true);
  assert.equal(d.alignment.reference, "./a");
  assert.deepEqual(d.alignment.models.map((m) => m.model), ["./b", "./c"]);
  for (const m of d.alignment.models) {
    assert.equal(m.cosineBefore, m.cosineAfter);
    assert.equal(m.normBefore, m.normAfter);
  }
  assert.equal(d.warnings.length, 1);
  assert.match(d.warnings[0]!, /align: changed nothing.*no-op/);
  assert.deepEqual(events, d.warnings);
  // The same statistics as the recipe without align:.
  const plain = await run("ties");
  assert.deepStrictEqual(d.total, plain.total);
});

const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });

test("CLI: --json is the library's result; --svg and --report write complete files (no temp files left)", async () => {
  const svg = join(dir, "heat.svg"), html = join(dir, "report.html");
  const r = cli("diagnose", join(dir, "ties", "recipe.yml"), "--json", "--svg", svg, "--report", html, "--workers", "1");
  assert.equal(r.status, 0, r.stderr);
  const json = JSON.parse(r.stdout) as DiagnosisResult;
  const lib = await run("ties");
  assert.deepStrictEqual(json, JSON.parse(JSON.stringify(lib)));
  const svgText = await readFile(svg, "utf8");
  assert.match(svgText, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[\s\S]*<\/svg>\n$/);
  assert.equal((svgText.match(/<rect [^>]*><title>layer \d · /g) ?? []).length, d2cells(lib), "one heatmap cell per layer tensor");
  const htmlText = await readFile(html, "utf8");
  assert.match(htmlText, /^<!DOCTYPE html>[\s\S]*<svg [\s\S]*<\/html>\n$/);
  assert.ok(htmlText.includes(lib.summary[0]!.replace(/&/g, "&amp;")));
  assert.deepEqual((await readdir(dir)).filter((f) => f.includes(".tmp")), []);
  const text = cli("diagnose", join(dir, "ties", "recipe.yml"), "--workers", "1");
  assert.equal(text.status, 0, text.stderr);
  for (const line of lib.summary) assert.ok(text.stdout.includes(line), line);
  assert.match(text.stdout, /^layer +conflict coords +conflict mass/m);
});

function d2cells(d: DiagnosisResult): number {
  return d.tensors.filter((t) => t.layer !== null && t.conflict.mass !== null).length;
}

test("CLI: bad input gives typed errors and exit codes, and no files", async () => {
  const missing = cli("diagnose", join(dir, "nope.yml"));
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /\[E_MODEL_NOT_FOUND\] .*nope\.yml/);
  const usage = cli("diagnose");
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /usage: weightsoup diagnose/);
  const flag = cli("diagnose", join(dir, "ties", "recipe.yml"), "--workers", "0");
  assert.equal(flag.status, 2);
  assert.match(flag.stderr, /--workers must be an integer/);
  // linear has no base model and so no task vectors.
  const linear = join(dir, "linear");
  await writeCase(linear, { a: models.a!, b: models.b! }, { merge_method: "linear", models: [{ model: "./a", parameters: { weight: 1 } }, { model: "./b", parameters: { weight: 1 } }] });
  const svg = join(linear, "heat.svg");
  const noBase = cli("diagnose", join(linear, "recipe.yml"), "--svg", svg);
  assert.equal(noBase.status, 1);
  assert.match(noBase.stderr, /\[E_METHOD_UNSUPPORTED\] .*recipe\.yml.*"linear" without a base_model/);
  assert.deepEqual((await readdir(linear)).filter((f) => f.endsWith(".svg") || f.includes(".tmp")), []);
  // A model the recipe names is missing.
  const broken = join(dir, "broken");
  await writeCase(broken, { base: models.base!, a: models.a! }, { ...recipe(CASES.ties), models: [{ model: "./a", parameters: { weight: 1, density: 0.5 } }, { model: "./gone", parameters: { weight: 1, density: 0.5 } }] });
  const gone = cli("diagnose", join(broken, "recipe.yml"));
  assert.equal(gone.status, 1);
  assert.match(gone.stderr, /\[E_MODEL_NOT_FOUND\] .*gone/);
  // An output file that cannot be written: E_IO naming it, after the diagnosis.
  const unwritable = cli("diagnose", join(dir, "ties", "recipe.yml"), "--workers", "1", "--svg", join(dir, "no-such-dir", "x.svg"));
  assert.equal(unwritable.status, 1);
  assert.match(unwritable.stderr, /\[E_IO\] .*no-such-dir\/x\.svg/);
  // The library checks its options the same way.
  await assert.rejects(run("ties", { workers: 0 }), { code: "E_OPTION" });
});

/**
 * Cosines over the tensors both models are in, from the models' values: float32 τ, float64 sums over the
 * concatenation (README "Diagnostics").
 */
function concatCosine(names: string[], x: string, y: string): number {
  let dot = 0, sx = 0, sy = 0;
  for (const name of names) {
    const b = models.base!.tensors.get(name)!.values!, vx = models[x]!.tensors.get(name)!.values!, vy = models[y]!.tensors.get(name)!.values!;
    for (let j = 0; j < b.length; j++) {
      const tx = Math.fround(vx[j]! - b[j]!), ty = Math.fround(vy[j]! - b[j]!);
      dot += tx * ty;
      sx += tx * tx;
      sy += ty * ty;
    }
  }
  return dot / Math.sqrt(sx * sy);
}

let sliceOrder: Promise<string> | undefined;

/** A slices recipe: layer 0 from a and b, layer 1 from b, a and c (b before a; c not in layer 0). */
function sliceOrderRecipe(): Promise<string> {
  sliceOrder ??= writeCase(join(dir, "slice-order"), models, {
    merge_method: "task_arithmetic", base_model: "./base",
    slices: [
      { sources: [{ model: "./base", layer_range: [0, 1] }, { model: "./a", layer_range: [0, 1], parameters: { weight: 1 } }, { model: "./b", layer_range: [0, 1], parameters: { weight: 1 } }] },
      { sources: [{ model: "./base", layer_range: [1, 2] }, { model: "./b", layer_range: [1, 2], parameters: { weight: 1 } }, { model: "./a", layer_range: [1, 2], parameters: { weight: 1 } }, { model: "./c", layer_range: [1, 2], parameters: { weight: 1 } }] },
    ],
  });
  return sliceOrder;
}

test("slices listing the models in another order, and a model in one slice only: one entry per pair, in recipe order, its cosine over the tensors both are in", async () => {
  const d = await diagnose(await sliceOrderRecipe(), { workerUrl: WORKER_URL, workers: 1 });
  assert.deepEqual(d.models, ["./a", "./b", "./c"]);
  const has = (m: string) => d.tensors.filter((t) => t.tasks.some((k) => k.model === m)).map((t) => t.name);
  // Which tensors hold c: layer 1's, and none of layer 0's (the recipe says so; the rest follow the slices).
  assert.ok(has("./c").some((n) => n.startsWith("model.layers.1.")) && !has("./c").some((n) => n.startsWith("model.layers.0.")));
  const pairsOf = (g: GroupStats) => g.pairs.map((p) => `${p.a}|${p.b}`);
  assert.deepEqual(pairsOf(d.total), ["./a|./b", "./a|./c", "./b|./c"]);
  const common = (x: string, y: string) => has(x).filter((n) => has(y).includes(n));
  for (const p of d.total.pairs) close(p.cosine, concatCosine(common(p.a, p.b), p.a.slice(2), p.b.slice(2)), `total cosine ${p.a}/${p.b}`);
  const layer1 = d.layers.find((l) => l.layer === 1)!;
  assert.deepEqual(pairsOf(layer1), ["./a|./b", "./a|./c", "./b|./c"]);
  const inLayer1 = d.tensors.filter((t) => t.layer === 1).map((t) => t.name);
  for (const p of layer1.pairs) close(p.cosine, concatCosine(inLayer1, p.a.slice(2), p.b.slice(2)), `layer 1 cosine ${p.a}/${p.b}`);
  const q = d.tensors.find((t) => t.name === "model.layers.1.self_attn.q_proj.weight")!;
  assert.deepEqual(pairsOf(q), ["./a|./b", "./a|./c", "./b|./c"]);
  assert.deepEqual(q.tasks.map((t) => t.model), ["./a", "./b", "./c"]);
});

/** A text table's cells by column label: columns are right-aligned (the first left-aligned, never empty) two spaces apart. */
function textTable(lines: string[]): Map<string, string>[] {
  const head = lines[0]!, labels = head.split(/ {2,}/);
  let from = 0;
  const ends = labels.map((label) => (from = head.indexOf(label, from) + label.length));
  return lines.slice(1).map((row) => new Map(labels.map((label, c) => [label, c === 0 ? row.split(/ {2,}/)[0]! : row.slice(ends[c - 1]!, ends[c]!).trim()])));
}

/** A printed cosine (3 significant digits) against the reference. */
function closeShown(shown: string | undefined, expected: number, what: string): void {
  assert.ok(shown !== undefined && shown !== "" && Math.abs(Number(shown) - expected) <= 0.0051 * Math.max(Math.abs(expected), 0.1), `${what}: ${shown} vs reference ${expected}`);
}

test("CLI text: where layers have different pairs (a slices recipe), each cosine is under its pair's column, and a layer lacking a pair or model has an empty cell", async () => {
  const r = cli("diagnose", await sliceOrderRecipe(), "--workers", "1");
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split("\n");
  const start = lines.findIndex((l) => l.startsWith("layer "));
  const rows = textTable(lines.slice(start, lines.indexOf("", start)));
  assert.deepEqual(rows.map((row) => row.get("layer")), ["0", "1"]);
  const [l0, l1] = rows as [Map<string, string>, Map<string, string>];
  const names = (layer: number) => [...models.base!.tensors.keys()].filter((n) => n.startsWith(`model.layers.${layer}.`));
  closeShown(l0.get("cos ./a/./b"), concatCosine(names(0), "a", "b"), "layer 0 a/b");
  assert.equal(l0.get("cos ./a/./c"), "");
  assert.equal(l0.get("cos ./b/./c"), "");
  assert.equal(l0.get("‖τ‖/‖b‖ ./c"), "");
  for (const [x, y] of [["a", "b"], ["a", "c"], ["b", "c"]] as const) closeShown(l1.get(`cos ./${x}/./${y}`), concatCosine(names(1), x, y), `layer 1 ${x}/${y}`);
});

test("--report: the per-layer table puts each cosine under its pair's column, an empty cell where a layer lacks the pair", async () => {
  const html = join(dir, "slice-order", "report.html");
  const r = cli("diagnose", await sliceOrderRecipe(), "--workers", "1", "--json", "--report", html);
  assert.equal(r.status, 0, r.stderr);
  const text = await readFile(html, "utf8");
  const section = text.slice(text.indexOf("Per layer"), text.indexOf("Per tensor"));
  const unescape = (x: string) => x.replace(/<[^>]+>/g, "").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, "&");
  const [head, ...rows] = [...section.matchAll(/<tr>(.*?)<\/tr>/gs)].map((m) => [...m[1]!.matchAll(/<t[hd][^>]*>(.*?)<\/t[hd]>/gs)].map((c) => unescape(c[1]!)));
  const cell = (row: string[], label: string) => row[head!.indexOf(label)];
  assert.deepEqual(rows.map((row) => row[0]), ["0", "1"]);
  const names = (layer: number) => [...models.base!.tensors.keys()].filter((n) => n.startsWith(`model.layers.${layer}.`));
  close(Number(cell(rows[0]!, "cos ./a/./b")), concatCosine(names(0), "a", "b"), "layer 0 a/b");
  assert.equal(cell(rows[0]!, "cos ./a/./c"), "");
  assert.equal(cell(rows[0]!, "cos ./b/./c"), "");
  for (const [x, y] of [["a", "b"], ["a", "c"], ["b", "c"]] as const) close(Number(cell(rows[1]!, `cos ./${x}/./${y}`)), concatCosine(names(1), x, y), `layer 1 ${x}/${y}`);
});

/** A layer whose conflicting mass fraction is `mass` (of a kept mass of 1). */
function layerWith(layer: number, mass: number): LayerDiagnosis {
  return {
    stack: "model.layers", layer, tensors: 1, baseNorm: 1, nonFinite: [], tasks: [], pairs: [],
    conflict: { eligible: 1, coordinates: mass, mass, eligibleMass: 1, conflictMass: mass },
  };
}

test("summary: the layers that conflict most are those at least halfway from the true median (an even count: the mean of the two middle values) to the maximum", () => {
  // By hand: the median of 0.1, 0.2, 0.6, 0.9 is 0.4, the bar (0.4 + 0.9) / 2 = 0.65: layer 2 (0.6) is below it.
  const total = layerWith(0, 0.5);
  assert.equal(summarize(total, [0.1, 0.2, 0.6, 0.9].map((m, i) => layerWith(i, m)), "model.layers")[0], "layer 3 conflicts most: 90% of mass");
  // 0.1, 0.5, 0.6, 0.7: median 0.55, bar 0.625: layer 2 (0.6) stays out (the lower middle value, 0.5, would let it in).
  assert.equal(summarize(total, [0.1, 0.5, 0.6, 0.7].map((m, i) => layerWith(i, m)), "model.layers")[0], "layer 3 conflicts most: 70% of mass");
  // Layers 2 and 3 at 0.8 and 0.9 with the median (0.2 + 0.8) / 2 = 0.5 and the bar 0.7: both, their fraction (0.8 + 0.9) / 2.
  assert.equal(summarize(total, [0.1, 0.2, 0.8, 0.9].map((m, i) => layerWith(i, m)), "model.layers")[0], "layers 2-3 conflict most: 85% of mass");
});

test("two layer stacks with the same names in a layer (a decoder and a vision tower): each layer of each stack is its own row and heatmap row", async () => {
  // b agrees with a on the decoder (half its move) and opposes it on the vision tower: by hand, the
  // decoder's layers conflict nowhere (cosine 1), the tower's everywhere (cosine -1).
  const names = ["model.embed_tokens.weight", ...[0, 1].flatMap((l) => [`model.layers.${l}.mlp.fc1.weight`, `model.layers.${l}.mlp.fc2.weight`]),
    ...[0, 1].map((l) => `vision_model.encoder.layers.${l}.mlp.fc1.weight`), "lm_head.weight"];
  const shapeOf = (n: string) => (n.includes("layers") ? [4, 4] : [16, 4]);
  const config = { architectures: ["LlavaForConditionalGeneration"], model_type: "llava", vocab_size: 16, num_hidden_layers: 2 };
  const make = (value: (n: string, i: number) => number): RefModel => ({
    config, tensors: new Map(names.map((n) => {
      const shape = shapeOf(n), values = new Float32Array(shape[0]! * shape[1]!).map((_, i) => value(n, i));
      return [n, { dtype: "F32", shape, values }];
    })),
  });
  const b0 = (n: string, i: number) => Math.fround(0.5 + uniform(n.length, i));
  // |τ| at least 0.05: its sign survives the float32 subtraction.
  const tau = (n: string, i: number) => (uniform(n.length + 100, i) < 0.5 ? -1 : 1) * (0.05 + 0.1 * uniform(n.length + 200, i));
  const stackModels = {
    base: make(b0),
    a: make((n, i) => b0(n, i) + tau(n, i)),
    b: make((n, i) => b0(n, i) + (n.startsWith("vision") ? -1 : 0.5) * tau(n, i)),
  };
  const path = join(dir, "stacks");
  await writeCase(path, stackModels, { merge_method: "task_arithmetic", base_model: "./base", models: [{ model: "./a", parameters: { weight: 1 } }, { model: "./b", parameters: { weight: 1 } }] });
  const d = await diagnose(join(path, "recipe.yml"), { workerUrl: WORKER_URL, workers: 1 });
  assert.equal(d.decoder, "model.layers");
  assert.deepEqual(d.layers.map((l) => [l.stack, l.layer, l.tensors]), [["model.layers", 0, 2], ["model.layers", 1, 2], ["vision_model.encoder.layers", 0, 1], ["vision_model.encoder.layers", 1, 1]]);
  const cosine = (tensors: string[]) => {
    let dot = 0, sa = 0, sb = 0;
    for (const n of tensors) {
      const base = stackModels.base.tensors.get(n)!.values!, va = stackModels.a.tensors.get(n)!.values!, vb = stackModels.b.tensors.get(n)!.values!;
      for (let j = 0; j < base.length; j++) {
        const ta = Math.fround(va[j]! - base[j]!), tb = Math.fround(vb[j]! - base[j]!);
        dot += ta * tb; sa += ta * ta; sb += tb * tb;
      }
    }
    return dot / Math.sqrt(sa * sb);
  };
  for (const l of d.layers) {
    assert.equal(l.conflict.mass, l.stack === "model.layers" ? 0 : 1, `${l.stack} ${l.layer}`);
    close(l.pairs[0]!.cosine, cosine(names.filter((n) => n.startsWith(`${l.stack}.${l.layer}.`))), `${l.stack} ${l.layer} cosine`);
  }
  const heat = conflictHeatmap(d);
  assert.deepEqual(heat.rowLabels, ["layer 0", "layer 1", "vision_model.encoder.layers.0", "vision_model.encoder.layers.1"]);
  assert.deepEqual(heat.colLabels, ["mlp.fc1.weight", "mlp.fc2.weight"]);
  assert.deepEqual(heat.values, [[0, 0], [0, 0], [1, NaN], [1, NaN]]);
  assert.equal(d.summary[0], "vision_model.encoder.layers 0-1 conflict most: 100% of mass");
  const r = cli("diagnose", join(path, "recipe.yml"), "--workers", "1");
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split("\n");
  const start = lines.findIndex((l) => l.startsWith("layer "));
  assert.deepEqual(textTable(lines.slice(start, lines.indexOf("", start))).map((row) => [row.get("layer"), row.get("conflict mass")]),
    [["0", "0%"], ["1", "0%"], ["vision_model.encoder.layers.0", "100%"], ["vision_model.encoder.layers.1", "100%"]]);
});

/** task_arithmetic's conflicting mass fraction (m = τ) of models x and y over `names`, from the values. */
function conflictMass(all: Record<string, RefModel>, names: string[], x: string, y: string): number {
  let eligible = 0, conflict = 0;
  for (const name of names) {
    const b = all.base!.tensors.get(name)!.values!, vx = all[x]!.tensors.get(name)!.values!, vy = all[y]!.tensors.get(name)!.values!;
    for (let j = 0; j < b.length; j++) {
      const tx = Math.fround(vx[j]! - b[j]!), ty = Math.fround(vy[j]! - b[j]!);
      if (tx === 0 || ty === 0) continue;
      eligible += Math.abs(tx) + Math.abs(ty);
      if ((tx > 0) !== (ty > 0)) conflict += Math.abs(tx) + Math.abs(ty);
    }
  }
  return conflict / eligible;
}

test("NaN or infinite inputs: a warning naming the file and tensor (event, stderr line, --json), nonFinite in each figure's group, and the summary says which layer it could not rate", async () => {
  const spoiled = (tensor: string, value: number): RefModel => {
    const tensors = new Map([...models.b!.tensors].map(([n, t]) => [n, { ...t, values: t.values!.slice() }]));
    tensors.get(tensor)!.values![3] = value;
    return { config: models.b!.config, tensors };
  };
  const cases = [
    { name: "nan", tensor: "model.layers.0.mlp.up_proj.weight", value: NaN, bad: 0, good: 1 },
    { name: "inf", tensor: "model.layers.1.self_attn.q_proj.weight", value: Infinity, bad: 1, good: 0 },
  ];
  for (const c of cases) {
    const all = { base: models.base!, a: models.a!, [c.name]: spoiled(c.tensor, c.value) };
    const path = join(dir, `nonfinite-${c.name}`);
    await writeCase(path, all, { merge_method: "task_arithmetic", base_model: "./base", models: [{ model: "./a", parameters: { weight: 1 } }, { model: `./${c.name}`, parameters: { weight: 1 } }] });
    const events: string[] = [];
    const d = await diagnose(join(path, "recipe.yml"), { workerUrl: WORKER_URL, workers: 1, onProgress: (e) => { if (e.type === "warning") events.push(e.message); } });
    assert.equal(d.warnings.length, 1, d.warnings.join("\n"));
    const file = join(path, c.name, "model.safetensors");
    assert.equal(d.warnings[0]!.startsWith(`${c.tensor}: NaN or infinite values in ${file} (tensor ${c.tensor}) minus the base ${join(path, "base", "model.safetensors")} (tensor ${c.tensor})`), true, d.warnings[0]);
    assert.deepEqual(events, d.warnings);
    assert.deepEqual(d.total.nonFinite, [`./${c.name}`]);
    assert.deepEqual(d.layers.map((l) => l.nonFinite), c.bad === 0 ? [[`./${c.name}`], []] : [[], [`./${c.name}`]]);
    assert.deepEqual(d.tensors.filter((t) => t.nonFinite.length > 0).map((t) => t.name), [c.tensor]);
    // The other layer is rated, its figures those of the finite values.
    const good = d.layers.find((l) => l.layer === c.good)!;
    const names = [...models.base!.tensors.keys()].filter((n) => n.startsWith(`model.layers.${c.good}.`));
    close(good.conflict.mass, conflictMass(all, names, "a", c.name), `layer ${c.good} conflict mass`);
    const hot = d.summary.find((line) => /conflicts? most/.test(line))!;
    assert.match(hot, new RegExp(`^layer ${c.good} conflicts most: [\\d.]+% of mass \\(not rated, NaN or infinite values: layer ${c.bad}\\)$`));
    assert.ok(Math.abs(Number(/: ([\d.]+)%/.exec(hot)![1]) / 100 - conflictMass(all, names, "a", c.name)) < 0.006, hot);
    assert.match(d.summary[0]!, new RegExp(`^NaN or infinite values in \\./${c.name} \\(see the warnings\\)`));
    // The CLI: the warning line on stderr, exit 0, and the warnings in --json.
    const r = cli("diagnose", join(path, "recipe.yml"), "--workers", "1", "--json");
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, `weightsoup: warning: ${d.warnings[0]}\n`);
    assert.deepEqual((JSON.parse(r.stdout) as DiagnosisResult).warnings, d.warnings);
  }
});
