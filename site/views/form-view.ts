/**
 * @file The recipe form: a view of the recipe text that edits it in place (ui/recipe-doc.ts). Its
 * controls are built once and updated where they stand, so a select changed by keyboard keeps focus
 * and its type-ahead, and a field a person is typing in is never overwritten; rows are kept per model.
 */
import { METHODS } from "../../src/merge/methods";
import type { PageState, Store } from "../state";
import { h } from "../ui/dom";
import { mappingOf } from "../ui/mapping";
import {
  FORM_START, formFields, readForm, setBase, setDtype, setGlobal, setIncluded, setMethod, setModelParameter, settingFromText, starterRecipe,
  type EditContext, type FieldValue,
} from "../ui/recipe-doc";

export interface FormActions {
  /** Applies an edit to the recipe text (the starter recipe when it is empty). */
  edit(change: (text: string, ctx: EditContext) => string): void;
  /** Records (message) or clears (null) what is wrong with a field's text. */
  fieldError(id: string, message: string | null): void;
  /** Forgets refused field texts (the method or base changed, which lays the fields out anew). */
  clearFieldErrors(): void;
}

const PER_MODEL = ["weight", "density"] as const;
const DTYPES: [string, string][] = [["", "as the inputs"], ["bfloat16", "bfloat16"], ["float16", "float16"], ["float32", "float32"]];

interface Row {
  tr: HTMLTableRowElement;
  include: HTMLInputElement;
  cells: Map<string, { td: HTMLTableCellElement; input: HTMLInputElement; base: HTMLElement; error: HTMLElement }>;
}

/** A text field with its error line; `commit` runs on change with the field's text. */
function textField(id: string, label: string, commit: (text: string) => void): { field: HTMLElement; input: HTMLInputElement; error: HTMLElement } {
  const error = h("span", { class: "field-error", id: `${id}-error`, "data-testid": `${id}-error`, hidden: true });
  const input = h("input", { id, "data-testid": id, inputmode: "decimal", autocomplete: "off", "aria-describedby": `${id}-error` });
  input.addEventListener("change", () => commit(input.value));
  return { field: h("div", { class: "field" }, h("label", { for: id }, label), input, error), input, error };
}

/** Sets a control's text unless a person is typing in it (or it holds text that was refused). */
function showValue(input: HTMLInputElement, value: string, pending: boolean): void {
  if (pending || input.matches(":focus")) return;
  if (input.value !== value) input.value = value;
}

function showError(input: HTMLInputElement, error: HTMLElement, message: string | undefined): void {
  error.textContent = message ?? "";
  error.hidden = !message;
  input.setAttribute("aria-invalid", String(!!message));
}

