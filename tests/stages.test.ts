// Multi-stage recipes (several YAML documents, mergekit-multi): a two-stage recipe gives the same bytes
// as running its two stages by hand, one after the other, with the existing one-document engine, and
// the numbers of the scalar reference run stage by stage; intermediates live in the output's staging
// area and are gone afterwards; bad document graphs are typed errors naming the documents.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { evaluate, merge, plan } from "../src/node";
import { merge as mergeWith } from "../src/api/merge";
import { MemoryOutputFolder } from "../src/io/memory-output";
import { NodeFolder } from "../src/io/node-folder";
import { parseRecipe } from "../src/recipe/recipe";
import { WeightsoupError, ValidationError } from "../src/errors";
import type { MergeEvent } from "../src/events";
import { openModel } from "../src/model/model";
import { checkRecipe } from "../site/ui/recipe-check";
import { recipeModelNames } from "../site/ui/mapping";
import { readForm } from "../site/ui/recipe-doc";
import type { BlobFolder } from "../src/io/folder";
import { referenceMerge, type RefModel } from "./reference/merge";
import { readSafetensors } from "./reference/safetensors";
import { baseModel, CLI, compareTensor, fineTune, readOutput, removeDir, tempDir, toYaml, WORKER_URL, writeModel, type OutputTensor } from "./helpers/fixtures";

let root: string;
before(async () => { root = await tempDir("ws-stages-"); });
after(async () => { await removeDir(root); });

const base = baseModel(31, "BF16");
const a = fineTune(base, 32, 0.3), b = fineTune(base, 33, 0.3), c = fineTune(base, 34, 0.3);

/** Stage 1: TIES of a and b over the base, named "mid". */
const stage1 = {
  name: "mid", merge_method: "ties", base_model: "../base",
  models: [{ model: "../a", parameters: { weight: 0.7, density: 0.5 } }, { model: "../b", parameters: { weight: 0.5, density: 0.4 } }],
  parameters: { normalize: true },
};
/** Stage 2 (final): linear of the intermediate and c. */
const stage2 = (mid: string) => ({
  merge_method: "linear", models: [{ model: mid, parameters: { weight: 0.6 } }, { model: "../c", parameters: { weight: 0.4 } }], dtype: "float32", out_dtype: "bfloat16",
});

const docs = (...documents: object[]) => documents.map((d) => toYaml(d)).join("---\n");

async function writeInputs(dir: string): Promise<void> {
  for (const [name, model] of [["base", base], ["a", a], ["b", b], ["c", c]] as const) await writeModel(join(dir, name), model);
}

async function codeOf(p: Promise<unknown>): Promise<{ code: string; message: string; error: WeightsoupError }> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof WeightsoupError, `a typed error, got ${String(e)}`);
    return { code: e.code, message: e.message, error: e };
  }
  assert.fail("expected an error");
}

function assertSameTensors(ours: Map<string, OutputTensor>, theirs: Map<string, OutputTensor>, what: string): void {
  assert.deepEqual([...ours.keys()].sort(), [...theirs.keys()].sort(), `${what}: the same tensors`);
  for (const [name, t] of theirs) {
    const got = ours.get(name)!;
    assert.equal(got.dtype, t.dtype, `${what}: ${name} dtype`);
    assert.deepEqual(got.shape, t.shape, `${what}: ${name} shape`);
    assert.ok(Buffer.from(got.data).equals(Buffer.from(t.data)), `${what}: ${name}: bytes differ`);
  }
}

