// Issue 11's page panels, end to end in headless Chromium (same harness as browser.test.ts): the
// Diagnose panel runs diagnose() on the recipe and the loaded models (the example models of
// `weightsoup example`) in the page's worker pool and shows the CLI's numbers (`weightsoup diagnose
// --json`, every cell's exact value), its summary and its very heatmap SVG; Cancel stops it; a recipe
// diagnose refuses shows the typed problem.
//
// Needs a system Chromium (CHROMIUM_PATH, default /usr/bin/chromium) and the built site (`npm run build`).
// Screenshots go to .build/test-artifacts/browser/.
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { BrowserContext, Page } from "playwright-core";
import {
  addFolders, byTestId, checkPrerequisites, openPage, pageDiagnostics, runCliJson, screenshot, setRecipeYaml, startBrowserEnv,
  waitForAttribute, WAIT_MS, type BrowserEnv,
} from "./helpers/browser";
import { EXAMPLE_SHAPE, EXAMPLE_SKILLS, writeLlamaModel } from "../src/example/models";
import exampleRecipe from "../src/example/recipe.yml";
import { removeDir, tempDir } from "./helpers/fixtures";

const TEST_TIMEOUT = 5 * WAIT_MS;

let env: BrowserEnv;
let root: string;

before(async () => {
  await checkPrerequisites();
  root = await tempDir("ws-browser-measure-");
  // The example models of `weightsoup example`, written by the function the CLI uses, and its recipe beside them.
  await writeLlamaModel(join(root, "base"), EXAMPLE_SHAPE);
  for (const skill of EXAMPLE_SKILLS) await writeLlamaModel(join(root, skill.name), EXAMPLE_SHAPE, skill);
  await writeFile(join(root, "recipe.yml"), exampleRecipe);
  env = await startBrowserEnv();
});

after(async () => {
  await env?.close();
  if (root) await removeDir(root);
  if (env?.pageErrors.length) process.stderr.write(`browser errors during the run:\n${env.pageErrors.join("\n")}\n`);
});

async function withPage(name: string, body: (page: Page, context: BrowserContext) => Promise<void>): Promise<void> {
  const { context, page } = await openPage(env, "index.html", name);
  try {
    await body(page, context);
  } catch (e) {
    await screenshot(page, `${name}-failure`);
    throw e;
  } finally {
    await context.close();
  }
}

/** The example's four models loaded, its recipe pasted, and Diagnose enabled. */
async function loadExample(page: Page, recipe = exampleRecipe): Promise<void> {
  await addFolders(page, [root], ["base", "math", "code", "chat"]);
  await setRecipeYaml(page, recipe);
  await page.locator(`button[data-testid="diagnose-run"]:enabled`).waitFor({ state: "attached", timeout: WAIT_MS }).catch(async (e: Error) => {
    throw new Error(`Diagnose stayed disabled (${await pageDiagnostics(page)}): ${e.message.split("\n")[0]}`);
  });
}

interface Stats { conflict: { coordinates: number | null; mass: number | null }; tasks: { model: string; baseRatio: number | null }[]; pairs: { a: string; b: string; cosine: number | null }[] }
interface CliDiagnosis extends Stats { recipe: string; summary: string[]; warnings: string[]; models: string[]; layers: (Stats & { layer: number })[]; total: Stats }

/** A row of the panel's table: each cell's exact value (data-value) under its column. */
async function shownRows(page: Page): Promise<Record<string, Record<string, string>>> {
  return byTestId(page, "diagnose-row").evaluateAll((rows) => Object.fromEntries(rows.map((row) => {
    const cells: Record<string, string> = {};
    for (const td of row.querySelectorAll<HTMLElement>("td")) {
      const key = td.dataset.model ?? td.dataset.pair ?? "";
      cells[`${td.dataset.testid}${key ? ` ${key}` : ""}`] = td.dataset.value!;
    }
    return [(row as HTMLElement).dataset.layer!, cells];
  })));
}

/** What the CLI's numbers make of one row, in the same keys. */
function expectedRow(g: Stats, models: string[], pairs: { a: string; b: string }[]): Record<string, string> {
  const row: Record<string, string> = { "diagnose-conflict-coords": String(g.conflict.coordinates), "diagnose-conflict-mass": String(g.conflict.mass) };
  for (const m of models) row[`diagnose-ratio ${m}`] = String(g.tasks.find((t) => t.model === m)?.baseRatio ?? null);
  for (const p of pairs) row[`diagnose-cosine ${p.a}/${p.b}`] = String(g.pairs.find((q) => q.a === p.a && q.b === p.b)?.cosine ?? null);
  return row;
}

