/**
 * @file Getting weights into a kernel instance's memory: tensors in files are read straight into wasm
 * memory (files stay open for the session), tensors given as bytes are copied in. Matrices keep their
 * stored dtype (the matrix kernels read BF16/F16 in place); vectors (norms, biases) are decoded to
 * float32.
 */
import { DTYPE_F32 } from "../../assembly/layout";
import { DTYPES } from "../format/dtypes";
import { openSource, type ByteSource } from "../io/source";
import type { Kernels } from "../kernels/kernels";
import type { Loaded } from "./layer";
import type { WeightRef } from "./protocol";

export function elementBytes(dtype: string): number {
  return DTYPES[dtype]!.bits / 8;
}

export function dtypeCode(dtype: string): number {
  return DTYPES[dtype]!.code!;
}

export function weightBytes(ref: WeightRef): number {
  return ref.shape.reduce((a, b) => a * b, 1) * elementBytes(ref.dtype);
}

export class WeightReader {
  private readonly sources = new Map<string, ByteSource>();

  constructor(private readonly k: Kernels) {}

  /** The tensor in wasm memory, in its stored dtype. */
  async matrix(ref: WeightRef): Promise<Loaded> {
    const bytes = weightBytes(ref);
    const ptr = this.k.arena.alloc(bytes);
    await this.read(ref, 0, this.k.arena.u8(ptr, bytes));
    return { ptr, code: dtypeCode(ref.dtype) };
  }

  /** A vector (norm weights, biases) decoded to float32. */
  async vector(ref: WeightRef): Promise<Loaded> {
    const raw = await this.matrix(ref);
    if (raw.code === DTYPE_F32) return raw;
    const n = ref.shape[0]!;
    const ptr = this.k.arena.alloc(n * 4);
    this.k.exports.decode(raw.ptr, raw.code, ptr, n);
    return { ptr, code: DTYPE_F32 };
  }

  /**
   * Several weights at once (a layer's): every region is allocated first, then all reads run
   * together (a browser serves each read of a picked file as a separate request), then vectors are
   * decoded.
   */
  async loadAll<K extends string>(refs: readonly [K, WeightRef][]): Promise<Map<K, Loaded>> {
    const { arena, exports } = this.k;
    const raw = refs.map(([, ref]) => ({ ref, ptr: arena.alloc(weightBytes(ref)) }));
    await Promise.all(raw.map(({ ref, ptr }) => this.read(ref, 0, arena.u8(ptr, weightBytes(ref)))));
    const out = new Map<K, Loaded>();
    refs.forEach(([key, ref], i) => {
      const { ptr } = raw[i]!;
      const code = dtypeCode(ref.dtype);
      if (ref.shape.length !== 1 || code === DTYPE_F32) {
        out.set(key, { ptr, code });
        return;
      }
      const decoded = arena.alloc(ref.shape[0]! * 4);
      exports.decode(ptr, code, decoded, ref.shape[0]!);
      out.set(key, { ptr: decoded, code: DTYPE_F32 });
    });
    return out;
  }

  /** Bytes [byteOffset, byteOffset + into.length) of a weight into `into` (a view of wasm memory). */
  async read(ref: WeightRef, byteOffset: number, into: Uint8Array): Promise<void> {
    if ("bytes" in ref) {
      into.set(ref.bytes.subarray(byteOffset, byteOffset + into.length));
      return;
    }
    const key = ref.source.kind === "path" ? ref.source.path : ref.source.name;
    let source = this.sources.get(key);
    if (!source) this.sources.set(key, (source = openSource(ref.source)));
    await source.readInto(ref.offset + byteOffset, into);
  }

  async close(): Promise<void> {
    await Promise.all([...this.sources.values()].map((s) => s.close()));
    this.sources.clear();
  }
}
