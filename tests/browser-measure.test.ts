// Issue 11's page panels, end to end in headless Chromium (same harness as browser.test.ts): the
// Diagnose panel runs diagnose() on the recipe and the loaded models (the example models of
// `weightsoup example`) in the page's worker pool and shows the CLI's numbers (`weightsoup diagnose
// --json`, every cell's exact value), its summary and its very heatmap SVG; Cancel stops it; a recipe
// diagnose refuses shows the typed problem. The Loss path panel measures the loss between two loaded
// models along the straight line and SLERP, point by point (lossPath() with pointByPoint), its chart
// growing as points complete, and ends with `weightsoup path --slerp`'s numbers (every NLL, each curve's
// barrier and gap exactly) and its very chart SVG. Aligning B to A runs in the page's worker pool (the
// workers solve every assignment; the main thread only orders the work), and no long task of the main
// thread during the path lasts 2 s (a generous bound: a frozen page, not a slow machine).
//
// Needs a system Chromium (CHROMIUM_PATH, default /usr/bin/chromium) and the built site (`npm run build`).
// Screenshots go to .build/test-artifacts/browser/.
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { BrowserContext, Page } from "playwright-core";
import {
  addFolders, byTestId, checkPrerequisites, closeBrowserSuite, inPage, pageDiagnostics, runCliJson, screenshot, setField, setRecipeYaml, startBrowserEnv,
  waitForAttribute, WAIT_MS, type BrowserEnv, type PageOptions,
} from "./helpers/browser";
import { DEFAULT_TEXT } from "../src/eval/default-text";
import { EXAMPLE_SHAPE, writeExampleFolder } from "../src/example/models";
import exampleRecipe from "../src/example/recipe.yml";
import { tempDir } from "./helpers/fixtures";

const TEST_TIMEOUT = 5 * WAIT_MS;

let env: BrowserEnv;
let root: string;

before(async () => {
  await checkPrerequisites();
  root = await tempDir("ws-browser-measure-");
  // The folder `weightsoup example` writes (its models and recipe), by the function the CLI uses.
  await writeExampleFolder(root);
  env = await startBrowserEnv();
});

after(() => closeBrowserSuite(env, root));

const withPage = (name: string, body: (page: Page, context: BrowserContext) => Promise<void>, options: PageOptions = {}) => inPage(env, name, "index.html", body, options);

/**
 * Runs in the page before its scripts: records the main thread's long tasks (Chromium's "longtask"
 * entries, 50 ms and longer) in `longTasks`, each with the Loss path panel's status line as it ended.
 */
function recordLongTasks(): void {
  const w = window as unknown as { longTasks: { ms: number; status: string }[] };
  w.longTasks = [];
  new PerformanceObserver((list) => {
    const status = document.querySelector("weightsoup-merge")?.shadowRoot?.querySelector(`[data-testid="path-status"]`)?.textContent ?? "";
    for (const e of list.getEntries()) w.longTasks.push({ ms: Math.round(e.duration), status: status.slice(0, 60) });
  }).observe({ type: "longtask", buffered: true });
}

/** Generous: a main thread busy this long in one go is a frozen page, whatever the machine. */
const LONGEST_TASK_MS = 2000;

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

