// Browser test harness: headless Chromium (the system's, driven by playwright-core; never downloaded),
// the static server for dist/site with a request log, readers for the origin-private file system
// (OPFS), the Node CLI on the same recipe, and a file-by-file comparison of the two outputs.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { access, mkdir, readFile, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type BrowserContext, type Page, type Request } from "playwright-core";
import { CLI, removeDir } from "./fixtures";

interface StaticServer {
  url: string;
  close(): Promise<void>;
}
type ServeStatic = (root: string, options?: { port?: number; onRequest?(method: string, path: string): void }) => Promise<StaticServer>;

/**
 * site/serve.mjs, loaded at run time rather than bundled: bundled into a test file, its "run as a
 * script" check (argv[1] against import.meta.url) would match the test file that node --test runs and
 * start a second server on port 8080 that keeps the test process alive.
 */
const SERVE_URL = new URL("../../site/serve.mjs", import.meta.url);
async function loadServeStatic(): Promise<ServeStatic> {
  const module = (await import(SERVE_URL.href)) as { serveStatic: ServeStatic };
  return module.serveStatic;
}

/** dist/site, built by `npm run build` (build:site). Same depth from tests/helpers and .build/tests. */
export const SITE_DIR = fileURLToPath(new URL("../../dist/site/", import.meta.url));
/** Screenshots land here (.build/ is gitignored). */
export const ARTIFACTS_DIR = fileURLToPath(new URL("../../.build/test-artifacts/browser/", import.meta.url));
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
/** Upper bound of every single wait in the browser tests. */
export const WAIT_MS = 60_000;

export interface BrowserEnv {
  browser: Browser;
  /** The server's origin URL, ending in "/". */
  url: string;
  origin: string;
  /** Every request any page or worker of any context made (URL, resource type, initiating page URL). */
  requests: { url: string; type: string; frame: string }[];
  /** Every request the static server received. */
  served: { method: string; path: string }[];
  /** Console errors and uncaught page errors (printed as they happen, kept for assertions). */
  pageErrors: string[];
  close(): Promise<void>;
}

/** Fails (never skips) when there is no Chromium to drive or no built page to serve. */
export async function checkPrerequisites(): Promise<void> {
  try {
    await access(CHROMIUM_PATH, constants.X_OK);
  } catch {
    throw new Error(
      `Chromium not found at ${CHROMIUM_PATH}. The browser tests need a system Chromium (they never download one): ` +
      `install it with \`apt-get install chromium\` (Debian/Ubuntu), or point CHROMIUM_PATH at a Chromium or Chrome binary.`,
    );
  }
  try {
    await access(join(SITE_DIR, "index.html"));
  } catch {
    throw new Error(`the built page is missing (${join(SITE_DIR, "index.html")}): run \`npm run build\` first`);
  }
}

/** Launches Chromium and serves dist/site. */
export async function startBrowserEnv(): Promise<BrowserEnv> {
  await checkPrerequisites();
  const served: BrowserEnv["served"] = [];
  const server = await (await loadServeStatic())(SITE_DIR, { onRequest: (method, path) => { served.push({ method, path }); } });
  let browser: Browser;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true, timeout: WAIT_MS });
  } catch (e) {
    await server.close();
    throw new Error(`could not launch Chromium at ${CHROMIUM_PATH}: ${(e as Error).message}`);
  }
  await rm(ARTIFACTS_DIR, { recursive: true, force: true });
  await mkdir(ARTIFACTS_DIR, { recursive: true });
  return {
    browser, url: server.url, origin: new URL(server.url).origin, requests: [], served, pageErrors: [],
    async close() {
      await browser.close().catch(() => {});
      await server.close();
    },
  };
}

export interface PageOptions {
  viewport?: { width: number; height: number };
  /** Runs in every document of the context before the page's own scripts (stubs of browser APIs). */
  init?: () => void;
}

/**
 * A fresh context (its own empty OPFS) and page at `path`, with requests recorded and browser errors
 * printed. Waits until the element's shadow root has rendered its run button.
 */
