// `npm run bench`: every figure measured side by side in one run, on this machine.
//   1. memcpy bandwidth (TypedArray.set on 128 MiB); 1b. the first access to pages read() filled
//   2. each method's kernel throughput (one core, data already in wasm memory) on three 128 MiB
//      float32 tensors, next to the same math as plain TypeScript loops
//   3. an end-to-end file-to-file merge of three ~1 GiB bf16 fine-tunes and a base, next to reading the
//      inputs and writing an output of the same size with the same I/O code, with peak RSS
//   4. the same merges in headless Chromium, from picked files and from the page's model library, next to
//      Node and to Chromium's read floors, with the cores busy meanwhile (bench/browser.ts);  5. the assignment solver against munkres;
//   6. similarity GEMM GFLOP/s;  7. weight matching wall time (3 x 1024 MLP in memory; ~100M-parameter Llama
//      file to file on 1 and 2 workers, with peak RSS: bench/alignment.ts)
//   8. the forward pass's GEMM (linear): GFLOP/s in prefill, GB/s of weights in decode, both builds
//   3b. against the I/O floor (bench/io-floor.ts): linear, task_arithmetic, ties, dare_ties on the same models as
//      whole CLI processes, next to reading the inputs and writing the output with the engine's I/O calls, computing nothing
//   3c. against the disk floor (bench/io-floor.ts, --skip-cold): 3b with the inputs evicted from the page cache before each run
// Options: --quick (smaller sizes, for a smoke run), --keep (keep the generated models), --skip-e2e, --skip-floor (3b),
// --skip-kernels, --skip-assignment (5, 6), --skip-alignment (7), --skip-gemm (8), --skip-forward (9), --skip-sweep (10), --skip-browser (section 4 needs Debian's chromium: CHROMIUM_PATH overrides /usr/bin/chromium).
// Environment: BENCH_ONLY=name[,name] limits section 2 to those methods; BENCH_BASELINE_WASM=path/to/kernels.wasm
// times section 2's cases with that (older) build of the kernels too, alternating with this one.
//   9. the evaluation forward pass (bench/forward.ts): prefill and generation tokens/s on a SmolLM-135M-shaped model, next to PyTorch
//  10. a parameter sweep (bench/sweep.ts): 11 points of a SmolLM-135M-shaped slerp, against 11 × (merge + eval) by hand
//  11. fixed costs (bench/fixed-costs.ts, --skip-fixed): whole `weightsoup merge` processes of the example (~100 MB) and of a
//      2 MB model next to `node -e 0`, and a --profile timeline of the small one
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, open, readFile, rm, writeFile, stat } from "node:fs/promises";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadKernels, type Kernels } from "../src/kernels/kernels";
import { DTYPE_BF16, DTYPE_F32, MATMUL_SCRATCH_BYTES } from "../assembly/layout";
import { ChunkWorkspace, ResidentExecutor } from "../src/merge/workspace";
import { runTensor } from "../src/merge/run-tensor";
import { dareStreamKey, dareThreshold } from "../src/merge/dare";
import type { TensorJob } from "../src/merge/job";
import type { TensorOp } from "../src/plan/plan";
import { linearSumAssignment } from "../src/align/assignment";
import { similarityMatrix, wholeAxis } from "../src/align/similarity";
import { llamaTensors } from "../src/example/models";
import { llamaSpec, mlpSpec } from "../src/align/architectures";
import { checkSpec, type PermutationSpec, type Permutations } from "../src/align/spec";
import { applyPermutations, weightMatching, type Tensor } from "../src/align/weight-matching";
import * as plain from "./plain";
import { geometricBenchCases } from "./geometric-methods";
import { methodBenchCases } from "./methods";
import { forwardSection } from "./forward";
import { alignmentSection } from "./alignment";
import { sweepSection } from "./sweep";
import { fixedCostSection } from "./fixed-costs";
import { e2eModels } from "./e2e-models";
import { ioFloorSection } from "./io-floor";
import { browserSection } from "./browser";

