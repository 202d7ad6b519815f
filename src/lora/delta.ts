/**
 * @file A LoRA delta attached to a planned input: plain serialisable values (file references and
 * numbers), so the job that reads the input can carry it to a worker. ΔW = scale · L·R, where
 * L [rows × r] gives the rows of ΔW and R [r × cols] its columns; both are stored factors of the
 * adapter, one of them transposed for an Embedding or a fan_in_fan_out (Conv1D) module.
 */
import type { StoredTensor } from "../merge/job";

/** A stored factor, located as a job's input tensor is (the worker reads both the same way). */
export type LoraFactor = StoredTensor;

export interface LoraDelta {
  /**
   * Linear: lora_B [rows, r] (L itself) and lora_A [r, cols] (R itself). Transposed (Embedding,
   * fan_in_fan_out): lora_A [r, rows] (Lᵀ) and lora_B [cols, r] (Rᵀ).
   */
  left: LoraFactor;
  right: LoraFactor;
  rank: number;
  transposed: boolean;
  /** lora_alpha / r (lora_alpha / √r with use_rslora), per module. */
  scale: number;
}
