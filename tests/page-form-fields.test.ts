// Issue 10: the page's form is derived from the method table. For every method in METHODS (so the ones
// other branches add are covered as they land) the form has a field for each method-wide and per-model
// parameter, of the kind its type calls for, with the spec's default; editing each kind of field
// writes that value (or, emptied, removes the key) and nothing else. No browser: the form's logic is
// pure text in, text out (site/ui/recipe-doc.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { parse } from "yaml";
import { METHODS, type MethodSpec, type ParameterSpec } from "../src/merge/methods";
import { describeParameter } from "../src/merge/parameter-descriptions";
import {
  fieldSetting, formFields, readForm, setGlobal, setMethod, setModelParameter, starterRecipe, type EditContext, type FormField,
} from "../site/ui/recipe-doc";

const NAMES = ["base", "math", "code"];
const resolve = (n: string) => n.split("/").pop();
const ctx: EditContext = { resolve, defaultBase: "base" };

type Doc = { merge_method: string; base_model?: string; models: { model: string; parameters?: Record<string, unknown> }[]; parameters?: Record<string, unknown> };
const doc = (text: string) => parse(text) as Doc;
const entry = (d: Doc, name: string) => d.models.find((m) => m.model === name)!;

/** The kind of field a parameter type calls for, written out independently of the form's code. */
const EXPECTED_KIND: Record<ParameterSpec["type"], (p: ParameterSpec) => string> = {
  number: () => "number",
  boolean: () => "checkbox",
  string: (p) => (p.values?.length ? "choice" : "text"),
};

/** A recipe of `method` over the three models, as the form makes it (switching from the starter). */
const recipeOf = (method: string) => setMethod(starterRecipe(NAMES), method, ctx);

/** `d` without one key: what an edit of that key must leave as it was. */
function without(d: Doc, key: string, model?: string): Doc {
  const copy = structuredClone(d);
  if (model === undefined) {
    delete copy.parameters?.[key];
    if (copy.parameters && Object.keys(copy.parameters).length === 0) delete copy.parameters;
  } else {
    const e = entry(copy, model);
    delete e.parameters?.[key];
    if (e.parameters && Object.keys(e.parameters).length === 0) delete e.parameters;
  }
  return copy;
}

test("the method table has today's methods (the form test below iterates all of it)", () => {
  for (const m of ["linear", "slerp", "passthrough", "task_arithmetic", "ties", "dare_ties", "dare_linear"]) assert.ok(METHODS[m], m);
});

test("every method's form has a field for each of its parameters, of its type's kind, with the spec's default", () => {
  for (const [name, spec] of Object.entries(METHODS)) {
    const fields = formFields(spec);
    for (const [scope, params, shown] of [["global", spec.global, fields.global], ["perModel", spec.perModel, fields.perModel]] as const) {
      // Parameters the method ignores have no field (checked by hand in a test below).
      const taken = Object.entries(params).filter(([, p]) => !p.ignored);
      assert.deepEqual(shown.map((f) => f.key).sort(), taken.map(([k]) => k).sort(), `${name}: a ${scope} field for every ${scope} parameter it uses, and no other`);
      for (const [key, p] of taken) {
        const f = shown.find((x) => x.key === key)!;
        assert.equal(f.scope, scope, `${name}.${key}`);
        assert.equal(f.kind, EXPECTED_KIND[p.type](p), `${name}.${key}: kind`);
        assert.equal(f.default, p.default, `${name}.${key}: default`);
        assert.equal(f.required, !!p.required, `${name}.${key}: required`);
        assert.deepEqual([...f.choices], f.kind === "choice" ? [...p.values!] : [], `${name}.${key}: choices`);
      }
    }
    // The form reads every one of them from a recipe of this method: unset ones are empty (their default applies).
    const form = readForm(recipeOf(name), NAMES, resolve);
    assert.equal(form.method, name);
    assert.deepEqual([...form.globals.keys()].sort(), fields.global.map((f) => f.key).sort(), `${name}: readForm has every global field`);
    for (const row of form.rows.values()) assert.deepEqual([...row.fields.keys()].sort(), fields.perModel.map((f) => f.key).sort(), `${name}: every per-model field`);
  }
});

