/** @file The relaxed-SIMD build of the kernels, embedded as base64 and decoded on first use (see embedded.ts). */
import bytes from "../../dist/kernels-relaxed.wasm";

export const EMBEDDED_RELAXED = bytes;
