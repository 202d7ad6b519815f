// `greedySoup` / `weightsoup soup`: Wortsman et al.'s greedy soup on a constructed case where one
// ingredient is harmful (a fine-tune of a tiny LM with large noise added): every soup loss reported
// equals the uniform average computed here in float32 (SPEC "linear", weight 1 each), written with the
// test writer and evaluated, bit for bit; the keep/skip decisions follow the stated rule from those
// numbers; the written soup holds exactly that average; the tie rule; the CLI and its exit codes.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { evaluate, greedySoup } from "../src/node";
import { DataError } from "../src/errors";
import type { SoupResult } from "../src/api/soup";
import { decodeFloat } from "./reference/safetensors";
import { CLI, readOutput, removeDir, tempDir, WORKER_URL } from "./helpers/fixtures";
import { ruleIds, ruleModel, withNoise, writeLm } from "./helpers/path-models";
import { referenceEvaluation, type ReferenceModel, type ReferenceTensor } from "./reference/decoder";

let root: string;
const ids = ruleIds(128);
const EVAL = { ids, context: 32, workers: 1, workerUrl: WORKER_URL };
const base = ruleModel(1);
// Two mild fine-tunes and one harmful one (noise 1.5x each tensor's RMS).
const models: Record<string, ReferenceModel> = { c: withNoise(base, 4, 0.2), bad: withNoise(base, 7, 1.5), d: withNoise(base, 5, 0.2) };
const dirs: Record<string, string> = {};

before(async () => {
  root = await tempDir("ws-soup-");
  for (const [name, m] of Object.entries(models)) dirs[name] = await writeLm(join(root, name), m);
});
after(async () => { await removeDir(root); });

/** SPEC linear with weight 1 each: acc = fround(acc + fround(1·x_i)) in order, out = fround(acc / W). */
function average(members: readonly ReferenceModel[]): ReferenceModel {
  const tensors = new Map<string, ReferenceTensor>();
  const W = members.length;
  for (const [name, t] of members[0]!.tensors) {
    const out = new Float32Array(t.values.length);
    for (let i = 0; i < out.length; i++) {
      let acc = Math.fround(members[0]!.tensors.get(name)!.values[i]!);
      for (const m of members.slice(1)) acc = Math.fround(acc + Math.fround(m.tensors.get(name)!.values[i]!));
      out[i] = Math.fround(acc / W);
    }
    tensors.set(name, { shape: t.shape, values: out });
  }
  return { config: members[0]!.config, tensors };
}

let n = 0;
async function nllOf(model: ReferenceModel): Promise<number> {
  const dir = await writeLm(join(root, `hand-${n++}`), model);
  return (await evaluate([dir], EVAL)).results[0]!.nll;
}

const byDir = (dir: string) => models[Object.keys(dirs).find((k) => dirs[k] === dir)!]!;

/** The library's greedy soup of [c, bad, d], from the first test, for the CLI's to equal. */
let lib: SoupResult;

