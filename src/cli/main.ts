/**
 * @file The weightsoup command.
 *
 *   weightsoup merge RECIPE.yml OUT_DIR [--seed N] [--workers N] [--out-shard-size SIZE] [--force] ...
 *   weightsoup plan RECIPE.yml [--json] [--workers N] ...
 *   weightsoup inspect PATH [--json]
 *   weightsoup align REFERENCE MODEL OUT_DIR [--spec auto|mlp|llama|gpt2|FILE] [--seed N] ...
 *   weightsoup barrier A B --data FILE [--points 25] [--align] [--json]
 *   weightsoup diagnose RECIPE.yml [--json] [--svg FILE] [--report FILE.html]
 *   weightsoup sweep RECIPE.yml --vary KEY=SPEC [--vary ...] [--text FILE] [--against MODEL] [--json] [--csv FILE] [--write-best DIR]
 *   weightsoup example [DIR]
 *
 * Exit status: 0 on success, 1 when a command fails, printed as `[E_CODE] message` (with stacks only
 * under --debug), 2 on bad usage. Ctrl-C aborts a merge cleanly (nothing that looks complete is left)
 * with status 130.
 */
import { AbortError, describeValue, OptionError, UsageError, WeightsoupError } from "../errors";
import { args, defined, integer, size, type Io } from "./args";
import { HELP } from "./commands";
import type { MergeEvent } from "../events";
import { merge, inspect, plan } from "../node-merge";
import { ledgerSummary, planLines } from "./ledger-output";
import { checkFileTargets, writeFileAtomically } from "./write-file";
import { VERSION } from "../merge/card";
import { printWarning, ProgressBar } from "./progress";
import { formatBytes, formatSeconds, formatWorkers } from "../units";
import { enableProfiling, reportCommand } from "../eval/profile";
import { interruptible } from "./interrupt";

export async function main(argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const debug = argv.includes("--debug");
  if (argv.includes("--profile")) enableProfiling();
  const [command, ...rest] = argv.filter((a) => a !== "--debug" && a !== "--profile");
  try {
    switch (command) {
      case "merge": return await mergeCommand(rest, io);
      case "plan": return await planCommand(rest, io);
      case "inspect": return await inspectCommand(rest, io);
      case "align": return await (await import("./align-commands")).alignCommand(rest, io);
      case "barrier": return await (await import("./align-commands")).barrierCommand(rest, io);
      case "eval": return await (await import("./eval-commands")).evalCommand(rest, io);
      case "generate": return await (await import("./eval-commands")).generateCommand(rest, io);
      case "example": return await exampleCommand(rest, io);
      case "extract-lora": return await (await import("./lora-command")).extractLoraCommand(rest, io);
      case "path": return await (await import("./measure-commands")).pathCommand(rest, io);
      case "soup": return await (await import("./measure-commands")).soupCommand(rest, io);
      case "diagnose": return await (await import("./diagnose-command")).diagnoseCommand(rest, io);
      case "sweep": return await (await import("./sweep-command")).sweepCommand(rest, io);
      case "--version": case "-v": case "version": io.stdout.write(`${VERSION}\n`); return 0;
      case undefined: io.stderr.write(HELP + "\n"); return 2;
      case "--help": case "-h": case "help": io.stdout.write(HELP + "\n"); return 0;
      default: throw new UsageError("E_USAGE", `unknown command "${command}"\n\n${HELP}`);
    }
  } catch (e) {
    return report(e, io, debug);
  } finally {
    reportCommand(command ?? "weightsoup");
  }
}

/** Prints an error as `[E_CODE] message` (stacks only with --debug) and returns the exit status. */
function report(e: unknown, io: Io, debug: boolean): number {
  const stack = () => {
    if (!debug) return "";
    const lines: string[] = [];
    for (let c: unknown = e, depth = 0; c instanceof Error && depth < 5; c = c.cause, depth++) lines.push((depth ? "caused by: " : "") + (c.stack ?? c.message));
    return lines.length ? "\n" + lines.join("\n") + "\n" : "";
  };
  if (e instanceof UsageError) {
    io.stderr.write(`weightsoup: ${e.message}\n${stack()}`);
    return 2;
  }
  if (e instanceof AbortError) {
    io.stderr.write(`weightsoup: aborted; no output was kept\n${stack()}`);
    return 130;
  }
  if (e instanceof WeightsoupError) {
    io.stderr.write(`weightsoup: [${e.code}] ${e.message}\n${stack()}`);
    return e instanceof OptionError ? 2 : 1;
  }
  const message = e instanceof Error ? e.message : String(e);
  io.stderr.write(`weightsoup: [E_INTERNAL] unexpected error: ${message}\n  This is a bug in weightsoup; run again with --debug for the stack trace and report it.\n${stack()}`);
  return 1;
}

