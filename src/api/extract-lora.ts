/**
 * @file The library call extractLora(finetuned, base, options): a PEFT LoRA adapter from the task
 * vectors of a fine-tune (src/lora/extract.ts), computed on the calling thread's kernel instance.
 */
import { describeValue, OptionError } from "../errors";
import type { ModelFolder } from "../io/folder";
import type { OutputFolder } from "../io/output";
import { alignmentKernels } from "../align/kernels";
import { extractLoraModels, type ExtractLoraOptions, type ExtractLoraResult } from "../lora/extract";
import { checkModuleFilterOptions } from "../lora/module-filter";
import { openModel } from "../model/model";
import { checkCallbackOption, checkIntegerOptions, checkOptionKinds } from "./options";

export interface ExtractLoraCallOptions extends ExtractLoraOptions {
  /** Where the adapter folder is written (published when complete). */
  out: OutputFolder;
}

/** Checks extraction options before anything is read. */
export function checkExtractOptions(options: ExtractLoraOptions): void {
  checkOptionKinds("extractLora", options, { embedLora: "boolean", signal: "signal" });
  if (options.rank === undefined) throw new OptionError("E_OPTION", "option rank is required (the largest rank of the LoRA, at least 1)", { key: "rank" });
  checkIntegerOptions(options, ["rank", "oversample", "powerIterations", "seed", "blockBytes"]);
  const eps = options.svEpsilon;
  if (eps !== undefined && (typeof eps !== "number" || !Number.isFinite(eps) || eps < 0)) {
    throw new OptionError("E_OPTION", `option svEpsilon must be a finite number >= 0, got ${describeValue(eps)}`, { key: "svEpsilon" });
  }
  if (options.dtype !== undefined && !["F32", "F16", "BF16"].includes(options.dtype)) {
    throw new OptionError("E_OPTION", `option dtype must be F32, F16 or BF16, got ${describeValue(options.dtype)}`, { key: "dtype" });
  }
  if (options.distributeScale !== undefined && typeof options.distributeScale !== "boolean") {
    throw new OptionError("E_OPTION", `option distributeScale must be true or false, got ${describeValue(options.distributeScale)}`, { key: "distributeScale" });
  }
  checkModuleFilterOptions(options);
  checkCallbackOption(options, "onModule");
}

/** Extracts a LoRA adapter that turns `base` into (approximately) `finetuned`, into `options.out`. */
export async function extractLora(finetuned: ModelFolder, base: ModelFolder, options: ExtractLoraCallOptions): Promise<ExtractLoraResult> {
  const { out, ...rest } = options;
  let models;
  try {
    checkExtractOptions(options);
    models = [await openModel(finetuned), await openModel(base)] as const;
  } catch (e) {
    await out.discard();
    throw e;
  }
  return extractLoraModels(await alignmentKernels(), models[0], models[1], out, rest);
}

export type { ExtractLoraOptions, ExtractLoraResult };
