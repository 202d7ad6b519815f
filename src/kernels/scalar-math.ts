/**
 * @file The transcendental functions every numeric result goes through (sin, cos, acos, exp, log,
 * pow), computed by the kernels (assembly/scalar-math.ts) instead of JavaScript's Math. Math's are not
 * specified to the bit and differ between V8 versions (Node 20 and Chromium 156 round some results
 * differently), so a slerp coefficient, a perplexity or a RoPE table made with them could differ
 * between the CLI and the page; the kernels' are plain IEEE arithmetic, the same bits everywhere
 * (both builds: relaxed SIMD changes only vector multiply-adds).
 *
 * One instance per thread: the first kernels the thread instantiates (a worker's, handed the compiled
 * module), else the embedded build instantiated here from the module the thread compiled for its pool
 * (compileKernels keeps it), so no thread compiles the kernels a second time for this.
 */
import { compileKernels, type KernelExports } from "./kernels";

export interface ScalarMath {
  sin(x: number): number;
  cos(x: number): number;
  acos(x: number): number;
  exp(x: number): number;
  log(x: number): number;
  pow(x: number, y: number): number;
}

let current: ScalarMath | undefined;
let pending: Promise<ScalarMath> | undefined;

/** This thread's scalar math (instantiated on first use when no kernels have been loaded yet). */
export function scalarMath(): Promise<ScalarMath> {
  if (current) return Promise.resolve(current);
  return (pending ??= (async () => {
    const { module } = await compileKernels();
    adoptScalarMath((await WebAssembly.instantiate(module, {})).exports as unknown as KernelExports);
    return current!;
  })());
}

/** Takes `exports` as this thread's scalar math unless it has one (kernels from custom bytes may lack the functions). */
export function adoptScalarMath(exports: KernelExports): void {
  if (current || typeof exports.scalarSin !== "function") return;
  current = scalarMathOf(exports);
}

/** The scalar math of one kernels instance. */
export function scalarMathOf(exports: KernelExports): ScalarMath {
  return {
    sin: exports.scalarSin, cos: exports.scalarCos, acos: exports.scalarAcos,
    exp: exports.scalarExp, log: exports.scalarLog, pow: exports.scalarPow,
  };
}
