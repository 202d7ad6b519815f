// The page's live recipe check where headers are not enough, without a browser: `base+adapter` names
// (mergekit's model+lora) map to a model folder and a LoRA adapter folder, and the adapter is checked
// against its base as the merge checks it; recipes with tokenizer keys get the merge's embedding check
// (token ids against embedding rows, row lengths) before any weights are read. Models are tiny
// hand-made folders; the expected problems are written out by hand from their shapes.
import assert from "node:assert/strict";
import { test } from "node:test";
import { mappingOf } from "../site/ui/mapping";
import { loadModel, type PickedModel } from "../site/ui/models";
import { checkRecipe, completeCheck } from "../site/ui/recipe-check";
import { encodeTensor, writeSafetensors } from "./reference/safetensors";

const none = new Map<string, string>();
const blob = (data: Uint8Array | string) => new Blob([data as Uint8Array<ArrayBuffer> | string]) as File;
const f32 = (name: string, shape: number[], fill = 0.5) => ({ name, dtype: "F32" as const, shape, data: encodeTensor("F32", new Array(shape.reduce((a, b) => a * b, 1)).fill(fill)) });

/** A WordLevel tokenizer.json of `n` tokens t0..t(n-1). */
const tokenizer = (n: number) => JSON.stringify({
  version: "1.0", added_tokens: [], normalizer: null, pre_tokenizer: { type: "Whitespace" }, post_processor: null, decoder: null,
  model: { type: "WordLevel", vocab: Object.fromEntries(Array.from({ length: n }, (_, i) => [`t${i}`, i])), unk_token: "t0" },
});

/**
 * A one-layer model folder: `rows` embedding (and lm_head) rows of `hidden` columns, a tokenizer of
 * `tokens` tokens and config.json vocab_size `vocab` (default: tokens), loaded as the page loads one.
 */
async function model(name: string, o: { rows: number; hidden?: number; tokens: number; vocab?: number }): Promise<PickedModel> {
  const hidden = o.hidden ?? 4;
  const weights = writeSafetensors([
    f32("model.embed_tokens.weight", [o.rows, hidden]),
    f32("model.layers.0.mlp.up_proj.weight", [3, 4]),
    f32("model.norm.weight", [4]),
    f32("lm_head.weight", [o.rows, hidden]),
  ]);
  const config = { architectures: ["LlamaForCausalLM"], model_type: "llama", vocab_size: o.vocab ?? o.tokens, hidden_size: 4, num_hidden_layers: 1 };
  return loadModel(name, new Map([
    ["model.safetensors", blob(weights)], ["config.json", blob(JSON.stringify(config))],
    ["tokenizer.json", blob(tokenizer(o.tokens))], ["tokenizer_config.json", blob("{}")],
  ]));
}

/** A PEFT adapter folder changing up_proj [3, 4] with rank 1 (A [1, cols], B [3, 1]). */
async function adapter(name: string, cols = 4): Promise<PickedModel> {
  const weights = writeSafetensors([
    f32("base_model.model.model.layers.0.mlp.up_proj.lora_A.weight", [1, cols], 0.25),
    f32("base_model.model.model.layers.0.mlp.up_proj.lora_B.weight", [3, 1], 0.25),
  ]);
  const config = { peft_type: "LORA", r: 1, lora_alpha: 2, target_modules: ["model.layers.0.mlp.up_proj"] };
  return loadModel(name, new Map([["adapter_config.json", blob(JSON.stringify(config))], ["adapter_model.safetensors", blob(weights)]]));
}

const linear = (...names: string[]) => `merge_method: linear\nmodels:\n${names.map((n) => `  - model: ${n}\n    parameters: {weight: 1}\n`).join("")}`;
const codes = (c: { problems: { code: string }[] }) => c.problems.map((p) => p.code);

test("a base+adapter name maps to a model folder and an adapter folder, each by its own name", () => {
  const m = mappingOf(`${linear("org/base+org/style", "org/math")}base_model: org/base\n`, ["base", "style", "math"], none);
  assert.deepEqual(m.recipeNames.sort(), ["org/base", "org/base+org/style", "org/math"]);
  assert.deepEqual(m.names.filter((n) => n !== "org/base").sort(), ["org/math", "org/style"]);
  assert.deepEqual([...m.loras], [["org/base+org/style", { base: "org/base", adapter: "org/style" }]]);
  assert.deepEqual([...m.adapters], ["org/style"]);
  assert.deepEqual(Object.fromEntries(m.map), { "org/base": "base", "org/style": "style", "org/math": "math" });
  assert.deepEqual(m.unmapped, []);
  // An unknown adapter is asked for by itself; a malformed reference stays one name (the engine says why).
  assert.deepEqual(mappingOf(linear("base+other", "math"), ["base", "math"], none).unmapped, ["other"]);
  assert.deepEqual(mappingOf(linear("a+b+c"), ["a"], none).names, ["a+b+c"]);
});

