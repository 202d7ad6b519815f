/**
 * @file Where a merge's output goes. An output is written under temporary names and made visible only
 * when everything is written (weights last), so an interrupted or failed merge never leaves a folder
 * that looks complete.
 */
import type { OutputTarget } from "../merge/job";
import type { SourceRef } from "./source";

export interface OutputFolder {
  /** For messages. */
  readonly name: string;
  /**
   * Creates `file` with its final `size`, the first bytes being `head` (a safetensors header). Workers
   * write the rest at the returned target, or hand the bytes back for write().
   */
  createFile(file: string, size: number, head: Uint8Array): Promise<OutputTarget>;
  /** Writes bytes a worker returned (for "return" targets). */
  write(file: string, offset: number, bytes: Uint8Array): Promise<void>;
  writeText(file: string, text: string): Promise<void>;
  copyFrom(file: string, source: SourceRef): Promise<void>;
  /** Moves everything to its final name (weight files last) and returns the file names. */
  commit(): Promise<string[]>;
  /** Removes everything written so far. */
  discard(): Promise<void>;
}
