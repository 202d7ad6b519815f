/**
 * @file The recipe text is the page's single source of truth; the form is a view of it and edits it in
 * place through the yaml library's Document API. An edit changes the keys it is about and nothing else:
 * comments, key order, recipe model names ("org/math") and every key the form does not show stay as
 * written. Nothing here regenerates a recipe from the form.
 *
 * Every function is pure (text in, text out), so it runs and is tested without a browser.
 */
import { Document, isMap, isScalar, isSeq, parse, parseDocument, visit, type YAMLMap } from "yaml";
import { METHODS, type MethodSpec, type ParameterSpec } from "../../src/merge/methods";
import { describeParameter } from "../../src/merge/parameter-descriptions";
import type { Setting } from "../../src/recipe/recipe";
import { RECIPE_YAML } from "../../src/recipe/yaml-schema";
import { table } from "../../src/table";

/** Recipe model name -> loaded model name, undefined when it maps to none. */
export type Resolve = (recipeName: string) => string | undefined;

/** Values a required parameter starts from (weight 1 = equal mix), and TIES/DARE papers' usual density. */
export const FORM_START: Readonly<Record<string, Setting>> = table<Setting>({ weight: 1, density: 0.5, t: 0.5 });

/** Top-level keys in the order mergekit recipes usually list them; new keys are inserted by it. */
const KEY_ORDER = ["merge_method", "base_model", "models", "slices", "parameters", "dtype", "out_dtype", "tokenizer_source", "align"];

/** How a parameter is edited: numbers and gradients as text, booleans ticked, string choices picked. */
export type FieldKind = "number" | "checkbox" | "choice" | "text";

/** One parameter the form has a field for, derived from the method's spec. */
export interface FormField {
  key: string;
  scope: "global" | "perModel";
  kind: FieldKind;
  /** What applies when the recipe leaves it unset (undefined: nothing does). */
  default: number | boolean | string | undefined;
  required: boolean;
  /** The values a choice offers (empty for the other kinds). */
  choices: readonly string[];
  description: string | undefined;
}

function fieldOf(method: string, key: string, p: ParameterSpec, scope: FormField["scope"]): FormField {
  const kind: FieldKind = p.type === "number" ? "number" : p.type === "boolean" ? "checkbox" : p.values?.length ? "choice" : "text";
  return { key, scope, kind, default: p.default, required: !!p.required, choices: kind === "choice" ? p.values! : [], description: describeParameter(method, key, p) };
}

/**
 * Every parameter of the method that changes its result, method-wide ones and per-model ones, in the
 * order the spec lists them. Ones it accepts and ignores (karcher's weight) get no field: a field that
 * does nothing would say it does.
 */
export function formFields(spec: MethodSpec | undefined): { global: FormField[]; perModel: FormField[] } {
  if (!spec) return { global: [], perModel: [] };
  const fields = (params: Readonly<Record<string, ParameterSpec>>, scope: FormField["scope"]) =>
    Object.entries(params).filter(([, p]) => !p.ignored).map(([k, p]) => fieldOf(spec.name, k, p, scope));
  return { global: fields(spec.global, "global"), perModel: fields(spec.perModel, "perModel") };
}

/**
 * What a field's control holds, as the recipe value to write: undefined leaves the key unset (an empty
 * optional field; the method's default applies). Text that is no value is an Error naming `what`.
 */
export function fieldSetting(field: FormField, control: string | boolean, what: string): Setting | undefined {
  if (typeof control === "boolean") return control;
  if (control.trim() === "" && !field.required) return undefined;
  if (field.kind === "number") return settingFromText(control, what);
  if (control.trim() === "") throw new Error(`${what}: a value is required`);
  return control;
}

/** "0.5" -> 0.5, "[0, 0.5, 1]" -> [0, 0.5, 1]; anything else is an Error naming `what`. */
export function settingFromText(text: string, what: string): number | number[] {
  let v: unknown;
  try {
    v = parse(text, RECIPE_YAML);
  } catch {
    v = undefined;
  }
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "number" && Number.isFinite(x))) return v as number[];
  throw new Error(`${what}: "${text}" is not a number or a list of numbers like [0, 0.5, 1]`);
}

