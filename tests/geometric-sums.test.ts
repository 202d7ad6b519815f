// The geometric methods' whole-tensor sums (Gram matrices per tile, per row and per column) do not
// depend on how a tensor is cut into chunks: every chunking gives the same float64 bits, and those are
// the plain sums (float64, index order) to rounding. Values span many binades, so a different order of
// additions would show in the bits.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { TILE } from "../assembly/layout";
import { loadKernels } from "../src/kernels/kernels";
import { gramTotals } from "../src/merge/geometric";
import { ChunkWorkspace } from "../src/merge/workspace";
import type { TensorJob } from "../src/merge/job";
import type { VectorLayout } from "../src/plan/geometric";
import { removeDir, tempDir, uniform } from "./helpers/fixtures";

const ROWS = 37, COLS = 700, N = ROWS * COLS;
let dir: string;
const arrays: Float32Array[] = [];

before(async () => {
  dir = await tempDir();
  for (let m = 0; m < 3; m++) {
    const a = Float32Array.from({ length: N }, (_, i) => (uniform(m + 90, i) - 0.5) * 2 ** Math.floor(40 * uniform(m + 95, i) - 20));
    arrays.push(a);
    await writeFile(join(dir, `m${m}.f32`), new Uint8Array(a.buffer));
  }
});
after(async () => { await removeDir(dir); });

function job(chunkElements: number): TensorJob {
  return {
    index: 0, name: "t", numel: N, op: { kind: "copy" }, loadDtype: undefined, seed: 0, chunkElements,
    inputs: arrays.map((_, m) => ({ source: { kind: "path", path: join(dir, `m${m}.f32`) }, file: `m${m}`, tensor: "t", offset: 0, dtype: "F32", shape: [ROWS, COLS] })),
    output: { target: { kind: "memory" }, offset: 0, dtype: "F32" },
  };
}

/** Every chunk's gram pass, then the engine's totals. Vectors: task vectors of inputs 1 and 2 over input 0. */
async function totals(ws: ChunkWorkspace, layout: VectorLayout, chunkElements: number): Promise<Float64Array> {
  const j = job(chunkElements);
  const parts: Float64Array[] = [];
  for (let c = 0; c < Math.ceil(N / chunkElements); c++) {
    await ws.load(j, c);
    const r = ws.pass({ kind: "gram", layout, cols: COLS, offsets: true });
    assert.equal(r.kind, "gram");
    parts.push(r.kind === "gram" ? r.partials : new Float64Array());
  }
  return gramTotals(parts, layout, COLS, 3);
}

/** Plain float64 sums over the elements of each vector, in index order. */
function plain(layout: VectorLayout): Float64Array {
  const tau = [1, 2].map((m) => Float64Array.from(arrays[m]!, (v, i) => Math.fround(v - arrays[0]![i]!)));
  const groups = layout === "flat" ? [[...Array(N).keys()]]
    : layout === "rows" ? Array.from({ length: ROWS }, (_, r) => Array.from({ length: COLS }, (_, c) => r * COLS + c))
    : Array.from({ length: COLS }, (_, c) => Array.from({ length: ROWS }, (_, r) => r * COLS + c));
  const pairs = [[0, 0], [0, 1], [1, 1]] as const;
  const out = new Float64Array(groups.length * 3);
  groups.forEach((idx, g) => pairs.forEach(([a, b], p) => {
    // flat and rows: entries per group; columns: pair-major runs of COLS.
    out[layout === "columns" ? p * COLS + g : g * 3 + p] = idx.reduce((s, i) => s + tau[a]![i]! * tau[b]![i]!, 0);
  }));
  return out;
}

const cases: [VectorLayout, number[]][] = [
  ["flat", [N, TILE, 2 * TILE, 5 * TILE]],
  ["rows", [N, COLS, 3 * COLS, 8 * COLS]],
  // Columns are summed as a tree over rows: chunks hold a power of two rows.
  ["columns", [N, COLS, 2 * COLS, 4 * COLS, 16 * COLS]],
];

for (const [layout, chunkings] of cases) {
  test(`${layout} Gram entries: the same bits for every chunking, and the plain sums to rounding`, async () => {
    const ws = new ChunkWorkspace(await loadKernels(256 << 20));
    const whole = await totals(ws, layout, chunkings[0]!);
    const expected = plain(layout);
    assert.equal(whole.length, expected.length);
    whole.forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) <= 1e-12 * Math.abs(expected[i]!) + 1e-300, `${layout}[${i}]: ${v} vs ${expected[i]}`));
    for (const chunkElements of chunkings.slice(1)) {
      const got = await totals(ws, layout, chunkElements);
      assert.deepEqual([...got], [...whole], `${layout}, chunks of ${chunkElements} elements`);
    }
    await ws.release();
  });
}
