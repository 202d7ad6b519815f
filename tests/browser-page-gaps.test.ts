// Page gaps left by issue 10, end to end in headless Chromium (same harness as browser.test.ts):
// 1. a pasted recipe naming `org/base+org/adapter` (mergekit's model+lora): the adapter folder is
//    picked like a model folder, asked for among the loaded adapters, checked against its base while
//    the recipe is edited, and the merge equals the CLI's byte for byte (and differs from the merge
//    without the adapter, so the adapter was applied);
// 2. a recipe with tokenizer keys whose embeddings do not fit a model's tokenizer is refused before
//    Merge, with the problem the CLI's merge stops at;
// 3. the form shows karcher no weight column (karcher weighs every input the same).
//
// Needs a system Chromium (CHROMIUM_PATH, default /usr/bin/chromium) and the built site (`npm run build`).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { BrowserContext, Page } from "playwright-core";
import { parse } from "yaml";
import {
  addFolders, assertSameWeights, byTestId, checkPrerequisites, closeBrowserSuite, compareOutputs, opfsBytes, inPage, recipeYaml, runCli, screenshot, setField,
  setRecipeYaml, splitSafetensors, startBrowserEnv, waitForRunBlocked, waitForRunEnabled, waitForState, WAIT_MS, type BrowserEnv,
} from "./helpers/browser";
import { baseModel, CLI, fineTune, tempDir, uniform, writeModel, type Shape } from "./helpers/fixtures";
import { encodeTensor, writeSafetensors } from "./reference/safetensors";

const SMALL: Shape = { vocab: 96, hidden: 32, intermediate: 64, layers: 2, heads: 4, kvHeads: 2 };
const TEST_TIMEOUT = 5 * WAIT_MS;

let env: BrowserEnv;
let root: string;

/** A PEFT adapter folder: rank-`r` F32 factors for each module (A [r, in], B [out, r]) of a model of `shape`. */
async function writeAdapter(dir: string, shape: Shape, modules: [string, number, number][], r: number, seed: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tensors = modules.flatMap(([module, out, inp], i) => {
    const values = (n: number, s: number) => Array.from({ length: n }, (_, j) => 0.5 * (uniform(s, j) - 0.5));
    return [
      { name: `base_model.model.${module}.lora_A.weight`, dtype: "F32" as const, shape: [r, inp], data: encodeTensor("F32", values(r * inp, seed + 2 * i)) },
      { name: `base_model.model.${module}.lora_B.weight`, dtype: "F32" as const, shape: [out, r], data: encodeTensor("F32", values(out * r, seed + 2 * i + 1)) },
    ];
  });
  await writeFile(join(dir, "adapter_model.safetensors"), writeSafetensors(tensors));
  await writeFile(join(dir, "adapter_config.json"), JSON.stringify({
    peft_type: "LORA", r, lora_alpha: 2 * r, target_modules: modules.map(([m]) => m.split(".").pop()), base_model_name_or_path: `hidden-${shape.hidden}`,
  }));
}

before(async () => {
  await checkPrerequisites();
  root = await tempDir("ws-browser-gaps-");
  const base = baseModel(701, "F32", SMALL);
  await writeModel(join(root, "base"), base);
  await writeModel(join(root, "math"), fineTune(base, 702, 0.2));
  const h = SMALL.hidden, i = SMALL.intermediate;
  await writeAdapter(join(root, "style-lora"), SMALL, [["model.layers.0.self_attn.q_proj", h, h], ["model.layers.1.mlp.down_proj", h, i]], 4, 703);
  // Factors of a wider model's q_proj: they make no delta of this base's [32, 32].
  await writeAdapter(join(root, "misfit-lora"), { ...SMALL, hidden: 48 }, [["model.layers.0.self_attn.q_proj", 48, 48]], 2, 704);
  // A tokenizer of 100 tokens (config.json vocab_size 100) over 96 embedding rows.
  const tokens = Object.fromEntries(Array.from({ length: 100 }, (_, k) => [`w${k}`, k]));
  await writeModel(join(root, "overlong"), { ...fineTune(base, 705, 0.2), config: { ...base.config, vocab_size: 100 } }, {
    extraFiles: { "tokenizer.json": JSON.stringify({ version: "1.0", model: { type: "WordLevel", vocab: tokens, unk_token: "w0" } }) },
  });
  env = await startBrowserEnv();
});

after(() => closeBrowserSuite(env, root));

