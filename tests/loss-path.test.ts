// `lossPath` / `weightsoup path`: each point's NLL against hand computation (the interpolated weights
// computed here in float32 by the SPEC's formulas, written with the test writer and evaluated; the same
// point merged with the merge API and evaluated; a float64 reference forward pass), the barrier from
// the points by its definition, recipe endpoints, --align on a planted permutation plus noise, the
// CLI's table/JSON/SVG/report and its exit codes.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { stringify } from "yaml";
import { evaluate, lossPath, merge } from "../src/node";
import { AbortError, DataError, OptionError } from "../src/errors";
import type { LossPathEvent } from "../src/api/path";
import { CLI, removeDir, tempDir, WORKER_URL } from "./helpers/fixtures";
import { idsText, LM, permutation, permuted, ruleIds, ruleModel, withNoise, writeLm } from "./helpers/path-models";
import { lerpModel } from "./reference/interpolate";
import { referenceEvaluation, type ReferenceModel, type ReferenceTensor } from "./reference/decoder";

let root: string;
before(async () => { root = await tempDir("ws-path-"); });
after(async () => { await removeDir(root); });

const ids = ruleIds(96);
const EVAL = { ids, context: 32, workers: 1, workerUrl: WORKER_URL };

/** mergekit's slerp per tensor, as SPEC "slerp" states it (float64 norms and angle, float32 elements). */
function slerpModel(a: ReferenceModel, b: ReferenceModel, t: number): ReferenceModel {
  const tensors = new Map<string, ReferenceTensor>();
  for (const [name, ta] of a.tensors) {
    const v0 = ta.values, v1 = b.tensors.get(name)!.values;
    let n0 = 0, n1 = 0, dot = 0;
    for (let i = 0; i < v0.length; i++) { n0 += v0[i]! * v0[i]!; n1 += v1[i]! * v1[i]!; dot += v0[i]! * v1[i]!; }
    n0 = Math.sqrt(n0); n1 = Math.sqrt(n1);
    const d = dot / ((n0 > 1e-8 ? n0 : 1) * (n1 > 1e-8 ? n1 : 1));
    let s0: number, s1: number;
    if (Math.abs(d) > 0.9995) { s0 = Math.fround(1 - t); s1 = Math.fround(t); }
    else {
      const theta = Math.acos(d), thetaT = theta * t;
      s0 = Math.sin(theta - thetaT) / Math.sin(theta);
      s1 = Math.sin(thetaT) / Math.sin(theta);
    }
    const f0 = Math.fround(s0), f1 = Math.fround(s1);
    tensors.set(name, { shape: ta.shape, values: v0.map((x, i) => Math.fround(Math.fround(f0 * x) + Math.fround(f1 * v1[i]!))) });
  }
  return { config: a.config, tensors };
}

let n = 0;
async function nllOf(model: ReferenceModel): Promise<number> {
  const dir = await writeLm(join(root, `hand-${n++}`), model);
  return (await evaluate([dir], EVAL)).results[0]!.nll;
}

