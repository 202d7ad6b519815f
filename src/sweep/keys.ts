/**
 * @file Sweep keys: the address of one number in a recipe, written like the recipe's own key paths in
 * error messages (`parameters.t`, `models[1].parameters.weight`, `parameters.t[2]`,
 * `slices[0].sources[1].parameters.weight`), and a recipe's YAML text with that number replaced.
 *
 * Grammar: KEY = NAME ( "." NAME | "[" INDEX "]" )*, NAME = [A-Za-z_][A-Za-z0-9_]*, INDEX = 0 | [1-9][0-9]*.
 * Every step but the last must exist in the recipe. The last may be new only inside a `parameters`
 * mapping (sweeping `parameters.density` of a recipe that leaves it at its default); anything it
 * replaces must be a number, so a whole gradient or filter list cannot be swapped for one value by
 * accident (address one anchor, `parameters.t[2]`, or a filter entry's `value`).
 */
import { Document, isAlias, isMap, isNode, isScalar, isSeq, LineCounter, parseAllDocuments, parseDocument, visit, type Node } from "yaml";
import { OptionError, RecipeError } from "../errors";
import { isEmptyDocument } from "../recipe/recipe";
import { RECIPE_YAML } from "../recipe/yaml-schema";

export type KeyStep = string | number;

/** A key's steps; malformed keys are refused naming the key. */
export function parseKey(key: string): KeyStep[] {
  const steps: KeyStep[] = [];
  // INDEX has no length limit: a huge one is a position the list does not have, refused with its place.
  const re = /(?:^|\.)([A-Za-z_][A-Za-z0-9_]*)|\[(0|[1-9][0-9]*)\]/y;
  let at = 0;
  while (at < key.length) {
    re.lastIndex = at;
    const m = re.exec(key);
    // A name after the first needs its "." (the pattern's ^ matches only at 0); none may start the key.
    if (!m || key[0] === ".") {
      throw keyError(key, `is not a recipe key (at character ${at + 1}); write names joined by "." and list positions as [N], e.g. models[1].parameters.weight`);
    }
    steps.push(m[1] !== undefined ? m[1] : Number(m[2]));
    at = re.lastIndex;
  }
  if (steps.length === 0 || typeof steps[0] !== "string") throw keyError(key, "is not a recipe key: it must start with a top-level name such as parameters, models or slices");
  return steps;
}

export function keyError(key: string, what: string, details: Record<string, unknown> = {}): OptionError {
  return new OptionError("E_OPTION", `--vary ${key}: ${what}`, { key, ...details });
}

/**
 * A recipe text with each key set to its value. Multi-document (multi-stage) recipes are refused: a
 * key would not say which document it means.
 */
export function assignValues(text: string, file: string, values: ReadonlyMap<string, number>): string {
  const lines = new LineCounter();
  // Documents as parseRecipe reads them: empty ones (a stray `---`) are no stage.
  const docs = parseAllDocuments(text, { ...RECIPE_YAML, lineCounter: lines, keepSourceTokens: false });
  if (!Array.isArray(docs)) throw new RecipeError("E_RECIPE_SYNTAX", `${file}: not a YAML document`, { file });
  const error = docs.flatMap((d) => d.errors)[0];
  if (error) throw new RecipeError("E_RECIPE_SYNTAX", `${file}: ${error.message.split("\n")[0]}`, { file });
  const filled = docs.filter((d) => !isEmptyDocument(d));
  if (filled.length > 1) {
    throw new RecipeError("E_METHOD_UNSUPPORTED", `${file}: a multi-stage recipe (${filled.length} documents) cannot be swept: a key would not say which document it means; sweep one stage's recipe`, { file });
  }
  const doc = filled[0] ?? docs[0] ?? parseDocument("", RECIPE_YAML);
  const replaced: { start: number; end: number; value: number }[] = [];
  let added = false;
  for (const [key, value] of values) {
    const at = setNumber(doc, lines, file, key, value);
    if (at) replaced.push({ ...at, value });
    else added = true;
  }
  // Each number is written over the one it replaces, every other byte as written: the document
  // re-serialized would come out re-formatted ({weight: 1} as { weight: 1 }, long strings folded), so
  // --write-best's mergekit_config.yml and recipe hash would differ from those of the same recipe
  // written by hand. A new parameter has no place in the text yet: then the document is re-serialized.
  if (added) return doc.toString();
  let out = text;
  for (const { start, end, value } of replaced.sort((a, b) => b.start - a.start)) out = out.slice(0, start) + yamlNumber(value) + out.slice(end);
  return out;
}

