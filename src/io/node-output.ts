/**
 * @file An output folder on disk, published atomically. Everything is written into a staging folder
 * next to OUT_DIR (same parent, so the same file system) and made visible with one directory rename:
 * at every instant OUT_DIR is either absent, the complete old output, or the complete new one. With
 * `force` over an existing folder, the old one is renamed aside, the new one renamed in, then the old
 * one deleted.
 *
 * A lock file beside OUT_DIR, created exclusively and holding the writer's pid, keeps a second merge
 * from writing the same output (or clearing the first's staging folder); a lock whose process is
 * gone is stale and taken over, with the staging folders it left.
 */
import { copyFile, lstat, mkdir, open, readdir, readFile, realpath, rename, rm, stat, unlink, writeFile, type FileHandle } from "node:fs/promises";
import { basename, dirname, join, resolve, sep } from "node:path";
import { OutputError } from "../errors";
import type { OutputTarget } from "../merge/job";
import { outputFailure } from "./io-error";
import { NodeFolder } from "./node-folder";
import type { OutputFolder, ScratchFolder } from "./output";
import { openSource, type SourceRef } from "./source";
import { sideStem, uniqueSuffix } from "./temp-name";

/** Staging folders of older versions lived inside OUT_DIR under this prefix. */
const LEGACY_STAGING_PREFIX = ".weightsoup-partial-";

export interface NodeOutputOptions {
  /** Replace a non-empty OUT_DIR. */
  force?: boolean;
  /** Paths the merge reads (model folders, weight files, the recipe): OUT_DIR must not be, contain or be inside any. */
  inputs?: readonly string[];
}

export class NodeOutputFolder implements OutputFolder {
  private readonly files: string[] = [];
  private closed = false;

  /** `lock` is undefined for a scratch folder inside another output's staging area (that output holds the lock). */
  private constructor(readonly name: string, private readonly target: string, private readonly staging: string, private readonly lock: string | undefined) {}

