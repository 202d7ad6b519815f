// The static page (dist/site) end to end in headless Chromium: models picked as folders, recipes built
// in the form or pasted as mergekit YAML, merges written to the origin-private file system and compared
// byte for byte with the Node CLI's output for the same recipe; cancelling, unreadable checkpoints, the
// page's network footprint, loose files and incompatible models, and the embedding example with the
// plain library API. Issue 9: the Evaluate panel scores the merge of the example models and its
// parents and continues a prompt with them, and shows the CLI's numbers and greedy tokens.
//
// Needs a system Chromium (CHROMIUM_PATH, default /usr/bin/chromium; never downloaded) and the built
// site (`npm run build`). Screenshots of the main states go to .build/test-artifacts/browser/.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { access, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { BrowserContext, Locator, Page } from "playwright-core";
import { parse } from "yaml";
import {
  addFolders, assertSameWeights, byTestId, checkPrerequisites, closeBrowserSuite, compareOutputs, foreignRequests, host, opfsBytes, opfsDigests,
  opfsText, opfsTree, inPage, overflowingElements, pageDiagnostics, liveAnnouncements, recordLiveRegions, recipeYaml, runCli, runCliJson, screenshot, setField, setRecipeYaml,
  sha256Hex, shownEvalRows, SITE_DIR, splitSafetensors, startBrowserEnv, stateOf, textOf, waitForAttribute, waitForModels,
  waitForRunBlocked, waitForRunEnabled, waitForState, focusedTestId, WAIT_MS, type BrowserEnv, type PageOptions,
} from "./helpers/browser";
import { DEFAULT_TEXT } from "../src/eval/default-text";
import { EXAMPLE_SHAPE, EXAMPLE_SKILLS, writeLlamaModel } from "../src/example/models";
import exampleRecipe from "../src/example/recipe.yml";
import { METHODS, type ParameterSpec } from "../src/merge/methods";
import { baseModel, CLI, fineTune, tempDir, TINY, writeModel, type Shape } from "./helpers/fixtures";
import type { RefModel } from "./reference/merge";

/** A little larger than TINY, so outputs hold a few hundred KB. */
const SMALL: Shape = { vocab: 96, hidden: 32, intermediate: 64, layers: 2, heads: 4, kvHeads: 2 };
/** Large enough that a merge in the page runs for a few seconds (the cancel test checks it does). */
const LARGE: Shape = { vocab: 8192, hidden: 512, intermediate: 1376, layers: 8, heads: 8, kvHeads: 4 };
const TEST_TIMEOUT = 5 * WAIT_MS;

let env: BrowserEnv;
let root: string;
let f32Base: RefModel;
/** SMALL with another hidden size: every tensor differs in shape from SMALL's. */
const WIDE: Shape = { ...SMALL, hidden: 48 };
let wideBase: RefModel;
const dirs = {
  f32: "", bf16: "", large: "", broken: "", loose: "", tmp: "", cli: "", wide: "", unusable: "", nomodel: "", example: "", noeval: "", nonfinite: "",
};

before(async () => {
  await checkPrerequisites();
  root = await tempDir("ws-browser-");
  for (const k of Object.keys(dirs) as (keyof typeof dirs)[]) {
    dirs[k] = join(root, k);
    await mkdir(dirs[k], { recursive: true });
  }
  f32Base = baseModel(101, "F32", SMALL);
  await writeModel(join(dirs.f32, "base"), f32Base);
  await writeModel(join(dirs.f32, "math"), fineTune(f32Base, 102, 0.2));
  await writeModel(join(dirs.f32, "code"), fineTune(f32Base, 103, 0.2, { quantum: 1 / 64 }));

  // A fine-tune with +inf at one element in 50 of every tensor: dare_ties writes each of its tensors NaN, with a warning.
  const infinite = fineTune(f32Base, 104, 0.2);
  for (const t of infinite.tensors.values()) t.values?.forEach((_, i, values) => { if (i % 50 === 7) values[i] = Infinity; });
  await writeModel(join(dirs.nonfinite, "base"), f32Base);
  await writeModel(join(dirs.nonfinite, "infinite"), infinite);

  const bf16Base = baseModel(201, "BF16", SMALL);
  await writeModel(join(dirs.bf16, "base"), bf16Base);
  await writeModel(join(dirs.bf16, "math"), fineTune(bf16Base, 202, 0.2, { dtype: "BF16" }));

  const large = baseModel(301, "F32", LARGE);
  await writeModel(join(dirs.large, "base"), large);
  await writeModel(join(dirs.large, "math"), fineTune(large, 302, 0.1));
  await writeModel(join(dirs.large, "code"), fineTune(large, 303, 0.1));

  // Unreadable checkpoints: one cut off in the middle of its tensor data, one whose header length
  // points past the end of the file.
  const truncated = join(dirs.broken, "truncated");
  await writeModel(truncated, baseModel(401, "F32", SMALL));
  const whole = await readFile(join(truncated, "model.safetensors"));
  await writeFile(join(truncated, "model.safetensors"), whole.subarray(0, Math.floor(whole.length * 0.6)));
  const badHeader = join(dirs.broken, "bad-header");
  await writeModel(badHeader, baseModel(402, "F32", SMALL));
  const head = Buffer.alloc(8 + 2);
  head.writeBigUInt64LE(1_000_000n, 0);
  head.write("{}", 8);
  await writeFile(join(badHeader, "model.safetensors"), head);

  // Loose files: two of one shape and one of another.
  await writeFile(join(dirs.loose, "alpha.safetensors"), await readFile(join(dirs.f32, "base", "model.safetensors")));
  await writeFile(join(dirs.loose, "beta.safetensors"), await readFile(join(dirs.f32, "math", "model.safetensors")));
  await writeModel(join(dirs.tmp, "odd"), baseModel(501, "F32", TINY));
  await writeFile(join(dirs.loose, "odd.safetensors"), await readFile(join(dirs.tmp, "odd", "model.safetensors")));

  wideBase = baseModel(601, "F32", WIDE);
  await writeModel(join(dirs.wide, "wide"), wideBase);

  // Folders that are not usable checkpoints: PyTorch weights only, a git-lfs pointer and an HTML page
  // saved under a .safetensors name (what a failed `git clone` or a browser "save as" leaves).
  await mkdir(join(dirs.unusable, "pt-only"));
  await writeFile(join(dirs.unusable, "pt-only", "pytorch_model.bin"), Buffer.alloc(4096, 7));
  await writeFile(join(dirs.unusable, "pt-only", "config.json"), JSON.stringify(f32Base.config));
  await mkdir(join(dirs.unusable, "lfs"));
  await writeFile(join(dirs.unusable, "lfs", "model.safetensors"),
    "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 1234567\n");
  await mkdir(join(dirs.unusable, "html"));
  await writeFile(join(dirs.unusable, "html", "model.safetensors"), "<!DOCTYPE html>\n<html><head><title>model.safetensors</title></head><body>Sign in</body></html>\n");
  // A folder without any model in it.
  await mkdir(join(dirs.nomodel, "notes"));
  await writeFile(join(dirs.nomodel, "notes", "README.md"), "# just notes\n");

  // The example models of `weightsoup example` (6 layers, hidden 384, vocab 4096, a byte-level BPE
  // tokenizer), written by the same function the CLI uses; the models the Evaluate panel runs.
  await writeLlamaModel(join(dirs.example, "base"), EXAMPLE_SHAPE);
  for (const skill of EXAMPLE_SKILLS) await writeLlamaModel(join(dirs.example, skill.name), EXAMPLE_SHAPE, skill);
  // Models that cannot be evaluated: one without a tokenizer, one of an architecture with no forward pass.
  await writeModel(join(dirs.noeval, "notok"), f32Base);
  await rm(join(dirs.noeval, "notok", "tokenizer.json"));
  await writeModel(join(dirs.noeval, "mamba"), { ...f32Base, config: { ...f32Base.config, model_type: "mamba", architectures: ["MambaForCausalLM"] } });

  env = await startBrowserEnv();
});

after(() => closeBrowserSuite(env, root));

const withPage = (name: string, path: string, body: (page: Page, context: BrowserContext) => Promise<void>, options: PageOptions = {}) => inPage(env, name, path, body, options);

/** Sets the output (name, OPFS), clicks run, waits for data-state=done and checks the result list. */
async function runToDone(page: Page, outputName: string, shot?: string): Promise<void> {
  await setField(page, `input[data-testid="output-name"]`, outputName);
  await byTestId(page, "save-target", "select").selectOption("opfs");
  await waitForRunEnabled(page);
  await byTestId(page, "run", "button").click();
  await waitForState(page, "done");
  if (shot) await screenshot(page, shot);
  // The result lists every file with a download link.
  const result = byTestId(page, "result");
  await result.first().waitFor({ state: "visible" });
  const files = Object.keys(await opfsDigests(page, outputName));
  const listed = (await result.first().textContent()) ?? "";
  for (const f of files) assert.ok(listed.includes(f), `the result does not list ${f}: ${listed}`);
  assert.ok((await result.locator(`a[data-testid="download"]`).count()) >= files.length, "a download link per file");
  // And the ledger: every input tensor merged, copied or refused.
  const ledger = (await byTestId(page, "ledger").locator("summary").textContent()) ?? "";
  const m = /Ledger: (\d+) input tensors — (\d+) merged, (\d+) copied, (\d+) refused/.exec(ledger);
  assert.ok(m && Number(m[1]) > 0 && Number(m[1]) === Number(m[2]) + Number(m[3]) + Number(m[4]), `the result shows the ledger's counts: ${ledger}`);
}

/** The page's seed field (0 when the page leaves it empty). */
async function seedOf(page: Page): Promise<number> {
  const v = await byTestId(page, "seed", "input").inputValue();
  return v === "" ? 0 : Number(v);
}

/** Runs the CLI on `recipe` (written next to the model folders in `modelsDir`) into cli/<case>/<outputName>. */
async function cliMerge(modelsDir: string, caseName: string, recipe: string, outputName: string, seed: number): Promise<string> {
  const recipePath = join(modelsDir, `recipe-${caseName}.yml`);
  await writeFile(recipePath, recipe);
  const out = join(dirs.cli, caseName, outputName);
  await mkdir(join(dirs.cli, caseName), { recursive: true });
  await runCli(recipePath, out, seed);
  return out;
}

