/**
 * @file The worker side of adding a model to the library: one picked file, or one part of it, copied
 * into a file of the origin-private file system through a sync access handle (dedicated workers only;
 * 0.5–0.6 GB/s here, against 45–70 MB/s through a writable stream from the page). The next piece is
 * read while the last one is written. Chromium hands one worker a picked file's bytes at 0.12–0.14
 * GB/s here: two workers copying a half each, through handles that share the file, took 5.5 s for a
 * 1.08 GB file against 7.6–8.8 s for one (a dev script, two runs each).
 */
import { OutputError } from "../errors";

/** Bytes per read of the picked file (one Blob.slice) and per write; a part starts at a multiple of it. */
export const COPY_PIECE = 16 * 2 ** 20;

interface SyncWriteHandle {
  /** "readwrite-unsafe" where the browser lets several handles write one file (Chromium 121 on). */
  readonly mode?: string;
  write(buffer: Uint8Array, options: { at: number }): number;
  truncate(size: number): void;
  close(): void;
}

type SyncOpenable = { createSyncAccessHandle?(options?: { mode: string }): Promise<SyncWriteHandle> };

/**
 * Copies `blob` into `target` (replacing what it held), or with `part` only its bytes [start, end) to
 * the same offsets of a new, empty `target` that other workers write the rest of (each through a
 * handle of mode "readwrite-unsafe"); `onProgress` hears the bytes copied so far.
 */
export async function copyBlobToFile(blob: Blob, target: FileSystemFileHandle, name: string, onProgress: (bytes: number) => void, part?: { start: number; end: number }): Promise<void> {
  const source = target as unknown as SyncOpenable;
  if (typeof source.createSyncAccessHandle !== "function") {
    throw new OutputError("E_IO", `${name}: this browser cannot write its private storage from a worker`, { file: name });
  }
  const h = await source.createSyncAccessHandle(part ? { mode: "readwrite-unsafe" } : undefined).catch((cause: unknown) => {
    throw new OutputError("E_IO", `${name}: cannot open its copy in the library (${(cause as Error).message})`, { file: name }, { cause });
  });
  try {
    if (!part) h.truncate(0);
    const start = part?.start ?? 0, end = part?.end ?? blob.size;
    const piece = (at: number) => (at < end ? blob.slice(at, Math.min(end, at + COPY_PIECE)).arrayBuffer() : undefined);
    let next = piece(start);
    for (let at = start; next; at += COPY_PIECE) {
      const bytes = new Uint8Array(await next.catch((cause: unknown) => {
        throw new OutputError("E_IO", `${name}: cannot read the picked file (${(cause as Error).message}); was it changed or moved?`, { file: name }, { cause });
      }));
      next = piece(at + COPY_PIECE);
      for (let done = 0; done < bytes.length;) {
        const n = h.write(bytes.subarray(done), { at: at + done });
        if (n <= 0) throw new Error("wrote nothing (is the storage full?)");
        done += n;
      }
      onProgress(at + bytes.length - start);
    }
  } catch (cause) {
    if (cause instanceof OutputError) throw cause;
    const full = (cause as DOMException)?.name === "QuotaExceededError";
    throw new OutputError(full ? "E_OUTPUT_SPACE" : "E_IO", `${name}: ${full ? "the browser's storage is full" : (cause as Error).message}`, { file: name }, { cause });
  } finally {
    h.close();
  }
}

/** Whether this browser lets several workers write `target` at once (sync access handles of mode "readwrite-unsafe"). */
export async function sharesWrites(target: FileSystemFileHandle): Promise<boolean> {
  const source = target as unknown as SyncOpenable;
  if (typeof source.createSyncAccessHandle !== "function") return false;
  const h = await source.createSyncAccessHandle({ mode: "readwrite-unsafe" }).catch(() => undefined);
  if (!h) return false;
  const shared = h.mode === "readwrite-unsafe";
  h.close();
  return shared;
}
