/**
 * @file Typed errors. Every failure weightsoup reports is a WeightsoupError with a stable `code`, a
 * message that names the file, tensor, model or recipe key involved, and the same facts in `details`.
 * The subclasses group codes by where they arise; errors raised inside a worker are rebuilt as the same
 * class on the calling side (see pool/protocol.ts).
 */

export type ErrorCode =
  // safetensors files (one code per way a file can be malformed, as the reference reader has)
  | "E_HEADER_TOO_SMALL" // fewer than 8 bytes, or the header is cut off
  | "E_HEADER_TOO_LARGE" // declared header length above the 100 MB limit
  | "E_HEADER_LENGTH" // declared header length runs past the end of the file
  | "E_HEADER_JSON" // header is not UTF-8 JSON with an object at the top
  | "E_HEADER_SCHEMA" // a tensor entry lacks or misuses dtype/shape/data_offsets
  | "E_DUPLICATE_TENSOR" // the same tensor name twice in one header
  | "E_UNKNOWN_DTYPE" // dtype not in the safetensors list
  | "E_UNSAFE_INTEGER" // a shape or offset beyond 2^53
  | "E_TENSOR_SIZE" // shape x dtype size differs from the byte span
  | "E_OFFSETS" // gaps, overlaps or out-of-order data offsets
  | "E_INCOMPLETE_BUFFER" // data does not end exactly at the end of the file
  | "E_METADATA" // __metadata__ is not a map of strings
  | "E_LFS_POINTER" // a git-lfs pointer file where the weights should be (git lfs pull was not run)
  | "E_NOT_SAFETENSORS" // some other kind of file saved under a .safetensors name (an HTML page, a pickle)
  // models
  | "E_MODEL_NOT_FOUND"
  | "E_NO_WEIGHTS"
  | "E_INDEX" // model.safetensors.index.json malformed or inconsistent
  | "E_SHARD_MISSING"
  | "E_CONFIG" // config.json unreadable, not an object, or contradicting the tensors
  | "E_NOT_REGULAR_FILE" // a FIFO, device or socket where a file was expected
  | "E_QUANTIZED" // a quantized checkpoint (GPTQ, AWQ, bitsandbytes, FP8, MLX): packed weights that cannot be merged or evaluated as numbers
  | "E_NONFINITE" // NaN or infinite weights where the result cannot carry them (a difference extract-lora would factor)
  | "E_ADAPTER" // a PEFT LoRA adapter (base+adapter) that is malformed, does not fit its base, or uses a feature weightsoup does not apply
  // recipes and plans
  | "E_RECIPE_SYNTAX"
  | "E_RECIPE"
  | "E_METHOD_UNKNOWN"
  | "E_METHOD_UNSUPPORTED"
  | "E_PARAMETER_MISSING"
  | "E_PARAMETER_INVALID"
  | "E_DUPLICATE_MODEL" // the same model listed twice where each entry would need its own parameters
  | "E_LAYER_MISMATCH" // models whose layer counts differ, merged without explicit slices
  | "E_VOCAB_MISMATCH" // models compared token by token whose vocabularies differ
  | "E_TENSOR_MISSING"
  | "E_TENSOR_UNACCOUNTED" // an input tensor the plan would leave out of the output with no rule saying why (the ledger)
  | "E_SHAPE_MISMATCH"
  | "E_DTYPE_UNSUPPORTED"
  | "E_VALIDATION" // several of the above at once, in `problems`
  | "E_STAGE_DUPLICATE" // two documents of a multi-stage recipe with the same name
  | "E_STAGE_CYCLE" // documents of a multi-stage recipe that use each other's outputs in a circle
  | "E_STAGE_FINAL" // not exactly one document that no other uses (the final output)
  | "E_STAGE_UNKNOWN" // a model reference that is neither another document's name nor a model that can be found
  | "E_MODULE_EMPTY" // a `modules:` entry that matches no tensor of a model it uses
  | "E_MODULE_OVERLAP" // a tensor that two modules claim
  | "E_MODULE_UNASSIGNED" // a tensor of an input model that no module claims (it would be dropped)
  // output and runtime
  | "E_OUTPUT_EXISTS"
  | "E_OUTPUT_NAME" // an output folder name that cannot be a folder
  | "E_OUTPUT_SPACE" // not enough storage for the output
  | "E_OUTPUT_LOCKED" // another merge is writing the same output folder
  | "E_OUTPUT_IS_INPUT" // the output folder is, contains or is inside one of the inputs
  | "E_IO"
  | "E_MEMORY_BUDGET"
  | "E_WORKER"
  | "E_ABORTED"
  // alignment
  | "E_COST_INVALID" // a cost matrix with NaN entries or ragged rows
  | "E_ASSIGNMENT_INFEASIBLE" // forbidden pairs leave no complete assignment
  | "E_SPEC" // a permutation spec that does not fit the model
  | "E_ARCHITECTURE_UNSUPPORTED" // no built-in permutation spec for this model
  | "E_DATA" // an evaluation dataset or text that is malformed, too short or does not fit the model
  | "E_CHAT_TEMPLATE" // a recipe's chat_template that is no built-in name and no usable Jinja template
  | "E_TOKENIZER" // tokenizer files, a chat template or a token-ids file that cannot be used, or none where text must be tokenized
  | "E_OPTION" // a library option of the wrong type or out of range
  | "E_USAGE";

