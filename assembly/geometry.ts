// The geometric methods' element work: nuslerp, multislerp, karcher and model_stock.
//
// Every quantity these methods compute (norms, cosines, tangent vectors, Karcher iterations) lives in
// the span of their input vectors, so one pass gathers the Gram matrix (every dot v_i . v_j, i <= j)
// and TypeScript does the rest as scalar math on it. The output is then a combination sum_i c_i v_i
// (plus the base when the vectors are task vectors). Vectors are either the whole tensor ("flat", Gram
// per tile), each row of the last axis ("rows", Gram per row) or each column of [shape[0], rest]
// ("columns", Gram per column, summed over rows in a fixed pairwise tree so any chunking of the rows
// gives the same bits).
//
// Operand tables use SUM_RECORD records (pointer, dtype). With `offsets`, record 0 is the base and the
// vectors are v_i = x_{i+1} - b rounded to float32; otherwise the vectors are the inputs themselves.

import { elementBytes, encode, storeEight, storeOne } from "./convert";
import { MAX_INPUTS, SUM_RECORD, TILE } from "./layout";
import { promoteHigh, sumLanes } from "./reduce";
import { slot, tileOf } from "./tile";

/** Pointer table of the current vectors' float32 tiles (in scratch, after the input slots). */
// @ts-ignore: decorator
@inline
function vectorTable(): usize {
  return slot(MAX_INPUTS + 1);
}

/**
 * Decodes `count` elements from element `start` of every input and leaves the float32 tiles of the
 * vectors in the pointer table (and, with offsets, the base's at entry MAX_INPUTS); returns the number
 * of vectors. Task vectors are written to the input's scratch slot (in place when the input was decoded
 * there).
 */
function stageVectors(table: usize, nInputs: i32, start: i32, count: i32, quant: i32, offsets: bool): i32 {
  const ptrs = vectorTable();
  if (!offsets) {
    for (let i = 0; i < nInputs; i++) {
      const rec = table + <usize>i * SUM_RECORD;
      store<u32>(ptrs + (<usize>i << 2), <u32>tileOf(load<u32>(rec), load<i32>(rec, 4), start, count, quant, i));
    }
    return nInputs;
  }
  const b = tileOf(load<u32>(table), load<i32>(table, 4), start, count, quant, 0);
  store<u32>(ptrs + (<usize>MAX_INPUTS << 2), <u32>b);
  for (let i = 1; i < nInputs; i++) {
    const rec = table + <usize>i * SUM_RECORD;
    const x = tileOf(load<u32>(rec), load<i32>(rec, 4), start, count, quant, i);
    const dst = slot(i);
    let j = 0;
    for (; j + 4 <= count; j += 4) {
      const o = <usize>j << 2;
      v128.store(dst + o, f32x4.sub(v128.load(x + o), v128.load(b + o)));
    }
    for (; j < count; j++) {
      const o = <usize>j << 2;
      store<f32>(dst + o, load<f32>(x + o) - load<f32>(b + o));
    }
    store<u32>(ptrs + (<usize>(i - 1) << 2), <u32>dst);
  }
  return nInputs - 1;
}

/** sum_j a[j] * b[j] in float64 over `count` float32 values: four lanes, combined in a fixed order. */
function dot(a: usize, b: usize, count: i32): f64 {
  let lo = f64x2.splat(0), hi = f64x2.splat(0);
  let j = 0;
  for (; j + 4 <= count; j += 4) {
    const o = <usize>j << 2;
    const va = v128.load(a + o), vb = v128.load(b + o);
    lo = f64x2.add(lo, f64x2.mul(f64x2.promote_low_f32x4(va), f64x2.promote_low_f32x4(vb)));
    hi = f64x2.add(hi, f64x2.mul(promoteHigh(va), promoteHigh(vb)));
  }
  let s = sumLanes(lo, hi);
  for (; j < count; j++) {
    const o = <usize>j << 2;
    s += <f64>load<f32>(a + o) * <f64>load<f32>(b + o);
  }
  return s;
}

/** The Gram entries of the staged vectors over `count` elements, added to (or stored at) `acc`. */
function gramInto(m: i32, count: i32, acc: usize, add: bool): void {
  const ptrs = vectorTable();
  let p = 0;
  for (let i = 0; i < m; i++) {
    const a = <usize>load<u32>(ptrs + (<usize>i << 2));
    for (let k = i; k < m; k++) {
      const d = dot(a, <usize>load<u32>(ptrs + (<usize>k << 2)), count);
      const at = acc + (<usize>p << 3);
      store<f64>(at, add ? load<f64>(at) + d : d);
      p++;
    }
  }
}