describe("a two-stage recipe", () => {
  let dir: string;
  let events: MergeEvent[] = [];

  before(async () => {
    dir = join(root, "two-stage");
    await writeInputs(dir);
    // The final document first: the order comes from the references, not the file.
    await mkdir(join(dir, "staged"));
    await writeFile(join(dir, "staged", "recipe.yml"), docs(stage2("mid"), stage1));
    events = [];
    await merge(join(dir, "staged", "recipe.yml"), {
      out: join(dir, "staged", "out"), workers: 2, workerUrl: WORKER_URL,
      onProgress: (e) => events.push(e),
    });
  });

  test("equals running the two stages by hand, byte for byte", async () => {
    const hand = join(dir, "hand");
    await mkdir(hand);
    await writeFile(join(hand, "stage1.yml"), toYaml(stage1));
    await merge(join(hand, "stage1.yml"), { out: join(hand, "mid"), workers: 2, workerUrl: WORKER_URL });
    await writeFile(join(hand, "stage2.yml"), toYaml(stage2("mid")));
    await merge(join(hand, "stage2.yml"), { out: join(hand, "final"), workers: 2, workerUrl: WORKER_URL });

    const staged = await readOutput(join(dir, "staged", "out"));
    const byHand = await readOutput(join(hand, "final"));
    assertSameTensors(staged.tensors, byHand.tensors, "staged vs by hand");
    assert.equal(await readFile(join(dir, "staged", "out", "config.json"), "utf8"), await readFile(join(hand, "final", "config.json"), "utf8"));
    assert.equal(await readFile(join(dir, "staged", "out", "tokenizer.json"), "utf8"), await readFile(join(hand, "final", "tokenizer.json"), "utf8"));
    // The written recipe is the whole multi-document file.
    assert.equal(await readFile(join(dir, "staged", "out", "mergekit_config.yml"), "utf8"), docs(stage2("mid"), stage1));
  });

  test("the model card says what the intermediate is: the recipe's own document, its method and models (found by the stop 38 README audit: 'mid (a local model)')", async () => {
    const card = await readFile(join(dir, "staged", "out", "README.md"), "utf8");
    assert.match(card, /^- mid \(merged by this recipe's document "mid", ties of \.\.\/base, \.\.\/a, \.\.\/b\)$/m);
    assert.match(card, /^- \.\.\/c \(a local model\)$/m);
    assert.doesNotMatch(card, /mid \(a local model\)/);
  });

  test("matches the scalar reference run stage by stage", async () => {
    const inputs = new Map<string, RefModel>([["../base", base], ["../a", a], ["../b", b], ["../c", c]]);
    const mid = referenceMerge(stage1, inputs);
    inputs.set("mid", { config: mid.config, tensors: new Map([...mid.tensors].map(([n, t]) => [n, { dtype: t.dtype, shape: t.shape, ...(t.values ? { values: t.values } : { raw: t.raw! }) }])) });
    const expected = referenceMerge(stage2("mid"), inputs);
    const ours = await readOutput(join(dir, "staged", "out"));
    assert.deepEqual([...ours.tensors.keys()].sort(), [...expected.tensors.keys()].sort());
    for (const [name, ref] of expected.tensors) {
      const { maxUlp, maxAbs, at } = compareTensor(ours.tensors.get(name)!, ref);
      assert.ok(maxUlp <= 1, `${name}: ${maxUlp} ulps apart (abs ${maxAbs}) at ${at}`);
    }
  });

  test("reports each stage, and 'done' once at the end", () => {
    const marks = events.filter((e) => e.type === "stage" || e.type === "stage-done" || e.type === "done");
    assert.deepEqual(marks.map((e) => e.type === "stage" ? `stage ${e.index + 1}/${e.stages} ${e.name} ${e.method}` : e.type === "stage-done" ? `stage-done ${e.index + 1} ${e.name}` : "done"),
      ["stage 1/2 mid ties", "stage-done 1 mid", "stage 2/2 undefined linear", "stage-done 2 undefined", "done"]);
    assert.equal(events.at(-1)!.type, "done");
    assert.equal(events.filter((e) => e.type === "plan").length, 2, "each stage plans");
  });

  test("leaves no intermediate behind", async () => {
    const files = await readdir(join(dir, "staged", "out"));
    assert.ok(!files.some((f) => f.startsWith(".")), `no hidden entries in the output: ${files.join(", ")}`);
    const beside = await readdir(join(dir, "staged"));
    assert.deepEqual(beside.sort(), ["out", "recipe.yml"], "no staging or lock left beside the output");
  });
});

describe("intermediates", () => {
  test("live in the output's staging area while later stages run, and nowhere visible", async () => {
    const dir = join(root, "scratch");
    await writeInputs(dir);
    await mkdir(join(dir, "staged"));
    await writeFile(join(dir, "staged", "recipe.yml"), docs(stage1, stage2("mid")));
    let seen: string[] | undefined;
    let midHeader: string[] | undefined;
    const staging: string[] = [];
    await merge(join(dir, "staged", "recipe.yml"), {
      out: join(dir, "staged", "out"), workers: 1, workerUrl: WORKER_URL,
      onProgress: (e) => {
        // Events are synchronous: look at the disk at the moment stage 2's plan is announced.
        if (e.type === "plan" && e.method === "linear") {
          seen = readdirSync(join(dir, "staged")).sort();
          for (const s of seen.filter((n) => n.includes("weightsoup-partial"))) {
            staging.push(...readdirSync(join(dir, "staged", s)));
            const mid = join(dir, "staged", s, ".stage-1-mid");
            const parsed = readSafetensors(new Uint8Array(readFileSync(join(mid, "model.safetensors"))));
            midHeader = [...parsed.tensors.keys()];
          }
        }
      },
    });
    assert.ok(seen, "stage 2 was observed");
    assert.ok(!seen!.includes("out"), `the output is not visible before the end: ${seen!.join(", ")}`);
    assert.ok(staging.includes(".stage-1-mid"), `the intermediate is in the staging folder: ${staging.join(", ")}`);
    assert.deepEqual(midHeader!.sort(), [...base.tensors.keys()].sort(), "the intermediate is a whole model");
    assert.deepEqual((await readdir(join(dir, "staged"))).sort(), ["out", "recipe.yml"]);
  });

  test("are held in memory for outputs without scratch folders, with the same result", async () => {
    const dir = join(root, "memory");
    await writeInputs(dir);
    await mkdir(join(dir, "staged"));
    const text = docs(stage1, stage2("mid"));
    await writeFile(join(dir, "staged", "recipe.yml"), text);
    const out = new MemoryOutputFolder("memory-out");
    const summary = await mergeWith(text, { out, models: (name) => NodeFolder.open(join(dir, "staged", name)), workers: 2, workerUrl: WORKER_URL });
    assert.deepEqual(summary.stages!.map((s) => [s.name, s.method]), [["mid", "ties"], [undefined, "linear"]]);
    const folder = out.folder();
    const bytes = new Uint8Array(await (folder.source("model.safetensors") as { blob: Blob }).blob.arrayBuffer());
    const memory = new Map([...readSafetensors(bytes).tensors].map(([n, t]) => [n, t as OutputTensor]));
    await merge(join(dir, "staged", "recipe.yml"), { out: join(dir, "staged", "out"), workers: 2, workerUrl: WORKER_URL });
    assertSameTensors(memory, (await readOutput(join(dir, "staged", "out"))).tensors, "in memory vs on disk");
  });
});

describe("multi-stage recipe errors", () => {
  const parse = (...documents: object[]) => codeOf(Promise.resolve().then(() => parseRecipe(docs(...documents), "r.yml")));
  const linear = (name: string | undefined, ...models: string[]) => ({ ...(name ? { name } : {}), merge_method: "linear", models: models.map((m) => ({ model: m, parameters: { weight: 1 } })) });

  test("two documents with one name", async () => {
    const e = await parse(linear("x", "a"), linear("x", "b"), linear(undefined, "x"));
    assert.equal(e.code, "E_STAGE_DUPLICATE");
    assert.match(e.message, /documents 1 and 2 are both named "x"/);
  });

  test("documents that use each other", async () => {
    const e = await parse(linear("p", "q"), linear("q", "p"), linear(undefined, "p"));
    assert.equal(e.code, "E_STAGE_CYCLE");
    assert.match(e.message, /document 1 "p" -> document 2 "q" -> document 1 "p"/);
    const self = await parse(linear("p", "p", "a"), linear(undefined, "p"));
    assert.equal(self.code, "E_STAGE_CYCLE");
    assert.match(self.message, /document 1 "p" -> document 1 "p"/);
  });

  test("not exactly one final document", async () => {
    const two = await parse(linear("m", "a"), linear(undefined, "m"), linear(undefined, "b"));
    assert.equal(two.code, "E_STAGE_FINAL");
    assert.match(two.message, /2 documents are not used by any other \(document 2, document 3\)/);
    const unused = await parse(linear("m", "a"), linear("n", "b"));
    assert.equal(unused.code, "E_STAGE_FINAL");
    assert.doesNotMatch(two.message + unused.message, /meant\?/, "no typo hint where no name is near a document's");
  });

  test("a problem inside a document names it, and so does a key it ignores", async () => {
    const e = await parse({ ...linear("m", "a"), dtype: "float8" }, linear(undefined, "m"));
    assert.equal(e.code, "E_RECIPE");
    assert.match(e.message, /^r\.yml \(document 1, "m"\): dtype: /);
    const ignored = parseRecipe(docs({ ...linear("m", "a"), modles: [] }, linear(undefined, "m")), "r.yml");
    assert.match(ignored.stages![0]!.ignoredKeys.join("\n"), /^r\.yml \(document 1, "m"\): modles: not a recipe key/);
  });

  test("a stray --- at the end is not a document; a name on a one-document recipe is allowed", () => {
    const one = parseRecipe(toYaml(linear("solo", "a")) + "---\n", "r.yml");
    assert.equal(one.stages, undefined);
    assert.equal(one.name, "solo");
  });

  test("a reference that is neither a document nor a model names the document, and nothing is written", async () => {
    const dir = join(root, "unknown");
    await writeInputs(dir);
    await mkdir(join(dir, "staged"));
    await writeFile(join(dir, "staged", "recipe.yml"), docs(stage1, stage2("midd")));
    const e = await codeOf(merge(join(dir, "staged", "recipe.yml"), { out: join(dir, "staged", "out"), workerUrl: WORKER_URL }));
    // midd is a typo; stage 1 ("mid") is then no one's input, which is reported first, naming the likely typo (stop 39 audit).
    assert.equal(e.code, "E_STAGE_FINAL");
    assert.match(e.message, /a document names "midd" \(is "mid" meant\?\), which no document is called$/);
    await writeFile(join(dir, "staged", "recipe.yml"), docs(stage1, { ...stage2("mid"), models: [...stage2("mid").models, { model: "mdi", parameters: { weight: 0.1 } }] }));
    const unknown = await codeOf(merge(join(dir, "staged", "recipe.yml"), { out: join(dir, "staged", "out"), workerUrl: WORKER_URL }));
    assert.equal(unknown.code, "E_STAGE_UNKNOWN");
    assert.match(unknown.message, /\(document 2\): "mdi" is neither the name of a document of this recipe \("mid"\) nor a model that can be found/);
    assert.deepEqual((await readdir(join(dir, "staged"))).sort(), ["recipe.yml"]);
  });

  test("a stage that fails after earlier stages ran leaves nothing behind", async () => {
    const dir = join(root, "late-failure");
    await writeInputs(dir);
    await mkdir(join(dir, "staged"));
    // Stage 2's weights sum to 0 with normalize: found only when stage 2 is planned, after stage 1 is written.
    await writeFile(join(dir, "staged", "recipe.yml"), docs(stage1, { merge_method: "linear", models: [{ model: "mid", parameters: { weight: 1 } }, { model: "../c", parameters: { weight: -1 } }] }));
    const written: string[] = [];
    const e = await codeOf(merge(join(dir, "staged", "recipe.yml"), { out: join(dir, "staged", "out"), workerUrl: WORKER_URL, onProgress: (ev) => { if (ev.type === "stage-done") written.push(String(ev.name)); } }));
    assert.deepEqual(written, ["mid"], "stage 1 was written before stage 2 failed");
    const codes = e.error instanceof ValidationError ? e.error.problems.map((p) => p.code) : [e.code];
    assert.ok(codes.includes("E_PARAMETER_INVALID"), codes.join(", "));
    assert.deepEqual((await readdir(join(dir, "staged"))).sort(), ["recipe.yml"], "no output, staging folder or lock");
  });

  test("evaluation refuses a multi-stage recipe with a typed error", async () => {
    const dir = join(root, "eval");
    await writeInputs(dir);
    await mkdir(join(dir, "staged"));
    await writeFile(join(dir, "staged", "recipe.yml"), docs(stage1, stage2("mid")));
    const e = await codeOf(evaluate([join(dir, "staged", "recipe.yml")], { ids: [1, 2, 3, 4], workerUrl: WORKER_URL }));
    assert.equal(e.code, "E_METHOD_UNSUPPORTED");
    assert.match(e.message, /multi-stage recipe of 2 documents; only a merge runs those .*evaluation.* take one-document recipes/);
  });

  test("plan refuses one too, saying that only a merge runs it", async () => {
    // Found by an audit: the message spoke of evaluation and generation only.
    const dir = join(root, "plan");
    await writeInputs(dir);
    await mkdir(join(dir, "staged"));
    await writeFile(join(dir, "staged", "recipe.yml"), docs(stage1, stage2("mid")));
    const e = await codeOf(plan(join(dir, "staged", "recipe.yml")));
    assert.equal(e.code, "E_METHOD_UNSUPPORTED");
    assert.match(e.message, /only a merge runs those .*planning/);
  });
});

describe("the page", () => {
  test("asks for the models from outside only, checks the documents it can, and keeps the form off", async () => {
    const dir = join(root, "page");
    await writeInputs(dir);
    const text = docs(stage2("mid"), stage1);
    assert.deepEqual(recipeModelNames(text).sort(), ["../a", "../b", "../base", "../c"], "the intermediate is no model to load");
    const picked = await Promise.all(["base", "a", "b", "c"].map(async (name) => ({
      name, folder: undefined as unknown as BlobFolder, files: new Map(), loaded: await openModel(await NodeFolder.open(join(dir, name))),
    })));
    const ok = checkRecipe(text, picked, new Map());
    assert.deepEqual([ok.problems, ok.unmapped, ok.broken], [[], [], []]);
    // Stage 1 reads loaded models only, so it is planned against their headers: a missing weight shows.
    const broken = docs(stage2("mid"), { ...stage1, models: [{ model: "../a", parameters: { density: 0.5 } }, stage1.models[1]!] });
    assert.deepEqual(checkRecipe(broken, picked, new Map()).problems.map((p) => p.code), ["E_PARAMETER_MISSING"]);
    assert.equal(readForm(text, ["base", "a", "b", "c"], () => undefined).readOnly, "several YAML documents (a multi-stage recipe)");
  });
});

describe("the command line", () => {
  test("prints a line per stage and lists the stages in its summary", async () => {
    const dir = join(root, "cli");
    await writeInputs(dir);
    await mkdir(join(dir, "staged"));
    await writeFile(join(dir, "staged", "recipe.yml"), docs(stage1, stage2("mid")));
    const r = spawnSync(process.execPath, [CLI, "merge", join(dir, "staged", "recipe.yml"), join(dir, "staged", "out"), "--workers", "1"], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /^stage 1\/2 "mid": ties\n(.*\n)*stage 2\/2: linear\n/m);
    assert.match(r.stdout, /stages: mid \(ties, \d+ tensors, [^)]+\), final \(linear, \d+ tensors, [^)]+\)/);
  });
});
