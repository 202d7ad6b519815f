// The page's recipe logic without a browser: form edits through the yaml Document API (the recipe text
// is the source of truth and an edit changes only what it is about), what the form reads from a recipe,
// recipe names mapped to loaded models, and the live check against the models' headers. Expected texts
// are written out by hand.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parse } from "yaml";
import { BlobFolder } from "../src/io/folder";
import { openModel } from "../src/model/model";
import { autoMap, mappingOf, recipeModelNames } from "../site/ui/mapping";
import { checkRecipe } from "../site/ui/recipe-check";
import {
  readForm, removeRecipeModel, setBase, setDtype, setGlobal, setIncluded, setMethod, setModelParameter, starterRecipe, type EditContext,
} from "../site/ui/recipe-doc";
import type { PickedModel } from "../site/ui/models";
import { encodeTensor, writeSafetensors } from "./reference/safetensors";

const byLastSegment = (n: string) => n.split("/").pop();
const ctx: EditContext = { resolve: byLastSegment, defaultBase: "base" };

const CARD = `# DARE-TIES soup, as published on a model card
merge_method: dare_ties
base_model: someorg/base
models:
  - model: someorg/base
  - model: someorg/math # the strong one
    parameters:
      weight: 0.6
      density: 0.5
  - model: someorg/code
    parameters: {weight: 0.4, density: 0.7}
parameters:
  normalize: true
  int8_mask: true
  lambda: 0.9
dtype: bfloat16
tokenizer_source: base
`;

test("an edit changes only its key: comments, other keys, flow style and recipe names stay", () => {
  assert.equal(setGlobal(CARD, "lambda", 0.8), CARD.replace("lambda: 0.9", "lambda: 0.8"));
  assert.equal(setModelParameter(CARD, "math", "weight", 0.65, ctx), CARD.replace("weight: 0.6", "weight: 0.65"));
  assert.equal(setModelParameter(CARD, "code", "density", [0.2, 0.8], ctx), CARD.replace("density: 0.7}", "density: [0.2, 0.8]}"));
  assert.equal(setDtype(CARD, "float32"), CARD.replace("dtype: bfloat16", "dtype: float32"));
  assert.equal(setDtype(CARD, ""), CARD.replace("dtype: bfloat16\n", ""));
  assert.equal(setGlobal(CARD, "lambda", undefined), CARD.replace("  lambda: 0.9\n", ""));
});

/** Layout the yaml library's printer would change: comments after `key:`, aligned comments, indentless lists, padded flow maps, quotes. */
const LAID_OUT = `# header
merge_method: ties # the method
base_model: base   # base
models: # the list
# first
- model: math # m
  parameters: # p
    weight: 0.5 # w
    density: [0, 0.5,   1]
# between

- model: code
  parameters: { weight: 0.5, density: 0.5 }
parameters: # globals
  normalize: yes
dtype: 'bfloat16' # trailing
# footer
`;

test("an edit of values changes those characters only, so setting a value back gives back the text", () => {
  const to32 = setDtype(LAID_OUT, "float32");
  assert.equal(to32, LAID_OUT.replace("'bfloat16'", "float32"));
  assert.equal(setDtype(to32, "bfloat16"), LAID_OUT.replace("'bfloat16'", "bfloat16"));
  assert.equal(setModelParameter(LAID_OUT, "code", "weight", 0.25, ctx), LAID_OUT.replace("{ weight: 0.5,", "{ weight: 0.25,"));
  assert.equal(setModelParameter(LAID_OUT, "math", "density", [0.1, 0.9], ctx), LAID_OUT.replace("[0, 0.5,   1]", "[0.1, 0.9]"));
  assert.equal(setModelParameter(LAID_OUT, "math", "density", [0, 0.7, 1], ctx), LAID_OUT.replace("[0, 0.5,   1]", "[0, 0.7,   1]"));
  assert.equal(setModelParameter(LAID_OUT, "math", "weight", [0, 1], ctx), LAID_OUT.replace("weight: 0.5 # w", "weight: [0, 1] # w"));
  assert.equal(setGlobal(LAID_OUT, "normalize", false), LAID_OUT.replace("normalize: yes", "normalize: false"));
  assert.equal(setGlobal(LAID_OUT, "normalize", true), LAID_OUT, "yes is already true");
  assert.equal(setBase(setBase(LAID_OUT, "chat", ctx), "base", ctx), LAID_OUT);
  // A model name YAML would read as something else is quoted where it is written.
  assert.equal(setBase(LAID_OUT, "010", { ...ctx, resolve: (n) => n }), LAID_OUT.replace("base_model: base ", 'base_model: "010" '));
  // A change of structure prints the document again: the keys, values and comments are all still there.
  const added = setGlobal(LAID_OUT, "lambda", 0.5);
  const before = parse(LAID_OUT) as { parameters: object };
  assert.deepEqual(parse(added), { ...before, parameters: { ...before.parameters, lambda: 0.5 } });
  for (const comment of ["# header", "# the method", "# the list", "# first", "# m", "# p", "# w", "# between", "# globals", "# trailing", "# footer"]) assert.ok(added.includes(comment), comment);
});

