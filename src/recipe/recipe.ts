/**
 * @file mergekit recipes: the YAML schema of mergekit's config.py, parsed and checked before anything
 * else happens. Every problem names the recipe file and the key path (slices[1].sources[0].layer_range).
 */
import { isAlias, isCollection, isNode, isPair, isScalar, LineCounter, parseAllDocuments, type Document } from "yaml";
import { describeValue, OptionError, RecipeError } from "../errors";
import { MAX_JSON_DEPTH } from "../format/json";
import { flowDepthExceeded } from "./yaml-depth";
import { RECIPE_YAML } from "./yaml-schema";
import { dtypeFromRecipeName, type FloatDtype } from "../format/dtypes";
import type { ChatTemplateSetting } from "../vocab/chat-templates";
import { readTokenizerKeys, type TokenizerSettings } from "../vocab/settings";
import { DEFAULT_MODULE, layered, parseModules, type RecipeModule } from "./modules";
import { stagedRecipe } from "./stages";

/** A parameter value as written: scalar, gradient list, or filter list (mergekit's ParameterSetting). */
export type Setting = number | string | boolean | Setting[] | ConditionalSetting;
export interface ConditionalSetting {
  filter?: string;
  value: Setting;
}
export type Parameters = Record<string, Setting>;

export interface InputSlice {
  model: string;
  /** [start, end) of layers; absent for `models:` entries (all layers). */
  layerRange?: [number, number];
  parameters?: Parameters;
}

export interface OutputSlice {
  sources: InputSlice[];
  baseModel?: string;
  parameters?: Parameters;
}

export interface Recipe {
  /** The YAML text as given (written to the output and hashed for provenance). */
  text: string;
  /** Name for messages (the recipe's path, or "recipe"). */
  file: string;
  mergeMethod: string;
  models?: InputSlice[];
  slices?: OutputSlice[];
  baseModel?: string;
  parameters?: Parameters;
  dtype?: FloatDtype;
  outDtype?: FloatDtype;
  /** weightsoup's own step: permute every other model onto `to` before merging (Git Re-Basin). */
  align?: AlignStep;
  /** `tokenizer_source` or `tokenizer:`: the output vocabulary, embedding rows rebuilt to it (src/vocab). */
  tokenizer?: TokenizerSettings;
  /** `chat_template`: written into the output's tokenizer_config.json. */
  chatTemplate?: ChatTemplateSetting;
  /** A document's `name:` in a multi-stage recipe: later documents use it as a model (recipe/stages.ts). */
  name?: string;
  /**
   * Multi-stage recipes (several YAML documents, mergekit-multi): the documents this one, the final
   * output, depends on, in the order they run. Each is a whole Recipe; `text` above is the whole file.
   */
  stages?: Recipe[];
  /** `modules:` instead of models/slices: one sub-recipe per module of a multi-module model (recipe/modules.ts). */
  modules?: RecipeModule[];
  /**
   * What mergekit's configuration ignores, ignored here too, each a warning naming the key: keys it does
   * not read (pydantic drops unknown fields) and an entry repeating another exactly (counted once).
   * Model cards' recipes carry such things, and mergekit ran them.
   */
  ignoredKeys: string[];
}

export interface AlignStep {
  to: string;
  /** Built-in permutation spec (default "auto": from config.json). */
  spec?: "auto" | "mlp" | "llama" | "gpt2";
  /** Seed of the order weight matching visits groups in (default 0). */
  seed?: number;
  maxSweeps?: number;
}

const TOP_KEYS = ["merge_method", "models", "slices", "base_model", "parameters", "dtype", "out_dtype", "tokenizer_source", "tokenizer", "chat_template", "modules", "name", "align"];

