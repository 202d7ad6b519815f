// The merge math as plain TypeScript loops over Float32Arrays: the baseline the kernels are compared
// with in `npm run bench`. Same algorithms (a 3-pass radix select for TIES, the same DARE generator),
// no SIMD, no tiling.

const f32 = Math.fround;

export function linear(xs: Float32Array[], w: number[], out: Float32Array): void {
  let W = 0;
  for (const v of w) W = f32(W + v);
  for (let i = 0; i < out.length; i++) {
    let acc = 0;
    for (let m = 0; m < xs.length; m++) acc = f32(acc + f32(w[m]! * xs[m]![i]!));
    out[i] = acc / W;
  }
}

export function taskArithmetic(b: Float32Array, xs: Float32Array[], w: number[], lambda: number, out: Float32Array): void {
  for (let i = 0; i < out.length; i++) {
    let acc = 0;
    for (let m = 0; m < xs.length; m++) acc = f32(acc + f32(f32(xs[m]![i]! - b[i]!) * w[m]!));
    out[i] = f32(b[i]! + f32(acc * lambda));
  }
}

export function slerp(a: Float32Array, b: Float32Array, t: number, out: Float32Array): void {
  let aa = 0, bb = 0, ab = 0;
  for (let i = 0; i < a.length; i++) { aa += a[i]! * a[i]!; bb += b[i]! * b[i]!; ab += a[i]! * b[i]!; }
  const d = ab / (Math.sqrt(aa) * Math.sqrt(bb));
  const theta = Math.acos(d);
  const s0 = f32(Math.sin(theta - theta * t) / Math.sin(theta)), s1 = f32(Math.sin(theta * t) / Math.sin(theta));
  for (let i = 0; i < out.length; i++) out[i] = f32(f32(s0 * a[i]!) + f32(s1 * b[i]!));
}

/** The k-th largest |x - b| as float bits, by three histogram passes (11, 10 and 10 bits). */
function kthLargest(x: Float32Array, b: Float32Array, k: number): { threshold: number; ties: number } {
  const tau = new Float32Array(1), bits = new Uint32Array(tau.buffer);
  let lo = 0, shift = 20, above = 0;
  for (;;) {
    const hist = new Uint32Array(2048);
    const width = 2 ** (shift + 11);
    for (let i = 0; i < x.length; i++) {
      tau[0] = x[i]! - b[i]!;
      const key = bits[0]! & 0x7fffffff;
      if (key >= lo && key - lo < width) hist[Math.floor((key - lo) / 2 ** shift)]!++;
    }
    let cum = above, bucket = 2047;
    for (; bucket >= 0; bucket--) {
      if (cum + hist[bucket]! >= k) break;
      cum += hist[bucket]!;
    }
    lo += bucket * 2 ** shift;
    above = cum;
    if (shift === 0) return { threshold: lo, ties: k - cum };
    shift = Math.max(0, shift - 11);
  }
}

export function ties(b: Float32Array, xs: Float32Array[], w: number[], density: number[], out: Float32Array): void {
  const n = b.length;
  const tau = new Float32Array(1), bits = new Uint32Array(tau.buffer);
  const sel = xs.map((x, m) => kthLargest(x, b, Math.floor(density[m]! * n)));
  const budget = sel.map((s) => s.ties);
  const p = new Float32Array(xs.length);
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let m = 0; m < xs.length; m++) {
      tau[0] = xs[m]![i]! - b[i]!;
      const key = bits[0]! & 0x7fffffff;
      let keep = key > sel[m]!.threshold;
      if (key === sel[m]!.threshold && budget[m]! > 0) { keep = true; budget[m]!--; }
      p[m] = keep ? f32(tau[0]! * w[m]!) : 0;
      sum = m === 0 ? p[m]! : f32(sum + p[m]!);
    }
    let mixed = 0, div = 0;
    for (let m = 0; m < xs.length; m++) {
      const agree = sum >= 0 ? p[m]! > 0 : p[m]! < 0;
      if (agree) { mixed = f32(mixed + p[m]!); div = f32(div + w[m]!); }
    }
    out[i] = f32(b[i]! + f32(mixed / (div === 0 ? 1 : div)));
  }
}

function mix(x: number): number {
  x ^= x >>> 16; x = Math.imul(x, 0x21f0aaad); x ^= x >>> 15; x = Math.imul(x, 0x735a2d97); x ^= x >>> 15;
  return x >>> 0;
}

export function dareTies(b: Float32Array, xs: Float32Array[], w: number[], keys: number[], threshold: number, out: Float32Array): void {
  const n = b.length;
  const high = 0x9e3779b9;
  const scale = xs.map((x, m) => {
    let all = 0, kept = 0;
    for (let i = 0; i < n; i++) {
      const t = Math.abs(f32(x[i]! - b[i]!));
      all += t;
      if (mix((mix((i ^ keys[m]!) >>> 0) ^ high) >>> 0) < threshold) kept += t;
    }
    return f32(all / kept);
  });
  const p = new Float32Array(xs.length);
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let m = 0; m < xs.length; m++) {
      const keep = mix((mix((i ^ keys[m]!) >>> 0) ^ high) >>> 0) < threshold;
      p[m] = keep ? f32(f32(f32(xs[m]![i]! - b[i]!) * scale[m]!) * w[m]!) : 0;
      sum = m === 0 ? p[m]! : f32(sum + p[m]!);
    }
    let mixed = 0;
    for (let m = 0; m < xs.length; m++) if (sum >= 0 ? p[m]! > 0 : p[m]! < 0) mixed = f32(mixed + p[m]!);
    out[i] = f32(b[i]! + mixed);
  }
}