const args = new Set(process.argv.slice(2));
const QUICK = args.has("--quick");
const dir = join(tmpdir(), "weightsoup-bench");
const gb = (bytes: number, seconds: number) => bytes / seconds / 1e9;
const fmt = (x: number, d = 2) => x.toFixed(d);
const line = (s = "") => process.stdout.write(s + "\n");

function best(reps: number, fn: () => void | Promise<void>): Promise<number> {
  return (async () => {
    let bestMs = Infinity;
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      await fn();
      bestMs = Math.min(bestMs, performance.now() - t0);
    }
    return bestMs / 1000;
  })();
}

// ---------------------------------------------------------------------------------------------------
line(`weightsoup benchmark: Node ${process.version}, ${availableParallelism()} cores (${cpus()[0]?.model ?? "?"})`);
line();

const MiB = 1048576;
const TENSOR_BYTES = (QUICK ? 16 : 128) * MiB;
const N = TENSOR_BYTES / 4;

const src = new Float32Array(N), dst = new Float32Array(N);
src.fill(1);
dst.set(src);
const memcpy = gb(TENSOR_BYTES, await best(7, () => dst.set(src)));
line(`1. memcpy (TypedArray.set, ${TENSOR_BYTES / MiB} MiB): ${fmt(memcpy)} GB/s`);
line();

// ---------------------------------------------------------------------------------------------------
await mkdir(dir, { recursive: true });
await firstTouchLine();

/**
 * 1b. What a page of memory costs the first time this process touches it after read() filled it: a
 * merge reads into wasm memory it has never touched, so where that first access is slow (stop 39 found
 * it so on this virtual machine, about 5 us a page) every new page of a worker's footprint costs CPU,
 * and a smaller footprint is faster, not only leaner. Regions of a fresh wasm memory: one read into,
 * then touched a byte per page twice; one written by JS first, then read into and touched.
 */
async function firstTouchLine(): Promise<void> {
  const bytes = (QUICK ? 16 : 64) * MiB, pages = bytes / 4096;
  const file = join(dir, "first-touch.bin");
  await writeFile(file, new Uint8Array(bytes).fill(7));
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536 });
  memory.grow((3 * bytes) / 65536 + 1);
  const region = (k: number) => new Uint8Array(memory.buffer, 65536 + k * bytes, bytes);
  const fh = await open(file, "r");
  const touch = (view: Uint8Array) => {
    const t0 = performance.now();
    let sum = 0;
    for (let i = 0; i < view.length; i += 4096) sum += view[i]!;
    return { us: ((performance.now() - t0) * 1000) / pages, sum };
  };
  try {
    touch(region(2)); // the loop's own warm-up (JIT), on a region read into later
    const readOnly = region(0);
    await fh.read(readOnly, 0, bytes, 0);
    const first = touch(readOnly).us, again = touch(readOnly).us;
    const written = region(1);
    written.fill(1);
    await fh.read(written, 0, bytes, 0);
    const afterWrite = touch(written).us;
    line(`1b. first access to memory read() filled (${bytes / MiB} MiB, a byte per 4 KiB page): ${fmt(first, 2)} us a page the first time, ${fmt(again, 3)} the second, ${fmt(afterWrite, 3)} where JS wrote the pages first`);
  } finally {
    await fh.close();
    await rm(file, { force: true });
  }
}

if (!args.has("--skip-kernels")) await kernelSection();

