/**
 * @file The recipe form: a view of the recipe text that edits it in place (ui/recipe-doc.ts). Its
 * controls are built once and updated where they stand, so a select changed by keyboard keeps focus
 * and its type-ahead, and a field a person is typing in is never overwritten; rows are kept per model.
 */
import { METHODS } from "../../src/merge/methods";
import type { Store } from "../state";
import { h } from "../ui/dom";
import { mappingOf } from "../ui/mapping";
import {
  fieldSetting, formFields, readForm, setBase, setDtype, setGlobal, setIncluded, setMethod, setModelParameter, starterRecipe,
  type EditContext, type FieldValue, type FormField,
} from "../ui/recipe-doc";
import type { Setting } from "../../src/recipe/recipe";

export interface FormActions {
  /** Applies an edit to the recipe text (the starter recipe when it is empty). */
  edit(change: (text: string, ctx: EditContext) => string): void;
  /** Records (message) or clears (null) what is wrong with a field's text. */
  fieldError(id: string, message: string | null): void;
  /** Forgets refused field texts (the method or base changed, which lays the fields out anew). */
  clearFieldErrors(): void;
}

const DTYPES: [string, string][] = [["", "as the inputs"], ["bfloat16", "bfloat16"], ["float16", "float16"], ["float32", "float32"]];

/** The element that edits one parameter, built for its kind, with its error line. */
interface Control {
  field: FormField;
  el: HTMLInputElement | HTMLSelectElement;
  error: HTMLElement;
  /** A choice's option for a recipe value that is none of the choices (the check says why). */
  other: HTMLOptionElement | undefined;
}

interface Cell extends Control {
  td: HTMLTableCellElement;
  base: HTMLElement;
}

interface Row {
  tr: HTMLTableRowElement;
  name: HTMLTableCellElement;
  include: HTMLInputElement;
  /** By controlKey: cells stay built when the method changes, so switching back keeps them. */
  cells: Map<string, Cell>;
}

/** A control is reused only for the same field: methods differ in a parameter's default or whether it is required. */
const controlKey = (f: FormField) => JSON.stringify([f.key, f.kind, f.choices, f.default, f.required]);

const defaultText = (f: FormField): string =>
  f.default === undefined ? "" : f.kind === "checkbox" ? (f.default ? "on" : "off") : String(f.default);

/** "Required." / "Default: 0.01." after a parameter's description. */
function aboutText(f: FormField): string {
  const rule = f.required ? "Required." : f.default !== undefined ? `Default: ${defaultText(f)}.` : "";
  return [f.description, rule].filter(Boolean).join(" ");
}

/**
 * Builds the control for a field: a text field for numbers and lists, a checkbox for a boolean, a
 * select for a string choice (its first option leaves it unset). `commit` gets what it holds.
 */
function makeControl(f: FormField, attrs: Record<string, string>, errorAttrs: Record<string, string>, commit: (value: string | boolean) => void): Control {
  const error = h("span", { class: "field-error", hidden: true, ...errorAttrs });
  let el: HTMLInputElement | HTMLSelectElement;
  let other: HTMLOptionElement | undefined;
  if (f.kind === "checkbox") {
    el = h("input", { type: "checkbox", ...attrs });
    el.addEventListener("change", () => commit((el as HTMLInputElement).checked));
  } else if (f.kind === "choice") {
    other = h("option", { value: "", hidden: true });
    const unset = f.required ? [] : [h("option", { value: "" }, f.default !== undefined ? `default (${defaultText(f)})` : "(unset)")];
    el = h("select", attrs, ...unset, ...f.choices.map((c) => h("option", { value: c }, c)), other);
    el.addEventListener("change", () => commit(el.value));
  } else {
    el = h("input", { inputmode: f.kind === "number" ? "decimal" : "text", autocomplete: "off", ...attrs });
    el.addEventListener("change", () => commit(el.value));
  }
  return { field: f, el, error, other };
}

/** Sets a text field unless a person is typing in it (or it holds text that was refused). */
function showValue(input: HTMLInputElement, value: string, pending: boolean): void {
  if (pending || input.matches(":focus")) return;
  if (input.value !== value) input.value = value;
}

