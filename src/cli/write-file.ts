/**
 * @file Writing a report, chart or table file so that it is never seen half-written: the CLI's
 * measuring commands (diagnose, path, soup, sweep) all write theirs through here.
 */
import { rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { outputFailure } from "../io/io-error";
import { uniqueSuffix } from "../io/temp-name";

/** Writes `text` to `path` through a temporary file beside it, so `path` is never seen half-written. */
export async function writeFileAtomically(path: string, text: string): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.weightsoup-${uniqueSuffix()}.tmp`);
  try {
    await writeFile(temp, text);
    await rename(temp, path);
  } catch (cause) {
    // The clean-up must not replace the cause: under a regular file even rm fails (ENOTDIR).
    await rm(temp, { force: true }).catch(() => undefined);
    throw outputFailure(path, "write it", cause);
  }
}
