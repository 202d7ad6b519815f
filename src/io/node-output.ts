/**
 * @file An output folder on disk. Files are written in a hidden staging folder inside OUT_DIR and
 * renamed into OUT_DIR at commit, weights last and the shard index very last, so OUT_DIR never holds an
 * output that looks complete but is not. A folder that already holds files is refused unless `force`.
 */
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, open, readdir, rename, rm, rmdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { OutputError } from "../errors";
import type { OutputTarget } from "../merge/job";
import { INDEX_FILE } from "../model/model";
import type { OutputFolder } from "./output";
import { openSource, type SourceRef } from "./source";

const STAGING_PREFIX = ".weightsoup-partial-";

export class NodeOutputFolder implements OutputFolder {
  private readonly files: string[] = [];
  private closed = false;

  private constructor(readonly name: string, private readonly staging: string, private readonly created: boolean, private readonly force: boolean) {}

  /** Prepares OUT_DIR (creating it if needed); refuses a non-empty one unless `force`. */
  static async open(dir: string, options: { force?: boolean } = {}): Promise<NodeOutputFolder> {
    let created = false;
    try {
      const info = await stat(dir);
      if (!info.isDirectory()) throw new OutputError("E_OUTPUT_EXISTS", `${dir}: exists and is not a folder`, { file: dir });
      const entries = await readdir(dir);
      // Staging folders of an interrupted run are not output: remove them.
      for (const e of entries.filter((e) => e.startsWith(STAGING_PREFIX))) await rm(join(dir, e), { recursive: true, force: true });
      const rest = entries.filter((e) => !e.startsWith(STAGING_PREFIX));
      if (rest.length > 0 && !options.force) {
        throw new OutputError("E_OUTPUT_EXISTS", `${dir}: output folder is not empty (${rest.length} entries); choose an empty folder or pass --force to overwrite`, { file: dir });
      }
    } catch (e) {
      if (e instanceof OutputError) throw e;
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw ioError(dir, e);
      await mkdir(dir, { recursive: true }).catch((cause) => { throw ioError(dir, cause); });
      created = true;
    }
    const staging = join(dir, STAGING_PREFIX + randomBytes(4).toString("hex"));
    await mkdir(staging).catch((cause) => { throw ioError(staging, cause); });
    return new NodeOutputFolder(dir, staging, created, options.force ?? false);
  }

  private track(file: string): string {
    if (!this.files.includes(file)) this.files.push(file);
    return join(this.staging, file);
  }

  async createFile(file: string, size: number, head: Uint8Array): Promise<OutputTarget> {
    const path = this.track(file);
    try {
      const fh = await open(path, "w");
      try {
        await fh.write(head, 0, head.length, 0);
        await fh.truncate(size);
      } finally {
        await fh.close();
      }
    } catch (cause) {
      throw ioError(path, cause);
    }
    return { kind: "path", path };
  }

  async write(file: string, offset: number, bytes: Uint8Array): Promise<void> {
    const path = join(this.staging, file);
    const fh = await open(path, "r+");
    try {
      await fh.write(bytes, 0, bytes.length, offset);
    } finally {
      await fh.close();
    }
  }

  async writeText(file: string, text: string): Promise<void> {
    const path = this.track(file);
    await writeFile(path, text).catch((cause) => { throw ioError(path, cause); });
  }

  async copyFrom(file: string, source: SourceRef): Promise<void> {
    const path = this.track(file);
    if (source.kind === "path") {
      await copyFile(source.path, path).catch((cause) => { throw ioError(path, cause); });
      return;
    }
    const src = openSource(source);
    const bytes = new Uint8Array(await src.size());
    await src.readInto(0, bytes);
    await writeFile(path, bytes);
  }

  async commit(): Promise<string[]> {
    const isWeights = (f: string) => f.endsWith(".safetensors") || f === INDEX_FILE;
    if (this.force) {
      // Weight files of an earlier output would mix with ours (another shard count, a stale index).
      for (const e of await readdir(this.name)) {
        if ((e.endsWith(".safetensors") || e.endsWith(".index.json")) && !e.startsWith(".")) await rm(join(this.name, e), { force: true });
      }
    }
    const order = [
      ...this.files.filter((f) => !isWeights(f)),
      ...this.files.filter((f) => f.endsWith(".safetensors")),
      ...this.files.filter((f) => f === INDEX_FILE),
    ];
    for (const f of order) await rename(join(this.staging, f), join(this.name, f)).catch((cause) => { throw ioError(join(this.name, f), cause); });
    await rmdir(this.staging).catch(() => undefined);
    this.closed = true;
    return order;
  }

  async discard(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await rm(this.staging, { recursive: true, force: true });
    if (this.created) await rmdir(this.name).catch(() => undefined);
  }
}

function ioError(path: string, cause: unknown): OutputError {
  return new OutputError("E_IO", `${path}: ${(cause as Error).message}`, { file: path }, { cause });
}