test("issue 11: Cancel stops a diagnosis, and Diagnose is enabled again", { timeout: TEST_TIMEOUT }, async () => {
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
    assert.equal(await byTestId(page, "diagnose-run", "button").isDisabled(), false, "Diagnose can run again");
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

interface CliCurve { points: { lambda: number; nll: number; perplexity: number }[]; barrier: number; gap: number; worstLambda: number }
interface CliPath extends CliCurve { tokens: number; predicted: number; slerp: CliCurve }

test("issue 11: the Loss path panel draws the linear and SLERP loss between two example models as points complete, and ends with `weightsoup path --slerp`'s numbers, barriers and chart", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("loss-path", async (page) => {
    await addFolders(page, [root], ["base", "math", "code", "chat"]);
    await byTestId(page, "path-a", "select").selectOption("base");
    await byTestId(page, "path-b", "select").selectOption("math");
    await setField(page, `input[data-testid="path-points"]`, "3");
    await byTestId(page, "path-slerp", "input").check();
    // A short window and text keep the test quick; the Evaluate panel's text stays empty: the built-in text.
    await setField(page, `input[data-testid="eval-context"]`, "64");
    await setField(page, `input[data-testid="eval-max-tokens"]`, "128");
    await page.locator(`button[data-testid="path-run"]:enabled`).waitFor({ state: "attached", timeout: WAIT_MS }).catch(async (e: Error) => {
      throw new Error(`Measure stayed disabled (${await pageDiagnostics(page)}): ${e.message.split("\n")[0]}`);
    });
    // Every redraw of the chart, as it happens.
    await page.evaluate(() => {
      const img = document.querySelector("weightsoup-merge")!.shadowRoot!.querySelector<HTMLImageElement>(`[data-testid="path-chart"]`)!;
      const seen: string[] = [];
      (window as unknown as { pathRedraws: string[] }).pathRedraws = seen;
      new MutationObserver(() => { if (img.dataset.points && seen[seen.length - 1] !== img.dataset.points) seen.push(img.dataset.points); })
        .observe(img, { attributes: true, attributeFilter: ["data-points"] });
    });
    await byTestId(page, "path-run", "button").click();
    // Six points, each its own evaluate call (a pool each): on a loaded machine this takes over a minute.
    await waitForAttribute(page, "data-path-state", "done", undefined, 3 * WAIT_MS);
    await screenshot(page, "loss-path-slerp");
    assert.deepEqual(await page.evaluate(() => (window as unknown as { pathRedraws: string[] }).pathRedraws), ["1", "2", "3", "4", "5", "6"], "the chart is redrawn once per completed point, linear then SLERP");

    const textPath = join(root, "default-text.txt");
    await writeFile(textPath, DEFAULT_TEXT);
    const svgPath = join(root, "cli-path.svg");
    const cli = await runCliJson<CliPath>(["path", join(root, "base"), join(root, "math"), "--slerp", "--text", textPath, "--points", "3", "--context", "64", "--max-tokens", "128", "--svg", svgPath]);
    assert.equal(cli.points.length, 3);
    assert.equal(cli.slerp.points.length, 3);

    const shown = await byTestId(page, "path-row").evaluateAll((rows) => rows.map((row) => {
      const v = (id: string, curve: string) => row.querySelector<HTMLElement>(`[data-testid="${id}"][data-curve="${curve}"]`)!.dataset.value!;
      return {
        lambda: row.querySelector<HTMLElement>(`[data-testid="path-lambda"]`)!.dataset.value!,
        linear: [v("path-nll", "linear"), v("path-perplexity", "linear")], slerp: [v("path-nll", "slerp"), v("path-perplexity", "slerp")],
      };
    }));
    assert.deepEqual(shown, cli.points.map((p, i) => ({
      lambda: String(p.lambda), linear: [String(p.nll), String(p.perplexity)], slerp: [String(cli.slerp.points[i]!.nll), String(cli.slerp.points[i]!.perplexity)],
    })));
    const barriers = await byTestId(page, "path-barrier").evaluateAll((rows) => rows.map((row) => {
      const v = (id: string) => row.querySelector<HTMLElement>(`[data-testid="${id}"]`)!.dataset.value!;
      return [(row as HTMLElement).dataset.curve, v("path-barrier-value"), v("path-gap"), v("path-worst")];
    }));
    assert.deepEqual(barriers, [["linear", cli], ["slerp", cli.slerp]].map(([label, c]) => {
      const curve = c as CliCurve;
      return [label, String(curve.barrier), String(curve.gap), String(curve.worstLambda)];
    }));
    // The endpoints differ, and SLERP is not the straight line: the comparison above is about real numbers.
    assert.notEqual(cli.points[0]!.nll, cli.points[2]!.nll);
    assert.notEqual(cli.points[1]!.nll, cli.slerp.points[1]!.nll);
    assert.match((await byTestId(page, "path-summary").textContent()) ?? "", new RegExp(`^${cli.predicted} predicted tokens of ${cli.tokens} per point\\.`));

    const src = (await byTestId(page, "path-chart", "img").getAttribute("src")) ?? "";
    const prefix = "data:image/svg+xml;charset=utf-8,";
    assert.ok(src.startsWith(prefix), src.slice(0, 60));
    assert.equal(decodeURIComponent(src.slice(prefix.length)), await readFile(svgPath, "utf8"));
  });
});

test("issue 11: a loss path from the recipe (merged in memory) to a model, also after alignment (solved in the workers, the page responsive), equals `weightsoup path RECIPE MODEL --align`", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("loss-path-recipe-aligned", async (page) => {
    await loadExample(page);
    await byTestId(page, "path-a", "select").selectOption({ label: "recipe (merged in memory)" });
    await byTestId(page, "path-b", "select").selectOption("chat");
    await setField(page, `input[data-testid="path-points"]`, "2");
    await byTestId(page, "path-align", "input").check();
    await setField(page, `input[data-testid="eval-context"]`, "64");
    await setField(page, `input[data-testid="eval-max-tokens"]`, "64");
    await page.locator(`button[data-testid="path-run"]:enabled`).waitFor({ state: "attached", timeout: WAIT_MS });
    await page.evaluate(() => { (window as unknown as { longTasks: unknown[] }).longTasks = []; });
    await byTestId(page, "path-run", "button").click();
    // Merging the recipe in memory and weight matching come first: longer than one point takes.
    await waitForAttribute(page, "data-path-state", "done", undefined, 3 * WAIT_MS);

    // Weight matching ran in the workers: they solved the assignments (the main thread, none).
    const aligned = byTestId(page, "path-aligned");
    const workers = Number(await aligned.getAttribute("data-workers")), assignments = Number(await aligned.getAttribute("data-assignments"));
    assert.ok(workers > 0 && assignments > 0, `alignment in the workers: ${await aligned.textContent()}`);
    const longTasks = await page.evaluate(() => (window as unknown as { longTasks: { ms: number; status: string }[] }).longTasks);
    assert.ok(longTasks.every((t) => t.ms < LONGEST_TASK_MS), `the main thread's long tasks during the path: ${JSON.stringify(longTasks)}`);
    process.stderr.write(`loss path with alignment: ${workers} workers solved ${assignments} assignments; main-thread long tasks: ${JSON.stringify(longTasks)}\n`);

    const textPath = join(root, "default-text.txt");
    await writeFile(textPath, DEFAULT_TEXT);
    const cli = await runCliJson<CliCurve & { aligned: CliCurve }>(["path", join(root, "recipe.yml"), join(root, "chat"), "--align", "--text", textPath, "--points", "2", "--context", "64", "--max-tokens", "64"]);
    const shown = (curve: string) => byTestId(page, "path-nll").evaluateAll((cells, c) => cells.filter((x) => (x as HTMLElement).dataset.curve === c).map((x) => (x as HTMLElement).dataset.value!), curve);
    assert.deepEqual(await shown("linear"), cli.points.map((p) => String(p.nll)));
    assert.deepEqual(await shown("aligned linear"), cli.aligned.points.map((p) => String(p.nll)));
    const barriers = await byTestId(page, "path-barrier-value").evaluateAll((cells) => cells.map((x) => (x as HTMLElement).dataset.value!));
    assert.deepEqual(barriers, [String(cli.barrier), String(cli.aligned.barrier)]);
    // The recipe's merge is not the chat model: the two ends differ.
    assert.notEqual(cli.points[0]!.nll, cli.points[1]!.nll);
  }, { init: recordLongTasks });
});

