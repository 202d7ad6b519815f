/**
 * @file PEFT's LoRA adapter format, as PEFT saves it (`save_pretrained`): adapter_config.json and
 * adapter_model.safetensors, whose keys are the module's name in the wrapped model,
 * `base_model.model.<module>.`, then `lora_A.weight` [r, in] and `lora_B.weight` [out, r] for a
 * Linear (ΔW = B·A), or `lora_embedding_A` [r, vocab] and `lora_embedding_B` [dim, r] for an
 * Embedding (ΔW = (B·A)ᵀ). The scale applied is lora_alpha / r (lora_alpha / √r with use_rslora),
 * with r and lora_alpha overridden per module by `rank_pattern` / `alpha_pattern`, whose keys match a
 * module name when the name ends with them after a dot (PEFT's get_pattern_key: the regex
 * `(.*\.)?(KEY)$`). A module in `modules_to_save` is stored whole as `base_model.model.<module>.weight`
 * (and `.bias`): PEFT's saved form, with its "modules_to_save.<adapter>" part dropped.
 */
import { VERSION } from "../merge/card";
import type { ModuleReport } from "./extract";

export const ADAPTER_CONFIG_FILE = "adapter_config.json";
export const ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors";
export const KEY_PREFIX = "base_model.model.";
/** Older PEFT's (and torch.save's) pickled weights: refused with a conversion hint, never unpickled. */
export const PICKLED_WEIGHTS_FILE = "adapter_model.bin";

/**
 * The families whose projections (c_attn, c_proj, c_fc) are transformers' Conv1D modules: GPT-2, OpenAI's
 * GPT-1 and ImageGPT. Their models also sit under `transformer.` in the LM-head classes PEFT wraps.
 */
const CONV1D_FAMILIES = ["gpt2", "openai-gpt", "imagegpt"];

function conv1dFamily(config: Record<string, unknown> | null): boolean {
  return typeof config?.model_type === "string" && CONV1D_FAMILIES.includes(config.model_type);
}

/**
 * Those projections' weights are stored [in, out]. PEFT gives each module the layout of its type,
 * whatever adapter_config.json's fan_in_fan_out says (it warns and overrides it): a Conv1D's ΔW is
 * (B·A)ᵀ, an nn.Linear's B·A. (Until stop 37 only model_type gpt2 counted: an OpenAI GPT adapter was
 * applied untransposed, or refused where its projection is not square.)
 */
export function isConv1D(config: Record<string, unknown> | null, weight: string): boolean {
  return conv1dFamily(config) && /(^|\.)(c_attn|q_attn|c_proj|c_fc)\.weight$/.test(weight);
}

/**
 * A module's name in the model transformers builds from a checkpoint (what PEFT keys and matches): a
 * GPT-2-style checkpoint in OpenAI's layout (`h.0.attn.c_attn`, no `transformer.`) loads under the LM
 * head class's `transformer.`; lm_head stays where it is.
 */
export function peftModuleName(config: Record<string, unknown> | null, module: string): string {
  return conv1dFamily(config) && !module.startsWith("transformer.") && module !== "lm_head" ? `transformer.${module}` : module;
}

export function loraKeys(module: string, embedding: boolean): { a: string; b: string } {
  const p = KEY_PREFIX + module;
  return embedding ? { a: `${p}.lora_embedding_A`, b: `${p}.lora_embedding_B` } : { a: `${p}.lora_A.weight`, b: `${p}.lora_B.weight` };
}

/** The pattern key of `patterns` that PEFT would pick for `module`, if any. */
export function patternKey(patterns: Iterable<string>, module: string): string | undefined {
  for (const key of patterns) {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:.*\\.)?(?:${key})$`);
    } catch {
      if (module === key || module.endsWith(`.${key}`)) return key;
      continue;
    }
    if (re.test(module)) return key;
  }
  return undefined;
}

/**
 * adapter_config.json of an extracted adapter: r = lora_alpha = the largest module rank, and each
 * module of lower rank in rank_pattern and alpha_pattern with alpha = its rank, so every module's
 * scale is 1. Module names are written as regular expressions matching exactly that module (dots
 * escaped), and target_modules lists the full names; so does modules_to_save (modules saved whole).
 */
export function adapterConfig(modules: ModuleReport[], rank: number, baseModel: string, saved: string[] = [], conv1d = false): string {
  const exact = (name: string) => name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const rankPattern: Record<string, number> = Object.create(null);
  const alphaPattern: Record<string, number> = Object.create(null);
  for (const m of modules) {
    if (m.rank === rank) continue;
    rankPattern[exact(m.module)] = m.rank;
    alphaPattern[exact(m.module)] = m.rank;
  }
  const config = {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: baseModel,
    r: rank,
    lora_alpha: rank,
    target_modules: modules.filter((m) => m.kind === "linear").map((m) => m.module),
    rank_pattern: rankPattern,
    alpha_pattern: alphaPattern,
    lora_dropout: 0.0,
    bias: "none",
    fan_in_fan_out: conv1d, // PEFT sets it per module type anyway; true says the factors are Conv1D's
    use_rslora: false,
    use_dora: false,
    init_lora_weights: true,
    modules_to_save: saved.length ? saved : null,
    layers_to_transform: null,
    layers_pattern: null,
    inference_mode: true,
    revision: null,
  };
  const embeddings = modules.filter((m) => m.kind === "embedding").map((m) => m.module);
  if (embeddings.length) config.target_modules.push(...embeddings);
  return JSON.stringify(config, null, 2) + "\n";
}

export function adapterReadme(modules: ModuleReport[], rank: number, baseModel: string, finetuned: string, saved: string[] = []): string {
  const worst = Math.max(...modules.map((m) => m.relativeError));
  return `---
base_model: ${JSON.stringify(baseModel)}
library_name: peft
tags:
- weightsoup
- lora
---
# LoRA extracted with weightsoup

A rank-${rank} LoRA approximating \`${finetuned}\` as \`${baseModel}\` + B·A, from a truncated SVD
of each linear weight's task vector (\`weightsoup extract-lora\`, version ${VERSION}).
${modules.length} modules; ${saved.length ? `saved whole (modules_to_save): ${saved.map((m) => `\`${m}\``).join(", ")}; ` : ""}relative reconstruction error ‖ΔW − BA‖_F / ‖ΔW‖_F at most ${worst.toPrecision(4)}.

| module | shape | rank | relative error |
|---|---|---|---|
${modules.map((m) => `| ${m.module} | ${m.shape.join(" × ")} | ${m.rank} | ${m.relativeError.toPrecision(4)} |`).join("\n")}
`;
}
