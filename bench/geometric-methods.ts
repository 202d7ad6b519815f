// Kernel throughput of the geometric methods (issue 10) for `npm run bench`'s section 2, in the shape
// of bench/methods.ts: each entry is a tensor operation the run times with the wasm kernels (runTensor
// on a resident tensor) next to `plain`, the same math as plain TypeScript loops over Float32Arrays
// (karcher's plain loop iterates over the data, as mergekit does; the kernels iterate on the Gram
// matrix).
import type { TensorOp } from "../src/plan/plan";

export interface GeometricBenchContext {
  /** Float32 tensors of equal length: the base first, then the fine-tunes. */
  arrays: Float32Array[];
  /** Where plain() writes. */
  dst: Float32Array;
}

export interface GeometricBenchCase {
  name: string;
  inputs: number;
  op: TensorOp;
  plain: () => void;
}

/** Row length of the row-wise variants (the tensors are timed as [numel / ROW, ROW]). */
const ROW = 4096;

export function geometricBenchCases(ctx: GeometricBenchContext): GeometricBenchCase[] {
  const [b, x, y] = ctx.arrays as [Float32Array, Float32Array, Float32Array];
  const out = ctx.dst;
  return [
    { name: "nuslerp", inputs: 3, op: { kind: "nuslerp", t: 0.4, layout: "flat", cols: b.length, offsets: true }, plain: () => nuslerp(b, x, y, 0.4, b.length, out) },
    { name: "nuslerp (rows)", inputs: 3, op: { kind: "nuslerp", t: 0.4, layout: "rows", cols: ROW, offsets: true }, plain: () => nuslerp(b, x, y, 0.4, ROW, out) },
    {
      name: "multislerp", inputs: 3, op: { kind: "multislerp", weights: [1, 0.5], normalizeWeights: true, eps: 1e-8, offsets: true },
      plain: () => multislerp(b, [x, y], [1, 0.5], out),
    },
    { name: "karcher", inputs: 3, op: { kind: "karcher", maxIter: 10, tol: 1e-5 }, plain: () => karcher([b, x, y], 10, 1e-5, out) },
    { name: "model_stock", inputs: 3, op: { kind: "modelStock", layout: "flat", cols: b.length }, plain: () => modelStock(b, [x, y], b.length, out) },
    { name: "model_stock (rows)", inputs: 3, op: { kind: "modelStock", layout: "rows", cols: ROW }, plain: () => modelStock(b, [x, y], ROW, out) },
    { name: "nearswap", inputs: 2, op: { kind: "nearswap", t: 1e-4 }, plain: () => nearswap(b, x, 1e-4, out) },
    { name: "arcee_fusion", inputs: 2, op: { kind: "arceeFusion", cols: ROW }, plain: () => arceeFusion(b, x, ROW, out) },
  ];
}

const f32 = Math.fround;

function nuslerp(b: Float32Array, x: Float32Array, y: Float32Array, t: number, row: number, out: Float32Array): void {
  for (let r = 0; r < b.length; r += row) {
    let aa = 0, bb = 0, ab = 0;
    for (let i = r; i < r + row; i++) {
      const u = f32(x[i]! - b[i]!), v = f32(y[i]! - b[i]!);
      aa += u * u; bb += v * v; ab += u * v;
    }
    const cos = Math.min(1, Math.max(-1, ab / (Math.max(Math.sqrt(aa), 1e-7) * Math.max(Math.sqrt(bb), 1e-7))));
    const theta = Math.acos(cos), s = Math.sin(theta);
    const c0 = f32(Math.abs(s) < 1e-8 ? 1 - t : Math.sin((1 - t) * theta) / s), c1 = f32(Math.abs(s) < 1e-8 ? t : Math.sin(t * theta) / s);
    for (let i = r; i < r + row; i++) out[i] = f32(b[i]! + f32(f32(c0 * f32(x[i]! - b[i]!)) + f32(c1 * f32(y[i]! - b[i]!))));
  }
}

function norm(v: Float32Array | Float64Array): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  return Math.sqrt(s);
}

function multislerp(b: Float32Array, xs: Float32Array[], weights: number[], out: Float32Array): void {
  const eps = 1e-8, n = b.length;
  const total = weights.reduce((a, c) => a + c, 0);
  const w = weights.map((v) => v / total);
  const ys = xs.map((x) => Float32Array.from(x, (v, i) => v - b[i]!));
  const norms = ys.map(norm);
  const mean = new Float32Array(n);
  ys.forEach((y, k) => { for (let i = 0; i < n; i++) mean[i] += (w[k]! * y[i]!) / (norms[k]! + eps); });
  const mn = norm(mean);
  for (let i = 0; i < n; i++) mean[i] /= mn;
  const tangent = new Float32Array(n);
  ys.forEach((y, k) => {
    let d = 0;
    for (let i = 0; i < n; i++) d += (y[i]! / (norms[k]! + eps)) * mean[i]!;
    for (let i = 0; i < n; i++) tangent[i] += w[k]! * (y[i]! / (norms[k]! + eps) - d * mean[i]!);
  });
  const tn = norm(tangent) + eps;
  const scale = w.reduce((s, wk, k) => s + wk * norms[k]!, 0);
  for (let i = 0; i < n; i++) out[i] = b[i]! + scale * (mean[i]! * Math.cos(tn) + tangent[i]! * (Math.sin(tn) / tn));
}

