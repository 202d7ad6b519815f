/**
 * @file Where a merge's output goes. An output is written under temporary names and made visible only
 * when everything is written (weights last), so an interrupted or failed merge never leaves a folder
 * that looks complete.
 */
import type { OutputTarget } from "../merge/job";
import type { ModelFolder } from "./folder";
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
  /**
   * A folder for an intermediate model of a multi-stage recipe, inside this output's staging area: on
   * the same disk, never visible, and gone with the staging area if the merge fails or is killed. It
   * must be removed before commit(). Outputs without it have intermediates kept in memory instead.
   */
  scratch?(label: string): Promise<ScratchFolder>;
}

/** Where one intermediate model is written and read back from. */
export interface ScratchFolder {
  /** Written like any output (committed when the stage is done). */
  readonly output: OutputFolder;
  /** The committed model, to be read as an input of later stages. */
  folder(): Promise<ModelFolder>;
  /** Deletes it. */
  remove(): Promise<void>;
}
