// A tensor far larger than a worker's memory budget (200 MB with the budget at 24 MiB) merges
// correctly: the reductions SLERP and DARE need run across chunks, and no worker's wasm memory grows
// past the budget. The reference is computed by streaming over the same files.
import assert from "node:assert/strict";
import { open, mkdir, writeFile, readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { merge } from "../src/node";
import { removeDir, tempDir, WORKER_URL } from "./helpers/fixtures";
import { dareStreamKey as refKey, dareU, dareKeepThreshold } from "./reference/rng";

const ROWS = 5000, COLS = 10000; // 50M float32 elements = 200 MB per model, 8 times the budget
const NUMEL = ROWS * COLS;
const NAME = "big.weight";
const BUDGET = 24 * 1048576;
let dir: string;

/** Values of model `m` at [start, end): base ~ U(-1,1), the other = base + small structured noise. */
function values(m: number, start: number, end: number): Float32Array {
  const out = new Float32Array(end - start);
  for (let i = start; i < end; i++) {
    let x = Math.imul(i ^ 0x5bd1e995, 0x9e3779b1) >>> 0;
    x ^= x >>> 15; x = Math.imul(x, 0x2c1b3c6d) >>> 0; x ^= x >>> 12;
    const base = (x / 4294967296) * 2 - 1;
    out[i - start] = m === 0 ? base : Math.fround(base + 0.05 * Math.sin(i * 0.001) + ((x & 0xff) - 127.5) / 2560);
  }
  return out;
}

async function writeBig(folder: string, m: number): Promise<void> {
  await mkdir(folder, { recursive: true });
  const header = new TextEncoder().encode(JSON.stringify({ [NAME]: { dtype: "F32", shape: [ROWS, COLS], data_offsets: [0, NUMEL * 4] } }));
  const fh = await open(join(folder, "model.safetensors"), "w");
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(header.length), true);
  await fh.write(len, 0, 8, 0);
  await fh.write(header, 0, header.length, 8);
  const step = 1 << 22;
  for (let s = 0; s < NUMEL; s += step) {
    const v = values(m, s, Math.min(NUMEL, s + step));
    await fh.write(new Uint8Array(v.buffer), 0, v.byteLength, 8 + header.length + s * 4);
  }
  await fh.close();
}

/** Reads the output tensor in pieces and checks it element by element against `expect`. */
async function verify(out: string, expect: (i: number, base: number, other: number) => number, tolerance: number): Promise<void> {
  const fh = await open(join(out, "model.safetensors"), "r");
  const len = new Uint8Array(8);
  await fh.read(len, 0, 8, 0);
  const n = Number(new DataView(len.buffer).getBigUint64(0, true));
  const step = 1 << 22;
  let worst = 0, at = -1;
  for (let s = 0; s < NUMEL; s += step) {
    const e = Math.min(NUMEL, s + step);
    const got = new Float32Array(e - s);
    await fh.read(new Uint8Array(got.buffer), 0, got.byteLength, 8 + n + s * 4);
    const b = values(0, s, e), o = values(1, s, e);
    for (let i = 0; i < got.length; i++) {
      const d = Math.abs(got[i]! - expect(s + i, b[i]!, o[i]!));
      if (!(d <= worst)) { worst = d; at = s + i; }
    }
  }
  await fh.close();
  assert.ok(worst <= tolerance, `max abs diff ${worst} at element ${at}`);
}

before(async () => {
  dir = await tempDir();
  await writeBig(join(dir, "base"), 0);
  await writeBig(join(dir, "other"), 1);
});
after(async () => { await removeDir(dir); });

test("slerp of a 200 MB tensor with a 24 MiB budget", async () => {
  await writeFile(join(dir, "slerp.yml"), "merge_method: slerp\nbase_model: ./base\nmodels: [{model: ./base}, {model: ./other}]\nparameters: {t: 0.4}\n");
  const summary = await merge(join(dir, "slerp.yml"), { out: join(dir, "out-slerp"), workers: 2, memoryBudget: BUDGET, workerUrl: WORKER_URL });
  assert.ok(summary.peakWorkerMemory <= BUDGET, `peak wasm memory ${summary.peakWorkerMemory} within the budget`);
  // Reference: the spec's float64 statistics over the whole tensor, then float32 blending.
  let aa = 0, bb = 0, ab = 0;
  for (let s = 0; s < NUMEL; s += 1 << 22) {
    const e = Math.min(NUMEL, s + (1 << 22));
    const b = values(0, s, e), o = values(1, s, e);
    for (let i = 0; i < b.length; i++) { aa += b[i]! * b[i]!; bb += o[i]! * o[i]!; ab += b[i]! * o[i]!; }
  }
  const d = ab / (Math.sqrt(aa) * Math.sqrt(bb));
  assert.ok(Math.abs(d) < 0.9995, "the test exercises the spherical path");
  const theta = Math.acos(d), t = 0.4;
  const s0 = Math.fround(Math.sin(theta - theta * t) / Math.sin(theta)), s1 = Math.fround(Math.sin(theta * t) / Math.sin(theta));
  await verify(join(dir, "out-slerp"), (_i, b, o) => Math.fround(Math.fround(s0 * b) + Math.fround(s1 * o)), 1e-6);
});

test("dare_ties of a 200 MB tensor with a 24 MiB budget", async () => {
  await writeFile(join(dir, "dare.yml"), "merge_method: dare_ties\nbase_model: ./base\nmodels: [{model: ./other, parameters: {weight: 0.8, density: 0.3}}]\n");
  const summary = await merge(join(dir, "dare.yml"), { out: join(dir, "out-dare"), workers: 2, seed: 17, memoryBudget: BUDGET, workerUrl: WORKER_URL });
  assert.ok(summary.peakWorkerMemory <= BUDGET);
  const key = refKey(17, NAME, 0), threshold = dareKeepThreshold(0.3);
  let all = 0, kept = 0;
  for (let s = 0; s < NUMEL; s += 1 << 22) {
    const e = Math.min(NUMEL, s + (1 << 22));
    const b = values(0, s, e), o = values(1, s, e);
    for (let i = 0; i < b.length; i++) {
      const tau = Math.abs(Math.fround(o[i]! - b[i]!));
      all += tau;
      if (dareU(key, s + i) < threshold) kept += tau;
    }
  }
  const r = Math.fround(all / kept), w = Math.fround(0.8);
  await verify(join(dir, "out-dare"), (i, b, o) => {
    const tau = Math.fround(o - b);
    const m = dareU(key, i) < threshold ? Math.fround(tau * r) : 0;
    const p = Math.fround(m * w);
    // One model: it always agrees with its own sign, and normalize is off for dare_ties.
    return Math.fround(b + p);
  }, 1e-6);
});