test("an edit into an empty `parameters:` fills it in", () => {
  const empty = "merge_method: linear\nmodels:\n  - model: base\n    parameters:\n  - model: math\nparameters:\n";
  assert.equal(setGlobal(empty, "normalize", false), "merge_method: linear\nmodels:\n  - model: base\n    parameters:\n  - model: math\nparameters:\n  normalize: false\n");
  assert.deepEqual((parse(setModelParameter(empty, "base", "weight", 2, ctx)) as { models: unknown[] }).models[0], { model: "base", parameters: { weight: 2 } });
});

test("text that is not YAML is never rewritten by an edit", () => {
  const broken = "merge_method: linear\nmodels: [\n";
  assert.equal(setGlobal(broken, "lambda", 2), broken);
  assert.equal(setMethod(broken, "ties", ctx), broken);
});

test("switching the method starts from that method's defaults and drops what it does not take", () => {
  const linear = starterRecipe(["base", "math", "code"]);
  assert.equal(linear, `merge_method: linear
models:
  - model: base
    parameters:
      weight: 1
  - model: math
    parameters:
      weight: 1
  - model: code
    parameters:
      weight: 1
parameters:
  normalize: true
`);
  // Task arithmetic adds task vectors (normalize false); the base is declared after merge_method and
  // loses its weight (the form shows it as "base").
  const ta = setMethod(linear, "task_arithmetic", ctx);
  assert.equal(ta, `merge_method: task_arithmetic
base_model: base
models:
  - model: base
  - model: math
    parameters:
      weight: 1
  - model: code
    parameters:
      weight: 1
parameters:
  normalize: false
`);
  // TIES: normalize true, a density for every task model; weights kept.
  const ties = setMethod(setModelParameter(ta, "code", "weight", 0.7, ctx), "ties", ctx);
  assert.deepEqual(parse(ties), {
    merge_method: "ties", base_model: "base",
    models: [{ model: "base" }, { model: "math", parameters: { weight: 1, density: 0.5 } }, { model: "code", parameters: { weight: 0.7, density: 0.5 } }],
    parameters: { normalize: true },
  });
  // lambda is back to its default (1, unset) when the method changes.
  const dare = setMethod(setGlobal(ties, "lambda", 0.5), "dare_linear", ctx);
  assert.deepEqual((parse(dare) as { parameters: unknown }).parameters, { normalize: false });
  // SLERP takes no weights or densities but needs t; linear drops t and the base.
  const slerp = setMethod(ties, "slerp", ctx);
  assert.deepEqual(parse(slerp), { merge_method: "slerp", base_model: "base", models: [{ model: "base" }, { model: "math" }, { model: "code" }], parameters: { t: 0.5 } });
  assert.deepEqual(parse(setMethod(slerp, "linear", ctx)), {
    merge_method: "linear", models: [{ model: "base", parameters: { weight: 1 } }, { model: "math", parameters: { weight: 1 } }, { model: "code", parameters: { weight: 1 } }],
    parameters: { normalize: true },
  });
  // nuslerp and multislerp use a declared base (as the origin of the task vectors) without needing one:
  // switching to them keeps it, with no per-model parameters; karcher, like linear, drops it.
  for (const method of ["nuslerp", "multislerp"]) {
    assert.deepEqual(parse(setMethod(ties, method, ctx)), {
      merge_method: method, base_model: "base",
      models: [{ model: "base" }, { model: "math", parameters: { weight: 1 } }, { model: "code", parameters: { weight: 0.7 } }],
    }, `${method} keeps the base`);
  }
  assert.equal((parse(setMethod(setMethod(ties, "nuslerp", ctx), "karcher", ctx)) as { base_model?: string }).base_model, undefined, "karcher drops the base");
});