test("the fields of today's methods, written out by hand", () => {
  const shape = (m: string) => {
    const f = formFields(METHODS[m]);
    const line = (x: FormField) => [x.key, x.kind, x.default, x.required];
    return { global: f.global.map(line), perModel: f.perModel.map(line) };
  };
  // The task-vector methods gain parameters on other branches (the TIES vote variants): their first ones.
  assert.deepEqual(shape("ties").global.slice(0, 4), [["normalize", "checkbox", true, false], ["rescale", "checkbox", false, false], ["lambda", "number", 1, false], ["int8_mask", "checkbox", false, false]]);
  assert.deepEqual(shape("ties").perModel.slice(0, 2), [["weight", "number", undefined, true], ["density", "number", 1, false]]);
  assert.deepEqual(shape("dare_linear").global.slice(0, 2), [["normalize", "checkbox", false, false], ["rescale", "checkbox", true, false]]);
  assert.deepEqual(shape("slerp"), { global: [["t", "number", undefined, true]], perModel: [] });
  assert.deepEqual(shape("linear"), { global: [["normalize", "checkbox", true, false]], perModel: [["weight", "number", undefined, true]] });
  assert.deepEqual(shape("passthrough"), { global: [], perModel: [["scale", "number", undefined, false]] });
  // Each of them says what it does.
  for (const m of ["linear", "slerp", "passthrough", "task_arithmetic", "ties", "dare_ties", "dare_linear"]) {
    const f = formFields(METHODS[m]);
    for (const x of [...f.global, ...f.perModel]) assert.ok(x.description && x.description.length > 10, `${m}.${x.key} has a description`);
  }
  assert.match(formFields(METHODS.slerp).global[0]!.description!, /base/);
  assert.match(formFields(METHODS.linear).perModel[0]!.description!, /share/, "linear's weight is described as linear's, not as a task vector's");
  assert.equal(describeParameter("ties", "lambda", { type: "number", description: "the spec's own line" }), "the spec's own line", "a spec's description wins");
  assert.equal(describeParameter("ties", "no_such_parameter", { type: "number" }), undefined, "a parameter nothing describes has no line");
});

test("switching to any method leaves its optional parameters unset (their defaults apply) and sets the required ones", () => {
  // From a recipe that sets nothing, so every parameter in the result was written by the switch.
  const bare = "models:\n  - model: base\n  - model: math\n  - model: code\n";
  for (const [name, spec] of Object.entries(METHODS)) {
    const d = doc(setMethod(bare, name, ctx));
    for (const key of Object.keys(d.parameters ?? {})) {
      // normalize is written with the method's default (the box shows it); anything else only when required.
      assert.ok(key === "normalize" || spec.global[key]?.required, `${name}: parameters.${key} was written though optional`);
    }
    for (const [key, p] of Object.entries(spec.global)) if (p.required) assert.notEqual(d.parameters?.[key], undefined, `${name}: required ${key} is set`);
    for (const m of d.models) {
      const isBase = (spec.needsBase || spec.optionalBase) && m.model === d.base_model;
      for (const key of Object.keys(m.parameters ?? {})) {
        assert.ok(!isBase, `${name}: the base gets no per-model parameter (${key})`);
        assert.ok(spec.perModel[key]?.required || (key === "density" && spec.sparsify), `${name}: ${m.model}.${key} was written though optional`);
      }
      if (!isBase) for (const [key, p] of Object.entries(spec.perModel)) if (p.required) assert.notEqual(m.parameters?.[key], undefined, `${name}: ${m.model}'s required ${key} is set`);
    }
  }
});

/** What each kind of field is edited with, and the recipe value each edit must write (undefined: key removed). */
function editsFor(f: FormField): [string | boolean, unknown][] {
  switch (f.kind) {
    case "number": return [["0.25", 0.25], ["[0, 0.5, 1]", [0, 0.5, 1]], ...(f.required ? [] : [["", undefined] as [string, unknown]])];
    case "checkbox": return [[true, true], [false, false]];
    case "choice": return [...f.choices.map((c) => [c, c] as [string, unknown]), ...(f.required ? [] : [["", undefined] as [string, unknown]])];
    case "text": return [["some text", "some text"], ...(f.required ? [] : [["", undefined] as [string, unknown]])];
  }
}

/** Applies a field edit the way the form does: the control's content to a value, then into the recipe. */
function editField(text: string, f: FormField, control: string | boolean, model?: string): string {
  const value = fieldSetting(f, control, model ? `${f.key} of ${model}` : f.key);
  return model === undefined ? setGlobal(text, f.key, value) : setModelParameter(text, model, f.key, value, ctx);
}

test("editing each kind of field of every method writes its value into the recipe and changes nothing else", () => {
  let edited = 0;
  for (const [name, spec] of Object.entries(METHODS)) {
    const start = recipeOf(name);
    const before = doc(start);
    const fields = formFields(spec);
    for (const f of fields.global) {
      for (const [control, expected] of editsFor(f)) {
        const after = doc(editField(start, f, control));
        assert.deepEqual(after.parameters?.[f.key], expected, `${name}: ${f.key} <- ${JSON.stringify(control)}`);
        assert.deepEqual(without(after, f.key), without(before, f.key), `${name}: editing ${f.key} changed only ${f.key}`);
        const shown = readForm(editField(start, f, control), NAMES, resolve).globals.get(f.key)!;
        assert.equal(shown.text, expected === undefined ? "" : Array.isArray(expected) ? `[${expected.join(", ")}]` : String(expected), `${name}: the form shows ${f.key} as written`);
        edited++;
      }
    }
    for (const f of fields.perModel) {
      for (const [control, expected] of editsFor(f)) {
        const after = doc(editField(start, f, control, "math"));
        assert.deepEqual(entry(after, "math").parameters?.[f.key], expected, `${name}: math's ${f.key} <- ${JSON.stringify(control)}`);
        assert.deepEqual(without(after, f.key, "math"), without(before, f.key, "math"), `${name}: editing math's ${f.key} changed nothing else`);
        edited++;
      }
    }
    // An emptied required field is refused, naming the field; the recipe is not edited.
    for (const f of [...fields.global, ...fields.perModel].filter((x) => x.required && x.kind === "number")) {
      assert.throws(() => fieldSetting(f, "", `${f.key} of math`), new RegExp(`${f.key} of math`), `${name}: empty required ${f.key}`);
    }
  }
  assert.ok(edited > 50, `fixture: ${edited} edits made`);
});