export async function openPage(env: BrowserEnv, path = "index.html", label = path, options: PageOptions = {}): Promise<{ context: BrowserContext; page: Page }> {
  const context = await env.browser.newContext({ viewport: options.viewport ?? { width: 1280, height: 1000 } });
  context.setDefaultTimeout(WAIT_MS);
  if (options.init) await context.addInitScript(options.init);
  const record = (r: Request) => {
    let frame = "";
    try { frame = r.frame().url(); } catch { /* worker or service-worker request */ }
    env.requests.push({ url: r.url(), type: r.resourceType(), frame });
  };
  context.on("request", record);
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") {
      const line = `[${label}] console.${m.type()}: ${m.text()}`;
      if (m.type() === "error") env.pageErrors.push(line);
      process.stderr.write(line + "\n");
    }
  });
  page.on("pageerror", (e) => {
    const line = `[${label}] pageerror: ${e.stack ?? e.message}`;
    env.pageErrors.push(line);
    process.stderr.write(line + "\n");
  });
  await page.goto(env.url + path, { waitUntil: "load" });
  await page.locator(`weightsoup-merge button[data-testid="run"]`).first().waitFor({ state: "attached" }).catch(async (e: Error) => {
    await context.close();
    throw new Error(`${path}: <weightsoup-merge> did not render its run button: ${e.message.split("\n")[0]}`);
  });
  return { context, page };
}

/** Opens a page, runs `body`, screenshots the page when `body` fails, closes the context. */
export async function inPage(env: BrowserEnv, name: string, path: string, body: (page: Page, context: BrowserContext) => Promise<void>, options: PageOptions = {}): Promise<void> {
  const { context, page } = await openPage(env, path, name, options);
  try {
    await body(page, context);
  } catch (e) {
    await screenshot(page, `${name}-failure`);
    throw e;
  } finally {
    await context.close();
  }
}

export const host = (page: Page) => page.locator("weightsoup-merge").first();
export const byTestId = (page: Page, id: string, tag = "") => page.locator(`${tag}[data-testid="${id}"]`);

/** The element's data-state. */
export async function stateOf(page: Page): Promise<string | null> {
  return host(page).getAttribute("data-state");
}

/** Visible text of the first match, or "" when there is none (for failure messages). */
export async function textOf(page: Page, selector: string): Promise<string> {
  const l = page.locator(selector);
  return (await l.count()) ? ((await l.first().textContent()) ?? "").trim() : "";
}

/** What the page shows about a failure: status, error, recipe errors, model errors. */
export async function pageDiagnostics(page: Page): Promise<string> {
  const parts: string[] = [`data-state=${await stateOf(page)}`];
  for (const id of ["status", "error", "recipe-error", "run-blocked", "model-error", "model-warning", "add-problem", "eval-status", "eval-blocked", "eval-error", "gen-status", "gen-blocked", "gen-error"]) {
    const l = byTestId(page, id);
    for (let i = 0; i < (await l.count()); i++) {
      const t = ((await l.nth(i).textContent()) ?? "").trim();
      if (t) parts.push(`${id}: ${t}`);
    }
  }
  return parts.join(" | ");
}

/**
 * Waits until data-state is one of `settled` (default: any state other than "idle"/"running" counts),
 * then asserts it is `expected`, with what the page shows in the message.
 */
export async function waitForState(page: Page, expected: string, settled: string[] = ["done", "cancelled", "error"], timeout = WAIT_MS): Promise<void> {
  await waitForAttribute(page, "data-state", expected, settled, timeout);
}

/** waitForState for another of the element's state attributes (data-eval-state, data-generate-state). */
export async function waitForAttribute(page: Page, attribute: string, expected: string, settled: string[] = ["done", "cancelled", "error"], timeout = WAIT_MS): Promise<void> {
  const wanted = [...new Set([expected, ...settled])];
  try {
    await page.waitForFunction(
      ([name, states]: [string, string[]]) => states.includes(document.querySelector("weightsoup-merge")?.getAttribute(name) ?? ""),
      [attribute, wanted] as [string, string[]], { timeout, polling: 50 },
    );
  } catch (e) {
    throw new Error(`${attribute} did not become ${wanted.join("/")} within ${timeout} ms (${await pageDiagnostics(page)}): ${(e as Error).message.split("\n")[0]}`);
  }
  const state = await host(page).getAttribute(attribute);
  assert.equal(state, expected, `expected ${attribute}=${expected}, page shows: ${await pageDiagnostics(page)}`);
}