test("int8_mask and other keys the form does not show are kept across edits, and dropped only where invalid", () => {
  const daredTies = setMethod(CARD, "ties", ctx);
  const doc = parse(daredTies) as { parameters: Record<string, unknown>; tokenizer_source: string };
  assert.equal(doc.parameters.int8_mask, true, "TIES takes int8_mask");
  assert.equal(doc.tokenizer_source, "base");
  assert.ok(daredTies.startsWith("# DARE-TIES soup, as published on a model card\n"), daredTies);
  assert.ok(daredTies.includes("# the strong one"), daredTies);
  const linear = parse(setMethod(CARD, "linear", ctx)) as { parameters: Record<string, unknown> };
  assert.equal(linear.parameters.int8_mask, undefined, "linear has no int8_mask (it would be an unknown parameter)");
});

test("including, excluding and choosing the base edit the models list", () => {
  const ties = setMethod(starterRecipe(["base", "math"]), "ties", ctx);
  const withCode = setIncluded(ties, "code", true, ctx);
  assert.deepEqual((parse(withCode) as { models: unknown[] }).models.at(-1), { model: "code", parameters: { weight: 1, density: 0.5 } });
  assert.equal(setIncluded(withCode, "code", false, ctx), ties);
  const rebased = parse(setBase(withCode, "math", ctx)) as { base_model: string; models: unknown[] };
  assert.equal(rebased.base_model, "math");
  // The old base, listed, joins the merged models with starting values; the new base keeps its own (ignored while it is the base).
  assert.deepEqual(rebased.models, [{ model: "base", parameters: { weight: 1, density: 0.5 } }, { model: "math", parameters: { weight: 1, density: 0.5 } }, { model: "code", parameters: { weight: 1, density: 0.5 } }]);
  // Another base and back: the recipe means what it meant. A base the recipe does not list is not added to
  // models (it would be merged as a model once the base moves on), and a model's own values survive being the base.
  const unlisted = "merge_method: ties\nbase_model: base\nmodels:\n  - model: math\n    parameters: {weight: 0.7, density: 0.5}\n  - model: code\n    parameters: {weight: 0.3, density: 0.5}\n";
  assert.equal(setBase(setBase(unlisted, "chat", ctx), "base", ctx), unlisted);
  const viaMath = setBase(setBase(unlisted, "math", ctx), "base", ctx);
  assert.deepEqual(parse(viaMath), parse(unlisted));
  const carded = parse(setBase(setBase(CARD, "math", ctx), "base", ctx)) as { base_model: string; models: { model: string; parameters?: unknown }[] };
  assert.equal(carded.base_model, "someorg/base", "the base is named as the recipe's entry names it");
  assert.deepEqual(carded.models.find((m) => m.model === "someorg/math")?.parameters, { weight: 0.6, density: 0.5 });
  assert.equal(removeRecipeModel(CARD, "someorg/code"), CARD.replace("  - model: someorg/code\n    parameters: {weight: 0.4, density: 0.7}\n", ""));
});

test("starter recipes quote names YAML would misread", () => {
  const odd = ["model: v2", "#7", "yes"];
  assert.deepEqual((parse(starterRecipe(odd)) as { models: { model: string }[] }).models.map((m) => m.model), odd);
  assert.equal(starterRecipe([]), "");
});

