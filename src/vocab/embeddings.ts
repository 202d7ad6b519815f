/**
 * @file Embedding and lm_head inputs rebuilt to the output vocabulary (mergekit's tokenizer/embed.py),
 * planned as row maps: each model's rebuilt matrix has, for each output token,
 *
 * - the model's own row, when it has the token and the token is not `force`d;
 * - otherwise the token's default row, the same for every model: the `source` the recipe gives
 *   (`{kind: zero}`, a model's row for that token, or a model's row for another token), else the
 *   automatic one: the row of the only model that has the token; the base's row if the base has it;
 *   zero (with a warning) if none of the tensor's models has it (in a frankenmerge, those of the slice
 *   it comes from); the mean of the rows of all models that have it;
 * - padding rows (pad_to_multiple_of): the mean of the model's rebuilt real rows (padding.ts).
 *
 * The models are the tensor's inputs. A tied model (no lm_head) gives its input embedding as lm_head,
 * as in the planner.
 */
import type { ErrorCode } from "../errors";
import type { FloatDtype } from "../format/dtypes";
import type { LoadedModel, TensorInfo } from "../model/model";
import { vocabSize } from "../model/roles";
import type { PlannedInput } from "../plan/plan";
import type { RowFill, RowMap, RowTensor } from "./row-map";
import { tokenKey } from "./settings";
import type { OutputVocabulary } from "./vocabulary";

type Report = (code: ErrorCode, message: string, details: Record<string, unknown>, dedupe?: string) => void;

export interface EmbeddingContext {
  vocabulary: OutputVocabulary;
  file: string;
  base: string | undefined;
  models: ReadonlyMap<string, LoadedModel>;
  /** A model's tensor by name (lm_head falls back to a tied embedding). */
  findTensor: (model: LoadedModel, name: string) => TensorInfo | undefined;
  report: Report;
  /** The recipe's dtype (computed rows round what they are computed from to it). */
  loadDtype: FloatDtype | undefined;
}

/**
 * Gives every input of the embedding `outName` its row map; returns the output shape, or undefined
 * after reporting a problem.
 */