/** Parses recipe YAML text. `file` names it in messages. */
export function parseRecipe(text: string, file = "recipe"): Recipe {
  if (typeof text !== "string") throw new OptionError("E_OPTION", `parseRecipe: the recipe text must be a string, got ${describeValue(text)}`, { key: "text" });
  const lineCounter = new LineCounter();
  const syntax = (what: string, offset?: number) => {
    const at = offset === undefined ? undefined : lineCounter.lineStarts.length > 0 ? lineCounter.linePos(offset) : textPosition(text, offset);
    return new RecipeError("E_RECIPE_SYNTAX", `${file}${at ? `:${at.line}:${at.col}` : ""}: ${what}`, { file, ...(at ? { line: at.line, column: at.col } : {}) });
  };
  // Before the parser, whose recursion makes deep flow nesting slow to fail (seconds at 100,000 levels).
  const tooDeep = flowDepthExceeded(text, MAX_JSON_DEPTH);
  if (tooDeep !== undefined) throw syntax(`nests deeper than ${MAX_JSON_DEPTH} levels`, tooDeep);
  let docs: ReturnType<typeof parseAllDocuments>;
  try {
    docs = parseAllDocuments(text, { ...RECIPE_YAML, lineCounter });
  } catch (cause) {
    throw syntax(`not readable as YAML (${(cause as Error).message.split("\n")[0]})`);
  }
  if (!Array.isArray(docs)) throw new RecipeError("E_RECIPE_SYNTAX", `${file}: not a YAML document`, { file });
  for (const doc of docs) {
    const error = doc.errors[0];
    if (error) throw syntax(error.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, ""), error.pos[0]);
  }
  // An empty document (a stray `---` at the end) is no stage.
  const filled = docs.filter((doc) => !isEmptyDocument(doc));
  if (filled.length === 0) throw new RecipeError("E_RECIPE", `${file}: is empty; a recipe needs at least merge_method and models (or slices)`, { file });
  if (filled.length > 1) {
    const documents = filled.map((doc) => ({ value: toPlainValue(doc, syntax), text: doc.range ? text.slice(doc.range[0], doc.range[2]) : String(doc) }));
    return stagedRecipe(documents, text, file, recipeFromObject);
  }
  return recipeFromObject(toPlainValue(filled[0]!, syntax), text, file);
}

/** Line and column (1-based) of an offset, for errors found before the parser has counted lines. */
function textPosition(text: string, offset: number): { line: number; col: number } {
  let line = 1, lineStart = 0;
  for (let i = text.indexOf("\n"); i !== -1 && i < offset; i = text.indexOf("\n", i + 1)) { line++; lineStart = i + 1; }
  return { line, col: offset - lineStart + 1 };
}

/** A document with nothing in it (not even `null`), as after a `---` that ends the file. */
export function isEmptyDocument(doc: Document): boolean {
  const { contents } = doc;
  return contents === null || (isScalar(contents) && contents.value === null && contents.range?.[0] === contents.range?.[1]);
}

/** Most aliases a recipe may expand: a few are handy, thousands are an attack (a "billion laughs"). */
const MAX_ALIAS_COUNT = 100;

/**
 * The document as plain values. Aliases are expanded here, so an alias to no anchor and an alias bomb
 * fail here, as do values nested deeper than any recipe needs.
 */
function toPlainValue(doc: Document, syntax: (what: string, offset?: number) => RecipeError): unknown {
  // Checked on the syntax tree before anything is expanded: the yaml package resolves an alias by
  // walking the whole document (a walk whose cost grows with the square of its depth), so a deep
  // document with aliases, or thousands of aliases, would keep toJS busy for minutes.
  const problem = treeProblem(doc);
  if (problem) throw syntax(problem.what, problem.offset);
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (cause) {
    const message = (cause as Error).message;
    if (/excessive alias count/i.test(message)) throw syntax(`expands aliases more than ${MAX_ALIAS_COUNT} times (an alias bomb?)`);
    throw syntax(message.split("\n")[0]!);
  }
  if (depthExceeds(value, MAX_JSON_DEPTH)) throw syntax(`nests deeper than ${MAX_JSON_DEPTH} levels`);
  return value;
}

