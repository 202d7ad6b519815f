/**
 * @file Bench section 4: the end-to-end merges through the page in headless Chromium, with inputs picked
 * from disk and with inputs in the page's model library (origin-private file system), next to the Node
 * merge and to the read floors measured in the same run: how fast Chromium can read every input at all,
 * from picked files (Blob.slice().arrayBuffer(), the best of the patterns below) and from the library
 * (read-only sync access handles in workers), and Node's FileHandle.read. Each floor and each merge's
 * best run also reports how many cores the machine had busy meanwhile.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, open, rm, stat } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";

const MiB = 1048576;
/** Bytes per read in every floor measurement (the library copy and the Node sources' reads are as large or larger). */
const PIECE = 16 * MiB;
const fmt = (x: number, d = 2) => x.toFixed(d);
const load = () => loadavg().map((x) => x.toFixed(1)).join(" ");

/**
 * The machine's busy and total CPU time so far (/proc/stat's first line, in clock ticks; busy is all but
 * idle and iowait), or undefined off Linux. Chromium is a tree of processes that come and go (browser,
 * renderer, workers' threads, the network and storage services), so its CPU is measured machine-wide.
 */
function machineCpu(): { busy: number; total: number; cores: number } | undefined {
  try {
    const lines = readFileSync("/proc/stat", "utf8").split("\n");
    const ticks = lines[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = ticks.reduce((a, b) => a + b, 0);
    return { busy: total - ticks[3]! - (ticks[4] ?? 0), total, cores: lines.filter((l) => /^cpu\d/.test(l)).length };
  } catch {
    return undefined;
  }
}

/** Runs `fn` and returns its result with how many of the machine's cores were busy on average meanwhile (NaN off Linux). */
async function withCoresBusy<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const before = machineCpu();
  const result = await fn();
  const after = machineCpu();
  const busy = before && after && after.total > before.total ? ((after.busy - before.busy) / (after.total - before.total)) * after.cores : NaN;
  return [result, busy];
}

/**
 * The read floors' worker (served by the bench at the page's origin: the page's CSP allows workers from
 * there only). It reads each Blob or library file it is given whole, PIECE bytes at a time, `inFlight`
 * Blob reads at once; library files through read-only sync access handles into one buffer.
 */
const FLOOR_WORKER = `
onmessage = async ({ data: { files, handles, inFlight, piece } }) => {
  const t0 = performance.now();
  for (const f of files) {
    let next = 0;
    await Promise.all(Array.from({ length: inFlight }, async () => {
      for (let o = next; o < f.size; o = next) { next += piece; await f.slice(o, Math.min(f.size, o + piece)).arrayBuffer(); }
    }));
  }
  const buf = new Uint8Array(piece);
  for (const h of handles) {
    const s = await h.createSyncAccessHandle({ mode: "read-only" });
    const size = s.getSize();
    for (let o = 0; o < size; o += piece) s.read(buf.subarray(0, Math.min(piece, size - o)), { at: o });
    s.close();
  }
  postMessage((performance.now() - t0) / 1000);
};`;

interface FloorOptions { inFlight: number; workers: number; library: boolean }