/** Waits until the Merge button is enabled (the recipe is checked as it is edited, not instantly). */
export async function waitForRunEnabled(page: Page): Promise<void> {
  await page.locator(`button[data-testid="run"]:enabled`).waitFor({ state: "attached", timeout: WAIT_MS }).catch(async (e: Error) => {
    throw new Error(`Merge stayed disabled (${await pageDiagnostics(page)}): ${e.message.split("\n")[0]}`);
  });
}

/**
 * Waits until Merge is disabled and the reason shown next to it matches `why`; returns that reason.
 * (Problems are found while the recipe is edited, before Merge is pressed.)
 */
export async function waitForRunBlocked(page: Page, why: RegExp, timeout = 10_000): Promise<string> {
  const deadline = Date.now() + timeout;
  let reason = "";
  for (;;) {
    const disabled = await byTestId(page, "run", "button").isDisabled();
    const l = page.locator(`[data-testid="run-blocked"]:visible`);
    reason = (await l.count()) ? ((await l.first().textContent()) ?? "").trim() : "";
    if (disabled && why.test(reason)) return reason;
    if (Date.now() > deadline) break;
    await page.waitForTimeout(50);
  }
  throw new Error(`expected Merge disabled with a reason matching ${why} next to it; Merge is ${await byTestId(page, "run", "button").isDisabled() ? "disabled" : "enabled"}, reason shown: "${reason}" (${await pageDiagnostics(page)})`);
}

/** data-testid of the element focused inside <weightsoup-merge> ("" when focus left it). */
export async function focusedTestId(page: Page): Promise<string> {
  return page.evaluate(() => {
    const active = document.querySelector("weightsoup-merge")?.shadowRoot?.activeElement as HTMLElement | null | undefined;
    return active?.dataset.testid ?? (active ? active.tagName.toLowerCase() : `outside: ${document.activeElement?.tagName ?? "none"}`);
  });
}

/** Loads model folders through the folder input (one call per folder) and waits for their entries. */
export async function addFolders(page: Page, dirs: string[], expectNames: string[]): Promise<void> {
  const input = byTestId(page, "add-folder", "input");
  for (const dir of dirs) await input.setInputFiles(dir);
  await waitForModels(page, expectNames);
}

export async function waitForModels(page: Page, names: string[]): Promise<void> {
  for (const name of names) {
    try {
      await page.locator(`[data-testid="model"][data-model-name="${name}"]`).first().waitFor({ state: "visible", timeout: WAIT_MS });
    } catch (e) {
      const shown = await page.locator(`[data-testid="model"]`).evaluateAll((els) => els.map((el) => el.getAttribute("data-model-name")));
      throw new Error(`model "${name}" was not listed (models shown: ${JSON.stringify(shown)}; ${await pageDiagnostics(page)}): ${(e as Error).message.split("\n")[0]}`);
    }
  }
}

/** Fills an input like a person does: type the value, then leave the field (input + change events). */
export async function setField(page: Page, selector: string, value: string): Promise<void> {
  const l = page.locator(selector).first();
  await l.fill(value);
  await l.blur();
}

export async function recipeYaml(page: Page): Promise<string> {
  return byTestId(page, "recipe-yaml", "textarea").inputValue();
}

/** Replaces the YAML as a paste would (input event), then leaves the field (change event). */
export async function setRecipeYaml(page: Page, text: string): Promise<void> {
  await setField(page, `textarea[data-testid="recipe-yaml"]`, text);
}

export async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(ARTIFACTS_DIR, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS_DIR, `${name}.png`), fullPage: true }).catch((e: Error) => {
    process.stderr.write(`screenshot ${name} failed: ${e.message}\n`);
  });
}

