// Numbers shared by the kernels (AssemblyScript) and the TypeScript side that drives them.
// Plain constants only: this file compiles as both languages.

/** Element type codes used across the wasm boundary. 0 means "none" where a dtype is optional. */
export const DTYPE_NONE = 0;
export const DTYPE_F32 = 1;
export const DTYPE_F16 = 2;
export const DTYPE_BF16 = 3;
export const DTYPE_F64 = 4;

/**
 * Elements per tile. Kernels decode and combine inputs one tile at a time so the working set stays in
 * L1/L2. Chunks of a tensor always start at a multiple of TILE, which is what makes per-tile partial sums
 * (and so every whole-tensor reduction) independent of how a tensor is split into chunks.
 */
export const TILE = 4096;

/** Most inputs one kernel call combines (scratch is sized for this many decoded tiles). */
export const MAX_INPUTS = 64;

/** Bytes of tile scratch a kernel instance needs: a decoded tile per input plus four working tiles. */
export const SCRATCH_BYTES = (MAX_INPUTS + 4) * TILE * 4;

/** One record of a weighted-sum operand table: ptr u32, dtype u32, weight f32, unused u32. */
export const SUM_RECORD = 16;

/**
 * One record of a task-vector operand table (record 0 is the base model, whose fields after DTYPE are
 * ignored).
 */
export const TV_RECORD = 48;
export const TV_PTR = 0; //        u32  raw data
export const TV_DTYPE = 4; //      u32
export const TV_WEIGHT = 8; //     f32
export const TV_RESCALE = 12; //   f32  multiplies the kept values (1 when not rescaling)
export const TV_MODE = 16; //      u32  one of the TRIM_* codes
export const TV_THRESHOLD = 20; // u32  magnitude: |tau| bits threshold; random: keep iff u < threshold
export const TV_TIES = 24; //      u32  magnitude: elements equal to the threshold still to keep (consumed)
export const TV_KEY = 28; //       u32  random: stream key
export const TV_THRESHOLD2 = 32; // u32  band: |tau| bits of the outliers' cut (the `top` largest are dropped)
export const TV_TIES2 = 36; //     u32  band: elements equal to it that are still outliers (consumed)
export const TV_MASK = 40; //      u32  bits: pointer to the chunk's keep bits (bit j of byte j >> 3 for element j)

export const TRIM_NONE = 0;
export const TRIM_MAGNITUDE = 1;
export const TRIM_RANDOM = 2;
/** Breadcrumbs: keep the top (keep + top) |tau| but not the top `top` (two magnitude cuts). */
export const TRIM_BAND = 3;
/** A keep mask computed beforehand (della's per-row ranked drop), one bit per element at TV_MASK. */
export const TRIM_BITS = 4;
/** Nothing is kept. */
export const TRIM_ZERO = 5;

/** Flags of the task-vector merge kernel. */
export const TV_NORMALIZE = 1;
export const TV_CONSENSUS = 2;
/** Consensus votes with the count of positive minus negative values instead of their sum. */
export const TV_COUNT_VOTE = 4;
/** Consensus votes on the unweighted (sparsified, rescaled) task vectors instead of weight * tau. */
export const TV_UNWEIGHTED_VOTE = 8;

/**
 * sce's selection record (all u32): positions whose variance (float64 bits, high word then low word)
 * is above (SCE_HIGH, SCE_LOW) are kept, those equal to it while SCE_TIES lasts (consumed, in element
 * order). SCE_MODE: SCE_ALL keeps every position, SCE_NONE none, SCE_TOP applies the cut.
 */
export const SCE_HIGH = 0;
export const SCE_LOW = 4;
export const SCE_TIES = 8;
export const SCE_MODE = 12;
export const SCE_RECORD = 16;
export const SCE_ALL = 0;
export const SCE_NONE = 1;
export const SCE_TOP = 2;
/** sce's sample of the variances: one position in every 2^SCE_SAMPLE_BITS. */
export const SCE_SAMPLE_BITS = 10;
export const SCE_SAMPLE_STRIDE = 1 << SCE_SAMPLE_BITS;
/** sceCollect's and sceSelectCandidates' result: a value's bits (u64), then counts above it and equal to (or inside) it (f64). */
export const SCE_CUT = 0;
export const SCE_CUT_ABOVE = 8;
export const SCE_CUT_EQUAL = 16;
export const SCE_CUT_BYTES = 24;

/** Sampling rule of the TIES select: the first SAMPLE_RUN elements of every SAMPLE_STRIDE. */
export const SAMPLE_RUN = 16;
export const SAMPLE_STRIDE = 1024;
/** Sample histograms bucket |tau| bits by their top 16 (of 31) bits. */
export const SAMPLE_SHIFT = 15;
export const SAMPLE_BUCKETS = 65536;

/** Layout of the small result record the select kernels fill (all f64). */
export const RANGE_ABOVE = 0; //  elements with key >= hi
export const RANGE_INSIDE = 8; // elements with lo <= key < hi
export const RANGE_KEPT = 16; //  candidates written (<= capacity)
export const RANGE_BYTES = 24;
/**
 * One task's record of a multi-task range pass (absDeltaRanges), all u32: the task input's pointer and
 * dtype, the key range [lo, hi) and shift, the histogram, candidate buffer and its capacity, and the
 * RANGE_* record to fill.
 */
export const TASK_RANGE_X = 0;
export const TASK_RANGE_DTYPE = 4;
export const TASK_RANGE_LO = 8;
export const TASK_RANGE_HI = 12;
export const TASK_RANGE_SHIFT = 16;
export const TASK_RANGE_HIST = 20;
export const TASK_RANGE_CAND = 24;
export const TASK_RANGE_CAPACITY = 28;
export const TASK_RANGE_STATS = 32;
export const TASK_RANGE_RECORD = 36;
/** arcee_fusion's range table (fusionRange): per key range lo, hi, shift and the histogram's pointer (u32). */
export const FUSION_RANGE_RECORD = 16;

/**
 * One record of the logit-scoring kernel (scoring.ts), all f64: the evaluated model's running
 * maximum, sum of exponentials, the target's logit and argmax; the compared model's maximum, sum,
 * weighted logit difference and argmax.
 */
export const SCORE_M_E = 0;
export const SCORE_S_E = 8;
export const SCORE_TARGET = 16;
export const SCORE_BEST_E = 24;
export const SCORE_M_A = 32;
export const SCORE_S_A = 40;
export const SCORE_W_A = 48;
export const SCORE_BEST_A = 56;
export const SCORE_RECORD = 64;

/**
 * Bytes of scratch the forward pass's matrix products (assembly/matmul.ts) need: one panel of weight
 * rows decoded to f32, sized to stay in a core's L2 cache.
 */
export const MATMUL_SCRATCH_BYTES = 256 * 1024;
