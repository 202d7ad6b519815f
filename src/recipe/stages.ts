/**
 * @file Multi-stage recipes (mergekit-multi): several YAML documents separated by `---`, each a whole
 * recipe, where a document's `name:` can be used as a model by the others. The documents are put in
 * an order in which every one runs after those it uses (a topological sort, ties kept in file order).
 *
 * The final output is the one document that no other uses. mergekit-multi leaves it unnamed; here it
 * may have a name too, but there must be exactly one such document: two would be two outputs for one
 * OUT_DIR, and an unnamed document that is not the final one could never be used.
 */
import { RecipeError, type ErrorCode } from "../errors";
import { referencedModels } from "../plan/plan";
import type { Recipe } from "./recipe";

/** One YAML document of the file: its plain value and its own text. */
export interface RecipeDocument {
  value: unknown;
  text: string;
}

/** How a document is named in messages: its position in the file, and its name when it has one. */
export function documentLabel(file: string, index: number, name: string | undefined): string {
  return `${file} (document ${index + 1}${name === undefined ? "" : `, "${name}"`})`;
}

/**
 * The final document's Recipe with `stages` set to the others in the order they run. `check` turns one
 * document into a Recipe (recipe.ts's recipeFromObject), so each is held to every rule a one-document
 * recipe is, and its messages name the document.
 */
export function stagedRecipe(documents: RecipeDocument[], text: string, file: string, check: (raw: unknown, text: string, label: string) => Recipe): Recipe {
  const recipes = documents.map((doc, i) => {
    const raw = doc.value as Record<string, unknown> | null;
    const name = raw !== null && typeof raw === "object" && typeof raw.name === "string" && raw.name.trim() ? raw.name.trim() : undefined;
    return check(doc.value, doc.text, documentLabel(file, i, name));
  });
  const fail = (code: ErrorCode, what: string, documents: number[]) =>
    new RecipeError(code, `${file}: ${what}`, { file, documents: documents.map((i) => i + 1) });

  const byName = new Map<string, number>();
  recipes.forEach((r, i) => {
    if (r.name === undefined) return;
    const first = byName.get(r.name);
    if (first !== undefined) {
      throw fail("E_STAGE_DUPLICATE", `documents ${first + 1} and ${i + 1} are both named "${r.name}"; each document's name must be unique, since later documents use it as a model`, [first, i]);
    }
    byName.set(r.name, i);
  });

  // What each document uses: the documents whose names it gives as a model.
  const uses = recipes.map((r) => [...new Set(referencedModels(r).flatMap((m) => (byName.has(m) ? [byName.get(m)!] : [])))]);
  const cycle = findCycle(uses);
  if (cycle) {
    const path = [...cycle, cycle[0]!].map((i) => labelOf(recipes[i]!, i)).join(" -> ");
    throw fail("E_STAGE_CYCLE", `documents use each other's outputs in a circle (${path}), so none of them can run first`, cycle);
  }
  const used = new Set(uses.flat());
  const finals = recipes.map((_, i) => i).filter((i) => !used.has(i));
  if (finals.length !== 1) {
    const listed = finals.map((i) => labelOf(recipes[i]!, i)).join(", ");
    throw fail("E_STAGE_FINAL", `${finals.length} documents are not used by any other (${listed}); a multi-stage recipe has one final output, the one document no other uses (name the others and use them as models, or move them to their own file)${misspelt(recipes, finals, byName)}`, finals);
  }

  const order = topologicalOrder(uses);
  const final = recipes[finals[0]!]!;
  return { ...final, text, stages: order.filter((i) => i !== finals[0]).map((i) => recipes[i]!) };
}

/**
 * A document no other uses is often one whose name another misspells ("midd" for "mid"): the names
 * given as models that are no document's name but near an unused document's, as a hint.
 */
function misspelt(recipes: Recipe[], unused: number[], byName: ReadonlyMap<string, number>): string {
  const given = [...new Set(recipes.flatMap(referencedModels))].filter((m) => !byName.has(m));
  // Within two edits, and fewer edits than either name has letters ("a" is no typo of "m").
  const close = (a: string, b: string) => {
    const d = editDistance(a, b);
    return d <= 2 && d < Math.min(a.length, b.length);
  };
  const near = unused.flatMap((i) => {
    const name = recipes[i]!.name;
    return name === undefined ? [] : given.filter((m) => close(m, name)).map((m) => `"${m}" (is "${name}" meant?)`);
  });
  return near.length ? `; a document names ${near.join(", ")}, which no document is called` : "";
}

/** Levenshtein distance: the fewest insertions, deletions and substitutions that turn a into b. */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}

/** The models a recipe reads from outside itself: every model any document names, but the documents' own names. */
export function externalModels(recipe: Recipe): string[] {
  const documents = [...(recipe.stages ?? []), recipe];
  const produced = new Set(documents.flatMap((d) => (d.name === undefined ? [] : [d.name])));
  return [...new Set(documents.flatMap((d) => referencedModels(d)))].filter((name) => !produced.has(name));
}

function labelOf(recipe: Recipe, index: number): string {
  return recipe.name === undefined ? `document ${index + 1}` : `document ${index + 1} "${recipe.name}"`;
}

/** A circle of documents (each using the next, the last the first), or undefined. Iterative DFS. */
function findCycle(uses: number[][]): number[] | undefined {
  const state = new Uint8Array(uses.length); // 0 unvisited, 1 on the current path, 2 done
  for (let root = 0; root < uses.length; root++) {
    if (state[root] !== 0) continue;
    const path: number[] = [root];
    const next: number[] = [0];
    state[root] = 1;
    while (path.length) {
      const node = path[path.length - 1]!;
      const k = next[next.length - 1]!;
      if (k >= uses[node]!.length) {
        state[node] = 2;
        path.pop();
        next.pop();
        continue;
      }
      next[next.length - 1] = k + 1;
      const child = uses[node]![k]!;
      if (state[child] === 1) return path.slice(path.indexOf(child));
      if (state[child] === 0) {
        state[child] = 1;
        path.push(child);
        next.push(0);
      }
    }
  }
  return undefined;
}

/** Every document after the ones it uses; among those ready at once, the earliest in the file first. */
function topologicalOrder(uses: number[][]): number[] {
  const waiting = uses.map((u) => u.length);
  const usedBy = uses.map(() => [] as number[]);
  uses.forEach((u, i) => u.forEach((j) => usedBy[j]!.push(i)));
  const order: number[] = [];
  const ready = uses.map((_, i) => i).filter((i) => waiting[i] === 0);
  while (ready.length) {
    ready.sort((a, b) => a - b);
    const i = ready.shift()!;
    order.push(i);
    for (const j of usedBy[i]!) if (--waiting[j]! === 0) ready.push(j);
  }
  return order;
}
