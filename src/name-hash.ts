/**
 * @file One hash of short strings (tensor names, module names, file names), where a name has to give
 * the same number in every process and on every worker: FNV-1a, 32 bits, over the UTF-16 code units.
 * Not for content (a checkpoint is identified by its file's stat) and not for DARE's random streams,
 * which hash a name's UTF-8 bytes (merge/dare.ts) and must stay as they are for outputs to stay the same.
 */
export function nameHash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