export function formView(store: Store, actions: FormActions): HTMLElement {
  const commitSetting = (id: string, what: string, apply: (value: number | number[], text: string, ctx: EditContext) => string) => (text: string) => {
    let value: number | number[];
    try {
      value = settingFromText(text, what);
    } catch (e) {
      actions.fieldError(id, (e as Error).message);
      return;
    }
    actions.fieldError(id, null);
    actions.edit((recipe, ctx) => apply(value, recipe, ctx));
  };

  const unknownMethod = h("option", { value: "", hidden: true });
  const method = h("select", { id: "method", "data-testid": "method" },
    ...Object.values(METHODS).map((m) => h("option", { value: m.name }, m.title)), unknownMethod);
  // Each handler reads its control first: clearing field errors re-renders the form from the old text.
  method.addEventListener("change", () => {
    const value = method.value;
    actions.clearFieldErrors();
    actions.edit((text, ctx) => setMethod(text, value, ctx));
  });
  const about = h("a", { target: "_blank", rel: "noopener noreferrer" });
  const aboutLine = h("p", { class: "hint" }, about);
  const base = h("select", { id: "base-model", "data-testid": "base-model" });
  base.addEventListener("change", () => {
    const value = base.value;
    actions.clearFieldErrors();
    actions.edit((text, ctx) => setBase(text, value, ctx));
  });
  const baseField = h("div", { class: "field" }, h("label", { for: "base-model" }, "Base model"), base);

  const heads = new Map(PER_MODEL.map((k) => [k, h("th", { scope: "col" }, k)]));
  const tbody = h("tbody", {});
  const rows = new Map<string, Row>();
  const table = h("div", { class: "table-scroll", "data-scroll": "" },
    h("table", { class: "params" }, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Model"), ...heads.values())), tbody));

  const t = textField("param-t", "t (0 = base, 1 = other; a list makes a gradient over layers)", (text) =>
    commitSetting("param-t", "t", (v, recipe) => setGlobal(recipe, "t", v))(text));
  const lambda = textField("param-lambda", "lambda (scales the merged task vector)", (text) => {
    if (text.trim() === "") {
      actions.fieldError("param-lambda", null);
      actions.edit((recipe) => setGlobal(recipe, "lambda", undefined));
    } else commitSetting("param-lambda", "lambda", (v, recipe) => setGlobal(recipe, "lambda", v))(text);
  });
  const normalize = h("input", { id: "param-normalize", "data-testid": "param-normalize", type: "checkbox" });
  normalize.addEventListener("change", () => {
    const value = normalize.checked;
    actions.edit((recipe) => setGlobal(recipe, "normalize", value));
  });
  const normalizeField = h("div", { class: "field" }, h("label", { for: "param-normalize" }, "normalize weights to sum to 1"), normalize);
  const otherDtype = h("option", { value: "", hidden: true });
  const dtype = h("select", { id: "dtype", "data-testid": "dtype" }, ...DTYPES.map(([v, label]) => h("option", { value: v }, label)), otherDtype);
  dtype.addEventListener("change", () => {
    const value = dtype.value;
    actions.edit((recipe) => setDtype(recipe, value));
  });

  const fieldset = h("fieldset", {},
    h("legend", { class: "visually-hidden" }, "Recipe form"),
    h("div", { class: "field" }, h("label", { for: "method" }, "Method"), method),
    aboutLine, baseField, table, t.field, lambda.field, normalizeField,
    h("div", { class: "field" }, h("label", { for: "dtype" }, "Compute dtype"), dtype),
    h("p", { class: "hint" }, "Weights, density and t take a number or a list such as [0, 0.5, 1] (a gradient over the layers)."));
  const readOnly = h("p", { class: "hint", "data-testid": "form-cannot-show", hidden: true });
  const kept = h("p", { class: "hint", "data-testid": "form-kept", hidden: true });

  const makeRow = (name: string): Row => {
    const include = h("input", { type: "checkbox", name: "include" });
    include.addEventListener("change", () => {
      const value = include.checked;
      actions.edit((text, ctx) => setIncluded(text, name, value, ctx));
    });
    const cells = new Map(PER_MODEL.map((key) => {
      const id = `${key}:${name}`;
      const error = h("span", { class: "field-error", "data-testid": "field-error", hidden: true });
      const input = h("input", { name: key, inputmode: "decimal", autocomplete: "off", "aria-label": `${key} of ${name}`, placeholder: String(FORM_START[key]) });
      input.addEventListener("change", () => commitSetting(id, `${key} of ${name}`, (v, text, ctx) => setModelParameter(text, name, key, v, ctx))(input.value));
      const baseHint = h("span", { class: "hint" }, "base");
      return [key, { td: h("td", {}, input, baseHint, error), input, base: baseHint, error }] as const;
    }));
    const tr = h("tr", { "data-testid": "model-params", "data-model-name": name },
      h("td", {}, h("label", {}, include, ` ${name}`)), ...[...cells.values()].map((c) => c.td));
    return { tr, include, cells };
  };

  const setField = (input: HTMLInputElement, error: HTMLElement, id: string, value: FieldValue | undefined, s: PageState, fallback = "") => {
    const refused = s.formErrors.get(id);
    input.disabled = value !== undefined && !value.editable;
    showValue(input, value?.text || fallback, refused !== undefined);
    showError(input, error, refused);
  };

  store.watch(["recipe", "models", "chosen", "formErrors"], (s) => {
    const names = s.models.filter((m) => m.loaded).map((m) => m.name);
    const text = s.recipe.trim() ? s.recipe : starterRecipe(names);
    const mapping = mappingOf(text, s.models.map((m) => m.name), s.chosen);
    const form = readForm(text, names, (n) => mapping.map.get(n));
    const spec = METHODS[form.method];
    const shown = formFields(spec);

    fieldset.disabled = form.readOnly !== "";
    readOnly.hidden = form.readOnly === "";
    readOnly.textContent = form.readOnly && `The recipe uses ${form.readOnly}, which the form cannot edit; it runs exactly as written. Edit it in the YAML box.`;
    kept.hidden = form.kept.length === 0 || form.readOnly !== "";
    kept.textContent = `Also in the recipe, kept as written: ${form.kept.join(", ")}.`;

    unknownMethod.hidden = !!spec;
    if (!spec) {
      unknownMethod.value = form.method;
      unknownMethod.textContent = form.method ? `${form.method} (not run by weightsoup)` : "(none)";
    }
    if (method.value !== form.method) method.value = form.method;
    aboutLine.hidden = !spec?.paper;
    if (spec?.paper) {
      about.href = spec.paper;
      about.textContent = `About ${spec.title}`;
    }

    baseField.hidden = !spec?.needsBase;
    const baseOptions = ["", ...names];
    if ([...base.options].map((o) => o.value).join("\n") !== baseOptions.join("\n")) {
      base.replaceChildren(...baseOptions.map((n) => h("option", { value: n }, n || "(none)")));
    }
    if (base.value !== form.base) base.value = form.base;

    for (const key of PER_MODEL) heads.get(key)!.hidden = !shown.perModel.includes(key);
    for (const [name, row] of rows) if (!names.includes(name)) { row.tr.remove(); rows.delete(name); }
    names.forEach((name, i) => {
      let row = rows.get(name);
      if (!row) rows.set(name, (row = makeRow(name)));
      if (tbody.children[i] !== row.tr) tbody.insertBefore(row.tr, tbody.children[i] ?? null);
      const info = form.rows.get(name)!;
      const isBase = !!spec?.needsBase && name === form.base;
      row.include.checked = info.included || isBase;
      row.include.disabled = isBase;
      for (const [key, cell] of row.cells) {
        cell.td.hidden = !shown.perModel.includes(key);
        cell.input.hidden = isBase;
        cell.base.hidden = !isBase;
        setField(cell.input, cell.error, `${key}:${name}`, info.fields.get(key), s);
      }
    });

    t.field.hidden = !shown.global.includes("t");
    setField(t.input, t.error, "param-t", form.globals.get("t"), s);
    lambda.field.hidden = !shown.global.includes("lambda");
    setField(lambda.input, lambda.error, "param-lambda", form.globals.get("lambda"), s, "1");
    normalizeField.hidden = form.normalize === undefined;
    normalize.checked = form.normalize ?? false;
    normalize.disabled = form.globals.has("normalize");

    const known = DTYPES.some(([v]) => v === form.dtype);
    otherDtype.hidden = known;
    if (!known) otherDtype.value = otherDtype.textContent = form.dtype;
    if (dtype.value !== form.dtype) dtype.value = form.dtype;
  });
  return h("div", { class: "form" }, fieldset, readOnly, kept);
}
