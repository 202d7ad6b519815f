/**
 * @file LoRA extraction (mergekit-extract-lora's job): a PEFT LoRA adapter approximating a fine-tune
 * as base + B·A, from a truncated SVD of each linear weight's task vector ΔW = W_ft − W_base
 * (rsvd.ts). With ΔW ≈ U_r Σ_r V_rᵀ, lora_A = √Σ_r V_rᵀ and lora_B = U_r √Σ_r (mergekit's default,
 * the scale split evenly), or lora_A = Σ_r V_rᵀ and lora_B = U_r without `distributeScale`
 * (mergekit's --no-distribute-scale); lora_alpha = r for every module, so PEFT's scale alpha/r is 1.
 *
 * Which tensors are decomposed: every 2-D float `*.weight` (nn.Linear's [out, in]; lm_head included,
 * it is a Linear to PEFT); input embeddings only with `embedLora` (PEFT's Embedding LoRA stores
 * lora_embedding_A [r, vocab] = (U√Σ)ᵀ and lora_embedding_B [dim, r] = (√ΣVᵀ)ᵀ). Everything else is
 * reported: 1-D tensors (norms, biases) that differ cannot be a LoRA and are left out (mergekit's
 * --skip-undecomposable), as are embeddings without `embedLora`; tensors equal in both models and
 * task vectors whose every singular value is ≤ ε need no factors.
 *
 * Module filters follow mergekit-extract-lora: `saveModules` (--save-module) names modules stored
 * whole from the fine-tune as PEFT modules_to_save (a name matches a module equal to it or ending in
 * "." + it), whatever the regexes say; otherwise a module is decomposed only if it matches one of
 * `include` (when any are given) and none of `exclude`, each a regular expression searched for
 * anywhere in the module name (Python's re.search; here RegExp.test).
 */
import { readTensorBytes, sameTensorBytes } from "../align/checkpoint";
import { abortable } from "../api/abortable";
import { ModelError, ValidationError, WeightsoupError } from "../errors";
import { DTYPES, type FloatDtype } from "../format/dtypes";
import { planFile } from "../format/safetensors";
import type { OutputFolder } from "../io/output";
import { openSource, type ByteSource } from "../io/source";
import type { Kernels } from "../kernels/kernels";
import { VERSION } from "../merge/card";
import type { LoadedModel, TensorInfo } from "../model/model";
import { isEmbedding } from "../model/roles";
import { nameHash } from "../name-hash";
import { moduleFilter, moduleOf } from "./module-filter";
import { adapterConfig, adapterReadme, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, isConv1D, KEY_PREFIX, loraKeys, peftModuleName } from "./peft-format";
import { truncatedSvd, type RowReader } from "./rsvd";
import { nowMs } from "../clock";

export interface ExtractLoraOptions {
  /** Largest rank of any module (mergekit's --max-rank). */
  rank: number;
  /** Singular values at or below this are dropped (default 0). */
  svEpsilon?: number;
  /** Also decompose input embeddings (default false: they are reported and left out). */
  embedLora?: boolean;
  /** Range-finder columns beyond the rank (default 16). */
  oversample?: number;
  /** Power iterations of the range finder (default 4). */
  powerIterations?: number;
  /** Seed of the random test matrices (default 0). */
  seed?: number;
  /** dtype of the stored factors (default F32). */
  dtype?: FloatDtype;
  /** Bytes of task-vector rows held at once (default 64 MiB). */
  blockBytes?: number;
  /** Split √σ into both factors (default true, mergekit's --distribute-scale); false: A = Σ_r V_rᵀ, B = U_r. */
  distributeScale?: boolean;
  /** Regular expressions: when any are given, only modules matching one of them are decomposed (mergekit's -i). */
  include?: string[];
  /** Regular expressions: modules matching any of them are not decomposed (mergekit's -e). */
  exclude?: string[];
  /** Modules stored whole (weight and bias, from the fine-tune) as PEFT modules_to_save: a full name or its last part. */
  saveModules?: string[];
  /** Written to adapter_config.json as base_model_name_or_path (default: the base model's location). */
  baseModelName?: string;
  signal?: AbortSignal;
  /** Called after each decomposed module. */
  onModule?: (module: ModuleReport, done: number, total: number) => void;
}

