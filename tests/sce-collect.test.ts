// sce's bracket pass (assembly/sce.ts sceCollect): the variance bits inside [lo, hi] copied out in
// element order while the capacity lasts, every one of them counted, and those above counted, against a
// plain filter of the same bits. Variance bits are non-negative doubles and NaN with the sign bit clear
// (as the variance pass stores every NaN); the brackets are closed, open at either end, a single value, and
// the capacity is ample, exact, one short and zero. Lengths end in an odd element.
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadKernels } from "../src/kernels/kernels";
import { SCE_CUT_ABOVE, SCE_CUT_BYTES, SCE_CUT_EQUAL } from "../assembly/layout";
import { uniform } from "./helpers/fixtures";

const NAN = 0x7ff8000000000000n, INF = 0x7ff0000000000000n, ALL = 0xffffffffffffffffn;

/** Variance bits: small and large doubles, many repeats, zeros, +inf and NaN. */
function varianceBits(n: number, seed: number): BigUint64Array {
  const view = new DataView(new ArrayBuffer(8));
  return BigUint64Array.from({ length: n }, (_, j) => {
    const u = uniform(seed, j);
    if (u < 0.05) return 0n;
    if (u < 0.07) return NAN;
    if (u < 0.09) return INF;
    view.setFloat64(0, u < 0.5 ? Math.floor(uniform(seed + 1, j) * 8) / 64 : uniform(seed + 2, j) * 2 ** Math.floor(uniform(seed + 3, j) * 40 - 20), true);
    return view.getBigUint64(0, true);
  });
}

test("sceCollect copies the variances inside the bracket in element order, counts them all and those above", async () => {
  const k = await loadKernels(64 << 20);
  const words = (x: bigint): [number, number] => [Number(x >> 32n), Number(x & 0xffffffffn)];
  let cases = 0;
  for (const n of [0, 1, 2, 3, 17, 1000, 4097]) {
    const bits = varianceBits(n, n + 7);
    const sorted = bits.slice().sort();
    const pick = (q: number) => (n === 0 ? 0n : sorted[Math.min(n - 1, Math.floor(q * n))]!);
    const brackets: [bigint, bigint][] = [[pick(0.3), pick(0.6)], [0n, pick(0.5)], [pick(0.5), ALL], [0n, ALL], [pick(0.97), NAN], [pick(0.4), pick(0.4)], [INF, INF], [1n, 0n]];
    for (const [lo, hi] of brackets) {
      const inside = [...bits].filter((x) => x >= lo && x <= hi);
      const above = [...bits].filter((x) => x > hi).length;
      for (const capacity of [n, inside.length, Math.max(0, inside.length - 1), 0]) {
        k.arena.reset();
        const vars = k.arena.alloc(n * 8 + 8), cand = k.arena.alloc((capacity + 1) * 8 + 8), result = k.arena.alloc(SCE_CUT_BYTES);
        new BigUint64Array(k.exports.memory.buffer, vars, n).set(bits);
        const guard = new BigUint64Array(k.exports.memory.buffer, cand + (capacity + 1) * 8, 1);
        guard[0] = 0x0123456789abcdefn;
        k.exports.sceCollect(vars, n, ...words(lo), ...words(hi), cand, capacity, result);
        const what = `n ${n}, [${lo.toString(16)}, ${hi.toString(16)}], capacity ${capacity}`;
        const v = new DataView(k.exports.memory.buffer);
        assert.equal(v.getFloat64(result + SCE_CUT_EQUAL, true), inside.length, `${what}: inside`);
        assert.equal(v.getFloat64(result + SCE_CUT_ABOVE, true), above, `${what}: above`);
        const kept = Math.min(inside.length, capacity);
        assert.deepEqual([...new BigUint64Array(k.exports.memory.buffer, cand, kept)], inside.slice(0, kept), `${what}: the copies`);
        assert.equal(new BigUint64Array(k.exports.memory.buffer, cand + (capacity + 1) * 8, 1)[0], 0x0123456789abcdefn, `${what}: nothing written past capacity + 1`);
        cases++;
      }
    }
  }
  assert.equal(cases, 7 * 8 * 4);
});