test("an adapter folder is loaded as an adapter, not as a model", async () => {
  const style = await adapter("style");
  assert.equal(style.adapter, true);
  assert.equal(style.loaded, undefined, "no model: the form and the starter recipe leave it out");
  assert.equal(style.error, undefined);
  assert.equal(style.report?.tensors.length, 2);
});

test("the check reads a base+adapter name's adapter against its base, as the merge does", async () => {
  const models = [await model("base", { rows: 5, tokens: 5 }), await model("math", { rows: 5, tokens: 5 }), await adapter("style"), await adapter("misfit", 5)];
  const fits = checkRecipe(linear("org/base+org/style", "math"), models, none);
  assert.deepEqual([codes(fits), fits.unmapped, fits.pending], [[], [], true], "headers are fine; the adapter is still to be read");
  const fitsDone = await completeCheck(fits);
  assert.deepEqual([codes(fitsDone), fitsDone.pending], [[], false]);

  // lora_A of misfit is [1, 5]; up_proj is [3, 4]: no delta of its shape.
  const misfit = await completeCheck(checkRecipe(linear("base+misfit", "math"), models, none));
  assert.deepEqual(codes(misfit), ["E_ADAPTER"]);
  assert.match(misfit.problems[0]!.message, /misfit\/adapter_model\.safetensors: module "model\.layers\.0\.mlp\.up_proj".*\[1, 5\].*\[3, 4\]/);

  // An adapter folder where a model belongs, and a model folder where an adapter belongs.
  const asModel = checkRecipe(linear("style", "math"), models, none);
  assert.deepEqual([codes(asModel), asModel.pending], [["E_ADAPTER"], false]);
  assert.match(asModel.problems[0]!.message, /LoRA adapter folder style/);
  const asAdapter = checkRecipe(linear("base+math"), models, none);
  assert.deepEqual(codes(asAdapter), ["E_ADAPTER"]);
  assert.match(asAdapter.problems[0]!.message, /math is a model folder, not a PEFT LoRA adapter/);
  // A malformed reference is refused with the recipe parser's reason.
  const malformed = checkRecipe(linear("base+misfit+x"), models, none);
  assert.deepEqual(codes(malformed), ["E_RECIPE"]);
  assert.match(malformed.problems[0]!.message, /BASE\+ADAPTER, with one "\+"/);
});

test("with tokenizer keys the check compares the embeddings with the output vocabulary before any weights are read", async () => {
  const models = [
    await model("base", { rows: 5, tokens: 5 }),
    await model("same", { rows: 5, tokens: 5 }),
    // 6 tokens (vocab_size 6) but 5 embedding rows: token id 5 has no row.
    await model("short", { rows: 6 - 1, tokens: 6 }),
    // Embedding rows of 3 columns where the others have 4 (its other tensors match).
    await model("narrow", { rows: 5, hidden: 3, tokens: 5 }),
  ];
  const recipe = (other: string) => `${linear("base", other)}tokenizer_source: union\n`;
  for (const other of ["short", "narrow"]) {
    const headers = checkRecipe(recipe(other), models, none);
    assert.deepEqual([codes(headers), headers.pending], [[], true], `${other}: the header pass alone does not see it`);
  }
  const short = await completeCheck(checkRecipe(recipe("short"), models, none));
  assert.deepEqual(short.problems.map((p) => [p.code, p.model]), [["E_SHAPE_MISMATCH", "short"], ["E_SHAPE_MISMATCH", "short"]], "embed_tokens and lm_head");
  assert.match(short.problems[0]!.message, /tensor "model\.embed_tokens\.weight" has 5 rows, but model short's tokenizer has token id 5/);
  const narrow = await completeCheck(checkRecipe(recipe("narrow"), models, none));
  assert.deepEqual(codes(narrow), ["E_SHAPE_MISMATCH", "E_SHAPE_MISMATCH"]);
  assert.match(narrow.problems[0]!.message, /same row length in every model: base \[5, 4\], narrow \[5, 3\]/);
  // The same recipe over models that fit passes, and the pass is over.
  const fine = await completeCheck(checkRecipe(recipe("same"), models, none));
  assert.deepEqual([codes(fine), fine.pending], [[], false]);
  // The tokenizer source must be one of the recipe's models: the vocabulary step's own error.
  const source = await completeCheck(checkRecipe(`${linear("base", "same")}tokenizer_source: "model:short"\n`, models, none));
  assert.equal(source.problems.length, 1);
});
