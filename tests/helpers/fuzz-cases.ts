// One fuzz case: which inputs are mutated and how, and how weightsoup is run on them. Cases are plain
// data (they cross to the runner thread and are what fast-check prints when it shrinks a failure);
// `materialize` turns one into a folder of models and a recipe.
import { cp, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { toYaml } from "./fixtures";
import { MODEL_NAMES, RECIPES } from "./fuzz-fixtures";
import { mutateConfig, type ConfigMutations } from "./fuzz-model-config";
import type { FlagsCase, OptionsCase } from "./fuzz-options";
import { recipeText, type RecipeMutations } from "./fuzz-recipes";
import { mutateModelFolder, type FileMutations } from "./fuzz-safetensors";

/**
 * plan: parse and plan only (prepare), the fast path most cases take; merge: the whole merge through
 * the library; cli: the whole merge through dist/cli.cjs; inspect: weightsoup's inspect on the models.
 */
export type RunMode = "plan" | "merge" | "cli" | "inspect";

export type FuzzCase =
  | { kind: "files"; run: RunMode; template: number; files: FileMutations }
  | { kind: "config"; run: RunMode; template: number; config: ConfigMutations }
  | { kind: "recipe"; run: Exclude<RunMode, "inspect">; recipe: RecipeMutations }
  | { kind: "options"; run: "merge"; options: OptionsCase }
  | { kind: "flags"; run: "cli"; flags: FlagsCase };

/** The folder holding the untouched fixture models (base, a, b), written once per test run. */
export const PRISTINE = "pristine";

/**
 * Writes the case's models and recipe in dir (an empty folder); returns the recipe's path. Models it mutates are
 * copies; the others are links to the pristine folders (cheaper, and never written to).
 */
export async function materialize(c: FuzzCase, root: string, dir: string): Promise<string> {
  const target = c.kind === "files" ? c.files.target : c.kind === "config" ? c.config.target : undefined;
  const mutated = target === "all" ? MODEL_NAMES : MODEL_NAMES.filter((name) => name === target);
  for (const name of MODEL_NAMES) {
    const pristine = join(root, PRISTINE, name);
    if (mutated.includes(name)) await cp(pristine, join(dir, name), { recursive: true });
    else await symlink(pristine, join(dir, name), "dir");
  }
  let text: string;
  switch (c.kind) {
    case "files":
      for (const name of mutated) await mutateModelFolder(join(dir, name), c.files);
      text = toYaml(RECIPES[c.template]!.recipe);
      break;
    case "config":
      for (const name of mutated) await mutateConfig(join(dir, name), c.config.ops);
      text = toYaml(RECIPES[c.template]!.recipe);
      break;
    case "recipe":
      text = recipeText(c.recipe);
      break;
    case "options":
      text = toYaml(RECIPES[c.options.template]!.recipe);
      break;
    case "flags":
      text = toYaml(RECIPES[c.flags.template]!.recipe);
      break;
  }
  const path = join(dir, "recipe.yml");
  await writeFile(path, text);
  return path;
}

/** The model folder an inspect case looks at. */
export function inspectTarget(c: FuzzCase): string {
  if (c.kind === "files") return c.files.target === "all" ? "a" : c.files.target;
  if (c.kind === "config") return c.config.target === "all" ? "a" : c.config.target;
  return "a";
}
