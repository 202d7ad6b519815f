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
    this.handle ??= import("node:fs/promises").then((fs) => fs.open(this.name, "r")).catch((cause: NodeJS.ErrnoException) => {
      this.handle = undefined;
      throw new ModelError(cause.code === "ENOENT" ? "E_MODEL_NOT_FOUND" : "E_IO", `${this.name}: cannot open (${cause.message})`, { file: this.name }, { cause });
    });
    return this.handle;
  }

  async size(): Promise<number> {
    return (await (await this.open()).stat()).size;
  }

  async readInto(offset: number, into: Uint8Array): Promise<void> {
    const fh = await this.open();
    let done = 0;
    while (done < into.length) {
      // One read is capped below 2 GiB by Node; loop for short reads as well.
      const want = Math.min(into.length - done, 0x40000000);
      const { bytesRead } = await fh.read(into, done, want, offset + done);
      if (bytesRead === 0) throw shortRead(this.name, offset, into.length, done);
      done += bytesRead;
    }
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    if (h) await (await h).close();
  }
}

function shortRead(name: string, offset: number, wanted: number, got: number): ModelError {
  return new ModelError("E_IO", `${name}: file ended early reading ${wanted} bytes at offset ${offset} (got ${Math.max(0, got)}); was it changed during the merge?`, { file: name });
}
