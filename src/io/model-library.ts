/**
 * @file The model library: model folders copied once into the origin-private file system, so repeated
 * merges read them in the workers through sync access handles, straight into wasm memory, instead of
 * through a picked file's Blob (which Chromium hands over at 0.7–1.0 GB/s at best, and which a person
 * has to pick again in every visit).
 *
 * Layout: .weightsoup-library/<id>/<file>, plus a manifest written after the last byte is copied. A
 * folder without a manifest is an unfinished copy (quota, cancel, closed tab): it is never listed, and
 * it is removed once no page holds the copy's lock. The copy runs in a worker (io/library-copy.ts).
 */
import { proxy, wrap, type Remote } from "comlink";
import { AbortError, OutputError } from "../errors";
import type { WorkerApi } from "../pool/worker-api";
import { formatBytes } from "../units";
import { BlobFolder } from "./folder";
import { COPY_PIECE } from "./library-copy";

const LIBRARY_DIR = ".weightsoup-library";
/** Written last: what makes a folder of the library a complete model. */
const MANIFEST = "weightsoup-library.json";
const COPY_LOCK = "weightsoup-library-copy:";
/**
 * Workers copying each file, a part each (one copies it whole where the browser cannot share a file's
 * writes): Chromium hands each worker a picked file's bytes at its own rate.
 */
const COPY_WORKERS = 2;

export interface LibraryModel {
  /** The folder's name inside the library (stable; the name shown may repeat across visits). */
  id: string;
  name: string;
  bytes: number;
  files: { name: string; bytes: number }[];
}

export interface AddOptions {
  /** The worker script (dist/worker.js next to the page's bundle). */
  workerUrl: URL | string;
  /** Bytes copied so far of `total`. */
  onProgress?(copied: number, total: number): void;
  signal?: AbortSignal;
}

async function libraryDir(): Promise<FileSystemDirectoryHandle> {
  if (typeof navigator.storage?.getDirectory !== "function") throw new OutputError("E_IO", "this browser has no origin-private storage for a model library", {});
  return (await navigator.storage.getDirectory()).getDirectoryHandle(LIBRARY_DIR, { create: true });
}

/** What the origin may still store, in bytes (undefined where the browser does not say). */
export async function storageFree(): Promise<number | undefined> {
  const { quota, usage } = await navigator.storage.estimate();
  return quota === undefined || usage === undefined ? undefined : quota - usage;
}

async function readManifest(dir: FileSystemDirectoryHandle): Promise<Omit<LibraryModel, "id"> | undefined> {
  try {
    const text = await (await (await dir.getFileHandle(MANIFEST)).getFile()).text();
    const m = JSON.parse(text) as Omit<LibraryModel, "id">;
    // A file removed or cut short since (by hand, in devtools) makes the model unusable: not listed.
    for (const f of m.files) if ((await (await dir.getFileHandle(f.name)).getFile()).size !== f.bytes) return undefined;
    return m;
  } catch {
    return undefined;
  }
}

/** The complete models of the library, by name. */
export async function listLibrary(): Promise<LibraryModel[]> {
  const root = await libraryDir();
  const out: LibraryModel[] = [];
  for await (const [id, handle] of root.entries()) {
    if (handle.kind !== "directory") continue;
    const m = await readManifest(handle as FileSystemDirectoryHandle);
    if (m) out.push({ id, ...m });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : 1));
}

/** Longest model or file name the library takes, in UTF-16 units (what file systems commonly allow, 255 bytes, in the worst case of ASCII). */
export const MAX_LIBRARY_NAME = 255;

/**
 * Refuses a model name or one of its file names that cannot name an entry of the library folder (or
 * would hide or escape it): empty, "." or "..", a leading dot, a slash or backslash, a control
 * character, or longer than MAX_LIBRARY_NAME. `what` says which name it is, for the message.
 */
export function checkLibraryName(name: string, what: string): void {
  const why = name === "" ? "it is empty"
    : name === "." || name === ".." ? "it names a folder itself"
    : name.startsWith(".") ? "it starts with a dot (hidden, and the library's own entries start with one)"
    : /[\\/]/.test(name) ? "it holds a slash or backslash"
    : /[\u0000-\u001f\u007f]/.test(name) ? "it holds a control character"
    : name.length > MAX_LIBRARY_NAME ? `it is ${name.length} characters long (at most ${MAX_LIBRARY_NAME})`
    : "";
  if (why) throw new OutputError("E_OUTPUT_NAME", `the model library: ${what} ${JSON.stringify(name)} cannot be kept: ${why}`, { file: name });
}

/**
 * Copies a model folder into the library and returns its entry once complete. A name already in the
 * library gets a suffix. Fails with E_OUTPUT_NAME when the model's name or a file's name is unusable,
 * and with E_OUTPUT_SPACE when the origin's quota cannot hold it, both before copying anything; a copy
 * that fails or is cancelled leaves nothing behind that looks like a model.
 */
