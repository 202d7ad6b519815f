/**
 * @file Reading a command's arguments: parseArgs with every command's --help, and flags checked
 * against the same ranges the library checks its options with.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { OPTION_RANGES, type RangedOption } from "../api/options";
import { UsageError } from "../errors";
import { parseSize } from "../plan/shards";
import { formatBytes } from "../units";
import { commandHelp, type Command } from "./commands";

export interface Io {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
}

/** Parses a command's arguments; `--help` prints its help and ends the command (null). */
export function args<T extends ParseArgsConfig["options"]>(command: Command, argv: string[], options: T, positionals: [number, number], io: Io) {
  let parsed;
  try {
    parsed = parseArgs({ args: negativeValuesJoined(argv, options), options: { ...options, help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError("E_USAGE", `${(e as Error).message.split("\n")[0]}\n\n${commandHelp(command)}`);
  }
  if ((parsed.values as { help?: boolean }).help) {
    io.stdout.write(commandHelp(command) + "\n");
    return null;
  }
  const n = parsed.positionals.length;
  if (n < positionals[0] || n > positionals[1]) {
    throw new UsageError("E_USAGE", `${command}: expected ${positionals[0] === positionals[1] ? positionals[0] : `${positionals[0]} to ${positionals[1]}`} arguments, got ${n}\n\n${commandHelp(command)}`);
  }
  return parsed;
}

/**
 * `--rank -1` as `--rank=-1`: parseArgs takes a value that starts with "-" for another option ("argument
 * is ambiguous", and the whole usage), where a negative number after a flag that takes a value is that
 * flag's value, which its own check then refuses in words ("--rank must be an integer from 1 ...").
 */
function negativeValuesJoined(argv: string[], options: ParseArgsConfig["options"]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!, next = argv[i + 1];
    if (arg === "--") return [...out, ...argv.slice(i)];
    const flag = arg.startsWith("--") && !arg.includes("=") ? options?.[arg.slice(2)] : undefined;
    if (flag?.type === "string" && next !== undefined && /^-\.?\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

/** An integer flag, in the same range the library accepts for the option. */
export function integer(value: string | undefined, flag: string, option: RangedOption): number | undefined {
  if (value === undefined) return undefined;
  const [min, max] = OPTION_RANGES[option];
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) throw new UsageError("E_USAGE", `--${flag} must be an integer from ${min} to ${max}, got "${value}"`);
  return n;
}

/** A size flag (5B, 2GB, 500MiB), in the library's range for the option. */
export function size(value: string | undefined, flag: string, option: RangedOption): number | undefined {
  if (value === undefined) return undefined;
  const n = parseSize(value);
  const [min, max] = OPTION_RANGES[option];
  if (n === undefined) throw new UsageError("E_USAGE", `--${flag}: "${value}" is not a size (examples: 5B, 2GB, 500MiB, 1000000)`);
  if (n < min || n > max) throw new UsageError("E_USAGE", `--${flag}: ${value} (${n} bytes) is out of range: from ${formatBytes(min)} to ${formatBytes(max)}`);
  return n;
}

export function defined<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
