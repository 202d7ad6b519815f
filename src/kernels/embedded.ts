/**
 * @file The two builds of the kernels, embedded in the bundles as base64. kernels.ts imports this
 * module only when a thread first compiles the kernels, so that loading a bundle does not decode them:
 * a command that merges nothing, and a worker handed the compiled module, never do.
 */
import plain from "../../dist/kernels.wasm";
import relaxed from "../../dist/kernels-relaxed.wasm";

export const EMBEDDED_BUILDS = { plain, relaxed };