type RecipeDoc = { merge_method?: string; base_model?: string; models?: { model: string; parameters?: Record<string, unknown> }[]; parameters?: Record<string, unknown>; dtype?: string };
const lastSegment = (name: string) => name.split("/").filter(Boolean).pop();
/** Text of the visible elements with this data-testid ("" when none shows). */
const visibleText = async (page: Page, id: string) => (await page.locator(`[data-testid="${id}"]:visible`).allTextContents()).join(" | ").trim();
const entryFor = (doc: RecipeDoc, name: string) => doc.models?.find((m) => lastSegment(m.model) === name);

test("TIES built in the form matches the CLI byte for byte", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("ties", "index.html", async (page) => {
    assert.equal(await stateOf(page), "idle", "a fresh page is idle");
    // A folder of model folders: each one becomes a model named after its folder.
    await addFolders(page, [dirs.f32], ["base", "math", "code"]);
    assert.equal(await page.locator(`[data-testid="model"]`).count(), 3, "three models, no more");
    const card = page.locator(`[data-testid="model"][data-model-name="math"]`);
    const cardText = (await card.textContent()) ?? "";
    assert.match(cardText, /F32|float32/i, `a model shows its dtype: ${cardText}`);
    assert.match(cardText, new RegExp(`(?<!\\d)${f32Base.tensors.size}(?!\\d)`), `a model shows its tensor count (${f32Base.tensors.size}): ${cardText}`);
    assert.equal(await byTestId(page, "model-error").count(), 0, `no model errors: ${await pageDiagnostics(page)}`);
    await screenshot(page, "models-loaded");

    await byTestId(page, "method", "select").selectOption("ties");
    await byTestId(page, "base-model", "select").selectOption("base");
    for (const [name, weight, density] of [["math", "1", "0.5"], ["code", "0.7", "0.3"]] as const) {
      const row = page.locator(`[data-testid="model-params"][data-model-name="${name}"]`);
      await row.locator(`input[name="weight"]`).fill(weight);
      await row.locator(`input[name="weight"]`).blur();
      await row.locator(`input[name="density"]`).fill(density);
      await row.locator(`input[name="density"]`).blur();
    }
    const normalize = byTestId(page, "param-normalize", "input");
    if (!(await normalize.isChecked())) await normalize.check();
    await byTestId(page, "dtype", "select").selectOption("bfloat16");

    const yaml = await recipeYaml(page);
    const doc = parse(yaml) as RecipeDoc;
    assert.equal(doc.merge_method, "ties", yaml);
    assert.equal(lastSegment(doc.base_model ?? ""), "base", yaml);
    assert.deepEqual(entryFor(doc, "math")?.parameters, { weight: 1, density: 0.5 }, yaml);
    assert.deepEqual(entryFor(doc, "code")?.parameters, { weight: 0.7, density: 0.3 }, yaml);
    assert.equal(doc.parameters?.normalize, true, yaml);
    assert.equal(doc.dtype, "bfloat16", yaml);
    assert.equal(await visibleText(page, "recipe-error"), "", "no recipe error");

    await runToDone(page, "ties-soup", "done");
    const cli = await cliMerge(dirs.f32, "ties", yaml, "ties-soup", await seedOf(page));
    await compareOutputs(page, "ties-soup", cli);
  });
});

test("SLERP built in the form matches the CLI; YAML edits update the form", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("slerp", "index.html", async (page) => {
    await addFolders(page, [join(dirs.bf16, "base"), join(dirs.bf16, "math")], ["base", "math"]);
    await byTestId(page, "method", "select").selectOption("slerp");
    await byTestId(page, "base-model", "select").selectOption("base");
    await setField(page, `input[data-testid="param-t"]`, "0.3");
    const yaml = await recipeYaml(page);
    const doc = parse(yaml) as RecipeDoc;
    assert.equal(doc.merge_method, "slerp", yaml);
    assert.equal(lastSegment(doc.base_model ?? ""), "base", yaml);
    assert.equal(doc.parameters?.t, 0.3, yaml);
    assert.ok(entryFor(doc, "math"), `the recipe names math: ${yaml}`);

    await runToDone(page, "slerp-soup");
    const cli = await cliMerge(dirs.bf16, "slerp", yaml, "slerp-soup", await seedOf(page));
    await compareOutputs(page, "slerp-soup", cli);

    // Typing YAML updates the form; a gradient for t merges like the CLI too.
    assert.match(yaml, /\bt: 0\.3\b/, "the form wrote t: 0.3 as a plain scalar");
    await setRecipeYaml(page, yaml.replace(/\bt: 0\.3\b/, "t: 0.6"));
    assert.equal(await byTestId(page, "param-t", "input").inputValue(), "0.6", "param-t follows the YAML");
    const gradient = yaml.replace(/\bt: 0\.3\b/, "t: [0, 0.5, 1]");
    await setRecipeYaml(page, gradient);
    assert.equal(await visibleText(page, "recipe-error"), "", "a gradient is a valid t");
    await runToDone(page, "slerp-gradient");
    const cli2 = await cliMerge(dirs.bf16, "slerp-gradient", await recipeYaml(page), "slerp-gradient", await seedOf(page));
    await compareOutputs(page, "slerp-gradient", cli2);
  });
});

const PASTED = `# DARE-TIES soup, as published on a model card
merge_method: dare_ties
base_model: someorg/base
models:
  - model: someorg/math
    parameters:
      weight: 0.6
      density: 0.5
  - model: other-name
    parameters:
      weight: 0.4
      density: 0.7
parameters:
  normalize: true
  lambda: 0.9
dtype: float32
`;

test("a pasted mergekit recipe: names mapped automatically or by asking, output matches the CLI", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("pasted", "index.html", async (page) => {
    await addFolders(page, ["base", "math", "code"].map((m) => join(dirs.f32, m)), ["base", "math", "code"]);
    await setRecipeYaml(page, PASTED);
    assert.equal(await byTestId(page, "method", "select").inputValue(), "dare_ties", "the form follows the pasted YAML");
    assert.equal(Number(await byTestId(page, "param-lambda", "input").inputValue()), 0.9, "param-lambda follows the pasted YAML");
    assert.ok(await byTestId(page, "param-normalize", "input").isChecked(), "param-normalize follows the pasted YAML");

    // someorg/base and someorg/math map by their last segment; other-name needs a choice.
    const maps = byTestId(page, "model-map", "select");
    await maps.first().waitFor({ state: "visible" });
    const asked = await maps.evaluateAll((els) => els.map((el) => el.getAttribute("data-recipe-name")));
    assert.deepEqual(asked, ["other-name"], "only the name without a match is asked for");
    const options = await maps.first().locator("option").evaluateAll((els) => els.map((el) => (el as HTMLOptionElement).value).filter(Boolean));
    for (const m of ["base", "math", "code"]) assert.ok(options.includes(m), `map options ${JSON.stringify(options)} include ${m}`);
    const run = byTestId(page, "run", "button");
    assert.ok(await run.isDisabled(), "run is disabled until every name is mapped");
    await screenshot(page, "recipe-mapping");
    await maps.first().selectOption("code");
    await page.waitForFunction(() => {
      const b = document.querySelector("weightsoup-merge")?.shadowRoot?.querySelector<HTMLButtonElement>(`button[data-testid="run"]`);
      return b !== null && b !== undefined && !b.disabled;
    }, undefined, { timeout: WAIT_MS }).catch(async () => { throw new Error(`run stayed disabled after mapping: ${await pageDiagnostics(page)}`); });

    await setField(page, `input[data-testid="seed"]`, "7");
    await runToDone(page, "pasted-soup");
    const renamed = PASTED.replace("someorg/base", "base").replace("someorg/math", "math").replace("other-name", "code");
    const cli = await cliMerge(dirs.f32, "pasted", renamed, "pasted-soup", 7);
    // The recipe text differs (names), so do README.md, mergekit_config.yml and the recipe_sha256 in the
    // weights' metadata; every tensor byte must not.
    await compareOutputs(page, "pasted-soup", cli, { skip: ["README.md", "mergekit_config.yml", "model.safetensors"] });
    const weights = await opfsBytes(page, "pasted-soup/model.safetensors");
    assertSameWeights(weights, new Uint8Array(await readFile(join(cli, "model.safetensors"))), ["recipe_sha256"], "model.safetensors");
    const metadata = splitSafetensors(weights).header.__metadata__ as Record<string, string>;
    assert.equal(metadata.recipe_sha256, sha256Hex(PASTED), "recipe_sha256 is the pasted text's");
    assert.equal(await opfsText(page, "pasted-soup/mergekit_config.yml"), PASTED, "mergekit_config.yml is the pasted recipe");
    const readme = await opfsText(page, "pasted-soup/README.md");
    assert.ok(readme.includes(PASTED.trim()), `the model card quotes the pasted recipe:\n${readme}`);
    assert.match(readme, /DARE TIES/);
  });
});

const STAGED = `name: mid
merge_method: ties
base_model: base
models:
  - model: math
    parameters: {weight: 0.7, density: 0.5}
  - model: code
    parameters: {weight: 0.5, density: 0.5}
---
# the final output: the intermediate "mid" mixed back with the base
merge_method: linear
models:
  - model: mid
    parameters: {weight: 0.5}
  - model: base
    parameters: {weight: 0.5}
`;

test("issue 10: a pasted multi-stage recipe runs as the CLI runs it, leaving no intermediate behind", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("stages", "index.html", async (page) => {
    await addFolders(page, ["base", "math", "code"].map((m) => join(dirs.f32, m)), ["base", "math", "code"]);
    await setRecipeYaml(page, STAGED);
    const cannot = byTestId(page, "form-cannot-show");
    await cannot.waitFor({ state: "visible" });
    assert.match((await cannot.textContent()) ?? "", /several YAML documents \(a multi-stage recipe\)/);
    assert.equal(await byTestId(page, "model-map", "select").count(), 0, "the intermediate is not asked for");
    await runToDone(page, "stages-soup");
    const cli = await cliMerge(dirs.f32, "stages", STAGED, "stages-soup", 0);
    await compareOutputs(page, "stages-soup", cli, { skip: ["README.md"] });
    const left = Object.keys(await opfsTree(page)).filter((p) => p.includes(".stage-") || p.includes(".weightsoup-partial-"));
    assert.deepEqual(left, [], "no intermediate or staging folder is left in the browser's storage");
  });
});

