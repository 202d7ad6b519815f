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
import type { PassResult, TensorJob } from "../src/merge/job";
import { WeightsoupError, WorkerError } from "../src/errors";
import { EvalSession } from "../src/eval/session";
import { Generator } from "../src/eval/generator";
import { copyBlobToFile } from "../src/io/library-copy";

installErrorTransfer();

/**
 * Each kernel instance (its own wasm memory) holds one job; with two, one job's reads and writes
 * proceed while the other computes. Together they stay within the worker's memory budget.
 */
const instances: { kernels: Kernels; workspace: ChunkWorkspace }[] = [];
let evaluation: { kernels: Kernels; session: EvalSession } | undefined;
let generation: Generator | undefined;

/** Runs `fn` with the evaluation session; failures come back typed, as for merge jobs. */
function withSession<T>(what: string, fn: (s: EvalSession) => Promise<T> | T): Promise<T> {
  return typed(what, () => {
    if (!evaluation) throw new Error("evaluation used before evalOpen()");
    return fn(evaluation.session);
  });
}

/** Runs `fn`; an error that is not already typed is a bug, reported as E_WORKER with its stack. */
async function typed<T>(what: string, fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof WeightsoupError) throw e;
    const error = new WorkerError("E_WORKER", `${what}: the worker failed: ${e instanceof Error ? e.message : String(e)}`, {}, { cause: e });
    if (e instanceof Error && e.stack) error.stack = e.stack;
    throw error;
  }
}
const free: ChunkWorkspace[] = [];

/**
 * Runs `fn` for a job with a workspace of its own (the pool never sends more jobs than there are).
 * Whatever fails comes back typed: an error that is not already a WeightsoupError is a bug, reported
 * as E_WORKER with the tensor it happened on and its own stack (for --debug).
 */
async function withWorkspace<T>(job: TensorJob, fn: (ws: ChunkWorkspace) => Promise<T>): Promise<T> {
  const ws = free.pop();
  try {
    if (!ws) throw new Error(instances.length ? "more jobs in flight than workspaces" : "worker used before init()");
    return await fn(ws);
  } catch (e) {
    if (e instanceof WeightsoupError) throw e;
    const error = new WorkerError("E_WORKER", `tensor "${job.name}": the worker failed: ${e instanceof Error ? e.message : String(e)}`, { tensor: job.name }, { cause: e });
    if (e instanceof Error && e.stack) error.stack = e.stack;
    throw error;
  } finally {
    if (ws) free.push(ws);
  }
}

function buffersOf(result: PassResult): ArrayBuffer[] {
  switch (result.kind) {
    case "slerpStats":
    case "maskedL1":
    case "sceSquares":
    case "ramCounts":
      return [result.partials.buffer as ArrayBuffer];
    case "sceNonzero":
    case "sceSelect":
      return [];
    case "gram":
    case "diagnose":
      return [result.partials.buffer as ArrayBuffer];
    case "fusionKL":
      return [result.kl.buffer as ArrayBuffer];
    case "sample":
      return result.samples.map((s) => s.hist.buffer as ArrayBuffer);
    case "range":
      return result.ranges.map((r) => r.hist.buffer as ArrayBuffer);
  }
}

const api: WorkerApi = {
  async init(memoryBudget, jobs, wasm) {
    try {
      for (let i = 0; i < jobs; i++) {
        const kernels = await loadKernels(Math.floor(memoryBudget / jobs / 65536) * 65536, wasm);
        const workspace = new ChunkWorkspace(kernels);
        instances.push({ kernels, workspace });
        free.push(workspace);
      }
    } catch (e) {
      if (e instanceof WeightsoupError) throw e;
      throw new WorkerError("E_WORKER", `the worker could not load its kernels: ${e instanceof Error ? e.message : String(e)}`, {}, { cause: e });
    }
  },
  runTensor(job) {
    return withWorkspace(job, async (ws) => {
      await ws.load(job, 0);
      const exec = new ResidentExecutor(ws);
      await runTensor(job, exec);
      return exec.output ? transfer(exec.output, [exec.output.buffer as ArrayBuffer]) : undefined;
    });
  },
  runPass(job, chunk, request) {
    return withWorkspace(job, async (ws) => {
      await ws.load(job, chunk);
      const result = ws.pass(request);
      return transfer(result, buffersOf(result));
    });
  },
  runFinal(job, chunk, request) {
    return withWorkspace(job, async (ws) => {
      await ws.load(job, chunk);
      const bytes = await ws.final(request);
      return bytes ? transfer(bytes, [bytes.buffer as ArrayBuffer]) : undefined;
    });
  },
  async release() {
    await Promise.all(instances.map((i) => i.workspace.release()));
    await evaluation?.session.close();
  },
  async evalOpen(memoryBudget) {
    await evaluation?.session.close();
    evaluation = undefined;
    const kernels = await loadKernels(Math.floor(memoryBudget / 65536) * 65536).catch((e: unknown) => {
      if (e instanceof WeightsoupError) throw e; // a budget too small for the kernels is the caller's to fix
      throw new WorkerError("E_WORKER", `the worker could not load its kernels: ${e instanceof Error ? e.message : String(e)}`, {}, { cause: e });
    });
    evaluation = { kernels, session: new EvalSession(kernels) };
  },
  evalSequences(sequences) {
    return withSession("setting the sequences", (s) => s.setSequences(sequences));
  },
  evalEmbed(model, spec, embed, positions) {
    return withSession(`${model}: embeddings`, (s) => s.embed(model, spec, embed, positions));
  },
  evalLayer(model, spec, layer, weights) {
    return withSession(`${model}: layer ${layer}`, (s) => s.layer(model, spec, layer, weights));
  },
  evalFinalNorm(model, spec, norm, bias) {
    return withSession(`${model}: final norm`, (s) => s.finalNorm(model, spec, norm, bias));
  },
  evalFork(from, to, hidden) {
    return withSession(`${to}: copy of ${from}`, (s) => s.fork(from, to, hidden));
  },
  evalScore(model, lmHead, against) {
    return withSession(`${model}: scoring`, async (s) => {
      const scores = await s.score(model, lmHead, against);
      return transfer(scores, [scores.nll.buffer as ArrayBuffer, ...scores.against.flatMap((a) => [a.kl.buffer as ArrayBuffer, a.agree.buffer as ArrayBuffer])]);
    });
  },
  evalLogits(model, lmHead) {
    return withSession(`${model}: logits`, async (s) => {
      const z = await s.logits(model, lmHead);
      return transfer(z, [z.buffer as ArrayBuffer]);
    });
  },
  genLoad(memoryBudget, spec, weights, maxLength) {
    return typed("loading the model for generation", async () => {
      generation = undefined;
      generation = new Generator(await loadKernels(Math.floor(memoryBudget / 65536) * 65536));
      await generation.load(spec, weights, maxLength);
    });
  },
  genRun(prompt, maxNew, sampling, stop, onToken) {
    return typed("generating", () => {
      if (!generation) throw new Error("generation used before genLoad()");
      const out = generation.run(prompt, maxNew, sampling, stop, (id) => void onToken(id));
      return transfer(out, [out.buffer as ArrayBuffer]);
    });
  },
  copyToLibrary(blob, target, name, onProgress) {
    return typed(`${name}: copying it into the model library`, () => copyBlobToFile(blob, target, name, (bytes) => void onProgress(bytes)));
  },
  stats() {
    return { peakMemory: instances.reduce((sum, i) => sum + i.kernels.arena.peak, 0) + (evaluation?.kernels.arena.peak ?? 0) };
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