/** A number as the recipe's YAML writes it (-0 stays -0; 1e-7 as the reader takes it back). */
function yamlNumber(value: number): string {
  return new Document(value, RECIPE_YAML).toString().trimEnd();
}

/** Checks that every key addresses a number (or a new parameter) of the recipe, before any work. */
export function checkKeys(text: string, file: string, keys: readonly string[]): void {
  assignValues(text, file, new Map(keys.map((k) => [k, 0])));
}

/**
 * Sets `key` to `value` in `doc`: returns where the number it replaces is in the text, or nothing when
 * the key is a new parameter, added to its mapping.
 */
function setNumber(doc: Document, lines: LineCounter, file: string, key: string, value: number): { start: number; end: number } | undefined {
  const steps = parseKey(key);
  const where = (node: Node | null | undefined) => {
    const offset = node?.range?.[0];
    if (offset === undefined) return { text: file, details: { file } };
    const { line, col } = lines.linePos(offset);
    return { text: `${file}:${line}:${col}`, details: { file, line, column: col } };
  };
  // A number inside an anchored node that an alias (or a `<<` merge) repeats elsewhere is shared: setting
  // it would vary every place that uses the anchor, not only the one the key names.
  const aliased = new Set<string>();
  visit(doc, { Alias: (_, alias) => { aliased.add(alias.source); } });
  let node: unknown = doc.contents;
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i]!, last = i === steps.length - 1;
    const path = pathText(steps.slice(0, i + 1));
    const parent = node as Node | null;
    if (isNode(parent) && (isAlias(parent) || (parent.anchor && aliased.has(parent.anchor)))) throw sharedError(key, parent, pathText(steps.slice(0, i)), where(parent));
    if (typeof step === "string") {
      if (!isMap(parent)) throw keyError(key, `${where(parent).text}: ${i === 0 ? "the recipe" : pathText(steps.slice(0, i))} is not a mapping, so it has no "${step}"`, where(parent).details);
      node = parent.get(step, true);
      if (node === undefined) {
        if (last && steps[i - 1] === "parameters") {
          parent.set(step, value);
          return undefined;
        }
        const known = parent.items.map((p) => String(isScalar(p.key) ? p.key.value : p.key)).join(", ");
        throw keyError(key, `${where(parent).text}: the recipe has no ${path} (${i === 0 ? "top-level keys" : pathText(steps.slice(0, i)) + " has"}: ${known || "nothing"})`, where(parent).details);
      }
    } else {
      if (!isSeq(parent)) throw keyError(key, `${where(parent).text}: ${pathText(steps.slice(0, i))} is not a list, so it has no [${step}]`, where(parent).details);
      if (step >= parent.items.length) throw keyError(key, `${where(parent).text}: ${pathText(steps.slice(0, i))} has ${parent.items.length} entr${parent.items.length === 1 ? "y" : "ies"}, so there is no [${step}]`, where(parent).details);
      node = parent.items[step];
    }
    if (last) {
      if (isNode(node) && (isAlias(node) || (node.anchor && aliased.has(node.anchor)))) throw sharedError(key, node, path, where(node));
      if (!isScalar(node) || typeof node.value !== "number") {
        const what = isSeq(node) ? "a list (a gradient or filter list): address one entry, e.g. " + `${key}[0]` : isMap(node) ? "a mapping" : `${JSON.stringify(isScalar(node) ? node.value : null)}`;
        throw keyError(key, `${where(node as Node).text}: ${path} is ${what}, not a number to vary`, where(node as Node).details);
      }
      node.value = value;
      return { start: node.range![0], end: node.range![1] };
    }
  }
  return undefined;
}

/** A key through an anchor that is used again, or through an alias of one: the value it names is shared. */
function sharedError(key: string, node: Node, path: string, at: { text: string; details: Record<string, unknown> }): OptionError {
  const anchor = isAlias(node) ? node.source : node.anchor!;
  const how = isAlias(node) ? `is *${anchor}, an alias of a value anchored as &${anchor}` : `is anchored as &${anchor} and used again through *${anchor}`;
  return keyError(key, `${at.text}: ${path || "the recipe"} ${how}, so its numbers are shared and varying one would vary every use; write the value out where it is varied`, { ...at.details, anchor });
}

function pathText(steps: readonly KeyStep[]): string {
  return steps.map((s, i) => (typeof s === "number" ? `[${s}]` : i === 0 ? s : `.${s}`)).join("");
}
