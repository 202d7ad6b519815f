/**
 * @file The library call: generate(subject, options). The model (a checkpoint, or a recipe merged
 * into memory) is loaded whole into one worker with a key/value cache; tokens stream back one by one
 * as they are chosen. Greedy by default, so the same prompt gives the same text; with a temperature,
 * sampling is seeded.
 */
import { proxy } from "comlink";
import { DataError, describeValue, ModelError, OptionError } from "../errors";
import { defaultWorkerUrl } from "../env";
import { JOBS_PER_WORKER } from "../merge/engine";
import { openModel } from "../model/model";
import { positionLimit, specTensorNames } from "../eval/architecture";
import type { GenerationWeights } from "../eval/generator";
import type { LayerWeights } from "../eval/protocol";
import { checkpointSource, recipeSource, type DecoderSource } from "../eval/sources";
import { readGenerationConfigs } from "../tokenizer/files";
import { eosTokenIds } from "../tokenizer/special-tokens";
import { checkEncodedIds, loadTokenizer } from "../tokenizer/tokenizer";
import type { EvalSubject } from "./evaluate";
import { DEFAULT_CHUNK_BYTES, prepare } from "./merge";
import { abortable } from "./abortable";
import { checkCallbackOption, checkIntegerOptions, checkOptionKinds } from "./options";
import { nowMs } from "../clock";

export interface GenerateOptions {
  /** The prompt as text (tokenized by the model's tokenizer), or as token ids. */
  prompt?: string;
  ids?: readonly number[];
  /** New tokens at most (default 64); generation also stops at an end-of-sequence token. */
  maxNewTokens?: number;
  /** Wrap the prompt in the model's chat template as a user message (a text prompt only: refused with ids). */
  chat?: boolean;
  /** 0 (default): greedy. Above 0: sampling from softmax(logits / temperature), seeded. */
  temperature?: number;
  /** The sampling's seed (default 0). */
  seed?: number;
  /** A recipe's merge seed (DARE's and DELLA's masks), as merge's `seed` (default 0): separate from sampling's. */
  mergeSeed?: number;
  /** Wasm memory for the resident model (default 1 GiB). */
  memoryBudget?: number;
  workerUrl?: URL | string;
  signal?: AbortSignal;
  /**
   * Each new token with the text it completes; a token that completes none yet (part of a multi-byte
   * character) is told, with "", just before the one that does, or at the end. The texts told, joined,
   * are the result's text.
   */
  onToken?: (token: { id: number; text: string }) => void;
  /** A recipe's tensor merged NaN throughout (a NaN or infinite input), as the written merge warns. */
  onWarning?: (message: string) => void;
}

export interface GenerationResult {
  model: string;
  promptTokens: number;
  ids: number[];
  text: string;
  seconds: number;
  tokensPerSecond: number;
}

export const DEFAULT_GENERATE_BUDGET = 2 ** 30;

