/**
 * @file Node folders: a directory on disk, or a single .safetensors file seen as a folder holding just
 * that file. Symbolic links are followed (a Hugging Face cache snapshot is a folder of links into
 * blobs/); anything that is not, in the end, a regular file is never read.
 */
import { readdir, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { ModelError } from "../errors";
import type { ModelFolder } from "./folder";
import { inputFailure } from "./io-error";
import { openRegularFile, type SourceRef } from "./source";

export class NodeFolder implements ModelFolder {
  private constructor(readonly name: string, private readonly dir: string, private readonly only?: string, readonly repoId?: string) {}

  /**
   * A directory, or a single file (then the folder lists only it). `repoId` is the Hugging Face repo
   * it was found as in the local cache, if it was.
   */
  static async open(path: string, repoId?: string): Promise<NodeFolder> {
    let info;
    try {
      info = await stat(path);
    } catch (cause) {
      throw inputFailure(path, "open it", cause);
    }
    if (info.isDirectory()) return new NodeFolder(path, path, undefined, repoId);
    if (!info.isFile()) throw new ModelError("E_NOT_REGULAR_FILE", `${path}: is neither a folder nor a regular file (a FIFO, socket or device)`, { file: path });
    return new NodeFolder(path, dirname(path), basename(path), repoId);
  }

  /** The folder on disk (for a single file, the folder holding it). */
  get path(): string {
    return this.only ? join(this.dir, this.only) : this.dir;
  }

  async list(): Promise<string[]> {
    if (this.only) return [this.only];
    let entries;
    try {
      entries = await readdir(this.dir, { withFileTypes: true });
    } catch (cause) {
      throw inputFailure(this.dir, "list it", cause);
    }
    const files: string[] = [];
    for (const e of entries) {
      if (e.isFile()) files.push(e.name);
      else if (e.isSymbolicLink()) {
        let missing: unknown;
        const target = await stat(join(this.dir, e.name)).catch((cause: unknown) => { missing = cause; return undefined; });
        // A weight file's link to nothing (a Hugging Face cache blob never downloaded) is named, not passed over.
        if (!target && e.name.endsWith(".safetensors")) throw inputFailure(join(this.dir, e.name), "follow its symbolic link", missing);
        if (target?.isFile()) files.push(e.name);
        else if (target && isModelFileName(e.name)) throw notRegular(join(this.dir, e.name), target.isDirectory());
      } else if (isModelFileName(e.name)) {
        // A folder named config.json would otherwise count as no config at all, and the output would lack one.
        throw notRegular(join(this.dir, e.name), e.isDirectory());
      }
    }
    return files.sort();
  }

  source(file: string): SourceRef {
    return { kind: "path", path: join(this.dir, file) };
  }

  readText(file: string): Promise<string> {
    return readTextFile(join(this.dir, file));
  }
}

/** Files a model folder is read for: one of these that is a FIFO or device is refused, not skipped. */
function isModelFileName(name: string): boolean {
  return name.endsWith(".safetensors") || name.endsWith(".json");
}

function notRegular(path: string, folder = false): ModelError {
  return new ModelError("E_NOT_REGULAR_FILE", `${path}: is ${folder ? "a folder" : "not a regular file (a FIFO, socket or device)"}; weightsoup reads only regular files`, { file: path });
}

/** Reads a small text file given by path (a recipe), refusing FIFOs and devices. */
export async function readTextFile(path: string): Promise<string> {
  const fh = await openRegularFile(await import("node:fs/promises"), path);
  try {
    return await fh.readFile({ encoding: "utf8" });
  } catch (cause) {
    throw inputFailure(path, "read it", cause);
  } finally {
    await fh.close().catch(() => undefined);
  }
}
