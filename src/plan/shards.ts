/**
 * @file Output shards, planned before any tensor is computed: every tensor's dtype and shape are known
 * from the headers, so the file names, headers and index exist before the first byte is written
 * (which also lets browsers write files in place instead of renaming them).
 *
 * Sharding follows huggingface_hub: tensors in plan order, a new shard when the next tensor would push
 * the current one past the limit, an oversized tensor alone in its shard; one shard is
 * model.safetensors with no index, several are model-0000i-of-0000N.safetensors plus
 * model.safetensors.index.json.
 */
import { planFile, type FileLayout } from "../format/safetensors";
import { INDEX_FILE } from "../model/model";
import type { PlannedTensor } from "./plan";

export interface ShardPlan {
  file: string;
  tensors: PlannedTensor[];
  layout: FileLayout;
}

export function planShards(tensors: PlannedTensor[], maxShardBytes: number, metadata: Record<string, string>): ShardPlan[] {
  const groups: PlannedTensor[][] = [];
  let current: PlannedTensor[] = [];
  let size = 0;
  for (const t of tensors) {
    if (current.length > 0 && size + t.outputBytes > maxShardBytes) {
      groups.push(current);
      current = [];
      size = 0;
    }
    current.push(t);
    size += t.outputBytes;
  }
  if (current.length > 0) groups.push(current);
  const pad = (n: number) => String(n).padStart(5, "0");
  return groups.map((group, i) => ({
    file: groups.length === 1 ? "model.safetensors" : `model-${pad(i + 1)}-of-${pad(groups.length)}.safetensors`,
    tensors: group,
    layout: planFile(group.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, bytes: t.outputBytes })), metadata),
  }));
}

/** model.safetensors.index.json for a sharded output (total_size counts tensor bytes, not headers). */
export function indexJson(shards: ShardPlan[], extra: Record<string, unknown>): string {
  // No prototype: a tensor named "__proto__" must be a key like any other.
  const weightMap: Record<string, string> = Object.create(null);
  let total = 0;
  const entries: [string, string][] = [];
  for (const shard of shards) {
    for (const t of shard.tensors) {
      entries.push([t.name, shard.file]);
      total += t.outputBytes;
    }
  }
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [name, file] of entries) weightMap[name] = file;
  return JSON.stringify({ metadata: { total_size: total, ...extra }, weight_map: weightMap }, null, 2) + "\n";
}

export { INDEX_FILE };

/** Parses sizes like 5B, 500M, 2GB, 1.5GiB, 1000000 (K/M/B/G decimal, KiB/MiB/GiB binary), as mergekit's --out-shard-size does. */
export function parseSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmbgt]?)(i?)(b?)\s*$/i.exec(text);
  if (!m) return undefined;
  const [, num, unit, binary] = m;
  const exp = ["", "k", "m", "b", "t"].indexOf(unit!.toLowerCase().replace("g", "b"));
  const bytes = Number(num) * (binary ? 1024 : 1000) ** exp;
  return Number.isFinite(bytes) && bytes >= 1 ? Math.floor(bytes) : undefined;
}