test("cancelling a running merge leaves no output and no staging folder", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("cancel", "index.html", async (page) => {
    await addFolders(page, [dirs.large], ["base", "math", "code"]);
    await setRecipeYaml(page, "merge_method: ties\nbase_model: base\nmodels:\n  - model: math\n    parameters: {weight: 1, density: 0.5}\n  - model: code\n    parameters: {weight: 0.7, density: 0.3}\nparameters:\n  normalize: true\n");
    await setField(page, `input[data-testid="output-name"]`, "cancelled-soup");
    await byTestId(page, "save-target", "select").selectOption("opfs");
    const started = Date.now();
    await byTestId(page, "run", "button").click();
    try {
      await page.waitForFunction(() => {
        const el = document.querySelector("weightsoup-merge");
        const progress = el?.shadowRoot?.querySelector<HTMLProgressElement>(`progress[data-testid="progress"]`);
        return el?.getAttribute("data-state") !== "running" || (progress !== null && progress !== undefined && progress.value > 0);
      }, undefined, { timeout: WAIT_MS, polling: 20 });
    } catch {
      throw new Error(`no progress within ${WAIT_MS} ms: ${await pageDiagnostics(page)}`);
    }
    assert.equal(await stateOf(page), "running", `the merge was still running when progress showed (fixture too small if done: ${await pageDiagnostics(page)})`);
    await screenshot(page, "merging");
    const midway = await opfsTree(page);
    await byTestId(page, "cancel", "button").click();
    const cancelledAfter = Date.now() - started;
    await waitForState(page, "cancelled");
    assert.ok(Object.keys(midway).some((p) => p.includes(".weightsoup-partial-")), `a staging folder existed while running: ${JSON.stringify(midway)}`);

    const leftovers = (tree: Record<string, number>) => Object.keys(tree).filter((p) => p.includes(".weightsoup-partial-") || (p.startsWith("cancelled-soup/") && p.endsWith(".safetensors")));
    let tree = await opfsTree(page);
    const deadline = Date.now() + 5000;
    const firstLook = leftovers(tree);
    while (leftovers(tree).length && Date.now() < deadline) {
      await page.waitForTimeout(100);
      tree = await opfsTree(page);
    }
    assert.deepEqual(leftovers(tree), [], `OPFS after cancel (cancel clicked ${cancelledAfter} ms after run): ${JSON.stringify(tree)}`);
    assert.deepEqual(firstLook, [], `cleanup finished only after data-state=cancelled; at that moment OPFS held ${JSON.stringify(firstLook)}`);
    assert.ok(!Object.keys(tree).includes("cancelled-soup/"), `the page created cancelled-soup and should remove it: ${JSON.stringify(tree)}`);
    assert.notEqual(await textOf(page, `[data-testid="status"]`), "", "the status says what happened");
  });
});

test("an unreadable checkpoint shows an error naming the file", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("corrupt", "index.html", async (page) => {
    await addFolders(page, [join(dirs.broken, "truncated"), join(dirs.broken, "bad-header")], ["truncated", "bad-header"]);
    for (const name of ["truncated", "bad-header"]) {
      const error = page.locator(`[data-testid="model"][data-model-name="${name}"] [data-testid="model-error"]`);
      await error.first().waitFor({ state: "visible" }).catch(async () => {
        throw new Error(`no model-error inside the "${name}" entry: ${await pageDiagnostics(page)}`);
      });
      const text = ((await error.first().textContent()) ?? "").trim();
      assert.match(text, /model\.safetensors/, `${name}: the error names the file: ${text}`);
      assert.ok(text.replace(/\S*model\.safetensors\S*/g, "").trim().length > 10, `${name}: the error says what is wrong: ${text}`);
      // Its code beside it, the one the CLI prints for the same folder (found by the stop 38 page audit: none shown).
      const cli = spawnSync(process.execPath, [CLI, "inspect", join(dirs.broken, name)], { encoding: "utf8" });
      const code = /^weightsoup: \[(E_[A-Z_]+)\]/.exec(cli.stderr)?.[1];
      assert.ok(code, cli.stderr);
      assert.equal((await page.locator(`[data-testid="model"][data-model-name="${name}"] [data-testid="model-error-code"]`).textContent())?.trim(), code);
    }
    await screenshot(page, "error");
  });
});

test("loose .safetensors files become models named by their stems; a misfit gets a warning", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("loose", "index.html", async (page) => {
    await byTestId(page, "add-files", "input").setInputFiles([join(dirs.loose, "alpha.safetensors"), join(dirs.loose, "beta.safetensors")]);
    await waitForModels(page, ["alpha", "beta"]);
    assert.equal(await visibleText(page, "model-error"), "", "both files are readable");
    assert.equal(await visibleText(page, "model-warning"), "", "two models of one shape are compatible");
    await byTestId(page, "add-files", "input").setInputFiles(join(dirs.loose, "odd.safetensors"));
    await waitForModels(page, ["odd"]);
    await page.locator(`[data-testid="model-warning"]:visible`).first().waitFor().catch(async () => {
      throw new Error(`no model-warning for a model of another shape: ${await pageDiagnostics(page)}`);
    });
  });
});

// ------------------------------------------------------------------------------------------------
// Issue 8, the page's items. Each test names the items it covers.

/** The three SMALL F32 models (base, math, code) from one folder pick. */
const addThree = (page: Page) => addFolders(page, [dirs.f32], ["base", "math", "code"]);
const removeModel = (page: Page, name: string) => page.locator(`button[aria-label="Remove ${name}"]`).click();
/** Text of the recipe box once it stops changing (the form writes it, the page checks it). */
const settledRecipe = async (page: Page) => {
  let last = await recipeYaml(page);
  for (let i = 0; i < 20; i++) {
    await page.waitForTimeout(50);
    const now = await recipeYaml(page);
    if (now === last) return now;
    last = now;
  }
  return last;
};

const SLICED = `# Frankenmerge with a gradient, as on a model card
merge_method: slerp
base_model: base
slices:
  - sources:
      - model: base
        layer_range: [0, 2]
      - model: math
        layer_range: [0, 2]
parameters:
  t:
    - filter: self_attn
      value: [0, 0.5]
    - value: 0.5 # everything else
dtype: float32
`;

test("item 7: a pasted recipe never changes unless edited; the form edits it in place, keeping comments", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("recipe-text", "index.html", async (page) => {
    await addThree(page);
    await setRecipeYaml(page, SLICED);
    await waitForRunEnabled(page);
    // Removing a model the recipe does not use changes nothing.
    await removeModel(page, "code");
    await waitForModels(page, ["base", "math"]);
    assert.equal(await settledRecipe(page), SLICED, "removing an unused model left the pasted recipe as it was");
    await waitForRunEnabled(page);
    // Removing one it uses makes it invalid, shown, and still the same text.
    await removeModel(page, "math");
    await waitForRunBlocked(page, /math/);
    assert.equal(await settledRecipe(page), SLICED, "removing a used model left the pasted recipe as it was");
    // Adding it back makes it valid again, still untouched.
    await addFolders(page, [join(dirs.f32, "math")], ["math"]);
    await waitForRunEnabled(page);
    assert.equal(await recipeYaml(page), SLICED, "adding a model does not rewrite a pasted recipe");

    // Form edits change only what they edit: comments, other keys and recipe names stay.
    await addFolders(page, [join(dirs.f32, "code")], ["code"]);
    await setRecipeYaml(page, PASTED);
    await byTestId(page, "model-map", "select").first().selectOption("code");
    await waitForRunEnabled(page);
    await setField(page, `input[data-testid="param-lambda"]`, "0.8");
    assert.equal(await settledRecipe(page), PASTED.replace("lambda: 0.9", "lambda: 0.8"), "the lambda field changed only lambda");
    const math = page.locator(`[data-testid="model-params"][data-model-name="math"] input[name="weight"]`);
    await math.fill("0.65");
    await math.blur();
    assert.equal(await settledRecipe(page), PASTED.replace("lambda: 0.9", "lambda: 0.8").replace("weight: 0.6", "weight: 0.65"),
      "math's weight field edited someorg/math's entry in place");
    await waitForRunEnabled(page);
  });
});

test("items 8 and 30: method switches start from the method's defaults; keyboard use keeps focus", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("form-keys", "index.html", async (page) => {
    await addThree(page);
    const method = byTestId(page, "method", "select");
    const normalize = byTestId(page, "param-normalize", "input");
    // mergekit's defaults: normalize is true for linear and TIES, false for task arithmetic and the DAREs.
    const defaults: [string, boolean][] = [["linear", true], ["task_arithmetic", false], ["ties", true], ["dare_linear", false], ["dare_ties", false], ["linear", true]];
    for (const [name, expected] of defaults) {
      await method.selectOption(name);
      assert.equal(await normalize.isChecked(), expected, `${name}: the normalize box shows the method's default`);
      const doc = parse(await settledRecipe(page)) as RecipeDoc;
      assert.equal(doc.merge_method, name);
      assert.ok(doc.parameters?.normalize === undefined || doc.parameters.normalize === expected, `${name}: the recipe's normalize is the default: ${JSON.stringify(doc.parameters)}`);
    }
    // Typing a method's name into the focused select picks it, focus stays.
    await method.focus();
    await page.keyboard.type("ti");
    await page.waitForTimeout(100);
    assert.equal(await method.inputValue(), "ties", "typing \"ti\" selects TIES");
    assert.equal(await focusedTestId(page), "method", "focus stays on Method");
    await page.keyboard.press("ArrowDown");
    await page.waitForTimeout(100);
    assert.equal(await method.inputValue(), "dare_ties", "ArrowDown selects the next method");
    assert.equal(await focusedTestId(page), "method", "focus stays on Method after ArrowDown");
    const base = byTestId(page, "base-model", "select");
    await base.focus();
    const before = await base.inputValue();
    await page.keyboard.press("ArrowDown");
    await page.waitForTimeout(100);
    assert.notEqual(await base.inputValue(), before, "ArrowDown changed the base model");
    assert.equal(await focusedTestId(page), "base-model", "focus stays on Base model");
    assert.equal(lastSegment((parse(await settledRecipe(page)) as RecipeDoc).base_model ?? ""), await base.inputValue(), "the recipe follows the base choice");
  });
});