export function rebuildEmbeddingInputs(ctx: EmbeddingContext, outName: string, inputs: PlannedInput[]): number[] | undefined {
  const { vocabulary: vocab, report } = ctx;
  const first = inputs[0]!.tensor;
  const cols = first.shape[1];
  const odd = inputs.find((i) => i.tensor.shape.length !== 2 || i.tensor.shape[1] !== cols);
  if (odd || cols === undefined) {
    const listing = inputs.map((i) => `${i.model} [${i.tensor.shape.join(", ")}]`).join(", ");
    const at = odd ?? inputs[0]!;
    report("E_SHAPE_MISMATCH", `${at.tensor.file}: tensor "${at.tensor.name}": embeddings rebuilt to the output vocabulary must be 2-D with the same row length in every model: ${listing}`,
      { file: at.tensor.file, tensor: at.tensor.name, model: at.model });
    return undefined;
  }

  const tensors: RowTensor[] = [];
  const tensorIndex = new Map<TensorInfo, number>();
  const indexOf = (t: TensorInfo) => {
    let i = tensorIndex.get(t);
    if (i === undefined) {
      tensorIndex.set(t, (i = tensors.length));
      tensors.push({ source: t.source, file: t.file, tensor: t.name, offset: t.offset, dtype: t.dtype });
    }
    return i;
  };
  const rowsOf = (t: TensorInfo) => t.shape[0]!;
  let problem = false;
  for (const input of inputs) {
    // Rows past config.json's vocab_size are not tokens (Mllama's embed_tokens has 8 more, for image
    // tokens, that transformers builds from the config): a rebuilt vocabulary would drop them, and the
    // folder would not load.
    const stated = vocabSize(ctx.models.get(input.model)?.config ?? null);
    if (stated !== undefined && rowsOf(input.tensor) > stated) {
      report("E_SHAPE_MISMATCH", `${input.tensor.file}: tensor "${input.tensor.name}" has ${rowsOf(input.tensor)} rows, ${rowsOf(input.tensor) - stated} more than model ${input.model}'s config.json vocab_size (${stated}); tokenizer keys rebuild rows per token and cannot say what the others are, so they cannot be used with this model`,
        { file: input.tensor.file, tensor: input.tensor.name, model: input.model }, `${input.model}: rows past vocab_size`);
      problem = true;
      continue;
    }
    const map = vocab.idMaps.get(input.model)!;
    let top = -1;
    for (const id of map) if (id > top) top = id;
    if (top >= rowsOf(input.tensor)) {
      report("E_SHAPE_MISMATCH", `${input.tensor.file}: tensor "${input.tensor.name}" has ${rowsOf(input.tensor)} rows, but model ${input.model}'s tokenizer has token id ${top}`,
        { file: input.tensor.file, tensor: input.tensor.name, model: input.model });
      problem = true;
    }
    indexOf(input.tensor);
  }
  if (problem) return undefined;

  const fills: RowFill[] = [];
  const defaults = new Map<number, number>();
  let zero: number | undefined;
  const zeroFill = () => (zero ??= fills.push({ kind: "zero" }) - 1);
  const rowFill = (pairs: number[]) => fills.push({ kind: "mean", from: pairs }) - 1;
  const unfilled: string[] = [];

  // The rows the recipe's `source`s name (by output id), each checked whether or not a model needs it
  // (mergekit computes every configured default), so a bad source fails the same way in every recipe.
  const sourced = new Map<number, [TensorInfo, number]>();
  for (const [token, { source }] of vocab.settings.tokens) {
    if (!source || source.kind === "zero") continue;
    const key = `${tokenKey(token)}.source`;
    const model = ctx.models.get(source.model);
    if (!model) {
      // A modules: recipe plans each module over its own models (mergekit refuses such a token too).
      report("E_RECIPE", `${ctx.file}: ${key}: model ${source.model} is not one of the models merged here (${[...ctx.models.keys()].join(", ")}), so the embeddings here cannot take the row of ${JSON.stringify(token)} from it; name a model of the module that holds them`,
        { file: ctx.file, key, model: source.model, tensor: outName }, `${ctx.file}: ${key}`);
      return undefined;
    }
    const tensor = ctx.findTensor(model, outName);
    let row: number;
    if (source.kind === "model") row = vocab.idMaps.get(source.model)![vocab.ids.get(token)!]!;
    else if ("tokenId" in source) row = source.tokenId;
    else row = vocab.models.get(source.model)!.originalIds.get(source.token)!;
    if (!tensor) {
      report("E_TENSOR_MISSING", `${ctx.file}: ${key}: model ${source.model} has no tensor "${outName}" to take the row of ${JSON.stringify(token)} from`, { file: ctx.file, key, model: source.model, tensor: outName });
      return undefined;
    }
    if (row < 0 || row >= rowsOf(tensor)) {
      report("E_RECIPE", `${ctx.file}: ${key}: row ${row} is outside ${source.model}'s tensor "${tensor.name}" (${rowsOf(tensor)} rows)`, { file: ctx.file, key, model: source.model, tensor: tensor.name });
      return undefined;
    }
    sourced.set(vocab.ids.get(token)!, [tensor, row]);
  }

  /** The default row of output id `id`: an index into fills, or undefined after a reported problem. */
  const defaultFill = (id: number): number | undefined => {
    const known = defaults.get(id);
    if (known !== undefined) return known;
    const token = vocab.tokens[id];
    let fill: number | undefined;
    const setting = token === undefined ? undefined : vocab.settings.tokens.get(token);
    const source = setting?.source;
    if (token === undefined) {
      fill = zeroFill();
    } else if (source?.kind === "zero") {
      fill = zeroFill();
    } else if (source) {
      const [tensor, row] = sourced.get(id)!;
      fill = rowFill([indexOf(tensor), row]);
    } else {
      const have = inputs.filter((i) => vocab.idMaps.get(i.model)![id]! >= 0);
      const pair = (i: PlannedInput) => [indexOf(i.tensor), vocab.idMaps.get(i.model)![id]!];
      const baseInput = have.find((i) => i.model === ctx.base);
      if (have.length === 0) {
        unfilled.push(token);
        fill = zeroFill();
      } else if (have.length === 1) fill = rowFill(pair(have[0]!));
      else if (baseInput) fill = rowFill(pair(baseInput));
      else fill = rowFill(have.flatMap(pair));
    }
    defaults.set(id, fill);
    return fill;
  };

  const own: Int32Array[] = [];
  for (const input of inputs) {
    const map = vocab.idMaps.get(input.model)!;
    const rows = new Int32Array(vocab.paddedSize);
    for (let id = 0; id < vocab.size; id++) {
      const token = vocab.tokens[id];
      const forced = token !== undefined && vocab.settings.tokens.get(token)?.force === true;
      if (map[id]! >= 0 && !forced) {
        rows[id] = map[id]!;
        continue;
      }
      const fill = defaultFill(id);
      if (fill === undefined) return undefined;
      rows[id] = -1 - fill;
    }
    own.push(rows);
  }
  if (unfilled.length > 0) {
    vocab.warnings.push(`${outName}: none of the models it is merged from has ${unfilled.length === 1 ? "token" : `${unfilled.length} tokens:`} ${unfilled.slice(0, 5).map((t) => JSON.stringify(t)).join(", ")}${unfilled.length > 5 ? ", ..." : ""}; ${unfilled.length === 1 ? "its row is" : "their rows are"} zero`);
  }
  inputs.forEach((input, i) => {
    const rows = own[i]!;
    const inputFills = fills.slice();
    if (vocab.paddedSize > vocab.size) rows.fill(-1 - (inputFills.push({ kind: "padding" }) - 1), vocab.size);
    const map: RowMap = { cols, rows, fills: inputFills, tensors, ...(ctx.loadDtype ? { roundTo: ctx.loadDtype } : {}) };
    input.rows = map;
  });
  return [vocab.paddedSize, cols];
}