async function kernelSection(): Promise<void> {
const names = ["base", "a", "b"];
const arrays: Float32Array[] = [];
for (const [m, name] of names.entries()) {
  const a = new Float32Array(N);
  let s = 0x9e3779b9 ^ (m * 7919);
  for (let i = 0; i < N; i++) {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    const u = (s >>> 0) / 4294967296 - 0.5;
    a[i] = m === 0 ? u * 0.1 : arrays[0]![i]! + u * 0.004 * (1 + Math.sin(i * 1e-4));
  }
  arrays.push(a);
  await writeFile(join(dir, `kernel-${name}.f32`), new Uint8Array(a.buffer));
}

function job(op: TensorOp, inputs: number): TensorJob {
  return {
    index: 0, name: "bench.weight", numel: N, op, loadDtype: undefined, seed: 1, chunkElements: N,
    inputs: names.slice(0, inputs).map((name) => ({ source: { kind: "path" as const, path: join(dir, `kernel-${name}.f32`) }, file: name, tensor: "bench.weight", offset: 0, dtype: "F32", shape: [N] })),
    output: { target: { kind: "memory" }, offset: 0, dtype: "F32" },
  };
}

const kernels = await loadKernels(2048 * MiB - 65536);
const ws = new ChunkWorkspace(kernels);
const baselineWasm = process.env.BENCH_BASELINE_WASM;
const baselineWs = baselineWasm ? new ChunkWorkspace(await loadKernels(2048 * MiB - 65536, new Uint8Array(await readFile(baselineWasm)))) : undefined;
const w3 = [Math.fround(0.4), Math.fround(0.3), Math.fround(0.3)];
const cases: { name: string; inputs: number; op: TensorOp; plain: () => void }[] = [
  { name: "linear", inputs: 3, op: { kind: "sum", weights: w3, normalize: true, divisor: 1 }, plain: () => plain.linear(arrays, w3, dst) },
  { name: "slerp", inputs: 2, op: { kind: "slerp", t: 0.3 }, plain: () => plain.slerp(arrays[0]!, arrays[1]!, 0.3, dst) },
  {
    name: "task_arithmetic", inputs: 3,
    op: { kind: "taskVector", consensus: false, sparsify: undefined, normalize: false, rescale: false, lambda: 0.8, divisor: 1, tasks: [{ weight: 1, density: 1 }, { weight: 0.5, density: 1 }] },
    plain: () => plain.taskArithmetic(arrays[0]!, arrays.slice(1), [1, 0.5], 0.8, dst),
  },
  {
    name: "ties", inputs: 3,
    op: { kind: "taskVector", consensus: true, sparsify: "magnitude", normalize: true, rescale: false, lambda: 1, divisor: 1, tasks: [{ weight: 1, density: 0.5 }, { weight: 0.7, density: 0.3 }] },
    plain: () => plain.ties(arrays[0]!, arrays.slice(1), [1, Math.fround(0.7)], [0.5, 0.3], dst),
  },
  {
    name: "dare_ties", inputs: 3,
    op: { kind: "taskVector", consensus: true, sparsify: "random", normalize: false, rescale: true, lambda: 1, divisor: 1, tasks: [{ weight: 1, density: 0.5 }, { weight: 0.7, density: 0.5 }] },
    plain: () => plain.dareTies(arrays[0]!, arrays.slice(1), [1, Math.fround(0.7)], [dareStreamKey(1, "bench.weight", 0), dareStreamKey(1, "bench.weight", 1)], dareThreshold(0.5), dst),
  },
];

cases.push(...methodBenchCases({ arrays, dst, seed: 1, name: "bench.weight" }));
const geometric = geometricBenchCases({ arrays, dst });
cases.push(...geometric);

line(`2. Kernel throughput, one core, float32 inputs already in memory (${names.length} x ${TENSOR_BYTES / MiB} MiB; slerp uses 2)`);
line(`   GB/s of input; "of memcpy" compares with the memcpy bandwidth above${baselineWs ? `; "baseline": ${baselineWasm}, timed alternately` : ""}`);
line(`   ${"method".padEnd(16)} ${"wasm SIMD".padStart(10)} ${"plain TS".padStart(10)} ${"speed-up".padStart(9)} ${"of memcpy".padStart(10)}${baselineWs ? `${"baseline".padStart(10)} ${"ratio".padStart(6)}` : ""}`);
const kernelResults: Record<string, number> = {};
// BENCH_ONLY=name[,name...] times only those methods (to measure one kernel quickly).
const only = process.env.BENCH_ONLY?.split(",");
for (const c of cases) {
  if (only && !only.includes(c.name)) continue;
  const j = job(c.op, c.inputs);
  await ws.load(j, 0);
  if (baselineWs) await baselineWs.load(j, 0);
  const bytes = c.inputs * TENSOR_BYTES;
  let wasmSeconds = Infinity, baseSeconds = Infinity;
  for (let r = 0; r < (QUICK ? 3 : 5); r++) {
    wasmSeconds = Math.min(wasmSeconds, await best(1, async () => { await runTensor(j, new ResidentExecutor(ws)); }));
    if (baselineWs) baseSeconds = Math.min(baseSeconds, await best(1, async () => { await runTensor(j, new ResidentExecutor(baselineWs)); }));
  }
  const wasm = gb(bytes, wasmSeconds), base = gb(bytes, baseSeconds);
  const ts = gb(bytes, await best(QUICK ? 1 : 2, c.plain));
  kernelResults[c.name] = wasm;
  line(`   ${c.name.padEnd(16)} ${fmt(wasm).padStart(10)} ${fmt(ts).padStart(10)} ${(fmt(wasm / ts, 1) + "x").padStart(9)} ${(fmt((100 * wasm) / memcpy, 0) + "%").padStart(10)}${baselineWs ? `${fmt(base).padStart(10)} ${(fmt(wasm / base) + "x").padStart(6)}` : ""}`);
}
if (!only) line(`   targets: linear and task_arithmetic >= 50% of memcpy (${fmt(kernelResults.linear! / memcpy * 100, 0)}%, ${fmt(kernelResults.task_arithmetic! / memcpy * 100, 0)}%); ties >= 3 GB/s (${fmt(kernelResults.ties!)})`);
if (!only) line(`   target: geometric methods except karcher >= 1 GB/s (${geometric.filter((c) => c.name !== "karcher").map((c) => `${c.name} ${fmt(kernelResults[c.name]!)}`).join(", ")})`);
await ws.release();
await baselineWs?.release();
arrays.length = 0;
line();
}

