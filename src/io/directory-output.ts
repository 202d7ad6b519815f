/**
 * @file An output folder in the browser: a FileSystemDirectoryHandle, either one a person picked with
 * the File System Access API or a folder in the origin-private file system (OPFS). Like the Node
 * folder, files are written in a hidden staging folder and moved into place at commit, weights last
 * and the shard index very last, so a cancelled or failed merge leaves nothing that looks complete.
 *
 * In the origin-private file system, workers write their output straight from wasm memory with sync
 * access handles (io/sink.ts); in a picked folder, where browsers offer no such handles, workers hand
 * their bytes back ("return" targets) and this class writes them through one
 * FileSystemWritableFileStream per file. Either way nothing is held in memory beyond one chunk: a
 * multi-GB output never becomes a Blob.
 *
 * While a merge writes, its staging folder is held under a Web Lock named after it. A page that was
 * closed or reloaded mid-merge leaves its staging folder behind with the lock gone, which is how
 * removeStaleStaging() tells those leftovers from a merge still running in another tab.
 */
import { OutputError } from "../errors";
import type { OutputTarget } from "../merge/job";
import { INDEX_FILE } from "../model/model";
import { BlobFolder } from "./folder";
import type { OutputFolder, ScratchFolder } from "./output";
import type { SourceRef } from "./source";

const STAGING_PREFIX = ".weightsoup-partial-";
const LOCK_PREFIX = "weightsoup-output:";
const lockName = (dir: string, staging: string) => `${LOCK_PREFIX}${dir}/${staging}`;

/** FileSystemHandle.move() is not in TypeScript's DOM library yet. */
interface MovableHandle {
  move?(destination: FileSystemDirectoryHandle, name: string): Promise<void>;
}

interface OpenFile {
  stream: FileSystemWritableFileStream;
  /** A stream takes one write at a time: writes are chained. */
  tail: Promise<void>;
}

export class DirectoryOutputFolder implements OutputFolder {
  private readonly files: string[] = [];
  private readonly open = new Map<string, OpenFile>();
  private closed = false;

  private constructor(
    readonly name: string,
    private readonly dir: FileSystemDirectoryHandle,
    private readonly staging: FileSystemDirectoryHandle,
    private readonly force: boolean,
    /** Set when this folder created `dir` inside `parent`: discard() removes it again. */
    private readonly createdIn: FileSystemDirectoryHandle | undefined,
    /** Inside the origin-private file system, where workers can write files themselves. */
    private readonly inPrivateStorage: boolean,
    /** Releases the staging folder's lock (absent where the browser has no Web Locks). */
    private readonly unlock: (() => void) | undefined,
  ) {}

  /**
   * Writes into `dir` itself (a folder a person picked). A folder holding files is refused unless
   * `force`; leftover staging folders of an interrupted merge are removed.
   */
  static async into(dir: FileSystemDirectoryHandle, options: { force?: boolean } = {}): Promise<DirectoryOutputFolder> {
    await DirectoryOutputFolder.checkEmpty(dir, options.force ?? false);
    return DirectoryOutputFolder.withStaging(dir, options.force ?? false, undefined);
  }

  /** Creates the folder `name` inside `parent` (OPFS: navigator.storage.getDirectory()) and writes there. */
  static async create(parent: FileSystemDirectoryHandle, name: string, options: { force?: boolean } = {}): Promise<DirectoryOutputFolder> {
    if (!name || /[\\/]/.test(name) || name === "." || name === ".." || name.startsWith(".")) {
      throw new OutputError("E_OUTPUT_NAME", `"${name}" is not a usable folder name`, { file: name });
    }
    let existed = true;
    try {
      await parent.getDirectoryHandle(name);
    } catch {
      existed = false;
    }
    const dir = await parent.getDirectoryHandle(name, { create: true }).catch((cause) => { throw ioError(name, cause); });
    if (existed) await DirectoryOutputFolder.checkEmpty(dir, options.force ?? false);
    return DirectoryOutputFolder.withStaging(dir, options.force ?? false, existed ? undefined : parent);
  }

  private static async checkEmpty(dir: FileSystemDirectoryHandle, force: boolean): Promise<void> {
    await removeStaleIn(dir, await heldLocks(), 0);
    const rest: string[] = [];
    for await (const entry of dir.keys()) if (!entry.startsWith(STAGING_PREFIX)) rest.push(entry);
    if (rest.length > 0 && !force) {
      throw new OutputError("E_OUTPUT_EXISTS", `${dir.name}: output folder is not empty (${rest.length} entries); choose an empty folder or allow overwriting`, { file: dir.name });
    }
  }

