// Bench section: fixed costs. The whole `weightsoup merge` process (dist/cli.cjs) of the built-in
// example's TIES recipe on two sizes of models, next to `node -e 0` (Node's own start-up and exit) in
// the same run, best of N runs in alternation (the machine's speed drifts between runs):
//   - the example's models (`npm start`: a base and three fine-tunes, BF16, ~26 MB each);
//   - the same recipe on a ~2 MB Llama-shaped base and fine-tunes (a 2 MB merge).
// The difference from `node -e 0` is what weightsoup costs on top of starting Node. Each merge writes
// a new output folder (the previous one is removed before the clock starts: replacing a folder with
// --force is a cost of its own), with the CLI's code cache made by a first run (in a folder of the
// bench's), and the small merge once more without it (WEIGHTSOUP_NO_CACHE=1: a first run's start-up).
// Then one `--profile` run of the small merge shows where the time goes.
// BENCH_BASELINE_CLI=path/to/an/older/dist/cli.cjs (dist/cli.js in builds before the entry was CommonJS) adds that build's two merges to the same alternation,
// to measure a change before and after in one run.
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { rm, stat, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { EXAMPLE_SKILLS, writeExampleFolder, writeLlamaModel, type LlamaShape } from "../src/example/models";
import exampleRecipe from "../src/example/recipe.yml";

const CLI = fileURLToPath(new URL("../../dist/cli.cjs", import.meta.url));

/** About 1 M parameters: a 2 MB BF16 checkpoint. */
export const SMALL_SHAPE: LlamaShape = { vocab: 1536, hidden: 128, intermediate: 256, layers: 4, heads: 4, kvHeads: 4 };

/** Target of issue 12: a 2 MB merge at most this much above Node's start-up (seconds). */
const SMALL_TARGET = 0.15;

export async function fixedCostSection(dir: string, quick: boolean, line: (s?: string) => void): Promise<void> {
  const root = join(dir, "fixed-costs");
  const example = join(root, "example"), small = join(root, "small");
  await writeExampleFolder(example);
  await writeLlamaModel(join(small, "base"), SMALL_SHAPE);
  for (const skill of EXAMPLE_SKILLS) await writeLlamaModel(join(small, skill.name), SMALL_SHAPE, skill);
  await writeFile(join(small, "recipe.yml"), exampleRecipe);
  const sizeOf = async (folder: string) => (await stat(join(folder, "base", "model.safetensors"))).size;
  // BENCH_FIXED_REPS: more alternations, when the machine is too busy for the best of 9 to settle.
  const reps = Number(process.env.BENCH_FIXED_REPS) || (quick ? 3 : 9);
  line(`11. Fixed costs: the whole \`weightsoup merge\` process (dist/cli.cjs, the example's TIES recipe, 4 inputs) next to \`node -e 0\`, best of ${reps} alternating runs`);

  // The CLI's code cache in a folder of this run's (made by the warm-up runs below): what a user's second
  // and later runs of a command see. "no code cache" is every run compiling from scratch (a first run).
  const cacheHome = join(root, "cache");
  const cached = { ...process.env, XDG_CACHE_HOME: cacheHome, WEIGHTSOUP_NO_CACHE: "" };
  const uncached = { ...cached, WEIGHTSOUP_NO_CACHE: "1" };
  const wall = (argv: string[], out?: string, env: NodeJS.ProcessEnv = cached) => {
    if (out) rmSync(out, { recursive: true, force: true });
    const t0 = performance.now();
    const r = spawnSync(process.execPath, argv, { encoding: "utf8", env });
    const seconds = (performance.now() - t0) / 1000;
    if (r.status !== 0) throw new Error(`${argv.join(" ")}: exit ${r.status}: ${r.stderr}`);
    return seconds;
  };
  const merge = (folder: string, extra: string[] = [], cli = CLI) => [cli, "merge", join(folder, "recipe.yml"), join(folder, "out"), "--quiet", ...extra];
  const cases: { name: string; argv: string[]; out: string; env?: NodeJS.ProcessEnv }[] = [
    { name: `example (${mb(await sizeOf(example))} per model)`, argv: merge(example), out: join(example, "out") },
    { name: `small (${mb(await sizeOf(small))} per model)`, argv: merge(small), out: join(small, "out") },
    { name: "small, no code cache", argv: merge(small), out: join(small, "out"), env: uncached },
  ];
  const baseline = process.env.BENCH_BASELINE_CLI;
  if (baseline) {
    line(`   baseline: ${baseline} (BENCH_BASELINE_CLI), its merges in the same alternation`);
    cases.push({ name: "example, baseline", argv: merge(example, [], baseline), out: join(example, "out") });
    cases.push({ name: "small, baseline", argv: merge(small, [], baseline), out: join(small, "out") });
  }
  for (const c of cases) wall(c.argv, c.out, c.env); // warm the page cache (and make the code cache)
  const node: number[] = [], merges: number[][] = cases.map(() => []);
  const load = loadavg()[0]!;
  for (let r = 0; r < reps; r++) {
    node.push(wall(["-e", "0"]));
    for (const [i, c] of cases.entries()) merges[i]!.push(wall(c.argv, c.out, c.env));
  }
  const nodeBest = Math.min(...node);
  line(`   ${"run".padEnd(30)} ${"best".padStart(8)} ${"median".padStart(8)} ${"above node".padStart(11)}`);
  line(`   ${"node -e 0".padEnd(30)} ${s(nodeBest)} ${s(median(node))} ${"".padStart(11)}`);
  for (const [i, c] of cases.entries()) {
    const best = Math.min(...merges[i]!);
    line(`   ${c.name.padEnd(30)} ${s(best)} ${s(median(merges[i]!))} ${s(best - nodeBest).padStart(11)}`);
  }
  if (baseline) line(`   small merge: ${s(Math.min(...merges[1]!)).trim()} against ${s(Math.min(...merges[4]!)).trim()} for the baseline (best of ${reps})`);
  line(`   target: the small merge <= ${SMALL_TARGET.toFixed(2)} s above node (${(Math.min(...merges[1]!) - nodeBest).toFixed(3)} s); load average ${load.toFixed(2)} before, ${loadavg()[0]!.toFixed(2)} after`);
  rmSync(cases[1]!.out, { recursive: true, force: true });
  const profiled = spawnSync(process.execPath, merge(small, ["--profile"]), { encoding: "utf8", env: cached });
  line(`   one --profile run of the small merge (stderr):`);
  for (const l of profiled.stderr.trimEnd().split("\n")) line(`     ${l}`);
  line();
  await rm(root, { recursive: true, force: true });
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

function s(seconds: number): string {
  return `${seconds.toFixed(3)} s`.padStart(8);
}

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

