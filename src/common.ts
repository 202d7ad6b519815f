/**
 * @file Everything both builds (Node and browsers) export.
 */
export * from "./errors";
export type { MergeEvent, ProgressCallback } from "./events";
export type { MergeOptions, MergeSummary } from "./api/merge";
export { DEFAULT_CHUNK_BYTES, DEFAULT_MEMORY_BUDGET, DEFAULT_SHARD_SIZE, prepare } from "./api/merge";
export type { InspectReport } from "./api/inspect";
export { parseRecipe, recipeFromObject, type Recipe } from "./recipe/recipe";
export { METHODS, type MethodSpec } from "./merge/methods";
export { BlobFolder, type ModelFolder } from "./io/folder";
export type { OutputFolder } from "./io/output";
export { VERSION } from "./merge/card";
export { parseSize } from "./plan/shards";
export { linearSumAssignment, type AssignmentResult, type CostMatrix } from "./align/assignment";