const withPage = (name: string, body: (page: Page, context: BrowserContext) => Promise<void>) => inPage(env, name, "index.html", body);

/** The CLI on `recipe`, written next to the model folders; its output folder. */
async function cliMerge(caseName: string, recipe: string): Promise<string> {
  const recipePath = join(root, `recipe-${caseName}.yml`);
  await writeFile(recipePath, recipe);
  const out = join(root, "cli", caseName);
  await mkdir(join(root, "cli"), { recursive: true });
  await runCli(recipePath, out, 0);
  return out;
}

/** What the recipe's problems list shows: each group's code and its problems' text. */
async function shownProblems(page: Page): Promise<{ code: string; problems: string[] }[]> {
  return byTestId(page, "problem-group").evaluateAll((groups) => groups.map((g) => ({
    code: g.getAttribute("data-code") ?? "",
    problems: [...g.querySelectorAll(`[data-testid="problem"]`)].map((li) => li.textContent ?? ""),
  })));
}

const LORA_PASTED = `# a style LoRA on the base, mixed with a fine-tune (model card names)
merge_method: ties
base_model: someorg/base
models:
  - model: someorg/base
  - model: someorg/base+someorg/my-style
    parameters: {weight: 0.6, density: 0.5}
  - model: someorg/math
    parameters: {weight: 0.4, density: 0.7}
`;

test("item 1: a pasted base+adapter recipe: the adapter folder is chosen among the adapters, checked against its base, and merges as the CLI", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("lora", async (page) => {
    await addFolders(page, ["base", "math", "style-lora", "misfit-lora"].map((m) => join(root, m)), ["base", "math", "style-lora", "misfit-lora"]);
    // Adapters are listed as adapters, and are no rows of the form (they are no models to mix).
    const facts = await page.locator(`[data-testid="model"][data-model-name="style-lora"] .facts`).textContent();
    assert.match(facts ?? "", /^LoRA adapter \(PEFT\) · 4 factor tensors/);
    assert.equal(await page.locator(`[data-testid="model"][data-model-name="style-lora"] [data-testid="model-warning"]`).count(), 0, "no warnings from comparing factors with a model");
    const rows = () => page.locator(`[data-testid="model-params"]`).evaluateAll((els) => els.map((el) => el.getAttribute("data-model-name")));
    assert.deepEqual(await rows(), ["base", "math"]);

    await setRecipeYaml(page, LORA_PASTED);
    // someorg/base and someorg/math map by their last segment; the adapter is asked for, among the adapters only.
    const maps = byTestId(page, "model-map", "select");
    await maps.first().waitFor({ state: "visible" });
    assert.deepEqual(await maps.evaluateAll((els) => els.map((el) => el.getAttribute("data-recipe-name"))), ["someorg/my-style"]);
    assert.match((await page.locator(`.mapping label`).first().textContent()) ?? "", /Which loaded LoRA adapter folder is “someorg\/my-style”/);
    const options = await maps.first().locator("option").evaluateAll((els) => els.map((el) => (el as HTMLOptionElement).value).filter(Boolean));
    assert.deepEqual(options, ["style-lora", "misfit-lora"]);
    await waitForRunBlocked(page, /someorg\/my-style/);

    // The wrong adapter is refused as the CLI refuses it, before Merge.
    await maps.first().selectOption("misfit-lora");
    const why = await waitForRunBlocked(page, /misfit-lora\/adapter_model\.safetensors: module "model\.layers\.0\.self_attn\.q_proj": factors A \[2, 48\] and B \[48, 2\] do not make a delta of the base tensor's shape \[32, 32\]/);
    assert.deepEqual((await shownProblems(page)).map((g) => g.code), ["E_ADAPTER"], why);
    await screenshot(page, "lora-misfit");

    await byTestId(page, "model-map", "select").first().selectOption("style-lora");
    await waitForRunEnabled(page);
    assert.deepEqual(await shownProblems(page), []);
    await setField(page, `input[data-testid="output-name"]`, "lora-soup");
    await byTestId(page, "save-target", "select").selectOption("opfs");
    await byTestId(page, "run", "button").click();
    await waitForState(page, "done");
    await screenshot(page, "lora-done");

    const local = LORA_PASTED.replaceAll("someorg/my-style", "style-lora").replaceAll("someorg/", "");
    const cli = await cliMerge("lora", local);
    await compareOutputs(page, "lora-soup", cli, { skip: ["README.md", "mergekit_config.yml", "model.safetensors"] });
    const weights = await opfsBytes(page, "lora-soup/model.safetensors");
    assertSameWeights(weights, new Uint8Array(await readFile(join(cli, "model.safetensors"))), ["recipe_sha256"], "model.safetensors");
    // The adapter was applied: without its entry, the tensors it targets come out otherwise.
    const plain = await cliMerge("no-lora", local.replace("  - model: base+style-lora\n    parameters: {weight: 0.6, density: 0.5}\n", ""));
    const tensorsOf = (bytes: Uint8Array) => {
      const { header, data } = splitSafetensors(bytes);
      const out = new Map<string, string>();
      for (const [name, t] of Object.entries(header)) {
        if (name === "__metadata__") continue;
        const [a, b] = (t as { data_offsets: [number, number] }).data_offsets;
        out.set(name, Buffer.from(data.subarray(a, b)).toString("hex"));
      }
      return out;
    };
    const withLora = tensorsOf(weights), without = tensorsOf(new Uint8Array(await readFile(join(plain, "model.safetensors"))));
    const changed = new Set([...withLora].filter(([name, hex]) => without.get(name) !== hex).map(([name]) => name));
    for (const t of ["model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"]) assert.ok(changed.has(t), `${t} differs with the adapter`);
  });
});

