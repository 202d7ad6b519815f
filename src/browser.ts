/**
 * @file weightsoup for browsers: the same engine, with models given as picked files (BlobFolder) or
 * copied once into the model library in the origin-private file system (io/model-library.ts), and
 * the output in a folder a person picked or in the origin-private file system (DirectoryOutputFolder).
 */
export { merge } from "./api/merge";
export { plan } from "./api/plan";
export { diagnose } from "./api/diagnose";
export { sweep } from "./api/sweep";
export { inspect } from "./api/inspect";
export * from "./common";
export { DirectoryOutputFolder } from "./io/directory-output";
export { addToLibrary, libraryFolder, listLibrary, removeFromLibrary, removeUnfinishedCopies, type LibraryModel } from "./io/model-library";
export { extractLora } from "./api/extract-lora";
export { lossPath } from "./api/path";
export { greedySoup } from "./api/soup";
