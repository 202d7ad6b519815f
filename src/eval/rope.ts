/**
 * @file Rotary position embedding as transformers computes it: frequencies and angles in float32,
 * rounded after every operation (decoder-forward.md 3.4). Angles reach 10⁵ radians, where float32
 * values are 1/64 apart, so computing them "more accurately" in float64 misses transformers' cos and
 * sin by up to 8e-3; following its float32 steps reproduces them. Math.fround after each step,
 * pow / cos / sin in float64 and rounded once, as the note measured. pow, cos and sin are the
 * kernels' (kernels/scalar-math.ts), not JavaScript's Math: the tables are the same bits in every runtime.
 */
import { describeValue, ModelError } from "../errors";
import type { Kernels } from "../kernels/kernels";
import { scalarMathOf, type ScalarMath } from "../kernels/scalar-math";
import { table } from "../table";

export interface RopeSpec {
  /** Rotated dims per head (the whole head here: partial rotation is not supported). */
  rot: number;
  /** The base θ of the frequencies θ^(−2i/rot). */
  theta: number;
  /** How the frequencies are rescaled (llama3: the band parameters, read and checked from the config). */
  scaling: { type: "none" } | { type: "linear"; factor: number } | { type: "llama3"; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };
  /** Multiplies cos and sin (1 for the supported types). */
  attentionFactor: number;
  /** The model's declared context, where a rope type depends on it (dynamic). */
  maxPositions: number | undefined;
}

const f32 = Math.fround;

/** transformers' max_position_embeddings when a config leaves it out, by family (its config classes' defaults). */
const DEFAULT_MAX_POSITIONS = table<number>({ llama: 2048, mistral: 131072, qwen2: 32768, qwen3: 32768 });

/**
 * The rope settings of a config in either layout: transformers 4's top-level `rope_theta` with an
 * optional `rope_scaling`, or transformers 5's `rope_parameters` (rope_scaling wins when both exist).
 * Types: default, linear, llama3, and dynamic within max_position_embeddings (where it is default).
 */
export function ropeFrequencies(config: Record<string, unknown>, headDim: number, file: string): RopeSpec {
  const bad = (key: string, what: string) => new ModelError("E_CONFIG", `${file}: ${key}: ${what}`, { file, key });
  const scaling = config.rope_scaling, parameters = config.rope_parameters;
  const isDict = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
  // transformers reads them with .get: anything but a mapping (or null) cannot be loaded, so it is not taken as absent.
  for (const [name, v] of [["rope_scaling", scaling], ["rope_parameters", parameters]] as const) {
    if (v !== undefined && v !== null && !isDict(v)) throw bad(name, `must be an object (or null), found ${describeValue(v)}`);
  }
  const params: Record<string, unknown> = isDict(scaling) && Object.keys(scaling).length ? scaling : isDict(parameters) ? parameters : {};
  const key = params === scaling ? "rope_scaling" : "rope_parameters";
  if (Object.values(params).some(isDict)) throw bad(key, "per-layer-type rope parameters are not supported for this family");
  const type = params.rope_type ?? params.type ?? "default";
  const theta = params.rope_theta ?? config.rope_theta ?? 10000;
  if (typeof theta !== "number" || !(theta > 0)) throw bad("rope_theta", `must be a positive number, found ${describeValue(theta)}`);
  const partial = params.partial_rotary_factor ?? config.partial_rotary_factor ?? 1;
  if (partial !== 1) throw bad("partial_rotary_factor", `${describeValue(partial)} is not supported (only 1)`);
  const maxPositions = typeof config.max_position_embeddings === "number" ? config.max_position_embeddings : DEFAULT_MAX_POSITIONS[String(config.model_type)];

  const rot = headDim;
  switch (type) {
    case "default":
      return { rot, theta, scaling: { type: "none" }, attentionFactor: 1, maxPositions: undefined };
    case "dynamic": {
      // NTK scaling starts only past max_position_embeddings; below it the frequencies are default. The
      // factor is not used there, but transformers refuses a config without one.
      const s = params.factor;
      if (typeof s !== "number" || !(s > 0)) throw bad(`${key}.factor`, `must be a positive number, found ${describeValue(s)}`);
      return { rot, theta, scaling: { type: "none" }, attentionFactor: 1, maxPositions: maxPositions ?? 2048 };
    }
    case "linear": {
      const s = params.factor;
      if (typeof s !== "number" || !(s > 0)) throw bad(`${key}.factor`, `must be a positive number, found ${describeValue(s)}`);
      return { rot, theta, scaling: { type: "linear", factor: s }, attentionFactor: 1, maxPositions: undefined };
    }
    case "llama3":
      return { rot, theta, scaling: llama3Parameters(params, config, maxPositions, key, bad), attentionFactor: 1, maxPositions: undefined };
    default:
      throw bad(`${key}.rope_type`, `${describeValue(type)} is not supported (default, linear, llama3, dynamic)`);
  }
}

