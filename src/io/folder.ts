/**
 * @file A model or output location as a flat folder of named files. Node folders are directories on
 * disk (io/node-folder.ts); in browsers a folder is the set of File objects a person picked.
 */
import { ModelError } from "../errors";
import type { SourceRef } from "./source";

export interface ModelFolder {
  /** Name for messages (a path, or the folder name a person picked). */
  readonly name: string;
  /** The Hugging Face repo id this folder is a copy of, when known (found in the local hub cache). */
  readonly repoId?: string;
  /** Names of the regular files directly inside. */
  list(): Promise<string[]>;
  source(file: string): SourceRef;
  readText(file: string): Promise<string>;
}

/**
 * Finds the folder of a model a recipe names (the `models` option); undefined when there is none, which
 * is E_MODEL_NOT_FOUND naming the model (a Map's get() is such a lookup as it stands).
 */
export type ModelLookup = (name: string) => ModelFolder | undefined | Promise<ModelFolder | undefined>;

/** The folder `models` finds for `name`, or E_MODEL_NOT_FOUND naming it. */
export async function lookUpModel(models: ModelLookup, name: string): Promise<ModelFolder> {
  const folder = await models(name);
  if (!folder) throw new ModelError("E_MODEL_NOT_FOUND", `model "${name}": the models option found no folder for it`, { model: name });
  return folder;
}

/**
 * A folder made of in-memory or picked files (browsers, tests), or of the model library's files, which
 * also carry their handles in the origin-private file system (workers read those through sync access
 * handles; see io/source.ts).
 */
export class BlobFolder implements ModelFolder {
  constructor(readonly name: string, private readonly files: ReadonlyMap<string, Blob>, private readonly handles?: ReadonlyMap<string, FileSystemFileHandle>) {}
  async list(): Promise<string[]> {
    return [...this.files.keys()];
  }
  source(file: string): SourceRef {
    const blob = this.files.get(file);
    if (!blob) throw new Error(`${this.name}: no file ${file}`);
    const handle = this.handles?.get(file);
    return { kind: "blob", blob, name: `${this.name}/${file}`, ...(handle ? { handle } : {}) };
  }
  async readText(file: string): Promise<string> {
    const blob = this.files.get(file);
    if (!blob) throw new Error(`${this.name}: no file ${file}`);
    return blob.text();
  }
}

/**
 * A folder as a merge would write it, without writing it: `base`'s files, less `omit`, with `texts`
 * in place of or beside them (an evaluated recipe's config.json and rebuilt tokenizer files).
 */
export class OverlayFolder implements ModelFolder {
  constructor(readonly name: string, private readonly base: ModelFolder, private readonly texts: ReadonlyMap<string, string>, private readonly omit: ReadonlySet<string> = new Set()) {}
  async list(): Promise<string[]> {
    const kept = (await this.base.list()).filter((f) => !this.omit.has(f) && !this.texts.has(f));
    return [...kept, ...this.texts.keys()];
  }
  source(file: string): SourceRef {
    const text = this.texts.get(file);
    return text === undefined ? this.base.source(file) : { kind: "blob", blob: new Blob([text]), name: `${this.name}/${file}` };
  }
  async readText(file: string): Promise<string> {
    const text = this.texts.get(file);
    if (text !== undefined) return text;
    if (this.omit.has(file)) throw new Error(`${this.name}: no file ${file}`);
    return this.base.readText(file);
  }
}