// ---------------------------------------------------------------------------------------------------
const needModels = !args.has("--skip-e2e") || !args.has("--skip-floor");
const e2eSet = needModels ? await e2eModels(dir, QUICK) : undefined;
if (e2eSet && !args.has("--skip-e2e")) {
  const { dir: e2e, models, recipes, params, modelBytes, genSeconds } = e2eSet;
  line(`3. End to end, file to file: a base and three fine-tunes, Llama-shaped, ${(params / 1e6).toFixed(0)}M parameters, BF16, ${fmt(modelBytes / 2 ** 30)} GiB each`);
  line(`   (models generated in ${fmt(genSeconds, 1)} s; inputs in the page cache; each run starts after \`sync\`; workers = ${availableParallelism()})`);
  line(`   "I/O only" reads every input and writes an output of the same size with the same code, computing nothing`);
  const child = fileURLToPath(new URL("./e2e-child.js", import.meta.url));
  const run = (recipe: string, ioOnly: boolean) => {
    // Start every run with no dirty pages waiting for writeback, so no run pays for an earlier one's output.
    spawnSync("sync");
    const r = spawnSync(process.execPath, [child, join(e2e, `${recipe}.yml`), join(e2e, "out"), ioOnly ? "1" : "0", String(availableParallelism())], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`${recipe}: ${r.stderr}`);
    return JSON.parse(r.stdout) as { wall: number; seconds: number; inputBytes: number; outputBytes: number; peakRss: number; peakWorkerMemory: number };
  };
  run("linear", true); // warm the page cache
  // This machine's I/O speed drifts from minute to minute, so each method is measured in alternation
  // with the I/O-only run (three pairs) and compared best against best.
  line(`   ${"run".padEnd(18)} ${"seconds".padStart(8)} ${"GB/s in".padStart(8)} ${"I/O only".padStart(9)} ${"vs I/O".padStart(7)} ${"peak RSS".padStart(9)}`);
  for (const name of Object.keys(recipes)) {
    const io: ReturnType<typeof run>[] = [], merged: ReturnType<typeof run>[] = [];
    for (let pair = 0; pair < 3; pair++) {
      io.push(run(name, true));
      merged.push(run(name, false));
    }
    const bestIo = io.sort((a, b) => a.seconds - b.seconds)[0]!, r = merged.sort((a, b) => a.seconds - b.seconds)[0]!;
    const rss = Math.max(...merged.map((m) => m.peakRss));
    line(`   ${name.padEnd(18)} ${fmt(r.seconds).padStart(8)} ${fmt(gb(r.inputBytes, r.seconds)).padStart(8)} ${(fmt(bestIo.seconds) + " s").padStart(9)} ${(fmt(r.seconds / bestIo.seconds) + "x").padStart(7)} ${(fmt(rss / MiB, 0) + " MB").padStart(9)}`);
  }
  line(`   targets: end to end within 1.5x of the I/O time; peak RSS <= 512 MB`);
  line();
  if (!args.has("--skip-browser")) await browserSection(e2e, models, recipes, (name) => run(name, false).seconds, line);
}
if (e2eSet && !args.has("--skip-floor")) ioFloorSection(e2eSet, line);
if (e2eSet && !args.has("--skip-floor") && !args.has("--skip-cold")) ioFloorSection(e2eSet, line, { cold: true });
if (e2eSet && !args.has("--keep")) await rm(e2eSet.dir, { recursive: true, force: true });
if (!args.has("--skip-assignment")) await assignmentSection();

