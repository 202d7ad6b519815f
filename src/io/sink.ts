/**
 * @file Where a worker writes its output bytes: a file on disk in Node (FileHandle.write) or a file in
 * the browser's origin-private file system (FileSystemSyncAccessHandle, dedicated workers only). Both
 * write straight from a view of wasm memory, with no copy.
 *
 * Several workers write disjoint ranges of one output file. Node allows that freely; an OPFS sync
 * handle locks the file, so where the browser offers shared "readwrite-unsafe" handles (Chromium) one
 * stays open per worker, and elsewhere each write opens, writes and closes, retrying while another
 * worker holds the lock.
 */
import { OutputError } from "../errors";
import { outputFailure } from "./io-error";
import type { OutputTarget } from "../merge/job";

export interface OutputSink {
  /** Writes all of `bytes` at `position`. */
  write(bytes: Uint8Array, position: number): Promise<void>;
  close(): Promise<void>;
}

export type SinkTarget = Extract<OutputTarget, { kind: "path" } | { kind: "opfs" }>;

export function sinkKey(target: SinkTarget): string {
  return target.kind === "path" ? target.path : target.file;
}

export function openSink(target: SinkTarget): OutputSink {
  return target.kind === "path" ? new NodeFileSink(target.path, target.file) : new OpfsSink(target.handle, target.file);
}

class NodeFileSink implements OutputSink {
  private handle: Promise<import("node:fs/promises").FileHandle> | undefined;
  /** `name` is the file as it will be published, for messages; `path` is where it is staged. */
  constructor(private readonly path: string, private readonly name: string) {}

  private open(): Promise<import("node:fs/promises").FileHandle> {
    this.handle ??= import("node:fs/promises").then((fs) => fs.open(this.path, "r+")).catch((cause: unknown) => {
      this.handle = undefined;
      throw outputFailure(this.name, "open it for writing", cause);
    });
    return this.handle;
  }

  async write(bytes: Uint8Array, position: number): Promise<void> {
    const fh = await this.open();
    let done = 0;
    try {
      while (done < bytes.length) {
        const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, position + done);
        done += bytesWritten;
      }
    } catch (cause) {
      throw outputFailure(this.name, `write ${bytes.length - done} bytes at offset ${position + done}`, cause);
    }
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    if (h) await (await h).close().catch((cause: unknown) => { throw outputFailure(this.name, "close it", cause); });
  }
}

/** FileSystemSyncAccessHandle and its `mode` option are newer than TypeScript's DOM library. */
interface SyncHandle {
  readonly mode?: string;
  write(buffer: Uint8Array, options: { at: number }): number;
  close(): void;
}
interface SyncHandleSource {
  createSyncAccessHandle(options?: { mode?: "readwrite" | "read-only" | "readwrite-unsafe" }): Promise<SyncHandle>;
}

class OpfsSink implements OutputSink {
  /** The shared handle kept open, where the browser has shared handles. */
  private shared: SyncHandle | undefined;
  constructor(private readonly handle: FileSystemFileHandle, private readonly name: string) {}

  private async acquire(): Promise<SyncHandle> {
    if (this.shared) return this.shared;
    const source = this.handle as unknown as SyncHandleSource;
    if (typeof source.createSyncAccessHandle !== "function") {
      throw new OutputError("E_IO", `${this.name}: this browser cannot write its private storage from a worker`, { file: this.name });
    }
    for (let attempt = 0; ; attempt++) {
      try {
        const h = await source.createSyncAccessHandle({ mode: "readwrite-unsafe" });
        if (h.mode === "readwrite-unsafe") this.shared = h;
        return h;
      } catch (cause) {
        // Another worker holds the file's lock for its write: wait a little and try again.
        if ((cause as DOMException)?.name !== "NoModificationAllowedError" || attempt > 2000) {
          throw new OutputError("E_IO", `${this.name}: cannot open for writing (${(cause as Error).message})`, { file: this.name }, { cause });
        }
        await new Promise((ok) => setTimeout(ok, Math.min(20, 1 + attempt)));
      }
    }
  }

  async write(bytes: Uint8Array, position: number): Promise<void> {
    const h = await this.acquire();
    try {
      let done = 0;
      while (done < bytes.length) {
        const n = h.write(bytes.subarray(done), { at: position + done });
        if (n <= 0) throw new Error("wrote nothing (is the storage full?)");
        done += n;
      }
    } catch (cause) {
      const full = (cause as DOMException)?.name === "QuotaExceededError";
      throw new OutputError("E_IO", `${this.name}: ${full ? "the browser's storage is full" : (cause as Error).message}`, { file: this.name }, { cause });
    } finally {
      if (h !== this.shared) h.close();
    }
  }

  async close(): Promise<void> {
    const h = this.shared;
    this.shared = undefined;
    // No flush(): it is an fsync (about 1 s per worker and file here), and the Node sink does not
    // fsync either. The bytes are in the file once written; the output only becomes visible when the
    // folder is committed after every write has returned.
    h?.close();
  }
}
