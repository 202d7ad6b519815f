// DELLA's keep mask (della, della_linear): within each row, |tau| is ranked ascending (ties by lower
// index, rank 1 the smallest) and element j survives with probability
// p = (density - epsilon) + 2 epsilon (rank - 1) / (n - 1), drawn with DARE's counter-based generator:
// kept iff u(j) < floor(p * 2^32). The mask is written as one bit per element of the chunk (whose rows
// are whole: the caller chunks on row boundaries), for the task-vector kernels' TRIM_BITS mode.
//
// Few elements need their exact rank. The threshold T(rank) is monotone in the rank (p is linear in it,
// and rounding and floor keep order), so one counting pass by a coarse digit of the key (its bits above
// `shift`, relative to the row's smallest key) places each element's rank in its bucket's range
// [start, end): u < min(T(start), T(end - 1)) keeps it and u >= max(T(start), T(end - 1)) drops it
// whatever its rank within the bucket. Only the elements with u in between (a fraction about
// 2 epsilon (bucket size) / n) are ranked exactly: the first few by counting the smaller keys of the
// row; more by counting within their bucket once the row's keys are laid out bucket by bucket (a
// stable scatter by the digit, so each bucket's keys keep their row order and equal keys their index
// order); and when that would count too much (a row whose undecided elements sit in huge buckets, as in
// a row of mostly equal keys), all of them by a stable radix sort of the row.

import { elementBytes } from "./convert";
import { TILE } from "./layout";
import { mix, mix4 } from "./taskvector";
import { tileOf } from "./tile";

/** The coarse digit has at most this many bits (buckets per row: about one per two elements). */
const MAX_DIGIT_BITS = 13;
const MAX_BUCKETS = 1 << MAX_DIGIT_BITS;

/** Radix digits of the row sort: three passes of 11 bits cover the 31-bit |tau| keys. */
const SORT_BITS = 11;
const SORT_BUCKETS = 1 << SORT_BITS;

/** Up to this many undecided elements of a row are ranked by counting over the whole row. */
const ROW_RANKS = 3;
/**
 * Undecided elements are ranked within their buckets while the keys counted (their buckets' sizes,
 * summed) stay under this many per element of the row: about where the row's sort costs less.
 */
const BUCKET_RANK_LIMIT = 64;

/** Bytes of `work` dellaMask needs for rows of `rowLen` elements. */
export function dellaWorkBytes(rowLen: i32): i32 {
  // keys, draws, thresholds, undecided (u32); pairs and sort space (u64); bucket tables; sort histograms.
  return rowLen * 32 + MAX_BUCKETS * 12 + 3 * SORT_BUCKETS * 4;
}

/**
 * Stable LSD radix sort of n u64 values by bits 32..62 (three 11-bit digits); `a` holds them, `tmp` is
 * as large. Returns where the sorted values are (a or tmp). Passes whose digit is the same for every
 * value are skipped.
 */
function sortKeys(a: usize, tmp: usize, n: i32, hist: usize): usize {
  memory.fill(hist, 0, 3 * SORT_BUCKETS * 4);
  const h1 = hist + (SORT_BUCKETS << 2), h2 = hist + (SORT_BUCKETS << 3);
  for (let i = 0; i < n; i++) {
    const key = <u32>(load<u64>(a + (<usize>i << 3)) >>> 32);
    const c0 = hist + (<usize>(key & (SORT_BUCKETS - 1)) << 2);
    store<u32>(c0, load<u32>(c0) + 1);
    const c1 = h1 + (<usize>((key >>> SORT_BITS) & (SORT_BUCKETS - 1)) << 2);
    store<u32>(c1, load<u32>(c1) + 1);
    const c2 = h2 + (<usize>(key >>> (2 * SORT_BITS)) << 2);
    store<u32>(c2, load<u32>(c2) + 1);
  }
  let src = a, dst = tmp;
  for (let d = 0; d < 3; d++) {
    const h = hist + (<usize>(d * SORT_BUCKETS) << 2);
    // Exclusive prefix sums; a digit holding every value needs no pass.
    let sum: u32 = 0, single = false;
    for (let k = 0; k < SORT_BUCKETS; k++) {
      const c = load<u32>(h + (<usize>k << 2));
      if (c == <u32>n) single = true;
      store<u32>(h + (<usize>k << 2), sum);
      sum += c;
    }
    if (single) continue;
    const shift = <u64>(32 + d * SORT_BITS);
    for (let i = 0; i < n; i++) {
      const v = load<u64>(src + (<usize>i << 3));
      const slot = h + (<usize>(<u32>(v >>> shift) & (SORT_BUCKETS - 1)) << 2);
      const at = load<u32>(slot);
      store<u32>(slot, at + 1);
      store<u64>(dst + (<usize>at << 3), v);
    }
    const t = src; src = dst; dst = t;
  }
  return src;
}

