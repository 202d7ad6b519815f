// Issue 11's Sweep panel, end to end in headless Chromium (same harness as browser-measure.test.ts):
// the panel sweeps the recipe in the editor (the example recipe of `weightsoup example`, on its
// models) over a key's values with the library's sweep() in the page's worker pool; its chart grows
// as each point is scored, and it ends with `weightsoup sweep --json`'s numbers (every value, NLL,
// perplexity and KL exactly) and `weightsoup sweep --svg`'s very chart. Cancel stops a sweep while
// its layers run; a SPEC that is no SPEC is refused at its row, and a KEY the recipe does not have
// shows sweep()'s typed problem. A tensor merged NaN throughout is listed as the CLI's warning in the
// Evaluate, Sweep and Generate panels.
//
// Needs a system Chromium (CHROMIUM_PATH, default /usr/bin/chromium) and the built site (`npm run build`).
// Screenshots go to .build/test-artifacts/browser/.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cp, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { BrowserContext, Page } from "playwright-core";
import { parse } from "yaml";
import {
  addFolders, byTestId, checkPrerequisites, closeBrowserSuite, inPage, pageDiagnostics, recipeYaml, runCliJson, screenshot, setField, setRecipeYaml,
  startBrowserEnv, waitForAttribute, WAIT_MS, type BrowserEnv,
} from "./helpers/browser";
import { DEFAULT_TEXT } from "../src/eval/default-text";
import { writeExampleFolder } from "../src/example/models";
import exampleRecipe from "../src/example/recipe.yml";
import { CLI, tempDir } from "./helpers/fixtures";

const TEST_TIMEOUT = 5 * WAIT_MS;
/** The chat model's weight in the example recipe, at four values (0 leaves chat out of the merge). */
const KEY = "models[2].parameters.weight";
const SPEC = "0:1.5:4";

let env: BrowserEnv;
let root: string;

before(async () => {
  await checkPrerequisites();
  root = await tempDir("ws-browser-sweep-");
  // The folder `weightsoup example` writes (its models and recipe), by the function the CLI uses.
  await writeExampleFolder(root);
  env = await startBrowserEnv();
});

after(() => closeBrowserSuite(env, root));

const withPage = (name: string, body: (page: Page, context: BrowserContext) => Promise<void>) => inPage(env, name, "index.html", body);

/** The example's models and recipe, a short window and text (the Evaluate panel's, built-in text), one vary row. */
async function loadExample(page: Page, key = KEY, spec = SPEC): Promise<void> {
  await addFolders(page, [root], ["base", "math", "code", "chat"]);
  await setRecipeYaml(page, exampleRecipe);
  await setField(page, `input[data-testid="eval-context"]`, "64");
  await setField(page, `input[data-testid="eval-max-tokens"]`, "128");
  await setField(page, `input[data-testid="sweep-key"]`, key);
  await setField(page, `input[data-testid="sweep-spec"]`, spec);
}

async function waitForSweepEnabled(page: Page): Promise<void> {
  await page.locator(`button[data-testid="sweep-run"]:enabled`).waitFor({ state: "attached", timeout: WAIT_MS }).catch(async (e: Error) => {
    const why = (await byTestId(page, "sweep-blocked").textContent()) ?? "";
    throw new Error(`Sweep stayed disabled ("${why}"; ${await pageDiagnostics(page)}): ${e.message.split("\n")[0]}`);
  });
}

interface CliSweep {
  points: { values: Record<string, number>; nll: number; perplexity: number; against: { model: string; kl: number }[] }[];
  best: number;
  tokens: number;
  predicted: number;
}

