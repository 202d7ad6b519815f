/**
 * @file The files an output folder gets besides its weights: config.json (the donor's, with only the
 * keys that must change changed), a README.md model card naming the method, the models and the
 * recipe, and the recipe itself.
 */
import { editTopLevel } from "../format/json";
import { torchDtypeName } from "../format/dtypes";
import type { LoadedModel } from "../model/model";
import { parseRepoId } from "../model/repo-id";
import { layerCountKeys } from "../model/roles";
import type { MergePlan } from "../plan/plan";
import { version } from "../../package.json";

export const VERSION: string = version;

/**
 * The donor's config.json as written, with the output dtype, and, when slices change the layers, the
 * layer count and every per-layer list rebuilt from the output layers' sources (transformers refuses
 * a config whose `layer_types` does not have one entry per layer).
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
  if (plan.tokenizerOutput?.vocabSize !== undefined) changes.set("vocab_size", plan.tokenizerOutput.vocabSize);
  if (plan.outputLayers !== undefined) {
    const keys = layerCountKeys(config);
    for (const key of keys.length ? keys : ["num_hidden_layers"]) changes.set(key, plan.outputLayers);
    for (const key of perLayerKeys(donor)) {
      const rebuilt = plan.layerSources.map(({ model, layer }) => perLayerList(plan.models.get(model)!, key)?.[layer]);
      if (rebuilt.every((v) => v !== undefined)) changes.set(key, rebuilt);
    }
  }
  const text = editTopLevel(donor.configText, changes);
  return text.endsWith("\n") ? text : text + "\n";
}

/** Top-level lists that may hold one entry per layer but never do. */
const NOT_PER_LAYER = new Set(["architectures"]);

/**
 * Keys of a model's config.json holding one entry per layer: `layer_types`, and any other list as long
 * as the layer count (for one-layer models only `layer_types`, since a list of one says little).
 */
function perLayerKeys(model: LoadedModel): string[] {
  return Object.keys(model.config ?? {}).filter((key) => perLayerList(model, key) !== undefined);
}

function perLayerList(model: LoadedModel, key: string): unknown[] | undefined {
  const value = model.config?.[key];
  if (!Array.isArray(value) || value.length !== model.layers || NOT_PER_LAYER.has(key)) return undefined;
  return model.layers >= 2 || key === "layer_types" ? value : undefined;
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

export function modelCard(plan: MergePlan, title: string): string {
  const names = [...new Set(plan.tensors.flatMap((t) => t.inputs.map((i) => i.model)))];
  const ids = new Map(names.map((name) => [name, repoIdOf(plan.models.get(name)!)]));
  const base = plan.recipe.baseModel;
  const method = plan.method.paper ? `[${plan.method.title}](${plan.method.paper})` : plan.method.title;
  const hubIds = [...new Set([...ids.values()].filter((id): id is string => id !== undefined))];
  // Only repo ids go in the front matter: the Hub links them; a local path would only leak a folder name.
  const baseModels = hubIds.length ? `base_model:\n${hubIds.map((m) => `- ${JSON.stringify(m)}`).join("\n")}\n` : "";
  const describe = (name: string) => {
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
