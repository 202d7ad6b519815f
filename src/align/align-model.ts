/**
 * @file Aligning one checkpoint to another (Git Re-Basin weight matching): pick or read the permutation
 * spec, match on a worker pool whose workers read the tensors it names from both models' files
 * (./pool-engine.ts: nothing is held whole, and the answer is the same for any number of workers), and
 * write the permuted model a tensor at a time with the input's layout plus `weightsoup_alignment.json`:
 * the spec used, the permutations and how to read them, and per-group similarity.
 */
import { abortable } from "../api/abortable";
import { availableCores, defaultWorkerUrl } from "../env";
import { AlignmentError, describeValue, OptionError } from "../errors";
import type { OutputFolder } from "../io/output";
import type { LoadedModel } from "../model/model";
import { inferSpec, resolveSpecKind, SPEC_KINDS, type SpecKind } from "./architectures";
import { writePermutedModel } from "./checkpoint";
import { openPoolEngine } from "./pool-engine";
import { checkSpec, type PermutationSpec, type Permutations } from "./spec";
import { matchGroups, type GroupSimilarity } from "./weight-matching";
import type { AlignmentStats } from "./worker-tensors";
import { nowMs } from "../clock";

export const ALIGNMENT_FILE = "weightsoup_alignment.json";

/** How to read the permutations in ALIGNMENT_FILE (what the gather in ./spec.ts does). */
export const PERMUTATION_CONVENTION = "permutations[g][i] is the index, in MODEL, of the unit placed at position i of the output (the unit matched with unit i of REFERENCE): along every axis group g acts on, output[i] = model[permutations[g][i]]. An axis the spec splits into levels (outer to inner, e.g. head then dim in the head) is read digit by digit: output position (d0, d1, ...) holds MODEL's element (s0, s1, ...) with s_l = P_l[d_l], where level l's group P_l is chosen by the MODEL digits s0 .. s_(l-1) of the outer levels; so a within-head group such as h.0.P_vo.3 orders the dims of MODEL's head 3, wherever that head lands. Giving this file as --spec reproduces the spec.";

/** Which spec was used: a built-in one (after "auto" was resolved) or one given explicitly. */
export type UsedSpecKind = Exclude<SpecKind, "auto"> | "explicit";

export interface AlignOptions {
  /** A built-in spec (default "auto": from config.json) or an explicit one. */
  spec?: SpecKind | PermutationSpec;
  seed?: number;
  maxSweeps?: number;
  signal?: AbortSignal;
  onGroup?: (event: { sweep: number; group: string; done: number; groups: number }) => void;
  /** Workers computing the similarity matrices (default: the available cores); the permutations do not depend on it. */
  workers?: number;
  workerUrl?: URL | string;
  /** Bytes of decoded float32 tensors each worker keeps between matrices (default 64 MiB). */
  memoryBudget?: number;
}

/**
 * Each worker's decoded tensors, by default: a small model's layer of both models fits (the bench's
 * 100M Llama: 6 MiB per MLP matrix); a 7B model's matrices (64 MiB and more as float32) are read per matrix.
 */
export const DEFAULT_ALIGN_CACHE = 64 * 1048576;
/** The alignment instance's wasm memory may grow to what wasm allows; it holds one tensor pair and a block of S. */
const ALIGN_WASM_BUDGET = 4 * 1024 ** 3 - 65536;
/** The merge instances every worker starts with stay unused here. */
const UNUSED_MERGE_BUDGET = 16 * 1048576;

export interface AlignResult {
  spec: PermutationSpec;
  specKind: UsedSpecKind;
  permutations: Permutations;
  sweeps: number;
  groups: ({ name: string; size: number } & GroupSimilarity)[];
  /** Seconds spent reading, matching and writing. */
  seconds: { read: number; match: number; write: number };
}

/** How a problem of an explicit spec is named in messages (the CLI puts its file in place of these words). */
export const EXPLICIT_SPEC = "the permutation spec";

/** `fn`'s spec problem, its message prefixed with where it lies (unless it names a place already). */
function located<T>(where: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof AlignmentError) || e.message.startsWith(where)) throw e;
    throw new AlignmentError(e.code, `${where}: ${e.message}`, { ...e.details, ...(where === EXPLICIT_SPEC ? {} : { model: where }) }, { cause: e });
  }
}

