// An independent scalar reference for weightsoup's vocabulary merge (`tokenizer_source:` and the
// `tokenizer:` block), written from README.md "Vocabularies and tokenizers" (and mergekit's
// tokenizer/build.py + embed.py as summarised in the shared mergekit notes), not from src/vocab.
// Plain arrays and float64 arithmetic throughout; only the final roundings use tests/reference/float16.
//
// Ambiguities resolved here (and why):
//  1. "the base's row if the base has it" (automatic row default): only a *declared* `base_model`
//     counts. With no base_model, the first model is "the base" for the vocabulary (README: "the first
//     model's without a base"), but the row rule falls through to the mean of the holders. This is
//     mergekit's embed.py (`PermutedEmbeddings.base_model` is the recipe's base_model, possibly None,
//     while build.py falls back to the first model for the tokenizer). (Checked: the other reading,
//     the first model's row, fails the property at once on union recipes without a base_model.)
//  2. A model "has" a token only if the token's id is below its config.json vocab_size (README: such
//     tokens "are stripped (they have no row)"). So a `source:` naming a model for a token that model
//     has only past its vocab_size is "a token the named model lacks" and is refused, and the automatic
//     default does not count that model as a holder.
//  3. `{kind: model_token, model, token_id: n}` is valid when n is the id of one of that model's kept
//     tokens. (mergekit checks n against the checkpoint's row count instead; the two differ only for
//     ids between the tokenizer's length and a larger vocab_size, which the fuzz never draws.) Like a
//     `token` the model lacks, an invalid id is refused whether or not any model needs the default
//     (README: "refused before anything is read"; mergekit computes every configured default, so it
//     fails too). (weightsoup used to accept an out-of-range token_id when every model had the token and
//     it was not forced, since the source was then never read; this property found it.)
//  4. Union order: the base's kept tokens at their ids; then the regular tokens of the other models
//     (recipe order, each in id order) that no model lists as added; then the added tokens (recipe order,
//     each in id order: a token any model lists as added, even one another model has as regular); then
//     `tokens:` names still missing, in the order the recipe lists them. An added token keeps the
//     `special` flag of the first model (base first, then recipe order) that has it as an added token;
//     a regular token of the base that another model lists as added becomes added at the base's id.
//  5. Every copied or averaged row that is not the model's own row (another model's row, a
//     model_token row, a mean, a padding mean) is rounded through float32 to the *rebuilt* model's
//     dtype, as tests/vocab.test.ts's hand-worked rows do (b's BF16 row copied into F32 base is exact;
//     an F32 row copied into a BF16 model is rounded to bf16).
//  6. A tied model's lm_head input is its *original* embedding, rebuilt with lm_head defaults (the
//     other models' lm_head rows), as in mergekit (the tied embedding is gathered as the lm_head
//     input) and tests/vocab.test.ts's expectations for its tied model c. An lm_head is written when
//     any model has its own; when every model is tied there is none.
//  7. A `tokens:` entry without `source` uses the automatic default (README: mergekit fails here).
//  8. The output dtype is the base model's (the first model's without a base): tests/reference/SPEC.md.
import { roundToDtype } from "../reference/float16";

export type VocabDtype = "F32" | "BF16";

/** One model as the reference sees it. */
export interface VocabModel {
  /** The model's name in the recipe ("./m0"). */
  name: string;
  /** The tokenizer's tokens, in id order (token i has id i). */
  tokens: string[];
  /** Ids of the added tokens, with their `special` flag. */
  added: Map<number, boolean>;
  /** config.json vocab_size: the number of embedding (and lm_head) rows. */
  vocabSize: number;
  /** The embedding's stored rows, when more than vocab_size (README: tokenizer keys are then refused). */
  embedRows?: number;
  dtype: VocabDtype;
  /** Embedding rows, as stored (float64 copies of the checkpoint's values). */
  embed: number[][];
  /** lm_head rows; undefined for a tied model. */
  lmHead: number[][] | undefined;
}

export type TokenSource =
  | { kind: "zero" }
  | { kind: "model"; model: string }
  | { kind: "model_token"; model: string; token: string }
  | { kind: "model_token"; model: string; tokenId: number };

export interface TokenEntry {
  token: string;
  source?: TokenSource;
  force?: boolean;
}

export type VocabSource = { kind: "base" } | { kind: "union" } | { kind: "model"; model: string };

export interface VocabSettings {
  source: VocabSource;
  /** The `tokens:` entries in recipe order. */
  tokens: TokenEntry[];
  padToMultipleOf?: number;
}

export interface VocabInputs {
  /** Every model of the recipe, in recipe order (a declared base_model included where it is listed, or first). */
  models: VocabModel[];
  /** The declared base_model, if any. */
  base?: string;
  settings: VocabSettings;
}