export interface ModuleReport {
  /** PEFT module name (the tensor name without ".weight"). */
  module: string;
  tensor: string;
  kind: "linear" | "embedding";
  shape: [number, number];
  rank: number;
  /** ‖ΔW − BA‖_F / ‖ΔW‖_F. */
  relativeError: number;
  /** ‖ΔW‖_F. */
  norm: number;
  /** Largest singular value found. */
  sigmaMax: number;
  seconds: number;
}

/** A tensor not in the adapter, and why. */
export interface SkippedTensor {
  tensor: string;
  reason: "unchanged" | "not decomposable" | "embedding" | "zero rank" | "not a float tensor" | "excluded" | "not included";
  /** Whether the fine-tune changed it (then the adapter misses that change). */
  differs: boolean;
  /** For "excluded": the --exclude pattern that matched. */
  pattern?: string;
}

/** A tensor of a module stored whole (modules_to_save), from the fine-tune. */
export interface SavedTensor {
  module: string;
  tensor: string;
  shape: number[];
  dtype: string;
  /** Whether the fine-tune changed it. */
  differs: boolean;
}

export interface ExtractLoraResult {
  modules: ModuleReport[];
  /** Tensors of --save-module modules, in the adapter at full size. */
  saved: SavedTensor[];
  skipped: SkippedTensor[];
  /** r (= lora_alpha) of adapter_config.json: the largest module rank. */
  rank: number;
  files: string[];
  seconds: number;
}

export const DEFAULT_OVERSAMPLE = 16;
export const DEFAULT_POWER_ITERATIONS = 4;
export const DEFAULT_BLOCK_BYTES = 64 * 1048576;

/** An nn.Embedding: the token embedding, or learned positions (GPT-2's wpe; OpenAI GPT's tokens_embed and positions_embed), which PEFT adapts as Embeddings. */
function isInputEmbedding(name: string): boolean {
  return (isEmbedding(name) && !/(^|\.)(lm_head|embed_out|output)\.weight$/.test(name)) || /(^|\.)(wpe|position_embeddings|embed_positions|tokens_embed|positions_embed)\.weight$/.test(name);
}


function rowReader(info: TensorInfo, source: ByteSource): RowReader {
  const rowBytes = (info.shape[1]! * DTYPES[info.dtype]!.bits) / 8;
  return { dtype: info.dtype, readRows: (row, _rows, into) => source.readInto(info.offset + row * rowBytes, into) };
}

/** Tensors of both models checked against each other: every problem at once, before any computation. */
function checkModels(ft: LoadedModel, base: LoadedModel): void {
  const problems: WeightsoupError[] = [];
  for (const [name, t] of ft.tensors) {
    const b = base.tensors.get(name);
    if (!b) {
      problems.push(new ModelError("E_TENSOR_MISSING", `${base.location}: tensor "${name}" of the fine-tuned model (${t.file}) is missing from the base model`, { file: base.location, tensor: name, model: base.location }));
    } else if (b.shape.join(",") !== t.shape.join(",")) {
      problems.push(new ModelError("E_SHAPE_MISMATCH", `${t.file}: tensor "${name}" is [${t.shape.join(", ")}] in the fine-tuned model but [${b.shape.join(", ")}] in the base model (${b.file}); a task vector needs equal shapes`,
        { file: t.file, tensor: name, model: ft.location, shapes: [t.shape, b.shape] }));
    }
  }
  for (const [name, b] of base.tensors) {
    if (!ft.tensors.has(name)) problems.push(new ModelError("E_TENSOR_MISSING", `${ft.location}: tensor "${name}" of the base model (${b.file}) is missing from the fine-tuned model`, { file: ft.location, tensor: name, model: ft.location }));
  }
  if (problems.length === 1) throw problems[0]!;
  if (problems.length > 1) throw new ValidationError(problems);
}

