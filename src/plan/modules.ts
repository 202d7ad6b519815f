/**
 * @file Planning a `modules:` recipe. Each module is planned as a one-module recipe over its own
 * tensors: every model is seen through a view holding only the tensors under the module's prefix
 * (with the layers those tensors span), so a vision tower's 24 layers and a text decoder's 32 each get
 * their own layer structure, slices and gradients. The modules' plans are then put together into one
 * output, in the order the recipe lists the modules.
 *
 * A module's tensors are those whose name starts with `NAME.` or `model.NAME.` (transformers 4 and 5
 * layouts: `vision_tower.…`, `model.vision_tower.…`). mergekit's modular architectures call the text
 * part `text_decoder` while its tensors sit under `language_model.`, so that name also matches
 * `language_model.` and `model.language_model.`. A tensor no module claims is an error rather than
 * a silent drop (or a silent copy from the base): add a module for it (a module named `lm_head` holds
 * `lm_head.weight`).
 */
import { RecipeError, ValidationError, WeightsoupError } from "../errors";
import type { LoadedModel, TensorInfo } from "../model/model";
import { findTensor, layerCount, layerCountKeys, LM_HEAD } from "../model/roles";
import { DEFAULT_MODULE, layered, type RecipeModule } from "../recipe/modules";
import type { Recipe } from "../recipe/recipe";
import type { Ledger, LedgerEntry } from "../ledger/ledger";
import type { OutputVocabulary } from "../vocab/vocabulary";
import type { MergePlan } from "./plan";

/** mergekit's module names whose tensors sit under another word (its modular architecture files). */
const MERGEKIT_MODULE_WORDS: ReadonlyMap<string, readonly string[]> = new Map([["text_decoder", ["language_model"]]]);


/** The tensor-name prefixes a module holds (none for `default`, which holds what the others leave). */
export function modulePrefixes(name: string): string[] {
  if (name === DEFAULT_MODULE) return [];
  return [name, ...(MERGEKIT_MODULE_WORDS.get(name) ?? [])].flatMap((word) => [`${word}.`, `model.${word}.`]);
}

/** How many tensor names a message lists before "and N more". */
const SHOWN = 5;

/**
 * The plan of a `modules:` recipe: each module planned by `planOne` (plan.ts's planMerge) over views
 * of the models restricted to the module's tensors, the results joined.
 */
