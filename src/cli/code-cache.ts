/**
 * @file The CLI's code cache: V8's compiled code of the CLI's script (dist/cli-script.js), kept on disk
 * between runs, so that a command does not compile our JavaScript again on every start-up (most of a
 * small merge's time past Node's own start-up is V8 compiling our code on first use).
 *
 * The script is compiled with vm.Script, given the cache of an earlier run of the same command when there
 * is one; after a command that succeeded without one (or whose cache V8 rejected), script.createCachedData()
 * stores every function compiled so far, lazily compiled ones included, so the next run of that command
 * compiles almost nothing. One cache per command: each holds the functions its command runs.
 *
 * Never required: a missing, corrupt, stale or unreadable cache, or a folder that cannot be written, is
 * the same run without it. V8 rejects a cache made by another V8 version or with other flags, or for a
 * source of another length (cachedDataRejected); a CRC-32 rejects a damaged one; an entry's name carries
 * the script's identity on disk (device, inode, size, change and modification times), so a rebuilt or
 * reinstalled script looks for a new entry instead of trusting one made for other bytes of the same length. V8 runs a cache's bytecode
 * as it stands, so the folder must be this user's alone: created 0700, and used only when it is a real
 * folder owned by this user that nobody else can write to, as each entry must be. WEIGHTSOUP_NO_CACHE=1
 * turns it off (nothing is read, nothing is created).
 */
import { closeSync, fstatSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, statSync, unlinkSync, writeSync, constants, type Stats } from "node:fs";
import { tmpdir } from "node:os";
import { isAbsolute, join } from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { Script } from "node:vm";
import { crc32 } from "node:zlib";
import { nameHash } from "../name-hash";

/** What became of the cache in this run. */
type CacheState = "off" | "none" | "used" | "rejected" | "saved";

export interface LoadedScript {
  /** The script's CommonJS exports. */
  exports: Record<string, unknown>;
  /** After a successful command: stores the code compiled so far when there was no usable cache. Never throws. */
  save(): void;
}

/** Whether WEIGHTSOUP_NO_CACHE turns the cache off (any value but empty or "0"). */
function cacheDisabled(env: NodeJS.ProcessEnv = process.env): boolean {
  const value = env.WEIGHTSOUP_NO_CACHE;
  return value !== undefined && value !== "" && value !== "0";
}

/** The cache folder: $XDG_CACHE_HOME/weightsoup when that is an absolute path, else os.tmpdir()/weightsoup-UID. */
function cacheFolder(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CACHE_HOME;
  if (xdg && isAbsolute(xdg)) return join(xdg, "weightsoup");
  return join(tmpdir(), `weightsoup-${process.getuid?.() ?? "user"}`);
}

/** The part of an entry's name that says which script (where it is, and which Node runs it) and which command. */
function entryPrefix(script: string, command: string): string {
  return `${command}-${nameHash(`${script}\0${process.version}\0${process.arch}`).toString(36)}-`;
}

/** The file that holds the cache of `command` for the script at `script` (in `folder`), as it is on disk now. */
function cacheEntry(script: string, command: string, folder = cacheFolder()): string {
  const s = statSync(script, { bigint: true });
  return join(folder, `${entryPrefix(script, command)}${[s.dev, s.ino, s.size, s.ctimeNs, s.mtimeNs].map((n) => n.toString(36)).join("-")}.v8cache`);
}

/** A command name fit for a file name: the command given, else "other". */
export function cacheCommand(argv: readonly string[]): string {
  const command = argv.find((a) => a !== "--debug" && a !== "--profile");
  return command !== undefined && /^[a-z][a-z-]{0,31}$/.test(command) ? command : "other";
}

/** Owned by this user and writable by nobody else (no owners on Windows: there os.tmpdir() is the user's own). */
function private_(s: Stats): boolean {
  return process.getuid === undefined || (s.uid === process.getuid() && (s.mode & 0o022) === 0);
}

/** Whether `folder` is a real folder (not a link) that only this user can change. */
function safeFolder(folder: string): boolean {
  try {
    const s = lstatSync(folder);
    return s.isDirectory() && private_(s);
  } catch {
    return false;
  }
}

/**
 * An entry is MAGIC, the CRC-32 of the rest (little-endian), then V8's cache. V8 checks a cache's version,
 * flags and source length, but in release builds not its payload: a cache damaged on disk would crash the
 * process (SIGSEGV) instead of being rejected.
 */
const MAGIC = 0x31435357; // "WSC1"
const HEADER_BYTES = 8;