test("issue 11: the Sweep panel sweeps the example recipe, its chart growing point by point, and ends with `weightsoup sweep`'s numbers and chart", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("sweep", async (page) => {
    await loadExample(page);
    // Every point is compared with the base: the Evaluate panel's "Compare with (KL)" tick.
    await page.locator(`[data-testid="eval-candidate"][data-id="model:base"] input[data-testid="eval-against"]`).check();
    assert.match((await byTestId(page, "sweep-text-source").textContent()) ?? "", /compared with base/);
    await waitForSweepEnabled(page);

    // Every change of the chart's point count and of the run state, in order (rebuilt from the
    // mutation records' old values, so changes that land in one task are all seen).
    await page.evaluate(() => {
      const host = document.querySelector("weightsoup-merge")!;
      const img = host.shadowRoot!.querySelector<HTMLImageElement>(`[data-testid="sweep-chart"]`)!;
      const seen: string[] = [];
      (window as unknown as { sweepTimeline: string[] }).sweepTimeline = seen;
      // An attribute set again to the value it has (each store update sets data-sweep-state) is no change.
      const last = new Map<string, string | null>();
      const observer = new MutationObserver((records) => records.forEach((r, i) => {
        const next = records.slice(i + 1).find((q) => q.target === r.target && q.attributeName === r.attributeName);
        const value = next ? next.oldValue : (r.target as Element).getAttribute(r.attributeName!);
        if (last.get(r.attributeName!) === value) return;
        last.set(r.attributeName!, value);
        seen.push(`${r.attributeName}=${value}`);
      }));
      observer.observe(img, { attributes: true, attributeFilter: ["data-points"], attributeOldValue: true });
      observer.observe(host, { attributes: true, attributeFilter: ["data-sweep-state"], attributeOldValue: true });
    });
    await byTestId(page, "sweep-run", "button").click();
    await waitForAttribute(page, "data-sweep-state", "done");
    await screenshot(page, "sweep-example");
    assert.deepEqual(await page.evaluate(() => (window as unknown as { sweepTimeline: string[] }).sweepTimeline),
      ["data-sweep-state=running", "data-points=1", "data-points=2", "data-points=3", "data-points=4", "data-sweep-state=done"],
      "the chart is redrawn with 1, 2, 3, then 4 points while the sweep runs");

    const textPath = join(root, "default-text.txt");
    await writeFile(textPath, DEFAULT_TEXT);
    const svgPath = join(root, "cli-sweep.svg");
    const recipePath = join(root, "recipe.yml");
    const cli = await runCliJson<CliSweep>(["sweep", recipePath, "--vary", `${KEY}=${SPEC}`, "--text", textPath, "--context", "64", "--max-tokens", "128",
      "--against", join(root, "base"), "--svg", svgPath]);
    assert.equal(cli.points.length, 4);

    const shown = await byTestId(page, "sweep-row").evaluateAll((rows) => rows.map((row) => {
      const v = (id: string) => [...row.querySelectorAll<HTMLElement>(`[data-testid="${id}"]`)].map((td) => td.dataset.value!);
      return { values: v("sweep-value"), nll: v("sweep-nll")[0], perplexity: v("sweep-perplexity")[0], kl: v("sweep-kl") };
    }));
    assert.deepEqual(shown.map((r) => r.values), cli.points.map((p) => [String(p.values[KEY])]));
    // The same bits as the CLI: the kernels do all the arithmetic, log and exp included (assembly/scalar-math.ts).
    assert.deepEqual(shown.map((r) => Number(r.nll)), cli.points.map((p) => p.nll), "NLL");
    assert.deepEqual(shown.map((r) => Number(r.perplexity)), cli.points.map((p) => p.perplexity), "perplexity");
    assert.deepEqual(shown.flatMap((r) => r.kl.map(Number)), cli.points.flatMap((p) => p.against.map((a) => a.kl)), "KL");
    // The points differ, and chat at weight 0 is no merge of chat at all: the comparison is about real numbers.
    assert.deepEqual(cli.points.map((p) => p.values[KEY]), [0, 0.5, 1, 1.5]);
    assert.equal(new Set(cli.points.map((p) => p.nll)).size, 4, JSON.stringify(cli.points));
    assert.ok(cli.points.every((p) => p.against.length === 1 && p.against[0]!.kl > 0), JSON.stringify(cli.points));
    assert.equal(await byTestId(page, "sweep-best").getAttribute("data-index"), String(cli.best));
    assert.match((await byTestId(page, "sweep-best").textContent()) ?? "", new RegExp(` ${cli.predicted} predicted tokens of ${cli.tokens} per point`));

    // The chart is the CLI's file, byte for byte but for the recipe's name in its title (the CLI names the
    // recipe by its path; the page's recipe is editor text, named "recipe"), and the browser rendered it.
    const chart = byTestId(page, "sweep-chart", "img");
    const src = (await chart.getAttribute("src")) ?? "";
    const prefix = "data:image/svg+xml;charset=utf-8,";
    assert.ok(src.startsWith(prefix), src.slice(0, 60));
    const cliSvg = await readFile(svgPath, "utf8");
    const title = `${recipePath}: NLL over ${KEY}`;
    assert.ok(cliSvg.includes(title), "the CLI's chart names its recipe file");
    assert.equal(decodeURIComponent(src.slice(prefix.length)), cliSvg.replaceAll(title, `recipe: NLL over ${KEY}`));
    const size = await chart.evaluate((img: HTMLImageElement) => img.decode().then(() => [img.naturalWidth, img.naturalHeight]));
    assert.ok(size[0]! > 100 && size[1]! > 100, `chart rendered at ${size.join("x")}`);

    // "Use the best point's recipe" puts that point's recipe in the editor: the example's, with the best weight.
    await byTestId(page, "sweep-use-best", "button").click();
    const best = parse(await recipeYaml(page)) as { models: { parameters: { weight: unknown } }[] };
    const original = parse(exampleRecipe) as typeof best;
    original.models[2]!.parameters.weight = cli.points[cli.best]!.values[KEY];
    assert.deepEqual(best, original);
  });
});

