/**
 * @file Applying a LoRA to a base weight on the fly, in a worker: after a chunk of the base tensor is
 * read into wasm memory, W' = W + scale·L·R is computed for the chunk's rows and written back over it
 * in the tensor's own dtype (as PEFT's merge into the base leaves it), so every method's kernels then
 * read the adapted weight as if it were stored that way. Rows of ΔW are made a few at a time with the
 * GEMM kernels (L's rows against all of R), so the extra memory is R plus about a mebibyte.
 */
import { MATMUL_SCRATCH_BYTES } from "../../assembly/layout";
import { DTYPES } from "../format/dtypes";
import type { ByteSource, SourceRef } from "../io/source";
import type { Kernels } from "../kernels/kernels";
import type { LoraDelta } from "./delta";

/** Bytes of ΔW rows computed at once. */
const DELTA_BLOCK_BYTES = 1 << 20;

export interface DeltaTarget {
  /** Where the chunk lies in wasm memory, and its stored dtype. */
  ptr: number;
  dtype: string;
  /** Elements [start, end) of the tensor, in row-major order over rows of `cols` (a top-left block may be narrower than the stored rows). */
  start: number;
  end: number;
  cols: number;
}

export async function applyLoraDelta(k: Kernels, delta: LoraDelta, target: DeltaTarget, open: (ref: SourceRef) => ByteSource): Promise<void> {
  const { arena, exports: x } = k;
  const { left, right, rank: r, transposed } = delta;
  const { start, end, cols } = target;
  const storedCols = transposed ? right.shape[0]! : right.shape[1]!;
  const first = Math.floor(start / cols), last = Math.ceil(end / cols);
  const sub = Math.max(1, Math.min(last - first, Math.floor(DELTA_BLOCK_BYTES / (storedCols * 4))));
  const leftInfo = DTYPES[left.dtype]!, rightInfo = DTYPES[right.dtype]!;
  const leftBytes = leftInfo.bits / 8, targetBytes = DTYPES[target.dtype]!.bits / 8;
  const targetCode = DTYPES[target.dtype]!.code!;
  const scale = Math.fround(delta.scale);

  const mark = arena.mark();
  try {
    // Every region exists before the first read: growing the memory would detach a view being read into.
    const scratch = arena.alloc(MATMUL_SCRATCH_BYTES);
    const rightSize = (r * storedCols * rightInfo.bits) / 8;
    const rightPtr = arena.alloc(rightSize);
    const leftRaw = arena.alloc(sub * r * leftBytes), leftF = arena.alloc(sub * r * 4), leftRows = arena.alloc(sub * r * 4);
    const d = arena.alloc(sub * storedCols * 4);
    await open(right.source).readInto(right.offset, arena.u8(rightPtr, rightSize));
    const leftSource = open(left.source);
    for (let a = first; a < last; a += sub) {
      const rows = Math.min(sub, last - a);
      // L's rows a..a+rows as f32 [rows × r]: lora_B's rows as stored, or columns of lora_A [r × total].
      let l = leftF;
      if (!transposed) {
        await leftSource.readInto(left.offset + a * r * leftBytes, arena.u8(leftRaw, rows * r * leftBytes));
        x.decode(leftRaw, leftInfo.code!, leftF, rows * r);
      } else {
        const total = left.shape[1]!;
        await Promise.all(Array.from({ length: r }, (_, t) => leftSource.readInto(left.offset + (t * total + a) * leftBytes, arena.u8(leftRaw + t * rows * leftBytes, rows * leftBytes))));
        x.decode(leftRaw, leftInfo.code!, leftF, r * rows);
        x.transposeInto(leftF, r, rows, leftRows, r);
        l = leftRows;
      }
      // d = L_rows · R [rows × storedCols]: R is lora_A [r × cols] (linearKN) or stored as Rᵀ = lora_B [cols × r] (linear).
      if (!transposed) x.linearKN(l, rows, r, rightPtr, rightInfo.code!, storedCols, d, 0, scratch);
      else x.linear(l, rows, r, rightPtr, rightInfo.code!, storedCols, d, 0, scratch);
      for (let i = a; i < a + rows; i++) {
        const c0 = Math.max(0, start - i * cols), c1 = Math.min(cols, end - i * cols);
        if (c1 <= c0) continue;
        const at = i * cols + c0 - start;
        x.addScaledInPlace(target.ptr + at * targetBytes, targetCode, d + ((i - a) * storedCols + c0) * 4, scale, c1 - c0);
      }
    }
  } finally {
    arena.release(mark);
  }
}
