/**
 * @file The compiled kernels (assembly/) and the memory they work in. JavaScript owns the memory:
 * an Arena hands out 16-byte-aligned regions above the kernels' static data, grows the wasm memory on
 * demand and refuses to go past the worker's budget. Kernels only ever see pointers and counts.
 *
 * The kernels come in two builds of the same sources: plain SIMD (dist/kernels.wasm) and relaxed SIMD
 * (dist/kernels-relaxed.wasm), whose matrix products use fused multiply-adds. The relaxed build is
 * used where the runtime accepts it; the two give slightly different products (an FMA rounds once),
 * each deterministic on its own.
 */
import { SCRATCH_BYTES } from "../../assembly/layout";
import { IS_NODE } from "../env";
import { OptionError, WorkerError } from "../errors";
import { adoptScalarMath } from "./scalar-math";
import { mib } from "../units";

export type KernelExports = {
  memory: WebAssembly.Memory;
  heapBase(): number;
  decode(src: number, dtype: number, dst: number, n: number): void;
  encode(src: number, dtype: number, dst: number, n: number): void;
  quantize(buf: number, dtype: number, n: number): void;
  setScratch(ptr: number): void;
  weightedSum(table: number, nInputs: number, n: number, quant: number, normalize: number, divisor: number, out: number, outDtype: number): void;
  slerpStats(x0: number, d0: number, x1: number, d1: number, n: number, quant: number, partials: number): void;
  countNonFinite(ptr: number, dtype: number, n: number): number;
  taskVectorMerge(table: number, nInputs: number, n: number, startLo: number, startHi: number, quant: number, flags: number, divisor: number, lambda: number, out: number, outDtype: number): void;
  maskedL1(table: number, nInputs: number, n: number, startLo: number, startHi: number, quant: number, partials: number): void;
  diagnoseStage(table: number, nInputs: number, t: number, count: number, startLo: number, startHi: number, quant: number, unweighted: number, out: number): void;
  absDeltaSample(x: number, xDtype: number, b: number, bDtype: number, n: number, quant: number, hist: number): number;
  absDeltaRange(x: number, xDtype: number, b: number, bDtype: number, n: number, quant: number, lo: number, hi: number, shift: number, hist: number, cand: number, capacity: number, stats: number): void;
  absDeltaRanges(table: number, tasks: number, b: number, bDtype: number, n: number, quant: number): void;
  keyRange(keys: number, n: number, lo: number, hi: number, shift: number, hist: number, compact: number, stats: number): void;
  nonzeroBuckets(hist: number, buckets: number, pairs: number): number;
  dellaWorkBytes(rowLen: number): number;
  dellaFiberScratchBytes(n: number, xDtype: number, bDtype: number): number;
  dellaMaskFibers(x: number, xDtype: number, b: number, bDtype: number, n: number, quant: number, fiberLen: number, inner: number, startLo: number, startHi: number, key: number, density: number, epsilon: number, mask: number, work: number, scratch: number): void;
  dellaMask(x: number, xDtype: number, b: number, bDtype: number, n: number, quant: number, rowLen: number, startLo: number, startHi: number, key: number, density: number, epsilon: number, mask: number, work: number): void;
  ramCounts(table: number, nInputs: number, n: number, quant: number, epsilon: number, partials: number): void;
  ramMerge(table: number, nInputs: number, n: number, quant: number, epsilon: number, out: number, outDtype: number): void;
  sceVariance(table: number, nInputs: number, n: number, quant: number, vars: number): number;
  sceSample(vars: number, n: number, sample: number): number;
  sceCollect(vars: number, n: number, loHigh: number, loLow: number, hiHigh: number, hiLow: number, cand: number, capacity: number, result: number): void;
  sceSelectCandidates(cand: number, count: number, rank: number, hist: number, result: number): void;
  sceRange(vars: number, n: number, level: number, high: number, lo: number, last: number, shift: number, hist: number, stats: number): void;
  sceSquares(table: number, nInputs: number, n: number, quant: number, vars: number, sel: number, partials: number): void;
  sceMerge(table: number, nInputs: number, n: number, quant: number, vars: number, sel: number, out: number, outDtype: number): void;
  assignMin(cost: number, n: number, m: number, finite: number, sign: number, v: number, u: number, d: number, colOfRow: number, rowOfCol: number, pred: number, reachedCols: number, scannedRows: number, free: number, reached: number, held: number): number;
  accumulateProduct(a: number, b: number, n: number, m: number, k: number, c: number): void;
  linear(x: number, m: number, k: number, w: number, wDtype: number, n: number, y: number, accumulate: number, scratch: number): void;
  linearKN(x: number, m: number, k: number, w: number, wDtype: number, n: number, y: number, accumulate: number, scratch: number): void;
  addBias(y: number, bias: number, rows: number, cols: number, relu: number): void;
  crossEntropy(logits: number, labels: number, rows: number, classes: number, out: number): void;
  prepareCosts(cost: number, n: number, m: number, sign: number, v: number, rowOfCol: number, infinite: number): number;
  linear(x: number, m: number, k: number, w: number, wDtype: number, n: number, y: number, accumulate: number, scratch: number): void;
  linearKN(x: number, m: number, k: number, w: number, wDtype: number, n: number, y: number, accumulate: number, scratch: number): void;
  rmsNorm(x: number, rows: number, n: number, w: number, eps: number, out: number): void;
  layerNorm(x: number, rows: number, n: number, w: number, b: number, eps: number, out: number): void;
  addRowVector(y: number, rows: number, n: number, v: number): void;
  addInPlace(dst: number, src: number, count: number): void;
  rope(x: number, rows: number, stride: number, heads: number, d: number, rot: number, cos: number, sin: number, pos0: number): void;
  attention(q: number, qStride: number, k: number, v: number, kvStride: number, tq: number, tk: number, p0: number,
    heads: number, kvHeads: number, d: number, scale: number, window: number, out: number, outStride: number, scratch: number): void;
  siluMul(gate: number, up: number, count: number): void;
  geluTanh(x: number, count: number): void;
  scoreReset(state: number, rows: number): void;
  gramTiles(table: number, nInputs: number, n: number, quant: number, offsets: number, partials: number): void;
  gramRows(table: number, nInputs: number, n: number, cols: number, quant: number, offsets: number, partials: number): void;
  gramColumns(table: number, nInputs: number, n: number, cols: number, quant: number, offsets: number, stack: number, out: number): void;
  combine(table: number, nInputs: number, n: number, cols: number, quant: number, offsets: number, layout: number, coefs: number, perVector: number, out: number, outDtype: number): void;
  nearswap(a: number, aDtype: number, b: number, bDtype: number, n: number, quant: number, t: number, out: number, outDtype: number): void;
  fusionRowKL(a: number, aDtype: number, b: number, bDtype: number, n: number, cols: number, quant: number, scratch: number, out: number): void;
  fusionRange(a: number, aDtype: number, b: number, bDtype: number, n: number, cols: number, quant: number, kl: number, ranges: number, m: number, stats: number): void;
  fusionMerge(a: number, aDtype: number, b: number, bDtype: number, n: number, cols: number, quant: number, kl: number, threshold: number, out: number, outDtype: number): void;
  scoreChunk(ze: number, za: number, rows: number, n: number, v0: number, targets: number, state: number): void;
  deltaRows(ft: number, ftDtype: number, base: number, baseDtype: number, n: number, dst: number): void;
  sumSquares(a: number, b: number, n: number, out: number): void;
  fillRandom(dst: number, n: number, seed: number): void;
  transposeInto(src: number, rows: number, cols: number, dst: number, dstStride: number): void;
  copyBlock(src: number, srcStride: number, rows: number, cols: number, dst: number, dstStride: number): void;
  householderBasis(a: number, m: number, l: number, work: number, q: number): void;
  jacobiSvd(b: number, l: number, n: number, work: number, p: number, sigma: number): number;
  loraFactors(rows: number, p: number, sigma: number, l: number, n: number, r: number, a: number, wl: number): void;
  addScaledInPlace(x: number, dtype: number, d: number, scale: number, n: number): void;
  scalarSin(x: number): number;
  scalarCos(x: number): number;
  scalarAcos(x: number): number;
  scalarExp(x: number): number;
  scalarLog(x: number): number;
  scalarPow(x: number, y: number): number;
  ropeTables(invFreq: number, half: number, rows: number, attentionFactor: number, cos: number, sin: number): void;
  sampleSoftmax(logits: number, n: number, best: number, temperature: number, u: number): number;
};