/** +inf at element 5 of one BF16 tensor of a safetensors file (8-byte header length, JSON header, data). */
async function plantInfinity(file: string, tensor: string): Promise<void> {
  const bytes = await readFile(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString("utf8")) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  assert.equal(header[tensor]!.dtype, "BF16");
  bytes.writeUInt16LE(0x7f80, 8 + headerLength + header[tensor]!.data_offsets[0] + 2 * 5);
  await writeFile(file, bytes);
}

test("a recipe's tensor merged NaN throughout (an infinite input) is listed in the Evaluate, Sweep and Generate panels as the CLI's warning", { timeout: TEST_TIMEOUT }, async () => {
  // The example's base, and its math model with one +inf: dare_ties' L1 rescale of math's task vector
  // is then NaN, so the tensor is merged NaN throughout at every point.
  const dir = join(root, "nonfinite");
  const tensor = "model.layers.0.mlp.up_proj.weight";
  await cp(join(root, "base"), join(dir, "base"), { recursive: true });
  await cp(join(root, "math"), join(dir, "infinite"), { recursive: true });
  await plantInfinity(join(dir, "infinite", "model.safetensors"), tensor);
  const recipe = "merge_method: dare_ties\nbase_model: base\nmodels:\n  - model: infinite\n    parameters: {weight: 1, density: 0.5}\ndtype: bfloat16\n";
  await writeFile(join(dir, "recipe.yml"), recipe);
  const cli = spawnSync(process.execPath, [CLI, "merge", join(dir, "recipe.yml"), join(root, "nonfinite-merged"), "--quiet"], { encoding: "utf8" });
  assert.equal(cli.status, 0, cli.stderr);
  // The page names a picked folder's files from the folder down; the CLI by their paths.
  const printed = cli.stderr.split("\n").filter((l) => l.startsWith("weightsoup: warning: ")).map((l) => l.slice("weightsoup: warning: ".length).replaceAll(`${dir}/`, ""));
  assert.equal(printed.length, 1, cli.stderr);
  assert.ok(printed[0]!.startsWith(`${tensor}: `), printed[0]);
  const shown = async (prefix: string) => (await byTestId(page!, `${prefix}-warning`).allTextContents()).map((w) => w.replace(/^⚠ /, ""));
  let page: Page | undefined;
  await withPage("nonfinite-panels", async (p) => {
    page = p;
    await addFolders(p, [dir], ["base", "infinite"]);
    await setRecipeYaml(p, recipe);
    await setField(p, `input[data-testid="eval-context"]`, "32");
    await setField(p, `input[data-testid="eval-max-tokens"]`, "32");
    await byTestId(p, "eval-builtin", "button").click();
    // Evaluate: the recipe merged in memory, nothing else.
    for (const id of ["model:base", "model:infinite"]) await p.locator(`[data-testid="eval-candidate"][data-id="${id}"] input[data-testid="eval-score"]`).uncheck();
    await p.locator(`[data-testid="eval-candidate"][data-id="recipe"] input[data-testid="eval-score"]`).check();
    await byTestId(p, "eval-run", "button").click();
    await waitForAttribute(p, "data-eval-state", "done");
    assert.deepEqual(await shown("eval"), printed, "Evaluate");
    // Sweep: two points, each merging the tensor NaN; the message once.
    await setField(p, `input[data-testid="sweep-key"]`, "models[0].parameters.weight");
    await setField(p, `input[data-testid="sweep-spec"]`, "0.5,1");
    await waitForSweepEnabled(p);
    await byTestId(p, "sweep-run", "button").click();
    await waitForAttribute(p, "data-sweep-state", "done");
    assert.deepEqual(await shown("sweep"), printed, "Sweep");
    // Generate from the recipe row.
    await byTestId(p, "gen-model", "select").selectOption("recipe");
    await byTestId(p, "gen-other", "select").selectOption("none");
    await setField(p, `input[data-testid="gen-max-new"]`, "2");
    await setField(p, `textarea[data-testid="gen-prompt"]`, "Four score");
    await byTestId(p, "gen-run", "button").click();
    await waitForAttribute(p, "data-generate-state", "done");
    assert.deepEqual(await shown("gen"), printed, "Generate");
    await screenshot(p, "nonfinite-panel-warnings");
  });
});