describe("greedy soup with a harmful ingredient", () => {
  test("greedy excludes the harmful one, the uniform soup includes it; every loss equals the hand-averaged soup evaluated", async () => {
    const out = join(root, "soup");
    const r = await greedySoup([dirs.c!, dirs.bad!, dirs.d!], { ...EVAL, out });
    lib = r;
    // Ingredients alone, best first; each near the float64 reference's NLL (an independent forward pass).
    assert.deepEqual(r.ingredients.map((x) => x.nll), [...r.ingredients.map((x) => x.nll)].sort((x, y) => x - y));
    for (const x of r.ingredients) {
      const ref = referenceEvaluation(byDir(x.model), ids, { context: 32 }).nllMean;
      assert.ok(Math.abs(x.nll - ref) < 1e-5, `${x.model}: ${x.nll} vs ${ref}`);
    }
    assert.equal(r.ingredients[2]!.model, dirs.bad, "the harmful ingredient is the worst alone");
    // The trajectory, replayed from hand-averaged soups.
    let soup = [r.ingredients[0]!.model];
    let current = r.ingredients[0]!.nll;
    assert.equal(r.trajectory.length, 2);
    for (const [i, step] of r.trajectory.entries()) {
      assert.equal(step.candidate, r.ingredients[i + 1]!.model);
      const hand = await nllOf(average([...soup, step.candidate].map(byDir)));
      assert.equal(step.nll, hand, `step ${i + 1}: soup NLL with ${step.candidate}`);
      assert.equal(step.kept, hand <= current, `step ${i + 1}: kept iff not worse`);
      if (step.kept) { soup = [...soup, step.candidate]; current = hand; }
    }
    assert.deepEqual(r.kept, soup);
    assert.ok(!r.kept.includes(dirs.bad!), "greedy excludes the harmful ingredient");
    assert.equal(r.nll, current);
    // The uniform soup of all, in the given order.
    const uniform = await nllOf(average([models.c!, models.bad!, models.d!]));
    assert.equal(r.uniform.nll, uniform);
    assert.ok(r.uniform.nll > r.nll + 0.1, `uniform ${r.uniform.nll} vs greedy ${r.nll}`);
    // The written soup is the hand average of the kept ingredients, bit for bit.
    const expected = average(r.kept.map(byDir));
    const written = await readOutput(out);
    for (const [name, t] of expected.tensors) {
      const w = written.tensors.get(name)!;
      assert.equal(w.dtype, "F32");
      assert.deepEqual(decodeFloat("F32", w.data), t.values, name);
    }
    assert.equal((await evaluate([out], EVAL)).results[0]!.nll, r.nll, "evaluating the written soup gives the reported loss");
  });

  test("without greedy: the soup is the uniform soup of all", async () => {
    const r = await greedySoup([dirs.c!, dirs.bad!, dirs.d!], { ...EVAL, greedy: false });
    assert.deepEqual(r.kept, [dirs.c, dirs.bad, dirs.d]);
    assert.deepEqual(r.trajectory, []);
    assert.equal(r.nll, r.uniform.nll);
  });

  test("tie rule: an ingredient that leaves the loss exactly equal is kept", async () => {
    // A copy of c: the average of c and c is c exactly ((x + x) / 2), so the loss ties.
    const copy = await writeLm(join(root, "c-copy"), models.c!);
    const r = await greedySoup([dirs.c!, copy], EVAL);
    assert.equal(r.trajectory[0]!.nll, r.ingredients[0]!.nll);
    assert.equal(r.trajectory[0]!.kept, true);
    assert.deepEqual(r.kept, [dirs.c, copy]);
  });

  test("bad input: typed errors", async () => {
    await assert.rejects(greedySoup([dirs.c!], EVAL), (e: unknown) => e instanceof DataError && /at least two/.test(e.message));
    await assert.rejects(greedySoup([dirs.c!, dirs.c!], EVAL), (e: unknown) => e instanceof DataError && /twice/.test(e.message));
    const plus = await writeLm(join(root, "d+x"), models.d!);
    await assert.rejects(greedySoup([dirs.c!, plus], EVAL), (e: unknown) => e instanceof DataError && /"\+"/.test(e.message));
  });
});

describe("weightsoup soup", () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", cwd: root });

  test("--greedy --json --out: the trajectory and the written soup; the report; exit codes", async () => {
    await writeFile(join(root, "ids.json"), JSON.stringify(ids));
    assert.ok(lib, "the library's soup ran first");
    const res = run("soup", "c", "bad", "d", "--ids", "ids.json", "--context", "32", "--greedy", "--json", "--out", "cli-soup", "--report", "soup.html");
    assert.equal(res.status, 0, res.stderr);
    const out = JSON.parse(res.stdout);
    assert.deepEqual(out.kept.map((k: string) => join(root, k)), lib.kept);
    assert.deepEqual(out.trajectory.map((s: { nll: number; kept: boolean }) => [s.nll, s.kept]), lib.trajectory.map((s) => [s.nll, s.kept]));
    assert.equal(out.uniform.nll, lib.uniform.nll);
    assert.ok(out.files.includes("model.safetensors"));
    assert.equal((await evaluate([join(root, "cli-soup")], EVAL)).results[0]!.nll, lib.nll);

    const table = run("soup", "c", "bad", "d", "--ids", "ids.json", "--context", "32", "--greedy");
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, new RegExp(`greedy soup of ${lib.kept.length} \\(${lib.kept.map((k) => k.slice(root.length + 1)).join(", ")}\\)`));
    assert.match(table.stdout, /uniform soup of all 3/);

    assert.equal(run("soup", "c", "--ids", "ids.json").status, 2, "one ingredient");
    assert.equal(run("soup", "c", "d", "--svg", "s.svg").status, 2, "--svg without --greedy");
    assert.equal(run("soup", "c", "r.yml").status, 2, "a recipe as an ingredient");
    await mkdir(join(root, "full"));
    await writeFile(join(root, "full", "x"), "x");
    const full = run("soup", "c", "d", "--ids", "ids.json", "--out", "full");
    assert.equal(full.status, 1);
    assert.match(full.stderr, /\[E_OUTPUT_EXISTS\]/);
    const twice = run("soup", "c", "c", "--ids", "ids.json");
    assert.equal(twice.status, 1);
    assert.match(twice.stderr, /\[E_DATA\]/);
    // A report that cannot be written is refused before the soup is made, so no --out folder is left behind.
    const noFolder = run("soup", "c", "d", "--ids", "ids.json", "--out", "soup-kept", "--report", join("no", "such", "r.html"));
    assert.equal(noFolder.status, 1);
    assert.match(noFolder.stderr, /\[E_IO\] .*r\.html: cannot write it: no such file or folder/);
    assert.ok(!existsSync(join(root, "soup-kept")), "the soup folder is not written");
  });
});