test("items 28 and 29: problems show while editing, Merge says why it is disabled, many problems are grouped", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("live-check", "index.html", async (page) => {
    await addThree(page);
    const cases: [string, RegExp][] = [
      ["merge_method: frankenstein\nmodels:\n  - model: base\n  - model: math\n", /frankenstein/],
      ["merge_method: linear\nmodels:\n  - model: base\n  - model: math\n", /weight/],
      ["merge_method: passthrough\nslices:\n  - sources:\n      - model: base\n        layer_range: [0, 5]\n", /layer_range|\blayers?\b/],
      ["merge_method: slerp\nbase_model: base\nmodels:\n  - model: base\n  - model: math\n  - model: code\nparameters:\n  t: 0.5\n", /slerp.*\b(two|2)\b|\b(two|2)\b.*slerp/i],
      ["merge_method: passthrough\nmodels:\n  - model: base\n  - model: math\n", /passthrough.*\b(one|1)\b|\b(one|1)\b.*passthrough/i],
    ];
    for (const [recipe, why] of cases) {
      await setRecipeYaml(page, recipe);
      await waitForRunBlocked(page, why);
      assert.notEqual(await visibleText(page, "recipe-error"), "", `the recipe section shows the problem of:\n${recipe}`);
    }
    // A parameter the method does not have is ignored, as mergekit ignores it: a warning under the YAML, Merge enabled.
    await setRecipeYaml(page, "merge_method: ties\nbase_model: base\nmodels:\n  - model: base\n  - model: math\n    parameters:\n      weight: 1\n      desnity: 0.5\n");
    await waitForRunEnabled(page);
    assert.match(await visibleText(page, "recipe-warning"), /models\[1\]\.parameters\.desnity: ties has no parameter "desnity".*ignored/);
    assert.equal(await visibleText(page, "recipe-error"), "", "a warning, not a problem");
    await setRecipeYaml(page, "merge_method: linear\nmodels:\n  - model: base\n    parameters: {weight: 1}\n  - model: math\n    parameters: {weight: 1}\n");
    await waitForRunEnabled(page);
    assert.equal(await visibleText(page, "run-blocked"), "", "no reason is shown once Merge is enabled");
    assert.equal(await visibleText(page, "recipe-warning"), "", "the warning goes with the key");
    assert.equal(await visibleText(page, "recipe-error"), "", "the fixed recipe shows no problem");

    // A model of another width: every tensor's shape differs. Each non-embedding tensor is one problem
    // (embedding matrices are merged over their common block, as mergekit does), shown grouped.
    await addFolders(page, [join(dirs.wide, "wide")], ["wide"]);
    const differing = [...f32Base.tensors].filter(([name, t]) => !/embed_tokens|lm_head/.test(name) && wideBase.tensors.get(name)!.shape.join() !== t.shape.join()).length;
    assert.ok(differing > 10, `fixture: ${differing} tensors differ`);
    await setRecipeYaml(page, "merge_method: ties\nbase_model: base\nmodels:\n  - model: base\n  - model: wide\n    parameters: {weight: 1, density: 0.5}\n");
    await waitForRunBlocked(page, /shape/i);
    const group = page.locator(`[data-testid="recipe-error"] [data-testid="problem-group"][data-code="E_SHAPE_MISMATCH"]`);
    await group.first().waitFor({ state: "visible" });
    assert.equal(await group.locator(`[data-testid="problem-code"]`).textContent(), "E_SHAPE_MISMATCH", "the group shows its error code, as the CLI prints it");
    const ofWide = group.locator(`[data-testid="problem-model"][data-model="wide"]`);
    assert.match((await ofWide.locator(`[data-testid="problem-count"]`).first().textContent()) ?? "", new RegExp(`\\b${differing}\\b`), "the group counts every problem");
    const shown = await ofWide.locator(`[data-testid="problem"]:visible`).count();
    assert.ok(shown >= 1 && shown <= 5, `the first few problems are shown, not all ${differing}: ${shown}`);
    const lines = ((await page.locator(`[data-testid="recipe-error"]`).first().innerText()) ?? "").split("\n").filter((l) => l.trim()).length;
    assert.ok(lines <= 12, `the problems take a few lines, not one per tensor: ${lines}`);
    await ofWide.locator(`[data-testid="problem-more"]`).click();
    assert.equal(await ofWide.locator(`[data-testid="problem"]:visible`).count(), differing, "expanding shows all of them");
  });
});

// ------------------------------------------------------------------------------------------------
// Issue 10: the form offers every method with all its parameters (derived from METHODS, so methods
// added to the table show up here as they land).

/** The control kind a parameter type calls for, written out independently of the page's code. */
const controlKind = (p: ParameterSpec) => (p.type === "boolean" ? "checkbox" : p.type === "string" && p.values?.length ? "select" : "text");
/** "checkbox", "select" or "text": what a control is. */
const kindOf = (control: Locator) => control.evaluate((el) => (el.tagName === "SELECT" ? "select" : (el as HTMLInputElement).type || "text"));

/** A method's parameters without the ones it accepts and ignores. */
const taken = (params: Readonly<Record<string, ParameterSpec>>): Record<string, ParameterSpec> =>
  Object.fromEntries(Object.entries(params).filter(([, p]) => !p.ignored));

test("issue 10: the form offers every method with all its parameters and defaults; one field of each kind edits the recipe", { timeout: 3 * TEST_TIMEOUT }, async () => {
  await withPage("every-method", "index.html", async (page) => {
    await addThree(page);
    const method = byTestId(page, "method", "select");
    const offered = await method.locator("option:not([hidden])").evaluateAll((els) => els.map((el) => (el as HTMLOptionElement).value));
    assert.deepEqual(offered, Object.keys(METHODS), "the select offers every method weightsoup runs");
    const heads = page.locator(`table:has([data-testid="model-params"]) thead th`);
    const math = page.locator(`[data-testid="model-params"][data-model-name="math"]`);
    const recipe = async () => parse(await settledRecipe(page)) as RecipeDoc;
    const edited = new Set<string>();
    for (const name of offered) {
      await method.selectOption(name);
      // The parameters the method uses: one it accepts and ignores (karcher's weight) has no field.
      const spec = { global: taken(METHODS[name]!.global), perModel: taken(METHODS[name]!.perModel) };
      let doc = await recipe();
      assert.equal(doc.merge_method, name);
      assert.notEqual(lastSegment(doc.base_model ?? ""), "math", "fixture: math is no base, its row has fields");

      // A field per method-wide parameter, of its kind, showing the recipe's value or the default.
      assert.equal(await page.locator(`[data-testid="global-params"] > .field`).count(), Object.keys(spec.global).length, `${name}: no other global field`);
      for (const [key, p] of Object.entries(spec.global)) {
        const control = page.locator(`[data-testid="param-${key}"]`);
        assert.ok(await control.isVisible(), `${name}: ${key} has a visible field`);
        assert.equal(await kindOf(control), controlKind(p), `${name}: ${key}'s control`);
        const value = doc.parameters?.[key];
        if (p.type === "boolean") assert.equal(await control.isChecked(), value ?? p.default === true, `${name}: ${key} shows ${value ?? `its default ${p.default}`}`);
        if (p.type === "number") assert.equal(await control.getAttribute("placeholder"), p.default !== undefined ? String(p.default) : p.required ? "required" : "", `${name}: ${key}'s placeholder`);
        const about = await page.locator(`[data-testid="param-about"][data-param="${key}"]`).textContent();
        if (p.default !== undefined) assert.match(about ?? "", /Default: /, `${name}: ${key}'s line gives its default`);
        if (p.required) assert.match(about ?? "", /Required/, `${name}: ${key}'s line says it is required`);
      }
      // A column per per-model parameter, with the default as the cells' placeholder and a line under the table.
      assert.deepEqual(await heads.allTextContents(), ["Model", ...Object.keys(spec.perModel)], `${name}: the table's columns`);
      for (const [key, p] of Object.entries(spec.perModel)) {
        const cell = math.locator(`[name="${key}"]`);
        assert.ok(await cell.isVisible(), `${name}: math's ${key} is visible`);
        assert.equal(await kindOf(cell), controlKind(p), `${name}: math's ${key} control`);
        if (p.type === "number") assert.equal(await cell.getAttribute("placeholder"), p.default !== undefined ? String(p.default) : p.required ? "required" : "", `${name}: ${key}'s placeholder`);
        assert.match((await page.locator(`[data-testid="per-model-about"] li[data-param="${key}"]`).textContent()) ?? "", new RegExp(`^${key}: `));
      }

      // One field of each kind this method has: typed, ticked, picked; emptied or unset where optional.
      const first = (params: Record<string, ParameterSpec>, kind: string) => Object.entries(params).find(([, p]) => controlKind(p) === kind);
      const number = first(spec.global, "text");
      if (number) {
        const [key, p] = number;
        await setField(page, `input[data-testid="param-${key}"]`, "0.25");
        assert.equal((await recipe()).parameters?.[key], 0.25, `${name}: ${key} typed`);
        if (!p.required) {
          await setField(page, `input[data-testid="param-${key}"]`, "");
          assert.equal((await recipe()).parameters?.[key], undefined, `${name}: ${key} emptied is unset`);
        }
        edited.add("global text");
      }
      const checkbox = first(spec.global, "checkbox");
      if (checkbox) {
        const [key] = checkbox;
        const box = byTestId(page, `param-${key}`, "input");
        const was = await box.isChecked();
        await box.setChecked(!was);
        assert.equal((await recipe()).parameters?.[key], !was, `${name}: ${key} ticked`);
        assert.equal(await box.isChecked(), !was);
        edited.add("global checkbox");
      }
      const choice = first(spec.global, "select");
      if (choice) {
        const [key, p] = choice;
        const select = byTestId(page, `param-${key}`, "select");
        const pick = p.values!.find((v) => v !== p.default)!;
        await select.selectOption(pick);
        assert.equal((await recipe()).parameters?.[key], pick, `${name}: ${key} picked`);
        await select.selectOption("");
        assert.equal((await recipe()).parameters?.[key], undefined, `${name}: ${key} back to its default is unset`);
        edited.add("global select");
      }
      for (const kind of ["text", "checkbox", "select"]) {
        const perModel = first(spec.perModel, kind);
        if (!perModel) continue;
        const [key, p] = perModel;
        const cell = math.locator(`[name="${key}"]`);
        const [value, expected] = kind === "text" ? ["0.4", 0.4] : kind === "checkbox" ? [!(await cell.isChecked()), !(await cell.isChecked())] : [p.values!.find((v) => v !== p.default)!, p.values!.find((v) => v !== p.default)!];
        if (kind === "text") {
          await cell.fill(value as string);
          await cell.blur();
        } else if (kind === "checkbox") await cell.setChecked(value as boolean);
        else await cell.selectOption(value as string);
        doc = await recipe();
        assert.deepEqual(entryFor(doc, "math")?.parameters?.[key], expected, `${name}: math's ${key} edited`);
        edited.add(`per-model ${kind}`);
      }
      assert.equal(await visibleText(page, "field-error"), "", `${name}: no field refused an edit`);
    }
    // Every kind some method has was edited (a string choice once a method declares one).
    const kinds = new Set<string>();
    for (const method of Object.values(METHODS)) {
      const spec = { global: taken(method.global), perModel: taken(method.perModel) };
      for (const p of Object.values(spec.global)) kinds.add(`global ${controlKind(p)}`);
      for (const p of Object.values(spec.perModel)) kinds.add(`per-model ${controlKind(p)}`);
    }
    assert.deepEqual([...edited].sort(), [...kinds].sort(), "one field of each kind was edited");
    assert.ok(kinds.has("global text") && kinds.has("global checkbox") && kinds.has("per-model text"), "fixture: numbers and booleans are among the kinds");
    await screenshot(page, "every-method");
  });
});