/** Gram matrix per tile (flat vectors): m(m+1)/2 float64 per tile at `partials`, pairs (i <= k) row by row. */
export function gramTiles(table: usize, nInputs: i32, n: i32, quant: i32, offsets: bool, partials: usize): void {
  const m = offsets ? nInputs - 1 : nInputs;
  const pairs = (m * (m + 1)) >> 1;
  let tile = 0;
  for (let t = 0; t < n; t += TILE) {
    const count = min(TILE, n - t);
    stageVectors(table, nInputs, t, count, quant, offsets);
    gramInto(m, count, partials + <usize>tile * <usize>pairs * 8, false);
    tile++;
  }
}

/**
 * Gram matrix per row of `cols` elements (n is a multiple of cols): m(m+1)/2 float64 per row. A row is
 * read in segments of TILE counted from its own start, so the sums depend on the row alone.
 */
export function gramRows(table: usize, nInputs: i32, n: i32, cols: i32, quant: i32, offsets: bool, partials: usize): void {
  const m = offsets ? nInputs - 1 : nInputs;
  const pairs = (m * (m + 1)) >> 1;
  let row = 0;
  for (let r = 0; r < n; r += cols) {
    const acc = partials + <usize>row * <usize>pairs * 8;
    for (let s = 0; s < cols; s += TILE) {
      const count = min(TILE, cols - s);
      stageVectors(table, nInputs, r + s, count, quant, offsets);
      gramInto(m, count, acc, s > 0);
    }
    row++;
  }
}

/** dst[c] += src[c] over `len` float64. */
function addF64(dst: usize, src: usize, len: i32): void {
  let j = 0;
  for (; j + 2 <= len; j += 2) {
    const o = <usize>j << 3;
    v128.store(dst + o, f64x2.add(v128.load(dst + o), v128.load(src + o)));
  }
  for (; j < len; j++) {
    const o = <usize>j << 3;
    store<f64>(dst + o, load<f64>(dst + o) + load<f64>(src + o));
  }
}

/**
 * Gram matrix per column of the chunk's rows (n is a multiple of cols): writes cols * m(m+1)/2 float64
 * at `out`, pair-major (entry p of column c at p * cols + c). Rows are summed as a pairwise tree: row
 * products are leaves, sibling subtrees are added when both are complete, and whatever is left at the
 * end is added from the right. The caller makes a chunk start at a multiple of a power of two rows at
 * least as large as the chunk, so a chunk's result is exactly one node of the tree over all rows, and
 * adding the chunks' nodes by the same rule gives the whole tensor's sums whatever the chunking.
 * `stack` holds `levels` nodes of cols * m(m+1)/2 float64 (levels >= log2(rows in the chunk) + 1).
 */
export function gramColumns(table: usize, nInputs: i32, n: i32, cols: i32, quant: i32, offsets: bool, stack: usize, out: usize): void {
  const m = offsets ? nInputs - 1 : nInputs;
  const pairs = (m * (m + 1)) >> 1;
  const node = <usize>pairs * <usize>cols * 8;
  const ptrs = vectorTable();
  let height = 0;
  let rows: u32 = 0;
  for (let r = 0; r < n; r += cols) {
    const leaf = stack + <usize>height * node;
    for (let s = 0; s < cols; s += TILE) {
      const count = min(TILE, cols - s);
      stageVectors(table, nInputs, r + s, count, quant, offsets);
      let p = 0;
      for (let i = 0; i < m; i++) {
        const a = <usize>load<u32>(ptrs + (<usize>i << 2));
        for (let k = i; k < m; k++) {
          const b = <usize>load<u32>(ptrs + (<usize>k << 2));
          const dst = leaf + (<usize>p * <usize>cols + <usize>s) * 8;
          let j = 0;
          for (; j + 4 <= count; j += 4) {
            const va = v128.load(a + (<usize>j << 2)), vb = v128.load(b + (<usize>j << 2));
            v128.store(dst + (<usize>j << 3), f64x2.mul(f64x2.promote_low_f32x4(va), f64x2.promote_low_f32x4(vb)));
            v128.store(dst + (<usize>j << 3), f64x2.mul(promoteHigh(va), promoteHigh(vb)), 16);
          }
          for (; j < count; j++) store<f64>(dst + (<usize>j << 3), <f64>load<f32>(a + (<usize>j << 2)) * <f64>load<f32>(b + (<usize>j << 2)));
          p++;
        }
      }
    }
    height++;
    rows++;
    // A completed pair of equal subtrees merges, as in a binary counter.
    for (let c = rows; (c & 1) == 0; c >>= 1) {
      addF64(stack + <usize>(height - 2) * node, stack + <usize>(height - 1) * node, pairs * cols);
      height--;
    }
  }
  while (height > 1) {
    addF64(stack + <usize>(height - 2) * node, stack + <usize>(height - 1) * node, pairs * cols);
    height--;
  }
  if (height == 1) memory.copy(out, stack, node);
  else memory.fill(out, 0, node);
}

/**
 * out = [b +] sum_i c_i * v_i over the chunk, in float32: c_i(x - b) products added in input order, the
 * base last. `coefs` holds m arrays of `perVector` float32 (vector i's at coefs + i * perVector * 4);
 * `layout` 0: one coefficient per vector (perVector = 1); 1: one per row of `cols` (the chunk's rows,
 * first row 0); 2: one per column. The chunk starts at a row boundary.
 */
