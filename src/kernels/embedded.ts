/**
 * @file The plain-SIMD build of the kernels, embedded in the bundles as base64. kernels.ts imports
 * this module (and embedded-relaxed.ts) only when a thread first compiles that build, so that loading a
 * bundle decodes neither: a command that merges nothing, or a worker handed the compiled module, never
 * does, and a thread decodes only the build it runs.
 */
import bytes from "../../dist/kernels.wasm";

export const EMBEDDED_PLAIN = bytes;
