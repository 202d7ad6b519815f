/**
 * @file The files an output folder gets besides its weights: config.json (the donor's, with only the
 * keys that must change changed), a README.md model card naming the method, the models and the
 * recipe, and the recipe itself.
 */
import { editSection, editTopLevel } from "../format/json";
import { torchDtypeName } from "../format/dtypes";
import type { LoadedModel } from "../model/model";
import { parseRepoId } from "../model/repo-id";
import { isEmbedding, layerCountKeys, LM_HEAD, vocabSize as statedVocabSize } from "../model/roles";
import { TEXT_SECTIONS } from "../model/stacks";
import { impliedLayerTypes, impliedSparseLayers } from "../plan/layer-config";
import { referencedModels, type MergePlan } from "../plan/plan";
import { parseRecipe, type Recipe } from "../recipe/recipe";
import { version } from "../../package.json";

export const VERSION: string = version;

/**
 * The donor's config.json as written, with the output dtype, and, when slices change the layers, the
 * layer count and every per-layer list rebuilt from the output layers' sources (transformers refuses
 * a config whose `layer_types` does not have one entry per layer). A multimodal config states the text
 * decoder's count in a section (text_config, ...), sometimes at the top level as well: each place that
 * states the decoder's old count gets the new one, and the section's per-layer lists are rebuilt too.
 * Other sections (vision_config) describe other stacks, which slices do not change.
 */
export function outputConfig(plan: MergePlan): string | null {
  const donor = plan.models.get(plan.donor)!;
  if (!donor.config || donor.configText === null) return null;
  const config = donor.config;
  const changes = new Map<string, unknown>();
  if (plan.configDtype) {
    const name = torchDtypeName(plan.configDtype);
    // Newer transformers write "dtype" (torch_dtype is deprecated); update whichever is there.
    if (Object.hasOwn(config, "dtype")) changes.set("dtype", name);
    if (Object.hasOwn(config, "torch_dtype") || !Object.hasOwn(config, "dtype")) changes.set("torch_dtype", name);
  }
  const sectionChanges = new Map<string, Map<string, unknown>>();
  const vocabSize = plan.tokenizerOutput?.vocabSize ?? cutVocabularyRows(plan);
  if (vocabSize !== undefined) {
    // Where the config states it: a multimodal model's text section (text_config.vocab_size, which
    // transformers builds the language model from), the top level, or both; the top level if nowhere.
    const sections = TEXT_SECTIONS.filter((section) => sectionOf(config, section) && Object.hasOwn(sectionOf(config, section)!, "vocab_size"));
    for (const section of sections) sectionChanges.set(section, new Map([["vocab_size", vocabSize]]));
    if (Object.hasOwn(config, "vocab_size") || sections.length === 0) changes.set("vocab_size", vocabSize);
  }
  if (untiesHead(plan)) {
    // The head is written, merged from a model's own untied head, under a config that ties it to the
    // embedding: transformers 5 keeps both and warns, transformers 4 replaces the head by the embedding.
    // Stated untied, both load as written.
    const tied = TEXT_SECTIONS.filter((section) => sectionOf(config, section)?.tie_word_embeddings === true);
    for (const section of tied) sectionChanges.set(section, new Map([...(sectionChanges.get(section) ?? []), ["tie_word_embeddings", false]]));
    if (config.tie_word_embeddings === true || (tied.length === 0 && !Object.hasOwn(config, "tie_word_embeddings"))) changes.set("tie_word_embeddings", false);
  }
  if (plan.outputLayers !== undefined) {
    for (const key of layerCountKeys(config)) changes.set(key, plan.outputLayers);
    layerChanges(plan, null, changes);
    let stated = layerCountKeys(config).length > 0;
    for (const section of TEXT_SECTIONS) {
      const inner = sectionOf(config, section);
      if (!inner) continue;
      const edits = new Map<string, unknown>();
      for (const key of layerCountKeys(inner)) {
        if (inner[key] !== donor.layers) continue;
        edits.set(key, plan.outputLayers);
        stated = true;
      }
      layerChanges(plan, section, edits);
      for (const [key, value] of sectionChanges.get(section) ?? []) edits.set(key, value);
      if (edits.size) sectionChanges.set(section, edits);
    }
    // A config that states no count anywhere gets the common key, so it describes the new depth.
    if (!stated) changes.set("num_hidden_layers", plan.outputLayers);
  }
  let text = editTopLevel(donor.configText, changes);
  for (const [section, edits] of sectionChanges) text = editSection(text, section, edits);
  return text.endsWith("\n") ? text : text + "\n";
}