/** DARE's draw u(g) for flat element g. */
// @ts-ignore: decorator
@inline
function drawOf(g: u64, key: u32): u32 {
  return mix(mix(<u32>g ^ key) ^ (<u32>(g >>> 32) + 0x9e3779b9));
}

/** ORs keep bit `keep` (0 or 1) of chunk element `local` into the mask. */
// @ts-ignore: decorator
@inline
function setBit(mask: usize, local: usize, keep: u32): void {
  const at = mask + (local >>> 3);
  store<u8>(at, load<u8>(at) | <u8>(keep << <u32>(local & 7)));
}

/** Number of the n keys at `keys` with keys[i] <= k for i < j or keys[i] < k for i >= j: j's rank - 1. */
function rankOf(keys: usize, n: i32, j: i32, k: u32): i32 {
  // Keys are below 2^31, so signed compares order them; each true lane subtracts -1.
  const vk = i32x4.splat(k);
  let acc = i32x4.splat(0);
  let i = 0;
  for (; i + 4 <= j; i += 4) acc = i32x4.sub(acc, i32x4.le_s(v128.load(keys + (<usize>i << 2)), vk));
  let c = 0;
  for (; i < j; i++) c += <i32>(load<u32>(keys + (<usize>i << 2)) <= k);
  for (; i < n && (i & 3) != 0; i++) c += <i32>(load<u32>(keys + (<usize>i << 2)) < k);
  for (; i + 4 <= n; i += 4) acc = i32x4.sub(acc, i32x4.lt_s(v128.load(keys + (<usize>i << 2)), vk));
  for (; i < n; i++) c += <i32>(load<u32>(keys + (<usize>i << 2)) < k);
  return c + i32x4.extract_lane(acc, 0) + i32x4.extract_lane(acc, 1) + i32x4.extract_lane(acc, 2) + i32x4.extract_lane(acc, 3);
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
  const len = <usize>rowLen;
  const keys = work, draws = keys + (len << 2), thresholds = draws + (len << 2), undecided = thresholds + (len << 2);
  const pairs = undecided + (len << 2), tmp = pairs + (len << 3);
  const counts = tmp + (len << 3), bounds = counts + (MAX_BUCKETS << 2), hist = bounds + (MAX_BUCKETS << 3);
  // The keep threshold of each rank is the same in every row.
  for (let r = 0; r < rowLen; r++) {
    const p = rowLen == 1 ? density : (density - epsilon) + 2 * epsilon * <f64>r / <f64>(rowLen - 1);
    store<u32>(thresholds + (<usize>r << 2), <u32>min(Math.floor(p * 4294967296.0), 4294967295.0));
  }
  // About one bucket per two elements: few undecided elements, and bucket tables that stay in cache.
  const digitBits = rowLen <= 2 ? 1 : min(MAX_DIGIT_BITS, 31 - clz(<u32>(rowLen - 1)));
  memory.fill(mask, 0, (<usize>n + 7) >>> 3);
  for (let row = 0; row < n; row += rowLen) {
    // Keys |tau| as their float32 bits (ordered as the values; NaN above infinity), and the row's range.
    let vmin = i32x4.splat(0x7fffffff), vmax = i32x4.splat(0);
    let kmin: u32 = 0x7fffffff, kmax: u32 = 0;
    for (let pos = 0; pos < rowLen; pos += TILE) {
      const count = min(TILE, rowLen - pos);
      const xv = tileOf(x, xDtype, row + pos, count, quant, 0);
      const bv = tileOf(b, bDtype, row + pos, count, quant, 1);
      const dst = keys + (<usize>pos << 2);
      let j = 0;
      for (; j + 4 <= count; j += 4) {
        const o = <usize>j << 2;
        const k = v128.and(f32x4.sub(v128.load(xv + o), v128.load(bv + o)), i32x4.splat(0x7fffffff));
        v128.store(dst + o, k);
        vmin = i32x4.min_s(vmin, k);
        vmax = i32x4.max_s(vmax, k);
      }
      for (; j < count; j++) {
        const o = <usize>j << 2;
        const k = reinterpret<u32>(load<f32>(xv + o) - load<f32>(bv + o)) & 0x7fffffff;
        store<u32>(dst + o, k);
        kmin = min(kmin, k);
        kmax = max(kmax, k);
      }
    }
    for (let l = 0; l < 4; l++) {
      kmin = min(kmin, <u32>i32x4.extract_lane(vmin, 0));
      kmax = max(kmax, <u32>i32x4.extract_lane(vmax, 0));
      vmin = i32x4.shuffle(vmin, vmin, 1, 2, 3, 0);
      vmax = i32x4.shuffle(vmax, vmax, 1, 2, 3, 0);
    }
    // The row's draws u(j) are made four at a time in the decide loop below, unless the high word of
    // the flat index changes within the row: then they are made here, one by one.
    const first = start + <u64>row;
    const fused = <u64>(<u32>first) + <u64>rowLen <= 0x100000000;
    const vkey = i32x4.splat(key), vhigh = i32x4.splat(<u32>(first >>> 32) + 0x9e3779b9);
    if (!fused) {
      for (let j = 0; j < rowLen; j++) store<u32>(draws + (<usize>j << 2), drawOf(first + <u64>j, key));
    }
    // Bucket sizes by the digit (key - kmin) >> shift, which is at most `top` < 2^digitBits.
    const range = kmax - kmin;
    const shift = <u32>max(0, (32 - <i32>clz(range)) - digitBits);
    const top = range >>> shift;
    memory.fill(counts, 0, <usize>(top + 1) << 2);
    const vmin4 = i32x4.splat(kmin);
    let i = 0;
    for (; i + 4 <= rowLen; i += 4) {
      // Byte offsets of the four counters.
      const at = i32x4.shl(i32x4.shr_u(i32x4.sub(v128.load(keys + (<usize>i << 2)), vmin4), shift), 2);
      const c0 = counts + <usize>i32x4.extract_lane(at, 0);
      store<u32>(c0, load<u32>(c0) + 1);
      const c1 = counts + <usize>i32x4.extract_lane(at, 1);
      store<u32>(c1, load<u32>(c1) + 1);
      const c2 = counts + <usize>i32x4.extract_lane(at, 2);
      store<u32>(c2, load<u32>(c2) + 1);
      const c3 = counts + <usize>i32x4.extract_lane(at, 3);
      store<u32>(c3, load<u32>(c3) + 1);
    }
    for (; i < rowLen; i++) {
      const c = counts + (<usize>((load<u32>(keys + (<usize>i << 2)) - kmin) >>> shift) << 2);
      store<u32>(c, load<u32>(c) + 1);
    }
    // The least and greatest threshold over each bucket's ranks [sum, sum + c) (none for an empty
    // bucket, which no element reads). `counts` is kept.
    let sum: u32 = 0;
    for (let d: u32 = 0; d <= top; d++) {
      const c = load<u32>(counts + (<usize>d << 2));
      if (c == 0) continue; // most buckets of a row are empty: a branch that predicts well
      const t0 = load<u32>(thresholds + (<usize>sum << 2));
      const t1 = load<u32>(thresholds + (<usize>(sum + c - 1) << 2));
      store<u64>(bounds + (<usize>d << 3), <u64>min(t0, t1) | (<u64>max(t0, t1) << 32));
      sum += c;
    }
    // Decide what the bounds settle, four elements at a time; list the rest. Keep bits gather in
    // `acc` from chunk bit `accBase` (a multiple of 32) on, ORed into the mask a 32-bit word at a time
    // (rows need not start on a word).
    let pending = 0;
    let acc: u64 = 0;
    let accBase = <u32>row & ~31;
    i = 0;
    for (; i + 4 <= rowLen; i += 4) {
      const d = i32x4.shr_u(i32x4.sub(v128.load(keys + (<usize>i << 2)), vmin4), shift);
      const b0 = load<u64>(bounds + (<usize>i32x4.extract_lane(d, 0) << 3));
      const b1 = load<u64>(bounds + (<usize>i32x4.extract_lane(d, 1) << 3));
      const b2 = load<u64>(bounds + (<usize>i32x4.extract_lane(d, 2) << 3));
      const b3 = load<u64>(bounds + (<usize>i32x4.extract_lane(d, 3) << 3));
      // Lanes lo0 hi0 lo1 hi1 | lo2 hi2 lo3 hi3, split into the lo and the hi words.
      const v01 = i64x2.replace_lane(i64x2.splat(b0), 1, b1), v23 = i64x2.replace_lane(i64x2.splat(b2), 1, b3);
      const lo = i32x4.shuffle(v01, v23, 0, 2, 4, 6), hi = i32x4.shuffle(v01, v23, 1, 3, 5, 7);
      const u = fused
        ? mix4(v128.xor(mix4(v128.xor(i32x4.add(i32x4.splat(<u32>first + <u32>i), i32x4(0, 1, 2, 3)), vkey)), vhigh))
        : v128.load(draws + (<usize>i << 2));
      const keep = <u64>i32x4.bitmask(i32x4.lt_u(u, lo));
      // u - lo wraps above hi - lo when u < lo, so this is lo <= u < hi.
      const open = i32x4.bitmask(i32x4.lt_u(i32x4.sub(u, lo), i32x4.sub(hi, lo)));
      const local = <u32>row + <u32>i;
      acc |= keep << <u64>(local - accBase);
      if (local + 4 - accBase >= 32) {
        const w = mask + (<usize>accBase >>> 3);
        store<u32>(w, load<u32>(w) | <u32>acc);
        acc >>>= 32;
        accBase += 32;
      }
      if (open != 0) {
        for (let l = 0; l < 4; l++) {
          store<u32>(undecided + (<usize>pending << 2), i + l);
          pending += (open >>> l) & 1;
        }
      }
    }
    for (; i < rowLen; i++) {
      const d = (load<u32>(keys + (<usize>i << 2)) - kmin) >>> shift;
      const bound = load<u64>(bounds + (<usize>d << 3));
      const lo = <u32>bound, hi = <u32>(bound >>> 32);
      const u = fused ? drawOf(first + <u64>i, key) : load<u32>(draws + (<usize>i << 2));
      const local = <u32>row + <u32>i;
      acc |= <u64>(u < lo) << <u64>(local - accBase);
      if (local + 1 - accBase >= 32) {
        const w = mask + (<usize>accBase >>> 3);
        store<u32>(w, load<u32>(w) | <u32>acc);
        acc >>>= 32;
        accBase += 32;
      }
      store<u32>(undecided + (<usize>pending << 2), i);
      pending += <i32>(u - lo < hi - lo);
    }
    // The bits after the last full word, a byte at a time (the mask may end inside the word).
    const end = <u32>row + <u32>rowLen;
    for (let bit = accBase; bit < end; bit += 8) {
      const at = mask + <usize>(bit >>> 3);
      store<u8>(at, load<u8>(at) | <u8>(acc >>> <u64>(bit - accBase)));
    }
    if (pending == 0) continue;
    if (pending <= ROW_RANKS) {
      for (let q = 0; q < pending; q++) {
        const j = load<i32>(undecided + (<usize>q << 2));
        const rank = rankOf(keys, rowLen, j, load<u32>(keys + (<usize>j << 2)));
        const u = drawOf(first + <u64>j, key);
        setBit(mask, <usize>(row + j), <u32>(u < load<u32>(thresholds + (<usize>rank << 2))));
      }
      continue;
    }
    let counted: u64 = 0;
    for (let q = 0; q < pending; q++) {
      const j = load<i32>(undecided + (<usize>q << 2));
      counted += <u64>load<u32>(counts + (<usize>((load<u32>(keys + (<usize>j << 2)) - kmin) >>> shift) << 2));
    }
    if (counted <= <u64>BUCKET_RANK_LIMIT * <u64>rowLen) {
      // The keys bucket by bucket (in `pairs`: the keys, then each element's place among them); `tmp`
      // holds each bucket's next place, which ends as the start of the next bucket.
      const byBucket = pairs, placeOf = pairs + (len << 2), next = tmp;
      let at: u32 = 0;
      for (let d: u32 = 0; d <= top; d++) {
        store<u32>(next + (<usize>d << 2), at);
        at += load<u32>(counts + (<usize>d << 2));
      }
      for (let q = 0; q < rowLen; q++) {
        const k = load<u32>(keys + (<usize>q << 2));
        const slot = next + (<usize>((k - kmin) >>> shift) << 2);
        const place = load<u32>(slot);
        store<u32>(slot, place + 1);
        store<u32>(byBucket + (<usize>place << 2), k);
        store<u32>(placeOf + (<usize>q << 2), place);
      }
      for (let q = 0; q < pending; q++) {
        const j = load<i32>(undecided + (<usize>q << 2));
        const k = load<u32>(keys + (<usize>j << 2));
        const d = (k - kmin) >>> shift;
        const c = load<u32>(counts + (<usize>d << 2)), begin = load<u32>(next + (<usize>d << 2)) - c;
        // Every key of a lower bucket is smaller; inside the bucket, the row order is the index order.
        const rank = begin + <u32>rankOf(byBucket + (<usize>begin << 2), <i32>c, <i32>(load<u32>(placeOf + (<usize>j << 2)) - begin), k);
        const u = drawOf(first + <u64>j, key);
        setBit(mask, <usize>(row + j), <u32>(u < load<u32>(thresholds + (<usize>rank << 2))));
      }
      continue;
    }
    // Many undecided: exact ranks of the whole row by a stable sort of (key, index) pairs, whose bits
    // agree with those already set.
    for (let q = 0; q < rowLen; q++) {
      store<u64>(pairs + (<usize>q << 3), (<u64>load<u32>(keys + (<usize>q << 2)) << 32) | <u64>q);
    }
    const sorted = sortKeys(pairs, tmp, rowLen, hist);
    for (let r = 0; r < rowLen; r++) {
      const idx = <u32>load<u64>(sorted + (<usize>r << 3));
      // Branch-free: the draws are random, so a branch on them would mispredict half the time.
      const u = drawOf(first + <u64>idx, key);
      setBit(mask, <usize>row + <usize>idx, <u32>(u < load<u32>(thresholds + (<usize>r << 2))));
    }
  }
}