/** The cache's bytes, when the folder and the entry are safe to trust and whole; undefined otherwise. */
function readEntry(folder: string, file: string): Buffer | undefined {
  if (!safeFolder(folder)) return undefined;
  let fd: number | undefined;
  try {
    fd = openSync(file, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
    const s = fstatSync(fd);
    if (!s.isFile() || !private_(s)) return undefined;
    const entry = readFileSync(fd);
    if (entry.length <= HEADER_BYTES || entry.readUInt32LE(0) !== MAGIC) return undefined;
    const data = entry.subarray(HEADER_BYTES);
    return crc32(data) === entry.readUInt32LE(4) ? data : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Writes `data` as `file` through a temporary file beside it, renamed over it: a reader sees a whole entry
 * or none, and of two processes racing, the last rename wins with a whole entry. Then removes the entries
 * this script's earlier builds left for the command. Any failure leaves things as they were.
 */
function writeEntry(folder: string, file: string, prefix: string, data: Buffer): boolean {
  try {
    mkdirSync(folder, { recursive: true, mode: 0o700 });
    if (!safeFolder(folder)) return false;
    const temp = `${file}.${process.pid}-${Math.random().toString(36).slice(2)}.tmp`;
    try {
      const fd = openSync(temp, "wx", 0o600);
      try {
        const header = Buffer.alloc(HEADER_BYTES);
        header.writeUInt32LE(MAGIC, 0);
        header.writeUInt32LE(crc32(data), 4);
        for (const part of [header, data]) for (let at = 0; at < part.length;) at += writeSync(fd, part, at);
      } finally {
        closeSync(fd);
      }
      renameSync(temp, file);
    } catch (e) {
      try { unlinkSync(temp); } catch { /* never created */ }
      throw e;
    }
    const name = file.slice(folder.length + 1);
    for (const other of readdirSync(folder)) {
      if (other.startsWith(prefix) && other.endsWith(".v8cache") && other !== name) {
        try { unlinkSync(join(folder, other)); } catch { /* another process removed it */ }
      }
    }
    return true;
  } catch {
    return false;
  }
}

/**
 * A script's text: a CommonJS module inside `(function (exports, require, module, weightsoupScriptUrl) {`
 * ... `})` (esbuild's --banner and --footer), so that the file is the source compiled, not a copy of it
 * joined to a wrapper. Read as latin1: esbuild's output is ASCII (its default charset escapes the rest),
 * and a latin1 string is a plain copy of the bytes where UTF-8 must be decoded.
 */
function scriptText(path: string): string {
  return readFileSync(path, "latin1");
}

/** Runs a compiled script and returns its exports. */
function run(script: Script, url: URL): Record<string, unknown> {
  const module = { exports: {} as Record<string, unknown> };
  const fn = script.runInThisContext() as (exports: unknown, require: (id: string) => unknown, module: unknown, url: string) => void;
  const nodeRequire = createRequire(url);
  // node: modules from Node; a relative one, "./NAME", is the script cli-NAME.js beside this one (the
  // kernels' embedded wasm builds, loaded only when the .wasm files beside the CLI are missing).
  fn(module.exports, (id) => id.startsWith("./") ? run(new Script(scriptText(fileURLToPath(new URL(`./cli-${id.slice(2)}.js`, url)))), url) : nodeRequire(id), module, url.href);
  return module.exports;
}

/**
 * Compiles and runs the CommonJS script at `url` (the CLI's, built with esbuild --format=cjs) with the
 * code cache of `command`, and returns its exports.
 */
export function loadScript(url: URL, command: string, env: NodeJS.ProcessEnv = process.env): LoadedScript {
  const path = fileURLToPath(url);
  const source = scriptText(path);
  let folder: string | undefined, file: string | undefined, cachedData: Buffer | undefined;
  if (!cacheDisabled(env)) {
    try {
      folder = cacheFolder(env);
      file = cacheEntry(path, command, folder);
      cachedData = readEntry(folder, file);
    } catch {
      folder = file = cachedData = undefined;
    }
  }
  let script: Script;
  try {
    script = new Script(source, { filename: path, cachedData });
  } catch (e) {
    // A syntax error is the script's, with or without a cache; anything else, try once without it.
    if (cachedData === undefined || e instanceof SyntaxError) throw e;
    cachedData = undefined;
    script = new Script(source, { filename: path });
  }
  let state: CacheState = file === undefined ? "off" : cachedData === undefined ? "none" : script.cachedDataRejected ? "rejected" : "used";
  const exports = run(script, url);
  return {
    exports,
    save() {
      if ((state !== "none" && state !== "rejected") || folder === undefined || file === undefined) return;
      try {
        if (writeEntry(folder, file, entryPrefix(path, command), script.createCachedData())) state = "saved";
      } catch {
        // createCachedData can fail only for want of memory: the next run compiles again.
      }
    },
  };
}
