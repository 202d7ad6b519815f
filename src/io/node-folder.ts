/**
 * @file Node folders: a directory on disk, or a single .safetensors file seen as a folder holding just
 * that file.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { ModelError } from "../errors";
import type { ModelFolder } from "./folder";
import type { SourceRef } from "./source";

export class NodeFolder implements ModelFolder {
  private constructor(readonly name: string, private readonly dir: string, private readonly only?: string) {}

  /** A directory, or a single file (then the folder lists only it). */
  static async open(path: string): Promise<NodeFolder> {
    let info;
    try {
      info = await stat(path);
    } catch (cause) {
      throw new ModelError("E_MODEL_NOT_FOUND", `${path}: no such file or folder`, { file: path }, { cause });
    }
    return info.isDirectory() ? new NodeFolder(path, path) : new NodeFolder(path, dirname(path), basename(path));
  }

  async list(): Promise<string[]> {
    if (this.only) return [this.only];
    const entries = await readdir(this.dir, { withFileTypes: true });
    return entries.filter((e) => e.isFile()).map((e) => e.name).sort();
  }
  source(file: string): SourceRef {
    return { kind: "path", path: join(this.dir, file) };
  }
  async readText(file: string): Promise<string> {
    return readFile(join(this.dir, file), "utf8");
  }
}