export interface VocabResult {
  /** token -> id */
  vocab: Map<string, number>;
  /** id -> added token: its content, and its `special` flag when it comes from a model (undefined for `tokens:` additions). */
  added: Map<number, { content: string; special: boolean | undefined }>;
  /** Output row count (the vocabulary's length, rounded up to pad_to_multiple_of). */
  rows: number;
  /** Each model's rebuilt embedding rows (length `rows`). */
  embed: Map<string, number[][]>;
  /** Each model's rebuilt lm_head rows, or undefined when every model is tied. */
  lmHead: Map<string, number[][]> | undefined;
  /** The output dtype (the base's, or the first model's). */
  dtype: VocabDtype;
}

/** The recipe is invalid: weightsoup must refuse it. */
export class VocabRefusal extends Error {}

/** A model's kept tokens: token -> id, for ids below vocab_size. */
function keptTokens(m: VocabModel): Map<string, number> {
  const kept = new Map<string, number>();
  for (let id = 0; id < m.tokens.length && id < m.vocabSize; id++) kept.set(m.tokens[id]!, id);
  return kept;
}

function isAdded(m: VocabModel, id: number): boolean {
  return m.added.has(id);
}

/** The output vocabulary (README "The vocabulary"). */
function buildVocabulary(inputs: VocabInputs, kept: Map<string, Map<string, number>>): { vocab: Map<string, number>; added: VocabResult["added"] } {
  const byName = new Map(inputs.models.map((m) => [m.name, m]));
  const baseName = inputs.base ?? inputs.models[0]!.name;
  const vocab = new Map<string, number>();
  const added: VocabResult["added"] = new Map();
  const take = (m: VocabModel) => {
    // A source tokenizer (base or model:X): its kept tokens at their ids.
    for (const [token, id] of kept.get(m.name)!) {
      vocab.set(token, id);
      if (isAdded(m, id)) added.set(id, { content: token, special: m.added.get(id)! });
    }
  };
  const src = inputs.settings.source;
  if (src.kind === "model") take(byName.get(src.model)!);
  else take(byName.get(baseName)!);
  if (src.kind === "union") {
    let next = vocab.size; // kept ids are 0..k-1
    const others = inputs.models.filter((m) => m.name !== baseName);
    // Added anywhere: the special flag of the first model (base first) listing the token as added.
    const addedAnywhere = new Map<string, boolean>();
    for (const m of [byName.get(baseName)!, ...others]) {
      for (let id = 0; id < kept.get(m.name)!.size; id++) {
        if (isAdded(m, id) && !addedAnywhere.has(m.tokens[id]!)) addedAnywhere.set(m.tokens[id]!, m.added.get(id)!);
      }
    }
    for (const m of others) {
      const mine = kept.get(m.name)!;
      for (let id = 0; id < mine.size; id++) {
        const token = m.tokens[id]!;
        if (!addedAnywhere.has(token) && !vocab.has(token)) vocab.set(token, next++);
      }
    }
    for (const [token, special] of addedAnywhere) {
      const id = vocab.get(token);
      if (id === undefined) {
        added.set(next, { content: token, special });
        vocab.set(token, next++);
      } else if (!added.has(id)) {
        added.set(id, { content: token, special }); // the base's regular token, added elsewhere: added at the base's id
      }
    }
  }
  for (const entry of inputs.settings.tokens) {
    if (vocab.has(entry.token)) continue;
    const id = vocab.size;
    vocab.set(entry.token, id);
    added.set(id, { content: entry.token, special: undefined });
  }
  return { vocab, added };
}

/** Throws VocabRefusal when the recipe's tokenizer settings name models or tokens that are not there. */
function validate(inputs: VocabInputs, kept: Map<string, Map<string, number>>): void {
  const names = new Set(inputs.models.map((m) => m.name));
  for (const m of inputs.models) {
    if ((m.embedRows ?? m.vocabSize) > m.vocabSize) throw new VocabRefusal(`${m.name}'s embedding has rows past its vocab_size`);
  }
  const src = inputs.settings.source;
  if (src.kind === "model" && !names.has(src.model)) throw new VocabRefusal(`tokenizer source ${src.model} is not one of the recipe's models`);
  for (const entry of inputs.settings.tokens) {
    const s = entry.source;
    if (!s || s.kind === "zero") continue;
    if (!names.has(s.model)) throw new VocabRefusal(`tokens."${entry.token}".source names ${s.model}, not one of the recipe's models`);
    const mine = kept.get(s.model)!;
    if (s.kind === "model" && !mine.has(entry.token)) throw new VocabRefusal(`tokens."${entry.token}".source: ${s.model} lacks "${entry.token}"`);
    if (s.kind === "model_token" && "token" in s && !mine.has(s.token)) throw new VocabRefusal(`tokens."${entry.token}".source: ${s.model} lacks "${s.token}"`);
    if (s.kind === "model_token" && "tokenId" in s && !(Number.isInteger(s.tokenId) && s.tokenId >= 0 && s.tokenId < mine.size)) {
      throw new VocabRefusal(`tokens."${entry.token}".source: ${s.model} has no token id ${s.tokenId}`);
    }
  }
}

const zeros = (n: number) => new Array<number>(n).fill(0);

/**
 * The output vocabulary and every model's rebuilt embedding / lm_head rows, or a VocabRefusal.
 */
