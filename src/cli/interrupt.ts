/**
 * @file Ctrl-C and the other ways a terminal stops a command. Every command that writes or computes for
 * long runs under `interruptible`: the first SIGINT, SIGTERM or SIGHUP (the terminal closed, an ssh
 * session dropped) aborts the command's AbortSignal, and the command then cleans up (workers stopped,
 * its staging folder and lock removed) and exits 130. A second signal during that clean-up does not cut
 * it short: it only says what is happening; a third quits at once, leaving what the clean-up had not yet
 * removed for the next run into that folder to remove.
 */
import { AbortError } from "../errors";

const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/** Runs `fn` with an AbortSignal that the first of those signals fires. */
export async function interruptible<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let received = 0;
  const onSignal = () => {
    received++;
    if (received === 1) controller.abort(new AbortError("interrupted"));
    else if (received === 2) process.stderr.write("weightsoup: cleaning up (stopping workers, removing the partial output); interrupt again to quit at once\n");
    else process.exit(130);
  };
  for (const s of SIGNALS) process.on(s, onSignal);
  try {
    return await fn(controller.signal);
  } finally {
    for (const s of SIGNALS) process.off(s, onSignal);
  }
}
