// Parses recipe text with the built library (dist/index.js) in a thread of its own, so a parse that
// never ends is a failed test after a deadline rather than a test run that hangs. The thread gets a
// large stack: a runner thread whose parser code is already optimised gets through 5,000 levels of
// YAML nesting, and what comes after the parse is what such tests are about; a fresh thread with the
// default stack would stop at a RangeError inside the parser first.
import { Worker } from "node:worker_threads";

const DIST = new URL("../../dist/index.js", import.meta.url).href;

export type ThreadOutcome =
  | { outcome: "parsed" }
  | { outcome: "rejected"; typed: boolean; name: string; code: unknown; message: string }
  | { outcome: "no outcome"; seconds: number };

// CommonJS (eval'd workers are), importing the ES module bundle.
const SCRIPT = `
const { parentPort, workerData } = require("node:worker_threads");
import(workerData.dist).then(({ parseRecipe, WeightsoupError }) => {
  try {
    parseRecipe(workerData.text, "r.yml");
    parentPort.postMessage({ outcome: "parsed" });
  } catch (e) {
    parentPort.postMessage({ outcome: "rejected", typed: e instanceof WeightsoupError, name: String(e?.constructor?.name), code: e?.code, message: String(e?.message) });
  }
});
`;

export function parseRecipeInThread(text: string, deadlineMs: number): Promise<ThreadOutcome> {
  const worker = new Worker(SCRIPT, { eval: true, workerData: { dist: DIST, text }, resourceLimits: { stackSizeMb: 64 } });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void worker.terminate();
      resolve({ outcome: "no outcome", seconds: deadlineMs / 1000 });
    }, deadlineMs);
    worker.once("message", (m: ThreadOutcome) => {
      clearTimeout(timer);
      void worker.terminate();
      resolve(m);
    });
    worker.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}