/**
 * Each block [fiberLen x inner] of n raw elements of `bytes` each, from `src` into `dst` as [inner x
 * fiberLen]: element (j, k) of a block moves to (k, j), so the dim-1 fibers lie contiguous.
 */
function transposeBlocks(src: usize, dst: usize, bytes: usize, n: i32, fiberLen: i32, inner: i32): void {
  const block = fiberLen * inner;
  for (let at = 0; at < n; at += block) {
    for (let j = 0; j < fiberLen; j++) {
      const from = src + <usize>(at + j * inner) * bytes, to = dst + <usize>(at + j) * bytes, stride = <usize>fiberLen * bytes;
      // One load and store of the element's width (a call to memory.copy per element costs more than the move).
      if (bytes == 2) for (let k = 0; k < inner; k++) store<u16>(to + <usize>k * stride, load<u16>(from + (<usize>k << 1)));
      else if (bytes == 4) for (let k = 0; k < inner; k++) store<u32>(to + <usize>k * stride, load<u32>(from + (<usize>k << 2)));
      else for (let k = 0; k < inner; k++) store<u64>(to + <usize>k * stride, load<u64>(from + (<usize>k << 3)));
    }
  }
}

/** Bytes of `scratch` dellaMaskFibers needs for n elements of the two dtypes. */
export function dellaFiberScratchBytes(n: i32, xDtype: i32, bDtype: i32): i32 {
  return n * (elementBytes(xDtype) + elementBytes(bDtype)) + ((n + 7) >>> 3);
}

