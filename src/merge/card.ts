/**
 * @file The files an output folder gets besides its weights: config.json (the donor's, updated), a
 * README.md model card naming the method, the models and the recipe, and the recipe itself.
 */
import { torchDtypeName } from "../format/dtypes";
import { layerCountKey } from "../model/roles";
import type { MergePlan } from "../plan/plan";
import { version } from "../../package.json";

export const VERSION: string = version;

/** The donor's config.json with the output dtype and layer count. */
export function outputConfig(plan: MergePlan): Record<string, unknown> | null {
  const donor = plan.models.get(plan.donor)!.config;
  if (!donor) return null;
  const config = structuredClone(donor);
  if (plan.configDtype) {
    const name = torchDtypeName(plan.configDtype);
    // Newer transformers write "dtype" (torch_dtype is deprecated); update whichever is there.
    if ("dtype" in config) config.dtype = name;
    if ("torch_dtype" in config || !("dtype" in config)) config.torch_dtype = name;
  }
  const key = layerCountKey(config);
  if (plan.outputLayers !== undefined) config[key ?? "num_hidden_layers"] = plan.outputLayers;
  return config;
}

export function modelCard(plan: MergePlan, title: string): string {
  const models = [...new Set(plan.tensors.flatMap((t) => t.inputs.map((i) => i.model)))];
  const base = plan.recipe.baseModel;
  const method = plan.method.paper ? `[${plan.method.title}](${plan.method.paper})` : plan.method.title;
  const yamlList = (items: string[]) => items.map((m) => `- ${JSON.stringify(m)}`).join("\n");
  return `---
base_model:
${yamlList(models)}
library_name: transformers
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

${method}${base ? `, with ${base} as the base model` : ""}.

### Models merged

${models.map((m) => `- ${m}${m === base ? " (base)" : ""}`).join("\n")}

### Recipe

\`\`\`yaml
${plan.recipe.text.trimEnd()}
\`\`\`
`;
}