  private static async withStaging(dir: FileSystemDirectoryHandle, force: boolean, createdIn: FileSystemDirectoryHandle | undefined): Promise<DirectoryOutputFolder> {
    const suffix = Array.from(crypto.getRandomValues(new Uint8Array(4)), (b) => b.toString(16).padStart(2, "0")).join("");
    // Locked before it exists, so a clean-up in another tab never takes it for a leftover.
    const unlock = await holdLock(lockName(dir.name, STAGING_PREFIX + suffix));
    try {
      const staging = await dir.getDirectoryHandle(STAGING_PREFIX + suffix, { create: true }).catch((cause) => { throw ioError(dir.name, cause); });
      const root = await navigator.storage?.getDirectory?.().catch(() => undefined);
      const inPrivate = !!root && (await root.resolve(dir).catch(() => null)) !== null;
      return new DirectoryOutputFolder(dir.name, dir, staging, force, createdIn, inPrivate, unlock);
    } catch (e) {
      unlock?.();
      throw e;
    }
  }

  private async stream(file: string): Promise<FileSystemWritableFileStream> {
    if (!this.files.includes(file)) this.files.push(file);
    const handle = await this.staging.getFileHandle(file, { create: true });
    return handle.createWritable({ keepExistingData: false });
  }

  async createFile(file: string, size: number, head: Uint8Array): Promise<OutputTarget> {
    try {
      const stream = await this.stream(file);
      await stream.truncate(size);
      await stream.write({ type: "write", position: 0, data: head as Uint8Array<ArrayBuffer> });
      if (this.inPrivateStorage) {
        // The file exists at its full size; workers fill in the tensors.
        await stream.close();
        return { kind: "opfs", handle: await this.staging.getFileHandle(file), file: `${this.name}/${file}` };
      }
      this.open.set(file, { stream, tail: Promise.resolve() });
    } catch (cause) {
      throw ioError(`${this.name}/${file}`, cause);
    }
    return { kind: "return" };
  }

  write(file: string, offset: number, bytes: Uint8Array): Promise<void> {
    const f = this.open.get(file);
    if (!f) return Promise.reject(new OutputError("E_IO", `${this.name}/${file}: written before it was created`, { file }));
    const next = f.tail.then(() => f.stream.write({ type: "write", position: offset, data: bytes as Uint8Array<ArrayBuffer> }))
      .catch((cause) => { throw ioError(`${this.name}/${file}`, cause); });
    // A failed write fails this call; later writes still run (the merge is failing anyway).
    f.tail = next.catch(() => undefined);
    return next;
  }

  async writeText(file: string, text: string): Promise<void> {
    await this.writeWhole(file, text);
  }

  async copyFrom(file: string, source: SourceRef): Promise<void> {
    if (source.kind !== "blob") throw new OutputError("E_IO", `${this.name}/${file}: browsers can copy only picked files`, { file });
    // Writing a Blob streams it: a large tokenizer file is not read into memory first.
    await this.writeWhole(file, source.blob);
  }

  private async writeWhole(file: string, data: string | Blob): Promise<void> {
    try {
      const stream = await this.stream(file);
      await stream.write(data);
      await stream.close();
    } catch (cause) {
      throw ioError(`${this.name}/${file}`, cause);
    }
  }

  async commit(): Promise<string[]> {
    for (const [file, f] of this.open) {
      await f.tail;
      await f.stream.close().catch((cause) => { throw ioError(`${this.name}/${file}`, cause); });
    }
    this.open.clear();
    const isWeights = (f: string) => f.endsWith(".safetensors") || f === INDEX_FILE;
    if (this.force) {
      for await (const e of this.dir.keys()) {
        if ((e.endsWith(".safetensors") || e.endsWith(".index.json")) && !e.startsWith(".")) await this.dir.removeEntry(e);
      }
    }
    const order = [
      ...this.files.filter((f) => !isWeights(f)),
      ...this.files.filter((f) => f.endsWith(".safetensors")),
      ...this.files.filter((f) => f === INDEX_FILE),
    ];
    for (const f of order) {
      // Overwriting: an older file of the same name goes first (move() does not replace files everywhere).
      if (this.force) await this.dir.removeEntry(f).catch(() => undefined);
      await this.moveIntoPlace(f).catch((cause) => { throw ioError(`${this.name}/${f}`, cause); });
    }
    await this.dir.removeEntry(this.staging.name, { recursive: true }).catch(() => undefined);
    this.closed = true;
    this.unlock?.();
    return order;
  }

  private async moveIntoPlace(file: string): Promise<void> {
    const handle = await this.staging.getFileHandle(file);
    if (typeof (handle as MovableHandle).move === "function") {
      await (handle as MovableHandle).move!(this.dir, file);
      return;
    }
    // Without move(): copy (streamed from the file on disk) and delete.
    const target = await (await this.dir.getFileHandle(file, { create: true })).createWritable({ keepExistingData: false });
    await target.write(await handle.getFile());
    await target.close();
    await this.staging.removeEntry(file);
  }