const isPlainSetting = (v: unknown): v is number | number[] =>
  (typeof v === "number" && Number.isFinite(v)) || (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "number"));
const settingText = (v: number | number[]): string => (Array.isArray(v) ? `[${v.join(", ")}]` : String(v));

/** A form field's value as text ("" when unset; "true"/"false" for a checkbox). */
export interface FieldValue {
  text: string;
  /** False when the value uses filters (or a checkbox's is no boolean): the field shows it read-only. */
  editable: boolean;
}

/** How a field shows a recipe value. */
function fieldValue(v: unknown, kind: FieldKind): FieldValue {
  if (v === undefined) return { text: "", editable: true };
  if (kind === "number" && isPlainSetting(v)) return { text: settingText(v), editable: true };
  if (kind === "checkbox") return { text: String(v), editable: typeof v === "boolean" };
  if (v !== null && typeof v === "object") return { text: "(filters: edit in YAML)", editable: false };
  // A scalar of the wrong type (the check says why): shown as written, so it can be corrected here.
  return { text: String(v), editable: true };
}

export interface FormRow {
  included: boolean;
  fields: Map<string, FieldValue>;
}

export interface FormModel {
  /** Why the form cannot edit this recipe at all ("" when it can): syntax errors, slices. */
  readOnly: string;
  method: string;
  /** Loaded name of the base model ("" for none or unmapped). */
  base: string;
  /** By loaded model name: whether the recipe's `models:` lists it, and its per-model fields. */
  rows: Map<string, FormRow>;
  /** Every method-wide parameter of the method ("" when unset). */
  globals: Map<string, FieldValue>;
  /** normalize as it applies (the method's default when unset); undefined when the method has none. */
  normalize: boolean | undefined;
  dtype: string;
  /** What the recipe holds that the form does not show (kept as written). */
  kept: string[];
}

const SHOWN_TOP = new Set(["merge_method", "base_model", "models", "parameters", "dtype"]);

/** What the form shows for `text`; `loaded` are the readable models' names, in the order listed. */
export function readForm(text: string, loaded: readonly string[], resolve: Resolve): FormModel {
  const form: FormModel = { readOnly: "", method: "linear", base: "", rows: new Map(), globals: new Map(), normalize: undefined, dtype: "", kept: [] };
  for (const name of loaded) form.rows.set(name, { included: false, fields: new Map() });
  const doc = parseDocument(text, RECIPE_YAML);
  if (doc.errors.some((e) => e.code === "MULTIPLE_DOCS")) return { ...form, readOnly: "several YAML documents (a multi-stage recipe)" };
  if (doc.errors.length) return { ...form, readOnly: "the YAML has a syntax error" };
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch {
    // An alias to no anchor, or an alias bomb: the recipe check reports it with its line.
    return { ...form, readOnly: "the YAML has an alias that cannot be expanded" };
  }
  // An edit through the Document API changes a node in place, and an anchored node is every place that
  // names it with *alias or `<<`: a weight set for one model would change another's too.
  if (usesAliases(doc)) return { ...form, readOnly: "YAML aliases (*name, <<: *name) that share values between places" };
  if (raw === null || raw === undefined) return form;
  if (typeof raw !== "object" || Array.isArray(raw)) return { ...form, readOnly: "the YAML is not a recipe (a mapping of keys)" };
  const r = raw as Record<string, unknown>;
  form.method = typeof r.merge_method === "string" ? r.merge_method : "";
  const spec = METHODS[form.method];
  const shown = formFields(spec);
  if (typeof r.base_model === "string") form.base = resolve(r.base_model) ?? "";
  if (r.slices !== undefined) form.readOnly = "slices (layer ranges)";
  else if (r.modules !== undefined) form.readOnly = "modules (a recipe per part of the model)";
  else if (r.models !== undefined && !Array.isArray(r.models)) form.readOnly = "a 'models' value that is not a list";
  for (const key of Object.keys(r)) if (!SHOWN_TOP.has(key)) form.kept.push(key);

  const listed = new Map<FormRow, number>();
  for (const entry of Array.isArray(r.models) ? r.models : []) {
    const e = entry as { model?: unknown; parameters?: unknown } | null;
    if (typeof e?.model !== "string") continue;
    const params = (e.parameters !== null && typeof e.parameters === "object" && !Array.isArray(e.parameters) ? e.parameters : {}) as Record<string, unknown>;
    for (const key of Object.keys(params)) if (!shown.perModel.some((f) => f.key === key)) form.kept.push(`${e.model}: ${key}`);
    const row = form.rows.get(resolve(e.model) ?? "");
    if (!row) continue;
    listed.set(row, (listed.get(row) ?? 0) + 1);
    row.included = true;
    for (const f of shown.perModel) row.fields.set(f.key, fieldValue(params[f.key], f.kind));
  }
  // A model listed more than once is merged once per entry, each with its own values: one field cannot
  // show or set them all, so they are edited in the YAML.
  for (const [row, count] of listed) {
    if (count > 1) for (const f of shown.perModel) row.fields.set(f.key, { text: `(listed ${count} times: edit in YAML)`, editable: false });
  }
  for (const row of form.rows.values()) for (const f of shown.perModel) if (!row.fields.has(f.key)) row.fields.set(f.key, { text: "", editable: true });

  const params = (r.parameters !== null && typeof r.parameters === "object" && !Array.isArray(r.parameters) ? r.parameters : {}) as Record<string, unknown>;
  for (const key of Object.keys(params)) if (!shown.global.some((f) => f.key === key)) form.kept.push(`parameters: ${key}`);
  for (const f of shown.global) form.globals.set(f.key, fieldValue(params[f.key], f.kind));
  if (spec && "normalize" in spec.global) {
    form.normalize = typeof params.normalize === "boolean" ? params.normalize : (spec.global.normalize!.default as boolean);
  }
  form.dtype = typeof r.dtype === "string" ? r.dtype : "";
  return form;
}