describe("loss path points against hand computation", () => {
  const A = ruleModel(1), B = ruleModel(2);
  let a: string, b: string;
  before(async () => {
    a = await writeLm(join(root, "a"), A);
    b = await writeLm(join(root, "b"), B);
  });

  test("linear and SLERP points equal the hand-interpolated models evaluated, bit for bit; the barrier is max minus the endpoint mean", async () => {
    const events: LossPathEvent[] = [];
    const r = await lossPath(a, b, { ...EVAL, points: 5, slerp: true, onProgress: (e) => events.push(e) });
    assert.deepEqual(r.points.map((p) => p.lambda), [0, 0.25, 0.5, 0.75, 1]);
    const started = events.flatMap((e) => (e.type === "path-point-start" ? [`${e.curve} ${e.index}/${e.points} ${e.lambda}`] : []));
    assert.deepEqual(started, ["linear", "slerp"].flatMap((k) => [0, 1, 2, 3, 4].map((i) => `${k} ${i}/5 ${i / 4}`)));
    // One path-point event per measured point, whose numbers are the returned curve's.
    const measured = events.flatMap((e) => (e.type === "path-point" ? [e] : []));
    assert.deepEqual(measured.map((e) => `${e.curve} ${e.index}`), ["linear", "slerp"].flatMap((k) => [0, 1, 2, 3, 4].map((i) => `${k} ${i}`)));
    for (const e of measured) assert.deepEqual({ lambda: e.lambda, nll: e.nll, perplexity: e.perplexity }, (e.curve === "linear" ? r : r.slerp!).points[e.index], `${e.curve} point ${e.index}`);
    assert.equal(events.at(-1)!.type, "path-done");
    assert.equal(r.predicted, 3 * 31, "96 tokens in windows of 32 predict 31 each");
    // Endpoints: A and B themselves.
    assert.equal(r.points[0]!.nll, (await evaluate([a], EVAL)).results[0]!.nll);
    assert.equal(r.points[4]!.nll, (await evaluate([b], EVAL)).results[0]!.nll);
    for (const i of [1, 2]) {
      const lambda = r.points[i]!.lambda;
      const hand = lerpModel(A, B, lambda);
      assert.equal(r.points[i]!.nll, await nllOf(hand), `linear λ=${lambda}`);
      assert.equal(r.points[i]!.perplexity, Math.exp(r.points[i]!.nll));
      const ref = referenceEvaluation(hand, ids, { context: 32 }).nllMean;
      assert.ok(Math.abs(r.points[i]!.nll - ref) < 1e-5, `linear λ=${lambda}: ${r.points[i]!.nll} vs float64 reference ${ref}`);
    }
    assert.equal(r.slerp!.points[2]!.nll, await nllOf(slerpModel(A, B, 0.5)), "slerp λ=0.5");
    const nlls = r.points.map((p) => p.nll);
    assert.equal(r.barrier, Math.max(...nlls) - (nlls[0]! + nlls[4]!) / 2);
    assert.equal(r.worstLambda, r.points[nlls.indexOf(Math.max(...nlls))]!.lambda);
    assert.equal(r.gap, Math.max(...r.points.map((p) => p.nll - ((1 - p.lambda) * nlls[0]! + p.lambda * nlls[4]!))));
    assert.ok(r.barrier > 0.1, `two unrelated rule models have a barrier between them (${r.barrier})`);
  });

  test("pointByPoint: each point's path-point event arrives before the next point starts, with the numbers of the default (one call per curve) run", async () => {
    const events: LossPathEvent[] = [];
    const live = await lossPath(a, b, { ...EVAL, points: 3, slerp: true, pointByPoint: true, onProgress: (e) => events.push(e) });
    const batched = await lossPath(a, b, { ...EVAL, points: 3, slerp: true });
    assert.deepEqual(live.points, batched.points);
    assert.deepEqual(live.slerp!.points, batched.slerp!.points);
    assert.equal(live.barrier, batched.barrier);
    const order = events.flatMap((e) => (e.type === "path-point-start" ? [`start ${e.curve} ${e.index}`] : e.type === "path-point" ? [`done ${e.curve} ${e.index}`] : []));
    assert.deepEqual(order, ["linear", "slerp"].flatMap((k) => [0, 1, 2].flatMap((i) => [`start ${k} ${i}`, `done ${k} ${i}`])));
    for (const e of events) if (e.type === "path-point") assert.deepEqual({ lambda: e.lambda, nll: e.nll, perplexity: e.perplexity }, (e.path === "linear" ? batched : batched.slerp!).points[e.index]);
  });

  test("a point equals writing that linear merge with the merge API and evaluating the folder", async () => {
    const recipe = join(root, "point.yml");
    await writeFile(recipe, stringify({ merge_method: "linear", models: [{ model: "a", parameters: { weight: 0.25 } }, { model: "b", parameters: { weight: 0.75 } }], parameters: { normalize: false } }));
    await merge(recipe, { out: join(root, "point-merged"), workers: 1, workerUrl: WORKER_URL });
    const written = (await evaluate([join(root, "point-merged")], EVAL)).results[0]!.nll;
    const r = await lossPath(a, b, { ...EVAL, points: 5 });
    assert.equal(r.points[3]!.nll, written);
  });

  test("a recipe endpoint is merged in memory: its path equals the path from the written merge", async () => {
    const recipe = join(root, "end.yml");
    await writeFile(recipe, stringify({ merge_method: "linear", models: [{ model: "a", parameters: { weight: 0.6 } }, { model: "b", parameters: { weight: 0.4 } }] }));
    await merge(recipe, { out: join(root, "end-merged"), workers: 1, workerUrl: WORKER_URL });
    const c = await writeLm(join(root, "c"), ruleModel(3));
    const fromRecipe = await lossPath(recipe, c, { ...EVAL, points: 3 });
    const fromFolder = await lossPath(join(root, "end-merged"), c, { ...EVAL, points: 3 });
    assert.deepEqual(fromRecipe.points, fromFolder.points);
    assert.equal(fromRecipe.a, recipe);
  });

  test("endpoint names are never read as recipe syntax (a \"+\" in a folder name)", async () => {
    const plus = await writeLm(join(root, "b+copy"), B);
    const r = await lossPath(a, plus, { ...EVAL, points: 2 });
    assert.equal(r.points[1]!.nll, (await evaluate([b], EVAL)).results[0]!.nll);
  });

  test("bad input: typed errors", async () => {
    await assert.rejects(lossPath(a, a, EVAL), (e: unknown) => e instanceof DataError && e.code === "E_DATA" && /both/.test(e.message));
    await assert.rejects(lossPath(a, b, { ...EVAL, points: 1 }), (e: unknown) => e instanceof OptionError && e.details.key === "points");
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(lossPath(a, b, { ...EVAL, signal: controller.signal }), (e: unknown) => e instanceof AbortError);
    await assert.rejects(lossPath(a, join(root, "missing"), EVAL), (e: unknown) => e instanceof Error && "code" in e && e.code === "E_MODEL_NOT_FOUND");
  });
});

