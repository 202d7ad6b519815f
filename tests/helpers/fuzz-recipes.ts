// Mutations of valid mergekit recipes: keys (unknown, prototype names, repeated), methods, parameters
// and their values (NaN, Infinity, strings, gradients, filter lists, empty lists), model entries
// (duplicated, dropped, missing models, LoRA references), layer ranges, dtypes, YAML features (anchors,
// undefined aliases, alias bombs, tags, 100,000 levels of nesting) and plain text damage. Recipes are
// written as YAML by hand, block or flow style, so hostile keys and raw YAML survive.
import fc from "fast-check";
import { RECIPES } from "./fuzz-fixtures";
import { METHODS } from "../../src/merge/methods";
import { emitJson, getPair, hostileJsonArb, hostileNumberArb, hostileStringArb, isPairs, PROTOTYPE_NAMES, setPair, toJson, type Json } from "./fuzz-json";

type Pairs = { pairs: [string, Json][] };

export type RecipeEdit =
  | { op: "top"; key: string; value: Json | undefined }
  /** A key of models[i], or of the i-th source over all slices. */
  | { op: "entry"; index: number; key: string; value: Json | undefined }
  /** A parameter in the top-level block or in entry i's block. */
  | { op: "param"; scope: "global" | "entry"; index: number; name: string; value: Json | undefined }
  | { op: "duplicateEntry"; index: number }
  | { op: "dropEntry"; index: number }
  /** The top-level key written twice (YAML forbids duplicate keys). */
  | { op: "repeatKey"; key: string };

export type TextEdit =
  | { op: "truncate"; keep: number }
  | { op: "insert"; at: number; text: string }
  | { op: "prefix"; text: string }
  | { op: "suffix"; text: string };

export interface RecipeMutations {
  template: number;
  style: "block" | "flow";
  edits: RecipeEdit[];
  text: TextEdit[];
}

// Every method the engine runs (so each new one meets mutated parameters), plus names it must refuse.
const METHOD_NAMES = [...Object.keys(METHODS), "lrp", "LINEAR", "", ...PROTOTYPE_NAMES];
const DTYPE_NAMES = ["float32", "bfloat16", "float16", "torch.float16", "float64", "int8", "fp8", "", ...PROTOTYPE_NAMES];
const MODEL_REFS = ["./base", "./a", "./b", "./missing", "org/model", "org/model@main", "./base+./lora", "", " ", "/", "..", ".", "./a/model.safetensors", ...PROTOTYPE_NAMES];
const TOP_KEYS = ["merge_method", "models", "slices", "base_model", "parameters", "dtype", "out_dtype", "tokenizer_source", "tokenizer", "chat_template", "modules", "name", "align", "unknown", ...PROTOTYPE_NAMES];
const PARAMETER_NAMES = [...new Set(Object.values(METHODS).flatMap((m) => [...Object.keys(m.global), ...Object.keys(m.perModel)])), "filter", "value", ...PROTOTYPE_NAMES];

/** YAML-specific values: aliases (defined or not), anchors, tags, YAML 1.1 literals, an alias bomb. */
const yamlRawArb: fc.Arbitrary<Json> = fc.constantFrom(
  "*w", "&w 0.5", "&w [0.1, 0.9]", "&w {filter: mlp, value: 0.5}", "!!str 0.5", "!!float 1", "!!binary aGVsbG8=", "!!js/function 'f'",
  "!!set {a, b}", "!!omap [{a: 1}]", "!!int 0x10", "!custom 1", "0x10", "0o17", "1_000", "+.inf", ".NaN", "~", "yes", "on", "2001-12-14", "|\n  text", "{[a, b]: 1}", "{<<: {weight: 0.5}}", "010", "1:30",
).map((raw): Json => ({ raw }));

const aliasBombArb: fc.Arbitrary<Json> = fc.constantFrom<Json>({ aliasBomb: [9, 9] }, { aliasBomb: [20, 2] }, { aliasBomb: [3, 3] });