test("the form reads what it can show; filters, slices and other keys are reported, not lost", () => {
  const names = ["base", "math", "code"];
  const form = readForm(CARD, names, byLastSegment);
  assert.equal(form.readOnly, "");
  assert.equal(form.method, "dare_ties");
  assert.equal(form.base, "base");
  assert.deepEqual([...form.rows].map(([n, r]) => [n, r.included, r.fields.get("weight")?.text, r.fields.get("density")?.text]),
    [["base", true, "", ""], ["math", true, "0.6", "0.5"], ["code", true, "0.4", "0.7"]]);
  assert.equal(form.normalize, true);
  assert.equal(form.globals.get("lambda")?.text, "0.9");
  assert.equal(form.globals.get("int8_mask")?.text, "true", "int8_mask is one of dare_ties's fields (issue 10: every parameter has one)");
  assert.deepEqual(form.kept.sort(), ["tokenizer_source"]);
  const unknown = readForm("merge_method: ties\nmodels:\n  - model: math\n    parameters: {weight: 1, desnity: 0.5}\nparameters:\n  lamda: 2\n", names, byLastSegment);
  assert.deepEqual(unknown.kept.sort(), ["math: desnity", "parameters: lamda"], "keys the method does not take are reported, not lost");

  // normalize unset: the method's default (task arithmetic: false; TIES: true).
  assert.equal(readForm("merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - model: base\n", names, byLastSegment).normalize, false);
  assert.equal(readForm("merge_method: ties\nbase_model: base\nmodels:\n  - model: base\n", names, byLastSegment).normalize, true);

  const filtered = readForm("merge_method: slerp\nbase_model: base\nmodels:\n  - model: base\n  - model: math\nparameters:\n  t:\n    - filter: self_attn\n      value: 0.2\n    - value: 0.7\n", names, byLastSegment);
  assert.equal(filtered.readOnly, "");
  assert.equal(filtered.globals.get("t")?.editable, false);
  // One model listed twice ("math", "./math": one folder) is merged twice with two weights: its fields are
  // read-only, so that an edit cannot set both entries to one value.
  const twice = readForm("merge_method: linear\nmodels:\n  - model: math\n    parameters: {weight: 0.2}\n  - model: ./math\n    parameters: {weight: 0.8}\n  - model: code\n    parameters: {weight: 0.5}\n", names, byLastSegment);
  assert.deepEqual([twice.rows.get("math")?.fields.get("weight"), twice.rows.get("code")?.fields.get("weight")],
    [{ text: "(listed 2 times: edit in YAML)", editable: false }, { text: "0.5", editable: true }]);
  assert.match(readForm("merge_method: slerp\nslices:\n  - sources:\n      - model: base\n        layer_range: [0, 2]\n", names, byLastSegment).readOnly, /slices/);
  assert.match(readForm("merge_method: [\n", names, byLastSegment).readOnly, /syntax/);
  // An edit of one model's weight would change the shared node, and so the other model's weight too.
  for (const shared of ["models:\n  - model: base\n    parameters: &p {weight: 1}\n  - model: math\n    parameters: {<<: *p}\n",
    "models:\n  - model: base\n    parameters: {weight: &w 1}\n  - model: math\n    parameters: {weight: *w}\n"]) {
    assert.match(readForm(`merge_method: linear\n${shared}`, names, byLastSegment).readOnly, /aliases/, shared);
  }
  assert.equal(readForm("merge_method: linear\nmodels:\n  - model: base\n    parameters: &p {weight: 1}\n", names, byLastSegment).readOnly, "", "an anchor nothing uses");
});

test("recipe names map to loaded models by choice, exact name or last segment", () => {
  assert.deepEqual([...autoMap(["org/base", "./math", "other", "code@v2"], ["base", "math", "code"], new Map())], [["org/base", "base"], ["./math", "math"], ["code@v2", "code"]]);
  assert.deepEqual([...autoMap(["other"], ["base", "code"], new Map([["other", "code"]]))], [["other", "code"]]);
  // Two loaded models of the same last segment: a person must choose.
  assert.deepEqual([...autoMap(["org/Math"], ["math", "MATH"], new Map())], []);
  // Two paths with one last segment are two models: neither is guessed, and a loaded model another path
  // took by its exact name is not guessed for a different path either. One path written two ways is one model.
  assert.deepEqual([...autoMap(["orgA/model", "orgB/model"], ["model", "model-2"], new Map())], []);
  assert.deepEqual([...autoMap(["model", "orgB/model"], ["model", "model-2"], new Map())], [["model", "model"]]);
  assert.deepEqual([...autoMap(["orgA/model", "orgB/model"], ["model", "model-2"], new Map([["orgB/model", "model-2"]]))], [["orgB/model", "model-2"]]);
  assert.deepEqual([...autoMap(["math", "./math/", "code"], ["math", "code"], new Map())], [["math", "math"], ["code", "code"], ["./math/", "math"]]);
  // An invalid recipe still tells which names it uses.
  assert.deepEqual(recipeModelNames("merge_method: ties\nbase_model: a\nmodels:\n  - model: b\n    parameters: {desnity: 1}\nbogus: 1\n"), ["a", "b"]);
  assert.deepEqual(mappingOf("merge_method: linear\nmodels:\n  - model: x/y\n", ["y", "z"], new Map()).unmapped, []);
});