const TIES_EXTRA = `# TIES with its extra parameters, as pasted from a model card
merge_method: ties
base_model: base
models:
  - model: base
  - model: math # the strong one
    parameters:
      weight: 0.7
      density: 0.4
  - model: code
    parameters: {weight: 0.5, density: [0.2, 0.8]}
parameters:
  normalize: false
  rescale: true
  lambda: 0.8
  int8_mask: true
dtype: float32
`;

test("issue 10: a pasted recipe using a method's extra parameters shows them in the form, takes an edit and merges like the CLI", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("extra-params", "index.html", async (page) => {
    await addThree(page);
    await setRecipeYaml(page, TIES_EXTRA);
    await waitForRunEnabled(page);
    assert.equal(await byTestId(page, "method", "select").inputValue(), "ties");
    assert.equal(await byTestId(page, "param-lambda", "input").inputValue(), "0.8");
    assert.deepEqual([await byTestId(page, "param-normalize", "input").isChecked(), await byTestId(page, "param-rescale", "input").isChecked(), await byTestId(page, "param-int8_mask", "input").isChecked()],
      [false, true, true], "normalize, rescale and int8_mask follow the pasted YAML");
    const cell = (model: string, key: string) => page.locator(`[data-testid="model-params"][data-model-name="${model}"] input[name="${key}"]`);
    assert.deepEqual([await cell("math", "weight").inputValue(), await cell("math", "density").inputValue(), await cell("code", "weight").inputValue(), await cell("code", "density").inputValue()],
      ["0.7", "0.4", "0.5", "[0.2, 0.8]"], "per-model weights and densities follow the pasted YAML");
    assert.equal(await byTestId(page, "form-kept").isVisible(), false, "the form shows every key of the recipe");

    await cell("math", "density").fill("0.6");
    await cell("math", "density").blur();
    const edited = TIES_EXTRA.replace("density: 0.4", "density: 0.6");
    assert.equal(await settledRecipe(page), edited, "the density field changed only math's density");
    await runToDone(page, "ties-extra");
    const cli = await cliMerge(dirs.f32, "ties-extra", edited, "ties-extra", await seedOf(page));
    await compareOutputs(page, "ties-extra", cli);
  });
});

/** Recipes of the methods issue 10 added, as pasted from model cards (the page's models: base, math, code). */
const NEW_METHOD_RECIPES: [string, string][] = [
  ["della-count", "merge_method: della\nbase_model: base\nmodels:\n  - {model: math, parameters: {weight: 0.7, density: 0.5, epsilon: 0.1}}\n  - {model: code, parameters: {weight: 0.5, density: 0.6}}\nparameters:\n  consensus_method: count\n"],
  ["stock-rows", "merge_method: model_stock\nbase_model: base\nmodels:\n  - model: math\n  - model: code\nparameters: {filter_wise: true}\n"],
  ["crumbs", "merge_method: breadcrumbs_ties\nbase_model: base\nmodels:\n  - {model: math, parameters: {weight: 1, density: 0.6, gamma: [0.01, 0.1]}}\n  - {model: code, parameters: {weight: 0.4, density: 0.5}}\n"],
];

test("issue 10: pasted recipes of the new methods (della with a count vote, model_stock by rows, breadcrumbs_ties) merge in the page as the CLI merges them", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("new-methods", "index.html", async (page) => {
    await addThree(page);
    for (const [name, recipe] of NEW_METHOD_RECIPES) {
      await setRecipeYaml(page, recipe);
      await waitForRunEnabled(page);
      assert.equal(await byTestId(page, "method", "select").inputValue(), /merge_method: (\w+)/.exec(recipe)![1], `${name}: the form follows the pasted method`);
      if (name === "della-count") assert.equal(await byTestId(page, "param-consensus_method", "select").inputValue(), "count", "the vote's select follows the pasted YAML");
      await runToDone(page, name);
      const cli = await cliMerge(dirs.f32, name, recipe, name, await seedOf(page));
      await compareOutputs(page, name, cli);
    }
  });
});

test("a tensor written NaN throughout because of an infinite input is listed in the result as the CLI's warning", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("nonfinite", "index.html", async (page) => {
    await addFolders(page, [dirs.nonfinite], ["base", "infinite"]);
    const recipe = "merge_method: dare_ties\nbase_model: base\nmodels:\n  - {model: infinite, parameters: {weight: 1, density: 0.5}}\n";
    await setRecipeYaml(page, recipe);
    await runToDone(page, "nonfinite", "nonfinite-warnings");
    const shown = (await byTestId(page, "merge-warning").allTextContents()).map((w) => w.replace(/^⚠ /, ""));
    const recipePath = join(dirs.cli, "nonfinite.yml");
    await writeFile(recipePath, recipe.replace("base_model: base", `base_model: ${join(dirs.nonfinite, "base")}`).replace("model: infinite", `model: ${join(dirs.nonfinite, "infinite")}`));
    const cli = spawnSync(process.execPath, [CLI, "merge", recipePath, join(dirs.cli, "nonfinite-out")], { encoding: "utf8" });
    assert.equal(cli.status, 0, cli.stderr);
    const printed = cli.stderr.split("\n").filter((l) => l.startsWith("weightsoup: warning: ")).map((l) => l.slice("weightsoup: warning: ".length));
    const tensors = (w: string[]) => w.map((m) => m.slice(0, m.indexOf(":"))).sort();
    assert.ok(printed.length > 0, "the CLI warns");
    assert.deepEqual(tensors(shown), tensors(printed), "one warning per tensor, as the CLI's");
    for (const w of shown) assert.match(w, /NaN or infinite values in \S*infinite\S* \(tensor [\w.]+\) minus the base .*NaN throughout/);
  });
});

/** A picked folder is stubbed: the page's folder picker returns the OPFS folder "picked". */
function pickerIntoOpfs(): void {
  const w = window as unknown as { showDirectoryPicker: () => Promise<FileSystemDirectoryHandle>; picks: number };
  w.picks = 0;
  w.showDirectoryPicker = async () => {
    w.picks++;
    return (await navigator.storage.getDirectory()).getDirectoryHandle("picked", { create: true });
  };
}

const LINEAR_2 = (w: number) => `merge_method: linear\nmodels:\n  - model: base\n    parameters:\n      weight: 1\n  - model: math\n    parameters:\n      weight: ${w}\n`;

test("item 31: saving to a picked folder creates the named folder inside it; overwriting asks first", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("folder", "index.html", async (page) => {
    await addFolders(page, ["base", "math"].map((m) => join(dirs.f32, m)), ["base", "math"]);
    await setRecipeYaml(page, LINEAR_2(1));
    await setField(page, `input[data-testid="output-name"]`, "soup");
    await byTestId(page, "save-target", "select").selectOption("folder");
    await waitForRunEnabled(page);
    await byTestId(page, "run", "button").click();
    await waitForState(page, "done");
    const tree = await opfsTree(page);
    const inPicked = Object.keys(tree).filter((p) => p.startsWith("picked/") && p.split("/").filter(Boolean).length === 2);
    assert.deepEqual(inPicked, ["picked/soup/"], `the picked folder holds only the named output folder: ${JSON.stringify(tree)}`);
    assert.ok("picked/soup/model.safetensors" in tree && "picked/soup/config.json" in tree, JSON.stringify(tree));
    const first = (await opfsDigests(page, "picked/soup"))["model.safetensors"]!.sha256;

    // The same name again: the page says the folder is not empty and offers to overwrite it.
    await setRecipeYaml(page, LINEAR_2(3));
    await waitForRunEnabled(page);
    await byTestId(page, "run", "button").click();
    await waitForState(page, "error");
    assert.match(await visibleText(page, "error"), /soup/, "the error names the folder");
    await byTestId(page, "overwrite", "button").click();
    const confirm = byTestId(page, "overwrite-confirm", "button");
    await confirm.waitFor({ state: "visible" });
    assert.equal((await opfsDigests(page, "picked/soup"))["model.safetensors"]!.sha256, first, "nothing is overwritten before the confirmation");
    await confirm.click();
    await waitForState(page, "done");
    assert.notEqual((await opfsDigests(page, "picked/soup"))["model.safetensors"]!.sha256, first, "the second merge replaced the weights");
    assert.equal(await page.evaluate(() => (window as unknown as { picks: number }).picks), 2, "overwriting reuses the folder picked for that merge");
    assert.deepEqual(Object.keys(await opfsTree(page)).filter((p) => p.includes(".weightsoup-partial-")), [], "no staging folder is left");
  }, { init: pickerIntoOpfs });
});

