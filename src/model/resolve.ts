/**
 * @file Finding a model a recipe names, in Node. Recipes from model cards name Hugging Face repos
 * ("org/model"); weightsoup never downloads, so a name is looked up as a path relative to the recipe
 * file, then, if it has the form of a repo id, in the local Hugging Face cache (HF_HUB_CACHE,
 * HF_HOME/hub, ~/.cache/huggingface/hub), where `org/model@revision` picks a snapshot by ref or commit.
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { ModelError } from "../errors";
import { NodeFolder } from "../io/node-folder";
import type { ModelFolder } from "../io/folder";
import { parseRepoId } from "./repo-id";

export function hubCacheRoots(env: NodeJS.ProcessEnv = process.env): string[] {
  const roots = [env.HF_HUB_CACHE, env.HUGGINGFACE_HUB_CACHE, env.HF_HOME && join(env.HF_HOME, "hub"), join(homedir(), ".cache", "huggingface", "hub")];
  return [...new Set(roots.filter((r): r is string => !!r))];
}

export async function resolveModel(name: string, recipeDir: string, env: NodeJS.ProcessEnv = process.env): Promise<ModelFolder> {
  const local = resolve(recipeDir, name);
  if (existsSync(local)) return NodeFolder.open(local);
  const repo = parseRepoId(name);
  if (!repo) {
    const where = isAbsolute(name) ? "" : ` (relative to ${recipeDir})`;
    throw new ModelError("E_MODEL_NOT_FOUND", `model "${name}": ${local} does not exist${where}`, { model: name, file: local });
  }
  const looked = [local];
  for (const root of hubCacheRoots(env)) {
    const dir = join(root, `models--${repo.org}--${repo.model}`);
    looked.push(dir);
    if (!existsSync(dir)) continue;
    const ref = join(dir, "refs", repo.revision);
    const commit = existsSync(ref) ? readFileSync(ref, "utf8").trim() : repo.revision;
    const snapshot = join(dir, "snapshots", commit);
    if (existsSync(snapshot)) return NodeFolder.open(snapshot, `${repo.org}/${repo.model}`);
  }
  throw new ModelError("E_MODEL_NOT_FOUND", `model "${name}" not found (looked in ${looked.join(", ")}); weightsoup works offline: download the model and name its folder in the recipe`, { model: name, file: local });
}
