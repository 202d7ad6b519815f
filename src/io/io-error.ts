/**
 * @file One way to report a failed read or write: a typed error naming the path and the real cause
 * in words, with the errno code kept in `details`. Node's own messages are terse ("ENOSPC: no space
 * left on device, write") and its recursive mkdir reports a read-only file system as ENOENT, so the
 * callers below ask for the cause precisely and this names it.
 */
import { ModelError, OutputError } from "../errors";

const CAUSES = new Map([
  ["ENOSPC", "the disk is full"],
  ["EDQUOT", "the disk quota is used up"],
  ["EROFS", "the file system is read-only"],
  ["EACCES", "permission denied"],
  ["EPERM", "operation not permitted"],
  ["ENOENT", "no such file or folder"],
  ["ENOTDIR", "a part of the path is not a folder"],
  ["EISDIR", "it is a folder"],
  ["EEXIST", "it already exists"],
  ["ENOTEMPTY", "the folder is not empty"],
  ["EMFILE", "too many open files"],
  ["EIO", "input/output error (a failing disk?)"],
  ["EFBIG", "the file is too large for this file system"],
  ["EXDEV", "it is on another file system"],
  ["EBUSY", "it is in use"],
  ["ENAMETOOLONG", "the name is too long"],
  ["ELOOP", "too many symbolic links"],
]);

/** The cause of a failed system call, in words ("the disk is full (ENOSPC)"). */
export function causeOf(cause: unknown): string {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  const words = code === undefined ? undefined : CAUSES.get(code);
  if (words) return `${words} (${code})`;
  if (cause instanceof Error) return cause.message;
  return String(cause);
}

/** A failed write (or folder operation) on the output. */
export function outputFailure(path: string, action: string, cause: unknown): OutputError {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  return new OutputError("E_IO", `${path}: cannot ${action}: ${causeOf(cause)}`, { file: path, ...(code ? { errno: code } : {}) }, { cause });
}

/** A failed read of an input. */
export function inputFailure(path: string, action: string, cause: unknown): ModelError {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  return new ModelError(code === "ENOENT" ? "E_MODEL_NOT_FOUND" : "E_IO", `${path}: cannot ${action}: ${causeOf(cause)}`, { file: path, ...(code ? { errno: code } : {}) }, { cause });
}
