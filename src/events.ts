/**
 * @file Progress events of a merge, a discriminated union on `type` (in the style of transformers.js's
 * progress callbacks). Byte counts are bytes of input tensor data, the work a merge has to stream.
 */

export type MergeEvent =
  | {
      type: "plan"; method: string; tensors: number; shards: number; inputBytes: number; outputBytes: number;
      /** Worker threads; 0 when the merge runs on the calling thread (a small one, see IN_THREAD_SECONDS). */
      workers: number; chunkedTensors: number;
    }
  | { type: "tensor-start"; index: number; name: string; inputBytes: number; chunks: number }
  | { type: "progress"; bytesDone: number; bytesTotal: number }
  | {
      type: "tensor-done"; index: number; name: string; tensorsDone: number; tensorsTotal: number;
      bytesDone: number; bytesTotal: number;
    }
  | { type: "shard-written"; file: string; index: number; shards: number; bytes: number }
  | { type: "done"; seconds: number; tensors: number; inputBytes: number; outputBytes: number; files: string[] }
  /** Something the merge did that the person may not expect (a token no model has got a zero row ...). */
  | { type: "warning"; message: string }
  /**
   * Multi-stage recipes: a stage begins (its plan, tensor and progress events follow) or has been
   * written. `name` is the document's name (undefined for an unnamed final document); "done" comes
   * once, after the final stage.
   */
  | { type: "stage"; index: number; stages: number; name: string | undefined; method: string }
  | { type: "stage-done"; index: number; stages: number; name: string | undefined; tensors: number; seconds: number };

export type ProgressCallback = (event: MergeEvent) => void;