export function combine(
  table: usize, nInputs: i32, n: i32, cols: i32, quant: i32, offsets: bool, layout: i32, coefs: usize, perVector: i32,
  out: usize, outDtype: i32,
): void {
  const m = offsets ? nInputs - 1 : nInputs;
  const outBytes = <usize>elementBytes(outDtype);
  const ptrs = vectorTable();
  const result = slot(MAX_INPUTS + 2);
  const coefStride = <usize>perVector << 2;
  for (let t = 0; t < n; t += TILE) {
    const count = min(TILE, n - t);
    stageVectors(table, nInputs, t, count, quant, offsets);
    const b = <usize>load<u32>(ptrs + (<usize>MAX_INPUTS << 2));
    // Segments of the tile over which each coefficient is constant (flat, rows) or runs along columns.
    for (let s = 0; s < count;) {
      let e = count;
      let k = 0; // coefficient index at element s
      if (layout == 1) {
        k = (t + s) / cols;
        e = min(count, (k + 1) * cols - t);
      } else if (layout == 2) {
        k = (t + s) % cols;
        e = min(count, s + (cols - k));
      }
      const perElement = layout == 2;
      const len = e - s;
      let j = 0;
      for (; j + 4 <= len; j += 4) {
        const o = <usize>(s + j) << 2;
        let acc = f32x4.splat(0);
        for (let i = 0; i < m; i++) {
          const cp = coefs + <usize>i * coefStride + (<usize>k << 2);
          const c = perElement ? v128.load(cp + (<usize>j << 2)) : v128.load32_splat(cp);
          const p = f32x4.mul(c, v128.load(<usize>load<u32>(ptrs + (<usize>i << 2)) + o));
          acc = i == 0 ? p : f32x4.add(acc, p);
        }
        if (offsets) acc = f32x4.add(v128.load(b + o), acc);
        v128.store(result + o, acc);
      }
      for (; j < len; j++) {
        const o = <usize>(s + j) << 2;
        let acc: f32 = 0;
        for (let i = 0; i < m; i++) {
          const cp = coefs + <usize>i * coefStride + (<usize>k << 2);
          const c = load<f32>(perElement ? cp + (<usize>j << 2) : cp);
          const p = c * load<f32>(<usize>load<u32>(ptrs + (<usize>i << 2)) + o);
          acc = i == 0 ? p : acc + p;
        }
        if (offsets) acc = load<f32>(b + o) + acc;
        store<f32>(result + o, acc);
      }
      s = e;
    }
    encode(result, outDtype, out + <usize>t * outBytes, count);
  }
}

/**
 * nearswap: with a = base and b = the other model, s = clamp(t / max(|a - b|, 1e-6), 0, 1) and
 * out = s*b + (1 - s)*a, all in float32.
 */
export function nearswap(a: usize, aDtype: i32, b: usize, bDtype: i32, n: i32, quant: i32, t: f32, out: usize, outDtype: i32): void {
  const outBytes = <usize>elementBytes(outDtype);
  const vt = f32x4.splat(t), floor = f32x4.splat(<f32>1e-6), zero = f32x4.splat(0), one = f32x4.splat(1);
  for (let s = 0; s < n; s += TILE) {
    const count = min(TILE, n - s);
    const va = tileOf(a, aDtype, s, count, quant, 0);
    const vb = tileOf(b, bDtype, s, count, quant, 1);
    const dst = out + <usize>s * outBytes;
    let j = 0;
    for (; j + 8 <= count; j += 8) {
      const o = <usize>j << 2;
      const a0 = v128.load(va + o), a1 = v128.load(va + o, 16), b0 = v128.load(vb + o), b1 = v128.load(vb + o, 16);
      let s0 = f32x4.div(vt, f32x4.max(f32x4.abs(f32x4.sub(a0, b0)), floor));
      let s1 = f32x4.div(vt, f32x4.max(f32x4.abs(f32x4.sub(a1, b1)), floor));
      s0 = f32x4.min(f32x4.max(s0, zero), one);
      s1 = f32x4.min(f32x4.max(s1, zero), one);
      const r0 = f32x4.add(f32x4.mul(s0, b0), f32x4.mul(f32x4.sub(one, s0), a0));
      const r1 = f32x4.add(f32x4.mul(s1, b1), f32x4.mul(f32x4.sub(one, s1), a1));
      storeEight(dst, outDtype, j, r0, r1);
    }
    for (; j < count; j++) {
      const o = <usize>j << 2;
      const x = load<f32>(va + o), y = load<f32>(vb + o);
      let w = t / max<f32>(abs<f32>(x - y), <f32>1e-6);
      w = min<f32>(max<f32>(w, 0), 1);
      storeOne(dst, outDtype, j, w * y + (1 - w) * x);
    }
  }
}
