// Tile access: every kernel walks its chunk TILE elements at a time and asks for each input's tile as
// float32. Inputs already stored as float32 (and not re-rounded to a narrower recipe dtype) are used in
// place; everything else is decoded into a scratch slot that stays cache-resident.

import { decode, elementBytes, quantize } from "./convert";
import { DTYPE_BF16, DTYPE_F16, DTYPE_F32, DTYPE_NONE, TILE } from "./layout";

let scratchBase: usize = 0;

/** Tell the kernels where their tile scratch lives (SCRATCH_BYTES, owned and placed by JS). */
export function setScratch(ptr: usize): void {
  scratchBase = ptr;
}

/** Address of scratch tile slot k. */
// @ts-ignore: decorator
@inline
export function slot(k: i32): usize {
  return scratchBase + <usize>k * (TILE << 2);
}

/**
 * float32 view of `count` elements of an input starting at element `start`: the input itself when it is
 * float32 and needs no rounding, otherwise its decoding in scratch slot `k`. `quant` is the recipe's
 * load dtype (DTYPE_NONE when unset).
 */
// @ts-ignore: decorator
@inline
export function tileOf(ptr: usize, dtype: i32, start: i32, count: i32, quant: i32, k: i32): usize {
  // Rounding to the load dtype changes nothing when the input already is that dtype, or it is float32.
  const round = quant != DTYPE_NONE && quant != DTYPE_F32 && quant != dtype;
  if (dtype == DTYPE_F32 && !round) return ptr + (<usize>start << 2);
  const dst = slot(k);
  decode(ptr + <usize>start * <usize>elementBytes(dtype), dtype, dst, count);
  if (round) quantize(dst, quant, count);
  return dst;
}

/** The element type `readable` left its pointer in. */
export let readableDtype: i32 = DTYPE_F32;

/**
 * Like tileOf, but inputs stored as F32, BF16 or F16 are read in place (see loadLanes) unless the recipe's
 * load dtype rounds them; only those and F64 are decoded into scratch slot `k`. Returns the pointer to
 * element `start` and sets `readableDtype`.
 */
export function readable(ptr: usize, dtype: i32, start: i32, count: i32, quant: i32, k: i32): usize {
  const round = quant != DTYPE_NONE && quant != DTYPE_F32 && quant != dtype;
  if (!round && (dtype == DTYPE_F32 || dtype == DTYPE_BF16 || dtype == DTYPE_F16)) {
    readableDtype = dtype;
    return ptr + <usize>start * <usize>elementBytes(dtype);
  }
  readableDtype = DTYPE_F32;
  return tileOf(ptr, dtype, start, count, quant, k);
}

/**
 * The tiles t.. of every input of an operand table (`nInputs` records of `recordBytes`, each starting
 * with the input's pointer and dtype), as tileOf gives them (input i decoded into slot i): their
 * pointers as u32 at `ptrs`.
 */
// @ts-ignore: decorator
@inline
export function inputTiles(table: usize, recordBytes: usize, nInputs: i32, t: i32, count: i32, quant: i32, ptrs: usize): void {
  for (let i = 0; i < nInputs; i++) {
    const rec = table + <usize>i * recordBytes;
    store<u32>(ptrs + (<usize>i << 2), <u32>tileOf(load<u32>(rec), load<i32>(rec, 4), t, count, quant, i));
  }
}

/**
 * Like inputTiles through `readable`: per input i, 32 bytes at inputs + 32 i hold its pointer (u32) and
 * readableDtype (i32), and, when `weightAt` is not negative (a constant at every call), the record's
 * float32 at that offset splatted at +16: the weighted kernels' view of their inputs.
 */
// @ts-ignore: decorator
@inline
export function readableInputs(table: usize, recordBytes: usize, weightAt: i32, nInputs: i32, t: i32, count: i32, quant: i32, inputs: usize): void {
  for (let i = 0; i < nInputs; i++) {
    const rec = table + <usize>i * recordBytes;
    const at = inputs + (<usize>i << 5);
    store<u32>(at, <u32>readable(load<u32>(rec), load<i32>(rec, 4), t, count, quant, i));
    store<i32>(at, readableDtype, 4);
    if (weightAt >= 0) v128.store(at, f32x4.splat(load<f32>(rec + <usize>weightAt)), 16);
  }
}
