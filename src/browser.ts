/**
 * @file weightsoup for browsers: the same engine, with models given as picked files (BlobFolder) and
 * the output as an OutputFolder of your choice.
 */
export { merge } from "./api/merge";
export { inspect } from "./api/inspect";
export * from "./common";