/** Shows the recipe's value (or the default, for a checkbox) and any refusal of what was typed. */
function showControl(c: Control, value: FieldValue | undefined, refused: string | undefined): void {
  const f = c.field;
  c.el.disabled = value !== undefined && !value.editable;
  const text = value?.text ?? "";
  if (f.kind === "checkbox") {
    (c.el as HTMLInputElement).checked = text === "" ? f.default === true : text === "true";
  } else if (f.kind === "choice") {
    const known = text === "" ? !f.required : f.choices.includes(text);
    c.other!.hidden = known;
    if (!known) c.other!.value = c.other!.textContent = text;
    if (c.el.value !== text) c.el.value = text;
  } else {
    const placeholder = f.default !== undefined ? defaultText(f) : f.required ? "required" : "";
    if (c.el.getAttribute("placeholder") !== placeholder) c.el.setAttribute("placeholder", placeholder);
    showValue(c.el as HTMLInputElement, text, refused !== undefined);
  }
  c.error.textContent = refused ?? "";
  c.error.hidden = !refused;
  c.el.setAttribute("aria-invalid", String(!!refused));
}

/** Puts exactly `wanted` in `parent`, in order, moving only what is out of place (focus stays). */
function placeChildren(parent: Element, wanted: readonly Element[]): void {
  wanted.forEach((el, i) => {
    if (parent.children[i] !== el) parent.insertBefore(el, parent.children[i] ?? null);
  });
  while (parent.children.length > wanted.length) parent.lastElementChild!.remove();
}

