// One end-to-end merge in its own process (so peak RSS is this merge's), printing a JSON summary.
// argv: recipe out ioOnly(0|1) workers
import { merge } from "../src/node";
import { peakRss } from "./peak-rss";

const [recipe, out, ioOnly, workers] = process.argv.slice(2);
const started = performance.now();
const summary = await merge(recipe!, { out: out!, force: true, workers: Number(workers), ioOnly: ioOnly === "1", workerUrl: new URL("../../dist/worker.js", import.meta.url) });
const wall = (performance.now() - started) / 1000;
process.stdout.write(JSON.stringify({ wall, seconds: summary.seconds, inputBytes: summary.inputBytes, outputBytes: summary.outputBytes, peakRss: await peakRss(), peakWorkerMemory: summary.peakWorkerMemory }) + "\n");
