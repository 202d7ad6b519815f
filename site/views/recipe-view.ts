/**
 * @file Section 2, the recipe: the form (views/form-view.ts) beside the YAML, which is what runs. Below
 * the YAML: the questions about recipe names that map to no loaded model, the recipe's problems as
 * found while it is edited, grouped, and what it sets that mergekit ignores (warnings).
 */
import type { Store } from "../state";
import { h, replace } from "../ui/dom";
import { mappingOf } from "../ui/mapping";
import { isRemovableEntry } from "../ui/recipe-doc";
import { formView, type FormActions } from "./form-view";
import { renderProblems } from "./problems";
import { warningsBox } from "./warnings";

export interface RecipeActions extends FormActions {
  /** The YAML box was typed in or pasted into. */
  typed(text: string): void;
  /** A person chose the loaded model a recipe name stands for ("" to undo the choice). */
  choose(recipeName: string, loadedName: string): void;
  /** Removes a recipe name's `models:` entries (it maps to no loaded model). */
  drop(recipeName: string): void;
}

export function recipeView(store: Store, actions: RecipeActions): HTMLElement {
  const yaml = h("textarea", { "data-testid": "recipe-yaml", id: "yaml", spellcheck: "false", rows: 14, autocomplete: "off", "aria-describedby": "recipe-error" });
  yaml.addEventListener("input", () => actions.typed(yaml.value));
  const mapping = h("div", { class: "mapping" });
  // Not a live region: it changes as the recipe is typed; the textarea points to it instead.
  const problems = h("div", { class: "problems", id: "recipe-error", "data-testid": "recipe-error", hidden: true });

  store.watch(["recipe"], (s) => {
    if (yaml.value !== s.recipe) yaml.value = s.recipe;
  });

  // Questions are rebuilt only when what they ask changes, so a select in use stays in place.
  let asked = "";
  store.watch(["recipe", "models", "chosen"], (s) => {
    const loaded = s.models.map((m) => m.name);
    const m = mappingOf(s.recipe, loaded, s.chosen);
    const ask = m.names.filter((n) => !m.map.has(n) || s.chosen.has(n));
    // The adapter of a `base+adapter` name is chosen among the loaded adapter folders, a model among the models.
    const offered = (name: string) => s.models.filter((x) => !!x.adapter === m.adapters.has(name)).map((x) => x.name);
    const key = JSON.stringify([ask, loaded, ask.map(offered), ask.map((n) => m.map.get(n) ?? ""), ask.map((n) => isRemovableEntry(s.recipe, n))]);
    if (key === asked) return;
    asked = key;
    replace(mapping, ...ask.map((name) => {
      const select = h("select", { "data-testid": "model-map", "data-recipe-name": name },
        h("option", { value: "" }, "choose…"), ...offered(name).map((l) => h("option", { value: l, selected: m.map.get(name) === l }, l)));
      select.addEventListener("change", () => actions.choose(name, select.value));
      const lora = [...m.loras].find(([, parts]) => parts.base === name || parts.adapter === name)?.[0];
      const question = m.adapters.has(name) ? `Which loaded LoRA adapter folder is “${name}”? ` : `Which loaded model is “${name}”? `;
      return h("div", { class: "field" },
        h("label", {}, question, select),
        lora === undefined ? null : h("span", { class: "hint" }, ` (in “${lora}”)`),
        isRemovableEntry(s.recipe, name) && !m.map.has(name)
          ? h("button", { type: "button", class: "link", "data-testid": "model-map-remove", onclick: () => actions.drop(name) }, `Remove “${name}” from the recipe`)
          : null);
    }));
  });

  const ignored = warningsBox("recipe");
  store.watch(["check"], (s) => {
    ignored.show(s.check.warnings);
    replace(problems, renderProblems(s.check.problems));
    problems.hidden = s.check.problems.length === 0;
    yaml.setAttribute("aria-invalid", String(s.check.problems.length > 0));
  });

  return h("section", { "aria-labelledby": "h-recipe" },
    h("h2", { id: "h-recipe" }, "2. Recipe"),
    h("div", { class: "columns" },
      formView(store, actions),
      h("div", { class: "yaml" },
        h("label", { for: "yaml" }, "mergekit YAML (edit or paste a recipe from a model card)"),
        yaml, mapping, problems, ignored.el)));
}