/** The llama3 band parameters of a config (checked when the config is read, used when tables are made). */
function llama3Parameters(params: Record<string, unknown>, config: Record<string, unknown>, maxPositions: number | undefined, key: string,
  bad: (key: string, what: string) => ModelError): Extract<RopeSpec["scaling"], { type: "llama3" }> {
  // transformers indexes the band keys without a default: a config missing one cannot be loaded there.
  const get = (name: string, fallback?: number): number => {
    const v = params[name] ?? fallback;
    if (v === undefined) throw bad(`${key}.${name}`, "is required by llama3 scaling (transformers cannot load the config without it)");
    if (typeof v !== "number" || !Number.isFinite(v)) throw bad(`${key}.${name}`, `must be a number, found ${describeValue(v)}`);
    return v;
  };
  const factor = get("factor");
  const lowFreqFactor = get("low_freq_factor");
  const highFreqFactor = get("high_freq_factor");
  const topLevel = config.original_max_position_embeddings;
  const originalMaxPositions = typeof topLevel === "number" ? topLevel : get("original_max_position_embeddings", maxPositions);
  return { type: "llama3", factor, lowFreqFactor, highFreqFactor, originalMaxPositions };
}

/** The rot/2 float32 inverse frequencies after any scaling: f_i = f32(1 / f32(θ^f32(2i / rot))). */
export function ropeInverseFrequencies(rope: RopeSpec, math: ScalarMath): Float32Array {
  const { rot, theta, scaling } = rope;
  const base = new Float32Array(rot / 2);
  for (let i = 0; i < rot / 2; i++) {
    const e = f32(f32(2 * i) / rot);
    const p = f32(math.pow(theta, e));
    base[i] = f32(1 / p);
  }
  switch (scaling.type) {
    case "none":
      return base;
    case "linear":
      return base.map((f) => f32(f / scaling.factor));
    case "llama3":
      return llama3(base, scaling);
  }
}

/**
 * Llama 3's frequency bands, evaluated as torch does: float32 with a rounding after every operation,
 * and "scalar / tensor" as reciprocal-then-multiply (decoder-forward.md 3.4).
 */
function llama3(base: Float32Array, p: Extract<RopeSpec["scaling"], { type: "llama3" }>): Float32Array {
  const { factor: s, lowFreqFactor: alpha, highFreqFactor: beta, originalMaxPositions: l0 } = p;
  const twoPi = f32(2 * Math.PI);
  const lowWavelen = l0 / alpha, highWavelen = l0 / beta;
  return base.map((f) => {
    const wavelen = f32(f32(1 / f) * twoPi);
    const b = wavelen > lowWavelen ? f32(f / s) : f;
    if (wavelen < highWavelen || wavelen > lowWavelen) return b;
    const gamma = f32(f32(f32(f32(1 / wavelen) * l0) - alpha) / (beta - alpha));
    return f32(f32(f32(f32(1 - gamma) * b) / s) + f32(gamma * b));
  });
}

/**
 * cos and sin of positions 0..rows−1 for each frequency, float32 as transformers makes them:
 * φ = f32(f32(t) · f), then cos and sin of φ rounded once (and scaled by the attention factor), by the
 * kernels (assembly/scalar-math.ts). Both tables are allocated in the kernels' arena; row t holds rot/2
 * values.
 */
export function ropeTables(rope: RopeSpec, rows: number, k: Kernels): { cos: number; sin: number } {
  const { arena, exports } = k;
  const half = rope.rot / 2;
  const invFreq = ropeInverseFrequencies(rope, scalarMathOf(exports));
  const cos = arena.alloc(rows * half * 4), sin = arena.alloc(rows * half * 4);
  const mark = arena.mark();
  const freq = arena.alloc(half * 4);
  arena.f32(freq, half).set(invFreq);
  exports.ropeTables(freq, half, rows, rope.attentionFactor, cos, sin);
  arena.release(mark);
  return { cos, sin };
}