test("item 32: leaving mid-merge asks first; stale partial outputs are removed at start-up", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("reload", "index.html", async (page) => {
    await addFolders(page, [dirs.large], ["base", "math", "code"]);
    await setRecipeYaml(page, "merge_method: ties\nbase_model: base\nmodels:\n  - model: math\n    parameters: {weight: 1, density: 0.5}\n  - model: code\n    parameters: {weight: 0.7, density: 0.3}\n");
    await setField(page, `input[data-testid="output-name"]`, "reload-soup");
    await byTestId(page, "save-target", "select").selectOption("opfs");
    await waitForRunEnabled(page);
    await byTestId(page, "run", "button").click();
    await page.waitForFunction(() => {
      const progress = document.querySelector("weightsoup-merge")?.shadowRoot?.querySelector<HTMLProgressElement>(`progress[data-testid="progress"]`);
      return (progress?.value ?? 0) > 0;
    }, undefined, { timeout: WAIT_MS, polling: 20 });
    assert.equal(await stateOf(page), "running", "fixture: the merge is still running");
    const dialogs: string[] = [];
    let answer: "dismiss" | "accept" = "dismiss";
    page.on("dialog", (d) => { dialogs.push(d.type()); void (answer === "dismiss" ? d.dismiss() : d.accept()); });
    await page.close({ runBeforeUnload: true });
    const deadline = Date.now() + 5000;
    while (dialogs.length === 0 && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 50));
    assert.deepEqual(dialogs, ["beforeunload"], "closing the tab mid-merge asks first");
    assert.equal(await stateOf(page), "running", "staying keeps the merge running");

    // Leaving anyway leaves a staging folder behind; the next start-up removes it.
    answer = "accept";
    await page.reload();
    await page.locator(`weightsoup-merge button[data-testid="run"]`).first().waitFor({ state: "attached" });
    let tree = await opfsTree(page);
    const until = Date.now() + 5000;
    const stale = (t: Record<string, number>) => Object.keys(t).filter((p) => p.includes(".weightsoup-partial-") || p.startsWith("reload-soup/"));
    while (stale(tree).length && Date.now() < until) {
      await page.waitForTimeout(100);
      tree = await opfsTree(page);
    }
    assert.deepEqual(stale(tree), [], `OPFS after start-up: ${JSON.stringify(tree)}`);
    assert.equal(await page.locator(`[data-testid="saved-output"][data-name="reload-soup"]`).count(), 0, "the interrupted output is not listed");
  });
});

test("item 33: unusable models are flagged where they are listed and block Merge only when the recipe uses them", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("unusable", "index.html", async (page) => {
    await addFolders(page, ["base", "math"].map((m) => join(dirs.f32, m)), ["base", "math"]);
    await addFolders(page, [join(dirs.broken, "truncated"), ...["pt-only", "lfs", "html"].map((m) => join(dirs.unusable, m))], ["truncated", "pt-only", "lfs", "html"]);
    // Each entry shows its model's error, naming the file (a folder holding one file is named by the folder).
    for (const [name, file] of [["truncated", "model.safetensors"], ["pt-only", "pytorch_model.bin"], ["lfs", "lfs"], ["html", "html"]]) {
      const error = page.locator(`[data-testid="model"][data-model-name="${name}"] [data-testid="model-error"]`);
      await error.first().waitFor({ state: "visible" }).catch(async () => { throw new Error(`no error inside ${name}'s entry: ${await pageDiagnostics(page)}`); });
      const text = ((await error.first().textContent()) ?? "").trim();
      assert.ok(text.includes(file!), `${name}: the error names ${file}: ${text}`);
      assert.ok(text.replace(file!, "").trim().length > 10, `${name}: the error says what is wrong: ${text}`);
    }
    assert.match((await page.locator(`[data-testid="model"][data-model-name="pt-only"] [data-testid="model-error"]`).first().textContent()) ?? "", /safetensors/, "a PyTorch-only folder says only safetensors is read");
    await setRecipeYaml(page, LINEAR_2(1));
    await waitForRunEnabled(page);
    await setRecipeYaml(page, "merge_method: linear\nmodels:\n  - model: base\n    parameters: {weight: 1}\n  - model: truncated\n    parameters: {weight: 1}\n");
    await waitForRunBlocked(page, /truncated/);
  });
});

const PASTED_INT8 = `# TIES of two fine-tunes (from a model card)
merge_method: ties
base_model: base
models:
  - model: base
  - model: math
    parameters:
      weight: 0.6
      density: 0.5
  - model: code
    parameters:
      weight: 0.4
      density: 0.7
parameters:
  normalize: true
  int8_mask: true # mergekit's mask storage, no effect on the result
dtype: float32
`;

test("item 34: int8_mask keeps the form usable and is kept; the seed is checked in its field", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("int8-seed", "index.html", async (page) => {
    await addThree(page);
    await setRecipeYaml(page, PASTED_INT8);
    await waitForRunEnabled(page);
    assert.ok(await byTestId(page, "method", "select").isEnabled(), "the form stays usable");
    const code = page.locator(`[data-testid="model-params"][data-model-name="code"] input[name="weight"]`);
    assert.ok(await code.isEnabled(), "code's weight can be edited");
    // Text that is no value is refused in the field; the recipe keeps its value.
    await code.fill("0.3x");
    await code.blur();
    await waitForRunBlocked(page, /0\.3x/);
    assert.match(await visibleText(page, "field-error"), /0\.3x/, "the field says what it refused");
    assert.equal(await recipeYaml(page), PASTED_INT8, "a refused value does not reach the recipe");
    await code.fill("0.3");
    await code.blur();
    assert.equal(await settledRecipe(page), PASTED_INT8.replace("weight: 0.4", "weight: 0.3"), "only code's weight changed; int8_mask and the comments stay");
    for (const seed of ["-1", "1.5", "99999999999"]) {
      await setField(page, `input[data-testid="seed"]`, seed);
      await waitForRunBlocked(page, /seed/i);
      assert.notEqual(await visibleText(page, "seed-error"), "", `seed ${seed}: the field says what is wrong`);
    }
    await setField(page, `input[data-testid="seed"]`, "7");
    await waitForRunEnabled(page);
    assert.equal(await visibleText(page, "seed-error"), "", "a valid seed shows no error");
  });
});

test("item 35: a phone-width page fits; hidden inputs stay out of the accessibility tree; 'no model' shows at the drop zone", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("phone", "index.html", async (page) => {
    await byTestId(page, "add-folder", "input").setInputFiles(join(dirs.nomodel, "notes"));
    const atDrop = page.locator(`[data-testid="drop-zone"] [data-testid="add-problem"]`);
    await atDrop.first().waitFor({ state: "visible" }).catch(async () => { throw new Error(`no message at the drop zone: ${await pageDiagnostics(page)}`); });
    assert.match((await atDrop.first().textContent()) ?? "", /no model/i);
    assert.equal(await visibleText(page, "error"), "", "nothing is shown under Merge");
    await addThree(page);
    assert.equal(await visibleText(page, "add-problem"), "", "the message goes once a model is added");
    await setRecipeYaml(page, PASTED_INT8);
    await waitForRunEnabled(page);
    await screenshot(page, "phone");
    assert.deepEqual(await overflowingElements(page), [], "nothing overflows its card at 390 px");
    const tree = await host(page).ariaSnapshot();
    assert.doesNotMatch(tree, /Choose File|No file chosen|Choose Files/i, `hidden file inputs are not in the accessibility tree:\n${tree}`);
  }, { viewport: { width: 390, height: 844 } });
});

test("item 35: the live region announces milestones only; a stale error goes when the recipe changes; Delete says what it deletes", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("announce", "index.html", async (page) => {
    await addFolders(page, ["base", "math"].map((m) => join(dirs.f32, m)), ["base", "math"]);
    await setRecipeYaml(page, LINEAR_2(1));
    await page.evaluate(() => {
      const root = document.querySelector("weightsoup-merge")!.shadowRoot!;
      const w = window as unknown as { announced: string[] };
      w.announced = [];
      const live = [...root.querySelectorAll<HTMLElement>("[aria-live], [role=status], [role=alert], [role=log]")].filter((el) => el.getAttribute("aria-live") !== "off");
      for (const el of live) new MutationObserver(() => w.announced.push(el.textContent ?? "")).observe(el, { childList: true, characterData: true, subtree: true });
    });
    await runToDone(page, "live-soup");
    const announced = await page.evaluate(() => (window as unknown as { announced: string[] }).announced);
    assert.ok(announced.length >= 1 && announced.length <= 4, `live regions changed ${announced.length} times during a merge: ${JSON.stringify(announced)}`);
    assert.match(announced.at(-1) ?? "", /done|saved|finished/i, "the last announcement says the merge finished");
    const saved = page.locator(`[data-testid="saved-output"][data-name="live-soup"]`);
    await saved.first().waitFor({ state: "visible" });
    assert.equal(await saved.getByRole("button", { name: /delete.*live-soup/i }).count(), 1, "the Delete button names the output it deletes");

    // The same name again fails; changing the recipe clears that error.
    await waitForRunEnabled(page);
    await byTestId(page, "run", "button").click();
    await waitForState(page, "error");
    assert.notEqual(await visibleText(page, "error"), "", "the failure is shown");
    await setRecipeYaml(page, LINEAR_2(2));
    await page.waitForFunction(() => !document.querySelector("weightsoup-merge")?.shadowRoot?.querySelector(`[data-testid="error"]:not([hidden])`)?.textContent?.trim(), undefined, { timeout: 5000 })
      .catch(async () => { throw new Error(`the old error stayed after the recipe changed: ${await pageDiagnostics(page)}`); });
  });
});