/** Permutations that align `model` to `reference` (nothing written). */
export async function matchModels(reference: LoadedModel, model: LoadedModel, options: AlignOptions = {}): Promise<Omit<AlignResult, "seconds"> & { readSeconds: number; matchSeconds: number; workerStats: AlignmentStats[] }> {
  const shapes = new Map([...reference.tensors].map(([name, t]) => [name, t.shape]));
  if (options.spec !== undefined && (options.spec === null || (typeof options.spec !== "object" && !SPEC_KINDS.includes(options.spec)))) {
    throw new OptionError("E_OPTION", `option spec must be one of ${SPEC_KINDS.join(", ")} or a permutation spec (an object), got ${describeValue(options.spec)}`, { key: "spec" });
  }
  const specKind: UsedSpecKind = typeof options.spec === "object" ? "explicit" : resolveSpecKind(options.spec ?? "auto", reference.config ?? undefined);
  // Where a spec's problem lies: the reference (its spec is read from its config.json and tensors), or the explicit spec.
  const where = typeof options.spec === "object" ? EXPLICIT_SPEC : reference.location;
  const spec = typeof options.spec === "object" ? options.spec : located(where, () => inferSpec(specKind as SpecKind, reference.config ?? undefined, shapes));
  checkSameLayout(reference, model, spec, typeof options.spec === "object" ? undefined : specKind);
  const checked = located(where, () => checkSpec(spec, shapes));
  for (const [name, { shape }] of checked.tensors) {
    const other = model.tensors.get(name);
    if (!other) throw new AlignmentError("E_TENSOR_MISSING", `${model.location}: no tensor "${name}" (the reference model has it)`, { model: model.location, tensor: name });
    if (other.shape.join() !== shape.join()) {
      throw new AlignmentError("E_SHAPE_MISMATCH", `${other.file}: "${name}" is [${other.shape.join(", ")}] but [${shape.join(", ")}] in ${reference.location}`, { file: other.file, tensor: name });
    }
  }
  const { signal } = options;
  return abortable(signal, async (slot) => {
    const t0 = nowMs();
    const workers = options.workers ?? (await availableCores());
    const pool = await slot.start({ size: Math.max(1, workers), workerUrl: options.workerUrl ?? defaultWorkerUrl(), memoryBudget: UNUSED_MERGE_BUDGET, jobsPerWorker: 1 });
    // The workers read the tensors themselves, per matrix: "read" is starting them.
    const engine = await openPoolEngine(pool, reference, model, checked.tensors.keys(), { memoryBudget: ALIGN_WASM_BUDGET, cacheBytes: options.memoryBudget ?? DEFAULT_ALIGN_CACHE });
    const t1 = nowMs();
    const result = await matchGroups(checked, engine, { seed: options.seed, maxSweeps: options.maxSweeps, signal, onGroup: options.onGroup });
    const workerStats = await engine.stats();
    const groups = [...result.similarity].map(([name, s]) => ({ name, size: checked.sizes.get(name)!, ...s }));
    return { spec, specKind, permutations: result.permutations, sweeps: result.sweeps, groups, readSeconds: (t1 - t0) / 1000, matchSeconds: (nowMs() - t1) / 1000, workerStats };
  });
}

/**
 * The permutations come from the reference's spec, and are written into the model: so the model must
 * be laid out as the reference is. A tensor only the model has (an untied lm_head beside a tied
 * reference, biases) would be copied unpermuted, and heads split by the reference's head counts would
 * be cut at the wrong places: the model written would compute something else. With an inferred spec
 * (`kind`), the model's own spec, read from its config.json and tensors, must equal the reference's;
 * with an explicit one, the model may have no tensor the reference lacks.
 */
function checkSameLayout(reference: LoadedModel, model: LoadedModel, spec: PermutationSpec, kind: UsedSpecKind | undefined): void {
  const fail = (what: string, code: "E_SPEC" | "E_TENSOR_MISSING" = "E_SPEC") => new AlignmentError(code, `${model.location} is not laid out as ${reference.location}: ${what}; align models of one architecture, with the same head counts and tensors`, { model: model.location });
  if (kind === undefined || kind === "explicit") {
    for (const name of model.tensors.keys()) if (!reference.tensors.has(name)) throw fail(`it has tensor "${name}", which the reference does not`);
    return;
  }
  let own: PermutationSpec;
  try {
    own = inferSpec(kind, model.config ?? undefined, new Map([...model.tensors].map(([name, t]) => [name, t.shape])));
  } catch (e) {
    if (e instanceof AlignmentError) throw new AlignmentError(e.code, `${model.location}: ${e.message}`, { ...e.details, model: model.location }, { cause: e });
    throw e;
  }
  for (const name of Object.keys(own)) if (!Object.hasOwn(spec, name)) throw fail(`it has tensor "${name}", which the reference does not`);
  for (const name of Object.keys(spec)) {
    if (!Object.hasOwn(own, name)) throw fail(`it has no tensor "${name}"`, "E_TENSOR_MISSING");
    if (JSON.stringify(own[name]) !== JSON.stringify(spec[name])) {
      throw fail(`"${name}" splits into other units (compare the head counts and head sizes in the two config.json files)`);
    }
  }
}

/** Aligns `model` to `reference` and writes the permuted model into `out` (committed at the end). */
export async function alignModel(reference: LoadedModel, model: LoadedModel, out: OutputFolder, options: AlignOptions = {}): Promise<AlignResult> {
  return abortable(options.signal, () => writeAligned(reference, model, out, options));
}

async function writeAligned(reference: LoadedModel, model: LoadedModel, out: OutputFolder, options: AlignOptions): Promise<AlignResult> {
  try {
    const matched = await matchModels(reference, model, options);
    const t0 = nowMs();
    await writePermutedModel(model, matched.spec, matched.permutations, out, options.signal);
    await out.writeText(ALIGNMENT_FILE, JSON.stringify({
      reference: reference.location, model: model.location, seed: options.seed ?? 0, sweeps: matched.sweeps,
      spec: { kind: matched.specKind, tensors: matched.spec },
      groups: matched.groups,
      convention: PERMUTATION_CONVENTION,
      permutations: Object.fromEntries([...matched.permutations].map(([g, p]) => [g, [...p]])),
    }, null, 1) + "\n");
    await out.commit();
    const { readSeconds, matchSeconds, workerStats: _, ...rest } = matched;
    return { ...rest, seconds: { read: readSeconds, match: matchSeconds, write: (nowMs() - t0) / 1000 } };
  } catch (e) {
    await out.discard();
    throw e;
  }
}