/** Extracts a LoRA adapter of `finetuned` relative to `base` into `out` (committed at the end). */
export async function extractLoraModels(k: Kernels, finetuned: LoadedModel, base: LoadedModel, out: OutputFolder, options: ExtractLoraOptions): Promise<ExtractLoraResult> {
  return abortable(options.signal, () => extract(k, finetuned, base, out, options));
}

async function extract(k: Kernels, finetuned: LoadedModel, base: LoadedModel, out: OutputFolder, options: ExtractLoraOptions): Promise<ExtractLoraResult> {
  const started = nowMs();
  const { signal } = options;
  const dtype = options.dtype ?? "F32";
  try {
    checkModels(finetuned, base);
    const filter = moduleFilter(options, [...finetuned.tensors.keys()], finetuned.location);
    const modules: ModuleReport[] = [];
    const saved: SavedTensor[] = [];
    const skipped: SkippedTensor[] = [];
    const tensors: { name: string; dtype: string; shape: number[]; data: Uint8Array }[] = [];
    const names = [...finetuned.tensors.keys()].sort();
    const decomposable = (name: string) => {
      const t = finetuned.tensors.get(name)!;
      return t.shape.length === 2 && name.endsWith(".weight") && DTYPES[t.dtype]!.kind === "float" && DTYPES[base.tensors.get(name)!.dtype]!.kind === "float";
    };
    const work = new Set(names.filter((n) => !filter.saves(n) && filter.verdict(n).extract && decomposable(n) && (!isInputEmbedding(n) || options.embedLora)));
    let done = 0;
    for (const name of names) {
      signal?.throwIfAborted();
      const t = finetuned.tensors.get(name)!, b = base.tensors.get(name)!;
      if (filter.saves(name)) {
        const module = peftModuleName(finetuned.config, moduleOf(name));
        saved.push({ module, tensor: name, shape: t.shape, dtype: t.dtype, differs: !(await sameTensorBytes(t, b)) });
        tensors.push({ name: KEY_PREFIX + module + name.slice(moduleOf(name).length), dtype: t.dtype, shape: t.shape, data: await readTensorBytes(t) });
        continue;
      }
      if (!work.has(name)) {
        const differs = !(await sameTensorBytes(t, b));
        const kind = DTYPES[t.dtype]!.kind;
        const verdict = filter.verdict(name);
        const reason: SkippedTensor["reason"] = !verdict.extract ? verdict.reason : !differs ? "unchanged" : kind !== "float" ? "not a float tensor" : decomposable(name) ? "embedding" : "not decomposable";
        skipped.push({ tensor: name, reason, differs, ...(verdict.extract ? {} : verdict.pattern !== undefined ? { pattern: verdict.pattern } : {}) });
        continue;
      }
      const t0 = nowMs();
      const [m, n] = t.shape as [number, number];
      const [sf, sb] = [openSource(t.source), openSource(b.source)];
      let result;
      try {
        result = await truncatedSvd(k, m, n, rowReader(t, sf), rowReader(b, sb), {
          rank: options.rank, svEpsilon: options.svEpsilon ?? 0, oversample: options.oversample ?? DEFAULT_OVERSAMPLE,
          powerIterations: options.powerIterations ?? DEFAULT_POWER_ITERATIONS, seed: ((options.seed ?? 0) ^ nameHash(name)) >>> 0,
          blockBytes: options.blockBytes ?? DEFAULT_BLOCK_BYTES, dtype, distributeScale: options.distributeScale ?? true,
        }, signal);
      } finally {
        await Promise.allSettled([sf.close(), sb.close()]);
      }
      done++;
      if (!Number.isFinite(result.norm)) {
        // A NaN or infinite ΔW has no low-rank factors (its singular values are NaN): leaving the module
        // out as unchanged would be a silent hole in the adapter.
        throw new ModelError("E_NONFINITE", `${finetuned.location}: tensor "${name}" minus the base's (${base.location}) has NaN or infinite values, so no LoRA factors can approximate it; exclude it (--exclude-regex) or fix the weights`, { file: finetuned.location, tensor: name });
      }
      if (result.rank === 0) {
        skipped.push({ tensor: name, reason: result.norm === 0 ? "unchanged" : "zero rank", differs: result.norm > 0 });
        continue;
      }
      const module = peftModuleName(finetuned.config, name.slice(0, -".weight".length));
      const embedding = isInputEmbedding(name);
      const keys = loraKeys(module, embedding);
      // An Embedding's and a Conv1D's ΔW [rows, cols] is (B·A)ᵀ: A = (U·√S)ᵀ [r, rows], B = (√S·Vᵀ)ᵀ [cols, r].
      if (embedding || isConv1D(finetuned.config, name)) {
        const eb = DTYPES[dtype]!.bits / 8;
        tensors.push({ name: keys.a, dtype, shape: [result.rank, m], data: transposeBytes(result.b, m, result.rank, eb) });
        tensors.push({ name: keys.b, dtype, shape: [n, result.rank], data: transposeBytes(result.a, result.rank, n, eb) });
      } else {
        tensors.push({ name: keys.a, dtype, shape: [result.rank, n], data: result.a });
        tensors.push({ name: keys.b, dtype, shape: [m, result.rank], data: result.b });
      }
      const report: ModuleReport = {
        module, tensor: name, kind: embedding ? "embedding" : "linear", shape: [m, n], rank: result.rank, relativeError: result.relativeError,
        norm: result.norm, sigmaMax: result.sigma[0] ?? 0, seconds: (nowMs() - t0) / 1000,
      };
      modules.push(report);
      options.onModule?.(report, done, work.size);
    }
    if (modules.length === 0) {
      const filtered = options.include?.length || options.exclude?.length || options.saveModules?.length ? " among the modules the filters select" : "";
      throw new ModelError("E_TENSOR_MISSING", `${finetuned.location}: no linear weight differs from ${base.location}${filtered}, so there is nothing to extract`, { file: finetuned.location, model: finetuned.location });
    }

    const rank = Math.max(...modules.map((m) => m.rank));
    const layout = planFile(tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, bytes: t.data.length })), { format: "pt", weightsoup_version: VERSION });
    await out.createFile(ADAPTER_WEIGHTS_FILE, layout.size, layout.head);
    for (const t of tensors) {
      signal?.throwIfAborted();
      await out.write(ADAPTER_WEIGHTS_FILE, layout.offsets.get(t.name)!, t.data);
    }
    const baseName = options.baseModelName ?? base.folder.repoId ?? base.location;
    const savedModules = [...new Set(saved.map((x) => x.module))];
    await out.writeText(ADAPTER_CONFIG_FILE, adapterConfig(modules, rank, baseName, savedModules, modules.some((m) => isConv1D(finetuned.config, m.tensor))));
    await out.writeText("README.md", adapterReadme(modules, rank, baseName, finetuned.location, savedModules));
    const files = await out.commit();
    return { modules, saved, skipped, rank, files, seconds: (nowMs() - started) / 1000 };
  } catch (e) {
    await out.discard();
    throw e;
  }
}

/** The [cols × rows] transpose of a row-major [rows × cols] matrix of `eb`-byte elements. */
function transposeBytes(src: Uint8Array, rows: number, cols: number, eb: number): Uint8Array {
  const dst = new Uint8Array(src.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) dst.set(src.subarray((r * cols + c) * eb, (r * cols + c + 1) * eb), (c * rows + r) * eb);
  }
  return dst;
}
