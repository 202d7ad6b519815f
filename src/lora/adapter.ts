/**
 * @file Reading a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors, see
 * peft-format.ts) and pairing its factors with the base model's tensors they change. Only headers
 * and the config are read here; the factors are read by the worker that applies them (apply.ts).
 */
import { describeValue, ModelError } from "../errors";
import { DTYPES } from "../format/dtypes";
import { isJsonObject, parseBoundedJson } from "../format/json";
import type { ModelFolder } from "../io/folder";
import { sameTensorValues } from "../align/checkpoint";
import { readHeader, type LoadedModel, type TensorInfo } from "../model/model";
import { findTensor, LM_HEAD } from "../model/roles";
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, isConv1D, KEY_PREFIX, patternKey, peftModuleName, PICKLED_WEIGHTS_FILE } from "./peft-format";
import { storedTensor } from "../merge/job";
import type { LoraDelta } from "./delta";

export interface LoraAdapter {
  location: string;
  /** Base tensor name -> the delta added to it. */
  deltas: Map<string, LoraDelta>;
  /** Base tensor name -> the adapter's whole replacement for it (a modules_to_save module's weight or bias). */
  replacements: Map<string, TensorInfo>;
}

function fail(file: string, message: string, details: Record<string, unknown> = {}): ModelError {
  return new ModelError("E_ADAPTER", `${file}: ${message}`, { file, ...details });
}

/**
 * A number of adapter_config.json: a rank must be positive, as PEFT requires; an alpha may be any
 * finite number, as PEFT takes it (0 scales the delta to nothing, a negative alpha subtracts it).
 */
function checkedNumber(v: unknown, what: "rank" | "alpha", key: string, file: string): number {
  const positive = what === "rank";
  if (typeof v !== "number" || !Number.isFinite(v) || (positive && v <= 0)) throw fail(file, `"${key}" must be a ${positive ? "positive" : "finite"} number, found ${describeValue(v)}`, { key });
  return v;
}

/** PEFT's layer words when layers_pattern is not given (peft.utils.constants COMMON_LAYERS_PATTERN). */
const COMMON_LAYERS_PATTERN = ["layers", "h", "block", "blocks", "layer"];

/**
 * layers_to_transform (an index or a list of them) of adapter_config.json: PEFT adapts only modules whose
 * name holds `.WORD.N.` with WORD one of layers_pattern (or the common words) and N listed. Returns, for
 * a module outside them, why (undefined inside); undefined altogether without the key.
 */