test("an edit keeps comments and flow style; an emptied optional field removes just its key", () => {
  const text = `# TIES, commented
merge_method: ties
base_model: base
models:
  - model: base
  - model: org/math # the strong one
    parameters: {weight: 0.6, density: 0.5}
parameters:
  lambda: 0.9 # a little less
  rescale: true
`;
  const ties = formFields(METHODS.ties);
  const field = (k: string) => [...ties.global, ...ties.perModel].find((f) => f.key === k)!;
  assert.equal(editField(text, field("lambda"), ""), text.replace("  lambda: 0.9 # a little less\n", ""));
  assert.equal(editField(text, field("rescale"), false), text.replace("rescale: true", "rescale: false"));
  assert.equal(editField(text, field("int8_mask"), true), text + "  int8_mask: true\n");
  assert.equal(editField(text, field("density"), "", "math"), text.replace("{weight: 0.6, density: 0.5}", "{weight: 0.6}"));
  assert.equal(editField(text, field("density"), "[0.2, 0.8]", "math"), text.replace("density: 0.5}", "density: [0.2, 0.8]}"));
  // Emptying a model's only parameter leaves no `parameters: {}` behind; a model not listed stays unlisted.
  const one = "merge_method: ties\nbase_model: base\nmodels:\n  - model: base\n  - model: math\n    parameters:\n      density: 0.5\n";
  assert.equal(editField(one, field("density"), "", "math"), "merge_method: ties\nbase_model: base\nmodels:\n  - model: base\n  - model: math\n");
  assert.equal(editField(one, field("density"), "", "code"), one);
});

test("a string-choice parameter (the TIES vote variants' kind) is a select whose empty choice leaves it unset", () => {
  // The form is derived from the spec, so a method declaring such a parameter gets this field as is.
  const spec: MethodSpec = {
    name: "voting", title: "Voting", kind: "taskVector", needsBase: true,
    global: { consensus_method: { type: "string", default: "sum", values: ["sum", "count"] } },
    perModel: { weight: { type: "number", required: true }, tag: { type: "string" } },
  };
  const f = formFields(spec);
  assert.deepEqual(f.global.map((x) => [x.key, x.kind, x.default, [...x.choices]]), [["consensus_method", "choice", "sum", ["sum", "count"]]]);
  assert.deepEqual(f.perModel.map((x) => [x.key, x.kind]), [["weight", "number"], ["tag", "text"]]);
  const text = "merge_method: voting\nparameters:\n  lambda: 1\n";
  assert.equal(editField(text, f.global[0]!, "count"), "merge_method: voting\nparameters:\n  lambda: 1\n  consensus_method: count\n");
  assert.equal(editField(editField(text, f.global[0]!, "count"), f.global[0]!, ""), text);
});

test("parameters a method accepts but ignores get no field: karcher's weight, task_arithmetic's density", () => {
  // Written out by hand from what each method does with them (mergekit accepts them; neither changes the result).
  const keys = (m: string) => { const f = formFields(METHODS[m]); return { global: f.global.map((x) => x.key), perModel: f.perModel.map((x) => x.key) }; };
  assert.deepEqual(keys("karcher"), { global: ["max_iter", "tol"], perModel: [] }, "karcher weighs every input the same: no weight column");
  assert.deepEqual(keys("task_arithmetic").perModel, ["weight"], "task arithmetic prunes nothing: no density column");
  assert.deepEqual(keys("ties").perModel.slice(0, 2), ["weight", "density"], "ties prunes: its density stays");
  // They are still accepted (a recipe from a model card keeps them), and the form lists them as kept.
  const card = "merge_method: karcher\nmodels:\n  - model: base\n    parameters: {weight: 2}\n  - model: math\n    parameters: {weight: 1}\n";
  const form = readForm(card, NAMES, resolve);
  assert.deepEqual([...form.rows.get("base")!.fields.keys()], [], "no weight field in karcher's rows");
  assert.deepEqual(form.kept, ["base: weight", "math: weight"]);
  // Switching to karcher starts from its defaults: the linear starter's weights go.
  const switched = doc(setMethod(starterRecipe(NAMES), "karcher", ctx));
  assert.deepEqual(switched.models, NAMES.map((model) => ({ model })), "karcher's entries carry no weight");
  const ta = doc(setMethod(setMethod(starterRecipe(NAMES), "ties", ctx), "task_arithmetic", ctx));
  for (const m of ta.models) assert.equal(m.parameters?.density, undefined, `${m.model}: task_arithmetic keeps no density from ties`);
});
