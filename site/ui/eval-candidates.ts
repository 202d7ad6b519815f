/**
 * @file What the Evaluate panel can run: the last merge's output, read back from where the merge saved
 * it (browser storage or the picked folder); the recipe as it stands, merged layer by layer in memory
 * and never written; and every readable loaded model. Each becomes a library subject only when asked,
 * so files are opened fresh for each evaluation.
 *
 * Why the merged row reads the saved files rather than evaluating the recipe again: the numbers are
 * bit-identical either way, but the files are what the person downloads, so measuring them checks the
 * bytes that were saved; and evaluating a recipe merges every layer again on each Evaluate (and the
 * whole model, into one worker, on each Generate), which costs as much as the merge every time. The
 * recipe row is there for the other case: measuring a recipe before spending storage on it.
 */
import type { EvalSubject } from "../../src/api/evaluate";
import { ModelError } from "../../src/errors";
import { BlobFolder } from "../../src/io/folder";
import type { PageState } from "../state";
import { mappingOf } from "./mapping";
import type { SaveTarget } from "./save";

/** The last successful merge's output, and what it was made from. */
export interface MergedOutput {
  /** The output folder's name, and the folder it was created in (the picked folder, or the OPFS root). */
  name: string;
  parent: FileSystemDirectoryHandle;
  target: SaveTarget;
  files: readonly string[];
  /** The loaded models the recipe's names mapped to when the merge ran, base first. */
  parents: readonly string[];
}

export type CandidateKind = "merged" | "recipe" | "model";

export interface EvalCandidate {
  /** Stable key: "merged", "recipe" or "model:" + the loaded model's name. */
  id: string;
  /** Shown in the panel; also the subject's name, so results come back under it (unique). */
  label: string;
  kind: CandidateKind;
}

/** A candidate's choices in the panel: score it, and/or compare every scored model with it (KL). */
export interface EvalPick {
  score: boolean;
  against: boolean;
}

export const MERGED_ID = "merged";
export const RECIPE_ID = "recipe";
export const modelId = (name: string): string => `model:${name}`;

/**
 * The recipe can be evaluated in memory when the page would let it merge (the same checks) and it is one
 * document: a multi-stage recipe is merged layer by layer by no panel (each stage reads an earlier one's
 * output whole), only by Merge and as a path's endpoint (`stages`), which merges it whole first.
 */
export function recipeUsable(s: PageState, options: { stages?: boolean } = {}): boolean {
  const c = s.check;
  return s.recipe.trim() !== "" && c.text === s.recipe && c.problems.length === 0 && c.unmapped.length === 0 && c.broken.length === 0 && (options.stages === true || c.documents <= 1);
}

/** Why the recipe cannot be evaluated in memory, in words, for a panel's blocked reason. */
export function whyRecipeUnusable(s: PageState): string {
  return recipeUsable(s, { stages: true })
    ? "A multi-stage recipe is run by Merge only (each stage reads the one before it whole): merge it, then use its output."
    : "The recipe must be one the page could merge (see its problems above).";
}

/** The candidates, merged output first, then the recipe, then the loaded models in the order they were added. */
export function evalCandidates(s: PageState, options: { stages?: boolean } = {}): EvalCandidate[] {
  const loaded = s.models.filter((m) => m.loaded).map((m) => m.name);
  const taken = new Set(loaded);
  const unique = (label: string) => {
    let name = label, n = 2;
    while (taken.has(name)) name = `${label} ${n++}`;
    taken.add(name);
    return name;
  };
  const out: EvalCandidate[] = [];
  if (s.merged) out.push({ id: MERGED_ID, label: unique(`${s.merged.name} (merged)`), kind: "merged" });
  if (recipeUsable(s, options)) out.push({ id: RECIPE_ID, label: unique("recipe (merged in memory)"), kind: "recipe" });
  for (const name of loaded) out.push({ id: modelId(name), label: name, kind: "model" });
  return out;
}

/** The picks a finished merge starts the panel with: the output and every parent scored, each parent compared with. */
export function picksAfterMerge(merged: MergedOutput): Map<string, EvalPick> {
  const picks = new Map<string, EvalPick>([[MERGED_ID, { score: true, against: false }]]);
  for (const p of merged.parents) picks.set(modelId(p), { score: true, against: true });
  return picks;
}

export const pickOf = (s: PageState, id: string): EvalPick => s.evalPicks.get(id) ?? { score: false, against: false };

/** The library subject a candidate stands for, named by its label. */
export async function subjectOf(c: EvalCandidate, s: PageState): Promise<EvalSubject> {
  if (c.kind === "merged") return { name: c.label, model: await readMerged(s.merged!, c.label) };
  if (c.kind === "recipe") {
    const byName = new Map(s.models.map((m) => [m.name, m]));
    const mapping = mappingOf(s.recipe, s.models.map((m) => m.name), s.chosen);
    return {
      name: c.label, recipe: s.recipe,
      models: (recipeName: string) => {
        const model = byName.get(mapping.map.get(recipeName) ?? recipeName);
        if (!model) throw new ModelError("E_MODEL_NOT_FOUND", `model "${recipeName}" is not loaded in the page`, { model: recipeName });
        return model.folder;
      },
    };
  }
  const model = s.models.find((m) => modelId(m.name) === c.id);
  if (!model) throw new ModelError("E_MODEL_NOT_FOUND", `model "${c.label}" is no longer loaded in the page`, { model: c.label });
  return { name: c.label, model: model.folder };
}

/** The merged output's files as they are now on disk (or in browser storage), as a folder of Files. */
async function readMerged(merged: MergedOutput, label: string): Promise<BlobFolder> {
  const where = merged.target === "opfs" ? "browser storage" : "the picked folder";
  try {
    const dir = await merged.parent.getDirectoryHandle(merged.name);
    const files = new Map<string, File>();
    for (const file of merged.files) files.set(file, await (await dir.getFileHandle(file)).getFile());
    return new BlobFolder(merged.name, files);
  } catch (e) {
    const cause = e instanceof Error ? e.message : String(e);
    throw new ModelError("E_MODEL_NOT_FOUND", `${merged.name}: the merged output is no longer complete in ${where} (${cause}); merge again to evaluate it`, { model: label, file: merged.name }, { cause: e });
  }
}