export function planModules(
  recipe: Recipe, modules: readonly RecipeModule[], models: ReadonlyMap<string, LoadedModel>,
  planOne: (recipe: Recipe, models: ReadonlyMap<string, LoadedModel>, vocabulary?: OutputVocabulary) => MergePlan,
  vocabulary?: OutputVocabulary,
): MergePlan {
  const problems: WeightsoupError[] = [];
  const fail = (code: "E_MODULE_EMPTY" | "E_MODULE_OVERLAP" | "E_MODULE_UNASSIGNED" | "E_METHOD_UNSUPPORTED", message: string, details: Record<string, unknown>) =>
    problems.push(new RecipeError(code, `${recipe.file}: ${message}`, { file: recipe.file, ...details }));
  const prefixes = modules.map((m) => modulePrefixes(m.name));
  const fallback = modules.findIndex((m) => m.name === DEFAULT_MODULE);
  const ownersOf = (tensor: string) => {
    const owners = modules.flatMap((_, k) => (prefixes[k]!.some((p) => tensor.startsWith(p)) ? [k] : []));
    return owners.length === 0 && fallback >= 0 ? [fallback] : owners;
  };

  // Each model's tensors, split by module.
  const split = new Map<string, Map<string, TensorInfo>[]>();
  for (const [modelName, model] of models) {
    const parts = modules.map(() => new Map<string, TensorInfo>());
    const unclaimed: string[] = [];
    // Tensors claimed by several modules, by the modules claiming them ("0,2").
    const contested = new Map<string, string[]>();
    for (const [name, info] of model.tensors) {
      const owners = ownersOf(name);
      if (owners.length === 1) parts[owners[0]!]!.set(name, info);
      else if (owners.length === 0) unclaimed.push(name);
      else contested.set(owners.join(), [...(contested.get(owners.join()) ?? []), name]);
    }
    for (const [owners, names] of contested) {
      const who = owners.split(",").map((k) => modules[Number(k)]!.name).join(" and ");
      fail("E_MODULE_OVERLAP", `${counted(names)} of ${modelName} ${names.length === 1 ? "is" : "are"} claimed by modules ${who} (${listed(names)}); each tensor may belong to one module`,
        { model: modelName, tensor: names[0], tensors: names.length, key: "modules" });
    }
    if (unclaimed.length) {
      fail("E_MODULE_UNASSIGNED", `${counted(unclaimed)} of ${modelName} belong to no module (${listed(unclaimed)}); the merge would drop them. Add a module for them (a module NAME holds the tensors under NAME. or model.NAME.; a module named default, every tensor the others leave)`,
        { model: modelName, tensor: unclaimed[0], tensors: unclaimed.length, key: "modules" });
    }
    split.set(modelName, parts);
  }
  // A tied model supplies its input embedding as lm_head (findTensor), also to a module that holds the
  // lm_head other models have but not the embedding (transformers 5's top-level `lm_head.weight` in a
  // module of its own): that module's view lists the embedding under the head's name.
  const heads = new Set([...models.values()].flatMap((m) => [...m.tensors.keys()].filter((n) => LM_HEAD.test(n))));
  for (const [modelName, model] of models) {
    for (const head of heads) {
      const k = ownersOf(head)[0] ?? -1;
      const parts = split.get(modelName)!;
      const embedding = k >= 0 && !model.tensors.has(head) ? findTensor(model, head) : undefined;
      if (embedding && !parts[k]!.has(embedding.name)) parts[k]!.set(head, embedding);
    }
  }
  throwAll(problems);

  // The models each module uses, seen through views holding only its tensors.
  const views = modules.map((m, k) => {
    // The recipe's base joins a module's `models:` (as in mergekit); a module of `slices:` uses its sources.
    const names = new Set(modelsOf(m.recipe));
    if (recipe.baseModel && m.recipe.models) names.add(recipe.baseModel);
    const view = new Map<string, LoadedModel>();
    for (const name of names) {
      const model = models.get(name)!;
      const tensors = split.get(name)![k]!;
      if (tensors.size === 0) {
        const where = k === fallback ? "outside the other modules" : `under ${prefixes[k]!.join(", ")}`;
        fail("E_MODULE_EMPTY", `modules.${m.name}: model ${name} has no tensor ${where}`, { model: name, key: `modules.${m.name}` });
      }
      // A module without layers (lm_head alone) is not held to config.json's layer count, which is the decoder's.
      const layers = layerCount(tensors.keys());
      view.set(name, { ...model, tensors, layers, config: layers === 0 ? withoutLayerCounts(model.config) : model.config });
    }
    return view;
  });
  throwAll(problems);

  const plans: MergePlan[] = [];
  modules.forEach((m, k) => {
    const own = m.recipe;
    const moduleRecipe: Recipe = {
      text: recipe.text, file: own.file, mergeMethod: recipe.mergeMethod, ignoredKeys: [],
      ...(own.models ? { models: own.models } : {}), ...(own.slices ? { slices: own.slices } : {}),
      // A module of slices that does not use the recipe's base plans without it (its slices may name their own).
      ...(recipe.baseModel && views[k]!.has(recipe.baseModel) ? { baseModel: recipe.baseModel } : {}),
      ...(recipe.dtype ? { dtype: recipe.dtype } : {}), ...(recipe.outDtype ? { outDtype: recipe.outDtype } : {}),
      // The output vocabulary reaches every module's embeddings, as mergekit rebuilds every embed input.
      ...(recipe.tokenizer ? { tokenizer: recipe.tokenizer } : {}),
    };
    const parameters = layered(own.parameters, recipe.parameters);
    if (parameters) moduleRecipe.parameters = parameters;
    try {
      const plan = planOne(moduleRecipe, views[k]!, vocabulary);
      const kept = views[k]!.get(plan.donor)!.layers;
      if (plan.outputLayers !== undefined && plan.outputLayers !== kept) {
        fail("E_METHOD_UNSUPPORTED", `modules.${m.name}: the slices make ${plan.outputLayers} layers of a module that has ${kept} in ${plan.donor}; changing a module's layer count is not supported (config.json states each module's count)`,
          { key: `modules.${m.name}.slices`, model: plan.donor });
      }
      plans.push(plan);
    } catch (e) {
      if (!(e instanceof WeightsoupError)) throw e;
      problems.push(...(e instanceof ValidationError ? e.problems : [e]));
    }
  });
  throwAll(problems);

  // A model's tensors under a module that does not use that model are not written: listed, with why.
  const unused: LedgerEntry[] = [];
  modules.forEach((m, k) => {
    for (const [modelName, parts] of split) {
      if (views[k]!.has(modelName)) continue;
      for (const [tensor, info] of parts[k]!) {
        if (tensor !== info.name) continue; // a tied model's embedding listed as lm_head: its own module accounts for it
        unused.push({ model: modelName, file: info.file, tensor, status: "refused", into: [], why: `module ${m.name} does not use this model` });
      }
    }
  });

  const first = plans[0]!;
  return {
    ...first,
    recipe,
    tensors: plans.flatMap((p) => p.tensors),
    donor: recipe.baseModel ?? first.donor,
    models,
    outputLayers: undefined,
    layerSources: [],
    ledger: joinLedgers(plans.map((p) => p.ledger), unused),
  };
}