const PAGE = 65536;

export class Arena {
  private top: number;
  private floor: number;
  /** Largest memory size reached, in bytes. */
  peak: number;

  constructor(readonly memory: WebAssembly.Memory, base: number, readonly budget: number) {
    this.floor = this.top = align(base, 64);
    this.peak = memory.buffer.byteLength;
  }

  /** A region of `bytes`, 16-byte aligned (what v128 loads like), zero-filled only if fresh memory. */
  alloc(bytes: number): number {
    const ptr = align(this.top, 16);
    const end = ptr + bytes;
    if (end > this.budget) {
      throw new WorkerError("E_MEMORY_BUDGET", `a kernel needs ${mib(end)} of wasm memory but the budget is ${mib(this.budget)}; raise the memory budget (--memory-budget, option memoryBudget) or, where the command takes one, lower the chunk size (--chunk-size, option chunkBytes)`, { needed: end, budget: this.budget });
    }
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      this.memory.grow(Math.ceil((end - have) / PAGE));
      this.peak = Math.max(this.peak, this.memory.buffer.byteLength);
    }
    this.top = end;
    return ptr;
  }

  /** Frees everything allocated after `mark()` returned this value. */
  release(mark: number): void {
    this.top = mark;
  }
  mark(): number {
    return this.top;
  }
  /** Frees everything above the floor. */
  reset(): void {
    this.top = this.floor;
  }
  /** Makes everything allocated so far permanent (reset() keeps it). */
  pinFloor(): void {
    this.floor = this.top;
  }

  // Views are made fresh from memory.buffer each time: growing the memory detaches older ones.
  u8(ptr: number, length: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, ptr, length);
  }
  u32(ptr: number, length: number): Uint32Array {
    return new Uint32Array(this.memory.buffer, ptr, length);
  }
  f32(ptr: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, length);
  }
  f64(ptr: number, length: number): Float64Array {
    return new Float64Array(this.memory.buffer, ptr, length);
  }
  view(): DataView {
    return new DataView(this.memory.buffer);
  }

  /**
   * Copies of regions, for results that outlive the next kernel call or cross to another thread.
   * (new + set: TypedArray.prototype.slice is about ten times slower on large arrays in Node 20.)
   */
  copyU8(ptr: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    out.set(this.u8(ptr, length));
    return out;
  }
  copyU32(ptr: number, length: number): Uint32Array {
    const out = new Uint32Array(length);
    out.set(this.u32(ptr, length));
    return out;
  }
  copyF64(ptr: number, length: number): Float64Array {
    const out = new Float64Array(length);
    out.set(this.f64(ptr, length));
    return out;
  }
}

