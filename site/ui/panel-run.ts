/**
 * @file What the measuring panels' runs (Evaluate, Diagnose, Loss path, Sweep, Greedy soup) share: the
 * options they take and how one ends when the library call throws.
 */
import { AbortError } from "../../src/errors";
import type { RunState } from "../state";
import { problemsOf, type Problem } from "./recipe-check";

/** A panel run's AbortSignal, and the worker pool's size and script. */
export interface PanelRunOptions {
  signal: AbortSignal;
  workers?: number;
  workerUrl?: URL;
}

/** A run that threw ends cancelled when its signal was aborted, else failed with the error as problems. */
export function endFailedRun(
  e: unknown, signal: AbortSignal,
  set: (patch: { status: string; announcement: string; run: RunState; problems?: Problem[] }) => void,
  words: { cancelled: string; failed: string },
): void {
  if (e instanceof AbortError || signal.aborted) set({ status: words.cancelled, announcement: words.cancelled, run: "cancelled" });
  else set({ status: words.failed, announcement: words.failed, problems: problemsOf(e), run: "error" });
}