/** Nesting in YAML costs the parser seconds at 100,000 levels, so that depth is drawn less often here. */
const deepYamlArb: fc.Arbitrary<Json> = fc.record({
  deep: fc.constantFrom("array" as const, "object" as const),
  depth: fc.oneof({ weight: 7, arbitrary: fc.constantFrom(50, 1_000) }, { weight: 1, arbitrary: fc.constant(100_000) }),
});

const filterListArb: fc.Arbitrary<Json> = fc.array(
  fc.record({ filter: fc.option(fc.oneof(fc.constantFrom("mlp", "self_attn", "*", "", "layers.1", "embed"), hostileJsonArb), { nil: undefined }), value: fc.oneof(hostileNumberArb, fc.array(hostileNumberArb, { maxLength: 3 })) })
    .map(({ filter, value }): Json => ({ pairs: filter === undefined ? [["value", value]] : [["filter", filter], ["value", value]] })),
  { maxLength: 3 },
);

/** A recipe value: numbers at every boundary, strings, gradients, filter lists, YAML oddities, deep nesting. */
const recipeValueArb: fc.Arbitrary<Json> = fc.oneof(
  hostileNumberArb,
  fc.constantFrom(...MODEL_REFS, "0.5", "true"),
  fc.array(fc.oneof(fc.double({ min: -2, max: 2, noNaN: true }), hostileNumberArb), { maxLength: 5 }),
  filterListArb,
  yamlRawArb,
  aliasBombArb,
  deepYamlArb,
  hostileJsonArb,
);

const layerRangeArb: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json[]>([0, 3], [0, 2], [1, 3], [2, 3], [0, 4], [0, 100], [-1, 2], [2, 1], [0.5, 2], ["0", "3"], [0, 1e12], [0, 2 ** 53], [0], [0, 1, 2], [3, 3], [0, Infinity], [NaN, 3]),
  recipeValueArb,
);

const topEditArb: fc.Arbitrary<RecipeEdit> = fc.oneof(
  fc.record({ op: fc.constant("top" as const), key: fc.constant("merge_method"), value: fc.option(fc.oneof(fc.constantFrom(...METHOD_NAMES), recipeValueArb), { nil: undefined }) }),
  fc.record({ op: fc.constant("top" as const), key: fc.constantFrom("dtype", "out_dtype"), value: fc.option(fc.oneof(fc.constantFrom(...DTYPE_NAMES), recipeValueArb), { nil: undefined }) }),
  fc.record({ op: fc.constant("top" as const), key: fc.constant("base_model"), value: fc.option(fc.oneof(fc.constantFrom(...MODEL_REFS), recipeValueArb), { nil: undefined }) }),
  fc.record({ op: fc.constant("top" as const), key: fc.constantFrom(...TOP_KEYS), value: fc.option(recipeValueArb, { nil: undefined }) }),
  fc.record({ op: fc.constant("top" as const), key: fc.constant("align"), value: fc.oneof(fc.constant<Json>({ pairs: [["to", "./base"]] }), fc.constant<Json>({ pairs: [["to", "./missing"]] }), recipeValueArb) }),
);

const entryEditArb: fc.Arbitrary<RecipeEdit> = fc.oneof(
  fc.record({ op: fc.constant("entry" as const), index: fc.nat(3), key: fc.constant("model"), value: fc.option(fc.oneof(fc.constantFrom(...MODEL_REFS), recipeValueArb), { nil: undefined }) }),
  fc.record({ op: fc.constant("entry" as const), index: fc.nat(3), key: fc.constant("layer_range"), value: fc.option(layerRangeArb, { nil: undefined }) }),
  fc.record({ op: fc.constant("entry" as const), index: fc.nat(3), key: fc.oneof(fc.constantFrom("parameters", "unknown", ...PROTOTYPE_NAMES), hostileStringArb), value: fc.option(recipeValueArb, { nil: undefined }) }),
);