/**
 * DELLA's keep bits for tensors of three or more dimensions, ranked as mergekit ranks them: along dim 1
 * (fibers of fiberLen elements, `inner` apart) for every index of the other dimensions, where dellaMask
 * ranks contiguous rows. The chunk's blocks [fiberLen x inner] (whole: the caller chunks on them) are
 * transposed into `scratch` so each fiber is a row, masked there, and the bits moved back. A fiber's
 * draws are those of its transposed places (start + block + k fiberLen + j): fixed by the tensor, the
 * model and the element, whatever the chunking.
 */
export function dellaMaskFibers(
  x: usize, xDtype: i32, b: usize, bDtype: i32, n: i32, quant: i32, fiberLen: i32, inner: i32, startLo: u32, startHi: u32,
  key: u32, density: f64, epsilon: f64, mask: usize, work: usize, scratch: usize,
): void {
  const xt = scratch, bt = xt + <usize>n * <usize>elementBytes(xDtype), bits = bt + <usize>n * <usize>elementBytes(bDtype);
  transposeBlocks(x, xt, <usize>elementBytes(xDtype), n, fiberLen, inner);
  transposeBlocks(b, bt, <usize>elementBytes(bDtype), n, fiberLen, inner);
  dellaMask(xt, xDtype, bt, bDtype, n, quant, fiberLen, startLo, startHi, key, density, epsilon, bits, work);
  memory.fill(mask, 0, (<usize>n + 7) >>> 3);
  const block = fiberLen * inner;
  for (let at = 0; at < n; at += block) {
    for (let k = 0; k < inner; k++) {
      for (let j = 0; j < fiberLen; j++) {
        const from = <usize>(at + k * fiberLen + j);
        const keep = (<u32>load<u8>(bits + (from >>> 3)) >>> <u32>(from & 7)) & 1;
        setBit(mask, <usize>(at + j * inner + k), keep);
      }
    }
  }
}