export interface Kernels {
  exports: KernelExports;
  arena: Arena;
  /** Which build runs: "custom" when the caller supplied the bytes. */
  simd: CompiledKernels["simd"];
}

/**
 * The kernels compiled, not yet instantiated: what the main thread hands to its workers (a
 * WebAssembly.Module crosses postMessage in browsers and Node's worker_threads without being compiled
 * again), so that a process compiles its build once however many kernel instances it runs.
 */
export interface CompiledKernels {
  module: WebAssembly.Module;
  simd: "plain" | "relaxed" | "custom";
}

export interface LoadKernelsOptions {
  /**
   * "auto" (the default): the plain SIMD build, unless the environment variable WEIGHTSOUP_SIMD (Node)
   * says "relaxed". "plain": always the plain SIMD build. "relaxed": the relaxed build, or an
   * OptionError where the runtime cannot run it. Relaxed SIMD's multiply-add may or may not be fused,
   * as each runtime and CPU decides (Chromium and Node differ on the same machine), so only the plain
   * build gives a page and the CLI the same bits; it is as fast here (bench section 8).
   */
  simd?: "auto" | "plain" | "relaxed";
}

const SIMD_CHOICES = ["auto", "plain", "relaxed"] as const;

/** Each build compiled at most once per thread (WebAssembly.compile runs off the calling thread). */
const compiled = new Map<"plain" | "relaxed", Promise<WebAssembly.Module>>();

/** The embedded build that `options.simd` (and WEIGHTSOUP_SIMD) choose, compiled once and kept. */
export async function compileKernels(options: LoadKernelsOptions = {}): Promise<CompiledKernels> {
  const simd = (await useRelaxed(options.simd)) ? "relaxed" : "plain";
  let module = compiled.get(simd);
  if (!module) {
    module = embeddedBuild(simd).then((bytes) => WebAssembly.compile(bytes));
    compiled.set(simd, module);
    module.catch(() => compiled.delete(simd)); // a failure is not kept: the next call tries again
  }
  return { module: await module, simd };
}

/**
 * Instantiates the kernels with an arena of at most `budget` bytes of wasm memory. `code` is the
 * compiled kernels (from compileKernels, possibly on another thread) or bytes replacing the embedded
 * builds; without it the build `options.simd` chooses is compiled here (once per thread). With
 * `code`, `options.simd` is ignored.
 */