  /**
   * An intermediate model of a multi-stage recipe, `.stage-LABEL` inside the staging folder: written
   * like an output of its own, then read back as files, the way picked models are.
   */
  async scratch(label: string): Promise<ScratchFolder> {
    const entry = `.stage-${label.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    const dir = await this.staging.getDirectoryHandle(entry, { create: true }).catch((cause) => { throw ioError(`${this.name}/${entry}`, cause); });
    const output = await DirectoryOutputFolder.withStaging(dir, false, undefined);
    return {
      output,
      folder: async () => {
        const files = new Map<string, Blob>();
        for await (const [name, handle] of dir.entries()) {
          if (handle.kind === "file") files.set(name, await (handle as FileSystemFileHandle).getFile());
        }
        return new BlobFolder(`${this.name}/${entry}`, files);
      },
      remove: async () => {
        await output.discard();
        await retryRemove(() => this.staging.removeEntry(entry, { recursive: true }), 50).catch(() => undefined);
      },
    };
  }

  async discard(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.open.values()].map((f) => f.stream.abort()));
    this.open.clear();
    const parent = this.createdIn;
    await retryRemove(() => parent ? parent.removeEntry(this.name, { recursive: true }) : this.dir.removeEntry(this.staging.name, { recursive: true }), 50)
      .catch(() => undefined);
    this.unlock?.();
  }
}

/**
 * Removes what merges interrupted by a closed or reloaded page left in `root` (the origin-private file
 * system): staging folders no running merge holds, and the output folders that held nothing else.
 * Leftovers whose lock is still held are looked at again for up to `settleMs` (the lock of a page that
 * was just reloaded can outlive it by a moment); a merge running in another tab keeps its lock and is
 * never touched. Returns the paths removed.
 */
export async function removeStaleStaging(root: FileSystemDirectoryHandle, settleMs = 0): Promise<string[]> {
  const removed: string[] = [];
  const deadline = Date.now() + settleMs;
  for (;;) {
    const held = await heldLocks();
    let waiting = false;
    // Listed first: entries are removed below, which an open iteration may not survive.
    const dirs: [string, FileSystemDirectoryHandle][] = [];
    for await (const [name, handle] of root.entries()) {
      if (handle.kind === "directory" && !name.startsWith(STAGING_PREFIX)) dirs.push([name, handle as FileSystemDirectoryHandle]);
    }
    for (const [name, dir] of dirs) {
      const result = await removeStaleIn(dir, held, 20);
      waiting ||= result.waiting;
      if (result.removed.length === 0) continue;
      removed.push(...result.removed.map((s) => `${name}/${s}`));
      let empty = true;
      for await (const _ of dir.keys()) { empty = false; break; }
      if (empty) {
        await root.removeEntry(name).catch(() => undefined);
        removed.push(`${name}/`);
      }
    }
    if (!waiting || Date.now() >= deadline) return removed;
    await new Promise((ok) => setTimeout(ok, 200));
  }
}

/** Removes the staging folders in `dir` that no merge holds; `waiting` when some are still held. */
async function removeStaleIn(dir: FileSystemDirectoryHandle, held: Set<string> | undefined, attempts: number): Promise<{ removed: string[]; waiting: boolean }> {
  const removed: string[] = [];
  let waiting = false;
  const names: string[] = [];
  for await (const entry of dir.keys()) if (entry.startsWith(STAGING_PREFIX)) names.push(entry);
  for (const entry of names) {
    if (held?.has(lockName(dir.name, entry))) {
      waiting = true;
      continue;
    }
    if (await retryRemove(() => dir.removeEntry(entry, { recursive: true }), attempts).then(() => true, () => false)) removed.push(entry);
  }
  return { removed, waiting };
}

/** Names of the Web Locks held in this origin; undefined where the browser has no Web Locks. */
async function heldLocks(): Promise<Set<string> | undefined> {
  const locks = typeof navigator === "undefined" ? undefined : navigator.locks;
  if (!locks?.query) return undefined;
  const snapshot = await locks.query();
  return new Set((snapshot.held ?? []).map((l) => l.name ?? "").filter((n) => n.startsWith(LOCK_PREFIX)));
}

/** Holds an exclusive Web Lock until the returned function is called. */
async function holdLock(name: string): Promise<(() => void) | undefined> {
  const locks = typeof navigator === "undefined" ? undefined : navigator.locks;
  if (!locks?.request) return undefined;
  let release!: () => void;
  const held = new Promise<void>((ok) => { release = ok; });
  await new Promise<void>((acquired, failed) => {
    locks.request(name, () => { acquired(); return held; }).catch(failed);
  });
  return release;
}

/**
 * Retries a removal: a worker that was just stopped, or the workers of a page that was just closed, may
 * hold a file's sync access handle for a moment longer. A missing entry counts as removed.
 */
async function retryRemove(remove: () => Promise<void>, attempts: number): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await remove();
      return;
    } catch (e) {
      if ((e as DOMException)?.name === "NotFoundError") return;
      if (attempt >= attempts) throw e;
      await new Promise((ok) => setTimeout(ok, 20));
    }
  }
}

function ioError(path: string, cause: unknown): OutputError {
  const e = cause as DOMException;
  const why = e?.name === "QuotaExceededError" ? "the browser's storage is full" : (e?.message ?? String(cause));
  return new OutputError("E_IO", `${path}: ${why}`, { file: path }, { cause });
}
