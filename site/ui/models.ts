/**
 * @file Turning picked or dropped files into models. A folder holding weights (.safetensors files, a
 * shard index, or weights in a format weightsoup does not read, which are listed with the reason) is
 * one model, named after the folder; a person may pick one model folder, a folder of model folders, or
 * loose files. Only headers and config.json are read here.
 */
import { inspect, type InspectReport } from "../../src/api/inspect";
import { WeightsoupError } from "../../src/errors";
import { BlobFolder } from "../../src/io/folder";
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE } from "../../src/lora/peft-format";
import { INDEX_FILE, isWeightFile, openModel, type LoadedModel } from "../../src/model/model";

export interface PickedModel {
  name: string;
  folder: BlobFolder;
  files: Map<string, File>;
  report?: InspectReport;
  /** The opened model (headers only), which the recipe is checked against as it is edited. */
  loaded?: LoadedModel;
  /**
   * A PEFT LoRA adapter folder (adapter_config.json), used as the ADAPTER of a `base+adapter` recipe
   * name; it is no model (no `loaded`), and is read against its base when the recipe names the pair.
   */
  adapter?: boolean;
  /** Why it cannot be used, in words (names the file). */
  error?: string;
  /** That error's code, as the command line prints it (E_INCOMPLETE_BUFFER, ...), when it is a typed one. */
  errorCode?: string;
  /** The model library folder it is read from (its id), when it came from the library rather than a pick. */
  library?: string;
}

/** A file with the path it had inside the picked or dropped folder ("" for loose files). */
export interface PickedFile {
  file: File;
  path: string;
}

const isShardName = (n: string) => /-\d{5}-of-\d{5}\.safetensors$/.test(n);

/** Groups files into models; `taken` holds names already in use (a clash gets a suffix). */
export function groupModels(picked: PickedFile[], taken: Set<string>): { name: string; files: Map<string, File> }[] {
  const byDir = new Map<string, Map<string, File>>();
  const loose: File[] = [];
  for (const { file, path } of picked) {
    const parts = path.split("/").filter(Boolean);
    // Hidden folders (.git, .cache) and files never belong to a model.
    if (parts.some((p) => p.startsWith(".")) || file.name.startsWith(".")) continue;
    if (parts.length <= 1) {
      loose.push(file);
      continue;
    }
    const dir = parts.slice(0, -1).join("/");
    if (!byDir.has(dir)) byDir.set(dir, new Map());
    byDir.get(dir)!.set(file.name, file);
  }
  const groups: { name: string; files: Map<string, File> }[] = [];
  for (const [dir, files] of byDir) {
    // Folders with weights of any format are models; one weightsoup cannot read says why where it is listed.
    if (![...files.keys()].some(isWeightFile)) continue;
    groups.push({ name: dir.split("/").pop()!, files });
  }
  if (loose.length) {
    const together = loose.some((f) => f.name === INDEX_FILE || f.name === "config.json" || f.name === ADAPTER_CONFIG_FILE || isShardName(f.name));
    if (together) {
      const first = loose.find((f) => f.name.endsWith(".safetensors"));
      const stem = first ? first.name.replace(/(-\d{5}-of-\d{5})?\.safetensors$/, "") : "model";
      groups.push({ name: stem === "adapter_model" ? "adapter" : stem, files: new Map(loose.map((f) => [f.name, f])) });
    } else {
      for (const f of loose.filter((f) => isWeightFile(f.name) && !f.name.endsWith(".json"))) {
        groups.push({ name: f.name.replace(/\.[^.]+$/, ""), files: new Map([[f.name, f]]) });
      }
    }
  }
  for (const g of groups) {
    let name = g.name, n = 2;
    while (taken.has(name)) name = `${g.name}-${n++}`;
    g.name = name;
    taken.add(name);
  }
  return groups;
}

/**
 * Reads a model's headers and config; an unreadable model keeps its error instead of a report. A model
 * of the library comes as its folder (whose files carry their handles for the workers).
 */
