/**
 * @file How much of a worker's wasm memory is not chunk data: static data, tile scratch and pass buffers
 * (histograms, partial sums). Kept apart from kernels.ts so planning does not pull in the wasm binary.
 */
import { SCRATCH_BYTES } from "../../assembly/layout";

export const KERNEL_OVERHEAD_BYTES = SCRATCH_BYTES + (2 << 20);