/**
 * The first thing in a document's syntax tree that rules it out, with where it starts: nesting deeper
 * than MAX_JSON_DEPTH, more aliases than MAX_ALIAS_COUNT, an alias to no anchor before it. One walk in
 * document order, without recursion (the tree may be 100,000 levels deep).
 */
function treeProblem(doc: Document): { what: string; offset: number | undefined } | undefined {
  const anchors = new Map<string, unknown>();
  let aliases = 0;
  const stack: [unknown, number][] = [[doc.contents, 0]];
  while (stack.length) {
    const [node, depth] = stack.pop()!;
    const offset = (node as { range?: [number, number, number] } | null)?.range?.[0];
    if (isAlias(node)) {
      if (++aliases > MAX_ALIAS_COUNT) return { what: `expands aliases more than ${MAX_ALIAS_COUNT} times (an alias bomb?)`, offset };
      if (!anchors.has(node.source)) return { what: `alias *${node.source} refers to no anchor &${node.source} before it`, offset };
      continue;
    }
    if (isNode(node) && node.anchor) anchors.set(node.anchor, node);
    if (isPair(node)) {
      // mergekit's YAML loader (PyYAML) refuses a list or mapping as a key ("unhashable key"); the yaml
      // package would turn it into text with a console warning, and the recipe could run on that text.
      const key = isAlias(node.key) ? anchors.get(node.key.source) : node.key;
      if (isCollection(key)) return { what: "a mapping key is a list or mapping; keys must be plain scalars", offset: (node.key as { range?: [number, number, number] } | null)?.range?.[0] };
      stack.push([node.value, depth], [node.key, depth]);
    } else if (isCollection(node)) {
      if (depth >= MAX_JSON_DEPTH) return { what: `nests deeper than ${MAX_JSON_DEPTH} levels`, offset };
      for (let i = node.items.length - 1; i >= 0; i--) stack.push([node.items[i], depth + 1]);
    }
  }
  return undefined;
}

/** Whether a plain value nests lists and mappings deeper than `limit` (iterative: no recursion). */
function depthExceeds(root: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[root, 0]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    if (d >= limit) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, d + 1]);
  }
  return false;
}

