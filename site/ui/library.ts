/**
 * @file The page's side of the model library (src/io/model-library.ts): adding picked folders with
 * progress and Cancel, removing, and using a library model in the merge like a picked folder.
 */
import { WeightsoupError } from "../../src/errors";
import { defaultWorkerUrl } from "../../src/env";
import { addToLibrary, libraryFolder, listLibrary, removeFromLibrary, removeUnfinishedCopies, type LibraryModel } from "../../src/io/model-library";
import { formatBytes } from "../../src/units";
import type { Store } from "../state";
import { groupModels, loadModel, type PickedFile, type PickedModel } from "./models";

const say = (e: unknown) => (e instanceof WeightsoupError ? e.message : `the model library: ${(e as Error).message}`);

/** Lists the library (after removing copies a closed page left unfinished). */
export async function refreshLibrary(store: Store, clean = false): Promise<void> {
  try {
    if (clean) await removeUnfinishedCopies();
    store.update({ library: await listLibrary() });
  } catch (e) {
    store.update({ libraryProblem: say(e) });
  }
}

/** Copies each model folder among `picked` into the library, one after another. */
export async function addPicked(store: Store, picked: PickedFile[], options: { workerUrl?: URL; signal: AbortSignal }): Promise<void> {
  const groups = groupModels(picked, new Set());
  if (groups.length === 0) {
    store.update({ libraryProblem: "No model found in what was picked: a model is a folder holding .safetensors files." });
    return;
  }
  const total = groups.reduce((n, g) => n + [...g.files.values()].reduce((m, f) => m + f.size, 0), 0);
  let before = 0;
  store.update({ libraryProblem: "", libraryCopy: { name: groups[0]!.name, copied: 0, total } });
  try {
    for (const g of groups) {
      await addToLibrary(g.name, g.files, {
        workerUrl: options.workerUrl ?? defaultWorkerUrl(), signal: options.signal,
        onProgress: (copied) => store.update({ libraryCopy: { name: g.name, copied: before + copied, total } }),
      });
      before += [...g.files.values()].reduce((m, f) => m + f.size, 0);
      await refreshLibrary(store);
    }
  } catch (e) {
    store.update({ libraryProblem: say(e) });
  } finally {
    store.update({ libraryCopy: null });
    await refreshLibrary(store);
  }
}

/** The library model as a loaded model, named as in the library (with a suffix if a loaded model has that name). */
export async function useLibraryModel(model: LibraryModel, taken: ReadonlySet<string>): Promise<PickedModel> {
  let name = model.name;
  for (let n = 2; taken.has(name); n++) name = `${model.name}-${n}`;
  const { folder, files } = await libraryFolder(model, name);
  return { ...(await loadModel(name, files, folder)), library: model.id };
}

export async function removeLibraryModel(store: Store, model: LibraryModel): Promise<void> {
  try {
    await removeFromLibrary(model.id);
    store.update({ libraryProblem: "" });
  } catch (e) {
    store.update({ libraryProblem: say(e) });
  }
  await refreshLibrary(store);
}

export const copyStatus = (c: { name: string; copied: number; total: number }) =>
  `Copying ${c.name} into the library: ${formatBytes(c.copied)} of ${formatBytes(c.total)}`;
