// `npm run build:site`: the static page in dist/site. Two bundles (the page's element and the kernel
// worker, which carries the wasm inline) and the static files beside them; nothing else is needed to
// host it, and nothing in it fetches from anywhere but its own folder.
import { build } from "esbuild";
import { copyFile, mkdir, readdir, rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const root = fileURLToPath(new URL("..", import.meta.url));
const out = join(root, "dist", "site");
const common = {
  bundle: true, format: "esm", target: "es2022", platform: "neutral", mainFields: ["module", "main"],
  external: ["node:*"], loader: { ".wasm": "binary", ".yml": "text", ".txt": "text" }, logLevel: "warning", legalComments: "none",
};

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({ ...common, entryPoints: { "weightsoup-merge": join(root, "site/merge-element.ts") }, outdir: out, minify: true, sourcemap: "linked" });
await build({ ...common, entryPoints: { worker: join(root, "web-worker/worker.ts") }, outdir: out, minify: true });
await build({ ...common, entryPoints: { page: join(root, "site/page.ts"), "embed-demo": join(root, "site/embed-demo.ts"), sw: join(root, "site/sw.ts") }, outdir: out, minify: true });
for (const file of await readdir(join(root, "site"))) {
  if (/\.(html|css|svg|png|webmanifest)$/.test(file)) await copyFile(join(root, "site", file), join(out, file));
}
