// The model library (issue 12, part 5), end to end in headless Chromium (same harness as browser.test.ts):
// 1. model folders added to the library are listed with their sizes, survive a reload, merge (read by
//    the workers through sync access handles) byte for byte as the same folders picked from disk and
//    as the CLI, and Remove takes a model's files out of the browser's storage;
// 2. an addition that fails leaves nothing that looks like a model: refused up front when the quota
//    cannot hold it, cleaned when it fails after the first file, and a copy a closed page left
//    unfinished (no manifest) is never listed and is removed at the next start.
//
// Needs a system Chromium (CHROMIUM_PATH, default /usr/bin/chromium) and the built site (`npm run build`).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, readFile, readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Page } from "playwright-core";
import {
  addFolders, byTestId, closeBrowserSuite, compareOutputs, inPage, opfsDigests, opfsText, opfsTree, pageDiagnostics, runCli, screenshot,
  setField, setRecipeYaml, startBrowserEnv, waitForModels, waitForRunEnabled, waitForState, WAIT_MS, type BrowserEnv,
} from "./helpers/browser";
import { baseModel, fineTune, tempDir, writeModel, type Shape } from "./helpers/fixtures";

const SMALL: Shape = { vocab: 96, hidden: 32, intermediate: 64, layers: 2, heads: 4, kvHeads: 2 };
const TEST_TIMEOUT = 5 * WAIT_MS;
const LIBRARY = ".weightsoup-library";
const RECIPE = `merge_method: ties
base_model: base
models:
  - model: math
    parameters: {weight: 0.7, density: 0.5}
  - model: code
    parameters: {weight: 0.5, density: 0.6}
`;

let env: BrowserEnv;
let root: string;

before(async () => {
  root = await tempDir("ws-browser-library-");
  const base = baseModel(801, "BF16", SMALL);
  await writeModel(join(root, "base"), base);
  await writeModel(join(root, "math"), fineTune(base, 802, 0.2, { dtype: "BF16" }), { shards: 2 });
  await writeModel(join(root, "code"), fineTune(base, 803, 0.2, { dtype: "BF16" }));
  env = await startBrowserEnv();
});

after(() => closeBrowserSuite(env, root));

/** Bytes of a folder's files on disk (what the library must say it holds). */
async function folderBytes(dir: string): Promise<number> {
  let n = 0;
  for (const f of await readdir(dir)) n += (await stat(join(dir, f))).size;
  return n;
}

/** The library's entries as the page lists them. */
async function shownLibrary(page: Page): Promise<{ name: string; bytes: number }[]> {
  return byTestId(page, "library-model").evaluateAll((els) => els.map((el) => ({ name: el.getAttribute("data-name")!, bytes: Number(el.getAttribute("data-bytes")) })));
}

async function waitForLibrary(page: Page, names: string[]): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const shown = (await shownLibrary(page)).map((m) => m.name);
    if (JSON.stringify(shown) === JSON.stringify(names)) return;
    if (Date.now() > deadline) throw new Error(`library shows ${JSON.stringify(shown)}, expected ${JSON.stringify(names)} (${await pageDiagnostics(page)}; problem: ${await byTestId(page, "library-problem").textContent()})`);
    await page.waitForTimeout(50);
  }
}

/** Adds model folders to the library through its folder input, one at a time, waiting for each. */
async function addToLibrary(page: Page, names: string[]): Promise<void> {
  const input = byTestId(page, "library-add-folder", "input");
  const added: string[] = (await shownLibrary(page)).map((m) => m.name);
  for (const name of names) {
    await input.setInputFiles(join(root, name));
    added.push(name);
    await waitForLibrary(page, [...added].sort());
    await byTestId(page, "library-add", "button").and(page.locator(":enabled")).waitFor();
  }
}

/** The folders inside the library in OPFS. */
async function libraryFolders(page: Page): Promise<string[]> {
  return Object.keys(await opfsTree(page)).filter((p) => p.startsWith(`${LIBRARY}/`) && p.endsWith("/") && p.split("/").length === 3);
}

async function mergeTo(page: Page, output: string): Promise<void> {
  await setRecipeYaml(page, RECIPE);
  await setField(page, `input[data-testid="output-name"]`, output);
  await byTestId(page, "save-target", "select").selectOption("opfs");
  await waitForRunEnabled(page);
  await byTestId(page, "run", "button").click();
  await waitForState(page, "done");
}

