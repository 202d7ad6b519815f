/**
 * @file The ledger and the plan as the CLI prints them: one summary line after a merge, the whole
 * ledger (one line per input tensor, grouped by model) and the estimates for `weightsoup plan`.
 */
import type { PlanReport } from "../api/plan";
import type { Ledger, LedgerCounts } from "../ledger/ledger";
import { formatBytes, formatSeconds } from "../units";

export function ledgerSummary(counts: LedgerCounts): string {
  return `ledger: ${counts.inputs} input tensors: ${counts.merged} merged, ${counts.copied} copied, ${counts.refused} refused (not written); ${counts.outputs} output tensors`;
}

/** One line per input tensor: its status, its name, where it goes (when renamed) and why. */
export function ledgerLines(ledger: Ledger): string[] {
  const lines: string[] = [];
  let model: string | undefined;
  for (const e of ledger.entries) {
    if (e.model !== model) {
      model = e.model;
      const mine = ledger.entries.filter((x) => x.model === model);
      const n = (s: string) => mine.filter((x) => x.status === s).length;
      lines.push(`${model}: ${mine.length} tensors (${n("merged")} merged, ${n("copied")} copied, ${n("refused")} refused)`);
    }
    const into = e.into.length === 1 && e.into[0] === e.tensor ? "" : e.into.length ? ` -> ${e.into.join(", ")}` : "";
    lines.push(`  ${e.status.padEnd(7)}  ${e.tensor}${into}${e.why ? `  (${e.why})` : ""}`);
  }
  return lines;
}

export function planLines(report: PlanReport): string[] {
  const { estimate: e } = report;
  const rates = e.byFamily.map((f) => `${f.family} ${formatBytes(f.inputBytes)} at ${formatBytes(f.rate)}/s`).join(", ");
  return [
    ...ledgerLines(report.ledger),
    "",
    ledgerSummary(report.ledger.counts),
    `output: ${report.tensors} tensors, ${formatBytes(e.outputBytes)} in ${report.shards.join(", ")} (reads ${formatBytes(e.inputBytes)})`,
    e.workers === 0
      ? `peak memory: about ${formatBytes(e.peakMemory)} (${formatBytes(e.peakWorkerMemory)} of wasm memory in this thread, no workers: a small merge, plus the process)`
      : `peak memory: about ${formatBytes(e.peakMemory)} (${e.workers} workers × ${formatBytes(e.peakWorkerMemory)} of wasm memory, plus the process)`,
    `estimated time: ${formatSeconds(e.seconds)} (${rates}; rates measured on a 2-core VM, yours will differ)`,
  ];
}
