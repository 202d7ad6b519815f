// The published declaration files (dist/types, npm run build:types) as a TypeScript user of the package
// meets them: the README's own library snippets, type-checked against `weightsoup` installed in a
// project, with Node's standard ESM settings (module and moduleResolution nodenext) and, for the
// browser snippet, a bundler's resolution without Node's types. Found by the stop 38 README audit: the
// declarations imported "./common" without an extension (TS2834 under nodenext, every re-export
// lost, the progress event an implicit any), and the browser entry's reached node:fs's types.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { removeDir, tempDir } from "./helpers/fixtures";

let root: string;
before(async () => { root = await tempDir("ws-types-"); });
after(async () => { await removeDir(root); });

/** The first ```js block of README.md after the line that includes `after`. */
async function readmeSnippet(after: string): Promise<string> {
  const lines = (await readFile("README.md", "utf8")).split("\n");
  const from = lines.findIndex((l) => l.includes(after));
  assert.ok(from >= 0, `README has "${after}"`);
  const open = lines.findIndex((l, i) => i > from && l.startsWith("```js"));
  const close = lines.findIndex((l, i) => i > open && l.startsWith("```"));
  return lines.slice(open + 1, close).join("\n");
}

/** Type-checks `files` in a project that has this package installed; returns tsc's output (empty when clean). */
async function typeCheck(name: string, files: Record<string, string>, compilerOptions: Record<string, unknown>): Promise<string> {
  const dir = join(root, name);
  await mkdir(join(dir, "node_modules"), { recursive: true });
  await symlink(resolve("."), join(dir, "node_modules", "weightsoup"));
  await writeFile(join(dir, "package.json"), JSON.stringify({ type: "module" }));
  for (const [file, text] of Object.entries(files)) await writeFile(join(dir, file), text);
  const options = { target: "es2022", strict: true, noEmit: true, skipLibCheck: false, ...compilerOptions };
  await writeFile(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions: options, files: Object.keys(files) }));
  const r = spawnSync(process.execPath, [resolve("node_modules/typescript/bin/tsc"), "-p", join(dir, "tsconfig.json")], { encoding: "utf8", timeout: 120_000 });
  return `${r.stdout}${r.stderr}`.trim();
}

test("the README's Node snippet type-checks under module/moduleResolution nodenext, its progress event typed", async () => {
  const snippet = await readmeSnippet("## Library");
  const errors = await typeCheck("node", {
    "app.ts": `${snippet}\nimport { WeightsoupError, type MergeEvent } from "weightsoup";\nconst e: unknown = null;\nif (e instanceof WeightsoupError) console.log(e.code, e.details.tensor);\nexport const seen: MergeEvent[] = [];\nconsole.log(summary.ledger.counts.merged);\n`,
  }, { module: "nodenext", moduleResolution: "nodenext", types: ["node"], typeRoots: [resolve("node_modules/@types")], lib: ["es2022", "dom"] });
  assert.equal(errors, "");
});

test("the README's browser snippet type-checks with a bundler's resolution (browser condition) and no Node types", async () => {
  const snippet = await readmeSnippet("Or call the library directly");
  const declarations = "declare const baseFiles: Map<string, Blob>, mathFiles: Map<string, Blob>, recipeYamlText: string;\ndeclare const onProgress: (e: import(\"weightsoup\").MergeEvent) => void, signal: AbortSignal;\n";
  const errors = await typeCheck("browser", { "page.ts": `${declarations}${snippet}\nexport {};\n` },
    { module: "esnext", moduleResolution: "bundler", customConditions: ["browser"], types: [], lib: ["es2022", "dom", "dom.iterable"] });
  assert.equal(errors, "");
});
