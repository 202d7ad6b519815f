/**
 * @file `weightsoup extract-lora FINETUNED BASE OUT_DIR --rank R`: a PEFT LoRA adapter from a
 * fine-tune's task vectors, with a table of each module's rank and relative reconstruction error.
 */
import { UsageError } from "../errors";
import { dtypeFromRecipeName } from "../format/dtypes";
import { extractLora } from "../node";
import { formatSeconds } from "../units";
import { args, defined, integer, size, type Io } from "./args";
import { commandHelp } from "./commands";
import { interruptible } from "./interrupt";

export async function extractLoraCommand(argv: string[], io: Io): Promise<number> {
  const parsed = args("extract-lora", argv, {
    rank: { type: "string" }, "sv-epsilon": { type: "string" }, "embed-lora": { type: "boolean" }, dtype: { type: "string" },
    oversample: { type: "string" }, "power-iterations": { type: "string" }, seed: { type: "string" }, "block-size": { type: "string" },
    "distribute-scale": { type: "boolean" }, "no-distribute-scale": { type: "boolean" },
    "include-regex": { type: "string", short: "i", multiple: true }, "exclude-regex": { type: "string", short: "e", multiple: true },
    "save-module": { type: "string", multiple: true },
    force: { type: "boolean" }, quiet: { type: "boolean" }, json: { type: "boolean" },
  }, [3, 3], io);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  if (values.rank === undefined) throw new UsageError("E_USAGE", `extract-lora: --rank R is required\n\n${commandHelp("extract-lora")}`);
  const eps = values["sv-epsilon"] === undefined ? undefined : Number(values["sv-epsilon"]);
  if (eps !== undefined && (!Number.isFinite(eps) || eps < 0 || values["sv-epsilon"]!.trim() === "")) {
    throw new UsageError("E_USAGE", `--sv-epsilon must be a number >= 0, got "${values["sv-epsilon"]}"`);
  }
  const dtype = values.dtype === undefined ? undefined : dtypeFromRecipeName(values.dtype);
  if (values.dtype !== undefined && !dtype) throw new UsageError("E_USAGE", `--dtype must be float32, bfloat16 or float16, got "${values.dtype}"`);
  const numeric = defined({
    rank: integer(values.rank, "rank", "rank"),
    oversample: integer(values.oversample, "oversample", "oversample"),
    powerIterations: integer(values["power-iterations"], "power-iterations", "powerIterations"),
    seed: integer(values.seed, "seed", "seed"),
    blockBytes: size(values["block-size"], "block-size", "blockBytes"),
    svEpsilon: eps,
    dtype,
  });
  if (values["distribute-scale"] && values["no-distribute-scale"]) throw new UsageError("E_USAGE", "--distribute-scale and --no-distribute-scale contradict each other");
  for (const flag of ["include-regex", "exclude-regex"] as const) {
    for (const source of values[flag] ?? []) {
      try {
        new RegExp(source);
      } catch (e) {
        throw new UsageError("E_USAGE", `--${flag}: "${source}" is not a regular expression (${(e as Error).message})`);
      }
    }
  }
  const filters = defined({ include: values["include-regex"], exclude: values["exclude-regex"], saveModules: values["save-module"] });
  const [finetuned, base, out] = positionals as [string, string, string];
  const live = !values.quiet && io.stderr.isTTY;
  const result = await interruptible((signal) => extractLora(finetuned, base, {
    ...numeric, ...filters, rank: numeric.rank!, out, distributeScale: !values["no-distribute-scale"], force: values.force ?? false, embedLora: values["embed-lora"] ?? false, signal,
    onModule: (m, done, total) => { if (live) io.stderr.write(`\r\x1b[K${done}/${total} ${m.module} (rank ${m.rank})`); },
  }));
  if (live) io.stderr.write("\r\x1b[K");
  if (values.json) {
    io.stdout.write(JSON.stringify({ out, ...result }) + "\n");
    return 0;
  }
  const width = Math.max(6, ...result.modules.map((m) => m.module.length));
  const lines = [
    `extracted a rank-${result.rank} LoRA of ${finetuned} against ${base} into ${out}: ${result.modules.length} modules in ${formatSeconds(result.seconds)}`,
    "", `${"module".padEnd(width)}  ${"shape".padStart(13)}  ${"rank".padStart(5)}  ${"rel. error".padStart(10)}`,
  ];
  for (const m of result.modules) {
    lines.push(`${m.module.padEnd(width)}  ${m.shape.join(" x ").padStart(13)}  ${String(m.rank).padStart(5)}  ${m.relativeError.toExponential(3).padStart(10)}`);
  }
  if (result.saved.length) {
    lines.push("", `saved whole (modules_to_save, from the fine-tune) (${result.saved.length}):`);
    for (const s of result.saved) lines.push(`  ${s.tensor}  ${s.shape.join(" x ")}  ${s.dtype}${s.differs ? "" : "  (equal in both models)"}`);
  }
  const filtered = result.skipped.filter((s) => s.reason === "excluded" || s.reason === "not included");
  if (filtered.length) {
    lines.push("", `left out by --include-regex / --exclude-regex (${filtered.length}):`);
    for (const s of filtered) lines.push(`  ${s.tensor}: ${s.reason === "excluded" ? `matches --exclude-regex ${s.pattern}` : "matches no --include-regex"}${s.differs ? " (changed by the fine-tune)" : ""}`);
  }
  const missed = result.skipped.filter((s) => s.differs && !filtered.includes(s));
  if (missed.length) {
    lines.push("", `changed by the fine-tune but not in the adapter (${missed.length}):`);
    for (const s of missed) lines.push(`  ${s.tensor}: ${s.reason === "embedding" ? "an input embedding (use --embed-lora or --save-module)" : s.reason === "zero rank" ? `no singular value above --sv-epsilon` : s.reason}`);
  }
  const same = result.skipped.filter((s) => !s.differs && !filtered.includes(s)).length;
  if (same) lines.push("", `${same} tensors are equal in both models`);
  lines.push(`files: ${result.files.join(", ")}`);
  io.stdout.write(lines.join("\n") + "\n");
  return 0;
}