test("Generate's recipe row merges with the page's seed, as Merge does: the CLI's generate --merge-seed (found by the stop 38 page audit: DARE's drops at seed 0)", { timeout: TEST_TIMEOUT }, async () => {
  const recipe = "merge_method: dare_ties\nbase_model: base\nmodels:\n  - model: math\n    parameters: {weight: 1, density: 0.3}\n  - model: code\n    parameters: {weight: 1, density: 0.3}\ndtype: bfloat16\n";
  await writeFile(join(root, "dare.yml"), recipe);
  const prompt = "Four score and seven years ago";
  const cli = async (seed: number) => (await runCliJson<{ ids: number[] }>(["generate", join(root, "dare.yml"), "--prompt", prompt, "--max-new-tokens", "8", "--merge-seed", String(seed), "--json"])).ids.join(", ");
  const [at0, at5] = [await cli(0), await cli(5)];
  assert.notEqual(at0, at5, "fixture: the two merge seeds continue differently");
  await withPage("generate-merge-seed", async (page) => {
    await addFolders(page, [root], ["base", "math", "code", "chat"]);
    await setRecipeYaml(page, recipe);
    await setField(page, `input[data-testid="seed"]`, "5");
    await byTestId(page, "gen-model", "select").selectOption("recipe");
    await byTestId(page, "gen-other", "select").selectOption("none");
    await setField(page, `input[data-testid="gen-max-new"]`, "8");
    await setField(page, `textarea[data-testid="gen-prompt"]`, prompt);
    await byTestId(page, "gen-run", "button").click();
    await waitForAttribute(page, "data-generate-state", "done");
    assert.equal((await byTestId(page, "gen-ids").first().textContent())?.trim(), at5);
  });
});

