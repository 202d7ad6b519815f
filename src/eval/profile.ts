/**
 * @file Where an evaluation's or a sweep's wall time goes, for tuning: with WEIGHTSOUP_PROFILE=1 in
 * Node, each run adds the time spent awaiting each phase (merged weights, layers, scoring...) and
 * prints the totals to stderr at its end. Off (every call a no-op) otherwise and in browsers.
 */
const enabled = typeof process !== "undefined" && typeof process.env === "object" && !!process.env.WEIGHTSOUP_PROFILE;

export class Phases {
  private readonly totals = new Map<string, { ms: number; count: number }>();
  private readonly started = performance.now();

  constructor(private readonly what: string) {}

  /** Awaits `work`, adding the wait to `phase`. */
  async time<T>(phase: string, work: Promise<T> | (() => Promise<T>)): Promise<T> {
    if (!enabled) return typeof work === "function" ? work() : work;
    const t0 = performance.now();
    try {
      return await (typeof work === "function" ? work() : work);
    } finally {
      this.since(phase, t0);
    }
  }

  /** Adds the time since `t0` (a performance.now() reading) to `phase`. */
  since(phase: string, t0: number): void {
    if (!enabled) return;
    const e = this.totals.get(phase) ?? { ms: 0, count: 0 };
    e.ms += performance.now() - t0;
    e.count++;
    this.totals.set(phase, e);
  }

  report(): void {
    if (!enabled) return;
    const wall = performance.now() - this.started;
    const rows = [...this.totals].map(([p, { ms, count }]) => `  ${p.padEnd(34)} ${(ms / 1000).toFixed(2).padStart(8)} s  ${count} awaits`);
    let timed = 0;
    for (const { ms } of this.totals.values()) timed += ms;
    rows.push(`  ${"(outside the phases above)".padEnd(34)} ${((wall - timed) / 1000).toFixed(2).padStart(8)} s`);
    process.stderr.write(`profile ${this.what}: ${(wall / 1000).toFixed(2)} s wall\n${rows.join("\n")}\n`);
  }
}
