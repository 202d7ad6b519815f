/**
 * @file The align and barrier commands: loaded by the CLI only when one of them runs (a merge does not
 * parse the alignment code).
 */
import { readFile } from "node:fs/promises";
import { AlignmentError, UsageError } from "../errors";
import { EXPLICIT_SPEC } from "../align/align-model";
import { align, barrier } from "../node";
import { SPEC_KINDS, type SpecKind } from "../align/architectures";
import { parseSpec, type PermutationSpec } from "../align/spec";
import { formatSeconds } from "../units";
import { args, defined, integer, type Io } from "./args";
import { commandHelp } from "./commands";
import { interruptible } from "./interrupt";
import { nowMs } from "../clock";

export async function alignCommand(argv: string[], io: Io): Promise<number> {
  const parsed = args("align", argv, {
    spec: { type: "string" }, seed: { type: "string" }, "max-sweeps": { type: "string" }, workers: { type: "string" },
    force: { type: "boolean" }, quiet: { type: "boolean" }, json: { type: "boolean" },
  }, [3, 3], io);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  const numeric = defined({ seed: integer(values.seed, "seed", "seed"), maxSweeps: integer(values["max-sweeps"], "max-sweeps", "maxSweeps"), workers: integer(values.workers, "workers", "workers") });
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
  let lastLine = 0;
  const result = await interruptible((signal) => align(reference, model, {
    out, force: values.force ?? false, spec, signal, ...numeric,
    onGroup: (e) => {
      const now = nowMs();
      if (values.quiet || !io.stderr.isTTY || now - lastLine < 100) return;
      lastLine = now;
      io.stderr.write(`\r\x1b[Ksweep ${e.sweep}: ${e.done}/${e.groups} groups (${e.group})`);
    },
  })).catch((e: unknown) => {
    // The library names an explicit spec's problems "the permutation spec": here it is a file.
    if (e instanceof AlignmentError && e.message.startsWith(`${EXPLICIT_SPEC}: `)) {
      throw new AlignmentError(e.code, `${specArg}: ${e.message.slice(EXPLICIT_SPEC.length + 2)}`, { ...e.details, file: specArg }, { cause: e });
    }
    throw e;
  });
  if (!values.quiet && io.stderr.isTTY) io.stderr.write("\r\x1b[K");
  if (values.json) {
    io.stdout.write(JSON.stringify({ out, spec: result.specKind, sweeps: result.sweeps, seconds: result.seconds, groups: result.groups }) + "\n");
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
}

export async function barrierCommand(argv: string[], io: Io): Promise<number> {
  const parsed = args("barrier", argv, {
    data: { type: "string" }, points: { type: "string" }, align: { type: "boolean" }, seed: { type: "string" }, json: { type: "boolean" },
  }, [2, 2], io);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  if (!values.data) throw new UsageError("E_USAGE", `barrier: --data FILE is required\n\n${commandHelp("barrier")}`);
  const numeric = defined({ points: integer(values.points, "points", "points"), seed: integer(values.seed, "seed", "seed") });
  const [a, b] = positionals as [string, string];
  const result = await barrier(a, b, {
    data: values.data, align: values.align ?? false, ...numeric,
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