/** Checks an already-parsed recipe object (the same schema as the YAML). */
export function recipeFromObject(raw: unknown, text: string, file = "recipe"): Recipe {
  const ignoredKeys: string[] = [];
  const warn = (key: string, what: string) => { ignoredKeys.push(`${file}: ${key}: ${what}`); };
  const fail = Object.assign((key: string, what: string, code: FailCode = "E_RECIPE") =>
    new RecipeError(code, `${file}: ${key ? `${key}: ` : ""}${what}`, { file, key }), {
    warn,
    ignore: (key: string, allowed: readonly string[]) => warn(key, `not a recipe key (known keys: ${allowed.join(", ")}); ignored, as mergekit ignores keys it does not know`),
  });
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw fail("", "a recipe must be a YAML mapping");
  const r = known(raw, "", TOP_KEYS, fail);
  if (typeof r.merge_method !== "string" || !r.merge_method) {
    throw fail("merge_method", r.merge_method === undefined ? "is required (for example merge_method: linear)" : `must be a method name, found ${describeValue(r.merge_method)}`);
  }
  const tokenizerKeys = readTokenizerKeys(r, file);
  const hasModels = r.models !== undefined, hasSlices = r.slices !== undefined, hasModules = r.modules !== undefined;
  if (Number(hasModels) + Number(hasSlices) + Number(hasModules) !== 1) throw fail("", "exactly one of 'models', 'slices' or 'modules' must be given");

  const recipe: Recipe = { text, file, mergeMethod: r.merge_method, ignoredKeys };
  if (r.name !== undefined) {
    if (typeof r.name !== "string" || !r.name.trim()) throw fail("name", `must be a non-empty string (the name later documents use for this one's output), found ${describeValue(r.name)}`);
    recipe.name = r.name.trim();
  }
  if (r.base_model !== undefined) recipe.baseModel = modelRef(r.base_model, "base_model", fail);
  if (r.parameters !== undefined) recipe.parameters = parameters(r.parameters, "parameters", fail);
  for (const [key, field] of [["dtype", "dtype"], ["out_dtype", "outDtype"]] as const) {
    if (r[key] === undefined) continue;
    const dtype = typeof r[key] === "string" ? dtypeFromRecipeName(r[key] as string) : undefined;
    if (!dtype) throw fail(key, `${describeValue(r[key])} is not a float dtype weightsoup computes in (bfloat16, float16, float32)`);
    recipe[field] = dtype;
  }
  if (r.align !== undefined) recipe.align = alignStep(r.align, fail);
  if (tokenizerKeys.tokenizer) recipe.tokenizer = tokenizerKeys.tokenizer;
  if (tokenizerKeys.chatTemplate) recipe.chatTemplate = tokenizerKeys.chatTemplate;
  if (hasModules) {
    const modules = parseModules(r.modules, file, (raw, label) => {
      const module = recipeFromObject({ merge_method: r.merge_method, ...raw }, text, label);
      ignoredKeys.push(...module.ignoredKeys);
      return module;
    }, fail.ignore);
    // `modules: {default: ...}` alone is the recipe's own models or slices, as mergekit plans it: a
    // frankenmerge written so may change the layer count, which a module of a model made of parts may not.
    const only = modules.length === 1 && modules[0]!.name === DEFAULT_MODULE ? modules[0]!.recipe : undefined;
    if (only) {
      if (only.models) recipe.models = only.models;
      else recipe.slices = only.slices;
      const parameters = layered(only.parameters, recipe.parameters);
      if (parameters) recipe.parameters = parameters;
    } else {
      recipe.modules = modules;
    }
  } else if (hasModels) {
    recipe.models = dropRepeats(list(r.models, "models", fail).map((m, i) => inputSlice(m, `models[${i}]`, false, fail)), "models", fail);
    if (recipe.models.length === 0) throw fail("models", "is empty");
  } else {
    recipe.slices = list(r.slices, "slices", fail).map((s, i) => outputSlice(s, `slices[${i}]`, fail));
    if (recipe.slices.length === 0) throw fail("slices", "is empty");
  }
  if (recipe.align) recipe.align.to = spelledAsListed(recipe.align.to, recipe);
  return recipe;
}

/**
 * `align: {to: a}` names the model the recipe lists as `./a` (or `a/`): one path spelled otherwise is
 * that model, named as listed (an unknown name stays, for the planner's error).
 */
function spelledAsListed(name: string, recipe: Recipe): string {
  const plain = (n: string) => n.replace(/\\/g, "/").replace(/^(\.\/)+/, "").replace(/\/+$/, "");
  const listed = [recipe.baseModel, ...(recipe.models ?? []).map((m) => m.model), ...(recipe.slices ?? []).flatMap((sl) => sl.sources.map((src) => src.model))];
  if (listed.includes(name)) return name;
  return listed.find((n) => n !== undefined && plain(n) === plain(name)) ?? name;
}

type FailCode = "E_RECIPE" | "E_METHOD_UNSUPPORTED" | "E_DUPLICATE_MODEL";
/** The recipe's error for `key`; `warn` records what mergekit ignores (Recipe.ignoredKeys), `ignore` a key it would drop. */
type Fail = ((key: string, what: string, code?: FailCode) => RecipeError) & { warn(key: string, what: string): void; ignore(key: string, allowed: readonly string[]): void };

/**
 * The keys of a mapping of mergekit's configuration that it reads (`allowed`), nulls dropped; any other
 * key is recorded as ignored (`key` is the mapping's place, "" for the top level).
 */
function known(v: object, key: string, allowed: readonly string[], fail: Fail): Record<string, unknown> {
  const out = withoutNulls(v);
  for (const k of Object.keys(out)) {
    if (allowed.includes(k)) continue;
    fail.ignore(`${key ? `${key}.` : ""}${k.slice(0, 60)}`, allowed);
    delete out[k];
  }
  return out;
}

