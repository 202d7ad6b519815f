// Issue 11's greedy soup in the page, end to end in headless Chromium (same harness as
// browser-measure.test.ts): the Greedy soup panel runs greedySoup() on three of the example models of
// `weightsoup example` in the page's worker pool, and shows `weightsoup soup --greedy --json`'s numbers
// on the same files (every ingredient's and step's NLL, the kept list, the uniform soup) and its chart;
// the soup saved to browser storage is byte for byte the folder `weightsoup soup --out` writes. Saving
// the soup again under a taken name asks first, as the merge's save does, and overwrites only when told;
// Cancel stops a save mid-way (held at a deterministic point: the weights written, the text files not)
// and leaves neither the output folder nor its staging folder behind.
//
// Needs a system Chromium (CHROMIUM_PATH, default /usr/bin/chromium) and the built site (`npm run build`).
// Screenshots go to .build/test-artifacts/browser/.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Dialog, Page } from "playwright-core";
import {
  addFolders, byTestId, host, checkPrerequisites, closeBrowserSuite, compareOutputs, inPage, opfsDigests, opfsTree, pageDiagnostics, screenshot, setField,
  startBrowserEnv, waitForAttribute, WAIT_MS, type BrowserEnv,
} from "./helpers/browser";
import { writeExampleFolder } from "../src/example/models";
import { CLI, tempDir } from "./helpers/fixtures";

const TEST_TIMEOUT = 5 * WAIT_MS;

let env: BrowserEnv;
let root: string;

before(async () => {
  await checkPrerequisites();
  root = await tempDir("ws-browser-soup-");
  // The folder `weightsoup example` writes (its models and recipe), by the function the CLI uses.
  await writeExampleFolder(root);
  env = await startBrowserEnv();
});

after(() => closeBrowserSuite(env, root));

interface CliSoup {
  ingredients: { model: string; nll: number; perplexity: number }[];
  trajectory: { candidate: string; nll: number; perplexity: number; kept: boolean }[];
  kept: string[]; nll: number; perplexity: number; uniform: { nll: number; perplexity: number }; tokens: number; predicted: number;
}

/** `weightsoup soup ARGS... --json` run in `root`, so the ingredients are named as the page names them. */
function soupCli(args: string[]): Promise<CliSoup> {
  return new Promise((ok, fail) => {
    execFile(process.execPath, [CLI, "soup", ...args, "--json"], { cwd: root, timeout: 5 * WAIT_MS, maxBuffer: 16 * 2 ** 20 }, (error, stdout, stderr) => {
      if (error) fail(new Error(`CLI soup ${args.join(" ")} failed (${error.message.split("\n")[0]}): ${stderr}`));
      else ok(JSON.parse(stdout) as CliSoup);
    });
  });
}

/**
 * Runs in the page before its scripts: while `holdTextWrites` is set, every write of text to an output
 * file (config.json, README.md: written after the weights) waits until `releaseWrites()`, and `heldWrites`
 * counts the writes waiting. A save is then mid-way at a known point, whatever the machine's speed.
 */
function holdTextWrites(): void {
  const w = window as unknown as { holdTextWrites: boolean; heldWrites: number; releaseWrites: () => void };
  let release: () => void = () => {};
  let gate = new Promise<void>((ok) => { release = ok; });
  w.holdTextWrites = false;
  w.heldWrites = 0;
  w.releaseWrites = () => { w.holdTextWrites = false; release(); };
  const write = FileSystemWritableFileStream.prototype.write;
  FileSystemWritableFileStream.prototype.write = async function (this: FileSystemWritableFileStream, data: FileSystemWriteChunkType) {
    if (w.holdTextWrites && typeof data === "string") {
      w.heldWrites++;
      await gate;
      gate = new Promise<void>((ok) => { release = ok; });
    }
    return write.call(this, data);
  };
}

const values = (page: Page, testId: string) => byTestId(page, testId).evaluateAll((cells) => cells.map((c) => (c as HTMLElement).dataset.value!));