export async function addToLibrary(name: string, files: ReadonlyMap<string, Blob>, options: AddOptions): Promise<LibraryModel> {
  checkLibraryName(name, "model name");
  for (const file of files.keys()) checkLibraryName(file, `file name (model ${JSON.stringify(name)})`);
  const total = [...files.values()].reduce((n, f) => n + f.size, 0);
  const free = await storageFree();
  if (free !== undefined && total > free) {
    throw new OutputError("E_OUTPUT_SPACE", `${name}: the model needs ${formatBytes(total)} but this browser lets the page store only ${formatBytes(free)} more; remove models from the library or delete saved outputs first`, { needed: total, free });
  }
  const root = await libraryDir();
  const taken = new Set((await listLibrary()).map((m) => m.name));
  let shown = name;
  for (let n = 2; taken.has(shown); n++) shown = `${name}-${n}`;
  const id = `m-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  return navigator.locks.request(COPY_LOCK + id, async () => {
    const dir = await root.getDirectoryHandle(id, { create: true });
    const workers = Array.from({ length: COPY_WORKERS }, () => new Worker(options.workerUrl, { type: "module" }));
    const apis: Remote<WorkerApi>[] = workers.map((w) => wrap<WorkerApi>(w));
    let failed = true;
    try {
      const aborted = new Promise<never>((_, reject) => {
        const stop = () => reject(new AbortError(`${name}: adding to the library was cancelled`));
        if (options.signal?.aborted) stop();
        options.signal?.addEventListener("abort", stop, { once: true });
      });
      let before = 0, shared: boolean | undefined;
      for (const [file, blob] of files) {
        const target = await dir.getFileHandle(file, { create: true });
        const label = `${name}/${file}`;
        // Parts of whole pieces, one per worker, where the browser lets handles share the file.
        const step = Math.ceil(blob.size / apis.length / COPY_PIECE) * COPY_PIECE;
        if (apis.length > 1 && step < blob.size) shared ??= await Promise.race([apis[0]!.librarySharesWrites(target), aborted]);
        const parts = shared && step < blob.size ? apis.map((_, w) => ({ start: Math.min(blob.size, w * step), end: Math.min(blob.size, (w + 1) * step) })).filter((p) => p.start < p.end) : [undefined];
        const copied = parts.map(() => 0);
        const at = before;
        await Promise.race([Promise.all(parts.map((part, w) => apis[w]!.copyToLibrary(blob, target, label, proxy((bytes: number) => {
          copied[w] = bytes;
          options.onProgress?.(at + copied.reduce((a, b) => a + b, 0), total);
        }), part))), aborted]);
        before += blob.size;
      }
      const entry: Omit<LibraryModel, "id"> = { name: shown, bytes: total, files: [...files].map(([f, b]) => ({ name: f, bytes: b.size })) };
      const manifest = await (await dir.getFileHandle(MANIFEST, { create: true })).createWritable();
      await manifest.write(JSON.stringify(entry));
      await manifest.close();
      failed = false;
      return { id, ...entry };
    } finally {
      // Terminating the workers ends the copies in flight and releases their handles, so the folder can go.
      for (const w of workers) w.terminate();
      if (failed) await removeFolder(root, id);
    }
  });
}

/** Removes a folder of the library, retrying while a just-ended worker still holds a file's handle. */
async function removeFolder(root: FileSystemDirectoryHandle, id: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await root.removeEntry(id, { recursive: true });
      return;
    } catch (cause) {
      if ((cause as DOMException)?.name === "NotFoundError") return;
      if (attempt >= 50) throw new OutputError("E_IO", `the model library: cannot remove ${id} (${(cause as Error).message})`, {}, { cause });
      await new Promise((ok) => setTimeout(ok, 20 + 10 * attempt));
    }
  }
}

export async function removeFromLibrary(id: string): Promise<void> {
  await removeFolder(await libraryDir(), id);
}

/** Removes copies that a closed or reloaded page left unfinished (none whose copy still runs). */
export async function removeUnfinishedCopies(): Promise<string[]> {
  const root = await libraryDir();
  const unfinished: string[] = [];
  for await (const [id, handle] of root.entries()) {
    if (handle.kind === "directory" && !(await readManifest(handle as FileSystemDirectoryHandle))) unfinished.push(id);
  }
  const removed: string[] = [];
  for (const id of unfinished) {
    await navigator.locks.request(COPY_LOCK + id, { ifAvailable: true }, async (lock) => {
      if (!lock) return; // still being copied by another page
      await removeFolder(root, id);
      removed.push(id);
    });
  }
  return removed;
}

/** A library model as a folder to merge from, named `name`: its files, each with its handle for the workers. */
export async function libraryFolder(model: LibraryModel, name = model.name): Promise<{ folder: BlobFolder; files: Map<string, File> }> {
  const dir = await (await libraryDir()).getDirectoryHandle(model.id);
  const files = new Map<string, File>(), handles = new Map<string, FileSystemFileHandle>();
  for (const f of model.files) {
    const handle = await dir.getFileHandle(f.name);
    handles.set(f.name, handle);
    files.set(f.name, await handle.getFile());
  }
  return { folder: new BlobFolder(name, files, handles), files };
}