/**
 * A mapping's keys without those set to null: mergekit's configuration fields are Optional[...] = None,
 * so `parameters:` with nothing under it (as mergekit's own examples/ties.yml has) means no parameters.
 */
function withoutNulls(v: object): Record<string, unknown> {
  // Keys come from the recipe: no prototype, so "constructor" or "toString" is only ever the recipe's own.
  const out: Record<string, unknown> = Object.create(null);
  for (const [k, x] of Object.entries(v)) if (x !== null) out[k] = x;
  return out;
}

/**
 * A model listed twice in one list: mergekit keys inputs and their parameters by model, so it counts
 * the model once with the first entry's parameters. An entry that repeats another exactly (a model
 * card's karcher of four models, one listed twice) is dropped with a warning: mergekit's result. One
 * whose parameters differ is refused, since mergekit would silently ignore them. A Map keeps this linear.
 */
function dropRepeats(entries: InputSlice[], key: string, fail: Fail): InputSlice[] {
  const seen = new Map<string, { index: number; text: string }>();
  return entries.filter((e, i) => {
    const text = JSON.stringify([e.layerRange ?? null, e.parameters ?? null]);
    const first = seen.get(e.model);
    if (first === undefined) {
      seen.set(e.model, { index: i, text });
      return true;
    }
    if (first.text !== text) {
      throw fail(`${key}[${i}].model`, `"${e.model}" is already listed as ${key}[${first.index}] with other parameters, which mergekit would ignore; each model may appear once (merge its entries into one)`, "E_DUPLICATE_MODEL");
    }
    fail.warn(`${key}[${i}].model`, `"${e.model}" repeats ${key}[${first.index}] exactly; counted once, as mergekit counts it`);
    return false;
  });
}

function alignStep(v: unknown, fail: Fail): AlignStep {
  const a = mapping(v, "align", fail, ["to", "spec", "seed", "max_sweeps"]);
  const step: AlignStep = { to: modelRef(a.to, "align.to", fail) };
  if (a.spec !== undefined) {
    if (!["auto", "mlp", "llama", "gpt2"].includes(a.spec as string)) throw fail("align.spec", `${JSON.stringify(a.spec)} is not a built-in spec (auto, mlp, llama, gpt2)`);
    step.spec = a.spec as AlignStep["spec"];
  }
  for (const [key, field, max] of [["seed", "seed", 2 ** 32 - 1], ["max_sweeps", "maxSweeps", 10_000]] as const) {
    const n = a[key];
    if (n === undefined) continue;
    if (typeof n !== "number" || !Number.isInteger(n) || n < (key === "seed" ? 0 : 1) || n > max) throw fail(`align.${key}`, `must be an integer from ${key === "seed" ? 0 : 1} to ${max}`);
    step[field] = n;
  }
  return step;
}

function list(v: unknown, key: string, fail: Fail): unknown[] {
  if (!Array.isArray(v)) throw fail(key, "must be a list");
  return v;
}

function mapping(v: unknown, key: string, fail: Fail, allowed: string[]): Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw fail(key, "must be a mapping");
  for (const k of Object.keys(v)) if (!allowed.includes(k)) throw fail(`${key}.${k.slice(0, 60)}`, `unknown key (allowed: ${allowed.join(", ")})`);
  return withoutNulls(v);
}

function modelRef(v: unknown, key: string, fail: Fail): string {
  if (typeof v === "string" && v.trim()) {
    // base+adapter: a LoRA applied to its base (src/lora/model-ref.ts).
    if (v.includes("+") && (v.split("+").length !== 2 || v.split("+").some((part) => !part.trim()))) throw fail(key, `"${v}": a LoRA reference is BASE+ADAPTER, with one "+" between two names`);
    return v.trim();
  }
  throw fail(key, "must be a model path or name (a string)");
}