export async function generate(subject: EvalSubject, options: GenerateOptions): Promise<GenerationResult> {
  checkOptionKinds("generate", options, { prompt: "string", ids: "array", chat: "boolean", signal: "signal" });
  checkIntegerOptions(options, ["seed", "mergeSeed", "memoryBudget", "maxNewTokens"]);
  checkCallbackOption(options, "onToken");
  checkCallbackOption(options, "onWarning");
  const temperature = options.temperature ?? 0;
  if (typeof temperature !== "number" || !Number.isFinite(temperature) || temperature < 0) {
    throw new OptionError("E_OPTION", `option temperature must be a number of at least 0, got ${describeValue(temperature)}`, { key: "temperature" });
  }
  if ((options.prompt === undefined) === (options.ids === undefined)) throw new DataError("E_DATA", "give either a prompt or prompt token ids", {});
  // The chat template wraps a text; ids are the model's input as given, so asking for both is a mistake to report.
  if (options.chat && options.ids !== undefined) throw new OptionError("E_OPTION", "option chat wraps a text prompt in the chat template; prompt ids are used as given: give a prompt, or leave chat off", { key: "chat" });
  const { signal } = options;
  const budget = options.memoryBudget ?? DEFAULT_GENERATE_BUDGET;
  const maxNew = options.maxNewTokens ?? 64;
  return abortable(signal, async (slot) => {
    let source: DecoderSource;
    if ("model" in subject) source = checkpointSource(subject.name ?? subject.model.name, await openModel(subject.model));
    else source = recipeSource(subject.name ?? "recipe", await prepare(subject.recipe, subject.models, signal, { workerUrl: options.workerUrl }), () => slot.pool!, { memoryBudget: budget, chunkBytes: DEFAULT_CHUNK_BYTES, seed: options.mergeSeed ?? 0 }, options.onWarning);
    const { spec } = source;
    const tokenizer = await loadTokenizer(source.folder);
    let prompt: number[];
    if (options.ids !== undefined) {
      prompt = [...options.ids];
    } else {
      if (!tokenizer) throw new ModelError("E_TOKENIZER", `${source.folder.name}: has no tokenizer.json, so the prompt cannot be tokenized; give prompt ids instead`, { file: source.folder.name });
      const chat = options.chat ? tokenizer.chatPrompt([{ role: "user", content: options.prompt! }]) : undefined;
      if (options.chat && chat === undefined) throw new ModelError("E_TOKENIZER", `${source.folder.name}: has no chat template`, { file: source.folder.name });
      prompt = chat !== undefined ? tokenizer.encode(chat, { addSpecialTokens: false }) : tokenizer.encode(options.prompt!);
      checkEncodedIds(tokenizer, source.folder.name, prompt, spec.vocab, options.chat ? "the chat prompt" : "the prompt");
    }
    if (prompt.length === 0) throw new DataError("E_DATA", "the prompt is empty: give at least one token to continue", {});
    if (prompt.some((id) => !Number.isSafeInteger(id) || id < 0 || id >= spec.vocab)) throw new DataError("E_DATA", `prompt ids must be integers from 0 to ${spec.vocab - 1}`, {});
    const maxLength = prompt.length + maxNew;
    // The last new token is never fed back, so it needs no position of its own.
    const positions = maxLength - 1;
    const limit = positionLimit(spec);
    if (limit && positions > limit.limit) {
      const has = limit.why ? `weightsoup generates with at most ${limit.limit} for this model (${limit.why})` : `the model has ${limit.limit}`;
      throw new DataError("E_DATA", `${source.name}: a prompt of ${prompt.length} tokens and ${maxNew} new ones need ${positions} positions; ${has}`, { model: source.name });
    }
    // End-of-sequence ids: the tokenizer's reading of the configs, or the configs alone without one.
    let stop: number[];
    if (tokenizer) stop = [...tokenizer.eosTokenIds];
    else {
      const { modelConfig, generationConfig } = await readGenerationConfigs(source.folder);
      stop = eosTokenIds({}, modelConfig, generationConfig, () => undefined);
    }

    const pool = await slot.start({ size: 1, workerUrl: options.workerUrl ?? defaultWorkerUrl(), memoryBudget: 64 * 2 ** 20, jobsPerWorker: JOBS_PER_WORKER });
    const refs = await source.weights(specTensorNames(spec));
    const weights: GenerationWeights = {
      embed: refs.get(spec.embed)!, positions: spec.positions ? refs.get(spec.positions) : undefined,
      finalNorm: refs.get(spec.finalNorm)!, finalNormBias: spec.finalNormBias ? refs.get(spec.finalNormBias) : undefined,
      lmHead: refs.get(spec.lmHead)!,
      layers: spec.layerNames.map((names) => {
        const lw: LayerWeights = {};
        for (const [role, name] of Object.entries(names) as [keyof LayerWeights, string | undefined][]) if (name !== undefined) lw[role] = refs.get(name)!;
        return lw;
      }),
    };
    await pool.on(0, (api) => api.genLoad(budget, spec, weights, maxLength));
    const decoder = tokenizer?.streamDecoder({ skipSpecialTokens: true });
    let text = "", heard = 0;
    // Tokens arrive on the callback's own channel, which may lag the call's answer: wait for all of them.
    let caughtUp: (() => void) | undefined, expected = Infinity;
    // Ids whose text the decoder still holds back (part of a character): told with the id that completes
    // it, or at the end with what the decoder then gives up, so the pieces told add up to the text.
    let held: number[] = [];
    // A callback that throws is the caller's error, reported once the tokens are all in: thrown through
    // the worker's channel it stopped the count, and the call waited for tokens that never came.
    let thrown: { cause: unknown } | undefined;
    const tell = (ids: readonly number[], last: string) => {
      try {
        if (!thrown) ids.forEach((id, i) => options.onToken?.({ id, text: i === ids.length - 1 ? last : "" }));
      } catch (cause) {
        thrown = { cause };
      }
    };
    const onToken = (id: number) => {
      const piece = decoder ? decoder.push(id) : "";
      text += piece;
      held.push(id);
      if (!decoder || piece !== "") {
        tell(held, piece);
        held = [];
      }
      if (++heard >= expected) caughtUp?.();
    };
    const started = nowMs();
    const ids = await pool.on(0, (api) => api.genRun(Int32Array.from(prompt), maxNew, { temperature, seed: options.seed ?? 0 }, stop, proxy(onToken)));
    expected = ids.length;
    if (heard < expected) await new Promise<void>((ok) => (caughtUp = ok));
    const seconds = (nowMs() - started) / 1000;
    const rest = decoder ? decoder.flush() : "";
    text += rest;
    tell(held, rest);
    if (thrown) {
      const { cause } = thrown;
      throw new OptionError("E_OPTION", `option onToken threw: ${cause instanceof Error ? cause.message : String(cause)}`, { key: "onToken" }, { cause });
    }
    return { model: source.name, promptTokens: prompt.length, ids: [...ids], text, seconds, tokensPerSecond: ids.length / seconds };
  });
}