export async function loadKernels(budget: number, code?: Uint8Array | CompiledKernels, options: LoadKernelsOptions = {}): Promise<Kernels> {
  const { module, simd } = code instanceof Uint8Array ? { module: await WebAssembly.compile(code as Uint8Array<ArrayBuffer>), simd: "custom" as const } : (code ?? await compileKernels(options));
  // The kernels import nothing (runtime "stub", no abort/trace/seed). Plain WebAssembly.instantiate,
  // not @assemblyscript/loader's: the loader tests `source instanceof Response`, and in Node the first
  // touch of the global Response loads all of fetch (undici), about 0.1 s of start-up for nothing.
  const exports = (await WebAssembly.instantiate(module, {})).exports as unknown as KernelExports;
  adoptScalarMath(exports);
  const arena = new Arena(exports.memory, exports.heapBase(), budget);
  exports.setScratch(arena.alloc(SCRATCH_BYTES));
  arena.pinFloor();
  return { exports, arena, simd };
}

/**
 * True in the CLI's bundle only (esbuild --define in package.json's build:cli): the .wasm files beside it
 * (dist/kernels.wasm, dist/kernels-relaxed.wasm) come from the same build as its embedded copies.
 */
declare const WEIGHTSOUP_WASM_BESIDE: boolean | undefined;

/**
 * A build's bytes, when a thread first needs them: in the CLI, the .wasm file beside the bundle (a read
 * of under a millisecond, where the embedded copy costs about 20 ms to parse and decode from base64 in
 * JavaScript on Node 20); elsewhere, or without the file, the embedded copy (see embedded.ts).
 */
async function embeddedBuild(build: "plain" | "relaxed"): Promise<Uint8Array<ArrayBuffer>> {
  if (typeof WEIGHTSOUP_WASM_BESIDE !== "undefined" && WEIGHTSOUP_WASM_BESIDE) {
    const { readFile } = await import("node:fs/promises");
    const file = await readFile(new URL(build === "relaxed" ? "./kernels-relaxed.wasm" : "./kernels.wasm", import.meta.url)).catch(() => undefined);
    if (file) return new Uint8Array(file.buffer as ArrayBuffer, file.byteOffset, file.byteLength);
  }
  return build === "relaxed" ? (await import("./embedded-relaxed")).EMBEDDED_RELAXED : (await import("./embedded")).EMBEDDED_PLAIN;
}

/** Whether to load the relaxed build: the option, else WEIGHTSOUP_SIMD; plain unless one asks for relaxed. */
async function useRelaxed(option: LoadKernelsOptions["simd"]): Promise<boolean> {
  let choice: string = option ?? "auto";
  let source = "the loadKernels option simd";
  if (choice === "auto" && IS_NODE && process.env.WEIGHTSOUP_SIMD) {
    choice = process.env.WEIGHTSOUP_SIMD;
    source = "the environment variable WEIGHTSOUP_SIMD";
  }
  if (!(SIMD_CHOICES as readonly string[]).includes(choice)) {
    throw new OptionError("E_OPTION", `${source} is ${JSON.stringify(choice)}; it must be one of ${SIMD_CHOICES.join(", ")}`, { key: source.endsWith("SIMD") ? "WEIGHTSOUP_SIMD" : "simd", value: choice });
  }
  if (choice === "plain" || choice === "auto") return false;
  const supported = await relaxedSupported();
  if (choice === "relaxed" && !supported) {
    throw new OptionError("E_OPTION", `${source} asks for the relaxed-SIMD kernels, but this runtime does not support relaxed SIMD`, { key: source.endsWith("SIMD") ? "WEIGHTSOUP_SIMD" : "simd", value: choice });
  }
  return supported;
}

let relaxedSupport: Promise<boolean> | undefined;

/**
 * Whether this runtime compiles the relaxed build. Chromium (114+) and Node 22+ do as they are.
 * Node 20 (V8 11.3) has relaxed SIMD complete but behind --experimental-wasm-relaxed-simd; V8 reads
 * its wasm feature flags each time it validates or compiles a module, and flags are per process, so
 * switching the flag on here, before compiling, enables it for this thread and every worker thread.
 * The flag only lets V8 accept the relaxed opcodes (no other module changes behaviour), and it is set
 * only when needed and not forced off with WEIGHTSOUP_SIMD=plain. (Node documents that flags changed
 * after start-up may misbehave in general; this one is read at compile time only. One side effect:
 * V8 code caches made in this process before the change stop matching its flag hash.)
 */
function relaxedSupported(): Promise<boolean> {
  return (relaxedSupport ??= (async () => {
    const relaxedWasmBytes = await embeddedBuild("relaxed");
    if (WebAssembly.validate(relaxedWasmBytes)) return true;
    if (!IS_NODE || Number(process.versions.node.split(".")[0]) !== 20) return false;
    const v8 = await import("node:v8");
    v8.setFlagsFromString("--experimental-wasm-relaxed-simd");
    return WebAssembly.validate(relaxedWasmBytes);
  })());
}

function align(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}