/**
 * One ledger from the modules' own (each lists the tensors of its module) and the tensors no module used.
 * A tied model's embedding appears in two modules' ledgers (as itself, and as another module's lm_head):
 * one entry, into both outputs, as a one-module plan lists it.
 */
function joinLedgers(ledgers: Ledger[], unused: LedgerEntry[]): Ledger {
  const byTensor = new Map<string, LedgerEntry>();
  for (const entry of [...ledgers.flatMap((l) => l.entries), ...unused]) {
    const id = `${entry.model}\u0000${entry.tensor}`, seen = byTensor.get(id);
    if (!seen) byTensor.set(id, entry);
    else if (entry.status !== "refused") byTensor.set(id, seen.status === "refused" ? entry : { ...seen, status: seen.status === "merged" ? "merged" : entry.status, into: [...seen.into, ...entry.into] });
  }
  const entries = [...byTensor.values()];
  const count = (status: LedgerEntry["status"]) => entries.filter((e) => e.status === status).length;
  return { entries, counts: { inputs: entries.length, merged: count("merged"), copied: count("copied"), refused: count("refused"), outputs: ledgers.reduce((n, l) => n + l.counts.outputs, 0) } };
}

const counted = (names: string[]) => `${names.length} tensor${names.length === 1 ? "" : "s"}`;
const listed = (names: string[]) => names.slice(0, SHOWN).map((n) => `"${n}"`).join(", ") + (names.length > SHOWN ? `, and ${names.length - SHOWN} more` : "");

/** The models a module's own entry names. */
function modelsOf(recipe: Recipe): string[] {
  return [...(recipe.models ?? []).map((m) => m.model), ...(recipe.slices ?? []).flatMap((s) => [...(s.baseModel ? [s.baseModel] : []), ...s.sources.map((src) => src.model)])];
}


function throwAll(problems: WeightsoupError[]): void {
  if (problems.length === 1) throw problems[0]!;
  if (problems.length > 1) throw new ValidationError(problems);
}

/** config.json without its top-level layer counts (num_hidden_layers, n_layer, num_layers). */
function withoutLayerCounts(config: Record<string, unknown> | null): Record<string, unknown> | null {
  if (!config) return config;
  const keys = layerCountKeys(config);
  return keys.length ? Object.fromEntries(Object.entries(config).filter(([key]) => !keys.includes(key))) : config;
}
