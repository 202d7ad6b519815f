#!/usr/bin/env node
import { cacheCommand, loadScript } from "./code-cache";
import type * as Script from "./script";

// Most of a small command's time past Node's own start-up is V8 compiling our code on first use. The
// commands live in one CommonJS script beside this file, compiled with the code cache of earlier runs
// of the same command (code-cache.ts: WEIGHTSOUP_NO_CACHE=1 turns it off). Node 20 has no cache of its
// own (module.enableCompileCache came in Node 22.1), and vm.Script's works the same on every version.
const argv = process.argv.slice(2);
const script = loadScript(new URL("./cli-script.js", import.meta.url), cacheCommand(argv));
const { main, noteStartup } = script.exports as unknown as typeof Script;

noteStartup();

main(argv).then((code) => {
  process.exitCode = code;
  // A cache made by a command that failed, printed its help, or switched V8's flags (the relaxed-SIMD
  // kernels on Node 20: a cache made after that never matches a fresh process's flags) would hold little,
  // or be rejected at every start: store only after a command that did its work.
  if (code === 0 && !argv.includes("--help") && !argv.includes("-h") && process.env.WEIGHTSOUP_SIMD !== "relaxed") script.save();
  // The command is done and has released what it started (workers, files, timers): exit now rather
  // than let Node tear the whole heap and every module down on its way out (tens of milliseconds
  // after a merge), but only once what was written to stdout and stderr has been handed to the OS
  // (a pipe may be asynchronous: a write's callback runs once it has been flushed, in order).
  process.stdout.write("", () => process.stderr.write("", () => process.exit()));
});
