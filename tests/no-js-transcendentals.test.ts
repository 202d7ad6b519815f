// JavaScript's Math.sin/cos/exp/log/pow/... are not specified to the bit, and V8 versions round some
// results differently (Node 20 and Chromium 156 did): a number computed with them can differ between
// the CLI and the page, and across Node versions. Numeric code calls the kernels' functions instead
// (src/kernels/scalar-math.ts). This test reads src/ and web-worker/ and fails on any transcendental
// Math call, or `**` of a non-literal base, outside the allow-list below (each entry says why its uses
// cannot change a result). Math.sqrt is IEEE-exact and allowed everywhere.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

const TRANSCENDENTAL = /\bMath\s*\.\s*(sin|cos|tan|asin|acos|atan|atan2|sinh|cosh|tanh|asinh|acosh|atanh|exp|expm1|log|log1p|log2|log10|pow|cbrt|hypot)\s*\(/g;
/** `**` whose base is not an integer literal (2 ** k, 1024 ** 3: integer powers, exact in every engine). */
const POWER = /(?<!(?:^|[^\w.$])\d+\s*)\*\*/g;

/** Files (or folders, ending in "/") and the functions they may call there, with the reason. */
const ALLOWED: { path: string; functions: string[]; why: string }[] = [
  { path: "src/chart/", functions: ["log10", "**"], why: "display only: tick positions of plots, never a result" },
  { path: "src/merge/select.ts", functions: ["log2"], why: "bucket arithmetic on integer counts (log2 of integers is exact at powers of two, where a floor or ceil could move)" },
  { path: "src/merge/engine.ts", functions: ["log2"], why: "rounds an integer row count down to a power of two" },
  { path: "src/merge/geometric-chunk.ts", functions: ["log2"], why: "depth of a fixed summation tree over an integer row count" },
  { path: "src/plan/shards.ts", functions: ["**"], why: "size suffixes: integer powers of 1000 or 1024" },
];

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "assembly", "scalar-math.ts")) && existsSync(join(dir, "src"))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error("repoRoot: the repository (assembly/scalar-math.ts) not found above this module");
    dir = up;
  }
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return tsFiles(path);
    return e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") ? [path] : [];
  });
}

/** The code without comments and string or template literals (replaced by spaces, so lines keep their numbers). */
export function codeOnly(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`/g, (m) => m.replace(/[^\n]/g, " "));
}

/** Every transcendental call and non-literal `**` in `text`, as "line N: what". */
export function findTranscendentals(text: string): { line: number; fn: string }[] {
  const code = codeOnly(text);
  const lineOf = (index: number) => code.slice(0, index).split("\n").length;
  const found: { line: number; fn: string }[] = [];
  for (const m of code.matchAll(TRANSCENDENTAL)) found.push({ line: lineOf(m.index), fn: m[1]! });
  for (const m of code.matchAll(POWER)) found.push({ line: lineOf(m.index), fn: "**" });
  return found.sort((a, b) => a.line - b.line);
}

test("the finder sees transcendental calls and non-literal powers, and skips comments, strings and literal powers", () => {
  const sample = [
    "const a = Math.exp(x);",
    "const b = Math.sqrt(x) + Math.fround(y) + Math.LN2;",
    "// Math.sin(x) in a comment",
    "const c = \"Math.cos(x)\";",
    "const d = 2 ** 32 + 1024 ** 3;",
    "const e = theta ** e;",
    "const f = Math . pow(x, 2) + x2 ** 2 + 1.5 ** y;",
    "/* Math.log(x) */ const g = Math.log2(n);",
  ].join("\n");
  assert.deepEqual(findTranscendentals(sample), [{ line: 1, fn: "exp" }, { line: 6, fn: "**" }, { line: 7, fn: "pow" }, { line: 7, fn: "**" }, { line: 7, fn: "**" }, { line: 8, fn: "log2" }]);
});

test("no transcendental JavaScript Math in src/ or web-worker/ outside the allow-list", () => {
  const root = repoRoot();
  const problems: string[] = [];
  let files = 0;
  for (const folder of ["src", "web-worker"]) {
    for (const file of tsFiles(join(root, folder))) {
      files++;
      const path = relative(root, file).split("\\").join("/");
      const allowed = ALLOWED.filter((a) => (a.path.endsWith("/") ? path.startsWith(a.path) : path === a.path)).flatMap((a) => a.functions);
      for (const { line, fn } of findTranscendentals(readFileSync(file, "utf8"))) {
        if (!allowed.includes(fn)) problems.push(`${path}:${line}: ${fn === "**" ? "**" : `Math.${fn}`}`);
      }
    }
  }
  assert.ok(files > 100, `only ${files} files read`);
  assert.deepEqual(problems, [], `use the kernels' scalar math (src/kernels/scalar-math.ts) instead of:\n${problems.join("\n")}`);
});
