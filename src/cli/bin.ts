#!/usr/bin/env node
import { main } from "./main";
import { noteStartup } from "../eval/profile";

noteStartup();

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  // The command is done and has released what it started (workers, files, timers): exit now rather
  // than let Node tear the whole heap and every module down on its way out (tens of milliseconds
  // after a merge), but only once what was written to stdout and stderr has been handed to the OS
  // (a pipe may be asynchronous: a write's callback runs once it has been flushed, in order).
  process.stdout.write("", () => process.stderr.write("", () => process.exit()));
});