function karcher(xs: Float32Array[], maxIter: number, tol: number, out: Float32Array): void {
  const n = out.length, m = xs.length;
  const norms = xs.map(norm);
  const units = xs.map((x, k) => Float32Array.from(x, (v) => v / norms[k]!));
  // float32 vectors, as mergekit's karcher keeps u in the tensors' dtype (and to bound the memory).
  let u = new Float32Array(n);
  for (const unit of units) for (let i = 0; i < n; i++) u[i] += unit[i]! / m;
  const nu = norm(u);
  for (let i = 0; i < n; i++) u[i] /= nu;
  for (let iter = 0; iter < maxIter; iter++) {
    const T = new Float32Array(n);
    for (const unit of units) {
      let d = 0;
      for (let i = 0; i < n; i++) d += u[i]! * unit[i]!;
      d = Math.min(1, Math.max(-1, d));
      const theta = Math.acos(d);
      if (theta < tol) continue;
      const f = theta / Math.sin(theta) / m;
      for (let i = 0; i < n; i++) T[i] += f * (unit[i]! - d * u[i]!);
    }
    const nt = norm(T);
    if (nt < tol) break;
    const next = new Float32Array(n);
    for (let i = 0; i < n; i++) next[i] = Math.cos(nt) * u[i]! + Math.sin(nt) * (T[i]! / nt);
    const un = norm(next);
    for (let i = 0; i < n; i++) next[i] /= un;
    u = next;
  }
  const s = norms.reduce((a, v) => a + v / m, 0);
  for (let i = 0; i < n; i++) out[i] = s * u[i]!;
}

function modelStock(b: Float32Array, xs: Float32Array[], row: number, out: Float32Array): void {
  const m = xs.length;
  for (let r = 0; r < b.length; r += row) {
    const g = new Float64Array(m * m);
    for (let i = r; i < r + row; i++) {
      for (let p = 0; p < m; p++) {
        const tp = f32(xs[p]![i]! - b[i]!);
        for (let q = p; q < m; q++) g[p * m + q] += tp * f32(xs[q]![i]! - b[i]!);
      }
    }
    let sum = 0, pairs = 0;
    for (let p = 0; p < m; p++) for (let q = p + 1; q < m; q++, pairs++) sum += Math.min(1, Math.max(-1, g[p * m + q]! / Math.max(Math.sqrt(g[p * m + p]! * g[q * m + q]!), 1e-6)));
    const c = sum / pairs, t = (m * c) / (1 + (m - 1) * c);
    const k = f32(t / m);
    for (let i = r; i < r + row; i++) {
      let acc = 0;
      for (let p = 0; p < m; p++) acc = f32(acc + f32(k * f32(xs[p]![i]! - b[i]!)));
      out[i] = f32(b[i]! + acc);
    }
  }
}

function nearswap(a: Float32Array, b: Float32Array, t: number, out: Float32Array): void {
  const tt = f32(t), floor = f32(1e-6);
  for (let i = 0; i < a.length; i++) {
    const s = Math.min(Math.max(f32(tt / Math.max(Math.abs(f32(a[i]! - b[i]!)), floor)), 0), 1);
    out[i] = f32(f32(s * b[i]!) + f32(f32(1 - s) * a[i]!));
  }
}

function arceeFusion(a: Float32Array, b: Float32Array, row: number, out: Float32Array): void {
  const n = a.length;
  const importance = new Float32Array(n);
  const ea = new Float64Array(row), eb = new Float64Array(row);
  for (let r = 0; r < n; r += row) {
    let ma = -Infinity, mb = -Infinity;
    for (let j = 0; j < row; j++) { ma = Math.max(ma, a[r + j]!); mb = Math.max(mb, b[r + j]!); }
    let sa = 0, sb = 0;
    for (let j = 0; j < row; j++) { sa += ea[j] = Math.exp(a[r + j]! - ma); sb += eb[j] = Math.exp(b[r + j]! - mb); }
    let kl = 0;
    for (let j = 0; j < row; j++) {
      const p = eb[j]! / sb + 1e-8, q = ea[j]! / sa + 1e-8;
      kl += p * Math.log(p / q);
    }
    const k = f32(kl);
    for (let j = r; j < r + row; j++) importance[j] = f32(Math.abs(f32(b[j]! - a[j]!)) * k);
  }
  const sorted = importance.slice().sort();
  const q = (x: number) => sorted[Math.floor(x * (n - 1))]!;
  const threshold = f32(q(0.5) + 1.5 * (q(0.75) - q(0.25)));
  for (let i = 0; i < n; i++) out[i] = importance[i]! >= threshold ? b[i]! : a[i]!;
}