test("issue 11: Cancel stops a loss path; A and B must differ", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("loss-path-cancel", async (page) => {
    await addFolders(page, [join(root, "base"), join(root, "chat")], ["base", "chat"]);
    await byTestId(page, "path-a", "select").selectOption("chat");
    await byTestId(page, "path-b", "select").selectOption("chat");
    assert.equal(await byTestId(page, "path-run", "button").isDisabled(), true);
    assert.equal(await byTestId(page, "path-blocked").textContent(), "A and B are the same model: choose two different ones.");
    await byTestId(page, "path-b", "select").selectOption("base");
    await page.locator(`button[data-testid="path-run"]:enabled`).waitFor({ state: "attached", timeout: WAIT_MS });
    // Run and Cancel in one task: the cancel lands before the first point is measured.
    await page.evaluate(() => {
      const root = document.querySelector("weightsoup-merge")!.shadowRoot!;
      root.querySelector<HTMLButtonElement>(`[data-testid="path-run"]`)!.click();
      root.querySelector<HTMLButtonElement>(`[data-testid="path-cancel"]`)!.click();
    });
    await waitForAttribute(page, "data-path-state", "cancelled");
    assert.equal(await byTestId(page, "path-status").textContent(), "Loss path cancelled.");
    assert.equal(await byTestId(page, "path-results").isHidden(), true);
    assert.equal(await byTestId(page, "path-run", "button").isDisabled(), false);
  });
});