export interface FileDigest {
  size: number;
  sha256: string;
}

/**
 * Every entry of the OPFS root, recursively: "dir/" for folders, "dir/file" → size for files.
 * The page may be deleting entries while this walks (its start-up removes stale staging folders):
 * an entry that vanishes mid-walk is left out, as if the walk had come after the delete.
 */
export async function opfsTree(page: Page): Promise<Record<string, number>> {
  return page.evaluate(async () => {
    const out: Record<string, number> = {};
    const vanished = (e: unknown) => e instanceof DOMException && e.name === "NotFoundError";
    async function walk(dir: FileSystemDirectoryHandle, prefix: string): Promise<boolean> {
      try {
        for await (const [name, handle] of dir.entries()) {
          if (handle.kind === "directory") {
            if (await walk(handle as FileSystemDirectoryHandle, `${prefix}${name}/`)) out[`${prefix}${name}/`] = 0;
          } else {
            try {
              out[`${prefix}${name}`] = (await (handle as FileSystemFileHandle).getFile()).size;
            } catch (e) {
              if (!vanished(e)) throw e;
            }
          }
        }
        return true;
      } catch (e) {
        if (!vanished(e)) throw e;
        // The folder itself went away: drop whatever was listed under it.
        for (const key of Object.keys(out)) if (key.startsWith(prefix) && prefix !== "") delete out[key];
        return false;
      }
    }
    await walk(await navigator.storage.getDirectory(), "");
    return out;
  });
}

/** SHA-256 and size of every entry of the OPFS folder `dir` ("a" or "a/b"; sub-folders are listed with size -1). */
export async function opfsDigests(page: Page, dir: string): Promise<Record<string, FileDigest>> {
  return page.evaluate(async (dirName: string) => {
    let folder = await navigator.storage.getDirectory();
    for (const part of dirName.split("/")) folder = await folder.getDirectoryHandle(part);
    const out: Record<string, { size: number; sha256: string }> = {};
    for await (const [name, handle] of folder.entries()) {
      if (handle.kind !== "file") {
        out[`${name}/`] = { size: -1, sha256: "" };
        continue;
      }
      const file = await (handle as FileSystemFileHandle).getFile();
      const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await file.arrayBuffer()));
      out[name] = { size: file.size, sha256: Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("") };
    }
    return out;
  }, dir);
}