test("the storage check before a merge counts the output and the donor's small files, not the donor's weights (found by the stop 38 page audit: a merge that fit was refused)", { timeout: TEST_TIMEOUT }, async () => {
  // A linear merge of two example models writes about one model's weights. With room for 1.5 of them, it
  // fits; counting the donor's own weights too (two models' worth) did not.
  const weights = (await stat(join(root, "math", "model.safetensors"))).size;
  await withPage("quota-counts-output", async (page) => {
    await page.evaluate((room) => {
      const real = navigator.storage.estimate.bind(navigator.storage);
      navigator.storage.estimate = async () => { const r = await real(); return { ...r, quota: (r.usage ?? 0) + room }; };
    }, Math.round(1.5 * weights));
    await addFolders(page, [root], ["base", "math", "code", "chat"]);
    await setRecipeYaml(page, "merge_method: linear\nmodels:\n  - model: math\n    parameters: {weight: 1}\n  - model: code\n    parameters: {weight: 1}\n");
    await setField(page, `input[data-testid="output-name"]`, "fits");
    await byTestId(page, "save-target", "select").selectOption("opfs");
    await byTestId(page, "run", "button").click();
    await waitForAttribute(page, "data-state", "done");
  });
});

test("a picked file that changes on disk before it is read is E_IO naming it, not an unexpected error (found by the stop 38 page audit)", { timeout: TEST_TIMEOUT }, async () => {
  const dir = join(root, "changing");
  await cp(join(root, "math"), join(dir, "changed"), { recursive: true });
  await withPage("changed-file", async (page) => {
    await addFolders(page, [root, dir], ["base", "math", "code", "chat", "changed"]);
    await setRecipeYaml(page, "merge_method: linear\nmodels:\n  - model: base\n    parameters: {weight: 1}\n  - model: changed\n    parameters: {weight: 1}\n");
    await setField(page, `input[data-testid="output-name"]`, "from-changed");
    // Rewritten after it was picked, as a download still being written or a replaced file would be.
    const file = join(dir, "changed", "model.safetensors");
    await writeFile(file, (await readFile(file)).subarray(0, 1_000_000));
    await byTestId(page, "run", "button").click();
    await waitForAttribute(page, "data-state", "error");
    const groups = await byTestId(page, "problem-group").evaluateAll((gs) => gs.map((g) => ({ code: g.getAttribute("data-code"), text: g.textContent ?? "" })));
    assert.deepEqual(groups.map((g) => g.code), ["E_IO"], JSON.stringify(groups));
    assert.match(groups[0]!.text, /changed\/model\.safetensors: cannot read it: the browser can no longer read it/);
  });
});

test("a multi-stage recipe is offered where it can run (Merge, a path's end) and not where it cannot (Evaluate, Generate), and Sweep says why (found by the stop 38 page audit: offered, it only failed)", { timeout: TEST_TIMEOUT }, async () => {
  const staged = "name: mid\nmerge_method: linear\nmodels:\n  - model: math\n    parameters: {weight: 1}\n  - model: code\n    parameters: {weight: 1}\n---\nmerge_method: linear\nmodels:\n  - model: mid\n    parameters: {weight: 1}\n  - model: chat\n    parameters: {weight: 1}\n";
  await withPage("stages-candidates", async (page) => {
    await addFolders(page, [root], ["base", "math", "code", "chat"]);
    await setRecipeYaml(page, staged);
    await page.locator(`[data-testid="run"]:not([disabled])`).waitFor();
    const options = (id: string) => byTestId(page, id, "select").locator("option").evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value));
    assert.equal(await page.locator(`[data-testid="eval-candidate"][data-id="recipe"]`).count(), 0, "Evaluate does not offer it");
    assert.ok(!(await options("gen-model")).includes("recipe"), "Generate does not offer it");
    assert.ok((await options("path-a")).includes("recipe"), "a path's end does: merge() runs its stages");
    await setField(page, `input[data-testid="sweep-key"]`, "models[0].parameters.weight");
    await setField(page, `input[data-testid="sweep-spec"]`, "0.5,1");
    await page.waitForFunction(() => /multi-stage recipe is run by Merge only/.test(document.querySelector("weightsoup-merge")?.shadowRoot?.querySelector(`[data-testid="sweep-blocked"]`)?.textContent ?? ""), undefined, { timeout: WAIT_MS });
    // One document again: offered everywhere.
    await setRecipeYaml(page, "merge_method: linear\nmodels:\n  - model: math\n    parameters: {weight: 1}\n  - model: code\n    parameters: {weight: 1}\n");
    await page.locator(`[data-testid="eval-candidate"][data-id="recipe"]`).waitFor();
    assert.ok((await options("gen-model")).includes("recipe"));
  });
});

