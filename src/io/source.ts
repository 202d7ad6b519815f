/**
 * @file Random-access byte sources: a file on disk in Node, a File or Blob in browsers. Readers ask for
 * a byte range and give the view it should land in, which may be a view into wasm memory: in Node the
 * read lands there directly (no intermediate buffer); a Blob costs one copy, because a Blob can only be
 * read into a fresh ArrayBuffer.
 *
 * Sources are described by a SourceRef, a plain serialisable value, so a worker can open the same file
 * itself instead of receiving its bytes.
 */
import { ModelError } from "../errors";
import { inputFailure } from "./io-error";

export type SourceRef =
  | { kind: "path"; path: string }
  | { kind: "blob"; blob: Blob; name: string };

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

export function openSource(ref: SourceRef): ByteSource {
  return ref.kind === "path" ? new NodeFileSource(ref.path) : new BlobSource(ref.blob, ref.name);
}

export class BlobSource implements ByteSource {
  constructor(private readonly blob: Blob, readonly name: string) {}
  async size(): Promise<number> {
    return this.blob.size;
  }
  async readInto(offset: number, into: Uint8Array): Promise<void> {
    const end = offset + into.length;
    if (end > this.blob.size) throw shortRead(this.name, offset, into.length, this.blob.size - offset);
    into.set(new Uint8Array(await this.blob.slice(offset, end).arrayBuffer()));
  }
  async close(): Promise<void> {}
}

/**
 * A file read with FileHandle.read, which fills the given view in place. (fs.openAsBlob is not used:
 * Node 20 misreports files of 4 GiB and more, nodejs/node#52585.)
 */
export class NodeFileSource implements ByteSource {
  private handle: Promise<import("node:fs/promises").FileHandle> | undefined;
  constructor(readonly name: string) {}

  private open(): Promise<import("node:fs/promises").FileHandle> {
    // The node: import stays dynamic so this module also loads in browsers (where it is never called).
    this.handle ??= import("node:fs/promises").then((fs) => openRegularFile(fs, this.name)).catch((cause: unknown) => {
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

  async readInto(offset: number, into: Uint8Array): Promise<void> {
    const fh = await this.open();
    let done = 0;
    while (done < into.length) {
      // One read is capped below 2 GiB by Node; loop for short reads as well.
      const want = Math.min(into.length - done, 0x40000000);
      let bytesRead: number;
      try {
        ({ bytesRead } = await fh.read(into, done, want, offset + done));
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
 */
export async function openRegularFile(fs: typeof import("node:fs/promises"), path: string): Promise<import("node:fs/promises").FileHandle> {
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
  return fh;
}

function shortRead(name: string, offset: number, wanted: number, got: number): ModelError {
  return new ModelError("E_IO", `${name}: file ended early reading ${wanted} bytes at offset ${offset} (got ${Math.max(0, got)}); was it changed during the merge?`, { file: name });
}
