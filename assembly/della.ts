// DELLA's keep mask (della, della_linear): within each row, |tau| is ranked ascending (ties by lower
// index, rank 1 the smallest) and element j survives with probability
// p = (density - epsilon) + 2 epsilon (rank - 1) / (n - 1), drawn with DARE's counter-based generator:
// kept iff u(j) < floor(p * 2^32). A row is sorted with a stable LSD radix sort of (key, index) pairs,
// so the ranks are exact and ties keep index order. The mask is written as one bit per element of the
// chunk (whose rows are whole: the caller chunks on row boundaries), for the task-vector kernels'
// TRIM_BITS mode.

import { TILE } from "./layout";
import { mix, mix4 } from "./taskvector";
import { tileOf } from "./tile";

/** Radix digits: three passes of 11 bits cover the 31-bit |tau| keys. */
const DIGIT_BITS = 11;
const BUCKETS = 1 << DIGIT_BITS;

/** Bytes of `work` dellaMask needs for rows of `rowLen` elements. */
export function dellaWorkBytes(rowLen: i32): i32 {
  return rowLen * 24 + 3 * BUCKETS * 4;
}

/**
 * Stable LSD radix sort of n u64 values by bits 32..62 (three 11-bit digits); `a` holds them, `tmp` is
 * as large. Returns where the sorted values are (a or tmp). Passes whose digit is the same for every
 * value are skipped.
 */
function sortKeys(a: usize, tmp: usize, n: i32, hist: usize): usize {
  memory.fill(hist, 0, 3 * BUCKETS * 4);
  const h1 = hist + (BUCKETS << 2), h2 = hist + (BUCKETS << 3);
  for (let i = 0; i < n; i++) {
    const key = <u32>(load<u64>(a + (<usize>i << 3)) >>> 32);
    const c0 = hist + (<usize>(key & (BUCKETS - 1)) << 2);
    store<u32>(c0, load<u32>(c0) + 1);
    const c1 = h1 + (<usize>((key >>> DIGIT_BITS) & (BUCKETS - 1)) << 2);
    store<u32>(c1, load<u32>(c1) + 1);
    const c2 = h2 + (<usize>(key >>> (2 * DIGIT_BITS)) << 2);
    store<u32>(c2, load<u32>(c2) + 1);
  }
  let src = a, dst = tmp;
  for (let d = 0; d < 3; d++) {
    const h = hist + (<usize>(d * BUCKETS) << 2);
    // Exclusive prefix sums; a digit holding every value needs no pass.
    let sum: u32 = 0, single = false;
    for (let k = 0; k < BUCKETS; k++) {
      const c = load<u32>(h + (<usize>k << 2));
      if (c == <u32>n) single = true;
      store<u32>(h + (<usize>k << 2), sum);
      sum += c;
    }
    if (single) continue;
    const shift = <u64>(32 + d * DIGIT_BITS);
    for (let i = 0; i < n; i++) {
      const v = load<u64>(src + (<usize>i << 3));
      const slot = h + (<usize>(<u32>(v >>> shift) & (BUCKETS - 1)) << 2);
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
  const draws = thresholds + (<usize>rowLen << 2);
  const hist = draws + (<usize>rowLen << 2);
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
    // The row's draws u(j), in index order, four at a time where the high word cannot change.
    const first = start + <u64>row;
    let j = 0;
    if (<u64>(<u32>first) + <u64>rowLen <= 0x100000000) {
      const vkey = i32x4.splat(key), vhigh = i32x4.splat(<u32>(first >>> 32) + 0x9e3779b9);
      for (; j + 4 <= rowLen; j += 4) {
        const lanes = i32x4.add(i32x4.splat(<u32>first + <u32>j), i32x4(0, 1, 2, 3));
        v128.store(draws + (<usize>j << 2), mix4(v128.xor(mix4(v128.xor(lanes, vkey)), vhigh)));
      }
    }
    for (; j < rowLen; j++) {
      const g = first + <u64>j;
      store<u32>(draws + (<usize>j << 2), mix(mix(<u32>g ^ key) ^ (<u32>(g >>> 32) + 0x9e3779b9)));
    }
    for (let r = 0; r < rowLen; r++) {
      const idx = <u32>load<u64>(sorted + (<usize>r << 3));
      // Branch-free: the draws are random, so a branch on them would mispredict half the time.
      const keep = <u32>(load<u32>(draws + (<usize>idx << 2)) < load<u32>(thresholds + (<usize>r << 2)));
      const local = <usize>row + <usize>idx;
      const at = mask + (local >>> 3);
      store<u8>(at, load<u8>(at) | <u8>(keep << <u32>(local & 7)));
    }
  }
}
