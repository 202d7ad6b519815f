/**
 * @file The library's plan(recipe): what a merge would do and cost, from the models' headers and
 * config.json alone: the ledger of every input tensor, the output's size and shards, the peak memory
 * and an estimated time. Nothing is computed or written, and no tensor data is read.
 */
import { availableCores, IS_NODE } from "../env";
import { estimatePlan, type PlanEstimate } from "../ledger/estimate";
import type { Ledger } from "../ledger/ledger";
import { planShards } from "../plan/shards";
import type { Recipe } from "../recipe/recipe";
import { DEFAULT_CHUNK_BYTES, DEFAULT_MEMORY_BUDGET, DEFAULT_SHARD_SIZE, prepare, runsInThread, type MergeOptions } from "./merge";
import { abortable } from "./abortable";
import { checkIntegerOptions, checkOptionKinds } from "./options";

export interface PlanOptions extends Pick<MergeOptions, "models" | "workers" | "memoryBudget" | "chunkBytes" | "outShardSize" | "signal"> {}

export interface PlanReport {
  method: string;
  /** Output tensors. */
  tensors: number;
  /** Output weight files, in order. */
  shards: string[];
  ledger: Ledger;
  estimate: PlanEstimate;
  /** What the recipe sets that mergekit does not read, ignored as it ignores it: the warnings a merge would print first. */
  warnings: string[];
}

export async function plan(recipe: Recipe | string, options: PlanOptions): Promise<PlanReport> {
  checkOptionKinds("plan", options, { signal: "signal" });
  checkIntegerOptions(options, ["workers", "memoryBudget", "chunkBytes", "outShardSize"]);
  return abortable(options.signal, async () => {
    // An align: step would read every weight it permutes; the plan is the same without it (same names, shapes, dtypes).
    const merge = await prepare(recipe, options.models, options.signal, { align: false });
    const shards = planShards(merge.tensors, options.outShardSize ?? DEFAULT_SHARD_SIZE, {});
    const estimate = estimatePlan(merge, {
      // As merge decides it: a small merge with the worker count left out runs on the calling thread.
      workers: options.workers ?? (IS_NODE && runsInThread(merge) ? 0 : await availableCores()),
      memoryBudget: options.memoryBudget ?? DEFAULT_MEMORY_BUDGET,
      chunkBytes: options.chunkBytes ?? DEFAULT_CHUNK_BYTES,
    });
    return { method: merge.method.name, tensors: merge.tensors.length, shards: shards.map((s) => s.file), ledger: merge.ledger, estimate, warnings: merge.warnings };
  });
}
