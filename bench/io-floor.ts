/**
 * @file Bench section "against the I/O floor": each method's merge of the end-to-end models as a whole
 * CLI process (`node dist/cli.cjs merge`, start-up and commit included), next to the floor measured in
 * the same run: reading every input and writing an output of the same size with the engine's own I/O
 * calls and sizes (bench/io-floor-child.ts). Floor and merge alternate, three pairs, each after `sync`
 * and with the output folder removed first; best against best. Peak RSS is the merge process's, from
 * /usr/bin/time -v (its rusage, so the worker threads' memory is in it).
 *
 * BENCH_BASELINE_CLI=path/to/an/older/dist/cli.cjs (dist/cli.js in builds before the entry was CommonJS) adds that build's merge to the same alternation
 * (floor, baseline, this build), to measure a change before and after in one run.
 */
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { E2eModels } from "./e2e-models";

const TARGETS: Record<string, number> = { linear: 1.3, task_arithmetic: 1.3, ties: 1.5, dare_ties: 1.5 };
const RSS_TARGET = 512 * 1048576;

export interface FloorRow { method: string; merge: number; floor: number; peakRss: number }

/** Runs the section and prints it; returns the rows (best seconds of each). */
export function ioFloorSection(m: E2eModels, line: (s?: string) => void, pairs = 3): FloorRow[] {
  const out = join(m.dir, "out-floor");
  const cli = fileURLToPath(new URL("../../dist/cli.cjs", import.meta.url));
  const floorChild = fileURLToPath(new URL("./io-floor-child.js", import.meta.url));
  const workers = availableParallelism();
  const fresh = () => {
    rmSync(out, { recursive: true, force: true });
    spawnSync("sync");
  };
  const floor = (method: string): number => {
    fresh();
    const r = spawnSync(process.execPath, [floorChild, join(m.dir, `${method}.yml`), out, String(workers)], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`I/O floor: ${r.stderr}`);
    return (JSON.parse(r.stdout) as { seconds: number }).seconds;
  };
  const baseline = process.env.BENCH_BASELINE_CLI;
  const merge = (method: string, build = cli): { seconds: number; peakRss: number } => {
    fresh();
    const t0 = performance.now();
    const r = spawnSync("/usr/bin/time", ["-v", process.execPath, build, "merge", join(m.dir, `${method}.yml`), out, "--quiet"], { encoding: "utf8" });
    const seconds = (performance.now() - t0) / 1000;
    if (r.status !== 0) throw new Error(`merge ${method}: ${r.stderr}`);
    const kb = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
    return { seconds, peakRss: kb ? Number(kb[1]) * 1024 : NaN };
  };

  line(`3b. Against the I/O floor: the merge as a whole CLI process (node dist/cli.cjs merge RECIPE OUT --quiet) next to the floor`);
  line(`   (every input range the merge reads, read once, and its output written, with the engine's own I/O calls, chunks,`);
  line(`   jobs in flight and write+rename, nothing computed, in-process time); alternating, best of ${pairs}, \`sync\` before each; workers = ${workers}`);
  if (baseline) line(`   "baseline" is ${baseline}, run in the same alternation (floor, baseline, this build)`);
  line(`   ${"method".padEnd(16)} ${"merge s".padStart(8)} ${"floor s".padStart(8)} ${"ratio".padStart(7)} ${"target".padStart(7)} ${"peak RSS".padStart(9)}${baseline ? `${"baseline s".padStart(11)} ${"ratio".padStart(7)} ${"RSS".padStart(7)}` : ""}`);
  merge("linear"); // page cache warm, dist/ read once
  const rows: FloorRow[] = [];
  for (const method of Object.keys(TARGETS)) {
    const floors: number[] = [], merges: { seconds: number; peakRss: number }[] = [], before: typeof merges = [];
    for (let p = 0; p < pairs; p++) {
      floors.push(floor(method));
      if (baseline) before.push(merge(method, baseline));
      merges.push(merge(method));
    }
    const row = { method, merge: Math.min(...merges.map((r) => r.seconds)), floor: Math.min(...floors), peakRss: Math.max(...merges.map((r) => r.peakRss)) };
    rows.push(row);
    const ratio = row.merge / row.floor;
    const met = ratio <= TARGETS[method]! && row.peakRss <= RSS_TARGET ? "" : "  (target missed)";
    line(`   ${method.padEnd(16)} ${row.merge.toFixed(2).padStart(8)} ${row.floor.toFixed(2).padStart(8)} ${(ratio.toFixed(2) + "x").padStart(7)} ${("<=" + TARGETS[method] + "x").padStart(7)} ${((row.peakRss / 1048576).toFixed(0) + " MB").padStart(9)}${baseline ? baselineColumns(before, row.floor) : ""}${met}`);
  }
  line(`   targets: linear, task_arithmetic <= 1.3x the floor; ties, dare_ties <= 1.5x; peak RSS <= 512 MB`);
  rmSync(out, { recursive: true, force: true });
  line();
  return rows;
}

function baselineColumns(runs: { seconds: number; peakRss: number }[], floor: number): string {
  const seconds = Math.min(...runs.map((r) => r.seconds)), rss = Math.max(...runs.map((r) => r.peakRss));
  return `${seconds.toFixed(2).padStart(11)} ${((seconds / floor).toFixed(2) + "x").padStart(7)} ${((rss / 1048576).toFixed(0) + " MB").padStart(7)}`;
}
