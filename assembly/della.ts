// DELLA's keep mask (della, della_linear): within each row, |tau| is ranked ascending (ties by lower
// index, rank 1 the smallest) and element j survives with probability
// p = (density - epsilon) + 2 epsilon (rank - 1) / (n - 1), drawn with DARE's counter-based generator:
// kept iff u(j) < floor(p * 2^32). A row is sorted with a stable LSD radix sort of (key, index) pairs,
// so the ranks are exact and ties keep index order. The mask is written as one bit per element of the
// chunk (whose rows are whole: the caller chunks on row boundaries), for the task-vector kernels'
// TRIM_BITS mode.

import { TILE } from "./layout";
import { mix } from "./taskvector";
import { tileOf } from "./tile";

/** Bytes of `work` dellaMask needs for rows of `rowLen` elements. */
export function dellaWorkBytes(rowLen: i32): i32 {
  return rowLen * 20 + 4 * 256 * 4;
}

/**
 * Stable LSD radix sort of n u64 values by bits 32..62 (8-bit digits); `a` holds them, `tmp` is as
 * large. Returns where the sorted values are (a or tmp). Passes whose digit is the same for every value
 * are skipped (|tau| keys of a row mostly share their exponent).
 */
function sortKeys(a: usize, tmp: usize, n: i32, hist: usize): usize {
  memory.fill(hist, 0, 4 * 256 * 4);
  for (let i = 0; i < n; i++) {
    const key = <u32>(load<u64>(a + (<usize>i << 3)) >>> 32);
    for (let d = 0; d < 4; d++) {
      const h = hist + (<usize>((d << 8) | ((key >>> (<u32>d << 3)) & 0xff)) << 2);
      store<u32>(h, load<u32>(h) + 1);
    }
  }
  let src = a, dst = tmp;
  for (let d = 0; d < 4; d++) {
    const h = hist + (<usize>(d << 8) << 2);
    // Exclusive prefix sums; a digit holding every value needs no pass.
    let sum: u32 = 0, single = false;
    for (let k = 0; k < 256; k++) {
      const c = load<u32>(h + (<usize>k << 2));
      if (c == <u32>n) single = true;
      store<u32>(h + (<usize>k << 2), sum);
      sum += c;
    }
    if (single) continue;
    const shift = <u64>(32 + (d << 3));
    for (let i = 0; i < n; i++) {
      const v = load<u64>(src + (<usize>i << 3));
      const slot = h + (<usize>(<u32>(v >>> shift) & 0xff) << 2);
      const at = load<u32>(slot);
      store<u32>(slot, at + 1);
      store<u64>(dst + (<usize>at << 3), v);
    }
    const t = src; src = dst; dst = t;
  }
  return src;
}

/**
 * Writes the keep bits of one task input for a chunk of n elements (whole rows of rowLen) whose first
 * flat element is (startHi:startLo). `key` is the model's DARE stream key; density and epsilon as in
 * the recipe (0 < density - epsilon, density + epsilon < 1). `mask` gets ceil(n / 8) bytes; `work`
 * dellaWorkBytes(rowLen).
 */
export function dellaMask(
  x: usize, xDtype: i32, b: usize, bDtype: i32, n: i32, quant: i32, rowLen: i32, startLo: u32, startHi: u32,
  key: u32, density: f64, epsilon: f64, mask: usize, work: usize,
): void {
  const start = (<u64>startHi << 32) | <u64>startLo;
  const pairs = work, tmp = work + (<usize>rowLen << 3);
  const thresholds = tmp + (<usize>rowLen << 3);
  const hist = thresholds + (<usize>rowLen << 2);
  // The keep threshold of each rank is the same in every row.
  for (let r = 0; r < rowLen; r++) {
    const p = rowLen == 1 ? density : (density - epsilon) + 2 * epsilon * <f64>r / <f64>(rowLen - 1);
    store<u32>(thresholds + (<usize>r << 2), <u32>min(Math.floor(p * 4294967296.0), 4294967295.0));
  }
  memory.fill(mask, 0, (<usize>n + 7) >>> 3);
  for (let row = 0; row < n; row += rowLen) {
    for (let pos = 0; pos < rowLen; pos += TILE) {
      const count = min(TILE, rowLen - pos);
      const xv = tileOf(x, xDtype, row + pos, count, quant, 0);
      const bv = tileOf(b, bDtype, row + pos, count, quant, 1);
      for (let j = 0; j < count; j++) {
        const o = <usize>j << 2;
        const k = reinterpret<u32>(load<f32>(xv + o) - load<f32>(bv + o)) & 0x7fffffff;
        store<u64>(pairs + (<usize>(pos + j) << 3), (<u64>k << 32) | <u64>(pos + j));
      }
    }
    const sorted = sortKeys(pairs, tmp, rowLen, hist);
    const first = start + <u64>row;
    for (let r = 0; r < rowLen; r++) {
      const idx = <u32>load<u64>(sorted + (<usize>r << 3));
      const j = first + <u64>idx;
      const u = mix(mix(<u32>j ^ key) ^ (<u32>(j >>> 32) + 0x9e3779b9));
      if (u < load<u32>(thresholds + (<usize>r << 2))) {
        const local = <usize>row + <usize>idx;
        const at = mask + (local >>> 3);
        store<u8>(at, load<u8>(at) | <u8>(1 << <u8>(local & 7)));
      }
    }
  }
}