export function formView(store: Store, actions: FormActions): HTMLElement {
  /** Writes what a field's control holds into the recipe, or shows why it cannot. */
  const commit = (id: string, field: FormField, what: string, control: string | boolean, model?: string) => {
    let value: Setting | undefined;
    try {
      value = fieldSetting(field, control, what);
    } catch (e) {
      actions.fieldError(id, (e as Error).message);
      return;
    }
    actions.fieldError(id, null);
    actions.edit((text, ctx) => (model === undefined ? setGlobal(text, field.key, value) : setModelParameter(text, model, field.key, value, ctx)));
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

  // Per-model parameters: a column each, built on first use and kept.
  const modelHead = h("th", { scope: "col" }, "Model");
  const heads = new Map<string, HTMLTableCellElement>();
  const headRow = h("tr", {}, modelHead);
  const tbody = h("tbody", {});
  const rows = new Map<string, Row>();
  const table = h("div", { class: "table-scroll", "data-scroll": "" }, h("table", { class: "params" }, h("thead", {}, headRow), tbody));
  const perModelNotes = h("ul", { class: "hint param-notes", "data-testid": "per-model-about" });
  const noteItems = new Map<string, HTMLLIElement>();

  // Method-wide parameters: a field each, built on first use and kept.
  const globalsBox = h("div", { "data-testid": "global-params" });
  const globals = new Map<string, { box: HTMLElement; control: Control; about: HTMLElement }>();
  const globalField = (f: FormField) => {
    const known = globals.get(controlKey(f));
    if (known) return known;
    const id = `param-${f.key}`;
    const control = makeControl(f, { id, "data-testid": id, "aria-describedby": `${id}-about ${id}-error` },
      { id: `${id}-error`, "data-testid": `${id}-error` }, (value) => commit(id, f, f.key, value));
    const aboutLine = h("span", { class: "hint field-about", id: `${id}-about`, "data-testid": "param-about", "data-param": f.key });
    const box = h("div", { class: "field", "data-param": f.key }, h("label", { for: id }, f.key), control.el, aboutLine, control.error);
    const made = { box, control, about: aboutLine };
    globals.set(controlKey(f), made);
    return made;
  };

  const otherDtype = h("option", { value: "", hidden: true });
  const dtype = h("select", { id: "dtype", "data-testid": "dtype" }, ...DTYPES.map(([v, label]) => h("option", { value: v }, label)), otherDtype);
  dtype.addEventListener("change", () => {
    const value = dtype.value;
    actions.edit((recipe) => setDtype(recipe, value));
  });

  const fieldset = h("fieldset", {},
    h("legend", { class: "visually-hidden" }, "Recipe form"),
    h("div", { class: "field" }, h("label", { for: "method" }, "Method"), method),
    aboutLine, baseField, table, perModelNotes, globalsBox,
    h("div", { class: "field" }, h("label", { for: "dtype" }, "Compute dtype"), dtype),
    h("p", { class: "hint" }, "Number fields take a number or a list such as [0, 0.5, 1] (a gradient over the layers). An empty field leaves the parameter unset: its default applies."));
  const readOnly = h("p", { class: "hint", "data-testid": "form-cannot-show", hidden: true });
  const kept = h("p", { class: "hint", "data-testid": "form-kept", hidden: true });

  const makeRow = (name: string): Row => {
    const include = h("input", { type: "checkbox", name: "include" });
    include.addEventListener("change", () => {
      const value = include.checked;
      actions.edit((text, ctx) => setIncluded(text, name, value, ctx));
    });
    const nameCell = h("td", {}, h("label", {}, include, ` ${name}`));
    return { tr: h("tr", { "data-testid": "model-params", "data-model-name": name }, nameCell), name: nameCell, include, cells: new Map() };
  };
  const cellOf = (row: Row, modelName: string, f: FormField): Cell => {
    const known = row.cells.get(controlKey(f));
    if (known) return known;
    const id = `${f.key}:${modelName}`;
    const what = `${f.key} of ${modelName}`;
    const control = makeControl(f, { name: f.key, "aria-label": what }, { "data-testid": "field-error" }, (value) => commit(id, f, what, value, modelName));
    const baseHint = h("span", { class: "hint" }, "base");
    const cell = { ...control, td: h("td", {}, control.el, baseHint, control.error), base: baseHint };
    row.cells.set(controlKey(f), cell);
    return cell;
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

    baseField.hidden = !(spec?.needsBase || spec?.optionalBase);
    const baseOptions = ["", ...names];
    if ([...base.options].map((o) => o.value).join("\n") !== baseOptions.join("\n")) {
      base.replaceChildren(...baseOptions.map((n) => h("option", { value: n }, n || "(none)")));
    }
    if (base.value !== form.base) base.value = form.base;

    placeChildren(headRow, [modelHead, ...shown.perModel.map((f) => {
      let th = heads.get(f.key);
      if (!th) heads.set(f.key, (th = h("th", { scope: "col" }, f.key)));
      return th;
    })]);
    placeChildren(perModelNotes, shown.perModel.map((f) => {
      let li = noteItems.get(f.key);
      if (!li) noteItems.set(f.key, (li = h("li", { "data-param": f.key })));
      const line = `${f.key}: ${aboutText(f)}`;
      if (li.textContent !== line) li.textContent = line;
      return li;
    }));
    perModelNotes.hidden = shown.perModel.length === 0;

    for (const [name, row] of rows) if (!names.includes(name)) { row.tr.remove(); rows.delete(name); }
    names.forEach((name, i) => {
      let row = rows.get(name);
      if (!row) rows.set(name, (row = makeRow(name)));
      if (tbody.children[i] !== row.tr) tbody.insertBefore(row.tr, tbody.children[i] ?? null);
      const info = form.rows.get(name)!;
      const isBase = !!(spec?.needsBase || spec?.optionalBase) && name === form.base;
      row.include.checked = info.included || isBase;
      row.include.disabled = isBase;
      const cells = shown.perModel.map((f) => {
        const cell = cellOf(row, name, f);
        cell.el.hidden = isBase;
        cell.base.hidden = !isBase;
        showControl(cell, info.fields.get(f.key), s.formErrors.get(`${f.key}:${name}`));
        return cell;
      });
      placeChildren(row.tr, [row.name, ...cells.map((c) => c.td)]);
    });

    placeChildren(globalsBox, shown.global.map((f) => {
      const g = globalField(f);
      const line = aboutText(f);
      if (g.about.textContent !== line) g.about.textContent = line;
      g.about.hidden = line === "";
      showControl(g.control, form.globals.get(f.key), s.formErrors.get(`param-${f.key}`));
      return g.box;
    }));

    const known = DTYPES.some(([v]) => v === form.dtype);
    otherDtype.hidden = known;
    if (!known) otherDtype.value = otherDtype.textContent = form.dtype;
    if (dtype.value !== form.dtype) dtype.value = form.dtype;
  });
  return h("div", { class: "form" }, fieldset, readOnly, kept);
}
