/**
 * @file The one worker script, for browsers (a module Web Worker) and Node (worker_threads). It owns
 * a kernel instance and a chunk workspace and does whatever job the pool sends: read inputs straight
 * into wasm memory, run the passes, write the output where the job says.
 */
import { expose, transfer } from "comlink";
import { loadKernels } from "../src/kernels/kernels";
import { nodeEndpoint } from "../src/pool/endpoint";
import { installErrorTransfer } from "../src/pool/protocol";
import { receivingEndpoint } from "../src/pool/shared-handles";
import type { WorkerApi } from "../src/pool/worker-api";
import type { CompiledKernels, Kernels } from "../src/kernels/kernels";
import type { PassResult } from "../src/merge/job";
import { WeightsoupError, WorkerError } from "../src/errors";
import { EvalSession } from "../src/eval/session";
import { Generator } from "../src/eval/generator";
import { MergeHost } from "../src/pool/merge-host";
import { AlignmentWorker } from "../src/align/worker-tensors";
import { copyBlobToFile, sharesWrites } from "../src/io/library-copy";
import { readSyncInWorker } from "../src/io/source";

installErrorTransfer();

/** The kernel instances merge jobs run in. */
const merges = new MergeHost();
/** The kernels init() was sent (compiled by the pool): evaluation and generation instantiate them too. */
let kernelCode: CompiledKernels | Uint8Array | undefined;
let evaluation: { kernels: Kernels; session: EvalSession } | undefined;
let generation: Generator | undefined;
let alignment: AlignmentWorker | undefined;

/** Runs `fn` with the alignment state; failures come back typed, as for merge jobs. */
function withAlignment<T>(what: string, fn: (a: AlignmentWorker) => Promise<T> | T): Promise<T> {
  return typed(what, () => {
    if (!alignment) throw new Error("alignment used before alignOpen()");
    return fn(alignment);
  });
}

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
function buffersOf(result: PassResult): ArrayBuffer[] {
  switch (result.kind) {
    case "slerpStats":
    case "maskedL1":
    case "sceSquares":
    case "ramCounts":
      return [result.partials.buffer as ArrayBuffer];
    case "sceSample":
      return [result.sample.buffer as ArrayBuffer];
    case "sceBracket":
      return result.candidates ? [result.candidates.buffer as ArrayBuffer] : [];
    case "sceNonzero":
    case "sceSelect":
      return [];
    case "gram":
    case "diagnose":
      return [result.partials.buffer as ArrayBuffer];
    case "fusionKL":
      return [result.kl.buffer as ArrayBuffer];
    case "sample":
      return result.samples.map((s) => ("hist" in s ? s.hist : s.pairs).buffer as ArrayBuffer);
    case "range":
      return result.ranges.map((r) => ("hist" in r ? r.hist : r.pairs).buffer as ArrayBuffer);
  }
}

const api: WorkerApi = {
  init(memoryBudget, jobs, wasm) {
    kernelCode = wasm;
    return merges.init(memoryBudget, jobs, wasm);
  },
  async runTensor(job) {
    const outcome = await merges.runTensor(job);
    return outcome.bytes ? transfer(outcome, [outcome.bytes.buffer as ArrayBuffer]) : outcome;
  },
  async runPass(job, chunk, request, hold) {
    const result = await merges.runPass(job, chunk, request, hold);
    return transfer(result, buffersOf(result));
  },
  async runFinal(job, chunk, request, hold) {
    const outcome = await merges.runFinal(job, chunk, request, hold);
    return outcome.bytes ? transfer(outcome, [outcome.bytes.buffer as ArrayBuffer]) : outcome;
  },
  releaseHold(hold) {
    merges.releaseHold(hold);
  },
  async release() {
    await merges.release();
    await evaluation?.session.close();
  },
  async evalOpen(memoryBudget) {
    await evaluation?.session.close();
    evaluation = undefined;
    const kernels = await loadKernels(Math.floor(memoryBudget / 65536) * 65536, kernelCode).catch((e: unknown) => {
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
      generation = new Generator(await loadKernels(Math.floor(memoryBudget / 65536) * 65536, kernelCode));
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
  alignOpen(memoryBudget, cacheBytes, tensors) {
    return typed("opening alignment", async () => {
      alignment = undefined;
      alignment = new AlignmentWorker(await loadKernels(Math.floor(memoryBudget / 65536) * 65536, kernelCode), tensors, cacheBytes);
    });
  },
  alignRows(n, blocks, u0, u1) {
    return withAlignment("similarity rows", async (a) => {
      const rows = await a.rows(n, blocks, u0, u1);
      return transfer(rows, [rows.buffer as ArrayBuffer]);
    });
  },
  alignDiagonal(blocks) {
    return withAlignment("diagonal sums", (a) => a.diagonal(blocks));
  },
  alignBestResponse(n, blocks, current) {
    return withAlignment("a group's best response", (a) => a.bestResponse(n, blocks, current));
  },
  alignAssign(n, scores) {
    return withAlignment("an assignment", (a) => a.assign(n, scores));
  },
  alignStats() {
    if (!alignment) throw new WorkerError("E_WORKER", "alignment used before alignOpen()", {});
    return alignment.stats();
  },
  async alignClose() {
    alignment = undefined;
  },
  copyToLibrary(blob, target, name, onProgress, part) {
    return typed(`${name}: copying it into the model library`, () => copyBlobToFile(blob, target, name, (bytes) => void onProgress(bytes), part));
  },
  librarySharesWrites(target) {
    return typed("probing the model library", () => sharesWrites(target));
  },
  stats() {
    return { peakMemory: merges.peakMemory() + (evaluation?.kernels.arena.peak ?? 0), bytesRead: merges.bytesRead() };
  },
};

if (typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined") {
  expose(api, receivingEndpoint(globalThis as unknown as Worker));
} else {
  // Node: the import stays dynamic so browsers never see a node: module.
  void Promise.all([import("node:worker_threads"), import("node:fs")]).then(([{ parentPort }, { readSync }]) => {
    if (!parentPort) throw new Error("weightsoup's worker script must run as a worker");
    readSyncInWorker(readSync);
    expose(api, nodeEndpoint(parentPort));
  });
}
