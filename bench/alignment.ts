// Section 7 of `npm run bench`: weight matching (Git Re-Basin). A 3 x 1024-wide MLP from two
// independent inits, in memory on one core (the matching has real work to do); and a Llama-shaped model
// of about 100M parameters, BF16 files, whose second copy is a planted permutation of the first plus
// noise, aligned file to file by `align` in its own process (so its peak RSS is its own) on 1 and 2
// workers, the outputs compared byte for byte.
import { spawnSync } from "node:child_process";
import { mkdir, open, readFile, rm, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { llamaSpec, mlpSpec } from "../src/align/architectures";
import { checkSpec, gather, tensorMaps, type CheckedSpec, type PermutationSpec, type Permutations } from "../src/align/spec";
import { weightMatching, type Tensor } from "../src/align/weight-matching";
import { planFile } from "../src/format/safetensors";
import { readFloatTensors } from "../src/align/checkpoint";
import { openModel } from "../src/model/model";
import { resolveModel } from "../src/model/resolve";
import { llamaTensors } from "../src/example/models";

type Line = (s?: string) => void;
const fmt = (x: number, d = 2) => x.toFixed(d);
const MiB = 1048576;
const load = () => loadavg().map((x) => x.toFixed(2)).join(" ");

/** Uniform in [-0.5, 0.5) from a seed (xorshift32). */
const uniform = (seed: number) => { let x = seed >>> 0 || 1; return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 4294967296 - 0.5; }; };

export async function alignmentSection(dir: string, quick: boolean, line: Line): Promise<void> {
  line(`7. Weight matching (Git Re-Basin); similarity GEMMs dominate (2·n·elements flops per group)`);
  await mlpInMemory(quick, line);
  await llamaFileToFile(dir, quick, line);
  line();
}

async function mlpInMemory(quick: boolean, line: Line): Promise<void> {
  const widths = quick ? [784, 256, 256, 256, 10] : [784, 1024, 1024, 1024, 10];
  const mlp = (seed: number) => {
    const m = new Map<string, Tensor>();
    for (let l = 0; l + 1 < widths.length; l++) {
      const r = uniform(seed * 100 + l), [inp, out] = [widths[l]!, widths[l + 1]!];
      m.set(`layers.${l}.weight`, { shape: [out, inp], data: Float32Array.from({ length: out * inp }, r) });
      m.set(`layers.${l}.bias`, { shape: [out], data: Float32Array.from({ length: out }, r) });
    }
    return m;
  };
  const a = mlp(1), b = mlp(2);
  const shapes = new Map([...a].map(([k, t]) => [k, t.shape]));
  const spec = mlpSpec(shapes);
  const sweepTimes: number[] = [];
  let last = performance.now();
  const t0 = last, before = load();
  const result = await weightMatching(spec, a, b, { seed: 1, maxSweeps: 100, onGroup: (e) => {
    if (e.done === e.groups) { const now = performance.now(); sweepTimes.push(now - last); last = now; }
  } });
  const total = (performance.now() - t0) / 1000;
  const params = [...a.values()].reduce((n, t) => n + t.data.length, 0);
  line(`   MLP ${widths.join("-")}, independent inits, in memory, one core: ${(params / 1e6).toFixed(1)}M parameters, ${checkSpec(spec, shapes).sizes.size} groups: ${fmt(total, 1)} s, ${result.sweeps} sweeps (${fmt(Math.max(...sweepTimes) / 1000, 2)} s the slowest, ${fmt(sweepTimes.at(-1)! / 1000, 2)} s the last: groups whose inputs did not change are not solved again); load average ${before} -> ${load()}`);
}

/**
 * Writes the reference (uniform values) and the model to align (the reference with every group
 * permuted by `planted`, plus uniform noise of ±0.005) as BF16 safetensors, a tensor at a time.
 */
async function writePair(folders: [string, string], spec: CheckedSpec, planted: Permutations, config: object, names: { name: string; shape: number[] }[]): Promise<void> {
  const layout = planFile(names.map((t) => ({ ...t, dtype: "BF16", bytes: 2 * t.shape.reduce((x, y) => x * y, 1) })), { format: "pt" });
  const files = [];
  for (const folder of folders) {
    await mkdir(folder, { recursive: true });
    await writeFile(join(folder, "config.json"), JSON.stringify(config));
    const fh = await open(join(folder, "model.safetensors"), "w");
    await fh.write(layout.head, 0, layout.head.length, 0);
    files.push(fh);
  }
  const noise = uniform(7);
  const bf16 = (f: Float32Array) => {
    const bits = new Uint32Array(f.buffer, f.byteOffset, f.length), out = new Uint16Array(f.length);
    for (let i = 0; i < f.length; i++) { const b = bits[i]!; out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16; }
    return new Uint8Array(out.buffer);
  };
  for (const [i, t] of names.entries()) {
    const a = Float32Array.from({ length: t.shape.reduce((x, y) => x * y, 1) }, uniform(1000 + i));
    const b = spec.tensors.has(t.name) ? gather(a, t.shape, tensorMaps(spec, t.name, planted), new Float32Array(a.length)) : a.slice();
    for (let j = 0; j < b.length; j++) b[j] += noise() * 0.01;
    const at = layout.offsets.get(t.name)!;
    for (const [m, data] of [a, b].entries()) { const bytes = bf16(data); await files[m]!.write(bytes, 0, bytes.length, at); }
  }
  for (const fh of files) await fh.close();
}