function usesAliases(doc: Document): boolean {
  let found = false;
  visit(doc, { Alias: () => { found = true; return visit.BREAK; } });
  return found;
}

// -------------------------------------------------------------------------------------------------
// Edits

export interface EditContext {
  resolve: Resolve;
  /** The base a method that needs one starts with when the recipe names none (a loaded name). */
  defaultBase: string;
}

/**
 * Parses, applies `change` and writes the result. A change of values only (a weight, the dtype, the
 * base) replaces those values' characters in the text and nothing else, so layout and comments stay
 * byte for byte and setting a value back gives back the text. A change of structure (a key or model
 * added or removed) prints the document again, which keeps keys, comments and names but may move a
 * comment or re-indent. A text that does not parse, or whose shape the change cannot work with (a list
 * where a mapping belongs), is returned as is.
 */
function edit(text: string, change: (doc: Document) => void): string {
  const doc = parseDocument(text, RECIPE_YAML);
  if (doc.errors.length || !isMap(doc.contents)) return text;
  try {
    change(doc);
  } catch {
    return text;
  }
  const spliced = replaceValues(text, parseDocument(text, RECIPE_YAML).contents, doc.contents);
  return spliced ?? doc.toString(PRINT);
}

/**
 * `text` with the values that differ between `before` (its own nodes, with source ranges) and `after`
 * (the edited document) replaced in place, or undefined when the two differ in structure: a key or list
 * item added, removed or moved, or a value replaced by a block collection.
 */
function replaceValues(text: string, before: unknown, after: unknown): string | undefined {
  const changes: { from: number; to: number; text: string }[] = [];
  const walk = (a: unknown, b: unknown): boolean => {
    if (isMap(a) && isMap(b)) {
      return a.items.length === b.items.length && a.items.every((pair, i) => {
        const other = b.items[i]!;
        return isScalar(pair.key) && isScalar(other.key) && pair.key.value === other.key.value && walk(pair.value, other.value);
      });
    }
    if (isSeq(a) && isSeq(b) && a.items.length === b.items.length && a.items.every((item, i) => walk(item, b.items[i]))) return true;
    const range = (isScalar(a) || (isSeq(a) && a.flow)) ? a.range : undefined;
    if (!range) return false;
    const value = isScalar(b) ? b.value : isSeq(b) && b.flow && b.items.every(isScalar) ? b.toJSON() : b;
    if (isScalar(a) && !isScalar(b) && !isSeq(b) && value === a.value) return true;
    if (isScalar(a) && isScalar(b) && b.value === a.value) return true;
    if (typeof value === "object" && value !== null && !Array.isArray(value)) return false;
    if (Array.isArray(value) && !value.every((v) => typeof v === "number")) return false;
    changes.push({ from: range[0], to: range[1], text: flowText(value) });
    return true;
  };
  if (!walk(before, after)) return undefined;
  let out = text;
  for (const c of changes.sort((x, y) => y.from - x.from)) out = out.slice(0, c.from) + c.text + out.slice(c.to);
  return out;
}

