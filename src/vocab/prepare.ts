/**
 * @file The tokenizer steps of preparing a merge: before planning, the output vocabulary (read from
 * every model's tokenizer files); after planning, the padding rows' means and the output's tokenizer
 * files. A recipe without tokenizer keys skips all of it (the donor's files are copied, as before).
 */
import type { LoadedModel } from "../model/model";
import type { MergePlan } from "../plan/plan";
import type { Recipe } from "../recipe/recipe";
import { computePaddingRows } from "./padding";
import { buildTokenizerOutput } from "./tokenizer-files";
import { buildVocabulary, type OutputVocabulary } from "./vocabulary";

export async function recipeVocabulary(recipe: Recipe, order: string[], models: ReadonlyMap<string, LoadedModel>): Promise<OutputVocabulary | undefined> {
  if (!recipe.tokenizer) return undefined;
  return buildVocabulary(recipe.tokenizer, recipe.file, order, recipe.baseModel, models);
}

/** Fills in what planning left for later: padding rows, and the tokenizer files the output gets. */
export async function finishTokenizerPlan(plan: MergePlan, vocabulary: OutputVocabulary | undefined, order: string[], signal?: AbortSignal): Promise<void> {
  if (!vocabulary && !plan.recipe.chatTemplate) return;
  plan.tokenizerOutput = await buildTokenizerOutput(vocabulary, plan.recipe.chatTemplate, plan.donor, plan.models, order);
  if (vocabulary && vocabulary.paddedSize > vocabulary.size) await computePaddingRows(plan.tensors, vocabulary.size, signal);
}
