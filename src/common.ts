/**
 * @file Everything both builds (Node and browsers) export.
 */
export * from "./errors";
export type { MergeEvent, ProgressCallback } from "./events";
export type { MergeOptions, MergeSummary } from "./api/merge";
export { DEFAULT_CHUNK_BYTES, DEFAULT_MEMORY_BUDGET, DEFAULT_SHARD_SIZE, prepare } from "./api/merge";
export type { InspectReport } from "./api/inspect";
export type { PlanOptions, PlanReport } from "./api/plan";
export type { Ledger, LedgerEntry, LedgerCounts, LedgerStatus } from "./ledger/ledger";
export type { PlanEstimate } from "./ledger/estimate";
export { parseRecipe, recipeFromObject, type Recipe } from "./recipe/recipe";
export { METHODS, type MethodSpec } from "./merge/methods";
export { BlobFolder, type ModelFolder } from "./io/folder";
export type { OutputFolder } from "./io/output";
export { VERSION } from "./merge/card";
export { parseSize } from "./plan/shards";
export { linearSumAssignment, type AssignmentResult, type CostMatrix } from "./align/assignment";
export { weightMatching, applyPermutations, type Tensor, type MatchingOptions, type MatchingResult, type GroupSimilarity } from "./align/weight-matching";
export { checkSpec, parseSpec, type PermutationSpec, type AxisSpec, type AxisLevel, type GroupRef, type Permutations } from "./align/spec";
export { inferSpec, mlpSpec, llamaSpec, gpt2Spec, SPEC_KINDS, type SpecKind } from "./align/architectures";
export { alignModel, matchModels, ALIGNMENT_FILE, type AlignOptions, type AlignResult } from "./align/align-model";
export { openModel, type LoadedModel } from "./model/model";
export { evaluateMlp, barrierPath, measureBarrier, loadDataset, interpolate, type Dataset, type Evaluation, type PathPoint, type BarrierReport, type BarrierOptions } from "./align/barrier";
export { evaluate, logits, DEFAULT_CONTEXT, type EvalSubject, type EvaluateOptions, type EvaluationResult } from "./api/evaluate";
export type { EvalEvent } from "./eval/protocol";
export { SUPPORTED_FAMILIES, decoderSpec, type DecoderSpec } from "./eval/architecture";
export { generate, DEFAULT_GENERATE_BUDGET, type GenerateOptions, type GenerationResult } from "./api/generate";
export { loadTokenizer, type Tokenizer } from "./tokenizer/tokenizer";
export { readTokenIds } from "./tokenizer/token-ids";
export { DEFAULT_TEXT, DEFAULT_TEXT_NAME } from "./eval/default-text";
export type { ExtractLoraOptions, ExtractLoraResult, ModuleReport, SkippedTensor } from "./lora/extract";
export { lossCurve, DEFAULT_PATH_POINTS, type LossPathOptions, type LossPathResult, type LossPathEvent, type LossCurve, type LossPoint, type PathKind } from "./api/path";
export type { SoupOptions, SoupResult, SoupEvent, SoupStep, SoupIngredient } from "./api/soup";