/** A text file in OPFS ("folder/file"). */
export async function opfsText(page: Page, path: string): Promise<string> {
  return page.evaluate(async (p: string) => {
    const parts = p.split("/");
    let dir = await navigator.storage.getDirectory();
    for (const part of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(part);
    return (await (await dir.getFileHandle(parts.at(-1)!)).getFile()).text();
  }, path);
}

/** SHA-256 and size of every file of a folder on disk. */
export async function diskDigests(dir: string): Promise<Record<string, FileDigest>> {
  const out: Record<string, FileDigest> = {};
  for (const name of await readdir(dir)) {
    const info = await stat(join(dir, name));
    if (info.isDirectory()) {
      out[`${name}/`] = { size: -1, sha256: "" };
      continue;
    }
    const bytes = await readFile(join(dir, name));
    out[name] = { size: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex") };
  }
  return out;
}

/**
 * Asserts two outputs hold the same file names and byte-identical files, except `skip` (compared by
 * the caller). Text files that differ are shown in the message.
 */
export async function compareOutputs(
  page: Page, opfsDir: string, cliDir: string, options: { skip?: string[] } = {},
): Promise<void> {
  const ours = await opfsDigests(page, opfsDir);
  const theirs = await diskDigests(cliDir);
  assert.deepEqual(Object.keys(ours).sort(), Object.keys(theirs).sort(), `files in OPFS "${opfsDir}" (page) vs ${cliDir} (CLI)`);
  const differ: string[] = [];
  for (const [name, d] of Object.entries(theirs)) {
    if (options.skip?.includes(name) || d.size < 0) continue;
    const o = ours[name]!;
    if (o.sha256 === d.sha256) continue;
    let detail = `${name}: page ${o.size} B sha256 ${o.sha256.slice(0, 12)}…, CLI ${d.size} B sha256 ${d.sha256.slice(0, 12)}…`;
    if (/\.(json|md|yml|txt)$/.test(name)) {
      const a = await opfsText(page, `${opfsDir}/${name}`);
      const b = await readFile(join(cliDir, name), "utf8");
      detail += `\n--- page ---\n${a.slice(0, 2000)}\n--- CLI ---\n${b.slice(0, 2000)}`;
    }
    differ.push(detail);
  }
  assert.equal(differ.length, 0, `files differ between the page and the CLI:\n${differ.join("\n")}`);
}

/** `node dist/cli.cjs merge RECIPE OUT --seed N --quiet`; rejects with the CLI's stderr. */
export async function runCli(recipePath: string, outDir: string, seed = 0): Promise<void> {
  await new Promise<void>((ok, fail) => {
    execFile(process.execPath, [CLI, "merge", recipePath, outDir, "--seed", String(seed), "--quiet"], { timeout: 5 * WAIT_MS }, (error, _stdout, stderr) => {
      if (error) fail(new Error(`CLI merge of ${recipePath} failed (${error.message.split("\n")[0]}): ${stderr}`));
      else ok();
    });
  });
}

/** `node dist/cli.cjs ARGS... --json` (eval, generate): the parsed JSON it prints; rejects with its stderr. */
export async function runCliJson<T>(args: string[]): Promise<T> {
  return new Promise<T>((ok, fail) => {
    execFile(process.execPath, [CLI, ...args, "--json"], { timeout: 5 * WAIT_MS, maxBuffer: 16 * 2 ** 20 }, (error, stdout, stderr) => {
      if (error) fail(new Error(`CLI ${args.join(" ")} failed (${error.message.split("\n")[0]}): ${stderr}`));
      else ok(JSON.parse(stdout) as T);
    });
  });
}

/** One row of the Evaluate panel's results table, as shown. */
export interface ShownEvalRow {
  model: string;
  perplexity: string;
  bitsPerByte: string;
  tokens: string;
  /** Reference label -> the KL shown, and the top-1 agreement shown under it. */
  kl: Record<string, string>;
  top1: Record<string, string>;
}

/** The Evaluate panel's results table, cell texts as shown. */
export async function shownEvalRows(page: Page): Promise<ShownEvalRow[]> {
  return page.locator(`[data-testid="eval-row"]`).evaluateAll((rows) => rows.map((row) => {
    const cell = (id: string) => (row.querySelector(`[data-testid="${id}"]`)?.textContent ?? "").trim();
    const kl: Record<string, string> = {}, top1: Record<string, string> = {};
    for (const td of row.querySelectorAll<HTMLElement>(`[data-testid="eval-kl"]`)) {
      const against = td.dataset.against!;
      top1[against] = (td.querySelector(`[data-testid="eval-top1"]`)?.textContent ?? "").trim();
      kl[against] = (td.firstChild?.textContent ?? "").trim();
    }
    return { model: (row as HTMLElement).dataset.model!, perplexity: cell("eval-perplexity"), bitsPerByte: cell("eval-bpb"), tokens: cell("eval-tokens"), kl, top1 };
  }));
}

/** Starts recording every change of the element's live regions (what a screen reader would hear); read with liveAnnouncements. */
export async function recordLiveRegions(page: Page): Promise<void> {
  await page.evaluate(() => {
    const root = document.querySelector("weightsoup-merge")!.shadowRoot!;
    const w = window as unknown as { liveHeard: string[]; liveObservers?: MutationObserver[] };
    for (const o of w.liveObservers ?? []) o.disconnect();
    w.liveHeard = [];
    const live = [...root.querySelectorAll<HTMLElement>("[aria-live], [role=status], [role=alert], [role=log]")].filter((el) => el.getAttribute("aria-live") !== "off");
    w.liveObservers = live.map((el) => {
      const o = new MutationObserver(() => w.liveHeard.push(el.textContent ?? ""));
      o.observe(el, { childList: true, characterData: true, subtree: true });
      return o;
    });
  });
}

export async function liveAnnouncements(page: Page): Promise<string[]> {
  return page.evaluate(() => (window as unknown as { liveHeard: string[] }).liveHeard);
}

/** Boxes of every section of the element that end past their card (elements inside [data-scroll] may scroll). */
export async function overflowingElements(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const root = document.querySelector("weightsoup-merge")!.shadowRoot!;
    const out: string[] = [];
    if (document.documentElement.scrollWidth > window.innerWidth) out.push(`page ${document.documentElement.scrollWidth} > ${window.innerWidth}`);
    for (const section of root.querySelectorAll("section")) {
      if (section.scrollWidth > section.clientWidth + 1) out.push(`${section.getAttribute("aria-labelledby")}: ${section.scrollWidth} > ${section.clientWidth}`);
      const box = section.getBoundingClientRect();
      for (const el of section.querySelectorAll<HTMLElement>("table, textarea, input, select, button, pre")) {
        const r = el.getBoundingClientRect();
        if (r.width > 0 && r.right > box.right + 1 && !el.closest("[data-scroll]")) out.push(`${el.tagName.toLowerCase()}${el.dataset.testid ? `[${el.dataset.testid}]` : ""} ends at ${Math.round(r.right)} > ${Math.round(box.right)}`);
      }
    }
    return out;
  });
}

