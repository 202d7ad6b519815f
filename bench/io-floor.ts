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
 *
 * With `cold` (section 3c), every run starts with the input files evicted from the page cache (GNU dd's
 * `iflag=nocache count=0`, which drops a file's clean pages; no root needed), so inputs come from the
 * disk, as they do when the models are larger than the machine's memory. Only the inputs are evicted:
 * Node, dist/ and the output folder's parent stay warm. Chunks read twice (TIES's select, then the
 * merge) come from the page cache the second time, as they would for a user. The floor there is the
 * faster of the engine's own calls (as in 3b) and every input read at once by its own `cat`, so the
 * engine's read pattern cannot flatter the ratio.
 */
import { spawnSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { E2eModels } from "./e2e-models";

const TARGETS: Record<string, number> = { linear: 1.3, task_arithmetic: 1.3, ties: 1.5, dare_ties: 1.5 };
const RSS_TARGET = 512 * 1048576;

export interface FloorRow { method: string; merge: number; floor: number; peakRss: number; mergeCpu: number; floorCpu: number }

/**
 * Runs the section (3b, or 3c with `cold`) and prints it; returns the rows (best seconds of each), or
 * nothing when `cold` is asked for where the page cache cannot be dropped.
 */
export function ioFloorSection(m: E2eModels, line: (s?: string) => void, { pairs = 3, cold = false } = {}): FloorRow[] {
  const out = join(m.dir, "out-floor");
  const cli = fileURLToPath(new URL("../../dist/cli.cjs", import.meta.url));
  const floorChild = fileURLToPath(new URL("./io-floor-child.js", import.meta.url));
  const workers = availableParallelism();
  const inputs = m.models.map((name) => join(m.dir, name, "model.safetensors"));
  if (cold && !evict(inputs)) {
    line(`3c. Against the disk floor: skipped (GNU dd's iflag=nocache did not drop the inputs from the page cache here)`);
    line();
    return [];
  }
  const fresh = () => {
    rmSync(out, { recursive: true, force: true });
    spawnSync("sync");
    if (cold) evict(inputs);
  };
  const engineFloor = (method: string): Run => {
    fresh();
    const r = spawnSync(process.execPath, [floorChild, join(m.dir, `${method}.yml`), out, String(workers)], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`I/O floor: ${r.stderr}`);
    return JSON.parse(r.stdout) as Run;
  };
  // Every input at once, each by its own `cat` to /dev/null (no output written): the disk's sequential
  // speed with as many streams as inputs.
  const catFloor = (): Run => {
    fresh();
    const r = spawnSync("/usr/bin/time", ["-f", "%e %U %S", "sh", "-c", 'for f in "$@"; do cat "$f" > /dev/null & done; wait', "sh", ...inputs], { encoding: "utf8" });
    const [seconds, user, system] = r.stderr.trim().split(/\s+/).slice(-3).map(Number);
    if (r.status !== 0 || !Number.isFinite(seconds)) throw new Error(`cat floor: ${r.stderr}`);
    return { seconds: seconds!, cpu: user! + system! };
  };
  // Per method, the best of each floor (the cat floor only when cold).
  const floorsSeen = new Map<string, { engine: Run; cat?: Run }>();
  const baseline = process.env.BENCH_BASELINE_CLI;
  const merge = (method: string, build = cli): Run & { peakRss: number } => {
    fresh();
    const t0 = performance.now();
    const r = spawnSync("/usr/bin/time", ["-v", process.execPath, build, "merge", join(m.dir, `${method}.yml`), out, "--quiet"], { encoding: "utf8" });
    const seconds = (performance.now() - t0) / 1000;
    if (r.status !== 0) throw new Error(`merge ${method}: ${r.stderr}`);
    const field = (name: string) => Number(new RegExp(`${name}: ([\\d.]+)`).exec(r.stderr)?.[1] ?? NaN);
    return { seconds, cpu: field("User time \\(seconds\\)") + field("System time \\(seconds\\)"), peakRss: field("Maximum resident set size \\(kbytes\\)") * 1024 };
  };
  // Node's own start and exit: in every merge's wall time and CPU, not in the floor's (timed in-process).
  const nodeStart = (): Run => {
    const t0 = performance.now();
    const r = spawnSync("/usr/bin/time", ["-f", "%U %S", process.execPath, "-e", "0"], { encoding: "utf8" });
    const seconds = (performance.now() - t0) / 1000;
    const [user, system] = r.stderr.trim().split(" ").map(Number);
    return { seconds, cpu: user! + system! };
  };

  if (cold) {
    line(`3c. Against the disk floor: as 3b, with the inputs evicted from the page cache before every run (dd iflag=nocache count=0),`);
    line(`   so they are read from the disk; the floor is the faster of the engine's own calls and every input read at once by its own`);
    line(`   \`cat\` (no output written); alternating, best of ${pairs}, \`sync\` before each; workers = ${workers}`);
  } else {
    line(`3b. Against the I/O floor: the merge as a whole CLI process (node dist/cli.cjs merge RECIPE OUT --quiet) next to the floor`);
    line(`   (every input range the merge reads, read once, and its output written, with the engine's own I/O calls, chunks,`);
    line(`   jobs in flight and write+rename, nothing computed, in-process time); alternating, best of ${pairs}, \`sync\` before each; workers = ${workers}`);
  }
  line(`   CPU: user + system seconds of every thread of the run shown (the floor's over its in-process time; the merge's, whole process)`);
  if (baseline) line(`   "baseline" is ${baseline}, run in the same alternation (floor, baseline, this build)`);
  line(`   ${"method".padEnd(16)} ${"merge s".padStart(8)} ${"floor s".padStart(8)} ${"ratio".padStart(7)} ${"target".padStart(7)} ${"peak RSS".padStart(9)} ${"merge CPU".padStart(10)} ${"floor CPU".padStart(10)}${baseline ? `${"baseline s".padStart(11)} ${"ratio".padStart(7)} ${"RSS".padStart(7)}` : ""}`);
  merge("linear"); // dist/ read once (and, warm, the inputs)
  const rows: FloorRow[] = [];
  const node: Run[] = [];
  for (const method of Object.keys(TARGETS)) {
    const engineFloors: Run[] = [], catFloors: Run[] = [], merges: (Run & { peakRss: number })[] = [], before: typeof merges = [];
    for (let p = 0; p < pairs; p++) {
      node.push(nodeStart());
      engineFloors.push(engineFloor(method));
      if (cold) catFloors.push(catFloor());
      if (baseline) before.push(merge(method, baseline));
      merges.push(merge(method));
    }
    floorsSeen.set(method, { engine: fastest(engineFloors), cat: cold ? fastest(catFloors) : undefined });
    const bestMerge = fastest(merges), bestFloor = fastest([...engineFloors, ...catFloors]);
    const row = { method, merge: bestMerge.seconds, floor: bestFloor.seconds, peakRss: Math.max(...merges.map((r) => r.peakRss)), mergeCpu: bestMerge.cpu, floorCpu: bestFloor.cpu };
    rows.push(row);
    const ratio = row.merge / row.floor;
    const met = ratio <= TARGETS[method]! && row.peakRss <= RSS_TARGET ? "" : "  (target missed)";
    line(`   ${method.padEnd(16)} ${row.merge.toFixed(2).padStart(8)} ${row.floor.toFixed(2).padStart(8)} ${(ratio.toFixed(2) + "x").padStart(7)} ${("<=" + TARGETS[method] + "x").padStart(7)} ${((row.peakRss / 1048576).toFixed(0) + " MB").padStart(9)} ${row.mergeCpu.toFixed(2).padStart(10)} ${row.floorCpu.toFixed(2).padStart(10)}${baseline ? baselineColumns(before, row.floor) : ""}${met}`);
  }
  line(`   targets: linear, task_arithmetic <= 1.3x the floor; ties, dare_ties <= 1.5x; peak RSS <= 512 MB`);
  if (cold) line(`   floors, best of each: ${[...floorsSeen].map(([method, f]) => `${method} engine ${f.engine.seconds.toFixed(2)} s, cat ${f.cat!.seconds.toFixed(2)} s`).join("; ")}`);
  // What the machine allows: the floor's copies keep its cores busy, so whatever a merge adds to them (Node's
  // start, the kernels' passes) runs on the same cores. Even computing nothing more than the floor, a whole
  // process cannot beat Node's start plus the floor.
  const nodeRun = fastest(node);
  line(`   node -e 0: ${nodeRun.seconds.toFixed(3)} s, ${nodeRun.cpu.toFixed(2)} s CPU (best of ${node.length}); cores ${workers}`);
  for (const r of rows) {
    const busy = r.floorCpu / r.floor;
    const spare = Math.max(0, workers * r.floor * TARGETS[r.method]! - workers * (nodeRun.seconds) - r.floorCpu);
    line(`   ${r.method}: the floor keeps ${busy.toFixed(1)} of ${workers} cores busy; ${TARGETS[r.method]}x its time on ${workers} cores, less Node's start, leaves ${spare.toFixed(2)} s of CPU for what the merge adds to the floor's work (it adds ${Math.max(0, r.mergeCpu - r.floorCpu - nodeRun.cpu).toFixed(2)} s)`);
  }
  rmSync(out, { recursive: true, force: true });
  line();
  return rows;
}

interface Run { seconds: number; cpu: number }

/**
 * Drops the files' pages from the page cache (GNU dd: `iflag=nocache count=0` advises the kernel to drop
 * the whole file's clean pages; callers `sync` first). Where util-linux's fincore is present, checks that
 * no page stayed. Returns false where either failed.
 */
function evict(files: string[]): boolean {
  for (const file of files) {
    if (spawnSync("dd", [`if=${file}`, "iflag=nocache", "count=0", "status=none"]).status !== 0) return false;
  }
  if (!existsSync("/usr/bin/fincore")) return true;
  const r = spawnSync("/usr/bin/fincore", ["--bytes", "--noheadings", "--output", "RES", ...files], { encoding: "utf8" });
  return r.status === 0 && r.stdout.trim().split(/\s+/).every((bytes) => Number(bytes) === 0);
}

/** The run with the least wall time (its CPU goes with it). */
function fastest<T extends Run>(runs: T[]): T {
  return runs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
}

function baselineColumns(runs: { seconds: number; peakRss: number }[], floor: number): string {
  const seconds = Math.min(...runs.map((r) => r.seconds)), rss = Math.max(...runs.map((r) => r.peakRss));
  return `${seconds.toFixed(2).padStart(11)} ${((seconds / floor).toFixed(2) + "x").padStart(7)} ${((rss / 1048576).toFixed(0) + " MB").padStart(7)}`;
}