  /** Takes the output's lock, checks OUT_DIR (empty unless `force`, not an input) and creates the staging folder. */
  static async open(dir: string, options: NodeOutputOptions = {}): Promise<NodeOutputFolder> {
    // A symbolic link as OUT_DIR means its target: publish there, not over the link.
    const target = await realPathOf(dir);
    const parent = dirname(target), base = basename(target);
    if (parent === target || base === "" || base === "." || base === "..") {
      throw new OutputError("E_OUTPUT_NAME", `${dir}: cannot be an output folder (it is a file system root)`, { file: dir });
    }
    await makeDirectory(parent, dir);
    await refuseInputs(dir, target, options.inputs ?? []);
    const stem = sideStem(base);
    const lock = join(parent, `.${stem}.weightsoup-lock`);
    await takeLock(dir, lock);
    try {
      await checkTarget(dir, target, options.force ?? false);
      // Staging and set-aside folders left by a merge that was killed: ours now (we hold the lock).
      for (const entry of await readdir(parent)) {
        if (entry.startsWith(`.${stem}.weightsoup-partial-`) || entry.startsWith(`.${stem}.weightsoup-old-`)) {
          await rm(join(parent, entry), { recursive: true, force: true });
        }
      }
      const staging = join(parent, `.${stem}.weightsoup-partial-${uniqueSuffix()}`);
      await mkdir(staging).catch((cause: unknown) => { throw outputFailure(staging, "create the staging folder", cause); });
      return new NodeOutputFolder(dir, target, staging, lock);
    } catch (e) {
      await releaseLock(lock);
      throw e;
    }
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
      throw outputFailure(join(this.name, file), "create it", cause);
    }
    return { kind: "path", path, file: join(this.name, file) };
  }

  async write(file: string, offset: number, bytes: Uint8Array): Promise<void> {
    try {
      const fh = await open(join(this.staging, file), "r+");
      try {
        let done = 0;
        while (done < bytes.length) done += (await fh.write(bytes, done, bytes.length - done, offset + done)).bytesWritten;
      } finally {
        await fh.close();
      }
    } catch (cause) {
      throw outputFailure(join(this.name, file), `write ${bytes.length} bytes at offset ${offset}`, cause);
    }
  }

  async writeText(file: string, text: string): Promise<void> {
    const path = this.track(file);
    await writeFile(path, text).catch((cause: unknown) => { throw outputFailure(join(this.name, file), "write it", cause); });
  }

  async copyFrom(file: string, source: SourceRef): Promise<void> {
    const path = this.track(file);
    try {
      if (source.kind === "path") {
        await copyFile(source.path, path);
        return;
      }
      const src = openSource(source);
      const bytes = new Uint8Array(await src.size());
      await src.readInto(0, bytes);
      await writeFile(path, bytes);
    } catch (cause) {
      throw outputFailure(join(this.name, file), `copy it from ${source.kind === "path" ? source.path : source.name}`, cause);
    }
  }

  async commit(): Promise<string[]> {
    const old = await lstat(this.target).then(() => true, () => false);
    const aside = `${dirname(this.target)}${sep}.${sideStem(basename(this.target))}.weightsoup-old-${uniqueSuffix()}`;
    let movedAside = false;
    try {
      if (old) {
        await rename(this.target, aside);
        movedAside = true;
      }
      await rename(this.staging, this.target);
    } catch (cause) {
      if (movedAside) await rename(aside, this.target).catch(() => undefined); // put the old output back
      throw outputFailure(this.name, "publish the finished output", cause);
    }
    this.closed = true;
    if (old) await rm(aside, { recursive: true, force: true }).catch(() => undefined);
    if (this.lock) await releaseLock(this.lock);
    return [...this.files].sort();
  }

  /**
   * Removes the staging folder and the lock, as far as the file system lets it: discard runs after a
   * failure, which is what the caller reports; a file system that has turned read-only (or a disk error)
   * must not replace it with the clean-up's own error. What is left, the next run into OUT_DIR removes.
   */
  async discard(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await rm(this.staging, { recursive: true, force: true }).catch(() => undefined);
    if (this.lock) await releaseLock(this.lock);
  }

  /**
   * An intermediate model's folder, `.stage-LABEL` inside the staging folder: itself written through a
   * staging folder of its own and published by rename, like any output, then read back as a model.
   */
  async scratch(label: string): Promise<ScratchFolder> {
    const dir = join(this.staging, `.stage-${label.replace(/[^A-Za-z0-9_-]/g, "_")}`);
    const staging = `${dir}.weightsoup-partial`;
    await mkdir(staging).catch((cause: unknown) => { throw outputFailure(staging, "create an intermediate model's folder", cause); });
    const output = new NodeOutputFolder(`${this.name} (intermediate ${label})`, dir, staging, undefined);
    return {
      output,
      folder: () => NodeFolder.open(dir),
      remove: async () => {
        await output.discard();
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
}

/**
 * Creates a folder and its missing parents one level at a time: Node's recursive mkdir reports a
 * read-only file system as ENOENT, and the real cause is what a person needs to read.
 */
async function makeDirectory(path: string, forOutput: string): Promise<void> {
  const missing: string[] = [];
  for (let p = path; ; p = dirname(p)) {
    const info = await stat(p).catch(() => undefined);
    if (info) {
      if (!info.isDirectory()) throw new OutputError("E_IO", `${forOutput}: cannot be created, since ${p} is a file, not a folder`, { file: forOutput, path: p });
      break;
    }
    missing.unshift(p);
    if (dirname(p) === p) break;
  }
  for (const p of missing) {
    await mkdir(p).catch((cause: NodeJS.ErrnoException) => {
      if (cause.code !== "EEXIST") throw outputFailure(p, "create the folder", cause);
    });
  }
}

/** The path with symbolic links resolved, for the part that exists. */
async function realPathOf(path: string): Promise<string> {
  const absolute = resolve(path);
  for (let p = absolute, rest = ""; ; rest = join(basename(p), rest), p = dirname(p)) {
    const real = await realpath(p).catch(() => undefined);
    if (real !== undefined) return rest ? join(real, rest) : real;
    if (dirname(p) === p) return absolute;
  }
}

/** Refuses an output that is, contains or is inside a path the merge reads: --force would destroy it. */
async function refuseInputs(dir: string, target: string, inputs: readonly string[]): Promise<void> {
  // Resolved all at once (each is a few file system calls on libuv's threads), checked in order.
  const [out, ...reals] = await Promise.all([target, ...inputs].map(realPathOf));
  const within = (inner: string, outer: string) => inner === outer || inner.startsWith(outer.endsWith(sep) ? outer : outer + sep);
  for (const [i, input] of inputs.entries()) {
    const real = reals[i]!;
    if (within(real, out) || within(out, real)) {
      const how = real === out ? "is" : within(real, out) ? "contains" : "is inside";
      throw new OutputError("E_OUTPUT_IS_INPUT", `${dir}: the output folder ${how} ${input}, which this command reads; choose another output folder`, { file: dir, input });
    }
  }
}

/**
 * The locks this process holds. A lock file naming this process's pid that is not among them was left
 * by an earlier merge of this process that could not remove it (its file system had turned read-only):
 * stale, like the lock of a process that has exited.
 */
const heldLocks = new Set<string>();

/** Takes the lock, or says who holds it. A lock whose process has exited is stale and taken over. */
async function takeLock(dir: string, lock: string): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    let fh: FileHandle | undefined;
    try {
      fh = await open(lock, "wx");
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      heldLocks.add(lock);
      return;
    } catch (cause) {
      if (fh) {
        // Created but not written (a full disk): closed and removed, not left behind.
        await fh.close().catch(() => undefined);
        await unlink(lock).catch(() => undefined);
      }
      if ((cause as NodeJS.ErrnoException).code !== "EEXIST") throw outputFailure(lock, "create the output's lock file", cause);
    }
    const pid = Number.parseInt(await readFile(lock, "utf8").catch(() => ""), 10);
    const staleOfOurs = pid === process.pid && !heldLocks.has(lock);
    if (Number.isInteger(pid) && pid > 0 && !staleOfOurs && processAlive(pid)) {
      const who = pid === process.pid ? `another merge in this process (pid ${pid})` : `another weightsoup process (pid ${pid})`;
      throw new OutputError("E_OUTPUT_LOCKED", `${dir}: ${who} is writing this output folder; wait for it to finish, or delete ${lock} if no merge is running`, { file: dir, pid, lock });
    }
    await unlink(lock).catch(() => undefined);
  }
  throw new OutputError("E_OUTPUT_LOCKED", `${dir}: could not take the output's lock ${lock}`, { file: dir, lock });
}

