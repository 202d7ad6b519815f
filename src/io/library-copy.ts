/**
 * @file The worker side of adding a model to the library: one picked file copied into a file of the
 * origin-private file system through a sync access handle (dedicated workers only; 0.5–0.6 GB/s here,
 * against 45–70 MB/s through a writable stream from the page). The next piece is read while the last
 * one is written.
 */
import { OutputError } from "../errors";

/** Bytes per read of the picked file (one Blob.slice) and per write. */
const PIECE = 16 * 2 ** 20;

interface SyncWriteHandle {
  write(buffer: Uint8Array, options: { at: number }): number;
  truncate(size: number): void;
  close(): void;
}

/** Copies `blob` into `target` (replacing what it held); `onProgress` hears the bytes copied so far. */
export async function copyBlobToFile(blob: Blob, target: FileSystemFileHandle, name: string, onProgress: (bytes: number) => void): Promise<void> {
  const source = target as unknown as { createSyncAccessHandle?(): Promise<SyncWriteHandle> };
  if (typeof source.createSyncAccessHandle !== "function") {
    throw new OutputError("E_IO", `${name}: this browser cannot write its private storage from a worker`, { file: name });
  }
  const h = await source.createSyncAccessHandle().catch((cause: unknown) => {
    throw new OutputError("E_IO", `${name}: cannot open its copy in the library (${(cause as Error).message})`, { file: name }, { cause });
  });
  try {
    h.truncate(0);
    const piece = (at: number) => (at < blob.size ? blob.slice(at, Math.min(blob.size, at + PIECE)).arrayBuffer() : undefined);
    let next = piece(0);
    for (let at = 0; next; at += PIECE) {
      const bytes = new Uint8Array(await next.catch((cause: unknown) => {
        throw new OutputError("E_IO", `${name}: cannot read the picked file (${(cause as Error).message}); was it changed or moved?`, { file: name }, { cause });
      }));
      next = piece(at + PIECE);
      for (let done = 0; done < bytes.length;) {
        const n = h.write(bytes.subarray(done), { at: at + done });
        if (n <= 0) throw new Error("wrote nothing (is the storage full?)");
        done += n;
      }
      onProgress(at + bytes.length);
    }
  } catch (cause) {
    if (cause instanceof OutputError) throw cause;
    const full = (cause as DOMException)?.name === "QuotaExceededError";
    throw new OutputError(full ? "E_OUTPUT_SPACE" : "E_IO", `${name}: ${full ? "the browser's storage is full" : (cause as Error).message}`, { file: name }, { cause });
  } finally {
    h.close();
  }
}