/** A one-file model of two 2x2 F32 tensors (or 2x3 when `wide`), opened the way the page opens one. */
async function picked(name: string, options: { wide?: boolean; broken?: boolean } = {}): Promise<PickedModel> {
  const cols = options.wide ? 3 : 2;
  const tensor = (n: string) => ({ name: n, dtype: "F32" as const, shape: [2, cols], data: encodeTensor("F32", new Array(2 * cols).fill(1)) });
  const bytes = options.broken ? new Uint8Array(4) : writeSafetensors([tensor("model.layers.0.mlp.up_proj.weight"), tensor("model.layers.0.mlp.down_proj.weight")]);
  const files = new Map([["model.safetensors", new Blob([bytes as Uint8Array<ArrayBuffer>]) as File]]);
  const folder = new BlobFolder(name, files);
  try {
    return { name, folder, files, loaded: await openModel(folder) };
  } catch (e) {
    return { name, folder, files, error: (e as Error).message };
  }
}

test("the live check: problems from the engine's planner, unmapped names, and only used broken models", async () => {
  const models = [await picked("base"), await picked("math"), await picked("wide", { wide: true }), await picked("broken", { broken: true })];
  const none = new Map<string, string>();
  const ok = checkRecipe("merge_method: linear\nmodels:\n  - model: base\n    parameters: {weight: 1}\n  - model: math\n    parameters: {weight: 1}\n", models, none);
  assert.deepEqual([ok.problems, ok.unmapped, ok.broken], [[], [], []], "a broken model the recipe does not use is no problem");

  const usesBroken = checkRecipe("merge_method: linear\nmodels:\n  - model: base\n    parameters: {weight: 1}\n  - model: broken\n    parameters: {weight: 1}\n", models, none);
  assert.deepEqual(usesBroken.broken.map((b) => b.name), ["broken"]);

  const unknown = checkRecipe("merge_method: ties\nbase_model: base\nmodels:\n  - model: base\n  - model: math\n    parameters: {weight: 1, desnity: 0.5}\n", models, none);
  assert.deepEqual(unknown.problems, [], "a parameter the method does not have is ignored, as mergekit ignores it");
  assert.equal(unknown.warnings.length, 1);
  assert.match(unknown.warnings[0]!, /models\[1\]\.parameters\.desnity: ties has no parameter "desnity"/);

  const shapes = checkRecipe("merge_method: ties\nbase_model: base\nmodels:\n  - model: base\n  - model: wide\n    parameters: {weight: 1, density: 0.5}\n", models, none);
  assert.deepEqual(shapes.problems.map((p) => [p.code, p.model]), [["E_SHAPE_MISMATCH", "wide"], ["E_SHAPE_MISMATCH", "wide"]], "one problem per tensor, naming the model");

  const unmapped = checkRecipe("merge_method: linear\nmodels:\n  - model: org/other\n    parameters: {weight: 1}\n", models, none);
  assert.deepEqual(unmapped.unmapped, ["org/other"]);
  assert.deepEqual(checkRecipe("merge_method: linear\nmodels:\n  - model: org/other\n    parameters: {weight: 1}\n", models, new Map([["org/other", "math"]])).unmapped, []);
  assert.deepEqual(checkRecipe("merge_method: frankenstein\nmodels:\n  - model: base\n", models, none).problems.map((p) => p.code), ["E_METHOD_UNKNOWN"]);
});

test("readForm of a recipe with an alias to no anchor, or an alias bomb, is read-only instead of throwing", () => {
  const undefinedAlias = readForm("merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: *w}\n", ["a"], byLastSegment);
  assert.match(undefinedAlias.readOnly, /alias/);
  const bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\nmerge_method: linear\n";
  assert.match(readForm(bomb, ["a"], byLastSegment).readOnly, /alias/);
});
