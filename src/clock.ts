/**
 * @file The one clock phases and progress are timed with: milliseconds since the process (Node) or the
 * page or worker (browsers) started. In Node that is process.uptime(), which is native, where the first
 * touch of the global `performance` loads node:perf_hooks and its dependencies: 2 ms of every small
 * merge's start, for a clock it only reads.
 */
export const nowMs: () => number =
  // Node itself, not a bundler's `process` shim (whose uptime() may return 0).
  typeof process !== "undefined" && typeof process.versions?.node === "string" ? () => process.uptime() * 1000 : () => performance.now();