export function referenceVocab(inputs: VocabInputs): VocabResult {
  const kept = new Map(inputs.models.map((m) => [m.name, keptTokens(m)]));
  validate(inputs, kept);
  const { vocab, added } = buildVocabulary(inputs, kept);
  const pad = inputs.settings.padToMultipleOf;
  const rows = pad ? Math.ceil(vocab.size / pad) * pad : vocab.size;
  const byName = new Map(inputs.models.map((m) => [m.name, m]));
  const entries = new Map(inputs.settings.tokens.map((e) => [e.token, e]));
  const hidden = inputs.models[0]!.embed[0]!.length;

  const rebuildAll = (which: "embed" | "lmHead"): Map<string, number[][]> => {
    // A model's input rows for this tensor: a tied model's lm_head input is its embedding.
    const input = (m: VocabModel) => (which === "lmHead" ? m.lmHead ?? m.embed : m.embed);
    // The default row of a token, before rounding to the rebuilt model's dtype (float64 values).
    const defaultRow = (token: string): number[] => {
      const source = entries.get(token)?.source;
      if (source) {
        if (source.kind === "zero") return zeros(hidden);
        const m = byName.get(source.model)!;
        const id = source.kind === "model" ? kept.get(m.name)!.get(token)! : "token" in source ? kept.get(m.name)!.get(source.token)! : source.tokenId;
        return input(m)[id]!.slice();
      }
      const holders = inputs.models.filter((m) => kept.get(m.name)!.has(token));
      if (holders.length === 0) return zeros(hidden);
      if (holders.length === 1) return input(holders[0]!)[kept.get(holders[0]!.name)!.get(token)!]!.slice();
      if (inputs.base !== undefined && kept.get(inputs.base)!.has(token)) return input(byName.get(inputs.base)!)[kept.get(inputs.base)!.get(token)!]!.slice();
      const sum = zeros(hidden);
      for (const m of holders) {
        const row = input(m)[kept.get(m.name)!.get(token)!]!;
        for (let c = 0; c < hidden; c++) sum[c]! += row[c]!;
      }
      return sum.map((v) => v / holders.length);
    };
    const out = new Map<string, number[][]>();
    const ordered = [...vocab].sort((a, b) => a[1] - b[1]);
    for (const m of inputs.models) {
      const mine = kept.get(m.name)!;
      const rebuilt: number[][] = [];
      for (const [token, id] of ordered) {
        if (id !== rebuilt.length) throw new Error(`reference: vocabulary ids are not contiguous at ${id}`);
        const own = mine.get(token);
        if (own !== undefined && !entries.get(token)?.force) rebuilt.push(input(m)[own]!.slice());
        else rebuilt.push(defaultRow(token).map((v) => roundToDtype(v, m.dtype)));
      }
      const real = rebuilt.length;
      if (rows > real) {
        const mean = zeros(hidden);
        for (const row of rebuilt) for (let c = 0; c < hidden; c++) mean[c]! += row[c]!;
        const padRow = mean.map((v) => roundToDtype(v / real, m.dtype));
        while (rebuilt.length < rows) rebuilt.push(padRow.slice());
      }
      out.set(m.name, rebuilt);
    }
    return out;
  };

  const baseModel = byName.get(inputs.base ?? inputs.models[0]!.name)!;
  return {
    vocab, added, rows,
    embed: rebuildAll("embed"),
    lmHead: inputs.models.some((m) => m.lmHead !== undefined) ? rebuildAll("lmHead") : undefined,
    dtype: baseModel.dtype,
  };
}

/**
 * linear over rebuilt matrices: Σ wᵢxᵢ / Σ wᵢ (normalize, the default) or Σ wᵢxᵢ, in float64, rounded
 * to float32. Weights are rounded to float32 first (SPEC.md section 1). Returns flat row-major values.
 */
export function referenceLinear(matrices: number[][][], weights: number[], normalize = true): number[] {
  const w = weights.map((x) => Math.fround(x));
  const total = normalize ? w.reduce((a, b) => a + b, 0) : 1;
  const out: number[] = [];
  const [rows, cols] = [matrices[0]!.length, matrices[0]![0]!.length];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      let s = 0;
      for (let i = 0; i < matrices.length; i++) s += w[i]! * matrices[i]![r]![c]!;
      out.push(Math.fround(s / total));
    }
  }
  return out;
}

/** task_arithmetic over rebuilt matrices: b + Σ wᵢ(xᵢ − b) in float64, rounded to float32. */
export function referenceTaskArithmetic(base: number[][], others: number[][][], weights: number[]): number[] {
  const w = weights.map((x) => Math.fround(x));
  const out: number[] = [];
  for (let r = 0; r < base.length; r++) {
    for (let c = 0; c < base[r]!.length; c++) {
      const b = base[r]![c]!;
      let s = 0;
      for (let i = 0; i < others.length; i++) s += w[i]! * (others[i]![r]![c]! - b);
      out.push(Math.fround(b + s));
    }
  }
  return out;
}