test("issue 11: Cancel stops a sweep while its layers run, and Sweep is enabled again", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("sweep-cancel", async (page) => {
    await loadExample(page);
    await waitForSweepEnabled(page);
    // Cancel as soon as the status shows the first layer running: mid-sweep, whatever the machine's speed.
    await page.evaluate(() => {
      const root = document.querySelector("weightsoup-merge")!.shadowRoot!;
      const status = root.querySelector<HTMLElement>(`[data-testid="sweep-status"]`)!;
      const observer = new MutationObserver(() => {
        if (!/layer \d+ of \d+/.test(status.textContent ?? "")) return;
        (window as unknown as { cancelledAt: string }).cancelledAt = status.textContent!;
        root.querySelector<HTMLButtonElement>(`[data-testid="sweep-cancel"]`)!.click();
        observer.disconnect();
      });
      observer.observe(status, { childList: true, characterData: true, subtree: true });
      root.querySelector<HTMLButtonElement>(`[data-testid="sweep-run"]`)!.click();
    });
    await waitForAttribute(page, "data-sweep-state", "cancelled");
    assert.match(await page.evaluate(() => (window as unknown as { cancelledAt?: string }).cancelledAt ?? ""), /^Points? [\d-]+ of 4: layer \d+ of \d+$/);
    assert.equal(await byTestId(page, "sweep-status").textContent(), "Sweep cancelled.");
    assert.equal(await byTestId(page, "sweep-results").isHidden(), true);
    assert.equal(await byTestId(page, "sweep-error").isHidden(), true);
    assert.equal(await byTestId(page, "sweep-cancel", "button").isDisabled(), true);
    assert.equal(await byTestId(page, "sweep-run", "button").isDisabled(), false, "Sweep can run again");
  });
});

test("issue 11: a SPEC that is no list or range is refused at its row; a KEY the recipe does not have shows sweep()'s typed problem", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("sweep-refused", async (page) => {
    await loadExample(page, KEY, "0:1");
    const rowError = byTestId(page, "sweep-vary-error");
    await rowError.waitFor({ state: "visible" });
    assert.match((await rowError.textContent()) ?? "", /^--vary models\[2\]\.parameters\.weight: "0:1" is neither a list .* nor a range/);
    assert.equal(await byTestId(page, "sweep-run", "button").isDisabled(), true);
    assert.equal(await byTestId(page, "sweep-blocked").textContent(), "A key or its values cannot be used (see the row).");

    // The example recipe has three models: models[7] is no key of it, which only the recipe can say.
    await setField(page, `input[data-testid="sweep-key"]`, "models[7].parameters.weight");
    await setField(page, `input[data-testid="sweep-spec"]`, "0,1");
    assert.equal(await rowError.isHidden(), true);
    await waitForSweepEnabled(page);
    await byTestId(page, "sweep-run", "button").click();
    await waitForAttribute(page, "data-sweep-state", "error");
    const group = byTestId(page, "sweep-error").locator(`[data-testid="problem-group"]`);
    assert.equal(await group.getAttribute("data-code"), "E_OPTION");
    assert.match((await group.locator(`[data-testid="problem"]`).textContent()) ?? "", /^--vary models\[7\]\.parameters\.weight: recipe:\d+:\d+: models has 3 entries, so there is no \[7\]$/);
    assert.equal(await byTestId(page, "sweep-results").isHidden(), true);
    assert.equal(await byTestId(page, "sweep-chart", "img").isHidden(), true);
  });
});
