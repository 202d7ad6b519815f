// One end-to-end merge in its own process (so peak RSS is this merge's), printing a JSON summary.
// argv: recipe out ioOnly(0|1) workers
import { merge } from "../src/node";

const [recipe, out, ioOnly, workers] = process.argv.slice(2);
const started = performance.now();
const summary = await merge(recipe!, { out: out!, force: true, workers: Number(workers), ioOnly: ioOnly === "1", workerUrl: new URL("../../dist/worker.js", import.meta.url) });
const wall = (performance.now() - started) / 1000;
// Peak RSS from VmHWM: getrusage's maxrss survives fork+exec on Linux, so a child of a large parent
// would report the parent's size.
let peakRss = process.resourceUsage().maxRSS * 1024;
try {
  const hwm = /VmHWM:\s+(\d+) kB/.exec((await import("node:fs")).readFileSync("/proc/self/status", "utf8"));
  if (hwm) peakRss = Number(hwm[1]) * 1024;
} catch { /* not Linux */ }
process.stdout.write(JSON.stringify({ wall, seconds: summary.seconds, inputBytes: summary.inputBytes, outputBytes: summary.outputBytes, peakRss, peakWorkerMemory: summary.peakWorkerMemory }) + "\n");