function layersToTransform(config: Record<string, unknown>, file: string): ((module: string) => string | undefined) | undefined {
  const raw = config.layers_to_transform;
  if (raw === undefined || raw === null) return undefined;
  const listed = typeof raw === "number" ? [raw] : raw;
  if (!Array.isArray(listed) || listed.some((n) => !Number.isInteger(n) || n < 0)) throw fail(file, `"layers_to_transform" must be a layer index or a list of them, found ${describeValue(raw)}`, { key: "layers_to_transform" });
  const pattern = config.layers_pattern ?? null;
  const words = pattern === null ? COMMON_LAYERS_PATTERN : typeof pattern === "string" ? [pattern] : pattern;
  if (!Array.isArray(words) || words.some((w) => typeof w !== "string" || w === "")) throw fail(file, `"layers_pattern" must be a word or a list of words, found ${describeValue(pattern)}`, { key: "layers_pattern" });
  const escaped = words.map((w) => (w as string).replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const layerOf = new RegExp(`\\.(?:${escaped.join("|")})\\.(\\d+)(?=\\.)`, "g");
  const shown = `layers_to_transform (${JSON.stringify(raw)})`;
  return (module) => {
    const m = [...`.${module}.`.matchAll(layerOf)].pop(); // the last, as PEFT's greedy `.*\.WORD\.(\d+)\.` takes it
    if (!m) return `its name has no layer index after ${words.join(", ")} and ${shown} is set`;
    return listed.includes(Number(m[1])) ? undefined : `its layer ${m[1]} is not in ${shown}`;
  };
}

/** modules_to_save of adapter_config.json: module names, or absent (null). */
function moduleNames(config: Record<string, unknown>, file: string): string[] {
  const v = config.modules_to_save ?? [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string" || x === "")) throw fail(file, `"modules_to_save" must be a list of module names or null, found ${describeValue(v)}`, { key: "modules_to_save" });
  return v as string[];
}

function patterns(config: Record<string, unknown>, key: string, what: "rank" | "alpha", file: string): Map<string, number> {
  const v = config[key] ?? {};
  if (!isJsonObject(v)) throw fail(file, `"${key}" must be a mapping of module patterns to numbers, found ${describeValue(v)}`, { key });
  const out = new Map<string, number>();
  for (const [k, x] of Object.entries(v)) out.set(k, checkedNumber(x, what, `${key}.${k.slice(0, 60)}`, file));
  return out;
}

/**
 * Opens an adapter and checks it against `base`: every factor pair must be a LoRA of a float tensor
 * of the base with matching shapes, and every whole tensor a weight or bias of a module listed in
 * modules_to_save, shaped like the base tensor it replaces. Anything weightsoup does not apply (DoRA,
 * LoRA biases, other PEFT methods) is refused by name rather than ignored.
 */
export async function openAdapter(folder: ModelFolder, base: LoadedModel): Promise<LoraAdapter> {
  const files = new Set(await folder.list());
  const configFile = `${folder.name}/${ADAPTER_CONFIG_FILE}`;
  if (files.has(ADAPTER_CONFIG_FILE) && !files.has(ADAPTER_WEIGHTS_FILE) && files.has(PICKLED_WEIGHTS_FILE)) {
    // A pickle is a program: reading one safely means a restricted unpickler, which weightsoup does
    // not carry for one legacy file; converting once with torch is simple and can be checked.
    const file = `${folder.name}/${PICKLED_WEIGHTS_FILE}`;
    throw new ModelError("E_ADAPTER", `${file}: the adapter's weights are a PyTorch pickle, which weightsoup does not read; convert it to ${ADAPTER_WEIGHTS_FILE} in that folder, e.g. python -c "import torch; from safetensors.torch import save_file; save_file(torch.load('${PICKLED_WEIGHTS_FILE}', weights_only=True), '${ADAPTER_WEIGHTS_FILE}')"`, { file });
  }
  if (!files.has(ADAPTER_CONFIG_FILE) || !files.has(ADAPTER_WEIGHTS_FILE)) {
    throw new ModelError("E_ADAPTER", `${folder.name}: not a PEFT adapter folder (it needs ${ADAPTER_CONFIG_FILE} and ${ADAPTER_WEIGHTS_FILE})`, { file: folder.name });
  }
  const parsed = parseBoundedJson(await folder.readText(ADAPTER_CONFIG_FILE));
  if ("problem" in parsed) throw fail(configFile, parsed.problem);
  if (!isJsonObject(parsed.value)) throw fail(configFile, `must hold a JSON object, found ${describeValue(parsed.value)}`);
  const config = parsed.value;
  if (config.peft_type !== "LORA") throw fail(configFile, `peft_type is ${describeValue(config.peft_type)}; weightsoup applies LoRA adapters (peft_type "LORA") only`, { key: "peft_type" });
  // PEFT tests these with `if use_rslora:`, so any truthy value is true there: a non-boolean is refused
  // rather than read as false (a string "true" would change the scale from alpha / r to alpha / √r).
  for (const key of ["use_dora", "use_rslora"]) {
    const v = config[key];
    if (v !== undefined && v !== null && typeof v !== "boolean") throw fail(configFile, `${key} must be true or false, got ${describeValue(v)}`, { key });
  }
  if (config.use_dora === true) throw fail(configFile, "use_dora is true: DoRA adapters (a magnitude vector per module) are not applied by weightsoup", { key: "use_dora" });
  // PiSSA, OLoRA, CorDA and LoftQ initialise by rewriting the base weight into a residual, and PEFT does
  // it again whenever it loads such an adapter: its factors are a delta of that residual, not of the
  // base. PEFT converts them to a plain LoRA when saved with path_initial_model_for_weight_conversion.
  const init = config.init_lora_weights;
  if (typeof init === "string" && /^(pissa|olora|corda|loftq)/i.test(init)) {
    throw fail(configFile, `init_lora_weights is ${describeValue(init)}: such an adapter is a delta of the residual PEFT makes of the base weight when it loads it, not of the base; save it converted to a plain LoRA (PEFT's path_initial_model_for_weight_conversion) and apply that`, { key: "init_lora_weights" });
  }
  const r = checkedNumber(config.r ?? 8, "rank", "r", configFile), alpha = checkedNumber(config.lora_alpha ?? 8, "alpha", "lora_alpha", configFile);
  const rankPattern = patterns(config, "rank_pattern", "rank", configFile), alphaPattern = patterns(config, "alpha_pattern", "alpha", configFile);
  const rslora = config.use_rslora === true; // fan_in_fan_out is not read: PEFT decides it by module type (isConv1D)
  const toSave = moduleNames(config, configFile);

  const weightsFile = `${folder.name}/${ADAPTER_WEIGHTS_FILE}`;
  const { tensors } = await readHeader(folder.source(ADAPTER_WEIGHTS_FILE), weightsFile);
  // module -> its A and B factors, and whether they are an Embedding's.
  const pairs = new Map<string, { a?: TensorInfo; b?: TensorInfo; embedding: boolean }>();
  const replacements = new Map<string, TensorInfo>();
  for (const [key, t] of tensors) {
    const name = key.startsWith(KEY_PREFIX) ? key.slice(KEY_PREFIX.length) : key;
    const m = /^(.+)\.lora_(A|B)(?:\.[^.]+)?\.weight$/.exec(name) ?? /^(.+)\.lora_embedding_(A|B)(?:\.[^.]+)?$/.exec(name);
    const whole = /^(.+)\.(weight|bias)$/.exec(name);
    // PEFT saves a modules_to_save module's parameters under the module's own name, and wraps every
    // module whose name ends with a listed name (a plain string suffix, as PEFT's _set_trainable checks).
    // PEFT saves the base weight of a targeted embedding too (save_embedding_layers, on by default then),
    // as `<module>.base_layer.weight`; loaded, it replaces the base's weight. Unchanged, it is the
    // base's own (in any dtype: training in float32 saves a BF16 base as F32) and changes nothing;
    // changed (a resized vocabulary), weightsoup does not apply it.
    const baseLayer = /^(.+)\.base_layer\.weight$/.exec(name);
    if (baseLayer) {
      const target = checkpointTensor(base, `${baseLayer[1]}.weight`);
      const w = base.tensors.get(target);
      if (w && (await sameTensorValues(t, w))) continue;
      throw fail(weightsFile, `tensor "${key}" is a base weight for "${target}" that differs from the base model ${base.location}'s (PEFT saves one when the vocabulary was resized); weightsoup applies an adapter over the base's own weights only`, { tensor: key });
    }
    if (!m && whole && toSave.some((s) => whole[1]!.endsWith(s))) {
      const target = checkpointTensor(base, name);
      replacements.set(target, replacement(t, target, base, weightsFile));
      continue;
    }
    if (!m) {
      throw fail(weightsFile, `tensor "${key}" is not a LoRA factor (lora_A / lora_B / lora_embedding_A / lora_embedding_B) nor a weight of a module in modules_to_save; DoRA magnitudes and LoRA biases are not applied by weightsoup`, { tensor: key });
    }
    const embedding = name.includes(".lora_embedding_");
    const pair = pairs.get(m[1]!) ?? { embedding };
    pair[m[2] === "A" ? "a" : "b"] = t;
    pairs.set(m[1]!, pair);
  }
  const transformed = layersToTransform(config, configFile);
  for (const module of pairs.keys()) {
    const why = transformed?.(module);
    if (why) throw fail(weightsFile, `module "${module}" has LoRA factors, but ${why}, so PEFT would not load them; weightsoup refuses rather than apply what PEFT leaves out`, { tensor: module, key: "layers_to_transform" });
  }
  const deltas = new Map<string, LoraDelta>();
  for (const [module, { a, b, embedding }] of pairs) {
    if (!a || !b) throw fail(weightsFile, `module "${module}" has lora_${a ? "A" : "B"} but no lora_${a ? "B" : "A"}`, { tensor: module });
    for (const t of [a, b]) {
      if (t.shape.length !== 2 || DTYPES[t.dtype]?.kind !== "float") throw fail(weightsFile, `tensor "${t.name}" must be a 2-D F32, F16 or BF16 matrix, found ${t.dtype} [${t.shape.join(", ")}]`, { tensor: t.name });
    }
    const named = checkpointTensor(base, `${module}.weight`);
    // A tied base's lm_head is its input embedding: PEFT's merge adds the delta to the shared weight, so
    // the embedding changes too, and the saved (tied) model holds it once. The delta goes on the embedding.
    const target = !base.tensors.has(named) && LM_HEAD.test(named) ? findTensor(base, named)?.name ?? named : named;
    if (replacements.has(target)) throw fail(weightsFile, `module "${module}" has both LoRA factors and a whole weight (modules_to_save)`, { tensor: target });
    if (deltas.has(target)) {
      throw fail(weightsFile, `module "${module}" and another module both change "${target}" (a tied lm_head and the embedding it shares): PEFT adds both deltas to the shared weight; weightsoup applies one delta per tensor (merge it with PEFT, or untie the base)`, { tensor: target });
    }
    const w = base.tensors.get(target);
    if (!w) throw fail(weightsFile, `module "${module}" changes tensor "${target}", which the base model ${base.location} does not have`, { tensor: target, model: base.location });
    if (w.shape.length !== 2 || DTYPES[w.dtype]?.kind !== "float") throw fail(weightsFile, `module "${module}": base tensor "${target}" is ${w.dtype} [${w.shape.join(", ")}], not a float matrix`, { tensor: target });
    // Linear: A [r, in], B [out, r], W [out, in]; Conv1D: W [in, out], ΔW = (BA)ᵀ.
    // Embedding: A [r, vocab], B [dim, r], W [vocab, dim], ΔW = (BA)ᵀ.
    const transposed = embedding || isConv1D(base.config, target);
    const rank = a.shape[0]!;
    const [rows, cols] = transposed ? [a.shape[1]!, b.shape[0]!] : [b.shape[0]!, a.shape[1]!];
    if (b.shape[1] !== rank || rows !== w.shape[0] || cols !== w.shape[1]) {
      throw fail(weightsFile, `module "${module}": factors A [${a.shape.join(", ")}] and B [${b.shape.join(", ")}] do not make a delta of the base tensor's shape [${w.shape.join(", ")}]`, { tensor: target });
    }
    const rankKey = patternKey(rankPattern.keys(), module), alphaKey = patternKey(alphaPattern.keys(), module);
    const rModule = rankKey !== undefined ? rankPattern.get(rankKey)! : r;
    const alphaModule = alphaKey !== undefined ? alphaPattern.get(alphaKey)! : alpha;
    if (rModule !== rank) {
      throw fail(weightsFile, `module "${module}": its factors have rank ${rank} but ${ADAPTER_CONFIG_FILE} gives it r = ${rModule}`, { tensor: target });
    }
    // Embedding: the left factor (rows of ΔW) is Aᵀ and the right one Bᵀ; Linear: B and A.
    deltas.set(target, {
      left: storedTensor(transposed ? a : b), right: storedTensor(transposed ? b : a), rank, transposed,
      scale: rslora ? alphaModule / Math.sqrt(rModule) : alphaModule / rModule,
    });
  }
  return { location: folder.name, deltas, replacements };
}

/** A modules_to_save tensor: it replaces the base's tensor of that name, so it must have its shape. */
function replacement(t: TensorInfo, name: string, base: LoadedModel, weightsFile: string): TensorInfo {
  const w = base.tensors.get(name);
  if (!w) throw fail(weightsFile, `modules_to_save tensor "${t.name}" replaces "${name}", which the base model ${base.location} does not have`, { tensor: name, model: base.location });
  if (w.shape.join(",") !== t.shape.join(",")) {
    throw fail(weightsFile, `modules_to_save tensor "${t.name}" is [${t.shape.join(", ")}] but the base tensor "${name}" it replaces is [${w.shape.join(", ")}]`, { tensor: name });
  }
  return { ...t, name };
}

/** The base's tensor a PEFT module's weight is: its own name, or the checkpoint's name of it (peftModuleName's inverse). */
function checkpointTensor(base: LoadedModel, weight: string): string {
  if (base.tensors.has(weight)) return weight;
  const bare = weight.startsWith("transformer.") ? weight.slice("transformer.".length) : undefined;
  return bare !== undefined && base.tensors.has(bare) && peftModuleName(base.config, bare) === weight ? bare : weight;
}
