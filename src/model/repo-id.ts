/**
 * @file Hugging Face repo ids ("org/name", optionally "@revision"), told apart from local paths.
 */

/** One part of a repo id: starts and ends with a letter, digit, _ or -, no "..", no "--" (the cache's separator). */
const REPO_PART = "[A-Za-z0-9](?:[\\w.-]*[\\w-])?";
const REPO_ID = new RegExp(`^(${REPO_PART})/(${REPO_PART})(?:@([\\w.-]+(?:/[\\w.-]+)*))?$`);

/** `org/name` and the revision of a Hugging Face repo reference, or undefined for anything else (paths). */
export function parseRepoId(name: string): { org: string; model: string; revision: string } | undefined {
  const m = REPO_ID.exec(name);
  if (!m || name.includes("..") || name.includes("--")) return undefined;
  return { org: m[1]!, model: m[2]!, revision: m[3] ?? "main" };
}