test("the page fetches nothing but its own files", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("network", "index.html", async (page) => {
    const csp = page.locator(`meta[http-equiv="Content-Security-Policy" i]`);
    assert.equal(await csp.count(), 1, "index.html has a Content-Security-Policy meta tag");
    const policy = (await csp.getAttribute("content")) ?? "";
    assert.match(policy, /default-src|connect-src/, `the CSP restricts fetching: ${policy}`);

    // A whole merge, so the worker, the kernels and the output code all load.
    await addFolders(page, ["base", "math"].map((m) => join(dirs.f32, m)), ["base", "math"]);
    await byTestId(page, "method", "select").selectOption("linear");
    await runToDone(page, "network-soup");
  });
  // Every request of every page this file opened (earlier tests included), and what the server saw.
  assert.ok(env.requests.length > 0, "requests were recorded");
  assert.deepEqual(foreignRequests(env), [], "requests to other origins");
  const missing: string[] = [];
  for (const { method, path } of env.served) {
    try {
      await access(join(SITE_DIR, path.endsWith("/") ? path + "index.html" : path));
    } catch {
      missing.push(`${method} ${path}`);
    }
  }
  const initiators = env.requests.filter((r) => missing.some((m) => r.url.endsWith(m.split(" ")[1]!))).map((r) => `${r.type} ${r.url} from ${r.frame || "a worker"}`);
  assert.deepEqual(missing, [], `requests for files the site does not have (${initiators.join("; ")})`);
});

test("embed.html: the element renders and the library API inspects a picked file", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("embed", "embed.html", async (page) => {
    await page.locator(`weightsoup-merge button[data-testid="run"]`).first().waitFor({ state: "attached" });
    assert.equal(await host(page).count(), 1, "one embedded element");
    assert.equal(await page.locator(`meta[http-equiv="Content-Security-Policy" i]`).count(), 1, "embed.html has a CSP meta tag");
    await byTestId(page, "api-file", "input").setInputFiles(join(dirs.f32, "base", "model.safetensors"));
    const output = byTestId(page, "api-output", "pre");
    await page.waitForFunction(() => {
      const text = document.querySelector(`pre[data-testid="api-output"]`)?.textContent ?? "";
      try { return typeof JSON.parse(text).tensors === "number"; } catch { return false; }
    }, undefined, { timeout: WAIT_MS }).catch(async () => {
      throw new Error(`api-output never showed a JSON summary; it shows: ${await output.textContent()}`);
    });
    const summary = JSON.parse((await output.textContent()) ?? "") as { tensors?: unknown; parameters?: unknown };
    const parameters = [...f32Base.tensors.values()].reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
    assert.equal(summary.tensors, f32Base.tensors.size, "tensor count");
    assert.equal(summary.parameters, parameters, "parameter count");
    await screenshot(page, "embed");
  });
});

// ------------------------------------------------------------------------------------------------
// Issue 9, the page's Evaluate panel. The CLI (dist/cli.cjs eval / generate --json) is the reference:
// the page must show its numbers to the precision its table prints, and its greedy tokens.

const MERGED_LABEL = (name: string) => `${name} (merged)`;
const RECIPE_LABEL = "recipe (merged in memory)";
const PROMPT = "We hold these truths to be self-evident, that";

interface CliEvalResult {
  model: string;
  tokens: number;
  perplexity: number;
  bitsPerByte: number | null;
  against: { model: string; kl: number; top1Agreement: number }[];
}
interface CliGeneration { ids: number[]; text: string }

/** What the panel must show for the CLI's results: its numbers printed as `weightsoup eval` prints them, under the page's labels. */
function asPrinted(results: CliEvalResult[], labels: string[], againstLabels: string[]) {
  return results.map((r, i) => ({
    model: labels[i]!,
    perplexity: r.perplexity.toFixed(3),
    bitsPerByte: r.bitsPerByte === null ? "–" : r.bitsPerByte.toFixed(4),
    tokens: String(r.tokens),
    kl: Object.fromEntries(r.against.map((a, j) => [againstLabels[j]!, a.kl.toFixed(5)])),
    top1: Object.fromEntries(r.against.map((a, j) => [againstLabels[j]!, `top-1 ${(100 * a.top1Agreement).toFixed(2)}%`])),
  }));
}

/** The candidates listed in the panel with their two ticks. */
const shownPicks = (page: Page) => page.locator(`[data-testid="eval-candidate"]`).evaluateAll((rows) => rows.map((r) => ({
  label: (r as HTMLElement).dataset.label,
  score: r.querySelector<HTMLInputElement>(`[data-testid="eval-score"]`)!.checked,
  against: r.querySelector<HTMLInputElement>(`[data-testid="eval-against"]`)!.checked,
})));
const pickBox = (page: Page, id: string, box: "eval-score" | "eval-against") => page.locator(`[data-testid="eval-candidate"][data-id="${id}"] input[data-testid="${box}"]`);

/** The generation panels as shown: model, streamed text, token ids. */
const shownGenerations = (page: Page) => page.locator(`[data-testid="gen-output"]`).evaluateAll((els) => els.map((el) => ({
  model: (el as HTMLElement).dataset.model,
  text: el.querySelector(`[data-testid="gen-text"]`)?.textContent ?? "",
  ids: el.querySelector(`[data-testid="gen-ids"]`)?.textContent ?? "",
})));

async function waitForMergedCandidate(page: Page): Promise<void> {
  await page.locator(`[data-testid="eval-candidate"][data-id="merged"]`).waitFor({ state: "attached" }).catch(async (e: Error) => {
    throw new Error(`the merged output was not offered for evaluation (${await pageDiagnostics(page)}): ${e.message.split("\n")[0]}`);
  });
}

test("issue 9: the page evaluates a merge of the example models with the CLI's perplexity and KL, and generates the CLI's greedy tokens", { timeout: 2 * TEST_TIMEOUT }, async () => {
  await withPage("evaluate", "index.html", async (page) => {
    await addFolders(page, [dirs.example], ["base", "math", "code", "chat"]);
    await setRecipeYaml(page, exampleRecipe);
    await runToDone(page, "example-soup");
    await waitForMergedCandidate(page);
    const merged = MERGED_LABEL("example-soup");
    // The parents in the order the page lists the loaded models.
    const parents = await page.locator(`[data-testid="model"]`).evaluateAll((els) => els.map((el) => el.getAttribute("data-model-name")!));
    assert.deepEqual([...parents].sort(), ["base", "chat", "code", "math"]);
    assert.deepEqual(await shownPicks(page), [
      { label: merged, score: true, against: false },
      { label: RECIPE_LABEL, score: false, against: false },
      ...parents.map((p) => ({ label: p, score: true, against: true })),
    ], "after a merge: the output and each parent are evaluated, each parent compared with");
    await pickBox(page, "recipe", "eval-score").check();
    assert.match(await visibleText(page, "eval-blocked"), /text/i, "Evaluate waits for a text");

    await byTestId(page, "eval-builtin", "button").click();
    assert.equal(await byTestId(page, "eval-text", "textarea").inputValue(), DEFAULT_TEXT, "the built-in text fills the box");
    await setField(page, `input[data-testid="eval-context"]`, "32");
    await setField(page, `input[data-testid="eval-max-tokens"]`, "64");
    await recordLiveRegions(page);
    await byTestId(page, "eval-run", "button").click();
    await waitForAttribute(page, "data-eval-state", "done", undefined, 2 * WAIT_MS);
    await screenshot(page, "evaluated");
    // 6 models x 6 layers of progress, heard as two milestones: started, finished.
    const heard = await liveAnnouncements(page);
    assert.ok(heard.length >= 1 && heard.length <= 3, `live regions changed ${heard.length} times during the evaluation: ${JSON.stringify(heard)}`);
    assert.match(heard.at(-1) ?? "", /evaluated/i, "the last announcement says the evaluation finished");
    const shown = await shownEvalRows(page);

    // The CLI on the same models (its merge of the same recipe is byte-identical to the page's), text and numbers.
    const cliOut = await cliMerge(dirs.example, "example", exampleRecipe, "example-soup", await seedOf(page));
    await compareOutputs(page, "example-soup", cliOut);
    const textFile = join(root, "default-text.txt");
    await writeFile(textFile, DEFAULT_TEXT);
    const parentDirs = parents.map((p) => join(dirs.example, p));
    const { results } = await runCliJson<{ results: CliEvalResult[] }>([
      "eval", cliOut, join(dirs.example, "recipe-example.yml"), ...parentDirs, ...parentDirs.flatMap((d) => ["--against", d]),
      "--text", textFile, "--context", "32", "--max-tokens", "64", "--quiet",
    ]);
    assert.deepEqual(shown, asPrinted(results, [merged, RECIPE_LABEL, ...parents], parents), "the page shows the CLI's numbers, to the digits the CLI prints");
    // Facts that hold whatever the numbers: 64 tokens; each parent is at KL 0 from itself and agrees with itself.
    for (const row of shown) assert.equal(row.tokens, "64");
    for (const p of parents) {
      const row = shown.find((r) => r.model === p)!;
      assert.equal(row.kl[p], "0.00000", `KL(${p} ‖ ${p})`);
      assert.equal(row.top1[p], "top-1 100.00%", `${p} agrees with itself`);
    }

    // Generation: the merged output next to the base by default, 32 new tokens, streamed.
    assert.equal(await byTestId(page, "gen-model", "select").inputValue(), "merged");
    assert.equal(await byTestId(page, "gen-other", "select").inputValue(), "model:base");
    assert.equal(await byTestId(page, "gen-max-new", "input").inputValue(), "32");
    await setField(page, `textarea[data-testid="gen-prompt"]`, PROMPT);
    await page.evaluate(() => {
      const root = document.querySelector("weightsoup-merge")!.shadowRoot!;
      const w = window as unknown as { streamed: string[] };
      w.streamed = [];
      new MutationObserver(() => w.streamed.push(root.querySelector(`[data-testid="gen-text"]`)?.textContent ?? ""))
        .observe(root.querySelector(`[data-testid="gen-outputs"]`)!, { childList: true, characterData: true, subtree: true });
    });
    await recordLiveRegions(page);
    await byTestId(page, "gen-run", "button").click();
    await waitForAttribute(page, "data-generate-state", "done", undefined, 2 * WAIT_MS);
    await screenshot(page, "generated");
    const heardGenerating = await liveAnnouncements(page);
    assert.ok(heardGenerating.length >= 1 && heardGenerating.length <= 3, `live regions changed ${heardGenerating.length} times while 2 x 32 tokens streamed: ${JSON.stringify(heardGenerating)}`);
    assert.match(heardGenerating.at(-1) ?? "", /finished/i, "the last announcement says generation finished");
    const generations = await shownGenerations(page);
    const expected: { model: string; text: string; ids: string }[] = [];
    for (const [label, dir] of [[merged, cliOut], ["base", join(dirs.example, "base")]] as const) {
      const g = await runCliJson<CliGeneration>(["generate", dir, "--prompt", PROMPT, "--max-new-tokens", "32"]);
      expected.push({ model: label, text: g.text, ids: g.ids.join(", ") });
    }
    assert.deepEqual(generations, expected, "the page generates the CLI's greedy tokens and text");
    assert.ok(expected[0]!.ids.split(", ").length >= 4, `fixture: the merged model generates several tokens (${expected[0]!.ids})`);
    const streamed = new Set((await page.evaluate(() => (window as unknown as { streamed: string[] }).streamed)).filter((t) => t && t !== generations[0]!.text));
    assert.ok(streamed.size >= 2, `the merged model's text appeared token by token (${streamed.size} partial texts shown)`);
    for (const partial of streamed) assert.ok(generations[0]!.text.startsWith(partial), `a partial text is a prefix of the whole: ${JSON.stringify(partial)}`);
  });
});