async function llamaFileToFile(dir: string, quick: boolean, line: Line): Promise<void> {
  const shape = quick ? { vocab: 4000, hidden: 256, intermediate: 704, layers: 4, heads: 8, kvHeads: 4 } : { vocab: 16000, hidden: 768, intermediate: 2048, layers: 12, heads: 12, kvHeads: 4 };
  const names = llamaTensors(shape);
  const shapes = new Map(names.map((t) => [t.name, t.shape]));
  const config = { architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: shape.hidden, num_attention_heads: shape.heads, num_key_value_heads: shape.kvHeads, num_hidden_layers: shape.layers, intermediate_size: shape.intermediate, vocab_size: shape.vocab, torch_dtype: "bfloat16" };
  const spec: PermutationSpec = llamaSpec(config, shapes);
  const checked = checkSpec(spec, shapes);
  const r = uniform(7);
  const planted: Permutations = new Map([...checked.sizes].map(([g, n]) => {
    const p = Int32Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) { const j = Math.floor((r() + 0.5) * (i + 1)); [p[i], p[j]] = [p[j]!, p[i]!]; }
    return [g, p];
  }));
  const root = join(dir, `align-${shape.hidden}-${shape.layers}`);
  const [a, b] = [join(root, "a"), join(root, "b")];
  await writePair([a, b], checked, planted, config, names);
  const params = names.reduce((n, t) => n + t.shape.reduce((x, y) => x * y, 1), 0);
  line(`   Llama-shaped ${shape.layers} x ${shape.hidden} (GQA ${shape.heads}/${shape.kvHeads}, MLP ${shape.intermediate}, vocab ${shape.vocab}), ${(params / 1e6).toFixed(1)}M parameters, BF16 files, ${checked.sizes.size} groups,`);
  line(`   planted permutation + noise; \`align\` file to file in its own process (seed 1, at most 10 sweeps), inputs in the page cache`);
  const child = fileURLToPath(new URL("./align-child.js", import.meta.url));
  const outputs: Uint8Array[] = [];
  for (const workers of [1, 2]) {
    const out = join(root, `out-${workers}`);
    spawnSync("sync");
    const before = load();
    const run = spawnSync(process.execPath, [child, a, b, out, String(workers)], { encoding: "utf8" });
    if (run.status !== 0) throw new Error(`align, ${workers} workers: ${run.stderr}`);
    const s = JSON.parse(run.stdout) as { wall: number; sweeps: number; sweepSeconds: number[]; cpuSeconds: number; peakRss: number; seconds: { read: number; match: number; write: number } };
    line(`   ${workers} worker${workers > 1 ? "s" : " "}: ${fmt(s.wall, 1).padStart(6)} s whole alignment, ${fmt(s.cpuSeconds, 1)} s of CPU (${s.sweeps} sweeps: ${s.sweepSeconds.map((x) => fmt(x, 1)).join(" + ")} s, the first with start-up; per-group similarities ${fmt(s.seconds.read + s.seconds.match - s.sweepSeconds.reduce((x, y) => x + y, 0), 1)} s; write ${fmt(s.seconds.write, 1)} s), peak RSS ${fmt(s.peakRss / MiB, 0)} MB; load average ${before} -> ${load()}`);
    outputs.push(await readFile(join(out, "model.safetensors")));
  }
  const same = outputs[0]!.length === outputs[1]!.length && outputs[0]!.every((x, i) => x === outputs[1]![i]);
  // Recovered exactly when every aligned value is the reference's up to the noise (±0.005) and BF16 rounding.
  const aligned = await openModel(await resolveModel(join(root, "out-1"), root));
  let recovered = true;
  for (const [i, t] of names.entries()) {
    const ref = Float32Array.from({ length: t.shape.reduce((x, y) => x * y, 1) }, uniform(1000 + i));
    const got = (await readFloatTensors(aligned, [t.name])).get(t.name)!.data;
    if (ref.some((v, j) => Math.abs(v - got[j]!) > 0.01)) { recovered = false; break; }
  }
  line(`   output of 2 workers identical to 1 worker's, byte for byte: ${same ? "yes" : "NO"}; planted permutation recovered exactly: ${recovered ? "yes" : "NO"}`);
  line(`   target: <= 30 s on 2 workers with peak RSS <= 1 GB (this machine has ${(await import("node:os")).availableParallelism()} cores, shared)`);
  await rm(root, { recursive: true, force: true });
}
