/**
 * @file Where we are running, decided in one place.
 */

export const IS_NODE = typeof process !== "undefined" && typeof process.versions?.node === "string";

/** Cores available to workers: os.availableParallelism() in Node, navigator.hardwareConcurrency elsewhere. */
export async function availableCores(): Promise<number> {
  if (IS_NODE) {
    const os = await import("node:os");
    return os.availableParallelism();
  }
  return (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency || 2;
}

/** The worker script shipped next to this bundle (dist/worker.js). */
export function defaultWorkerUrl(): URL {
  return new URL("./worker.js", import.meta.url);
}
