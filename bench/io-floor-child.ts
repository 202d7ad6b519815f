// The I/O floor of a merge, in its own process: every input read in full and an output of the same
// size written, through the engine's own Node I/O (NodeFileSource.readInto, a staged output created
// by NodeOutputFolder, NodeFileSink writes at offsets, the commit's rename), with the engine's read
// sizes (one read per input per chunk of a tensor) and as many chunks in flight as the engine holds
// jobs (workers × JOBS_PER_WORKER); nothing is computed, and no worker or wasm is started.
// argv: OUT_DIR WORKERS CHUNK_BYTES INPUT.safetensors... ; prints {"seconds": I/O time} as JSON.
import { NodeOutputFolder } from "../src/io/node-output";
import { openSink } from "../src/io/sink";
import { NodeFileSource } from "../src/io/source";
import { JOBS_PER_WORKER } from "../src/merge/engine";
import { readHeader } from "../src/model/model";

const [outDir, workers, chunkBytes, ...inputs] = process.argv.slice(2);
const started = performance.now();
const sources = inputs.map((path) => new NodeFileSource(path));
const { tensors } = await readHeader({ kind: "path", path: inputs[0]! }, inputs[0]!);
const layout = [...tensors.values()].map((t) => ({ offset: t.offset, bytes: t.shape.reduce((a, b) => a * b, 1) * 2 }));
const size = await sources[0]!.size();
const head = new Uint8Array(layout[0]!.offset);
await sources[0]!.readInto(0, head);

const out = await NodeOutputFolder.open(outDir!);
const target = await out.createFile("model.safetensors", size, head);
if (target.kind !== "path") throw new Error("expected a file on disk");
// The engine's chunk: input and output bytes of one chunk within CHUNK_BYTES (BF16 in and out here).
const chunk = Math.floor(Number(chunkBytes) / (2 * (inputs.length + 1))) * 2;
const pieces = layout.flatMap(({ offset, bytes }) => Array.from({ length: Math.ceil(bytes / chunk) }, (_, c) => ({ offset: offset + c * chunk, bytes: Math.min(chunk, bytes - c * chunk) })));
let next = 0;
const lane = async () => {
  const sink = openSink(target);
  const buffers = inputs.map(() => new Uint8Array(chunk));
  while (next < pieces.length) {
    const { offset, bytes } = pieces[next++]!;
    await Promise.all(sources.map((s, i) => s.readInto(offset, buffers[i]!.subarray(0, bytes))));
    await sink.write(buffers[0]!.subarray(0, bytes), offset);
  }
  await sink.close();
};
await Promise.all(Array.from({ length: Number(workers) * JOBS_PER_WORKER }, lane));
await Promise.all(sources.map((s) => s.close()));
await out.commit();
process.stdout.write(JSON.stringify({ seconds: (performance.now() - started) / 1000 }) + "\n");
