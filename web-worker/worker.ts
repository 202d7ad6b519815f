/**
 * @file The one worker script, for browsers (a module Web Worker) and Node (worker_threads). It owns
 * a kernel instance and a chunk workspace and does whatever job the pool sends: read inputs straight
 * into wasm memory, run the passes, write the output where the job says.
 */
import { expose, transfer } from "comlink";
import { loadKernels } from "../src/kernels/kernels";
import { runTensor } from "../src/merge/run-tensor";
import { ChunkWorkspace, ResidentExecutor } from "../src/merge/workspace";
import { nodeEndpoint } from "../src/pool/endpoint";
import { installErrorTransfer } from "../src/pool/protocol";
import type { WorkerApi } from "../src/pool/worker-api";
import type { Kernels } from "../src/kernels/kernels";
import type { PassResult } from "../src/merge/job";

installErrorTransfer();

let kernels: Kernels | undefined;
let workspace: ChunkWorkspace | undefined;

function ready(): ChunkWorkspace {
  if (!workspace) throw new Error("worker used before init()");
  return workspace;
}

function buffersOf(result: PassResult): ArrayBuffer[] {
  switch (result.kind) {
    case "slerpStats":
    case "maskedL1":
      return [result.partials.buffer as ArrayBuffer];
    case "sample":
      return result.samples.map((s) => s.hist.buffer as ArrayBuffer);
    case "range":
      return result.ranges.map((r) => r.hist.buffer as ArrayBuffer);
  }
}

const api: WorkerApi = {
  async init(memoryBudget, wasm) {
    kernels = await loadKernels(memoryBudget, wasm);
    workspace = new ChunkWorkspace(kernels);
  },
  async runTensor(job) {
    const ws = ready();
    await ws.load(job, 0);
    const exec = new ResidentExecutor(ws);
    await runTensor(job, exec);
    return exec.output ? transfer(exec.output, [exec.output.buffer as ArrayBuffer]) : undefined;
  },
  async runPass(job, chunk, request) {
    const ws = ready();
    await ws.load(job, chunk);
    const result = ws.pass(request);
    return transfer(result, buffersOf(result));
  },
  async runFinal(job, chunk, request) {
    const ws = ready();
    await ws.load(job, chunk);
    const bytes = await ws.final(request);
    return bytes ? transfer(bytes, [bytes.buffer as ArrayBuffer]) : undefined;
  },
  async release() {
    await workspace?.release();
  },
  stats() {
    return { peakMemory: kernels?.arena.peak ?? 0 };
  },
};

if (typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined") {
  expose(api, globalThis as unknown as Worker);
} else {
  // Node: the import stays dynamic so browsers never see a node: module.
  void import("node:worker_threads").then(({ parentPort }) => {
    if (!parentPort) throw new Error("weightsoup's worker script must run as a worker");
    expose(api, nodeEndpoint(parentPort));
  });
}
