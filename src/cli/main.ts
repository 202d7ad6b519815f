/**
 * @file The weightsoup command.
 *
 *   weightsoup merge RECIPE.yml OUT_DIR [--seed N] [--workers N] [--out-shard-size SIZE] [--force] ...
 *   weightsoup inspect PATH [--json]
 *   weightsoup align REFERENCE MODEL OUT_DIR [--spec auto|mlp|llama|gpt2|FILE] [--seed N] ...
 *   weightsoup barrier A B --data FILE [--points 25] [--align] [--json]
 *   weightsoup example [DIR]
 *
 * Exit status: 0 on success, 1 when a merge (or inspect) fails, with the error's message and code,
 * 2 on bad usage. Ctrl-C aborts a merge cleanly (nothing that looks complete is left) with status 130.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { AbortError, UsageError, ValidationError, WeightsoupError } from "../errors";
import type { MergeEvent } from "../events";
import { merge, inspect, align, barrier } from "../node";
import { readFile } from "node:fs/promises";
import { SPEC_KINDS, type SpecKind } from "../align/architectures";
import { parseSpec, type PermutationSpec } from "../align/spec";
import { parseSize } from "../plan/shards";
import { VERSION } from "../merge/card";
import { runExample } from "../example/example";
import { ProgressBar } from "./progress";
import { formatBytes, formatSeconds } from "../units";

const HELP = `weightsoup ${VERSION}: merge fine-tuned models in weight space, on this machine.

Usage:
  weightsoup merge RECIPE.yml OUT_DIR [options]   run a mergekit recipe
  weightsoup inspect PATH [--json]                 list a checkpoint's tensors
  weightsoup align REFERENCE MODEL OUT_DIR         permute MODEL's hidden units to match REFERENCE
                                                   (Git Re-Basin weight matching)
  weightsoup barrier A B --data FILE [--points 25] [--align]
                                                   loss and accuracy of two MLP classifiers along
                                                   the line from A to B, and the barrier
  weightsoup example [DIR]                         build example models and merge them (default DIR: ./example)

Merge options:
  --seed N              seed of DARE's random masks (default 0)
  --workers N           worker threads (default: available cores)
  --out-shard-size SIZE largest output shard, e.g. 5B, 2GB, 500MiB (default 5B)
  --memory-budget SIZE  wasm memory per worker (default 256MiB)
  --chunk-size SIZE     largest chunk of tensor data a worker holds (default 64MiB)
  --force               write into a non-empty OUT_DIR
  --quiet               no progress bar
  --json                print the summary as JSON on stdout

Align options:
  --spec KIND|FILE      auto (from config.json), mlp, llama, gpt2, or a JSON spec file (default auto)
  --seed N              seed of the order groups are visited in (default 0)
  --max-sweeps N        stop after N sweeps over the groups (default 100)
  --force, --quiet, --json as for merge

Barrier options:
  --data FILE           safetensors file with "inputs" [N, features] and "labels" [N] (required)
  --points N            evenly spaced points from A (0) to B (1), both included (default 25)
  --align               also measure after aligning B to A (weight matching); --seed as for align
  --json                print the paths as JSON on stdout

Exit status: 0 success, 1 merge error, 2 usage error.`;

interface Io {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
}

export async function main(argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "merge": return await mergeCommand(rest, io);
      case "inspect": return await inspectCommand(rest, io);
      case "align": return await alignCommand(rest, io);
      case "barrier": return await barrierCommand(rest, io);
      case "example": return await exampleCommand(rest, io);
      case "--version": case "-v": io.stdout.write(`${VERSION}\n`); return 0;
      case undefined: case "--help": case "-h": case "help": io.stdout.write(HELP + "\n"); return command === undefined ? 2 : 0;
      default: throw new UsageError("E_USAGE", `unknown command "${command}"`);
    }
  } catch (e) {
    return report(e, io);
  }
}

function report(e: unknown, io: Io): number {
  if (e instanceof UsageError) {
    io.stderr.write(`weightsoup: ${e.message}\n\n${HELP}\n`);
    return 2;
  }
  if (e instanceof AbortError) {
    io.stderr.write(`weightsoup: aborted; no output was kept\n`);
    return 130;
  }
  if (e instanceof ValidationError) {
    io.stderr.write(`weightsoup: error [${e.code}]: ${e.message}\n`);
    return 1;
  }
  if (e instanceof WeightsoupError) {
    io.stderr.write(`weightsoup: error [${e.code}]: ${e.message}\n`);
    return 1;
  }
  io.stderr.write(`weightsoup: unexpected error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  return 1;
}

function args<T extends ParseArgsConfig["options"]>(argv: string[], options: T, positionals: [number, number], usage: string) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError("E_USAGE", `${(e as Error).message}\nusage: ${usage}`);
  }
  const n = parsed.positionals.length;
  if (n < positionals[0] || n > positionals[1]) throw new UsageError("E_USAGE", `expected ${positionals[0] === positionals[1] ? positionals[0] : `${positionals[0]} to ${positionals[1]}`} arguments, got ${n}\nusage: ${usage}`);
  return parsed;
}

function integer(value: string | undefined, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) throw new UsageError("E_USAGE", `--${name} must be an integer from ${min} to ${max}, got "${value}"`);
  return n;
}

function size(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = parseSize(value);
  if (n === undefined) throw new UsageError("E_USAGE", `--${name}: "${value}" is not a size (examples: 5B, 2GB, 500MiB, 1000000)`);
  return n;
}

async function mergeCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = args(argv, {
    seed: { type: "string" }, workers: { type: "string" }, "out-shard-size": { type: "string" }, "memory-budget": { type: "string" },
    "chunk-size": { type: "string" }, force: { type: "boolean" }, quiet: { type: "boolean" }, json: { type: "boolean" },
  }, [2, 2], "weightsoup merge RECIPE.yml OUT_DIR [options]");
  const [recipe, out] = positionals as [string, string];
  const controller = new AbortController();
  const onSignal = () => controller.abort(new AbortError("interrupted"));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const bar = values.quiet ? undefined : new ProgressBar(io.stderr);
  try {
    const summary = await merge(recipe, {
      out, force: values.force ?? false, signal: controller.signal,
      ...defined({
        seed: integer(values.seed, "seed", 0, 2 ** 32 - 1),
        workers: integer(values.workers, "workers", 1, 256),
        outShardSize: size(values["out-shard-size"], "out-shard-size"),
        memoryBudget: size(values["memory-budget"], "memory-budget"),
        chunkBytes: size(values["chunk-size"], "chunk-size"),
      }),
      onProgress: (e: MergeEvent) => bar?.update(e),
    });
    bar?.finish();
    const rss = process.resourceUsage().maxRSS * 1024;
    if (values.json) {
      io.stdout.write(JSON.stringify({ ...summary, out, peakRss: rss }) + "\n");
    } else {
      io.stdout.write(
        `merged ${summary.tensors} tensors with ${summary.method} into ${out}\n` +
        `  read ${formatBytes(summary.inputBytes)}, wrote ${formatBytes(summary.outputBytes)} in ${formatSeconds(summary.seconds)} ` +
        `(${formatBytes(summary.inputBytes / summary.seconds)}/s of input, ${summary.workers} workers, peak RSS ${formatBytes(rss)})\n` +
        `  files: ${summary.files.join(", ")}\n`);
    }
    return 0;
  } finally {
    bar?.finish();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

async function inspectCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = args(argv, { json: { type: "boolean" } }, [1, 1], "weightsoup inspect PATH [--json]");
  const r = await inspect(positionals[0]!);
  if (values.json) {
    io.stdout.write(JSON.stringify(r, null, 2) + "\n");
    return 0;
  }
  const lines = [`${r.location}: ${r.tensors.length} tensors, ${r.parameters.toLocaleString("en-US")} parameters, ${formatBytes(r.bytes)}, ${r.layers} layers`];
  if (r.config) lines.push(`config: ${Object.entries(r.config).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ")}`);
  for (const [dtype, d] of Object.entries(r.byDtype)) lines.push(`  ${dtype}: ${d.tensors} tensors, ${d.parameters.toLocaleString("en-US")} parameters, ${formatBytes(d.bytes)}`);
  for (const f of r.weightFiles) lines.push(`  ${f.file}: ${f.tensors} tensors${f.metadata ? `, metadata ${JSON.stringify(f.metadata)}` : ""}`);
  const width = Math.max(...r.tensors.map((t) => t.name.length), 4);
  lines.push("", `${"name".padEnd(width)}  dtype  shape`);
  for (const t of r.tensors) lines.push(`${t.name.padEnd(width)}  ${t.dtype.padEnd(5)}  [${t.shape.join(", ")}]`);
  io.stdout.write(lines.join("\n") + "\n");
  return 0;
}

async function alignCommand(argv: string[], io: Io): Promise<number> {
  const usage = "weightsoup align REFERENCE MODEL OUT_DIR [--spec auto|mlp|llama|gpt2|FILE] [--seed N] [--max-sweeps N] [--force] [--quiet] [--json]";
  const { values, positionals } = args(argv, {
    spec: { type: "string" }, seed: { type: "string" }, "max-sweeps": { type: "string" },
    force: { type: "boolean" }, quiet: { type: "boolean" }, json: { type: "boolean" },
  }, [3, 3], usage);
  const [reference, model, out] = positionals as [string, string, string];
  const specArg = values.spec ?? "auto";
  let spec: SpecKind | PermutationSpec;
  if ((SPEC_KINDS as readonly string[]).includes(specArg)) spec = specArg as SpecKind;
  else {
    const text = await readFile(specArg, "utf8").catch((cause: Error) => {
      throw new UsageError("E_USAGE", `--spec: "${specArg}" is not one of ${SPEC_KINDS.join(", ")} and cannot be read as a file (${cause.message})`);
    });
    spec = parseSpec(text, specArg);
  }
  const controller = new AbortController();
  const onSignal = () => controller.abort(new AbortError("interrupted"));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  let lastLine = 0;
  try {
    const result = await align(reference, model, {
      out, force: values.force ?? false, spec, signal: controller.signal,
      ...defined({ seed: integer(values.seed, "seed", 0, 2 ** 32 - 1), maxSweeps: integer(values["max-sweeps"], "max-sweeps", 1, 10_000) }),
      onGroup: (e) => {
        const now = performance.now();
        if (values.quiet || !io.stderr.isTTY || now - lastLine < 100) return;
        lastLine = now;
        io.stderr.write(`\r\x1b[Ksweep ${e.sweep}: ${e.done}/${e.groups} groups (${e.group})`);
      },
    });
    if (!values.quiet && io.stderr.isTTY) io.stderr.write("\r\x1b[K");
    if (values.json) {
      io.stdout.write(JSON.stringify({ out, sweeps: result.sweeps, seconds: result.seconds, groups: result.groups }) + "\n");
      return 0;
    }
    const width = Math.max(5, ...result.groups.map((g) => g.name.length));
    const lines = [
      `aligned ${model} to ${reference} into ${out}: ${result.groups.length} permutation groups, ${result.sweeps} sweeps`,
      `  read ${formatSeconds(result.seconds.read)}, matched ${formatSeconds(result.seconds.match)}, wrote ${formatSeconds(result.seconds.write)}`,
      "", `${"group".padEnd(width)}  ${"units".padStart(6)}  ${"cosine before".padStart(13)}  ${"after".padStart(8)}  ${"moved".padStart(6)}`,
    ];
    for (const g of result.groups) {
      const perm = result.permutations.get(g.name)!;
      const moved = perm.reduce((n, p, i) => n + (p === i ? 0 : 1), 0);
      lines.push(`${g.name.padEnd(width)}  ${String(g.size).padStart(6)}  ${g.cosineBefore.toFixed(4).padStart(13)}  ${g.cosineAfter.toFixed(4).padStart(8)}  ${String(moved).padStart(6)}`);
    }
    io.stdout.write(lines.join("\n") + "\n");
    return 0;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

async function barrierCommand(argv: string[], io: Io): Promise<number> {
  const usage = "weightsoup barrier A B --data FILE [--points 25] [--align] [--seed N] [--json]";
  const { values, positionals } = args(argv, {
    data: { type: "string" }, points: { type: "string" }, align: { type: "boolean" }, seed: { type: "string" }, json: { type: "boolean" },
  }, [2, 2], usage);
  if (!values.data) throw new UsageError("E_USAGE", `--data FILE is required\nusage: ${usage}`);
  const [a, b] = positionals as [string, string];
  const result = await barrier(a, b, {
    data: values.data, align: values.align ?? false,
    ...defined({ points: integer(values.points, "points", 2, 10_001), seed: integer(values.seed, "seed", 0, 2 ** 32 - 1) }),
  });
  if (values.json) {
    io.stdout.write(JSON.stringify(result) + "\n");
    return 0;
  }
  const { naive, aligned } = result;
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  const lines = [`path from ${a} (λ = 0) to ${b} (λ = 1) on ${values.data}`, ""];
  lines.push(`${"λ".padStart(6)}  ${"loss".padStart(8)}  ${"accuracy".padStart(8)}${aligned ? `  ${"aligned loss".padStart(12)}  ${"accuracy".padStart(8)}` : ""}`);
  naive.points.forEach((p, i) => {
    const q = aligned?.points[i];
    lines.push(`${p.lambda.toFixed(3).padStart(6)}  ${p.loss.toFixed(4).padStart(8)}  ${pct(p.accuracy).padStart(8)}${q ? `  ${q.loss.toFixed(4).padStart(12)}  ${pct(q.accuracy).padStart(8)}` : ""}`);
  });
  const summary = (name: string, r: typeof naive) =>
    `${name}: barrier ${r.barrier.toFixed(4)} (max loss − mean endpoint loss, at λ = ${r.worstLambda.toFixed(3)}); ` +
    `midpoint loss ${r.midpoint.loss.toFixed(4)}, accuracy ${pct(r.midpoint.accuracy)}; accuracy drop ${pct(r.accuracyDrop)}`;
  lines.push("", summary("straight line", naive));
  if (aligned) lines.push(summary(`after aligning B to A (${result.sweeps} sweeps)`, aligned));
  io.stdout.write(lines.join("\n") + "\n");
  return 0;
}

async function exampleCommand(argv: string[], io: Io): Promise<number> {
  const { positionals } = args(argv, {}, [0, 1], "weightsoup example [DIR]");
  return runExample(positionals[0] ?? "example", io);
}

function defined<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
