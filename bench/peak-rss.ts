// This process's peak RSS, for the bench's one-run-per-process children.

/**
 * Peak RSS in bytes, from VmHWM: getrusage's maxrss survives fork+exec on Linux, so a child of a large
 * parent would report the parent's size. Elsewhere, maxrss.
 */
export async function peakRss(): Promise<number> {
  try {
    const hwm = /VmHWM:\s+(\d+) kB/.exec((await import("node:fs")).readFileSync("/proc/self/status", "utf8"));
    if (hwm) return Number(hwm[1]) * 1024;
  } catch { /* not Linux */ }
  return process.resourceUsage().maxRSS * 1024;
}
