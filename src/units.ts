/**
 * @file Sizes and durations in words people read (the CLI's progress bar, the page).
 */

export function formatBytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : n < 10 ? 2 : 1)} ${units[i]}`;
}

/** Wasm memory in MiB, as budgets are given (--memory-budget 64MiB). */
export function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/** A merge's worker count: 0 means it ran on the calling thread. */
export function formatWorkers(n: number): string {
  return n === 0 ? "no workers (in this thread)" : n === 1 ? "1 worker" : `${n} workers`;
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "--";
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${String(Math.round(s % 60)).padStart(2, "0")}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

/**
 * Seconds left at the rate so far, once that means something: the first reads of a merge (worker
 * start-up, the first tensor) say little about its rate, and an early guess would read as hours.
 * Undefined before a second and 2% of the work have passed, and at the end.
 */
export function timeLeft(seconds: number, fraction: number): number | undefined {
  if (seconds < 1 || fraction < 0.02 || fraction >= 1) return undefined;
  return (seconds * (1 - fraction)) / fraction;
}
