/**
 * @file An embedding input rebuilt to the output vocabulary, as it is read. A planned embedding input
 * carries a RowMap: for each output row, either a row of the input's own tensor or a fill (zero, the
 * mean of rows of some models' tensors, or bytes computed at plan time, such as the padding rows' mean).
 * The workspace reads a chunk through it (readMappedRows), so the merge methods see the rebuilt matrix
 * and never know. Every fill row is computed whole from the files, the same way in every chunk, so
 * results do not depend on chunking; memory is one row per fill in the chunk.
 */
import type { ByteSource, SourceRef } from "../io/source";
import type { FloatDtype } from "../format/dtypes";
import { addRow, encodeRow, rowElementBytes } from "./row-codec";

/** A tensor that fills read rows from (another model's embedding, or the input's own). */
export interface RowTensor {
  source: SourceRef;
  /** For messages. */
  file: string;
  tensor: string;
  offset: number;
  dtype: string;
}

export type RowFill =
  | { kind: "zero" }
  /** Mean of rows, as flat pairs [tensor index, row, tensor index, row, ...]; one pair is a copy. */
  | { kind: "mean"; from: number[] }
  /** The mean of the rebuilt matrix's real rows: computed at plan time (padding.ts) into `bytes`. */
  | { kind: "padding" }
  /** A row already computed, in the input's dtype. */
  | { kind: "bytes"; bytes: Uint8Array };

export interface RowMap {
  /** Elements per row (the hidden size). */
  cols: number;
  /** The recipe's dtype: computed rows (means, padding) round every value they are computed from to it. */
  roundTo?: FloatDtype;
  /** Per output row: >= 0 that row of the input's own tensor; -1 - k for fills[k]. */
  rows: Int32Array;
  fills: RowFill[];
  tensors: RowTensor[];
}

/** The input whose rows are mapped: its own tensor in its file. */
export interface MappedInput {
  source: SourceRef;
  offset: number;
  dtype: string;
  rows: RowMap;
}

/**
 * Elements [start, end) of the rebuilt matrix (row-major) into `into`, in the input's dtype. Runs of
 * consecutive own rows are read with one read each; fill rows are computed once per call.
 */
export async function readMappedRows(input: MappedInput, start: number, end: number, into: Uint8Array, open: (ref: SourceRef) => ByteSource): Promise<void> {
  const map = input.rows;
  const { cols } = map;
  const eb = rowElementBytes(input.dtype);
  const own = open(input.source);
  const reads: Promise<void>[] = [];
  const fillRows = new Map<number, Promise<Uint8Array>>();
  let r = Math.floor(start / cols);
  while (r * cols < end) {
    const from = Math.max(start, r * cols);
    const v = map.rows[r]!;
    if (v >= 0) {
      // Extend over following rows that continue the same source run.
      let last = r;
      while ((last + 1) * cols < end && map.rows[last + 1] === v + (last + 1 - r)) last++;
      const to = Math.min(end, (last + 1) * cols);
      const srcElement = v * cols + (from - r * cols);
      reads.push(own.readInto(input.offset + srcElement * eb, into.subarray((from - start) * eb, (to - start) * eb)));
      r = last + 1;
      continue;
    }
    const to = Math.min(end, (r + 1) * cols);
    const k = -1 - v;
    let row = fillRows.get(k);
    if (!row) fillRows.set(k, (row = fillRow(map, k, input.dtype, open)));
    const c0 = from - r * cols, c1 = to - r * cols;
    reads.push(row.then((bytes) => into.set(bytes.subarray(c0 * eb, c1 * eb), (from - start) * eb)));
    r++;
  }
  await Promise.all(reads);
}

/** Fill k of a row map as stored bytes of `dtype`. */
export async function fillRow(map: RowMap, k: number, dtype: string, open: (ref: SourceRef) => ByteSource): Promise<Uint8Array> {
  const fill = map.fills[k]!;
  const eb = rowElementBytes(dtype);
  switch (fill.kind) {
    case "zero":
      return new Uint8Array(map.cols * eb);
    case "bytes":
      return fill.bytes;
    case "padding":
      throw new Error("padding rows were not computed before the merge");
    case "mean": {
      const sum = new Float64Array(map.cols);
      const pairs = fill.from.length / 2;
      // Rows are read concurrently but added in the listed order, so the sum is always the same.
      const rows = await Promise.all(Array.from({ length: pairs }, async (_, p) => {
        const t = map.tensors[fill.from[2 * p]!]!;
        const teb = rowElementBytes(t.dtype);
        const bytes = new Uint8Array(map.cols * teb);
        await open(t.source).readInto(t.offset + fill.from[2 * p + 1]! * map.cols * teb, bytes);
        return { dtype: t.dtype, bytes };
      }));
      for (const row of rows) addRow(row.dtype, row.bytes, map.cols, sum, map.roundTo);
      for (let c = 0; c < map.cols; c++) sum[c]! /= pairs;
      return encodeRow(dtype, sum);
    }
  }
}
