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

import { elementBytes, loadLanes, loadOne, storeEight, storeOne } from "./convert";
import { MAX_INPUTS, SUM_RECORD, TILE } from "./layout";
import { promoteHigh, sumLanes } from "./reduce";
import { readableInputs, slot, tileOf } from "./tile";

/** Pointer table of the current vectors' float32 tiles (in scratch, after the input slots). */
// @ts-ignore: decorator
@inline
function vectorTable(): usize {
  return slot(MAX_INPUTS + 1);
}

/**
 * Decodes `count` elements from element `start` of every input and leaves the float32 tiles of the
 * vectors in the pointer table (and, with offsets, the base's at entry MAX_INPUTS); returns the number
 * of vectors. With `materialize`, task vectors are written to the input's scratch slot (in place when
 * the input was decoded there); without, the table points at the inputs and the caller subtracts.
 */
function stageVectors(table: usize, nInputs: i32, start: i32, count: i32, quant: i32, offsets: bool, materialize: bool = true): i32 {
  const ptrs = vectorTable();
  if (!offsets || !materialize) {
    if (offsets) store<u32>(ptrs + (<usize>MAX_INPUTS << 2), <u32>tileOf(load<u32>(table), load<i32>(table, 4), start, count, quant, 0));
    const first = offsets ? 1 : 0;
    for (let i = first; i < nInputs; i++) {
      const rec = table + <usize>i * SUM_RECORD;
      store<u32>(ptrs + (<usize>(i - first) << 2), <u32>tileOf(load<u32>(rec), load<i32>(rec, 4), start, count, quant, i));
    }
    return nInputs - first;
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

/** Lanes at offset o of a staged tile (task vectors computed here when `offsets`). */
// @ts-ignore: decorator
@inline
function lanesOf(ptr: usize, o: usize, offsets: bool, b: v128): v128 {
  const x = v128.load(ptr + o);
  return offsets ? f32x4.sub(x, b) : x;
}

// @ts-ignore: decorator
@inline
function mulLo(a: v128, b: v128): v128 {
  return f64x2.mul(f64x2.promote_low_f32x4(a), f64x2.promote_low_f32x4(b));
}

// @ts-ignore: decorator
@inline
function mulHi(a: v128, b: v128): v128 {
  return f64x2.mul(promoteHigh(a), promoteHigh(b));
}

/**
 * Two or three vectors: every pair's dot in one sweep with the accumulators in registers. The same
 * additions in the same order as `dot`, so the same bits.
 */
function gramSmall(m: i32, count: i32, offsets: bool, acc: usize, add: bool): void {
  const bp = <usize>load<u32>(vectorTable() + (<usize>MAX_INPUTS << 2));
  const zero = f64x2.splat(0);
  let l00 = zero, h00 = zero, l01 = zero, h01 = zero, l11 = zero, h11 = zero;
  let l02 = zero, h02 = zero, l12 = zero, h12 = zero, l22 = zero, h22 = zero;
  const p0 = <usize>load<u32>(vectorTable()), p1 = <usize>load<u32>(vectorTable(), 4), p2 = m == 3 ? <usize>load<u32>(vectorTable(), 8) : p1;
  let j = 0;
  for (; j + 4 <= count; j += 4) {
    const o = <usize>j << 2;
    const b = offsets ? v128.load(bp + o) : f32x4.splat(0);
    const v0 = lanesOf(p0, o, offsets, b), v1 = lanesOf(p1, o, offsets, b);
    l00 = f64x2.add(l00, mulLo(v0, v0)); h00 = f64x2.add(h00, mulHi(v0, v0));
    l01 = f64x2.add(l01, mulLo(v0, v1)); h01 = f64x2.add(h01, mulHi(v0, v1));
    l11 = f64x2.add(l11, mulLo(v1, v1)); h11 = f64x2.add(h11, mulHi(v1, v1));
    if (m == 3) {
      const v2 = lanesOf(p2, o, offsets, b);
      l02 = f64x2.add(l02, mulLo(v0, v2)); h02 = f64x2.add(h02, mulHi(v0, v2));
      l12 = f64x2.add(l12, mulLo(v1, v2)); h12 = f64x2.add(h12, mulHi(v1, v2));
      l22 = f64x2.add(l22, mulLo(v2, v2)); h22 = f64x2.add(h22, mulHi(v2, v2));
    }
  }
  // As in `dot`: the lane sums, then the last (fewer than four) products in order, then into acc.
  const sums = slot(MAX_INPUTS + 3);
  if (m == 2) {
    store<f64>(sums, sumLanes(l00, h00)); store<f64>(sums, sumLanes(l01, h01), 8); store<f64>(sums, sumLanes(l11, h11), 16);
  } else {
    store<f64>(sums, sumLanes(l00, h00)); store<f64>(sums, sumLanes(l01, h01), 8); store<f64>(sums, sumLanes(l02, h02), 16);
    store<f64>(sums, sumLanes(l11, h11), 24); store<f64>(sums, sumLanes(l12, h12), 32); store<f64>(sums, sumLanes(l22, h22), 40);
  }
  let p = 0;
  for (let a = 0; a < m; a++) {
    for (let c = a; c < m; c++) {
      let d = load<f64>(sums + (<usize>p << 3));
      for (let e = j; e < count; e++) {
        const o = <usize>e << 2;
        const bv: f32 = offsets ? load<f32>(bp + o) : 0;
        const x = load<f32>(<usize>load<u32>(vectorTable() + (<usize>a << 2)) + o), y = load<f32>(<usize>load<u32>(vectorTable() + (<usize>c << 2)) + o);
        d += <f64>(offsets ? x - bv : x) * <f64>(offsets ? y - bv : y);
      }
      const at = acc + (<usize>p << 3);
      store<f64>(at, add ? load<f64>(at) + d : d);
      p++;
    }
  }
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

/** The Gram entries of `count` elements from `start`, stored at (or added to) `acc`. */
function gramSegment(table: usize, nInputs: i32, m: i32, start: i32, count: i32, quant: i32, offsets: bool, acc: usize, add: bool): void {
  if (m == 2 || m == 3) {
    stageVectors(table, nInputs, start, count, quant, offsets, false);
    gramSmall(m, count, offsets, acc, add);
  } else {
    stageVectors(table, nInputs, start, count, quant, offsets);
    gramInto(m, count, acc, add);
  }
}

/** Gram matrix per tile (flat vectors): m(m+1)/2 float64 per tile at `partials`, pairs (i <= k) row by row. */
export function gramTiles(table: usize, nInputs: i32, n: i32, quant: i32, offsets: bool, partials: usize): void {
  const m = offsets ? nInputs - 1 : nInputs;
  const pairs = (m * (m + 1)) >> 1;
  let tile = 0;
  for (let t = 0; t < n; t += TILE) {
    const count = min(TILE, n - t);
    gramSegment(table, nInputs, m, t, count, quant, offsets, partials + <usize>tile * <usize>pairs * 8, false);
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
      gramSegment(table, nInputs, m, r + s, count, quant, offsets, acc, s > 0);
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
 * out = [b +] sum_i c_i * v_i over the chunk, in float32: the products c_i (x_i - b) added in input
 * order, then the base (the same steps as the task-arithmetic kernel). `coefs` holds m arrays of
 * `perVector` float32 (vector i's at coefs + i * perVector * 4); `layout` 0: one coefficient per vector
 * (perVector = 1); 1: one per row of `cols` (the chunk's rows, first row 0); 2: one per column. The
 * chunk starts at a row boundary. Inputs are read in place where their dtype allows.
 */
export function combine(
  table: usize, nInputs: i32, n: i32, cols: i32, quant: i32, offsets: bool, layout: i32, coefs: usize, perVector: i32,
  out: usize, outDtype: i32,
): void {
  const first = offsets ? 1 : 0;
  const m = nInputs - first;
  const outBytes = <usize>elementBytes(outDtype);
  const inputs = slot(MAX_INPUTS + 1); // per input: pointer, dtype, coefficient splatted (32 bytes)
  const coefStride = <usize>perVector << 2;
  const columns = layout == 2;
  for (let t = 0; t < n; t += TILE) {
    const count = min(TILE, n - t);
    readableInputs(table, SUM_RECORD, -1, nInputs, t, count, quant, inputs);
    const bp = <usize>load<u32>(inputs), bd = load<i32>(inputs, 4);
    const dst = out + <usize>t * outBytes;
    // Segments of the tile over which each coefficient is constant (flat, rows) or runs along columns.
    for (let s = 0; s < count;) {
      let e = count;
      let k = 0; // coefficient index at element s
      if (layout == 1) {
        k = (t + s) / cols;
        e = min(count, (k + 1) * cols - t);
      } else if (columns) {
        k = (t + s) % cols;
        e = min(count, s + (cols - k));
      }
      if (!columns) {
        for (let i = 0; i < m; i++) {
          v128.store(inputs + (<usize>(i + first) << 5), v128.load32_splat(coefs + <usize>i * coefStride + (<usize>k << 2)), 16);
        }
      }
      // Coefficients of element j (columns): at c0 + (j << 2) in vector i's array.
      const c0 = coefs + (<usize>k << 2) - (<usize>s << 2);
      let j = s;
      for (; j + 8 <= e; j += 8) {
        let b0 = f32x4.splat(0), b1 = f32x4.splat(0);
        if (offsets) { b0 = loadLanes(bp, bd, j); b1 = loadLanes(bp, bd, j + 4); }
        let a0 = f32x4.splat(0), a1 = f32x4.splat(0);
        for (let i = 0; i < m; i++) {
          const at = inputs + (<usize>(i + first) << 5);
          const ptr = <usize>load<u32>(at), dtype = load<i32>(at, 4);
          let w0: v128, w1: v128;
          if (columns) {
            const cp = c0 + <usize>i * coefStride + (<usize>j << 2);
            w0 = v128.load(cp);
            w1 = v128.load(cp, 16);
          } else {
            w0 = v128.load(at, 16);
            w1 = w0;
          }
          let x0 = loadLanes(ptr, dtype, j), x1 = loadLanes(ptr, dtype, j + 4);
          if (offsets) { x0 = f32x4.sub(x0, b0); x1 = f32x4.sub(x1, b1); }
          const p0 = f32x4.mul(x0, w0), p1 = f32x4.mul(x1, w1);
          if (i == 0) { a0 = p0; a1 = p1; } else { a0 = f32x4.add(a0, p0); a1 = f32x4.add(a1, p1); }
        }
        if (offsets) { a0 = f32x4.add(b0, a0); a1 = f32x4.add(b1, a1); }
        storeEight(dst, outDtype, j, a0, a1);
      }
      for (; j < e; j++) {
        const b: f32 = offsets ? loadOne(bp, bd, j) : 0;
        let acc: f32 = 0;
        for (let i = 0; i < m; i++) {
          const at = inputs + (<usize>(i + first) << 5);
          const w = columns ? load<f32>(c0 + <usize>i * coefStride + (<usize>j << 2)) : load<f32>(at, 16);
          let x = loadOne(<usize>load<u32>(at), load<i32>(at, 4), j);
          if (offsets) x = x - b;
          const p = x * w;
          acc = i == 0 ? p : acc + p;
        }
        storeOne(dst, outDtype, j, offsets ? b + acc : acc);
      }
      s = e;
    }
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
