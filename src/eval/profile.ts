/**
 * @file Where a run's wall time goes, for tuning: with WEIGHTSOUP_PROFILE=1 in Node (or the CLI's
 * --profile, which sets it), each run adds the time spent awaiting each phase (merged weights, layers,
 * scoring, worker start-up, planning...) and prints a timeline to stderr at its end: per phase, when it
 * first started and last ended (seconds since this thread started: process start-up on the main
 * thread) and its total. Off (every call a no-op) otherwise and in browsers.
 */
import { nowMs } from "../clock";

/** Whether profiling is on: read at each run's start, since the CLI's --profile sets it after start-up. */
export function profiling(): boolean {
  return typeof process !== "undefined" && typeof process.env === "object" && !!process.env.WEIGHTSOUP_PROFILE;
}

/** Turns profiling on for this process and the workers it starts from now on (they inherit the environment). */
export function enableProfiling(): void {
  process.env.WEIGHTSOUP_PROFILE = "1";
}

/** When the CLI's code began to run (process start-up and loading the bundle before it), if it did. */
let startedAt: number | undefined;
/** Whether a run printed its timeline (commands with no phases print only their total: reportCommand). */
let reported = false;

/** Notes that the program's code starts now (the CLI's entry calls it, after every module has loaded). */
export function noteStartup(): void {
  startedAt = nowMs();
}

interface Phase {
  ms: number;
  count: number;
  /** First start and last end, nowMs() readings. */
  from: number;
  to: number;
}

/** Milliseconds of [from, to) that none of `spans` covers (phases may overlap: the kernels compile while headers are read). */
function uncovered(spans: [number, number][], from: number, to: number): number {
  let covered = 0, reach = from;
  for (const [a, b] of [...spans].sort((x, y) => x[0] - y[0])) {
    const start = Math.max(a, reach), end = Math.min(b, to);
    if (end > start) covered += end - start;
    reach = Math.max(reach, end);
  }
  return to - from - covered;
}

export class Phases {
  private readonly totals = new Map<string, Phase>();
  /** Every timed span, for the time no phase covers. */
  private readonly spans: [number, number][] = [];
  private readonly started = nowMs();
  private readonly enabled = profiling();

  constructor(private readonly what: string) {
    if (startedAt !== undefined) this.since("start Node, load weightsoup", 0, startedAt);
  }

  /** Awaits `work`, adding the wait to `phase`. */
  async time<T>(phase: string, work: Promise<T> | (() => Promise<T>)): Promise<T> {
    if (!this.enabled) return typeof work === "function" ? work() : work;
    const t0 = nowMs();
    try {
      return await (typeof work === "function" ? work() : work);
    } finally {
      this.since(phase, t0);
    }
  }

  /** Adds the time from `t0` to `t1` (nowMs() readings; `t1` defaults to now) to `phase`. */
  since(phase: string, t0: number, t1 = nowMs()): void {
    if (!this.enabled) return;
    this.spans.push([t0, t1]);
    const e = this.totals.get(phase);
    if (e) {
      e.ms += t1 - t0;
      e.count++;
      e.from = Math.min(e.from, t0);
      e.to = Math.max(e.to, t1);
    } else {
      this.totals.set(phase, { ms: t1 - t0, count: 1, from: t0, to: t1 });
    }
  }

  report(): void {
    if (!this.enabled) return;
    const now = nowMs();
    const wall = now - this.started;
    const s = (ms: number) => (ms / 1000).toFixed(3).padStart(7);
    const rows = [`  ${"phase".padEnd(40)} ${"from".padStart(7)} ${"to".padStart(7)} ${"total".padStart(9)}  awaits`];
    for (const [p, { ms, count, from, to }] of [...this.totals].sort((a, b) => a[1].from - b[1].from)) {
      rows.push(`  ${p.padEnd(40)} ${s(from)} ${s(to)} ${s(ms)} s  ${count}`);
    }
    rows.push(`  ${"(in none of the phases above)".padEnd(40)} ${"".padStart(15)} ${s(uncovered(this.spans, this.started, now))} s`);
    process.stderr.write(`profile ${this.what}: ${(wall / 1000).toFixed(3)} s wall, from ${(this.started / 1000).toFixed(3)} to ${(now / 1000).toFixed(3)} s after this thread started\n${rows.join("\n")}\n`);
    reported = true;
  }
}

/**
 * At a CLI command's end, with profiling on: a command that timed no phases (inspect, plan, extract-lora,
 * ...) still says where its time went, start-up against its own work, so --profile answers for every command.
 */
export function reportCommand(command: string): void {
  if (!profiling() || reported) return;
  const now = nowMs(), start = startedAt ?? 0;
  process.stderr.write(`profile ${command}: ${(now / 1000).toFixed(3)} s after this thread started\n` +
    `  start Node, load weightsoup ${(start / 1000).toFixed(3).padStart(7)} s\n  the command (no phases timed) ${((now - start) / 1000).toFixed(3).padStart(7)} s\n`);
}