/** A value as it is written inline: quoted where YAML would misread it, a list as `[0, 0.5, 1]`. */
function flowText(value: unknown): string {
  const doc = new Document(null, RECIPE_YAML);
  doc.contents = doc.createNode(value, { flow: true }) as typeof doc.contents;
  return doc.toString(PRINT).trimEnd();
}

/** No line folding (recipes are read line by line); `{weight: 1}` as model cards write it. */
const PRINT = { lineWidth: 0, flowCollectionPadding: false } as const;

/** Sets a value; a new top-level key goes where mergekit recipes usually have it. */
function setValue(doc: Document, path: (string | number)[], value: unknown): void {
  const node = Array.isArray(value) ? doc.createNode(value, { flow: true }) : value;
  const top = String(path[0]);
  if (!doc.has(top)) {
    const map = doc.contents as YAMLMap;
    const rank = (k: unknown) => {
      const i = KEY_ORDER.indexOf(String(isScalar(k) ? k.value : k));
      return i < 0 ? KEY_ORDER.length : i;
    };
    const at = map.items.findIndex((pair) => rank(pair.key) > rank(top));
    const pair = doc.createPair(top, path.length > 1 ? doc.createNode({}) : node);
    if (at < 0) map.items.push(pair);
    else map.items.splice(at, 0, pair);
    if (path.length === 1) return;
  }
  // `parameters:` written with nothing after it is null, not a mapping: it becomes one.
  for (let i = 1; i < path.length; i++) {
    const prefix = path.slice(0, i);
    const at = doc.getIn(prefix, true);
    if (at === null || (isScalar(at) && at.value === null)) doc.setIn(prefix, doc.createNode({}));
  }
  doc.setIn(path, node);
}

/** Removes a key, and its parent mapping when that becomes empty (no `parameters: {}` left behind). */
function remove(doc: Document, path: (string | number)[]): void {
  doc.deleteIn(path);
  const parent = path.slice(0, -1);
  if (parent.length && isMap(doc.getIn(parent)) && (doc.getIn(parent) as YAMLMap).items.length === 0) doc.deleteIn(parent);
}

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

/** Indices of the `models:` entries that are this loaded model. */
function entriesOf(doc: Document, loadedName: string, resolve: Resolve): number[] {
  const models = doc.get("models");
  if (!isSeq(models)) return [];
  const out: number[] = [];
  models.items.forEach((item, i) => {
    const name = str(isMap(item) ? item.get("model") : undefined);
    if (name !== undefined && resolve(name) === loadedName) out.push(i);
  });
  return out;
}

function paramKeys(doc: Document, path: (string | number)[]): string[] {
  const params = doc.getIn(path);
  return isMap(params) ? params.items.map((p) => String(isScalar(p.key) ? p.key.value : p.key)) : [];
}

function addEntry(doc: Document, loadedName: string, params: Record<string, Setting>): void {
  const entry = Object.keys(params).length ? { model: loadedName, parameters: params } : { model: loadedName };
  const models = doc.get("models");
  if (isSeq(models)) models.add(doc.createNode(entry));
  else setValue(doc, ["models"], doc.createNode([entry]));
}

/**
 * What a parameter is set to when the form lists a model or switches the method: required ones their
 * usual starting value, density its usual value where the method prunes; the rest stay unset (their
 * defaults apply).
 */
