/**
 * @file The names of the files and folders weightsoup keeps beside an output (staging folders, locks,
 * files set aside, reports written atomically).
 */
import { nameHash } from "../name-hash";

/**
 * Eight hex digits. Math.random, not node:crypto: these names only have to differ from other runs' (the
 * folders are created exclusively, under the output's lock), not be unguessable, and loading node:crypto
 * costs a small merge several milliseconds of start-up.
 */
export function uniqueSuffix(): string {
  return Math.floor(Math.random() * 2 ** 32).toString(16).padStart(8, "0");
}

/**
 * A file name's part of the names kept beside it (`.NAME.weightsoup-partial-1a2b3c4d`). File systems
 * allow 255 bytes per name and the side names add up to 29, so a name longer than SIDE_STEM_BYTES is cut
 * to its first SIDE_CUT_BYTES and a hash of the whole name: still readable, still the same for every
 * process (the lock is found by its name), and different for names that share a long beginning.
 */
export function sideStem(name: string): string {
  const encoder = new TextEncoder();
  if (encoder.encode(name).length <= SIDE_STEM_BYTES) return name;
  let cut = "", bytes = 0;
  for (const ch of name) {
    bytes += encoder.encode(ch).length;
    if (bytes > SIDE_CUT_BYTES) break;
    cut += ch;
  }
  return `${cut}~${nameHash(name).toString(16).padStart(8, "0")}`;
}

const SIDE_STEM_BYTES = 200;
const SIDE_CUT_BYTES = 180;
