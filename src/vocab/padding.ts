/**
 * @file Padding rows (pad_to_multiple_of): each model's padding rows are the mean of its rebuilt real
 * rows (mergekit follows https://nlp.stanford.edu/~johnhew/vocab-expansion.html). The mean needs the
 * whole matrix, so it is computed once per tensor and model before the merge, by streaming the rebuilt
 * rows in blocks (memory: one block) and adding them in row order in float64; the row is then stored as
 * bytes in the row map, and every chunk that holds padding rows copies the same bytes.
 */
import { openSource, type ByteSource, type SourceRef } from "../io/source";
import type { PlannedTensor } from "../plan/plan";
import { addRow, encodeRow, rowElementBytes } from "./row-codec";
import { readMappedRows } from "./row-map";

/** Bytes of rebuilt rows read at once. */
const BLOCK_BYTES = 4 << 20;

export async function computePaddingRows(tensors: readonly PlannedTensor[], realRows: number, signal?: AbortSignal): Promise<void> {
  const sources = new Map<string, ByteSource>();
  const open = (ref: SourceRef): ByteSource => {
    if (ref.kind !== "path") return openSource(ref);
    let s = sources.get(ref.path);
    if (!s) sources.set(ref.path, (s = openSource(ref)));
    return s;
  };
  try {
    for (const tensor of tensors) {
      for (const input of tensor.inputs) {
        const map = input.rows;
        const k = map?.fills.findIndex((f) => f.kind === "padding") ?? -1;
        if (!map || k < 0) continue;
        const { dtype, source, offset } = input.tensor;
        const eb = rowElementBytes(dtype);
        const block = Math.max(1, Math.floor(BLOCK_BYTES / (map.cols * eb)));
        const sum = new Float64Array(map.cols);
        const buffer = new Uint8Array(block * map.cols * eb);
        for (let r = 0; r < realRows; r += block) {
          signal?.throwIfAborted();
          const n = Math.min(block, realRows - r);
          const view = buffer.subarray(0, n * map.cols * eb);
          await readMappedRows({ source, offset, dtype, rows: map }, r * map.cols, (r + n) * map.cols, view, open);
          for (let i = 0; i < n; i++) addRow(dtype, view.subarray(i * map.cols * eb, (i + 1) * map.cols * eb), map.cols, sum, map.roundTo);
        }
        for (let c = 0; c < map.cols; c++) sum[c]! /= realRows;
        map.fills[k] = { kind: "bytes", bytes: encodeRow(dtype, sum) };
      }
    }
  } finally {
    await Promise.allSettled([...sources.values()].map((s) => s.close()));
  }
}