function startValue(spec: MethodSpec, key: string): Setting | undefined {
  if (key === "density") return spec.sparsify ? FORM_START.density : undefined;
  const p = spec.perModel[key] ?? spec.global[key];
  return p?.required ? FORM_START[key] : undefined;
}

/** Per-model starting values of a method (see startValue). */
function startParams(spec: MethodSpec | undefined): Record<string, Setting> {
  const out: Record<string, Setting> = {};
  for (const key of spec ? Object.keys(spec.perModel) : []) {
    const value = startValue(spec!, key);
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/** Gives a model entry the method's starting values it lacks. */
function fillStart(doc: Document, spec: MethodSpec | undefined, index: number): void {
  for (const [key, value] of Object.entries(startParams(spec))) {
    if (!doc.hasIn(["models", index, "parameters", key])) setValue(doc, ["models", index, "parameters", key], value);
  }
}

/** The recipe the form starts from: a linear soup of `loaded`, equal weights. */
export function starterRecipe(loaded: readonly string[]): string {
  if (loaded.length === 0) return "";
  const recipe = {
    merge_method: "linear",
    models: loaded.map((model) => ({ model, parameters: { weight: FORM_START.weight } })),
    parameters: { normalize: METHODS.linear!.global.normalize!.default },
  };
  return new Document(recipe, RECIPE_YAML).toString(PRINT);
}

/**
 * Switches the method. The new method's form starts from its defaults: normalize is set to the
 * method's default, lambda back to 1, a required parameter (t, weight) to its starting value when it
 * has none; parameters the new method does not accept are removed (they would make the recipe invalid),
 * and so are ones it ignores (the form has no field for them), and method-wide ones that the new method takes only per model (they mean something else
 * there). Parameters both methods take keep their values. A method that needs a base gets one; one that
 * may use one (nuslerp, multislerp) keeps it; any other loses base_model.
 */
export function setMethod(text: string, method: string, ctx: EditContext): string {
  const next = METHODS[method];
  if (!next) return text;
  return edit(text, (doc) => {
    const previous = METHODS[str(doc.get("merge_method")) ?? ""];
    if (previous === next) return;
    setValue(doc, ["merge_method"], method);
    const shown = formFields(next);
    const accepted = [...shown.global, ...shown.perModel].map((f) => f.key);
    for (const key of paramKeys(doc, ["parameters"])) {
      if (!accepted.includes(key) || (previous !== undefined && key in previous.global && !(key in next.global))) remove(doc, ["parameters", key]);
    }
    if ("normalize" in next.global) setValue(doc, ["parameters", "normalize"], next.global.normalize!.default);
    if ("lambda" in next.global) remove(doc, ["parameters", "lambda"]);
    for (const key of Object.keys(next.global)) {
      const start = startValue(next, key);
      if (start !== undefined && !isPlainSetting(doc.getIn(["parameters", key]))) setValue(doc, ["parameters", key], start);
    }

    let base = str(doc.get("base_model"));
    if (next.needsBase && base === undefined && ctx.defaultBase) {
      base = ctx.defaultBase;
      setValue(doc, ["base_model"], base);
    } else if (!next.needsBase && !next.optionalBase && base !== undefined) {
      doc.delete("base_model");
      base = undefined;
    }
    const baseLoaded = base === undefined ? undefined : (ctx.resolve(base) ?? base);
    if (baseLoaded !== undefined && entriesOf(doc, baseLoaded, ctx.resolve).length === 0 && isSeq(doc.get("models"))) {
      (doc.get("models") as { items: unknown[] }).items.unshift(doc.createNode({ model: base }));
    }
    const models = doc.get("models");
    if (!isSeq(models)) return;
    models.items.forEach((item, i) => {
      const name = str(isMap(item) ? item.get("model") : undefined);
      if (name === undefined) return;
      const isBase = baseLoaded !== undefined && (ctx.resolve(name) ?? name) === baseLoaded;
      // The form shows the base's per-model fields as "base": it has none.
      for (const key of paramKeys(doc, ["models", i, "parameters"])) if (!shown.perModel.some((f) => f.key === key) || isBase) remove(doc, ["models", i, "parameters", key]);
      if (!isBase) fillStart(doc, next, i);
    });
  });
}

/**
 * Makes `loadedName` the base: base_model names it (as a `models:` entry names it, if one does), and
 * nothing else about it changes. It is not added to `models:` (mergekit does not need the base listed)
 * and its entries keep their parameters, which the method ignores while it is the base and which apply
 * again if it stops being one: choosing another base and then this one again gives back the recipe's
 * meaning. The previous base's entries that are listed get the method's starting values they lack (it
 * stays ticked in the form, as a model merged like the others).
 */
export function setBase(text: string, loadedName: string, ctx: EditContext): string {
  return edit(text, (doc) => {
    const spec = METHODS[str(doc.get("merge_method")) ?? ""];
    const previous = str(doc.get("base_model"));
    if (previous !== undefined && ctx.resolve(previous) === loadedName) return;
    if (!loadedName) {
      doc.delete("base_model");
      return;
    }
    const mine = entriesOf(doc, loadedName, ctx.resolve);
    const written = mine.length ? str((doc.getIn(["models", mine[0]!]) as YAMLMap).get("model")) : undefined;
    setValue(doc, ["base_model"], written ?? loadedName);
    const old = previous === undefined ? undefined : ctx.resolve(previous);
    for (const i of old === undefined ? [] : entriesOf(doc, old, ctx.resolve)) fillStart(doc, spec, i);
  });
}

/** Lists a loaded model in `models:` (with the method's starting values) or removes its entries. */
export function setIncluded(text: string, loadedName: string, included: boolean, ctx: EditContext): string {
  return edit(text, (doc) => {
    const mine = entriesOf(doc, loadedName, ctx.resolve);
    if (included && mine.length === 0) addEntry(doc, loadedName, startParams(METHODS[str(doc.get("merge_method")) ?? ""]));
    if (!included) for (const i of mine.reverse()) doc.deleteIn(["models", i]);
  });
}

/**
 * Sets a per-model parameter of a loaded model (listing the model first if it is not); undefined
 * removes it (the method's default applies).
 */
export function setModelParameter(text: string, loadedName: string, key: string, value: Setting | undefined, ctx: EditContext): string {
  return edit(text, (doc) => {
    let mine = entriesOf(doc, loadedName, ctx.resolve);
    if (value === undefined) {
      for (const i of mine) remove(doc, ["models", i, "parameters", key]);
      return;
    }
    if (mine.length === 0) {
      addEntry(doc, loadedName, startParams(METHODS[str(doc.get("merge_method")) ?? ""]));
      mine = entriesOf(doc, loadedName, ctx.resolve);
    }
    for (const i of mine) setValue(doc, ["models", i, "parameters", key], value);
  });
}

/** Sets a method-wide parameter; undefined removes it (the method's default applies). */
export function setGlobal(text: string, key: string, value: Setting | undefined): string {
  return edit(text, (doc) => {
    if (value === undefined) remove(doc, ["parameters", key]);
    else setValue(doc, ["parameters", key], value);
  });
}

/** Sets the compute dtype; "" removes it (inputs' dtype). */
export function setDtype(text: string, dtype: string): string {
  return edit(text, (doc) => {
    if (dtype) setValue(doc, ["dtype"], dtype);
    else doc.delete("dtype");
  });
}

/** Removes the `models:` entries naming `recipeName` (a name that maps to no loaded model). */
export function removeRecipeModel(text: string, recipeName: string): string {
  return edit(text, (doc) => {
    const models = doc.get("models");
    if (!isSeq(models)) return;
    for (let i = models.items.length - 1; i >= 0; i--) {
      const item = models.items[i];
      if (isMap(item) && item.get("model") === recipeName) doc.deleteIn(["models", i]);
    }
  });
}

/** True when `recipeName` is listed in `models:` and is not the base (so removing it is a plain edit). */
export function isRemovableEntry(text: string, recipeName: string): boolean {
  const doc = parseDocument(text, RECIPE_YAML);
  if (doc.errors.length || !isMap(doc.contents) || doc.get("base_model") === recipeName) return false;
  const models = doc.get("models");
  return isSeq(models) && models.items.some((item) => isMap(item) && item.get("model") === recipeName);
}