export async function browserSection(e2e: string, models: string[], recipes: Record<string, string>, nodeSeconds: (name: string) => number, line: (s?: string) => void): Promise<void> {
  const { chromium } = await import("playwright-core");
  const { serveStatic } = await import("../site/serve.mjs");
  const site = await serveStatic(fileURLToPath(new URL("../../dist/site", import.meta.url)));
  const launchArgs = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
  const inputs = models.map((m) => join(e2e, m, "model.safetensors"));
  const inputBytes = (await Promise.all(inputs.map((f) => stat(f)))).reduce((n, s) => n + s.size, 0);
  // On-disk profiles, as a person's browser has: a throwaway (incognito) context keeps the origin-private
  // file system in memory behind an IPC call per read and write, ~5x slower here. The library's profile
  // lives for the whole section; each picked-files run gets a fresh one.
  const libraryProfile = await mkdtemp(join(tmpdir(), "weightsoup-chromium-library-"));
  const withPage = async <T>(profile: string | undefined, fn: (page: Page) => Promise<T>): Promise<T> => {
    const dir = profile ?? (await mkdtemp(join(tmpdir(), "weightsoup-chromium-")));
    const context = await chromium.launchPersistentContext(dir, { headless: true, executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium", args: launchArgs });
    await context.route("**/bench-read-floor.js", (route) => route.fulfill({ contentType: "text/javascript", body: FLOOR_WORKER }));
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      await page.goto(site.url);
      await page.locator("button[data-testid=run]").waitFor({ state: "attached" });
      return await fn(page);
    } finally {
      await context.close();
      if (!profile) await rm(dir, { recursive: true, force: true });
    }
  };
  /** Sets the recipe, saves to the origin-private file system under `output`, and returns the page's merge time. */
  const runMerge = async (page: Page, name: string, output: string): Promise<number> => {
    await page.locator("textarea[data-testid=recipe-yaml]").fill(recipes[name]!);
    await page.locator("input[data-testid=output-name]").fill(output);
    await page.locator("select[data-testid=save-target]").selectOption("opfs");
    await page.locator("button[data-testid=run]:enabled").click();
    const host = page.locator("weightsoup-merge");
    await page.waitForFunction(() => ["done", "error", "cancelled"].includes(document.querySelector("weightsoup-merge")!.getAttribute("data-state")!), null, { timeout: 600_000 });
    const state = await host.getAttribute("data-state");
    if (state !== "done") throw new Error(`browser ${name}: ${state}: ${await page.locator("[data-testid=run-error], [data-testid=error]").first().textContent()}`);
    const seconds = Number(await host.getAttribute("data-seconds"));
    await page.evaluate(async (dir) => (await navigator.storage.getDirectory()).removeEntry(dir, { recursive: true }), output);
    return seconds;
  };
  const fromPicked = (name: string) => {
    spawnSync("sync");
    return withPage(undefined, async (page) => {
      for (const m of models) await page.locator("input[data-testid=add-folder]").setInputFiles(join(e2e, m));
      await page.locator("[data-testid=model]").nth(models.length - 1).waitFor();
      return withCoresBusy(() => runMerge(page, name, "merged"));
    });
  };
  const fromLibrary = (name: string) => {
    spawnSync("sync");
    return withPage(libraryProfile, async (page) => {
      await page.locator("[data-testid=library-model]").nth(models.length - 1).waitFor();
      for (const m of models) await page.locator(`[data-testid=library-model][data-name="${m}"] [data-testid=library-use]`).click();
      await page.locator("[data-testid=model]").nth(models.length - 1).waitFor();
      return withCoresBusy(() => runMerge(page, name, "merged"));
    });
  };
  /** Seconds to read every input once with `o`'s pattern (best of two), from picked files or the library. */
  const readFloor = (page: Page, o: FloorOptions) => page.evaluate(async ({ o, piece }) => {
    const picked = document.getElementById("bench-inputs") as HTMLInputElement;
    const files = [...picked.files!];
    const handles: FileSystemFileHandle[] = [];
    const lib = await (await navigator.storage.getDirectory()).getDirectoryHandle(".weightsoup-library");
    for await (const dir of lib.values()) {
      if (dir.kind === "directory") handles.push(await (dir as FileSystemDirectoryHandle).getFileHandle("model.safetensors"));
    }
    const read = async (part: number) => {
      if (o.workers === 0) {
        for (const f of files) {
          let next = 0;
          await Promise.all(Array.from({ length: o.inFlight }, async () => {
            for (let at = next; at < f.size; at = next) { next += piece; await f.slice(at, Math.min(f.size, at + piece)).arrayBuffer(); }
          }));
        }
        return;
      }
      const w = new Worker("bench-read-floor.js");
      const mine = <T,>(xs: T[]) => xs.filter((_, i) => i % o.workers === part);
      await new Promise((ok) => { w.onmessage = ok; w.postMessage({ files: o.library ? [] : mine(files), handles: o.library ? mine(handles) : [], inFlight: o.inFlight, piece }); });
      w.terminate();
    };
    let best = Infinity;
    for (let rep = 0; rep < 2; rep++) {
      const t0 = performance.now();
      await Promise.all(Array.from({ length: Math.max(1, o.workers) }, (_, part) => read(part)));
      best = Math.min(best, (performance.now() - t0) / 1000);
    }
    return best;
  }, { o, piece: PIECE });

  try {
    line(`4. The same end-to-end merges in headless Chromium: the page reading picked files, and reading its model library (origin-private file system)`);
    line(`   (on-disk profile; outputs saved to the origin-private file system; load average ${load()} at the start)`);
    // Adding to the library, once: what a person pays before the first merge from it.
    const t0 = performance.now();
    await withPage(libraryProfile, async (page) => {
      for (const [i, m] of models.entries()) {
        await page.locator("input[data-testid=library-add-folder]").setInputFiles(join(e2e, m));
        await page.locator("[data-testid=library-model]").nth(i).waitFor({ timeout: 600_000 });
        await page.locator("button[data-testid=library-add]:enabled").waitFor({ timeout: 600_000 });
      }
    });
    const copySeconds = (performance.now() - t0) / 1000;
    line(`   adding the ${models.length} models to the library (once): ${fmt(copySeconds, 1)} s, ${fmt(inputBytes / copySeconds / 1e9)} GB/s`);

    // The floors, in the library's profile (which holds the copies): every input read once, nothing else.
    const floors = await withPage(libraryProfile, async (page) => {
      await page.evaluate(() => document.body.append(Object.assign(document.createElement("input"), { type: "file", multiple: true, id: "bench-inputs", hidden: true })));
      await page.locator("#bench-inputs").setInputFiles(inputs);
      const picked: [string, number, number][] = [];
      for (const o of [{ inFlight: 1, workers: 0 }, { inFlight: 4, workers: 0 }, { inFlight: 2, workers: 2 }, { inFlight: 4, workers: 2 }]) {
        picked.push([o.workers ? `${o.workers} workers x ${o.inFlight} in flight` : `the page, ${o.inFlight} in flight`, ...(await withCoresBusy(() => readFloor(page, { ...o, library: false })))]);
      }
      const bestPicked = picked.sort((a, b) => a[1] - b[1])[0]!;
      return { picked: bestPicked, library: await withCoresBusy(() => readFloor(page, { inFlight: 1, workers: 2, library: true })) };
    });
    const fh = await Promise.all(inputs.map((f) => open(f, "r")));
    const buf = new Uint8Array(PIECE);
    let nodeRead = Infinity;
    for (let rep = 0; rep < 2; rep++) {
      const t = performance.now();
      for (const f of fh) for (let o = 0; o < (await f.stat()).size; o += PIECE) await f.read(buf, 0, PIECE, o);
      nodeRead = Math.min(nodeRead, (performance.now() - t) / 1000);
    }
    await Promise.all(fh.map((f) => f.close()));
    const gbs = (s: number) => `${fmt(s)} s (${fmt(inputBytes / s / 1e9)} GB/s)`;
    line(`   reading the ${fmt(inputBytes / 1e9)} GB of inputs once, ${PIECE / MiB} MiB reads: Chromium from picked files ${gbs(floors.picked[1])} at best (${floors.picked[0]}),`);
    line(`   Chromium from the library ${gbs(floors.library[0])} (2 workers, sync access handles), Node FileHandle.read ${gbs(nodeRead)}`);
    // Cores busy says whether a merge can hide its computing behind the reads: where the floor alone
    // keeps the machine busy, every CPU second the merge adds lengthens it.
    const cpu = (seconds: number, cores: number) => `${fmt(cores, 1)} cores busy, ${fmt(seconds * cores, 1)} CPU s`;
    const cpuLines = [`   CPU, machine-wide (/proc/stat: Chromium's processes and whatever else ran): picked floor ${cpu(floors.picked[1], floors.picked[2])}; library floor ${cpu(...floors.library)}`];

    line(`   ${"method".padEnd(10)} ${"Node s".padStart(7)} ${"picked s".padStart(9)} ${"/read floor".padStart(12)} ${"/Node".padStart(6)} ${"library s".padStart(10)} ${"/Node".padStart(6)} ${"/its floor".padStart(11)}  load`);
    for (const name of ["linear", "ties"]) {
      const node: number[] = [], picked: [number, number][] = [], library: [number, number][] = [];
      for (let pair = 0; pair < 2; pair++) {
        node.push(nodeSeconds(name));
        picked.push(await fromPicked(name));
        library.push(await fromLibrary(name));
      }
      const best = (runs: [number, number][]) => runs.reduce((a, b) => (b[0] < a[0] ? b : a));
      const [p, pCores] = best(picked), [l, lCores] = best(library), n = Math.min(...node);
      cpuLines.push(`   ${name}: picked ${cpu(p, pCores)}; library ${cpu(l, lCores)} (each method's best run)`);
      line(`   ${name.padEnd(10)} ${fmt(n).padStart(7)} ${fmt(p).padStart(9)} ${(fmt(p / floors.picked[1]) + "x").padStart(12)} ${(fmt(p / n) + "x").padStart(6)} ${fmt(l).padStart(10)} ${(fmt(l / n) + "x").padStart(6)} ${(fmt(l / floors.library[0]) + "x").padStart(11)}  ${load()}`);
    }
    for (const l of cpuLines) line(l);
    line(`   targets: picked files within 1.3x of Chromium's read floor; the library within 1.5x of Node`);
    line();
  } finally {
    await site.close();
    await rm(libraryProfile, { recursive: true, force: true });
  }
}
