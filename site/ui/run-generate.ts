/**
 * @file One generation from the page: the prompt continued by the chosen model and then by the model
 * shown next to it, greedily, each token shown as it is chosen. One model after the other, not both
 * at once: each is held whole in a worker's memory while it generates, so two at once would double
 * the memory a large model needs, and a 2-core machine gains nothing from running them together.
 */
import { generate } from "../../src/api/generate";
import { AbortError } from "../../src/errors";
import type { PageState, RunState, Store } from "../state";
import { evalCandidates, MERGED_ID, modelId, subjectOf, type EvalCandidate } from "./eval-candidates";
import { problemsOf, type Problem } from "./recipe-check";

export interface GenForm {
  prompt: string;
  maxNew: string;
  /** Candidate ids; "" for the default choice. `other` is "none" when nothing is shown next to it. */
  model: string;
  other: string;
  chat: boolean;
}

export interface GenOutput {
  label: string;
  text: string;
  ids: number[];
  /** "waiting", "generating", or how it ended ("32 tokens, 41.0 tokens/s"). */
  status: string;
}

export interface GenRun {
  run: RunState;
  status: string;
  announcement: string;
  problems: readonly Problem[];
  /** What the run warned about (the recipe row's tensor merged NaN throughout), as the CLI prints it. */
  warnings: readonly string[];
  outputs: readonly GenOutput[];
}

export const DEFAULT_NEW_TOKENS = "32";
export const NO_OTHER = "none";

export const initialGenForm = (): GenForm => ({ prompt: "", maxNew: DEFAULT_NEW_TOKENS, model: "", other: "", chat: false });
export const initialGenRun = (): GenRun => ({ run: "idle", status: "", announcement: "", problems: [], warnings: [], outputs: [] });

export function newTokensProblem(text: string): string {
  const t = text.trim();
  if (t === "") return "";
  if (!/^\d+$/.test(t) || Number(t) < 1 || Number(t) > 4096) return `New tokens must be a whole number from 1 to 4096 (empty: ${DEFAULT_NEW_TOKENS}); “${t}” is not.`;
  return "";
}

/**
 * The two models the prompt box uses: the person's choices while they still exist; by default the
 * merged output (else the first loaded model: the recipe merged in memory is offered, never chosen
 * for the person, as it merges the whole model again on every Generate), next to the merge's base
 * (else the next loaded model).
 */
export function genChoices(s: PageState): { model: EvalCandidate | undefined; other: EvalCandidate | undefined; candidates: EvalCandidate[] } {
  const candidates = evalCandidates(s);
  const byId = (id: string) => candidates.find((c) => c.id === id);
  const loaded = candidates.filter((c) => c.kind === "model");
  const model = byId(s.genForm.model) ?? byId(MERGED_ID) ?? loaded[0] ?? candidates[0];
  let other: EvalCandidate | undefined;
  if (s.genForm.other !== NO_OTHER) {
    const base = s.merged?.parents[0];
    other = byId(s.genForm.other) ?? (base !== undefined ? byId(modelId(base)) : undefined) ?? loaded.find((c) => c !== model);
    if (other === model) other = undefined;
  }
  return { model, other, candidates };
}

export function whyGenBlocked(s: PageState): string {
  if (s.platformProblems.length) return "This browser cannot run weightsoup (see the notice above).";
  if (s.generation.run === "running") return "";
  if (!genChoices(s).model) return "Add models, or merge, to have something to generate with.";
  if (s.genForm.prompt.trim() === "") return "Write a prompt first.";
  return newTokensProblem(s.genForm.maxNew);
}

export interface GenRunOptions {
  signal: AbortSignal;
  workerUrl?: URL;
}

export async function runGeneration(store: Store, options: GenRunOptions): Promise<void> {
  const s = store.state;
  const { model, other } = genChoices(s);
  const chosen = [model!, ...(other ? [other] : [])];
  const maxNewTokens = Number(s.genForm.maxNew.trim() || DEFAULT_NEW_TOKENS);
  let outputs: GenOutput[] = chosen.map((c) => ({ label: c.label, text: "", ids: [], status: "waiting" }));
  const set = (patch: Partial<GenRun>) => store.update({ generation: { ...store.state.generation, ...patch } });
  const setOutput = (i: number, patch: Partial<GenOutput>) => {
    outputs = outputs.map((o, j) => (j === i ? { ...o, ...patch } : o));
    set({ outputs });
  };
  const started = `Generating up to ${maxNewTokens} tokens with ${chosen.map((c) => c.label).join(", then ")}…`;
  set({ run: "running", status: started, announcement: started, problems: [], warnings: [], outputs });
  try {
    for (const [i, c] of chosen.entries()) {
      setOutput(i, { status: "loading the model…" });
      const subject = await subjectOf(c, s);
      const result = await generate(subject, {
        prompt: s.genForm.prompt, maxNewTokens, chat: s.genForm.chat, signal: options.signal,
        // Greedy decoding draws nothing: the page's seed is the merge's (mergeSeed), for DARE's drops in the
        // recipe row, as Merge uses it; `seed` would be the sampling seed, leaving the drops at 0 (found by the stop 38 page audit).
        ...(c.kind === "recipe" ? { mergeSeed: Number(s.seed.trim() || 0) } : {}),
        ...(options.workerUrl ? { workerUrl: options.workerUrl } : {}),
        onToken: (t) => setOutput(i, { text: outputs[i]!.text + t.text, ids: [...outputs[i]!.ids, t.id], status: "generating…" }),
        onWarning: (message) => set({ warnings: [...store.state.generation.warnings, message] }),
      });
      // The result is the whole answer (the stream may hold back the end of a multi-byte character).
      setOutput(i, { text: result.text, ids: result.ids, status: `${result.ids.length} token${result.ids.length === 1 ? "" : "s"} after a prompt of ${result.promptTokens}, ${result.tokensPerSecond.toFixed(1)} tokens/s` });
    }
    set({ status: "Done.", announcement: "Generation finished.", run: "done" });
  } catch (e) {
    outputs = outputs.map((o) => (o.status === "waiting" || o.status.endsWith("…") ? { ...o, status: "stopped" } : o));
    if (e instanceof AbortError || options.signal.aborted) {
      set({ outputs, status: "Generation cancelled.", announcement: "Generation cancelled.", run: "cancelled" });
      return;
    }
    set({ outputs, status: "Generation failed.", announcement: "Generation failed.", problems: problemsOf(e), run: "error" });
  }
}
