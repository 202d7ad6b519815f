/**
 * @file An output folder held in memory, which becomes a BlobFolder at commit: how a recipe's aligned
 * (permuted) models are made available to the merge in Node and browsers alike without a scratch
 * folder. Its size is the model's size, so it is for models that fit in memory.
 */
import type { OutputTarget } from "../merge/job";
import { BlobFolder } from "./folder";
import type { OutputFolder } from "./output";
import { openSource, type SourceRef } from "./source";

export class MemoryOutputFolder implements OutputFolder {
  private readonly files = new Map<string, Uint8Array | Blob>();
  private committed: BlobFolder | undefined;

  constructor(readonly name: string) {}

  async createFile(file: string, size: number, head: Uint8Array): Promise<OutputTarget> {
    const bytes = new Uint8Array(size);
    bytes.set(head);
    this.files.set(file, bytes);
    return { kind: "return" };
  }

  async write(file: string, offset: number, bytes: Uint8Array): Promise<void> {
    const target = this.files.get(file);
    if (!(target instanceof Uint8Array)) throw new Error(`${this.name}: ${file} was not created`);
    target.set(bytes, offset);
  }

  async writeText(file: string, text: string): Promise<void> {
    this.files.set(file, new TextEncoder().encode(text));
  }

  async copyFrom(file: string, source: SourceRef): Promise<void> {
    if (source.kind === "blob") { this.files.set(file, source.blob); return; }
    const from = openSource(source);
    try {
      const bytes = new Uint8Array(await from.size());
      await from.readInto(0, bytes);
      this.files.set(file, bytes);
    } finally {
      await from.close();
    }
  }

  async commit(): Promise<string[]> {
    this.committed = new BlobFolder(this.name, new Map([...this.files].map(([f, b]) => [f, b instanceof Blob ? b : new Blob([b as Uint8Array<ArrayBuffer>])])));
    this.files.clear();
    return this.committed.list();
  }

  async discard(): Promise<void> {
    this.files.clear();
  }

  /** The committed files as a model folder. */
  folder(): BlobFolder {
    if (!this.committed) throw new Error(`${this.name}: not committed`);
    return this.committed;
  }
}
