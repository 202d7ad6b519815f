/**
 * @file One decoder layer over T consecutive token rows, shared by evaluation (whole sequences, keys
 * and values thrown away after the layer) and generation (keys and values kept in a cache, rows
 * appended at position pos0). The rows' hidden states `x` are updated in place.
 */
import type { Kernels } from "../kernels/kernels";
import type { DecoderSpec, LayerNames } from "./architecture";

/** A weight in wasm memory: its pointer and dtype code (vectors decoded to float32). */
export interface Loaded {
  ptr: number;
  code: number;
}

export type LoadedLayer = { [R in keyof LayerNames]?: Loaded };

export interface LayerContext {
  k: Kernels;
  spec: DecoderSpec;
  matmulScratch: number;
  /** cos/sin tables (rope families), rows for positions 0.. */
  tables: { cos: number; sin: number } | undefined;
}

/**
 * Keys and values of a sequence so far, rows [0, pos0) filled: row stride kvHeads·headDim floats.
 * Without a cache, this call's keys and values are its only ones (pos0 must be 0).
 */
export interface KvCache {
  k: number;
  v: number;
}

export function decoderLayer(ctx: LayerContext, layer: number, w: LoadedLayer, x: number, T: number, pos0: number, cache: KvCache | undefined): void {
  const { k: kernels, spec } = ctx;
  const { arena, exports: k } = kernels;
  const H = spec.hidden, D = spec.headDim, nH = spec.heads, nKV = spec.kvHeads, I = spec.intermediate;
  const kvStride = nKV * D;
  const mark = arena.mark();
  const a = arena.alloc(T * H * 4);
  norm(ctx, x, T, w.norm1!, w.norm1Bias, a);
  // q, k, v rows: k and v land in the cache (at row pos0) when there is one.
  let q: number, qStride: number, kk: number, v: number;
  if (w.qkv) {
    const qkv = arena.alloc(T * 3 * H * 4);
    project(ctx, a, T, H, w.qkv, 3 * H, qkv, w.qkvBias);
    [q, qStride] = [qkv, 3 * H];
    if (cache) {
      // GPT-2's fused projection interleaves q|k|v per row: copy k and v into the cache's rows.
      const view = new Float32Array(arena.memory.buffer);
      for (let r = 0; r < T; r++) {
        const from = qkv / 4 + r * 3 * H;
        view.copyWithin(cache.k / 4 + (pos0 + r) * kvStride, from + H, from + 2 * H);
        view.copyWithin(cache.v / 4 + (pos0 + r) * kvStride, from + 2 * H, from + 3 * H);
      }
      [kk, v] = [cache.k, cache.v];
    } else {
      [kk, v] = [qkv + H * 4, qkv + 2 * H * 4];
    }
  } else {
    q = arena.alloc(T * nH * D * 4);
    qStride = nH * D;
    kk = cache ? cache.k : arena.alloc(T * kvStride * 4);
    v = cache ? cache.v : arena.alloc(T * kvStride * 4);
    const rowK = kk + pos0 * kvStride * 4, rowV = v + pos0 * kvStride * 4;
    project(ctx, a, T, H, w.q!, nH * D, q, w.qBias);
    project(ctx, a, T, H, w.k!, kvStride, rowK, w.kBias);
    project(ctx, a, T, H, w.v!, kvStride, rowV, w.vBias);
  }
  const kStrideUsed = w.qkv && !cache ? 3 * H : kvStride;
  const newK = kk + pos0 * kStrideUsed * 4;
  // Qwen3 normalises each head's q and k (over its D dims) before the rotation.
  if (w.qNorm) k.rmsNorm(q, T * nH, D, w.qNorm.ptr, spec.eps, q);
  if (w.kNorm) k.rmsNorm(newK, T * nKV, D, w.kNorm.ptr, spec.eps, newK);
  if (spec.rope) {
    const t = ctx.tables!;
    k.rope(q, T, qStride, nH, D, spec.rope.rot, t.cos, t.sin, pos0);
    k.rope(newK, T, kStrideUsed, nKV, D, spec.rope.rot, t.cos, t.sin, pos0);
  }
  const attn = arena.alloc(T * nH * D * 4);
  const scores = arena.alloc(((pos0 + T) * (D + 4) + 40) * 4);
  k.attention(q, qStride, kk, v, kStrideUsed, T, pos0 + T, pos0, nH, nKV, D, spec.scales[layer]!, spec.windows[layer]!, attn, nH * D, scores);
  const o = arena.alloc(T * H * 4);
  project(ctx, attn, T, nH * D, w.o, H, o, w.oBias);
  k.addInPlace(x, o, T * H);
  // MLP.
  norm(ctx, x, T, w.norm2!, w.norm2Bias, a);
  const up = arena.alloc(T * I * 4);
  project(ctx, a, T, H, w.up, I, up, w.upBias);
  if (spec.mlp === "gated-silu") {
    const gate = arena.alloc(T * I * 4);
    project(ctx, a, T, H, w.gate!, I, gate, w.gateBias);
    k.siluMul(gate, up, T * I);
    project(ctx, gate, T, I, w.down, H, o, w.downBias);
  } else {
    k.geluTanh(up, T * I);
    project(ctx, up, T, I, w.down, H, o, w.downBias);
  }
  k.addInPlace(x, o, T * H);
  arena.release(mark);
}

export function norm(ctx: LayerContext, x: number, rows: number, weight: Loaded, bias: Loaded | undefined, out: number): void {
  const { spec } = ctx;
  if (spec.norm === "rms") ctx.k.exports.rmsNorm(x, rows, spec.hidden, weight.ptr, spec.eps, out);
  else ctx.k.exports.layerNorm(x, rows, spec.hidden, weight.ptr, bias!.ptr, spec.eps, out);
}

/** y (rows × n) = x (rows × k) · W (+ bias), W in the checkpoint's layout. */
export function project(ctx: LayerContext, x: number, rows: number, kIn: number, w: Loaded | undefined, n: number, y: number, bias: Loaded | undefined): void {
  const k = ctx.k.exports;
  (ctx.spec.conv1d ? k.linearKN : k.linear)(x, rows, kIn, w!.ptr, w!.code, n, y, 0, ctx.matmulScratch);
  if (bias) k.addRowVector(y, rows, n, bias.ptr);
}