async function releaseLock(lock: string): Promise<void> {
  heldLocks.delete(lock);
  await unlink(lock).catch(() => undefined);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** OUT_DIR must be absent, an empty folder, or (with force) a folder. */
async function checkTarget(dir: string, target: string, force: boolean): Promise<void> {
  const info = await lstat(target).catch((cause: NodeJS.ErrnoException) => {
    if (cause.code === "ENOENT") return undefined;
    throw outputFailure(dir, "inspect it", cause);
  });
  if (!info) return;
  if (!info.isDirectory()) throw new OutputError("E_OUTPUT_EXISTS", `${dir}: exists and is not a folder`, { file: dir });
  const entries = await readdir(target).catch((cause: unknown) => { throw outputFailure(dir, "list it", cause); });
  // Staging folders that older versions left inside OUT_DIR are not output.
  for (const e of entries.filter((e) => e.startsWith(LEGACY_STAGING_PREFIX))) await rm(join(target, e), { recursive: true, force: true });
  const rest = entries.filter((e) => !e.startsWith(LEGACY_STAGING_PREFIX));
  if (rest.length > 0 && !force) {
    throw new OutputError("E_OUTPUT_EXISTS", `${dir}: output folder is not empty (${rest.length} entries); choose an empty folder or pass --force to replace it`, { file: dir });
  }
}