test("the model library: added folders are listed with their sizes, survive a reload, merge byte for byte as picked folders and the CLI; Remove frees their storage", { timeout: TEST_TIMEOUT }, async () => {
  const cliOut = join(root, "cli", "merged");
  await mkdir(join(root, "cli"), { recursive: true });
  await writeFile(join(root, "recipe.yml"), RECIPE);
  await runCli(join(root, "recipe.yml"), cliOut);

  await inPage(env, "library", "index.html", async (page) => {
    await addToLibrary(page, ["base", "math", "code"]);
    for (const m of await shownLibrary(page)) assert.equal(m.bytes, await folderBytes(join(root, m.name)), `${m.name}: the size listed is the folder's`);
    assert.equal((await libraryFolders(page)).length, 3, "one folder per model in the library");

    // The same recipe from picked folders, then (after a reload) from the library.
    await addFolders(page, ["base", "math", "code"].map((n) => join(root, n)), ["base", "math", "code"]);
    await mergeTo(page, "from-picked");
    const picked = await opfsDigests(page, "from-picked");

    await page.reload({ waitUntil: "load" });
    await waitForLibrary(page, ["base", "code", "math"]);
    assert.equal(await byTestId(page, "model").count(), 0, "nothing is loaded after the reload but the library");
    for (const name of ["base", "math", "code"]) await page.locator(`[data-testid="library-model"][data-name="${name}"] [data-testid="library-use"]`).click();
    await waitForModels(page, ["base", "math", "code"]);
    await mergeTo(page, "from-library");
    await screenshot(page, "library-merged");
    // Byte for byte, but for the model card, which names the output folder.
    const fromLibrary = await opfsDigests(page, "from-library");
    const card = (dir: string) => opfsText(page, `${dir}/README.md`);
    assert.equal((await card("from-library")).replaceAll("from-library", "from-picked"), await card("from-picked"), "the model cards differ only by the output's name");
    delete fromLibrary["README.md"];
    delete picked["README.md"];
    assert.deepEqual(fromLibrary, picked, "the merge from the library equals the merge from picked folders, file for file");
    await compareOutputs(page, "from-library", cliOut, { skip: ["README.md"] });

    // Remove: the entry, its loaded model and its files go; the others stay.
    await page.locator(`[data-testid="library-model"][data-name="math"] [data-testid="library-remove"]`).click();
    await waitForLibrary(page, ["base", "code"]);
    assert.equal(await page.locator(`[data-testid="model"][data-model-name="math"]`).count(), 0, "the loaded model read from the removed files goes too");
    assert.equal((await libraryFolders(page)).length, 2, "the removed model's folder is gone from the browser's storage");
    await page.reload({ waitUntil: "load" });
    await waitForLibrary(page, ["base", "code"]);
  });
});

test("the model library: an addition that fails leaves nothing that looks like a model, with a clear error", { timeout: TEST_TIMEOUT }, async () => {
  await inPage(env, "library-failures", "index.html", async (page) => {
    // Quota: refused before anything is copied.
    await page.evaluate(() => {
      const real = navigator.storage.estimate.bind(navigator.storage);
      navigator.storage.estimate = async () => ({ ...(await real()), quota: 999, usage: 0 });
    });
    await byTestId(page, "library-add-folder", "input").setInputFiles(join(root, "base"));
    await byTestId(page, "library-problem").filter({ hasText: /base: the model needs .* but this browser lets the page store only 999 B more/ }).waitFor();
    assert.deepEqual(await shownLibrary(page), []);
    assert.deepEqual(await libraryFolders(page), [], "nothing was created");

    // A failure after the first file was copied (here: creating the second file fails): the folder goes.
    await page.reload({ waitUntil: "load" });
    await page.evaluate(() => {
      const create = FileSystemDirectoryHandle.prototype.getFileHandle;
      let created = 0;
      FileSystemDirectoryHandle.prototype.getFileHandle = function (name: string, options?: FileSystemGetFileOptions) {
        if (options?.create && this.name.startsWith("m-") && ++created === 2) return Promise.reject(new DOMException("planted failure", "InvalidStateError"));
        return create.call(this, name, options);
      };
    });
    await byTestId(page, "library-add-folder", "input").setInputFiles(join(root, "math"));
    await byTestId(page, "library-problem").filter({ hasText: /planted failure/ }).waitFor();
    assert.deepEqual(await shownLibrary(page), []);
    assert.deepEqual(await libraryFolders(page), [], "the half-copied folder was removed");

    // What a page closed mid-copy leaves (files, no manifest): never listed, removed at the next start.
    await page.evaluate(async () => {
      const lib = await (await navigator.storage.getDirectory()).getDirectoryHandle(".weightsoup-library", { create: true });
      const dir = await lib.getDirectoryHandle("m-unfinished", { create: true });
      const w = await (await dir.getFileHandle("model.safetensors", { create: true })).createWritable();
      await w.write(new Uint8Array(1000));
      await w.close();
    });
    await page.reload({ waitUntil: "load" });
    await byTestId(page, "library-add", "button").waitFor();
    const deadline = Date.now() + WAIT_MS;
    while ((await libraryFolders(page)).length > 0 && Date.now() < deadline) await page.waitForTimeout(50);
    assert.deepEqual(await libraryFolders(page), [], "the unfinished copy was removed at start-up");
    assert.deepEqual(await shownLibrary(page), []);
    await screenshot(page, "library-failures");
  });
});

test("the model library: a file larger than a copy piece is copied by two workers, a part each, byte for byte", { timeout: TEST_TIMEOUT }, async () => {
  // About 54 MB in one file: parts [0, 32 MiB) and [32 MiB, end), each of two 16 MiB pieces or more.
  const big = join(root, "big");
  await writeModel(big, baseModel(811, "F32", { vocab: 4600, hidden: 1024, intermediate: 64, layers: 1, heads: 4, kvHeads: 2 }));
  const files = (await readdir(big)).filter((f) => f.endsWith(".safetensors"));
  assert.equal(files.length, 1);
  const bytes = await readFile(join(big, files[0]!));
  assert.ok(bytes.length > 48 * 2 ** 20, `the file (${bytes.length} bytes) spans more than three pieces`);
  await inPage(env, "library-parts", "index.html", async (page) => {
    await addToLibrary(page, ["big"]);
    assert.deepEqual(await shownLibrary(page), [{ name: "big", bytes: await folderBytes(big) }]);
    const [folder] = await libraryFolders(page);
    const copied = await opfsDigests(page, folder!.slice(0, -1));
    assert.deepEqual(copied[files[0]!], { size: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex") }, "the copy has the picked file's bytes");
  });
});
