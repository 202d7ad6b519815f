// A static file server for the built site (dist/site): `npm run site` and the browser tests use it.
// Any static host works; this one exists so that trying the page locally takes one command and no
// extra package. It serves files only, never lists folders, and adds no special headers (the page
// must work on hosts like GitHub Pages that cannot set them).
import { createServer } from "node:http";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".webmanifest": "application/manifest+json",
  ".yml": "text/yaml; charset=utf-8",
};

/**
 * Serves `root` on 127.0.0.1:`port` (0 picks a free port). Every request is reported to `onRequest`
 * (tests keep the log to prove the page fetched nothing else).
 * @returns {Promise<{ url: string, close: () => Promise<void> }>}
 */
export async function serveStatic(root, { port = 0, onRequest } = {}) {
  const base = resolve(root);
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://localhost").pathname);
    onRequest?.(req.method ?? "GET", path);
    let file = normalize(join(base, path));
    if (file !== base && !file.startsWith(base + sep)) return reply(res, 403, "forbidden");
    try {
      let info = await stat(file);
      if (info.isDirectory()) {
        file = join(file, "index.html");
        info = await stat(file);
      }
      res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "content-length": info.size });
      if (req.method === "HEAD") return res.end();
      createReadStream(file).pipe(res);
    } catch {
      reply(res, 404, "not found");
    }
  });
  await new Promise((ok, fail) => server.once("error", fail).listen(port, "127.0.0.1", ok));
  const address = server.address();
  return {
    url: `http://127.0.0.1:${address.port}/`,
    close: () => new Promise((ok) => { server.closeAllConnections(); server.close(() => ok()); }),
  };
}

function reply(res, status, text) {
  res.writeHead(status, { "content-type": "text/plain" });
  res.end(text);
}

// `node site/serve.mjs [ROOT] [--port N]`. (Bundled into tests or benchmarks, import.meta.url is the
// bundle's, which is also argv[1]: the name check keeps this from running there.)
const self = fileURLToPath(import.meta.url);
if (process.argv[1] && resolve(process.argv[1]) === self && self.endsWith("serve.mjs")) {
  const args = process.argv.slice(2);
  const at = args.indexOf("--port");
  const port = at >= 0 ? Number(args.splice(at, 2)[1]) : 8080;
  const root = args[0] ?? fileURLToPath(new URL("../dist/site", import.meta.url));
  const { url } = await serveStatic(root, { port });
  process.stdout.write(`weightsoup page: ${url}  (serving ${root}; Ctrl+C to stop)\n`);
}
