/**
 * @file What the evaluating thread and the workers exchange: references to weights (a place in a file
 * the worker reads itself, or bytes computed on the spot, such as a merged layer), and the scores that
 * come back. A worker keeps the hidden states of its sequences between calls.
 */
import type { SourceRef } from "../io/source";
import type { LayerNames } from "./architecture";

export type WeightRef =
  /** A tensor in a file: the worker reads it straight into wasm memory. */
  | { name: string; dtype: string; shape: number[]; source: SourceRef; offset: number }
  /** A tensor's bytes (a merged tensor, or one held in memory), exactly as a file would store them. */
  | { name: string; dtype: string; shape: number[]; bytes: Uint8Array };

/** One layer's weights by role (the roles of LayerNames). */
export type LayerWeights = { [R in keyof LayerNames]?: WeightRef };

/** Scores of one model's predictions, for one worker's sequences in order. */
export interface SequenceScores {
  /** NLL of each predicted token (every position of a sequence but its last predicts the next token). */
  nll: Float64Array;
  /** Per model compared against: KL(P_against ‖ P_evaluated) per predicted position, and top-1 agreement (0/1). */
  against: { kl: Float64Array; agree: Uint8Array }[];
}

/** Progress of an evaluation, a discriminated union on `type` like the merge's events. */
export type EvalEvent =
  | { type: "eval-plan"; models: string[]; sequences: number; tokens: number; workers: number }
  | { type: "model-start"; model: string; layers: number }
  | { type: "layer-done"; model: string; layer: number; layers: number }
  | { type: "scoring"; model: string; against: string[] }
  | { type: "eval-done"; seconds: number }
  /** A recipe's tensor merged for the evaluation came out NaN throughout (a NaN or infinite input). */
  | { type: "warning"; message: string };