test("issue 11: the Diagnose panel shows the CLI's diagnosis of the example recipe: every number, the summary and the heatmap SVG", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("diagnose", async (page) => {
    await loadExample(page);
    await byTestId(page, "diagnose-run", "button").click();
    await waitForAttribute(page, "data-diagnose-state", "done");
    await screenshot(page, "diagnose-example");

    const svgPath = join(root, "cli-heatmap.svg");
    const cli = await runCliJson<CliDiagnosis>(["diagnose", join(root, "recipe.yml"), "--svg", svgPath]);
    assert.ok(cli.layers.length === EXAMPLE_SHAPE.layers, `the CLI measured ${cli.layers.length} layers`);

    const summary = await byTestId(page, "diagnose-summary-line").allTextContents();
    assert.deepEqual(summary, cli.summary);
    assert.match(summary[0]!, /^layers? \d+(-\d+)? conflicts? most: /);

    const shown = await shownRows(page);
    const expected: Record<string, Record<string, string>> = {};
    for (const l of cli.layers) expected[String(l.layer)] = expectedRow(l, cli.models, cli.total.pairs);
    expected.total = expectedRow(cli.total, cli.models, cli.total.pairs);
    assert.deepEqual(shown, expected);
    // Three task models: three ratios and three cosines per row, none of them missing.
    assert.equal(Object.keys(expected.total!).length, 2 + 3 + 3);
    assert.ok(Object.values(expected.total!).every((v) => v !== "null" && Number.isFinite(Number(v))), JSON.stringify(expected.total));

    // The heatmap is the CLI's file, byte for byte but for the recipe's name in its title (the CLI names
    // the recipe by its path; the page's recipe is pasted text, named "recipe"), and the browser rendered it.
    const heatmap = byTestId(page, "diagnose-heatmap", "img");
    const src = (await heatmap.getAttribute("src")) ?? "";
    const prefix = "data:image/svg+xml;charset=utf-8,";
    assert.ok(src.startsWith(prefix), src.slice(0, 60));
    const cliSvg = await readFile(svgPath, "utf8");
    assert.equal(cliSvg.split(`Sign conflicts: ${cli.recipe}<`).length, 3, "the CLI's title names its recipe file twice (title and heading)");
    assert.equal(decodeURIComponent(src.slice(prefix.length)), cliSvg.replaceAll(`Sign conflicts: ${cli.recipe}<`, "Sign conflicts: recipe<"));
    const size = await heatmap.evaluate((img: HTMLImageElement) => img.decode().then(() => [img.naturalWidth, img.naturalHeight]));
    assert.ok(size[0]! > 100 && size[1]! > 100, `heatmap rendered at ${size.join("x")}`);
  });
});

test("issue 11: Cancel stops a diagnosis, and the panel can diagnose again after", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("diagnose-cancel", async (page) => {
    await loadExample(page);
    // Run and Cancel in one task: the cancel lands before the first tensor is read, whatever the machine's speed.
    await page.evaluate(() => {
      const root = document.querySelector("weightsoup-merge")!.shadowRoot!;
      root.querySelector<HTMLButtonElement>(`[data-testid="diagnose-run"]`)!.click();
      root.querySelector<HTMLButtonElement>(`[data-testid="diagnose-cancel"]`)!.click();
    });
    await waitForAttribute(page, "data-diagnose-state", "cancelled");
    assert.equal(await byTestId(page, "diagnose-status").textContent(), "Diagnosis cancelled.");
    assert.equal(await byTestId(page, "diagnose-results").isHidden(), true);
    assert.equal(await byTestId(page, "diagnose-cancel", "button").isDisabled(), true);
    await byTestId(page, "diagnose-run", "button").click();
    await waitForAttribute(page, "data-diagnose-state", "done");
    assert.ok((await byTestId(page, "diagnose-summary-line").count()) > 0);
  });
});

test("issue 11: a recipe diagnose cannot measure (linear without a base: no task vectors) shows the typed problem", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("diagnose-refused", async (page) => {
    await loadExample(page, "merge_method: linear\nmodels:\n  - model: ./math\n    parameters: {weight: 0.5}\n  - model: ./code\n    parameters: {weight: 0.5}\n");
    await byTestId(page, "diagnose-run", "button").click();
    await waitForAttribute(page, "data-diagnose-state", "error");
    const problem = (await byTestId(page, "diagnose-error").textContent()) ?? "";
    assert.match(problem, /task vector|base/i, problem);
    assert.equal(await byTestId(page, "diagnose-results").isHidden(), true);
  });
});