describe("--align on a planted permutation plus noise", () => {
  test("aligning B to A lowers the barrier; an aligned point equals the recipe with align: {to: A} merged and evaluated", async () => {
    const A = ruleModel(1);
    // B computes A's function with its residual stream and both MLPs' units permuted, then 2% noise.
    const B = withNoise(permuted(A, permutation(LM.hidden, 11), [permutation(LM.intermediate, 12), permutation(LM.intermediate, 13)]), 3, 0.02);
    const a = await writeLm(join(root, "pa"), A), b = await writeLm(join(root, "pb"), B);
    const events: LossPathEvent[] = [];
    const r = await lossPath(a, b, { ...EVAL, points: 5, align: true, onProgress: (e) => events.push(e) });
    const measured = events.flatMap((e) => (e.type === "path-point" ? [e] : []));
    assert.deepEqual(measured.map((e) => `${e.curve} ${e.index}`), ["linear", "aligned linear"].flatMap((k) => [0, 1, 2, 3, 4].map((i) => `${k} ${i}`)));
    for (const e of measured) assert.deepEqual({ lambda: e.lambda, nll: e.nll, perplexity: e.perplexity }, (e.aligned ? r.aligned! : r).points[e.index], `${e.curve} point ${e.index}`);
    assert.ok(r.barrier > 0.1, `naive barrier ${r.barrier}`);
    assert.ok(r.aligned!.barrier < r.barrier / 10, `aligned barrier ${r.aligned!.barrier} vs naive ${r.barrier}`);
    assert.ok(r.aligned!.groups.some((g) => g.cosineAfter > g.cosineBefore + 0.5), "some group's cosine rose");

    const recipe = join(root, "aligned-point.yml");
    await writeFile(recipe, stringify({ merge_method: "linear", models: [{ model: "pa", parameters: { weight: 0.5 } }, { model: "pb", parameters: { weight: 0.5 } }], parameters: { normalize: false }, align: { to: "pa" } }));
    await merge(recipe, { out: join(root, "aligned-merged"), workers: 1, workerUrl: WORKER_URL });
    assert.equal(r.aligned!.points[2]!.nll, (await evaluate([join(root, "aligned-merged")], EVAL)).results[0]!.nll);
  });
});