test("issue 9: embed.html at phone width: loaded models evaluated before any merge on a picked .txt file, as the CLI; typed errors in the panel", { timeout: TEST_TIMEOUT }, async () => {
  const textFile = join(root, "civil-war.txt");
  const text = "Now we are engaged in a great civil war — testing whether that nation, or any nation so conceived and so dedicated, can long endure.\n";
  await writeFile(textFile, text);
  await withPage("embed-eval", "embed.html", async (page) => {
    await addFolders(page, [join(dirs.example, "base"), join(dirs.example, "math"), join(dirs.noeval, "notok"), join(dirs.noeval, "mamba")], ["base", "math", "notok", "mamba"]);
    assert.deepEqual((await shownPicks(page)).map((p) => p.label), ["base", "math", "notok", "mamba"], "before a merge: the loaded models");
    assert.ok((await shownPicks(page)).every((p) => !p.score && !p.against), "nothing is ticked before a merge");
    assert.match(await visibleText(page, "eval-blocked"), /tick/i, "Evaluate asks for a ticked model");

    await byTestId(page, "eval-text-file", "input").setInputFiles(textFile);
    await page.waitForFunction(() => !!document.querySelector("weightsoup-merge")?.shadowRoot?.querySelector<HTMLTextAreaElement>(`[data-testid="eval-text"]`)?.value);
    assert.equal(await byTestId(page, "eval-text", "textarea").inputValue(), text, "the picked file's text fills the box");
    assert.match(await visibleText(page, "eval-text-source"), /civil-war\.txt/, "the panel says where the text came from");
    await pickBox(page, "model:base", "eval-score").check();
    await pickBox(page, "model:base", "eval-against").check();
    await pickBox(page, "model:math", "eval-score").check();
    // The merge's seed field concerns the recipe only: a bad value there does not stop evaluating models.
    await setField(page, `input[data-testid="seed"]`, "1.5");
    await byTestId(page, "eval-run", "button").click();
    await waitForAttribute(page, "data-eval-state", "done");
    const dirsOf = ["base", "math"].map((m) => join(dirs.example, m));
    const { results } = await runCliJson<{ results: CliEvalResult[] }>(["eval", ...dirsOf, "--against", dirsOf[0]!, "--text", textFile, "--quiet"]);
    assert.deepEqual(await shownEvalRows(page), asPrinted(results, ["base", "math"], ["base"]), "the page shows the CLI's numbers");
    await screenshot(page, "embed-evaluated-phone");
    assert.deepEqual(await overflowingElements(page), [], "nothing overflows its card at 390 px with results shown");

    // Models that cannot be evaluated: typed errors, grouped like the page's other problems, naming the model.
    for (const [id, label, code] of [["model:notok", "notok", "E_TOKENIZER"], ["model:mamba", "mamba", "E_ARCHITECTURE_UNSUPPORTED"]] as const) {
      for (const other of ["model:base", "model:math", "model:notok", "model:mamba"]) {
        await pickBox(page, other, "eval-score").uncheck();
        await pickBox(page, other, "eval-against").uncheck();
      }
      await pickBox(page, id, "eval-score").check();
      await byTestId(page, "eval-run", "button").click();
      await waitForAttribute(page, "data-eval-state", "error");
      const group = page.locator(`[data-testid="eval-error"] [data-testid="problem-group"][data-code="${code}"]`);
      assert.equal(await group.count(), 1, `${label}: a ${code} problem is shown (${await pageDiagnostics(page)})`);
      assert.match((await group.textContent()) ?? "", new RegExp(label), `${label}: the problem names the model`);
      assert.equal(await byTestId(page, "eval-results").isVisible(), false, "no stale results next to the error");
    }
    await byTestId(page, "gen-model", "select").selectOption("model:notok");
    await byTestId(page, "gen-other", "select").selectOption("none");
    await setField(page, `textarea[data-testid="gen-prompt"]`, "Four score");
    await byTestId(page, "gen-run", "button").click();
    await waitForAttribute(page, "data-generate-state", "error");
    assert.match((await page.locator(`[data-testid="gen-error"] [data-testid="problem-group"][data-code="E_TOKENIZER"]`).textContent()) ?? "", /notok/, "generation errors are typed too");
  }, { viewport: { width: 390, height: 844 } });
});

test("issue 9: a merge saved to a picked folder is evaluated from that folder; evaluation and generation can be cancelled", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("eval-folder", "index.html", async (page) => {
    await addFolders(page, ["base", "math"].map((m) => join(dirs.example, m)), ["base", "math"]);
    await setRecipeYaml(page, LINEAR_2(1));
    await waitForRunEnabled(page);
    // Before a merge the recipe is offered, merged in memory, but the prompt box starts with loaded models.
    assert.deepEqual((await shownPicks(page)).map((p) => p.label), [RECIPE_LABEL, "base", "math"]);
    assert.deepEqual([await byTestId(page, "gen-model", "select").inputValue(), await byTestId(page, "gen-other", "select").inputValue()], ["model:base", "model:math"]);
    await setField(page, `input[data-testid="output-name"]`, "soup");
    await byTestId(page, "save-target", "select").selectOption("folder");
    await waitForRunEnabled(page);
    await byTestId(page, "run", "button").click();
    await waitForState(page, "done");
    await waitForMergedCandidate(page);
    assert.match(await page.locator(`[data-testid="eval-candidate"][data-id="merged"]`).innerText(), /folder/, "the merged row says it is read from the folder it was saved in");
    await pickBox(page, "recipe", "eval-score").check();
    await byTestId(page, "eval-builtin", "button").click();
    await setField(page, `input[data-testid="eval-max-tokens"]`, "40");
    await byTestId(page, "eval-run", "button").click();
    await waitForAttribute(page, "data-eval-state", "done");
    const rows = await shownEvalRows(page);
    const merged = rows.find((r) => r.model === MERGED_LABEL("soup"));
    const recipe = rows.find((r) => r.model === RECIPE_LABEL);
    assert.ok(merged && recipe, `both rows shown: ${JSON.stringify(rows)}`);
    // The recipe merged in memory is bit-identical to the written merge: the files read back from the
    // picked folder are that merge (another model's files would not score alike).
    assert.deepEqual({ ...merged, model: "" }, { ...recipe, model: "" }, "the output read back from the folder scores as the recipe merged in memory");
    assert.notEqual(merged.perplexity, rows.find((r) => r.model === "math")!.perplexity, "fixture: the merge scores unlike a parent");

    // Cancel an evaluation of the whole built-in text once it is under way.
    await setField(page, `input[data-testid="eval-max-tokens"]`, "");
    await byTestId(page, "eval-run", "button").click();
    await page.waitForFunction(() => {
      const el = document.querySelector("weightsoup-merge");
      const progress = el?.shadowRoot?.querySelector<HTMLProgressElement>(`progress[data-testid="eval-progress"]`);
      return el?.getAttribute("data-eval-state") !== "running" || (progress?.value ?? 0) > 0;
    }, undefined, { timeout: WAIT_MS, polling: 20 });
    assert.equal(await host(page).getAttribute("data-eval-state"), "running", `still running when progress showed (${await pageDiagnostics(page)})`);
    await byTestId(page, "eval-cancel", "button").click();
    await waitForAttribute(page, "data-eval-state", "cancelled");
    assert.match(await visibleText(page, "eval-status"), /cancel/i);
    assert.ok(await byTestId(page, "eval-run", "button").isEnabled(), "Evaluate can run again");

    // Cancel a long generation once its first tokens show.
    await setField(page, `textarea[data-testid="gen-prompt"]`, PROMPT);
    await setField(page, `input[data-testid="gen-max-new"]`, "1500");
    await byTestId(page, "gen-run", "button").click();
    await page.waitForFunction(() => {
      const el = document.querySelector("weightsoup-merge");
      return el?.getAttribute("data-generate-state") !== "running" || !!el?.shadowRoot?.querySelector(`[data-testid="gen-ids"]`)?.textContent;
    }, undefined, { timeout: WAIT_MS, polling: 20 });
    assert.equal(await host(page).getAttribute("data-generate-state"), "running", `still generating when tokens showed (${await pageDiagnostics(page)})`);
    await byTestId(page, "gen-cancel", "button").click();
    await waitForAttribute(page, "data-generate-state", "cancelled");
    assert.match(await visibleText(page, "gen-status"), /cancel/i);
    assert.match(await visibleText(page, "gen-output-status"), /stopped/, "the panels say they stopped");
  }, { init: pickerIntoOpfs });
});