export const recipeEditArb: fc.Arbitrary<RecipeEdit> = fc.oneof(
  { weight: 3, arbitrary: topEditArb },
  { weight: 3, arbitrary: entryEditArb },
  { weight: 4, arbitrary: fc.record({ op: fc.constant("param" as const), scope: fc.constantFrom("entry" as const, "global" as const), index: fc.nat(3), name: fc.constantFrom(...PARAMETER_NAMES), value: fc.option(recipeValueArb, { nil: undefined }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("duplicateEntry" as const), index: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("dropEntry" as const), index: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("repeatKey" as const), key: fc.constantFrom("merge_method", "models", "parameters") }) },
);

export const textEditArb: fc.Arbitrary<TextEdit> = fc.oneof(
  fc.record({ op: fc.constant("truncate" as const), keep: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({ op: fc.constant("insert" as const), at: fc.double({ min: 0, max: 1, noNaN: true }), text: fc.constantFrom("\t", ":", "- ", "*", "&", "[", "{", '"', "'", "#", "\n", "|", "? ", "!!", "\ufeff", "\u0000", "\ud800") }),
  fc.record({ op: fc.constant("prefix" as const), text: fc.constantFrom("---\n", "%YAML 1.1\n---\n", "%YAML 9.9\n---\n", "\ufeff", "# comment\n", "&top ") }),
  fc.record({ op: fc.constant("suffix" as const), text: fc.constantFrom("\n---\nmerge_method: linear\n", "\n...\n", "\n---\n", "\nextra: *undefined_alias\n", `\nparameters: ${deepBlock(2_000)}`) }),
);

/** Block-style nesting: each level one more indentation step (so only thousands of levels, not 100,000). */
function deepBlock(depth: number): string {
  let text = "";
  for (let i = 0; i < depth; i++) text += `\n${" ".repeat(2 * (i + 1))}k:`;
  return text + " 1\n";
}

export const recipeMutationsArb: fc.Arbitrary<RecipeMutations> = fc.record({
  template: fc.nat(RECIPES.length - 1),
  style: fc.constantFrom("block" as const, "flow" as const),
  edits: fc.array(recipeEditArb, { minLength: 0, maxLength: 4 }),
  text: fc.oneof({ weight: 4, arbitrary: fc.constant<TextEdit[]>([]) }, { weight: 1, arbitrary: fc.array(textEditArb, { minLength: 1, maxLength: 2 }) }),
});

// ---------------------------------------------------------------------------------------------------
// Building the text

export function recipeText(m: RecipeMutations): string {
  const recipe = toJson(RECIPES[m.template]!.recipe) as Pairs;
  const repeated: string[] = [];
  for (const edit of m.edits) {
    if (edit.op === "repeatKey") repeated.push(edit.key);
    else applyEdit(recipe, edit);
  }
  for (const key of repeated) {
    const pair = recipe.pairs.find(([k]) => k === key);
    if (pair) recipe.pairs.push([pair[0], pair[1]]);
  }
  let text = emitYaml(recipe, m.style);
  for (const edit of m.text) {
    switch (edit.op) {
      case "truncate": text = text.slice(0, Math.floor(edit.keep * text.length)); break;
      case "insert": { const at = Math.floor(edit.at * text.length); text = text.slice(0, at) + edit.text + text.slice(at); break; }
      case "prefix": text = edit.text + text; break;
      case "suffix": text = text + edit.text; break;
    }
  }
  return text;
}

/** models[], or every slice's sources in order. */
function entries(recipe: Pairs): Pairs[] {
  const models = getPair(recipe, "models");
  if (Array.isArray(models)) return models.filter(isPairs);
  const slices = getPair(recipe, "slices");
  if (!Array.isArray(slices)) return [];
  return slices.filter(isPairs).flatMap((s) => {
    const sources = getPair(s, "sources");
    return Array.isArray(sources) ? sources.filter(isPairs) : [];
  });
}

function applyEdit(recipe: Pairs, edit: Exclude<RecipeEdit, { op: "repeatKey" }>): void {
  const list = entries(recipe);
  const entry = list.length ? list[edit.op === "top" ? 0 : edit.index % list.length]! : undefined;
  switch (edit.op) {
    case "top":
      setPair(recipe, edit.key, edit.value);
      break;
    case "entry":
      if (entry) setPair(entry, edit.key, edit.value);
      break;
    case "param": {
      const owner = edit.scope === "global" ? recipe : entry;
      if (!owner) break;
      let block = getPair(owner, "parameters");
      if (!isPairs(block)) {
        block = { pairs: [] };
        setPair(owner, "parameters", block);
      }
      setPair(block, edit.name, edit.value);
      break;
    }
    case "duplicateEntry":
    case "dropEntry": {
      // The list holding the entry: models, or the slice's sources.
      const containers = [getPair(recipe, "models"), ...(Array.isArray(getPair(recipe, "slices")) ? (getPair(recipe, "slices") as Json[]).filter(isPairs).map((s) => getPair(s, "sources")) : [])];
      const holder = containers.find((c): c is Json[] => Array.isArray(c) && c.includes(entry as Json));
      if (!holder || !entry) break;
      const at = holder.indexOf(entry);
      if (edit.op === "dropEntry") holder.splice(at, 1);
      else holder.splice(at + 1, 0, cloneJson(entry));
      break;
    }
  }
}

function cloneJson(v: Json): Json {
  if (Array.isArray(v)) return v.map(cloneJson);
  if (isPairs(v)) return { pairs: v.pairs.map(([k, x]) => [k, cloneJson(x)]) };
  return v;
}

// ---------------------------------------------------------------------------------------------------
// YAML emission

const RESERVED = /^(true|false|null|yes|no|on|off|y|n|~|\.nan|\.inf|-\.inf)$/i;

function scalar(v: Json): string {
  if (v === null) return "null";
  if (typeof v === "boolean") return String(v);
  if (typeof v === "number") {
    if (Number.isNaN(v)) return ".nan";
    if (!Number.isFinite(v)) return v > 0 ? ".inf" : "-.inf";
    return Object.is(v, -0) ? "-0.0" : String(v);
  }
  // Plain style for names such as ./base or org/model; anything YAML could read as another type is quoted.
  if (typeof v === "string") return /^(\.{1,2}\/|[A-Za-z_/])[\w./@+-]*$/.test(v) && !RESERVED.test(v) ? v : JSON.stringify(v);
  return emitJson(v); // raw text, nesting, long strings and alias bombs are valid YAML flow text as emitted for JSON
}

const key = (k: string) => scalar(k);

function flow(v: Json): string {
  if (Array.isArray(v)) return `[${v.map(flow).join(", ")}]`;
  if (isPairs(v)) return `{${v.pairs.map(([k, x]) => `${key(k)}: ${flow(x)}`).join(", ")}}`;
  return scalar(v);
}

function block(v: Json, indent: string): string {
  const nested = (x: Json) => (isPairs(x) && x.pairs.length > 0) || (Array.isArray(x) && x.length > 0);
  if (isPairs(v)) {
    return v.pairs.map(([k, x]) => nested(x) ? `${indent}${key(k)}:\n${block(x, indent + "  ")}` : `${indent}${key(k)}: ${flow(x)}\n`).join("");
  }
  if (Array.isArray(v)) {
    return v.map((x) => nested(x) ? `${indent}-\n${block(x, indent + "  ")}` : `${indent}- ${flow(x)}\n`).join("");
  }
  return `${indent}${scalar(v)}\n`;
}

export function emitYaml(v: Json, style: "block" | "flow"): string {
  return style === "flow" ? flow(v) + "\n" : block(v, "");
}