/**
 * Whether the output's config must say its head is untied: it writes an lm_head that at least one model
 * gives from an lm_head of its own under a config that does not tie it, while the config's donor ties
 * its head (states so, or has no lm_head and gives its embedding).
 */
function untiesHead(plan: MergePlan): boolean {
  const donor = plan.models.get(plan.donor)!;
  const statesTied = (config: Record<string, unknown> | null) => [config, ...TEXT_SECTIONS.map((section) => sectionOf(config, section))].some((c) => c?.tie_word_embeddings === true);
  return plan.tensors.some((t) => LM_HEAD.test(t.name) && t.inputs.some((i) => LM_HEAD.test(i.tensor.name) && !statesTied(plan.models.get(i.model)!.config))
    && (statesTied(donor.config) || !t.inputs.some((i) => i.model === plan.donor && LM_HEAD.test(i.tensor.name))));
}

/**
 * The output embedding's row count where mergekit's shape rule (the rows every model has) cut it below
 * the donor's config.json vocab_size: models with vocabularies of different sizes merged without a
 * tokenizer key. config.json then states the rows written, so that transformers loads the folder.
 */
export function cutVocabularyRows(plan: MergePlan): number | undefined {
  if (plan.tokenizerOutput) return undefined;
  const stated = statedVocabSize(plan.models.get(plan.donor)!.config);
  if (stated === undefined) return undefined;
  for (const t of plan.tensors) {
    if (!isEmbedding(t.name) || t.shape.length !== 2) continue;
    const own = t.inputs.find((i) => i.model === plan.donor);
    if (own?.tensor.shape[0] === stated && t.shape[0]! < stated) return t.shape[0];
  }
  return undefined;
}