async function mergeCommand(argv: string[], io: Io): Promise<number> {
  const parsed = args("merge", argv, {
    seed: { type: "string" }, workers: { type: "string" }, "out-shard-size": { type: "string" }, "memory-budget": { type: "string" },
    "chunk-size": { type: "string" }, force: { type: "boolean" }, quiet: { type: "boolean" }, json: { type: "boolean" },
    ledger: { type: "string" },
  }, [2, 2], io);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  // Flags are checked before anything is read: a bad one is a usage error, not a failed merge.
  const numeric = defined({
    seed: integer(values.seed, "seed", "seed"),
    workers: integer(values.workers, "workers", "workers"),
    outShardSize: size(values["out-shard-size"], "out-shard-size", "outShardSize"),
    memoryBudget: size(values["memory-budget"], "memory-budget", "memoryBudget"),
    chunkBytes: size(values["chunk-size"], "chunk-size", "chunkBytes"),
  });
  const [recipe, out] = positionals as [string, string];
  // The ledger is written after the output folder is published: a path it could not be written to is
  // refused first, so that a failed run never leaves a complete-looking output behind.
  await checkFileTargets([values.ledger]);
  const bar = values.quiet ? undefined : new ProgressBar(io.stderr);
  try {
    const summary = await interruptible((signal) => merge(recipe, {
      out, force: values.force ?? false, signal, ...numeric,
      onProgress: (e: MergeEvent) => {
        if (bar) bar.update(e);
        else if (e.type === "warning") printWarning(io.stderr, e.message, false); // --quiet: no bar, warnings still
      },
    }));
    bar?.finish();
    const rss = process.resourceUsage().maxRSS * 1024;
    const { ledger, ...rest } = summary;
    if (values.ledger) await writeLedger(values.ledger, ledger);
    if (values.json) {
      io.stdout.write(JSON.stringify({ ...rest, ledger: ledger.counts, out, peakRss: rss }) + "\n");
    } else {
      io.stdout.write(
        `merged ${summary.tensors} tensors with ${summary.method} into ${out}\n` +
        `  read ${formatBytes(summary.inputBytes)}, wrote ${formatBytes(summary.outputBytes)} in ${formatSeconds(summary.seconds)} ` +
        `(${formatBytes(summary.inputBytes / summary.seconds)}/s of input, ${formatWorkers(summary.workers)}, peak RSS ${formatBytes(rss)})\n` +
        `  files: ${summary.files.join(", ")}\n` +
        `  ${ledgerSummary(ledger.counts)}${values.ledger ? ` (all of it in ${values.ledger})` : ""}\n` +
        (summary.stages ? `  stages: ${summary.stages.map((st) => `${st.name ?? "final"} (${st.method}, ${st.tensors} tensors, ${formatSeconds(st.seconds)})`).join(", ")}\n` : ""));
    }
    return 0;
  } finally {
    bar?.finish();
  }
}

/** Writes the whole ledger as JSON ({counts, entries}). */
function writeLedger(path: string, ledger: { counts: unknown; entries: unknown }): Promise<void> {
  return writeFileAtomically(path, JSON.stringify({ counts: ledger.counts, entries: ledger.entries }, null, 1) + "\n");
}

async function planCommand(argv: string[], io: Io): Promise<number> {
  const parsed = args("plan", argv, {
    workers: { type: "string" }, "out-shard-size": { type: "string" }, "memory-budget": { type: "string" }, "chunk-size": { type: "string" },
    json: { type: "boolean" },
  }, [1, 1], io);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  const numeric = defined({
    workers: integer(values.workers, "workers", "workers"),
    outShardSize: size(values["out-shard-size"], "out-shard-size", "outShardSize"),
    memoryBudget: size(values["memory-budget"], "memory-budget", "memoryBudget"),
    chunkBytes: size(values["chunk-size"], "chunk-size", "chunkBytes"),
  });
  const report = await plan(positionals[0]!, numeric);
  for (const message of report.warnings) printWarning(io.stderr, message, false);
  io.stdout.write(values.json ? JSON.stringify(report) + "\n" : planLines(report).join("\n") + "\n");
  return 0;
}

async function inspectCommand(argv: string[], io: Io): Promise<number> {
  const parsed = args("inspect", argv, { json: { type: "boolean" } }, [1, 1], io);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  const r = await inspect(positionals[0]!);
  if (values.json) {
    io.stdout.write(JSON.stringify(r, null, 2) + "\n");
    return 0;
  }
  const lines = [`${r.location}: ${r.tensors.length} tensors, ${r.parameters.toLocaleString("en-US")} parameters, ${formatBytes(r.bytes)}, ${r.layers} layers`];
  if (r.quantization) lines.push(`quantized (${r.quantization.method}, from ${r.quantization.key ? `config.json's ${r.quantization.key}` : `tensor "${r.quantization.tensor}"`}): merges refuse it (E_QUANTIZED); use the unquantized checkpoint`);
  if (r.config) lines.push(`config: ${Object.entries(r.config).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${describeValue(v)}`).join(" ")}`);
  for (const [dtype, d] of Object.entries(r.byDtype)) lines.push(`  ${dtype}: ${d.tensors} tensors, ${d.parameters.toLocaleString("en-US")} parameters, ${formatBytes(d.bytes)}`);
  for (const f of r.weightFiles) lines.push(`  ${f.file}: ${f.tensors} tensors${f.metadata ? `, metadata ${Object.entries(f.metadata).map(([k, v]) => `${k}=${describeValue(v)}`).join(" ")}` : ""}`);
  // model.safetensors goes unread only beside an index naming other shards, with the same tensors (see openModel).
  const besideIndex = r.unreadWeightFiles.filter((f) => f === "model.safetensors");
  const others = r.unreadWeightFiles.filter((f) => f !== "model.safetensors");
  if (besideIndex.length) lines.push(`  not read: model.safetensors, beside an index that names other shards (read, as mergekit does; transformers would load model.safetensors, whose tensors have the same names, dtypes and shapes)`);
  if (others.length) lines.push(`  not read, as transformers does not load them either: ${others.join(", ")}`);
  const width = Math.max(...r.tensors.map((t) => t.name.length), 4);
  lines.push("", `${"name".padEnd(width)}  dtype  shape`);
  for (const t of r.tensors) lines.push(`${t.name.padEnd(width)}  ${t.dtype.padEnd(5)}  [${t.shape.join(", ")}]`);
  io.stdout.write(lines.join("\n") + "\n");
  return 0;
}

async function exampleCommand(argv: string[], io: Io): Promise<number> {
  const parsed = args("example", argv, {}, [0, 1], io);
  if (!parsed) return 0;
  return (await import("../example/example")).runExample(parsed.positionals[0] ?? "example", io);
}
