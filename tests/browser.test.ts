// The static page (dist/site) end to end in headless Chromium: models picked as folders, recipes built
// in the form or pasted as mergekit YAML, merges written to the origin-private file system and compared
// byte for byte with the Node CLI's output for the same recipe; cancelling, unreadable checkpoints, the
// page's network footprint, loose files and incompatible models, and the embedding example with the
// plain library API.
//
// Needs a system Chromium (CHROMIUM_PATH, default /usr/bin/chromium; never downloaded) and the built
// site (`npm run build`). Screenshots of the main states go to .build/test-artifacts/browser/.
import assert from "node:assert/strict";
import { access, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { BrowserContext, Page } from "playwright-core";
import { parse } from "yaml";
import {
  addFolders, assertSameWeights, byTestId, checkPrerequisites, compareOutputs, foreignRequests, host, opfsBytes, opfsDigests,
  opfsText, opfsTree, openPage, pageDiagnostics, recipeYaml, runCli, screenshot, setField, setRecipeYaml, sha256Hex, SITE_DIR,
  splitSafetensors, startBrowserEnv, stateOf, textOf, waitForModels, waitForState, WAIT_MS, type BrowserEnv,
} from "./helpers/browser";
import { baseModel, fineTune, removeDir, tempDir, TINY, writeModel, type Shape } from "./helpers/fixtures";
import type { RefModel } from "./reference/merge";

/** A little larger than TINY, so outputs hold a few hundred KB. */
const SMALL: Shape = { vocab: 96, hidden: 32, intermediate: 64, layers: 2, heads: 4, kvHeads: 2 };
/** Large enough that a merge in the page runs for a few seconds (the cancel test checks it does). */
const LARGE: Shape = { vocab: 8192, hidden: 512, intermediate: 1376, layers: 8, heads: 8, kvHeads: 4 };
const TEST_TIMEOUT = 5 * WAIT_MS;

let env: BrowserEnv;
let root: string;
let f32Base: RefModel;
const dirs = {
  f32: "", bf16: "", large: "", broken: "", loose: "", tmp: "", cli: "",
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

  env = await startBrowserEnv();
});

after(async () => {
  await env?.close();
  if (root) await removeDir(root);
  if (env?.pageErrors.length) process.stderr.write(`browser errors during the run:\n${env.pageErrors.join("\n")}\n`);
});

/** Opens a page, runs `body`, screenshots the page when `body` fails, closes the context. */
async function withPage(name: string, path: string, body: (page: Page, context: BrowserContext) => Promise<void>): Promise<void> {
  const { context, page } = await openPage(env, path, name);
  try {
    await body(page, context);
  } catch (e) {
    await screenshot(page, `${name}-failure`);
    throw e;
  } finally {
    await context.close();
  }
}

/** Sets the output (name, OPFS), clicks run, waits for data-state=done and checks the result list. */
async function runToDone(page: Page, outputName: string, shot?: string): Promise<void> {
  await setField(page, `input[data-testid="output-name"]`, outputName);
  await byTestId(page, "save-target", "select").selectOption("opfs");
  const run = byTestId(page, "run", "button");
  assert.ok(await run.isEnabled(), `run is disabled (${await pageDiagnostics(page)})`);
  await run.click();
  await waitForState(page, "done");
  if (shot) await screenshot(page, shot);
  // The result lists every file with a download link.
  const result = byTestId(page, "result");
  await result.first().waitFor({ state: "visible" });
  const files = Object.keys(await opfsDigests(page, outputName));
  const listed = (await result.first().textContent()) ?? "";
  for (const f of files) assert.ok(listed.includes(f), `the result does not list ${f}: ${listed}`);
  assert.ok((await result.locator(`a[data-testid="download"]`).count()) >= files.length, "a download link per file");
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
