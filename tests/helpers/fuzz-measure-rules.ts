// What the README says a measuring command must do with a fuzzed input, worked out without
// weightsoup's code: the `--vary KEY=SPEC` grammar and grid ("### Sweeps"), walked over the recipe as
// plain YAML data; and, for command lines, the inputs that must be refused (flags without values,
// unknown flags, numbers that are not whole numbers or below an option's minimum, sizes under the
// documented bounds, regexes JavaScript cannot compile, outputs that cannot be written).
import { parseAllDocuments } from "yaml";
import { RECIPE_YAML } from "../../src/recipe/yaml-schema";
import type { FlagEdit, MeasureCliCase } from "./fuzz-measure-cases";

/** The most points a sweep may have (README: a typed error past it, never an out-of-memory crash). */
export const MAX_SWEEP_POINTS = 10_000;

export type VaryVerdict =
  /** Must be refused with one of `codes`; `placed`: the message must give the recipe's line:column. */
  | { refuse: string; codes: string[]; placed: boolean }
  /** Must be accepted: the grid, first key slowest, and the recipe as data with each point's values set. */
  | { refuse?: undefined; keys: string[]; grid: number[][]; recipeAt: (point: readonly number[]) => unknown };

const KEY = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[(?:0|[1-9][0-9]*)\])*$/;
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

function decimal(text: string): number | undefined {
  const s = text.trim();
  const n = Number(s);
  return DECIMAL.test(s) && Number.isFinite(n) ? n : undefined;
}

/** A SPEC's values, or why it is not one. */
export function specValues(spec: string): number[] | string {
  const parts = spec.split(":");
  if (parts.length === 3) {
    const [start, stop] = [decimal(parts[0]!), decimal(parts[1]!)];
    const countText = parts[2]!.trim();
    if (start === undefined || stop === undefined) return `a range end of "${spec}" is not a finite number`;
    if (!/^\d+$/.test(countText) || Number(countText) < 2 || Number(countText) > MAX_SWEEP_POINTS) return `the COUNT of "${spec}" is not a whole number from 2 to ${MAX_SWEEP_POINTS}`;
    const n = Number(countText);
    const values: number[] = [];
    for (let i = 0; i < n; i++) values.push(i === n - 1 ? stop : start + ((stop - start) * i) / (n - 1));
    return values.every(Number.isFinite) ? values : `the range "${spec}" overflows to a value that is not finite`;
  }
  if (parts.length !== 1 || spec === "") return `"${spec}" is neither a list nor a range`;
  const values = spec.split(",").map(decimal);
  return values.every((v) => v !== undefined) ? (values as number[]) : `an item of "${spec}" is not a finite number`;
}

type Step = string | number;

