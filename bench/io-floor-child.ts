// The I/O floor of a merge, in its own process: every input range the merge reads, read once, and its
// output's bytes written, through the engine's own Node I/O (NodeFileSource.readInto, a staged output
// created by NodeOutputFolder, NodeFileSink writes at offsets, the commit's rename), in the engine's
// chunks (chunkElementsFor of the recipe's own plan) with as many chunks in flight as the engine holds
// jobs (workers × JOBS_PER_WORKER). Nothing is computed (the output is the first input's bytes) and no
// worker or wasm is started. Plain input ranges only (no blocks, row maps or LoRA: not in the bench).
// argv: RECIPE.yml OUT_DIR WORKERS; prints {"seconds": time from start to commit, "cpu": CPU seconds of every thread
// (Node's thread pool does the copies) over that time} as JSON.
import { dirname, join } from "node:path";
import { DEFAULT_CHUNK_BYTES, DEFAULT_MEMORY_BUDGET, DEFAULT_SHARD_SIZE, prepare } from "../src/api/merge";
import { DTYPES } from "../src/format/dtypes";
import { NodeFolder } from "../src/io/node-folder";
import { NodeOutputFolder } from "../src/io/node-output";
import { openSink, sinkKey, type OutputSink, type SinkTarget } from "../src/io/sink";
import { NodeFileSource } from "../src/io/source";
import { chunkElementsFor, JOBS_PER_WORKER } from "../src/merge/engine";
import { planShards } from "../src/plan/shards";
import { readRecipe } from "../src/node";

const [recipe, outDir, workers] = process.argv.slice(2);
const started = performance.now();
const cpuAtStart = process.cpuUsage();
const plan = await prepare(await readRecipe(recipe!), (name) => NodeFolder.open(join(dirname(recipe!), name)));
const out = await NodeOutputFolder.open(outDir!);
const sources = new Map<string, NodeFileSource>();
const sourceOf = (path: string) => sources.get(path) ?? sources.set(path, new NodeFileSource(path)).get(path)!;
const bytesOf = (dtype: string) => DTYPES[dtype]!.bits / 8;

interface Piece { reads: { source: NodeFileSource; offset: number; bytes: number }[]; target: SinkTarget; offset: number; bytes: number }
const pieces: Piece[] = [];
for (const shard of planShards(plan.tensors, DEFAULT_SHARD_SIZE, { format: "pt" })) {
  const target = await out.createFile(shard.file, shard.layout.size, shard.layout.head);
  if (target.kind !== "path") throw new Error("expected a file on disk");
  for (const t of shard.tensors.filter((t) => t.outputBytes > 0)) {
    const chunk = chunkElementsFor(t, { memoryBudget: DEFAULT_MEMORY_BUDGET, chunkBytes: DEFAULT_CHUNK_BYTES });
    for (let start = 0; start < t.numel; start += chunk) {
      const count = Math.min(chunk, t.numel - start);
      pieces.push({
        reads: t.inputs.map(({ tensor }) => {
          if (tensor.source.kind !== "path") throw new Error("expected files on disk");
          return { source: sourceOf(tensor.source.path), offset: tensor.offset + start * bytesOf(tensor.dtype), bytes: count * bytesOf(tensor.dtype) };
        }),
        target, offset: shard.layout.offsets.get(t.name)! + start * bytesOf(t.dtype), bytes: count * bytesOf(t.dtype),
      });
    }
  }
}
const largest = Math.max(...pieces.map((p) => Math.max(p.bytes, p.reads.reduce((s, r) => s + r.bytes, 0))));
let next = 0;
const lane = async () => {
  // One buffer per lane, reused like a kernel instance's memory.
  const buffer = new Uint8Array(largest);
  const sinks = new Map<string, OutputSink>();
  while (next < pieces.length) {
    const piece = pieces[next++]!;
    let at = 0;
    await Promise.all(piece.reads.map((r) => { const view = buffer.subarray(at, (at += r.bytes)); return r.source.readInto(r.offset, view); }));
    const key = sinkKey(piece.target);
    const sink = sinks.get(key) ?? sinks.set(key, openSink(piece.target)).get(key)!;
    await sink.write(buffer.subarray(0, piece.bytes), piece.offset);
  }
  await Promise.all([...sinks.values()].map((s) => s.close()));
};
await Promise.all(Array.from({ length: Number(workers) * JOBS_PER_WORKER }, lane));
await Promise.all([...sources.values()].map((s) => s.close()));
await out.commit();
const cpu = process.cpuUsage(cpuAtStart);
process.stdout.write(JSON.stringify({ seconds: (performance.now() - started) / 1000, cpu: (cpu.user + cpu.system) / 1e6 }) + "\n");
