#!/usr/bin/env node
import nodeModule from "node:module";
import { noteStartup } from "../eval/profile";

// Most of a small command's time past Node's own start-up is V8 compiling our code on first use. From
// Node 22.1, module.enableCompileCache keeps that compiled code in a folder (os.tmpdir()/node-compile-cache
// unless NODE_COMPILE_CACHE names one) for the next run; Node checks each entry against the source it was
// compiled from, and leaves the cache off, without an error, when the folder cannot be written. Node 20
// has no such cache (the function is undefined). It must be on before the command's modules load: they
// are imported after this call.
(nodeModule as { enableCompileCache?: () => unknown }).enableCompileCache?.();
const { main } = await import("./main");

noteStartup();

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  // The command is done and has released what it started (workers, files, timers): exit now rather
  // than let Node tear the whole heap and every module down on its way out (tens of milliseconds
  // after a merge), but only once what was written to stdout and stderr has been handed to the OS
  // (a pipe may be asynchronous: a write's callback runs once it has been flushed, in order).
  process.stdout.write("", () => process.stderr.write("", () => process.exit()));
});