function steps(key: string): Step[] {
  return [...key.matchAll(/([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]/g)].map((m) => (m[1] !== undefined ? m[1] : Number(m[2])));
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** Why `key` does not address a number (or a new name in a `parameters` mapping) of `data`. */
function addressProblem(data: unknown, key: string): string | undefined {
  let node: unknown = data;
  const path = steps(key);
  for (const [i, step] of path.entries()) {
    const last = i === path.length - 1;
    if (typeof step === "string") {
      if (!isObject(node)) return `${key}: step ${i + 1} is not inside a mapping`;
      if (!Object.hasOwn(node, step)) return last && path[i - 1] === "parameters" ? undefined : `${key}: the recipe has no "${step}" there`;
      node = node[step];
    } else {
      if (!Array.isArray(node) || step >= node.length) return `${key}: there is no list entry [${step}]`;
      node = node[step];
    }
  }
  return typeof node === "number" ? undefined : `${key} addresses ${Array.isArray(node) ? "a list" : isObject(node) ? "a mapping" : JSON.stringify(node)}, not a number`;
}

function setAt(data: unknown, key: string, value: number): void {
  const path = steps(key);
  let node = data as Record<string | number, unknown>;
  for (const step of path.slice(0, -1)) node = node[step] as Record<string | number, unknown>;
  Object.defineProperty(node, path.at(-1)!, { value, writable: true, enumerable: true, configurable: true });
}

/** The recipe's non-empty YAML documents as plain data. */
export function recipeDocuments(text: string): unknown[] {
  return parseAllDocuments(text as string, RECIPE_YAML).map((d) => d.toJS()).filter((v) => v !== null && v !== undefined);
}

/** What sweep must do with these --vary arguments on this recipe text. */
export function expectVary(text: string, vary: readonly string[]): VaryVerdict {
  const parsed: { key: string; values: number[] }[] = [];
  for (const arg of vary) {
    const eq = arg.indexOf("=");
    if (eq <= 0) return { refuse: `"${arg}" is not KEY=SPEC`, codes: ["E_OPTION"], placed: false };
    const key = arg.slice(0, eq).trim();
    if (!KEY.test(key)) return { refuse: `"${key}" is not a key of the README's grammar`, codes: ["E_OPTION"], placed: false };
    const values = specValues(arg.slice(eq + 1).trim());
    if (typeof values === "string") return { refuse: values, codes: ["E_OPTION"], placed: false };
    parsed.push({ key, values });
  }
  const keys = parsed.map((p) => p.key);
  if (new Set(keys).size !== keys.length) return { refuse: "a key is varied twice", codes: ["E_OPTION"], placed: false };
  const size = parsed.reduce((n, p) => n * p.values.length, 1);
  if (size > MAX_SWEEP_POINTS) return { refuse: `the grid has ${size} points`, codes: ["E_OPTION"], placed: false };
  const docs = recipeDocuments(text);
  const problems = docs.length === 1 ? keys.map((k) => addressProblem(docs[0], k)).filter((p) => p !== undefined) : [];
  if (docs.length > 1) return { refuse: "a multi-stage recipe cannot be swept", codes: problems.length ? ["E_METHOD_UNSUPPORTED", "E_OPTION"] : ["E_METHOD_UNSUPPORTED"], placed: false };
  if (problems.length) return { refuse: problems[0]!, codes: ["E_OPTION"], placed: isObject(docs[0]) };
  let grid: number[][] = [[]];
  for (const p of parsed) grid = grid.flatMap((point) => p.values.map((v) => [...point, v]));
  return {
    keys, grid,
    recipeAt: (point) => {
      const data = recipeDocuments(text)[0];
      keys.forEach((k, i) => setAt(data, k, point[i]!));
      return data;
    },
  };
}

/** Where two plain YAML values differ (numbers compared with Object.is), or undefined. */
export function dataDifference(a: unknown, b: unknown, at = ""): string | undefined {
  if (typeof a === "number" && typeof b === "number") return Object.is(a, b) ? undefined : `${at}: ${a} vs ${b}`;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return `${at}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`;
    for (let i = 0; i < a.length; i++) {
      const d = dataDifference(a[i], b[i], `${at}[${i}]`);
      if (d) return d;
    }
    return undefined;
  }
  if (isObject(a) && isObject(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) {
      if (Object.hasOwn(a, k) !== Object.hasOwn(b, k)) return `${at}.${k}: present in one only`;
      const d = dataDifference(a[k], b[k], `${at}.${k}`);
      if (d) return d;
    }
    return undefined;
  }
  return a === b ? undefined : `${at}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`;
}

// ---------------------------------------------------------------------------------------------------
// Command lines

/** Minimums of the numeric flags (README and each command's --help), and the few documented maximums. */
const MINIMUM: Record<string, number> = {
  "--points": 2, "--max-sweeps": 1, "--context": 2, "--max-tokens": 2, "--workers": 1, "--seed": 0, "--rank": 1, "--oversample": 0, "--power-iterations": 0,
};
const MAXIMUM: Record<string, number> = { "--workers": 256, "--seed": 2 ** 32 - 1, "--points": 10_001 };
const MiB = 2 ** 20;

/** Bytes of a size flag when it is plainly one (digits with an optional unit), else undefined. */
function plainSize(text: string): number | undefined {
  const m = /^(\d+)(B|KiB|MiB|GiB|KB|MB|GB)?$/.exec(text);
  if (!m) return undefined;
  const unit = { B: 1, KiB: 1024, MiB: MiB, GiB: 2 ** 30, KB: 1e3, MB: 1e6, GB: 1e9 }[m[2] ?? "B"]!;
  return Number(m[1]) * unit;
}

function valueRefusal(flag: string, value: string): string | undefined {
  if (flag in MINIMUM) {
    const n = Number(value);
    if (!/^\d+$/.test(value)) return `${flag} "${value}" is not a whole number`;
    if (n < MINIMUM[flag]!) return `${flag} ${value} is below ${MINIMUM[flag]}`;
    if (n > Math.min(MAXIMUM[flag] ?? Infinity, Number.MAX_SAFE_INTEGER)) return `${flag} ${value} is above its maximum`;
    return undefined;
  }
  if (flag === "--memory-budget") {
    const n = plainSize(value);
    return n === undefined || n < MiB || n > 2 ** 32 ? `--memory-budget "${value}" is not a size from 1 MiB to 4 GiB` : undefined;
  }
  if (flag === "--chunk-size" || flag === "--block-size") {
    const n = plainSize(value);
    return n === undefined && !/^\d/.test(value) ? `${flag} "${value}" is not a size` : n === 0 ? `${flag} is 0` : undefined;
  }
  if (["--include-regex", "--exclude-regex", "-i", "-e"].includes(flag)) {
    try {
      new RegExp(value);
    } catch {
      return `${flag} "${value}" is not a regular expression`;
    }
    return undefined;
  }
  if (flag === "--save-module") return value === "" || value === "nomatch" ? `--save-module "${value}" names no module` : undefined;
  if (flag === "--sv-epsilon") {
    const n = Number(value);
    return value.trim() === "" || !Number.isFinite(n) || n < 0 ? `--sv-epsilon "${value}" is not a number >= 0` : undefined;
  }
  if (flag === "--dtype") return ["float32", "bfloat16", "float16"].includes(value) ? undefined : `--dtype "${value}"`;
  if (flag === "--spec") return ["auto", "llama", "mlp", "gpt2"].includes(value) ? undefined : `--spec "${value}" is no built-in spec${value.endsWith(".json") || value.endsWith(".yml") ? " and its file is no permutation spec" : ""}`;
  if (flag === "--against") return ["nothere", "ids.json", "."].includes(value) ? `--against ${value} is not a model` : undefined;
  return undefined;
}

/** Output flags that name a file (written through a temporary name), and those that name a model folder. */
export const FILE_OUTPUTS = new Set(["--svg", "--report", "--csv"]);
export const FOLDER_OUTPUTS = new Set(["--out", "--write-best", "OUT_DIR"]);

function outputRefusal(flag: string, target: string): string | undefined {
  if (target === "@under-file") return `${flag} ${target} cannot be created`;
  // A model folder's missing parents are created (as mergekit's makedirs does); a report file's are not.
  if (target === "@no-parent" && FILE_OUTPUTS.has(flag)) return `${flag} ${target}: its folder does not exist`;
  if (FILE_OUTPUTS.has(flag) && (target === "@dir" || target === "@input")) return `${flag} ${target} is a folder`;
  if (FOLDER_OUTPUTS.has(flag) && (target === "@file" || target === "@input")) return `${flag} ${target} is a file or an input`;
  return undefined;
}

/** Why a mutated command line must fail, if it must; `flags` is the final flag → values map. */
export function cliRefusal(c: MeasureCliCase, flags: ReadonlyMap<string, string[]>, extra: readonly string[], sweepRecipe: string): string | undefined {
  for (const e of c.edits) {
    if (e.op === "missing") return `${e.flag} has no value`;
    if (e.op === "unknown" && e.flag !== "--") return `${e.flag} is no flag of ${c.command}`;
  }
  if (extra.some((x) => !(c.command === "soup" && x === "base"))) return `an extra argument ${extra.join(" ")}`;
  for (const [flag, values] of flags) {
    for (const v of values) {
      const why = v.startsWith("@") ? outputRefusal(flag, v) : valueRefusal(flag, v);
      if (why) return why;
    }
  }
  if (c.command === "sweep") {
    const vary = flags.get("--vary") ?? [];
    if (vary.length === 0) return "sweep without --vary";
    const v = expectVary(sweepRecipe, vary);
    if (v.refuse !== undefined) return v.refuse;
  }
  if (c.command === "extract-lora" && !flags.has("--rank")) return "extract-lora without --rank";
  if (c.command === "extract-lora" && flags.has("--distribute-scale") && flags.has("--no-distribute-scale")) return "--distribute-scale with --no-distribute-scale";
  if (c.command === "soup" && flags.has("--svg") && !flags.has("--greedy")) return "soup --svg without --greedy";
  if (c.command === "soup" && flags.has("--force") && !flags.has("--out")) return "soup --force without --out";
  if (c.command !== "diagnose" && c.command !== "extract-lora" && c.command !== "align" && !flags.has("--ids") && !flags.has("--text")) return "text to score for a model without a tokenizer";
  return undefined;
}

export type { FlagEdit };