test("item 2: a recipe with tokenizer keys whose embeddings do not fit a tokenizer is refused before Merge, as the CLI's merge refuses it", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("tokenizer-check", async (page) => {
    await addFolders(page, ["base", "math", "overlong"].map((m) => join(root, m)), ["base", "math", "overlong"]);
    const recipe = (other: string) => `merge_method: linear\nmodels:\n  - model: base\n    parameters: {weight: 0.5}\n  - model: ${other}\n    parameters: {weight: 0.5}\ntokenizer_source: union\n`;
    await setRecipeYaml(page, recipe("overlong"));
    const expected = /overlong\/model\.safetensors: tensor "model\.embed_tokens\.weight" has 96 rows, but model overlong's tokenizer has token id 99/;
    await waitForRunBlocked(page, /problems/);
    const shown = await shownProblems(page);
    assert.deepEqual(shown.map((g) => g.code), ["E_SHAPE_MISMATCH"]);
    assert.equal(shown[0]!.problems.length, 2, "embed_tokens and lm_head");
    assert.match(shown[0]!.problems[0]!, expected);
    await screenshot(page, "tokenizer-check");

    // The CLI's merge stops at the same problem (before writing anything).
    const recipePath = join(root, "recipe-overlong.yml");
    await writeFile(recipePath, recipe("overlong"));
    const stderr = await new Promise<string>((ok) => {
      execFile(process.execPath, [CLI, "merge", recipePath, join(root, "cli", "overlong"), "--quiet"], { timeout: WAIT_MS }, (error, _out, err) => ok(error ? err : "(it succeeded)"));
    });
    assert.match(stderr, /\[E_SHAPE_MISMATCH\]/);
    assert.match(stderr, /tensor "model\.embed_tokens\.weight" has 96 rows, but model overlong's tokenizer has token id 99/);

    // The same recipe over a model whose tokenizer fits checks clean.
    await setRecipeYaml(page, recipe("math"));
    await waitForRunEnabled(page);
    assert.deepEqual(await shownProblems(page), []);
  });
});

test("item 3: the form shows karcher no weight column; switching to it drops the weights", { timeout: TEST_TIMEOUT }, async () => {
  await withPage("karcher-form", async (page) => {
    await addFolders(page, ["base", "math"].map((m) => join(root, m)), ["base", "math"]);
    const heads = page.locator(`table:has([data-testid="model-params"]) thead th`);
    assert.deepEqual(await heads.allTextContents(), ["Model", "weight"], "linear (the starter recipe) has its weight column");
    await byTestId(page, "method", "select").selectOption("karcher");
    await page.waitForFunction(() => !document.querySelector("weightsoup-merge")?.shadowRoot?.querySelector(`[data-testid="model-params"] [name="weight"]`));
    assert.deepEqual(await heads.allTextContents(), ["Model"]);
    assert.equal(await page.locator(`[data-testid="per-model-about"]`).isVisible(), false, "no per-model notes either");
    const doc = parse(await recipeYaml(page)) as { merge_method: string; models: { model: string; parameters?: unknown }[] };
    assert.deepEqual(doc, { merge_method: "karcher", models: [{ model: "base" }, { model: "math" }] });
    await waitForRunEnabled(page);
  });
});
