/**
 * @file Random-access byte sources: a file on disk in Node, a File or Blob in browsers. Readers ask for
 * a byte range and give the view it should land in, which may be a view into wasm memory: in Node the
 * read lands there directly (no intermediate buffer); a Blob costs one copy, because a Blob can only be
 * read into a fresh ArrayBuffer.
 *
 * Sources are described by a SourceRef, a plain serialisable value, so a worker can open the same file
 * itself instead of receiving its bytes. A file of the model library (io/model-library.ts, in the
 * origin-private file system) is a Blob that also carries its file handle: a worker reads it through a
 * read-only sync access handle straight into wasm memory (no copy), the page through the Blob.
 */
import { ModelError } from "../errors";
import { inputFailure } from "./io-error";

export type SourceRef =
  | { kind: "path"; path: string; identity?: FileIdentity }
  | { kind: "blob"; blob: Blob; name: string; handle?: FileSystemFileHandle };

/**
 * A file as its header was read: a later open of the path that finds another file (replaced by a
 * download or a sync, or rewritten) is refused, not read at the old header's offsets.
 */
export interface FileIdentity {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
}

export interface ByteSource {
  /** Name for messages. */
  readonly name: string;
  size(): Promise<number>;
  /** Fill `into` with the bytes at [offset, offset + into.length). */
  readInto(offset: number, into: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export function sourceName(ref: SourceRef): string {
  return ref.kind === "path" ? ref.path : ref.name;
}

/**
 * The key under which a reader keeps a source open for its later reads, or undefined where opening one
 * per read costs nothing (a plain Blob).
 */
export function sourceKey(ref: SourceRef): string | undefined {
  if (ref.kind === "path") return ref.path;
  return ref.handle && canReadSync() ? `opfs:${ref.name}` : undefined;
}

export function openSource(ref: SourceRef): ByteSource {
  if (ref.kind === "path") return new NodeFileSource(ref.path, ref.identity);
  return ref.handle && canReadSync() ? new OpfsSource(ref.handle, ref.blob, ref.name) : new BlobSource(ref.blob, ref.name);
}

/** Bytes per Blob read, and how many of one large read are in flight (bench section 4's best pattern). */
const BLOB_PIECE = 16 * 2 ** 20;
const BLOB_IN_FLIGHT = 4;

export class BlobSource implements ByteSource {
  constructor(private readonly blob: Blob, readonly name: string) {}
  async size(): Promise<number> {
    return this.blob.size;
  }
  /**
   * A large range is read as BLOB_PIECE slices, a few in flight, each copied into place as it lands:
   * the pattern bench section 4 measured fastest for picked files, and the copy held outside wasm
   * memory stays a few pieces whatever the chunk size.
   */
  async readInto(offset: number, into: Uint8Array): Promise<void> {
    const end = offset + into.length;
    if (end > this.blob.size) throw shortRead(this.name, offset, into.length, this.blob.size - offset);
    let next = 0;
    const reader = async () => {
      for (let at = next; at < into.length; at = next) {
        next += BLOB_PIECE;
        const piece = await this.blob.slice(offset + at, offset + Math.min(into.length, at + BLOB_PIECE)).arrayBuffer().catch((cause: unknown) => {
          // Chromium's NotReadableError: a picked file that changed on disk (or lost its permission) since it was picked.
          const changed = cause instanceof Error && cause.name === "NotReadableError";
          throw inputFailure(this.name, "read it", changed ? new Error(`the browser can no longer read it (${cause.name}: it changed on disk since it was picked, or its permission went); pick it again`) : cause);
        });
        into.set(new Uint8Array(piece), at);
      }
    };
    await Promise.all(Array.from({ length: Math.min(BLOB_IN_FLIGHT, Math.ceil(into.length / BLOB_PIECE)) }, reader));
  }
  async close(): Promise<void> {}
}

/** FileSystemSyncAccessHandle and its `mode` option are newer than TypeScript's DOM library. */
interface SyncReadHandle {
  readonly mode?: string;
  read(into: Uint8Array, options: { at: number }): number;
  getSize(): number;
  close(): void;
}

/** Sync access handles exist only in dedicated workers (never on the page's thread). */
const canReadSync = (): boolean => typeof (globalThis as { FileSystemSyncAccessHandle?: unknown }).FileSystemSyncAccessHandle === "function";

/**
 * A library file read in a worker through a sync access handle, which fills the given view (wasm
 * memory) in place. The handle is opened "read-only", which Chromium lets every worker hold at once;
 * where the browser cannot share it (its lock is taken), reads go through the file's Blob instead.
 */
export class OpfsSource implements ByteSource {
  private handle: Promise<SyncReadHandle | undefined> | undefined;
  private readonly fallback: BlobSource;
  constructor(private readonly file: FileSystemFileHandle, blob: Blob, readonly name: string) {
    this.fallback = new BlobSource(blob, name);
  }

  private open(): Promise<SyncReadHandle | undefined> {
    const file = this.file as unknown as { createSyncAccessHandle(options?: { mode?: "read-only" }): Promise<SyncReadHandle> };
    this.handle ??= file.createSyncAccessHandle({ mode: "read-only" }).catch((cause: unknown) => {
      if ((cause as DOMException)?.name === "NoModificationAllowedError") return undefined; // locked by another reader
      this.handle = undefined;
      throw inputFailure(this.name, "open it in the model library", cause);
    });
    return this.handle;
  }

  async size(): Promise<number> {
    const h = await this.open();
    return h ? h.getSize() : this.fallback.size();
  }

  async readInto(offset: number, into: Uint8Array): Promise<void> {
    const h = await this.open();
    if (!h) return this.fallback.readInto(offset, into);
    let done = 0;
    while (done < into.length) {
      let n: number;
      try {
        n = h.read(into.subarray(done), { at: offset + done });
      } catch (cause) {
        throw inputFailure(this.name, `read ${into.length - done} bytes at offset ${offset + done}`, cause);
      }
      if (n === 0) throw shortRead(this.name, offset, into.length, done);
      done += n;
    }
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    (await h?.catch(() => undefined))?.close();
  }
}

/**
 * How a worker thread reads: fs.readSync on the file's descriptor, straight into the view (wasm memory),
 * on the worker's own thread. An asynchronous read hands each chunk to Node's thread pool and back,
 * which on the bench's four 1 GiB models (linear, 2 workers, inputs in the page cache) cost about 10% of
 * the merge's wall time against these (0.86-0.94 s against 0.98-1.06 s, eight alternations), and from
 * the disk (inputs evicted) nothing was lost (2.1-2.6 s against 2.5-3.5 s). A worker blocked in a read
 * computes nothing meanwhile, but the other worker does, and reads were never what a worker waited on
 * longest. On the main thread (the calling thread's small merges, the library's own reads) reads stay
 * asynchronous: its event loop must not block. Set by the worker script in Node (readSyncInWorker);
 * undefined on the main thread and in browsers. (Set from there rather than asking node:worker_threads
 * whether this is the main thread: loading that module took 3.4 ms of every small merge's start.)
 */
let workerReadSync: typeof import("node:fs").readSync | undefined;

/**
 * Called once by the worker script in Node: this thread is a worker, and reads files with `readSync`.
 * @internal (not in the published types, which must not need Node's: the browser entry reaches this file)
 */
export function readSyncInWorker(readSync: typeof import("node:fs").readSync): void {
  workerReadSync = readSync;
}

/**
 * A file read with FileHandle.read (or readSync in a worker: readSyncInWorker), which fills the given view in place. (fs.openAsBlob is not used:
 * Node 20 misreports files of 4 GiB and more, nodejs/node#52585.)
 */
export class NodeFileSource implements ByteSource {
  private handle: Promise<import("node:fs/promises").FileHandle> | undefined;
  /** `identity`: the file the path must still be (see FileIdentity). */
  constructor(readonly name: string, private readonly expected?: FileIdentity) {}

  private open(): Promise<import("node:fs/promises").FileHandle> {
    // The node: import stays dynamic so this module also loads in browsers (where it is never called).
    this.handle ??= import("node:fs/promises").then((fs) => openRegularFile(fs, this.name, this.expected)).catch((cause: unknown) => {
      this.handle = undefined;
      throw cause;
    });
    return this.handle;
  }

  async size(): Promise<number> {
    const fh = await this.open();
    try {
      return (await fh.stat()).size;
    } catch (cause) {
      throw inputFailure(this.name, "read its size", cause);
    }
  }

  /** The open file's identity, to stamp on the references made from what was read of it. */
  async identity(): Promise<FileIdentity> {
    const fh = await this.open();
    try {
      return identityOf(await fh.stat());
    } catch (cause) {
      throw inputFailure(this.name, "read its size", cause);
    }
  }

  async readInto(offset: number, into: Uint8Array): Promise<void> {
    const fh = await this.open(), readSync = workerReadSync;
    let done = 0;
    while (done < into.length) {
      // One read is capped below 2 GiB by Node; loop for short reads as well.
      const want = Math.min(into.length - done, 0x40000000);
      let bytesRead: number;
      try {
        bytesRead = readSync ? readSync(fh.fd, into, done, want, offset + done) : (await fh.read(into, done, want, offset + done)).bytesRead;
      } catch (cause) {
        throw inputFailure(this.name, `read ${want} bytes at offset ${offset + done}`, cause);
      }
      if (bytesRead === 0) throw shortRead(this.name, offset, into.length, done);
      done += bytesRead;
    }
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    if (h) await (await h).close().catch(() => undefined); // read-only: nothing can be lost
  }
}

/**
 * Opens `path` for reading, refusing anything but a regular file (symlinks followed). O_NONBLOCK
 * makes opening a FIFO return at once instead of waiting, beyond the reach of Ctrl-C, for a writer
 * that never comes; on regular files it changes nothing.
 * @internal (Node's types in its signature: kept out of the published types, as readSyncInWorker)
 */
export async function openRegularFile(fs: typeof import("node:fs/promises"), path: string, expected?: FileIdentity): Promise<import("node:fs/promises").FileHandle> {
  const { constants } = await import("node:fs");
  let fh: import("node:fs/promises").FileHandle;
  try {
    fh = await fs.open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (cause) {
    throw inputFailure(path, "open it", cause);
  }
  const info = await fh.stat().catch((cause: unknown) => {
    void fh.close();
    throw inputFailure(path, "read its size", cause);
  });
  if (!info.isFile()) {
    await fh.close();
    throw new ModelError("E_NOT_REGULAR_FILE", `${path}: is ${info.isDirectory() ? "a folder" : info.isFIFO() ? "a FIFO (named pipe)" : info.isSocket() ? "a socket" : "a device"}, not a regular file`, { file: path });
  }
  if (expected) {
    const now = identityOf(info);
    if (now.dev !== expected.dev || now.ino !== expected.ino || now.size !== expected.size || now.mtimeMs !== expected.mtimeMs) {
      await fh.close();
      throw new ModelError("E_IO", `${path}: changed since its header was read (replaced or rewritten during the merge); its tensors are not read at the old header's offsets`, { file: path });
    }
  }
  return fh;
}

function identityOf(info: import("node:fs").Stats): FileIdentity {
  return { dev: info.dev, ino: info.ino, size: info.size, mtimeMs: info.mtimeMs };
}

function shortRead(name: string, offset: number, wanted: number, got: number): ModelError {
  return new ModelError("E_IO", `${name}: file ended early reading ${wanted} bytes at offset ${offset} (got ${Math.max(0, got)}); was it changed during the merge?`, { file: name });
}