/** A section of config.json that is an object, or undefined. */
function sectionOf(config: Record<string, unknown> | null, section: string): Record<string, unknown> | undefined {
  const value = config?.[section];
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/** Sets in `changes` every per-layer list of the donor's config (`section` of it, or its top level when null), rebuilt for the output layers. */
function layerChanges(plan: MergePlan, section: string | null, changes: Map<string, unknown>): void {
  const donor = plan.models.get(plan.donor)!;
  const at = (model: LoadedModel) => (section === null ? model.config : sectionOf(model.config, section));
  for (const key of perLayerKeys(at(donor), donor.layers)) {
    const rebuilt = plan.layerSources.map(({ model, layer }) => {
      const source = plan.models.get(model)!;
      return perLayerList(at(source), key, source.layers)?.[layer];
    });
    if (rebuilt.every((v) => v !== undefined)) changes.set(key, rebuilt);
  }
  // Kinds the donor's config gives by position (layer-config.ts): stated per layer, from each layer's
  // source, where transformers' rule for the output's positions would give other kinds.
  const config = at(donor);
  const layers = plan.outputLayers!;
  const fromSources = <T>(rule: (c: Record<string, unknown>, n: number) => T[] | undefined): T[] | undefined => {
    const kinds = plan.layerSources.map(({ model, layer }) => {
      const source = plan.models.get(model)!;
      const c = at(source);
      return c ? rule(c, source.layers)?.[layer] : undefined;
    });
    return kinds.every((k) => k !== undefined) ? (kinds as T[]) : undefined;
  };
  if (config && !Array.isArray(config.layer_types) && !changes.has("layer_types")) {
    const types = fromSources(impliedLayerTypes);
    if (types && JSON.stringify(types) !== JSON.stringify(impliedLayerTypes(config, layers))) changes.set("layer_types", types);
  }
  if (config) {
    const sparse = fromSources(impliedSparseLayers);
    if (sparse && JSON.stringify(sparse) !== JSON.stringify(impliedSparseLayers(config, layers))) {
      changes.set("decoder_sparse_step", 1);
      changes.set("mlp_only_layers", sparse.flatMap((isSparse, i) => (isSparse ? [] : [i])));
    }
  }
}

/** Top-level lists that may hold one entry per layer but never do. */
const NOT_PER_LAYER = new Set(["architectures", "mlp_only_layers"]);

/**
 * Keys of a config (or section) holding one entry per layer: `layer_types`, and any other list as long
 * as the layer count (for one-layer models only `layer_types`, since a list of one says little).
 */
function perLayerKeys(config: Record<string, unknown> | null | undefined, layers: number): string[] {
  return Object.keys(config ?? {}).filter((key) => perLayerList(config, key, layers) !== undefined);
}

function perLayerList(config: Record<string, unknown> | null | undefined, key: string, layers: number): unknown[] | undefined {
  const value = config?.[key];
  if (!Array.isArray(value) || value.length !== layers || NOT_PER_LAYER.has(key)) return undefined;
  return layers >= 2 || key === "layer_types" ? value : undefined;
}

/**
 * The Hugging Face repo id of a model, when it is known: the cache it was found in, or the
 * `_name_or_path` of its config when that is a repo id rather than a local path.
 */
function repoIdOf(model: LoadedModel): string | undefined {
  if (model.folder.repoId) return model.folder.repoId;
  const named = model.config?._name_or_path;
  return typeof named === "string" && !named.includes("@") && parseRepoId(named) ? named : undefined;
}

/**
 * The earlier documents of a multi-stage recipe by name, read again from the recipe's text (the final
 * document's plan holds only its own): their outputs are models the final document merges.
 */
function earlierDocuments(plan: MergePlan): Map<string, Recipe> {
  try {
    return new Map((parseRecipe(plan.recipe.text, plan.recipe.file).stages ?? []).map((stage) => [stage.name!, stage]));
  } catch {
    return new Map(); // a recipe given as an object, whose text is not YAML
  }
}

export function modelCard(plan: MergePlan, title: string): string {
  const names = [...new Set(plan.tensors.flatMap((t) => t.inputs.map((i) => i.model)))];
  const ids = new Map(names.map((name) => [name, repoIdOf(plan.models.get(name)!)]));
  const base = plan.recipe.baseModel;
  const method = plan.method.paper ? `[${plan.method.title}](${plan.method.paper})` : plan.method.title;
  const hubIds = [...new Set([...ids.values()].filter((id): id is string => id !== undefined))];
  // Only repo ids go in the front matter: the Hub links them; a local path would only leak a folder name.
  const baseModels = hubIds.length ? `base_model:\n${hubIds.map((m) => `- ${JSON.stringify(m)}`).join("\n")}\n` : "";
  const stages = earlierDocuments(plan);
  const describe = (name: string) => {
    const stage = stages.get(name);
    if (stage) return `${name} (merged by this recipe's document "${name}", ${stage.mergeMethod} of ${referencedModels(stage).join(", ")})`;
    const id = ids.get(name);
    return id && id !== name ? `${id} (as ${name})` : id ?? `${name} (a local model)`;
  };
  return `---
${baseModels}library_name: transformers
tags:
- merge
- weightsoup
- mergekit
---
# ${title}

This model is a merge of pre-trained language models, made with weightsoup ${VERSION} from the
mergekit recipe below.

## Merge details

### Method

${method}${base ? `, with ${describe(base)} as the base model` : ""}.

### Models merged

${names.map((m) => `- ${describe(m)}${m === base ? " (base)" : ""}`).join("\n")}

### Recipe

\`\`\`yaml
${plan.recipe.text.trimEnd()}
\`\`\`
`;
}