export async function loadModel(name: string, files: Map<string, File>, folder = new BlobFolder(name, files)): Promise<PickedModel> {
  try {
    if (files.has(ADAPTER_CONFIG_FILE)) {
      // Its factors are checked against a base only once a recipe pairs them (recipe-check.ts).
      if (!files.has(ADAPTER_WEIGHTS_FILE)) {
        return { name, folder, files, adapter: true, error: `${name}: a LoRA adapter folder needs ${ADAPTER_WEIGHTS_FILE} beside ${ADAPTER_CONFIG_FILE}${files.has("adapter_model.bin") ? " (adapter_model.bin is a PyTorch pickle, which weightsoup does not read)" : ""}` };
      }
      return { name, folder, files, adapter: true, report: await inspect(folder) };
    }
    return { name, folder, files, loaded: await openModel(folder), report: await inspect(folder) };
  } catch (e) {
    const message = e instanceof WeightsoupError ? e.message : `${name}: ${(e as Error).message}`;
    return { name, folder, files, error: message, ...(e instanceof WeightsoupError ? { errorCode: e.code } : {}) };
  }
}

/** Files of a drop: folders are walked (webkitGetAsEntry), keeping each file's relative path. */
export async function droppedFiles(items: DataTransferItemList): Promise<PickedFile[]> {
  const entries = [...items].map((i) => i.webkitGetAsEntry?.()).filter((e): e is FileSystemEntry => !!e);
  const out: PickedFile[] = [];
  const walk = async (entry: FileSystemEntry, prefix: string): Promise<void> => {
    if (entry.isFile) {
      const file = await new Promise<File>((ok, fail) => (entry as FileSystemFileEntry).file(ok, fail));
      out.push({ file, path: prefix + entry.name });
    } else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      // readEntries returns at most ~100 entries per call: read until it returns none.
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((ok, fail) => reader.readEntries(ok, fail));
        if (batch.length === 0) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  };
  for (const e of entries) await walk(e, "");
  return out;
}

/** Facts that make two models unmergeable or suspicious, said in words. */
export function compatibilityWarnings(model: PickedModel, reference: PickedModel): string[] {
  const a = model.report, b = reference.report;
  // An adapter's tensors are LoRA factors, not a model's: its fit is checked once a recipe pairs it with a base.
  if (!a || !b || model === reference || model.adapter || reference.adapter) return [];
  const warnings: string[] = [];
  const arch = (r: InspectReport) => JSON.stringify(r.config?.architectures ?? r.config?.model_type ?? null);
  if (a.config && b.config && arch(a) !== arch(b)) warnings.push(`architecture ${arch(a)} differs from ${reference.name}'s ${arch(b)}`);
  if (a.config?.vocab_size !== undefined && b.config?.vocab_size !== undefined && a.config.vocab_size !== b.config.vocab_size) {
    warnings.push(`vocabulary of ${String(a.config.vocab_size)} tokens, ${reference.name} has ${String(b.config.vocab_size)} (embedding rows are merged over the common part, as mergekit does)`);
  }
  if (a.config?.hidden_size !== undefined && b.config?.hidden_size !== undefined && a.config.hidden_size !== b.config.hidden_size) {
    warnings.push(`hidden size ${String(a.config.hidden_size)}, ${reference.name} has ${String(b.config.hidden_size)}`);
  }
  const shapes = new Map(b.tensors.map((t) => [t.name, t.shape.join("×")]));
  const differing = a.tensors.filter((t) => shapes.has(t.name) && shapes.get(t.name) !== t.shape.join("×") && !/embed|lm_head|wte/.test(t.name));
  if (differing.length) warnings.push(`${differing.length} tensors differ in shape from ${reference.name}'s (first: ${differing[0]!.name} ${differing[0]!.shape.join("×")} vs ${shapes.get(differing[0]!.name)})`);
  const mine = new Set(a.tensors.map((t) => t.name));
  const missing = b.tensors.filter((t) => !mine.has(t.name));
  if (missing.length) warnings.push(`${missing.length} of ${reference.name}'s tensors are missing (first: ${missing[0]!.name})`);
  return warnings;
}
