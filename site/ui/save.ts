/**
 * @file Where the page saves a merged model: a folder the person picks (File System Access API, where
 * the browser has it) or the origin-private file system, from which each file is offered for download.
 * Downloads link to the File the browser keeps on disk, never to a copy in memory.
 */
import { AbortError, OutputError } from "../../src/errors";
import { DirectoryOutputFolder, removeStaleStaging } from "../../src/io/directory-output";
import { storageFree } from "../../src/io/model-library";
import { formatBytes } from "../../src/units";
import { problemsOf, type Problem } from "./recipe-check";

export type SaveTarget = "opfs" | "folder";

declare global {
  interface Window {
    showDirectoryPicker?: (options?: { mode?: "read" | "readwrite"; id?: string }) => Promise<FileSystemDirectoryHandle>;
  }
}

export const canPickFolder = (): boolean => typeof window.showDirectoryPicker === "function";
export const hasOpfs = (): boolean => typeof navigator.storage?.getDirectory === "function";

/** Asks for an output folder; must run inside the click that asked for it. */
export function pickFolder(): Promise<FileSystemDirectoryHandle> {
  return window.showDirectoryPicker!({ mode: "readwrite", id: "weightsoup-output" });
}

/** Refuses early when the origin's storage quota cannot hold `bytes` more. */
export async function checkSpace(bytes: number): Promise<void> {
  const free = await storageFree();
  if (free !== undefined && bytes > free) {
    throw new OutputError("E_OUTPUT_SPACE", `the merged model needs ${formatBytes(bytes)} but this browser lets the page store only ${formatBytes(free)} more; free space, delete earlier outputs below, or save to a folder instead`, { needed: bytes, free });
  }
}

/** A save stopped at an output folder that holds files: the way out offered (overwrite, after a confirmation). */
export interface OverwriteOffer {
  name: string;
  /** The folder the output folder is in, as the failed save found it (overwriting writes there again, without asking). */
  parent: FileSystemDirectoryHandle;
  target: SaveTarget;
  confirming: boolean;
}

/** Where one save (a merge, the soup) writes its named output folder. */
export interface SaveWhere {
  target: SaveTarget;
  /** The folder the person picked in this click (target "folder"); undefined when they chose none. */
  picked?: Promise<FileSystemDirectoryHandle | undefined>;
  /** Write into this parent (overwriting after a confirmation) instead of asking again. */
  parent?: FileSystemDirectoryHandle;
  force?: boolean;
}

/**
 * Opens a save's output folder `name` (a staging folder inside it until the commit) in the picked
 * folder, browser storage or the given parent, refusing early when browser storage cannot hold `bytes`.
 * `parent()` is the folder it was opened in, once opened (an overwrite offer writes there again).
 */
export function outputOpener(where: SaveWhere, name: string): { open(bytes: number): Promise<DirectoryOutputFolder>; parent(): FileSystemDirectoryHandle | undefined } {
  let parent: FileSystemDirectoryHandle | undefined;
  return {
    async open(bytes) {
      parent = where.parent ?? (where.target === "folder" ? await where.picked : await navigator.storage.getDirectory());
      if (!parent) throw new AbortError(NO_FOLDER);
      if (where.target === "opfs") await checkSpace(bytes);
      return DirectoryOutputFolder.create(parent, name, { force: where.force ?? false });
    },
    parent: () => parent,
  };
}

const NO_FOLDER = "No folder was chosen";

/** How a save that threw ended: cancelled (with what to say), or failed with its problems and, when the folder already held files, the overwrite offer. */
export type SaveFailure = { cancelled: string } | { problems: Problem[]; overwrite: OverwriteOffer | null };

export function saveFailure(e: unknown, signal: AbortSignal, name: string, target: SaveTarget, parent: FileSystemDirectoryHandle | undefined): SaveFailure {
  if (e instanceof AbortError || signal.aborted) {
    return { cancelled: e instanceof AbortError && e.message === NO_FOLDER ? "No folder was chosen; nothing was saved." : "Cancelled; nothing was saved." };
  }
  const exists = e instanceof OutputError && e.code === "E_OUTPUT_EXISTS" && parent !== undefined;
  return { problems: problemsOf(e), overwrite: exists ? { name, parent: parent!, target, confirming: false } : null };
}

export interface SavedOutput {
  name: string;
  files: File[];
}

/**
 * Outputs kept in the origin-private file system. Staging folders are skipped, and so are folders with
 * no finished file (a merge still writing in another tab): they are not outputs one can use.
 */
export async function listSaved(): Promise<SavedOutput[]> {
  const root = await navigator.storage.getDirectory();
  const out: SavedOutput[] = [];
  for await (const [name, handle] of root.entries()) {
    if (handle.kind !== "directory" || name.startsWith(".")) continue;
    const files: File[] = [];
    for await (const [file, h] of (handle as FileSystemDirectoryHandle).entries()) {
      if (h.kind === "file" && !file.startsWith(".")) files.push(await (h as FileSystemFileHandle).getFile());
    }
    if (files.length) out.push({ name, files: files.sort((a, b) => (a.name < b.name ? -1 : 1)) });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : 1));
}

export async function deleteSaved(name: string): Promise<void> {
  const root = await navigator.storage.getDirectory();
  await root.removeEntry(name, { recursive: true });
}

/** Removes partial outputs that merges interrupted by a closed or reloaded page left in browser storage. */
export async function removeStaleOutputs(): Promise<string[]> {
  return removeStaleStaging(await navigator.storage.getDirectory(), 3000);
}

/** Checks an output folder name before anything runs ("" when it is usable; empty means "merged"). */
export function outputNameProblem(name: string): string {
  const n = name.trim();
  if (n === "") return "";
  if (/[\\/]/.test(n) || n.startsWith(".")) return `Output folder name: “${n}” cannot be a folder name (no slashes, and it cannot start with a dot)`;
  return "";
}