/** Every request URL that is neither on `origin` nor blob:/data: (what the page must never fetch). */
export function foreignRequests(env: BrowserEnv): string[] {
  return env.requests.map((r) => r.url).filter((u) => {
    if (u.startsWith("blob:") || u.startsWith("data:")) return false;
    try {
      return new URL(u).origin !== env.origin;
    } catch {
      return true;
    }
  });
}

/** The bytes of an OPFS file ("folder/file"), for small files. */
export async function opfsBytes(page: Page, path: string): Promise<Uint8Array> {
  const b64 = await page.evaluate(async (p: string) => {
    const parts = p.split("/");
    let dir = await navigator.storage.getDirectory();
    for (const part of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(part);
    const bytes = new Uint8Array(await (await (await dir.getFileHandle(parts.at(-1)!)).getFile()).arrayBuffer());
    let s = "";
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(s);
  }, path);
  return new Uint8Array(Buffer.from(b64, "base64"));
}

/** A safetensors file's header (JSON) and data section. */
export function splitSafetensors(bytes: Uint8Array): { header: Record<string, unknown>; data: Uint8Array } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, unknown>;
  return { header, data: bytes.subarray(8 + n) };
}

/**
 * Asserts two safetensors files hold the same tensors (names, dtypes, shapes, offsets, every data byte)
 * and the same metadata except the `ignore`d keys.
 */
export function assertSameWeights(page: Uint8Array, cli: Uint8Array, ignore: string[] = [], label = "weights"): void {
  const a = splitSafetensors(page), b = splitSafetensors(cli);
  const strip = (h: Record<string, unknown>) => {
    const meta = { ...(h.__metadata__ as Record<string, string> | undefined) };
    for (const k of ignore) delete meta[k];
    return { ...h, __metadata__: meta };
  };
  assert.deepEqual(strip(a.header), strip(b.header), `${label}: headers (page vs CLI)`);
  assert.ok(Buffer.from(a.data).equals(Buffer.from(b.data)), `${label}: tensor data differs between the page and the CLI`);
}

export const sha256Hex = (data: string | Uint8Array) => createHash("sha256").update(data).digest("hex");

/** Ends a browser suite: the browser closed, the suite's folder removed, the page errors seen during the run printed. */
export async function closeBrowserSuite(env: BrowserEnv | undefined, root: string | undefined): Promise<void> {
  await env?.close();
  if (root) await removeDir(root);
  if (env?.pageErrors.length) process.stderr.write(`browser errors during the run:\n${env.pageErrors.join("\n")}\n`);
}