test("issue 11: the Greedy soup panel makes `weightsoup soup --greedy`'s soup of three example models (numbers, kept list, chart), and saves the CLI's very files", { timeout: TEST_TIMEOUT }, async () => {
  await inPage(env, "greedy-soup", "index.html", async (page) => {
    await addFolders(page, [root], ["base", "math", "code", "chat"]);
    // The fine-tunes are the ingredients: the base is unticked.
    await page.locator(`input[data-testid="soup-ingredient"][value="base"]`).uncheck();
    const ingredients = await byTestId(page, "soup-ingredient", "input").evaluateAll((boxes) => boxes.filter((b) => (b as HTMLInputElement).checked).map((b) => (b as HTMLInputElement).value));
    assert.deepEqual([...ingredients].sort(), ["chat", "code", "math"]);
    const heldOut = "The held-out text: a soup is chosen on it. Merging fine-tunes of one base keeps what each learned when their weights agree.\n".repeat(4);
    await setField(page, `textarea[data-testid="soup-text"]`, heldOut);
    // A short window and token limit (the Evaluate panel's) keep the test quick.
    await setField(page, `input[data-testid="eval-context"]`, "64");
    await setField(page, `input[data-testid="eval-max-tokens"]`, "128");
    await page.locator(`button[data-testid="soup-run"]:enabled`).waitFor({ state: "attached", timeout: WAIT_MS }).catch(async (e: Error) => {
      throw new Error(`Make the soup stayed disabled (${await pageDiagnostics(page)}): ${e.message.split("\n")[0]}`);
    });
    await byTestId(page, "soup-run", "button").click();
    await waitForAttribute(page, "data-soup-state", "done");
    await screenshot(page, "greedy-soup-example");

    await writeFile(join(root, "held-out.txt"), heldOut);
    // The ingredients in the page's order: the uniform average sums them in that order.
    const svgPath = join(root, "cli-soup.svg");
    const cli = await soupCli([...ingredients, "--greedy", "--text", "held-out.txt", "--context", "64", "--max-tokens", "128", "--out", "cli-soup", "--svg", svgPath]);
    assert.equal(cli.trajectory.length, 2, "three ingredients: two greedy steps");

    // The same bits as the CLI: the kernels do all the arithmetic, log and exp included (assembly/scalar-math.ts).
    assert.deepEqual(await byTestId(page, "soup-ingredient-row").evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.model)), cli.ingredients.map((x) => x.model));
    assert.deepEqual((await values(page, "soup-ingredient-nll")).map(Number), cli.ingredients.map((x) => x.nll), "ingredient NLL");
    assert.deepEqual((await values(page, "soup-ingredient-perplexity")).map(Number), cli.ingredients.map((x) => x.perplexity), "ingredient perplexity");
    const steps = await byTestId(page, "soup-step").evaluateAll((rows) => rows.map((r) => [(r as HTMLElement).dataset.candidate, (r as HTMLElement).dataset.kept]));
    assert.deepEqual(steps, cli.trajectory.map((s) => [s.candidate, String(s.kept)]));
    assert.deepEqual((await values(page, "soup-step-nll")).map(Number), cli.trajectory.map((s) => s.nll), "step NLL");
    assert.deepEqual((await values(page, "soup-step-perplexity")).map(Number), cli.trajectory.map((s) => s.perplexity), "step perplexity");
    assert.deepEqual(JSON.parse((await byTestId(page, "soup-final").getAttribute("data-kept"))!), cli.kept);
    assert.deepEqual((await values(page, "soup-nll")).map(Number), [cli.nll], "soup NLL");
    assert.deepEqual((await values(page, "soup-uniform-nll")).map(Number), [cli.uniform.nll], "uniform soup NLL");
    // The uniform soup is a different model from each ingredient: the numbers compared are not all one.
    assert.ok(cli.ingredients.every((x) => x.nll !== cli.uniform.nll), JSON.stringify(cli));

    // The chart: `weightsoup soup --greedy --svg`'s file, rendered.
    const chart = byTestId(page, "soup-chart", "img");
    const src = (await chart.getAttribute("src")) ?? "";
    const prefix = "data:image/svg+xml;charset=utf-8,";
    assert.ok(src.startsWith(prefix), src.slice(0, 60));
    assert.equal(decodeURIComponent(src.slice(prefix.length)), await readFile(svgPath, "utf8"));

    // Saved where merges are saved (browser storage here): the CLI's --out folder, file for file.
    await byTestId(page, "save-target", "select").selectOption("opfs");
    // The CLI's folder name: the model card's title is the folder's name.
    await setField(page, `input[data-testid="soup-output-name"]`, "cli-soup");
    await byTestId(page, "soup-save", "button").click();
    await waitForAttribute(page, "data-soup-save-state", "done");
    assert.match((await byTestId(page, "soup-save-status").textContent()) ?? "", /^Saved as “cli-soup”/);
    await compareOutputs(page, "cli-soup", join(root, "cli-soup"));

    // The same name again: refused, with the merge's way out. Its weights are spoiled first, so that
    // overwriting shows in the bytes (the soup is the same one).
    await page.evaluate(async () => {
      const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle("cli-soup");
      const stream = await (await dir.getFileHandle("model.safetensors")).createWritable({ keepExistingData: true });
      await stream.write({ type: "write", position: 0, data: new Uint8Array(64) });
      await stream.close();
    });
    const spoiled = await opfsDigests(page, "cli-soup");
    await byTestId(page, "soup-save", "button").click();
    await waitForAttribute(page, "data-soup-save-state", "error");
    assert.match((await byTestId(page, "soup-save-error").textContent()) ?? "", /cli-soup.*not empty/s);
    await byTestId(page, "soup-overwrite", "button").click();
    const confirm = byTestId(page, "soup-overwrite-confirm", "button");
    await confirm.waitFor({ state: "visible" });
    assert.match((await byTestId(page, "soup-save-error").textContent()) ?? "", /The files in “cli-soup” will be replaced by the soup's\./);
    assert.deepEqual(await opfsDigests(page, "cli-soup"), spoiled, "nothing is overwritten before the confirmation");
    await screenshot(page, "greedy-soup-overwrite");
    await confirm.click();
    await waitForAttribute(page, "data-soup-save-state", "done");
    await compareOutputs(page, "cli-soup", join(root, "cli-soup"));

    // Cancel mid-way: the weights are in the staging folder, the text files not yet.
    await setField(page, `input[data-testid="soup-output-name"]`, "held-soup");
    await page.evaluate(() => { (window as unknown as { holdTextWrites: boolean }).holdTextWrites = true; });
    await byTestId(page, "soup-save", "button").click();
    await page.waitForFunction(() => (window as unknown as { heldWrites: number }).heldWrites > 0, undefined, { timeout: WAIT_MS, polling: 20 });
    const midway = Object.keys(await opfsTree(page)).filter((p) => p.startsWith("held-soup/"));
    assert.ok(midway.some((p) => /^held-soup\/\.weightsoup-partial-[^/]+\/model\.safetensors$/.test(p)), `the weights were being written in a staging folder: ${JSON.stringify(midway)}`);
    assert.equal(await host(page).getAttribute("data-soup-save-state"), "running");
    // Closing the tab mid-save asks first, as mid-merge (staying keeps the save going).
    const dialogs: string[] = [];
    const onDialog = (d: Dialog) => { dialogs.push(d.type()); void d.dismiss(); };
    page.on("dialog", onDialog);
    await page.close({ runBeforeUnload: true });
    for (const deadline = Date.now() + 5000; dialogs.length === 0 && Date.now() < deadline;) await new Promise((ok) => setTimeout(ok, 50));
    page.off("dialog", onDialog);
    assert.deepEqual(dialogs, ["beforeunload"], "closing the tab mid-save asks first");
    assert.equal(await host(page).getAttribute("data-soup-save-state"), "running", "staying keeps the save running");
    await byTestId(page, "soup-save-cancel", "button").click();
    await page.evaluate(() => (window as unknown as { releaseWrites: () => void }).releaseWrites());
    await waitForAttribute(page, "data-soup-save-state", "cancelled");
    assert.equal((await byTestId(page, "soup-save-status").textContent()) ?? "", "Cancelled; nothing was saved.");
    const tree = Object.keys(await opfsTree(page));
    assert.deepEqual(tree.filter((p) => p.startsWith("held-soup/") || p.includes(".weightsoup-partial-")), [], `nothing of the cancelled save is left: ${JSON.stringify(tree)}`);
    assert.ok(await byTestId(page, "soup-save-cancel", "button").isDisabled(), "Cancel is for a save under way only");
    await compareOutputs(page, "cli-soup", join(root, "cli-soup"));
  }, { init: holdTextWrites });
});