describe("weightsoup path", () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", cwd: root });

  test("JSON equals the library's result; --text gives the same numbers as the ids it stands for; SVG and report written", async () => {
    const a = await writeLm(join(root, "ca"), ruleModel(1)), b = await writeLm(join(root, "cb"), ruleModel(2));
    await writeFile(join(root, "ids.json"), JSON.stringify(ids));
    await writeFile(join(root, "text.txt"), idsText(ids));
    const lib = await lossPath(a, b, { ...EVAL, points: 3 });
    const json = run("path", "ca", "cb", "--ids", "ids.json", "--points", "3", "--context", "32", "--json");
    assert.equal(json.status, 0, json.stderr);
    const out = JSON.parse(json.stdout);
    assert.deepEqual(out.points, lib.points);
    assert.equal(out.barrier, lib.barrier);
    const text = run("path", "ca", "cb", "--text", "text.txt", "--points", "3", "--context", "32", "--svg", "p.svg", "--report", "p.html");
    assert.equal(text.status, 0, text.stderr);
    for (const p of lib.points) assert.ok(text.stdout.includes(p.nll.toFixed(4)), `table shows ${p.nll.toFixed(4)}`);
    assert.match(text.stdout, new RegExp(`linear: barrier ${lib.barrier.toFixed(4)}`));
    assert.match(await readFile(join(root, "p.svg"), "utf8"), /<svg[\s\S]*<\/svg>\s*$/);
    const html = await readFile(join(root, "p.html"), "utf8");
    assert.match(html, /^<!DOCTYPE html>/);
    assert.ok(html.includes(String(lib.points[1]!.nll)), "report table holds the midpoint's NLL");
  });

  test("many points run within a small open-file limit: the points' models are opened one after another (found by the stop 38 README audit: 510 points failed EMFILE under ulimit -n 1024)", async () => {
    await writeLm(join(root, "fa"), ruleModel(1));
    await writeLm(join(root, "fb"), ruleModel(2));
    await writeFile(join(root, "fd-ids.json"), JSON.stringify(ids.slice(0, 40)));
    // 100 points hold 200 header reads if opened at once; 64 descriptors are enough for Node, its workers and one at a time.
    const r = spawnSync("sh", ["-c", `ulimit -n 64 && exec "${process.execPath}" "${CLI}" path fa fb --ids fd-ids.json --context 16 --points 100 --json --quiet`], { encoding: "utf8", cwd: root });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.points.length, 100);
    assert.ok(out.points.every((p: { nll: number }) => Number.isFinite(p.nll)));
  });

  test("exit codes: 2 for bad usage, 1 for bad input; --help", () => {
    for (const command of ["path", "soup"]) {
      const help = run(command, "--help");
      assert.equal(help.status, 0);
      assert.match(help.stdout, new RegExp(`^usage: weightsoup ${command}`));
    }
    assert.equal(run("path", "ca").status, 2);
    assert.equal(run("path", "ca", "cb", "--points", "1").status, 2);
    assert.equal(run("path", "ca", "cb", "--text", "text.txt", "--ids", "ids.json").status, 2);
    const same = run("path", "ca", "ca", "--ids", "ids.json");
    assert.equal(same.status, 1);
    assert.match(same.stderr, /\[E_DATA\]/);
    // One folder under two spellings is one model (found by the stop 38 README audit: a soup weighted it twice).
    const spelled = run("path", "ca", "./ca/", "--ids", "ids.json");
    assert.equal(spelled.status, 1, spelled.stderr);
    assert.match(spelled.stderr, /\[E_DATA\] "ca" and "\.\/ca\/" are the same model .*a loss path needs two different models/);
    const twice = run("soup", "ca", "cb", "./ca/", "--ids", "ids.json");
    assert.equal(twice.status, 1, twice.stderr);
    assert.match(twice.stderr, /\[E_DATA\] "ca" and "\.\/ca\/" are the same model .*each ingredient may be in a soup once/);
    const missing = run("path", "ca", "nope", "--ids", "ids.json");
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /\[E_MODEL_NOT_FOUND\]/);
  });
});