function inputSlice(v: unknown, key: string, needsRange: boolean, fail: Fail): InputSlice {
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw fail(key, "must be a mapping");
  const m = known(v, key, needsRange ? ["model", "layer_range", "parameters"] : ["model", "parameters"], fail);
  const out: InputSlice = { model: modelRef(m.model, `${key}.model`, fail) };
  if (needsRange) {
    const lr = m.layer_range;
    if (!Array.isArray(lr) || lr.length !== 2 || !lr.every((x) => Number.isSafeInteger(x) && x >= 0) || lr[1] < lr[0]) {
      throw fail(`${key}.layer_range`, "must be [start, end] with 0 <= start <= end");
    }
    out.layerRange = [lr[0], lr[1]];
  }
  if (m.parameters !== undefined) out.parameters = parameters(m.parameters, `${key}.parameters`, fail);
  return out;
}

function outputSlice(v: unknown, key: string, fail: Fail): OutputSlice {
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw fail(key, "must be a mapping");
  const s = known(v, key, ["sources", "base_model", "parameters", "residual_weight"], fail);
  const sources = dropRepeats(list(s.sources, `${key}.sources`, fail).map((src, i) => inputSlice(src, `${key}.sources[${i}]`, true, fail)), `${key}.sources`, fail);
  if (sources.length === 0) throw fail(`${key}.sources`, "is empty");
  const lengths = new Set(sources.map((src) => src.layerRange![1] - src.layerRange![0]));
  if (lengths.size > 1) throw fail(`${key}.sources`, "all sources of a slice must span the same number of layers");
  const out: OutputSlice = { sources };
  if (s.base_model !== undefined) out.baseModel = modelRef(s.base_model, `${key}.base_model`, fail);
  if (s.parameters !== undefined) out.parameters = parameters(s.parameters, `${key}.parameters`, fail);
  return out;
}

function parameters(v: unknown, key: string, fail: Fail): Parameters {
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw fail(key, "must be a mapping of parameter names to values");
  // No prototype: a parameter may be named "__proto__" or "constructor" (and is then reported unknown).
  const out: Parameters = Object.create(null);
  for (const [name, value] of Object.entries(v)) out[name] = setting(value, `${key}.${name.slice(0, 60)}`, fail);
  return out;
}

/**
 * A parameter value in the forms mergekit's ParameterSetting type takes: a scalar, a list of scalars (a
 * gradient), a {filter, value} entry or a list of them, whose value is a scalar or a gradient. pydantic
 * refuses anything else (a list mixing the two kinds, a conditional inside a conditional, nested lists).
 */
function setting(v: unknown, key: string, fail: Fail, inConditional = false): Setting {
  if (typeof v === "number" || typeof v === "string" || typeof v === "boolean") return v;
  if (Array.isArray(v)) {
    if (v.length === 0) throw fail(key, "an empty list is not a value");
    const scalars = v.every((e) => typeof e === "number" || typeof e === "string" || typeof e === "boolean");
    const conditionals = !inConditional && v.every((e) => e !== null && typeof e === "object" && !Array.isArray(e));
    if (!scalars && !conditionals) {
      throw fail(key, inConditional ? "a conditional's value must be a value or a list of values (a gradient)" : "a list must hold only values (a gradient) or only {filter, value} entries");
    }
    return v.map((e, i) => setting(e, `${key}[${i}]`, fail, inConditional));
  }
  if (v !== null && typeof v === "object") {
    if (inConditional) throw fail(key, "a conditional's value must be a value or a list of values (a gradient), not another {filter, value}");
    const c = mapping(v, key, fail, ["filter", "value"]);
    if (!("value" in c)) throw fail(key, "a conditional value needs 'value' (and optionally 'filter')");
    if (c.filter !== undefined && c.filter !== null && typeof c.filter !== "string") throw fail(`${key}.filter`, "must be a string");
    const out: ConditionalSetting = { value: setting(c.value, `${key}.value`, fail, true) };
    if (typeof c.filter === "string") out.filter = c.filter;
    return out;
  }
  throw fail(key, `${describeValue(v)} is not a parameter value`);
}
