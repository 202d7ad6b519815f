/**
 * @file Problems as a person can read them: grouped by kind, then by model, each group with its count,
 * its first few problems, and a button that shows the rest. Fifty-five shape mismatches are one group
 * of three lines, not a forty-line paragraph; a message repeated for every tensor appears once, counted.
 */
import type { Problem } from "../ui/recipe-check";
import { h } from "../ui/dom";

/** Problems shown per group before "Show all". */
const FIRST = 3;

const KINDS: Readonly<Record<string, string>> = {
  E_RECIPE_SYNTAX: "YAML syntax",
  E_RECIPE: "Recipe",
  E_METHOD_UNKNOWN: "Unknown merge method",
  E_METHOD_UNSUPPORTED: "Not supported yet",
  E_PARAMETER_MISSING: "Missing parameters",
  E_PARAMETER_INVALID: "Parameter values that cannot be used",
  E_TENSOR_MISSING: "Missing tensors",
  E_TENSOR_UNACCOUNTED: "Tensors the merge would leave out",
  E_SHAPE_MISMATCH: "Tensor shapes that differ",
  E_DTYPE_UNSUPPORTED: "Tensor types that cannot be merged",
  E_ADAPTER: "LoRA adapters",
  E_NONFINITE: "NaN or infinite weights",
  E_STAGE_DUPLICATE: "Documents with the same name",
  E_STAGE_CYCLE: "Documents that use each other",
  E_STAGE_FINAL: "Which document is the output",
  E_STAGE_UNKNOWN: "Models or documents not found",
  E_MODULE_EMPTY: "Modules with no tensors",
  E_MODULE_OVERLAP: "Tensors in two modules",
  E_MODULE_UNASSIGNED: "Tensors in no module",
  E_OUTPUT_EXISTS: "Output folder not empty",
  E_OUTPUT_NAME: "Output folder name",
  E_OUTPUT_SPACE: "Not enough storage",
  E_IO: "Reading or writing files",
  E_WORKER: "Workers",
  E_MEMORY_BUDGET: "Memory",
  // Evaluation and generation
  E_ARCHITECTURE_UNSUPPORTED: "Architectures that cannot be evaluated",
  E_TOKENIZER: "Tokenizers",
  E_DATA: "The text or prompt",
  E_VOCAB_MISMATCH: "Vocabularies that differ",
  E_CONFIG: "Model configuration",
  E_MODEL_NOT_FOUND: "Models not found",
  E_OPTION: "Settings",
  // Recipes and models the page reads (every code a problem can carry has its words: the code is shown beside them)
  E_DUPLICATE_MODEL: "Models listed twice",
  E_LAYER_MISMATCH: "Layers that do not line up",
  E_CHAT_TEMPLATE: "Chat templates",
  E_QUANTIZED: "Quantized checkpoints",
  E_SPEC: "Permutation specs",
  E_NO_WEIGHTS: "Folders without weights",
  E_SHARD_MISSING: "Missing weight files",
  E_INDEX: "Weight indexes",
  E_NOT_SAFETENSORS: "Files that are not safetensors",
  E_LFS_POINTER: "Git LFS pointers instead of weights",
  E_NOT_REGULAR_FILE: "Files that cannot be read",
  E_INCOMPLETE_BUFFER: "Weight files cut short",
  E_HEADER_SCHEMA: "Weight file headers",
  E_OFFSETS: "Weight file offsets",
  E_DUPLICATE_TENSOR: "Tensors listed twice",
  E_TENSOR_SIZE: "Tensor sizes",
  E_UNKNOWN_DTYPE: "Unknown tensor types",
  E_UNSAFE_INTEGER: "Weight file sizes",
  E_METADATA: "Weight file metadata",
  E_OUTPUT_IS_INPUT: "Output folder is an input",
  E_OUTPUT_LOCKED: "Output folder in use",
  E_COST_INVALID: "Cost matrices",
  E_ASSIGNMENT_INFEASIBLE: "Assignments",
  E_ABORTED: "Cancelled",
};

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** Groups in first-seen order: kind (code), then model ("" for problems about no model). */
export function groupProblems(problems: readonly Problem[]): Map<string, Map<string, { message: string; times: number }[]>> {
  const groups = new Map<string, Map<string, { message: string; times: number }[]>>();
  for (const p of problems) {
    let byModel = groups.get(p.code);
    if (!byModel) groups.set(p.code, (byModel = new Map()));
    const key = p.model ?? "";
    let list = byModel.get(key);
    if (!list) byModel.set(key, (list = []));
    const same = list.find((x) => x.message === p.message);
    if (same) same.times++;
    else list.push({ message: p.message, times: 1 });
  }
  return groups;
}

/** The problems as grouped lists (an empty fragment for none). */
export function renderProblems(problems: readonly Problem[]): DocumentFragment {
  const out = document.createDocumentFragment();
  for (const [code, byModel] of groupProblems(problems)) {
    const total = [...byModel.values()].flat().reduce((n, x) => n + x.times, 0);
    const group = h("div", { class: "problem-group", "data-testid": "problem-group", "data-code": code },
      h("p", { class: "problem-kind" }, `${KINDS[code] ?? code} `, h("span", { class: "count" }, `(${total})`),
        // The code as the command line and the library report it, to search for or quote.
        KINDS[code] ? h("code", { class: "problem-code", "data-testid": "problem-code" }, code) : null));
    for (const [model, list] of byModel) {
      const count = list.reduce((n, x) => n + x.times, 0);
      const items = list.map((x, i) => h("li", { "data-testid": "problem", hidden: i >= FIRST }, x.times > 1 ? `${x.message} (${x.times} times)` : x.message));
      const more = list.length > FIRST ? h("button", { type: "button", class: "link", "data-testid": "problem-more", "aria-expanded": "false" }, `Show all ${list.length}`) : null;
      more?.addEventListener("click", () => {
        const open = more.getAttribute("aria-expanded") !== "true";
        items.forEach((li, i) => { li.hidden = !open && i >= FIRST; });
        more.setAttribute("aria-expanded", String(open));
        more.textContent = open ? "Show fewer" : `Show all ${list.length}`;
      });
      group.append(h("div", { class: "problem-model", "data-testid": "problem-model", "data-model": model },
        byModel.size > 1 || model ? h("p", { class: "problem-head" }, model ? `${model}: ` : "", h("span", { "data-testid": "problem-count" }, plural(count, "problem"))) : h("span", { "data-testid": "problem-count", class: "visually-hidden" }, plural(count, "problem")),
        h("ul", {}, ...items), more));
    }
    out.append(group);
  }
  return out;
}
