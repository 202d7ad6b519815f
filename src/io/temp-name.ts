/**
 * @file The random part of a temporary file or folder's name beside an output (staging folders, files
 * set aside, reports written atomically).
 */

/**
 * Eight hex digits. Math.random, not node:crypto: these names only have to differ from other runs' (the
 * folders are created exclusively, under the output's lock), not be unguessable, and loading node:crypto
 * costs a small merge several milliseconds of start-up.
 */
export function uniqueSuffix(): string {
  return Math.floor(Math.random() * 2 ** 32).toString(16).padStart(8, "0");
}