/**
 * The linear assignment solver against the `munkres` package (an O(n^3) Hungarian in TypeScript) on
 * the same matrices: uniform random costs, and re-basin-like similarities S = A·Bᵀ where B's rows are
 * a planted permutation of A's plus noise (maximised; munkres gets -S).
 */
async function assignmentSection(): Promise<void> {
  const { munkres } = await import("munkres");
  const sizes = QUICK ? [256, 512] : [512, 1024, 2048, 4096];
  let seed = 0x2545f491;
  const random = () => {
    seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
    return (seed >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  line(`5. Linear assignment (assembly/assignment.ts) vs the munkres package, same matrices, best of ${QUICK ? 1 : 2}`);
  line(`   ${"n".padStart(6)} ${"matrix".padEnd(9)} ${"weightsoup".padStart(11)} ${"munkres".padStart(10)} ${"speed-up".padStart(9)}  same total`);
  for (const n of sizes) {
    for (const kind of ["uniform", "planted"] as const) {
      const data = new Float64Array(n * n);
      if (kind === "uniform") {
        for (let k = 0; k < data.length; k++) data[k] = random();
      } else {
        const width = 64;
        const a = Float64Array.from({ length: n * width }, normal);
        const perm = Array.from({ length: n }, (_, i) => i);
        for (let i = n - 1; i > 0; i--) { const j = Math.floor(random() * (i + 1)); [perm[i], perm[j]] = [perm[j]!, perm[i]!]; }
        const b = new Float64Array(n * width);
        for (let i = 0; i < n; i++) for (let k = 0; k < width; k++) b[i * width + k] = a[perm[i]! * width + k]! + 0.3 * normal();
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
          let dot = 0;
          for (let k = 0; k < width; k++) dot += a[i * width + k]! * b[j * width + k]!;
          data[i * n + j] = dot;
        }
      }
      const maximize = kind === "planted";
      const rowsOf = () => Array.from({ length: n }, (_, i) => Array.from(data.subarray(i * n, (i + 1) * n), (x) => (maximize ? -x : x)));
      let ours = Infinity, theirs = Infinity, oursTotal = 0, theirsTotal = 0;
      for (let rep = 0; rep < (QUICK ? 1 : 2); rep++) {
        let t0 = performance.now();
        const r = await linearSumAssignment({ rows: n, cols: n, data }, { maximize });
        ours = Math.min(ours, performance.now() - t0);
        oursTotal = r.total;
        const rows = rowsOf();
        t0 = performance.now();
        const pairs = munkres(rows);
        theirs = Math.min(theirs, performance.now() - t0);
        theirsTotal = pairs.reduce((sum, [i, j]) => sum + data[i * n + j]!, 0);
      }
      const same = Math.abs(oursTotal - theirsTotal) <= 1e-9 * Math.max(1, Math.abs(oursTotal));
      line(`   ${String(n).padStart(6)} ${kind.padEnd(9)} ${(fmt(ours, 1) + " ms").padStart(11)} ${(fmt(theirs, 1) + " ms").padStart(10)} ${(fmt(theirs / ours, 1) + "x").padStart(9)}  ${same ? "yes" : `NO (${oursTotal} vs ${theirsTotal})`}`);
    }
  }
  line(`   target: at least 2x faster than munkres at n = 2048 and 4096`);
  line();
}

if (!args.has("--skip-assignment")) await similaritySection();

/** The similarity GEMM (S = A·Bᵀ over n x k unfoldings) in GFLOP/s, next to the same sum as plain TypeScript. */
async function similaritySection(): Promise<void> {
  const cases = QUICK ? [[256, 1024]] : [[1024, 4096], [2048, 2048], [4096, 1024]];
  line(`6. Similarity matrices for weight matching (assembly/gemm.ts), S (n x n) = A·Bᵀ with A, B n x k f32, streamed through 4 MiB windows; 2·n²·k flops`);
  line(`   ${"n".padStart(6)} ${"k".padStart(6)} ${"wasm SIMD".padStart(12)} ${"plain TS".padStart(12)} ${"speed-up".padStart(9)}`);
  for (const [n, k] of cases) {
    const a = Float32Array.from({ length: n * k }, (_, i) => Math.sin(i) * 0.5), b = Float32Array.from({ length: n * k }, (_, i) => Math.cos(i * 0.7) * 0.5);
    const flops = 2 * n * n * k;
    const wasm = await best(QUICK ? 1 : 2, async () => { await similarityMatrix(n, [wholeAxis([n, k], a, b, 0)]); });
    // Plain TS on a slice of the rows (the full matrix would take minutes), scaled to the same work.
    const rows = Math.max(4, Math.floor(n / 16));
    const plainSeconds = await best(1, () => {
      const out = new Float32Array(rows * n);
      for (let i = 0; i < rows; i++) for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let t = 0; t < k; t++) sum += a[i * k + t]! * b[j * k + t]!;
        out[i * n + j] = sum;
      }
    });
    const plainRate = (2 * rows * n * k) / plainSeconds / 1e9, wasmRate = flops / wasm / 1e9;
    line(`   ${String(n).padStart(6)} ${String(k).padStart(6)} ${(fmt(wasmRate, 1) + " GFLOP/s").padStart(12)} ${(fmt(plainRate, 1) + " GFLOP/s").padStart(12)} ${(fmt(wasmRate / plainRate, 1) + "x").padStart(9)}`);
  }
  line();
}