/** Facts about where an error arose. Every field is optional; messages repeat the ones that are set. */
export interface ErrorDetails {
  file?: string;
  tensor?: string;
  model?: string;
  key?: string;
  [fact: string]: unknown;
}

export class WeightsoupError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.details = details;
  }

  override get name(): string {
    return this.constructor.name;
  }
}

/** A safetensors file that breaks the format's rules. */
export class SafetensorsError extends WeightsoupError {}
/** A model folder or file that cannot be used (missing, unindexed, missing shards, bad config). */
export class ModelError extends WeightsoupError {}
/** A recipe that cannot be run as written: syntax, schema, methods, parameters, incompatible inputs. */
export class RecipeError extends WeightsoupError {}
/** The output cannot be written. */
export class OutputError extends WeightsoupError {}
/** A worker died or a kernel ran out of its memory budget. */
export class WorkerError extends WeightsoupError {}
/** A library option (workers, memoryBudget, seed, ...) of the wrong type or out of range. */
export class OptionError extends WeightsoupError {}
/** Wrong command-line usage (the CLI exits with 2). */
export class UsageError extends WeightsoupError {}

/** Evaluation input that cannot be used: a text too short to predict anything, ids outside a vocabulary. */
export class DataError extends WeightsoupError {}

/** A cost matrix or permutation problem that cannot be solved as given. */
export class AlignmentError extends WeightsoupError {}

/** The caller's AbortSignal fired. `name` is "AbortError", as for DOMException aborts. */
export class AbortError extends WeightsoupError {
  constructor(message = "The merge was aborted", options?: { cause?: unknown }) {
    super("E_ABORTED", message, {}, options);
  }
  override get name(): string {
    return "AbortError";
  }
}

/** Several problems found while validating a recipe against its models; each one is in `problems`. */
export class ValidationError extends RecipeError {
  readonly problems: WeightsoupError[];
  constructor(problems: WeightsoupError[]) {
    const shown = problems.slice(0, 20).map((p) => `  - [${p.code}] ${p.message}`);
    if (problems.length > 20) shown.push(`  - ... and ${problems.length - 20} more`);
    super("E_VALIDATION", `${problems.length} problems found before anything was written:\n${shown.join("\n")}`, { count: problems.length });
    this.problems = problems;
  }
}

/** Error classes by name, for rebuilding errors that crossed a worker boundary. */
export const errorClasses = {
  WeightsoupError, SafetensorsError, ModelError, RecipeError, OutputError, WorkerError, UsageError, AbortError, AlignmentError,
  OptionError, DataError,
} as const;

/**
 * A value from outside (a header, config.json, a recipe) as a short phrase for a message. Never
 * stringifies the whole value: attacker JSON can be nested 100,000 deep or megabytes long.
 */
export function describeValue(value: unknown, room = 60): string {
  if (typeof value === "string") return JSON.stringify(value.length > room ? value.slice(0, room) + "…" : value);
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint" || value === undefined) return String(value);
  if (value === null) return "null";
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    const first = value.every((v) => typeof v === "number") ? value.slice(0, 8).join(", ") + (value.length > 8 ? ", …" : "") : "…";
    return `a list of ${value.length} (${first === "…" ? "starting " + describeValue(value[0], 20) : first})`;
  }
  if (typeof value === "object") {
    const keys = Object.keys(value);
    return keys.length ? `a mapping with keys ${keys.slice(0, 4).map((k) => JSON.stringify(k.slice(0, 30))).join(", ")}${keys.length > 4 ? ", …" : ""}` : "an empty mapping";
  }
  return typeof value;
}

/** "file: tensor \"name\": " style prefix for messages. */
export function where(details: ErrorDetails): string {
  const parts: string[] = [];
  if (details.file) parts.push(String(details.file));
  if (details.model && details.model !== details.file) parts.push(`model "${details.model}"`);
  if (details.tensor) parts.push(`tensor "${details.tensor}"`);
  if (details.key) parts.push(`key "${details.key}"`);
  return parts.length ? parts.join(": ") + ": " : "";
}
