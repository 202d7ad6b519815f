// One alignment in its own process (so peak RSS is this alignment's), printing a JSON summary.
// argv: reference model out workers
import { align } from "../src/node";
import { peakRss } from "./peak-rss";

const [reference, model, out, workers] = process.argv.slice(2);
const started = performance.now();
const sweepSeconds: number[] = [];
let last = started;
const result = await align(reference!, model!, {
  out: out!, force: true, seed: 1, maxSweeps: 10, workers: Number(workers), workerUrl: new URL("../../dist/worker.js", import.meta.url),
  onGroup: (e) => {
    if (e.done !== e.groups) return;
    const now = performance.now();
    sweepSeconds.push((now - last) / 1000);
    last = now;
  },
});
const wall = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(); // every thread of the process
process.stdout.write(JSON.stringify({ wall, sweeps: result.sweeps, seconds: result.seconds, sweepSeconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, groups: result.groups.length, peakRss: await peakRss() }) + "\n");