if (!args.has("--skip-alignment")) await alignmentSection(dir, QUICK, line);
if (!args.has("--skip-forward")) await forwardSection(dir, QUICK, line, new URL("../../dist/worker.js", import.meta.url));
if (!args.has("--skip-sweep")) await sweepSection(dir, QUICK, line, new URL("../../dist/worker.js", import.meta.url));
if (!args.has("--skip-fixed")) await fixedCostSection(dir, QUICK, line);

if (!args.has("--skip-gemm")) await gemmSection();

/**
 * The forward pass's GEMM (assembly/matmul.ts, `linear`: Y = X·Wᵀ, W read in place) on SmolLM-135M's
 * shapes, one core, plain and relaxed-SIMD builds, F32 and BF16 weights; next to the similarity GEMM
 * (accumulateProduct) on the same f32 product, and, for decode (m = 1, memory-bound), next to memcpy
 * of the same number of bytes as the weights streamed.
 */
async function gemmSection(): Promise<void> {
  const builds: { name: "plain" | "relaxed"; kernels: Kernels | undefined }[] = [];
  for (const name of ["plain", "relaxed"] as const) {
    builds.push({ name, kernels: await loadKernels(1024 * MiB, undefined, { simd: name }).catch(() => undefined) });
  }
  const dtypes = [{ name: "F32", code: DTYPE_F32, bytes: 4 }, { name: "BF16", code: DTYPE_BF16, bytes: 2 }];
  const reps = (flops: number) => Math.max(QUICK ? 2 : 5, Math.min(QUICK ? 5 : 30, Math.round(1e10 / flops)));

  /** Best seconds of one call of `linear` with random data in `kernels`' memory (or of accumulateProduct). */
  const time = async (kernels: Kernels, m: number, k: number, n: number, dtype: { code: number; bytes: number }, similarity = false): Promise<number> => {
    const { exports, arena } = kernels;
    arena.reset();
    const x = arena.alloc(m * k * 4), w = arena.alloc(n * k * dtype.bytes), y = arena.alloc(m * n * 4), scratch = arena.alloc(MATMUL_SCRATCH_BYTES);
    const xs = arena.f32(x, m * k);
    for (let i = 0; i < xs.length; i++) xs[i] = Math.sin(i) * 0.5;
    const ws = arena.u32(w, (n * k * dtype.bytes) / 4);
    let r = 0x2545f491;
    // Random signs and mantissas with the exponent held at 2^-7 in both halves of a word, so F32 and BF16 both read as ordinary (not subnormal) values.
    for (let i = 0; i < ws.length; i++) { r ^= r << 13; r ^= r >>> 17; r ^= r << 5; ws[i] = (r & 0x807f807f) | 0x3c003c00; }
    const call = similarity ? () => exports.accumulateProduct(x, w, m, n, k, y) : () => exports.linear(x, m, k, w, dtype.code, n, y, 0, scratch);
    return best(reps(2 * m * n * k), call);
  };

  line(`8. Forward-pass GEMM (assembly/matmul.ts, linear: Y = X·Wᵀ with W read in place), one core, SmolLM-135M shapes; 2·m·n·k flops`);
  line(`   ${"".padEnd(34)} ${"weights".padEnd(8)} ${"plain".padStart(14)} ${"relaxed".padStart(14)}`);
  for (const [label, m, k, n] of [["prefill", 512, 576, 1536], ["lm_head", 128, 576, 49152]] as const) {
    for (const dtype of dtypes) {
      const rates: string[] = [];
      for (const b of builds) rates.push(b.kernels ? `${fmt((2 * m * n * k) / (await time(b.kernels, m, k, n, dtype)) / 1e9, 1)} GFLOP/s` : "n/a");
      line(`   ${`${label} m=${m} k=${k} n=${n}`.padEnd(34)} ${dtype.name.padEnd(8)} ${rates[0]!.padStart(14)} ${rates[1]!.padStart(14)}`);
    }
  }
  const plainKernels = builds[0]!.kernels!;
  const similarity = (2 * 512 * 1536 * 576) / (await time(plainKernels, 512, 576, 1536, dtypes[0]!, true)) / 1e9;
  line(`   ${"accumulateProduct (gemm.ts), same".padEnd(34)} ${"F32".padEnd(8)} ${(fmt(similarity, 1) + " GFLOP/s").padStart(14)}   (the similarity GEMM, m=512 k=576 n=1536)`);
  line(`   decode, m=1 k=576 n=49152 (lm_head): GB/s of weights streamed, next to memcpy (TypedArray.set) of as many bytes`);
  for (const dtype of dtypes) {
    const bytes = 576 * 49152 * dtype.bytes;
    const rates: string[] = [];
    for (const b of builds) rates.push(b.kernels ? `${fmt(gb(bytes, await time(b.kernels, 1, 576, 49152, dtype)), 1)} GB/s` : "n/a");
    const from = new Uint8Array(bytes).fill(1), to = new Uint8Array(bytes);
    const copy = gb(bytes, await best(QUICK ? 3 : 10, () => to.set(from)));
    line(`   ${`decode m=1, ${fmt(bytes / MiB, 0)} MiB of weights`.padEnd(34)} ${dtype.name.padEnd(8)} ${rates[0]!.padStart(14)} ${rates[1]!.padStart(14)}   memcpy ${fmt(copy, 1)} GB/s`);
  }
  line(`   target: about 25 GFLOP/s per core in prefill (the forward pass at 150 tokens/s on 2 cores)`);
  line();
}

if (!args.has("--keep")) await rm(dir, { recursive: true, force: true });
