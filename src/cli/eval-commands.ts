/**
 * @file `weightsoup eval` and `weightsoup generate`: the evaluation library calls with a progress line
 * on stderr, a table or JSON on stdout, and tokens streamed as they are generated.
 */
import { basename, dirname } from "node:path";
import { DataError, UsageError, WeightsoupError } from "../errors";
import type { EvalEvent } from "../eval/protocol";
import { DEFAULT_TEXT } from "../eval/default-text";
import { NodeFolder, readTextFile } from "../io/node-folder";
import { evaluate, generate } from "../node";
import { readTokenIds } from "../tokenizer/token-ids";
import { formatSeconds } from "../units";
import { args, defined, integer, size, type Io } from "./args";
import { commandHelp, type Command } from "./commands";
import { interruptible } from "./interrupt";
import { printWarning } from "./progress";

/** Token ids from a file: a JSON list, or a .safetensors file with one integer tensor. */
export async function idsFrom(path: string): Promise<number[]> {
  return readTokenIds(await NodeFolder.open(dirname(path)), basename(path));
}

/** A --text file: one that is not there is a missing text (E_DATA), not a missing model. */
async function readEvalText(path: string): Promise<string> {
  try {
    return await readTextFile(path);
  } catch (e) {
    if (e instanceof WeightsoupError && e.code === "E_MODEL_NOT_FOUND") throw new DataError("E_DATA", `${path}: cannot read the text to evaluate on (no such file)`, { file: path }, { cause: e });
    throw e;
  }
}

/** The flags of evalInput, as args() parses them. */
interface EvalFlags { text?: string; ids?: string; context?: string; "max-tokens"?: string; workers?: string; "memory-budget"?: string; seed?: string }

/** The evaluation options the evaluating commands share: input text or ids, windows, workers, budget, seed. */
export async function evalInput(command: Command, values: EvalFlags) {
  if (values.text !== undefined && values.ids !== undefined) throw new UsageError("E_USAGE", `${command}: give --text or --ids, not both\n\n${commandHelp(command)}`);
  const numeric = defined({
    context: integer(values.context, "context", "context"),
    maxTokens: integer(values["max-tokens"], "max-tokens", "maxTokens"),
    workers: integer(values.workers, "workers", "workers"),
    memoryBudget: size(values["memory-budget"], "memory-budget", "memoryBudget"),
    seed: integer(values.seed, "seed", "seed"),
  });
  const input = values.ids !== undefined ? { ids: await idsFrom(values.ids) } : { text: values.text !== undefined ? await readEvalText(values.text) : DEFAULT_TEXT };
  return { ...input, ...numeric };
}

export async function evalCommand(argv: string[], io: Io): Promise<number> {
  const parsed = args("eval", argv, {
    text: { type: "string" }, ids: { type: "string" }, context: { type: "string" }, "max-tokens": { type: "string" },
    against: { type: "string", multiple: true }, workers: { type: "string" }, "memory-budget": { type: "string" },
    seed: { type: "string" }, quiet: { type: "boolean" }, json: { type: "boolean" },
  }, [1, 64], io);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  const options = await evalInput("eval", values);
  const progress = evalProgress(io.stderr, values.quiet ?? false);
  const { results } = await interruptible((signal) => evaluate(positionals, { ...options, against: values.against ?? [], signal, onProgress: progress }));
  progress({ type: "eval-done", seconds: 0 });
  if (values.json) {
    io.stdout.write(JSON.stringify({ results }) + "\n");
    return 0;
  }
  const rows = results.map((r) => [r.model, String(r.tokens), String(r.predicted), r.nll.toFixed(4), r.perplexity.toFixed(3), r.bitsPerByte === null ? "-" : r.bitsPerByte.toFixed(4)]);
  const head = ["model", "tokens", "predicted", "NLL", "perplexity", "bits/byte"];
  const lines = table([head, ...rows]);
  for (const r of results) {
    for (const a of r.against) lines.push(`  vs ${a.model}: KL(${a.model} ‖ ${r.model}) = ${a.kl.toFixed(5)} nats/token, top-1 agreement ${(100 * a.top1Agreement).toFixed(2)}%`);
  }
  io.stdout.write(lines.join("\n") + "\n");
  return 0;
}

/** Rows of cells as aligned columns (the first column left-aligned, the others right-aligned). */
export function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  "));
}

/** A progress line on stderr (none when quiet): redrawn on a terminal, a line per model otherwise. Warnings are printed either way. */
function evalProgress(stream: NodeJS.WriteStream, quiet: boolean): (e: EvalEvent) => void {
  const interactive = stream.isTTY === true && !quiet;
  return (e) => {
    if (e.type === "warning") printWarning(stream, e.message, interactive);
    else if (quiet) return;
    else if (e.type === "model-start" && !interactive) stream.write(`running ${e.model} (${e.layers} layers)\n`);
    else if (e.type === "layer-done" && interactive) stream.write(`\r\x1b[K${e.model}: layer ${e.layer + 1}/${e.layers}`);
    else if (e.type === "scoring" && interactive) stream.write(`\r\x1b[Kscoring ${e.model}`);
    else if (e.type === "eval-done" && interactive) stream.write("\r\x1b[K");
  };
}

export async function generateCommand(argv: string[], io: Io): Promise<number> {
  const parsed = args("generate", argv, {
    prompt: { type: "string" }, ids: { type: "string" }, "max-new-tokens": { type: "string" }, chat: { type: "boolean" },
    temperature: { type: "string" }, seed: { type: "string" }, "merge-seed": { type: "string" }, "memory-budget": { type: "string" }, json: { type: "boolean" },
  }, [1, 1], io);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  if ((values.prompt === undefined) === (values.ids === undefined)) throw new UsageError("E_USAGE", `generate: give --prompt TEXT or --ids FILE\n\n${commandHelp("generate")}`);
  if (values.chat && values.ids !== undefined) throw new UsageError("E_USAGE", "generate: --chat wraps a --prompt text in the chat template; --ids are used as given: give --prompt, or drop --chat");
  const temperature = values.temperature === undefined ? undefined : Number(values.temperature);
  if (temperature !== undefined && (!/^\d+(\.\d+)?$/.test(values.temperature!) || !Number.isFinite(temperature))) {
    throw new UsageError("E_USAGE", `--temperature must be a number of at least 0, got "${values.temperature}"`);
  }
  const numeric = defined({
    maxNewTokens: integer(values["max-new-tokens"], "max-new-tokens", "maxNewTokens"),
    seed: integer(values.seed, "seed", "seed"),
    mergeSeed: integer(values["merge-seed"], "merge-seed", "mergeSeed"),
    memoryBudget: size(values["memory-budget"], "memory-budget", "memoryBudget"),
    temperature,
  });
  const prompt = values.ids !== undefined ? { ids: await idsFrom(values.ids) } : { prompt: values.prompt! };
  const stream = !values.json;
  const result = await interruptible((signal) => generate(positionals[0]!, {
    ...prompt, ...numeric, chat: values.chat ?? false, signal,
    ...(stream ? { onToken: (t: { id: number; text: string }) => io.stdout.write(t.text) } : {}),
    // Warnings come while the recipe merges, before the first token.
    onWarning: (message: string) => printWarning(io.stderr, message, false),
  }));
  if (values.json) {
    io.stdout.write(JSON.stringify(result) + "\n");
    return 0;
  }
  io.stdout.write("\n");
  io.stderr.write(`${result.ids.length} tokens in ${formatSeconds(result.seconds)} (${result.tokensPerSecond.toFixed(1)} tokens/s) after a prompt of ${result.promptTokens}\n`);
  return 0;
}
