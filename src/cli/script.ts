/**
 * @file The CLI's script (dist/cli-script.js): every command, built as one CommonJS file that the entry
 * (bin.ts, dist/cli.cjs) compiles with vm.Script and V8's code cache (see code-cache.ts).
 */
export { main } from "./main";
export { noteStartup } from "../eval/profile";
