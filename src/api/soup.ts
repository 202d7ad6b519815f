/**
 * @file The library call: greedySoup(ingredients, options), Wortsman et al. 2022's greedy soup
 * ("Model soups", Recipe 1) with held-out loss in place of accuracy. Ingredients are scored alone and
 * sorted by held-out NLL (best first; equal losses keep the given order); the soup starts as the best
 * one, and each next ingredient joins the running uniform average only if the soup's held-out loss with
 * it is not worse (≤: a tie keeps it, as Wortsman's ≥ on accuracy does). Every soup is an in-memory
 * linear recipe run through evaluate, so its loss equals writing that soup and evaluating it, bit for
 * bit. The uniform soup of every ingredient (in the given order) is measured for comparison.
 */
import { DataError } from "../errors";
import type { OutputFolder } from "../io/output";
import { checkSameComputation, subjectName } from "../measure/endpoints";
import { uniformSoupRecipe } from "../measure/recipes";
import type { MergePlan } from "../plan/plan";
import type { Recipe } from "../recipe/recipe";
import type { ModelFolder } from "../io/folder";
import { evaluate, type EvaluateOptions } from "./evaluate";
import { merge, type MergeSummary } from "./merge";
import { checkCallbackOption, checkIntegerOptions } from "./options";
import { nowMs } from "../clock";

export type SoupEvent =
  | { type: "soup-ingredients"; ingredients: string[] }
  | { type: "soup-candidate"; step: number; steps: number; candidate: string }
  | { type: "soup-candidate-done"; step: number; steps: number; candidate: string; nll: number; kept: boolean }
  | { type: "soup-uniform" }
  | { type: "soup-write" }
  | { type: "soup-done"; seconds: number };

/** A soup ingredient: a checkpoint folder (recipes are not ingredients: merge them first). */
export interface SoupIngredient {
  name?: string;
  model: ModelFolder;
}

export interface SoupOptions extends Omit<EvaluateOptions, "against" | "onProgress"> {
  /** Greedy selection (default true); false: the soup is the uniform soup of every ingredient. */
  greedy?: boolean;
  /** Write the soup here with the merge engine (as merge()'s `out`); nothing is written without it. */
  out?: OutputFolder | ((plan: MergePlan) => Promise<OutputFolder>);
  onProgress?: (event: SoupEvent) => void;
}

export interface SoupStep {
  /** The ingredient tried at this step. */
  candidate: string;
  /** Held-out NLL of the uniform average of the soup so far and this candidate. */
  nll: number;
  perplexity: number;
  kept: boolean;
}

export interface SoupResult {
  /** Each ingredient alone, best first (the greedy order). */
  ingredients: { model: string; nll: number; perplexity: number }[];
  /** Greedy steps after the first ingredient, in order; empty when not greedy. */
  trajectory: SoupStep[];
  /** The soup's ingredients, in the order they joined (the order of the written recipe). */
  kept: string[];
  /** Held-out loss of the soup. */
  nll: number;
  perplexity: number;
  /** The uniform soup of every ingredient, in the given order. */
  uniform: { nll: number; perplexity: number };
  /** The recipe of the soup (linear, weight 1 each): what is written. */
  recipe: Recipe;
  tokens: number;
  predicted: number;
  /** The merge summary when the soup was written. */
  written?: MergeSummary;
  seconds: number;
}

export async function greedySoup(ingredients: readonly SoupIngredient[], options: SoupOptions): Promise<SoupResult> {
  checkIntegerOptions(options, ["workers", "seed", "memoryBudget", "chunkBytes", "context", "maxTokens"]);
  checkCallbackOption(options, "onProgress");
  const started = nowMs();
  const { greedy = true, out, onProgress, ...evalOptions } = options;
  if (ingredients.length < 2) throw new DataError("E_DATA", `a soup needs at least two ingredients, got ${ingredients.length}`, {});
  const names = ingredients.map((i) => subjectName(i));
  const folders = new Map<string, ModelFolder>();
  for (const [i, name] of names.entries()) {
    // The soup's recipe names the ingredients as given; a name recipe syntax would change cannot be one.
    if (name !== name.trim() || name.includes("+") || !name) throw new DataError("E_DATA", `"${name}": an ingredient's name cannot be empty, contain "+" (a LoRA reference in recipes) or start or end with spaces; give it another name`, { model: name });
    if (folders.has(name)) throw new DataError("E_DATA", `"${name}" is given twice as a soup ingredient`, { model: name });
    folders.set(name, ingredients[i]!.model);
  }
  await checkSameComputation(names.map((name) => ({ name, folder: folders.get(name)! })), "a soup of them runs with one ingredient's config.json, so it would be scored under settings the others were not");
  const resolve = (name: string) => folders.get(name)!;
  const soupLoss = async (members: readonly string[], label: string) => {
    const { results } = await evaluate([{ name: label, recipe: uniformSoupRecipe(members), models: resolve }], evalOptions);
    return results[0]!;
  };
  onProgress?.({ type: "soup-ingredients", ingredients: names });

  const alone = (await evaluate(names.map((name) => ({ name, model: folders.get(name)! })), evalOptions)).results;
  // Array.prototype.sort is stable: equal losses keep the order given.
  const ranked = alone.map((r) => ({ model: r.model, nll: r.nll, perplexity: r.perplexity })).sort((x, y) => x.nll - y.nll);
  const { tokens, predicted } = alone[0]!;

  const kept = [ranked[0]!.model];
  let current = { nll: ranked[0]!.nll, perplexity: ranked[0]!.perplexity };
  const trajectory: SoupStep[] = [];
  if (greedy) {
    const steps = ranked.length - 1;
    for (const [i, candidate] of ranked.slice(1).entries()) {
      onProgress?.({ type: "soup-candidate", step: i + 1, steps, candidate: candidate.model });
      const r = await soupLoss([...kept, candidate.model], `soup + ${candidate.model}`);
      const keep = r.nll <= current.nll;
      if (keep) {
        kept.push(candidate.model);
        current = { nll: r.nll, perplexity: r.perplexity };
      }
      trajectory.push({ candidate: candidate.model, nll: r.nll, perplexity: r.perplexity, kept: keep });
      onProgress?.({ type: "soup-candidate-done", step: i + 1, steps, candidate: candidate.model, nll: r.nll, kept: keep });
    }
  }
  onProgress?.({ type: "soup-uniform" });
  const all = await soupLoss(names, "uniform soup");
  const uniform = { nll: all.nll, perplexity: all.perplexity };
  if (!greedy) kept.splice(0, kept.length, ...names);
  const soup = greedy ? current : uniform;
  const recipe = uniformSoupRecipe(kept);
  const result: SoupResult = { ingredients: ranked, trajectory, kept, ...soup, uniform, recipe, tokens, predicted, seconds: 0 };
  if (out) {
    onProgress?.({ type: "soup-write" });
    result.written = await merge(recipe, {
      out, models: resolve,
      ...(evalOptions.workers !== undefined ? { workers: evalOptions.workers } : {}),
      ...(evalOptions.memoryBudget !== undefined ? { memoryBudget: evalOptions.memoryBudget } : {}),
      ...(evalOptions.chunkBytes !== undefined ? { chunkBytes: evalOptions.chunkBytes } : {}),
      ...(evalOptions.workerUrl !== undefined ? { workerUrl: evalOptions.workerUrl } : {}),
      ...(evalOptions.signal !== undefined ? { signal: evalOptions.signal } : {}),
    });
  }
  result.seconds = (nowMs() - started) / 1000;
  onProgress?.({ type: "soup-done", seconds: result.seconds });
  return result;
}
