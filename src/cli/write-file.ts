/**
 * @file Writing a report, chart or table file so that it is never seen half-written: the CLI's
 * measuring commands (diagnose, path, soup, sweep) all write theirs through here.
 */
import { constants } from "node:fs";
import { access, realpath, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { OutputError } from "../errors";
import { outputFailure } from "../io/io-error";
import { sideStem, uniqueSuffix } from "../io/temp-name";
import { GENERATION_CONFIG_FILE, MODEL_CONFIG_FILE, TOKENIZER_FILES } from "../tokenizer/files";

/**
 * Writes `text` to `path` through a temporary file beside it, so `path` is never seen half-written. A
 * symbolic link is followed: the file it names is replaced, not the link (checkFileTargets has refused
 * links to anything but a regular file).
 */
export async function writeFileAtomically(path: string, text: string): Promise<void> {
  const target = await realpath(path).catch(() => path);
  const temp = join(dirname(target), `.${sideStem(basename(target))}.weightsoup-${uniqueSuffix()}.tmp`);
  try {
    await writeFile(temp, text);
    await rename(temp, target);
  } catch (cause) {
    // The clean-up must not replace the cause: under a regular file even rm fails (ENOTDIR).
    await rm(temp, { force: true }).catch(() => undefined);
    throw outputFailure(path, "write it", cause);
  }
}

/**
 * Refuses, before any work, file outputs that could not be written at the end: a folder that does not
 * exist (its parents are not created, unlike an output model folder's) or a folder at the path. Else a
 * long run would fail last, after writing its other outputs (a soup's --out folder, a merge's folder).
 * Nor is a report written over a model's own files (weights, config, tokenizer: perhaps a model the
 * command reads), whatever folder they are in.
 */
export async function checkFileTargets(paths: readonly (string | undefined)[]): Promise<void> {
  for (const path of paths) {
    if (path === undefined) continue;
    const parent = await stat(dirname(path)).catch((cause: unknown) => {
      throw outputFailure(path, "write it", cause);
    });
    // stat follows a link: a link to a regular file is written through (writeFileAtomically); a dangling one stops here.
    const existing = await stat(path).catch((cause: unknown) => {
      if ((cause as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw outputFailure(path, "write it", cause);
    });
    const code = !parent.isDirectory() ? "ENOTDIR" : existing?.isDirectory() ? "EISDIR" : undefined;
    if (code) throw outputFailure(path, "write it", Object.assign(new Error(code), { code })); // worded by io-error's table
    if (existing && !existing.isFile()) {
      // Written through a temporary file and a rename, a FIFO or device would be replaced by a file (a reader left waiting, /dev/full gone).
      throw new OutputError("E_NOT_REGULAR_FILE", `${path}: is ${existing.isFIFO() ? "a FIFO (named pipe)" : existing.isSocket() ? "a socket" : "a device"}, not a regular file; a report is written whole to a temporary file and renamed over its path, so give a file's path`, { file: path });
    }
    // The temporary file goes beside the file a link names: that folder must take a new file.
    const folder = dirname(existing ? await realpath(path) : path);
    await access(folder, constants.W_OK).catch((cause: unknown) => { throw outputFailure(path, "write it", cause); });
    if (existing && isModelFile(basename(path))) {
      throw new OutputError("E_OUTPUT_EXISTS", `${path}: is a model's own file (weights, config or tokenizer), which a report never replaces; choose another path`, { file: path });
    }
  }
}

/** Files a model or adapter folder is read for. */
const MODEL_FILES = new Set([MODEL_CONFIG_FILE, GENERATION_CONFIG_FILE, "adapter_config.json", "preprocessor_config.json", ...TOKENIZER_FILES]);

function isModelFile(name: string): boolean {
  return MODEL_FILES.has(name) || /\.(safetensors|bin|pt|pth|gguf)$/.test(name) || name.endsWith(".safetensors.index.json");
}
