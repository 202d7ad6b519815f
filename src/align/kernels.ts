/**
 * @file The kernel instance alignment runs in on the calling thread (the solver and the similarity
 * matrices), made on first use. Its memory grows with the largest problem and is reused after that;
 * every call resets the arena and runs without yielding, so calls never see each other's data.
 */
import { loadKernels, type Kernels } from "../kernels/kernels";

let instance: Promise<Kernels> | undefined;

/** Wasm memory can grow to 4 GiB; the arena may use all of it. */
const BUDGET = 4 * 1024 ** 3 - 65536;

export function alignmentKernels(): Promise<Kernels> {
  return (instance ??= loadKernels(BUDGET));
}
