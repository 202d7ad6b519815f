/**
 * @file One merge from the page: the recipe text as it stands, the loaded models it maps to, the output
 * folder created (named) inside the picked folder or browser storage once the plan is valid, progress
 * into the store (the progress line at most four times a second, announcements at milestones only).
 */
import { merge } from "../../src/api/merge";
import { ModelError } from "../../src/errors";
import type { DirectoryOutputFolder } from "../../src/io/directory-output";
import type { MergeEvent } from "../../src/events";
import type { MergePlan } from "../../src/plan/plan";
import { isNotCopiedToOutput } from "../../src/model/model";
import { formatBytes, formatSeconds, timeLeft } from "../../src/units";
import type { Store } from "../state";
import { mappingOf } from "./mapping";
import { outputOpener, saveFailure, type SaveWhere } from "./save";

export interface RunOptions extends Omit<SaveWhere, "target"> {
  workers?: number;
  workerUrl?: URL;
  signal: AbortSignal;
}

const STATUS_EVERY_MS = 250;

export async function runMerge(store: Store, options: RunOptions): Promise<void> {
  const s = store.state;
  const target = options.parent ? (s.overwrite?.target ?? s.target) : s.target;
  const name = s.outputName.trim() || "merged";
  const byName = new Map(s.models.map((m) => [m.name, m]));
  const mapping = mappingOf(s.recipe, s.models.map((m) => m.name), s.chosen);
  const models = (recipeName: string) => {
    const model = byName.get(mapping.map.get(recipeName) ?? recipeName);
    if (!model) throw new ModelError("E_MODEL_NOT_FOUND", `model "${recipeName}" is not loaded in the page`, { model: recipeName });
    return model.folder;
  };
  store.update({ run: "running", runError: [], overwrite: null, result: null, progress: 0, status: "Checking the models…", announcement: "" });
  const output = outputOpener({ ...options, target }, name);
  const open = (plan: MergePlan): Promise<DirectoryOutputFolder> => {
    // A `base+adapter` donor's files are its base's.
    const donorName = mapping.loras.get(plan.donor)?.base ?? plan.donor;
    const donor = byName.get(mapping.map.get(donorName) ?? donorName);
    // The donor's files the output takes (config, tokenizer, ...), not its weights (found by the stop 38 page
    // audit: counted, they doubled the space asked for and refused a merge that fit).
    const extra = donor ? [...donor.files].filter(([file]) => !isNotCopiedToOutput(file)).reduce((n, [, f]) => n + f.size, 0) : 0;
    return output.open(plan.tensors.reduce((n, t) => n + t.outputBytes, 0) + extra + 1e6);
  };

  const started = performance.now();
  let lastStatus = 0, halfway = false, tensors = "";
  let stage = "";
  const warnings: string[] = [];
  const onProgress = (e: MergeEvent) => {
    if (e.type === "warning") {
      warnings.push(e.message);
      return;
    }
    if (e.type === "stage") {
      // A multi-stage recipe: each stage's progress runs from 0 again, under its name.
      stage = `Stage ${e.index + 1} of ${e.stages}${e.name === undefined ? "" : ` (${e.name})`}: `;
      halfway = false;
      tensors = ""; // the last stage's count is not this one's (found by the stop 38 page audit)
      return;
    }
    if (e.type === "plan") {
      const text = `${stage}Merging ${e.tensors} tensors with ${e.workers} workers…`;
      store.update({ status: text, announcement: text });
      return;
    }
    if (e.type !== "progress" && e.type !== "tensor-done") return;
    const fraction = e.bytesTotal ? e.bytesDone / e.bytesTotal : 0;
    if (e.type === "tensor-done") tensors = `${e.tensorsDone}/${e.tensorsTotal} tensors · `;
    const patch: Parameters<Store["update"]>[0] = { progress: fraction };
    if (!halfway && fraction >= 0.5) {
      halfway = true;
      patch.announcement = "Halfway through the merge.";
    }
    const now = performance.now();
    if (now - lastStatus >= STATUS_EVERY_MS) {
      lastStatus = now;
      const seconds = (now - started) / 1000;
      const left = timeLeft(seconds, fraction);
      patch.status = `${stage}${tensors}${formatBytes(e.bytesDone)} of ${formatBytes(e.bytesTotal)} · ${formatBytes(e.bytesDone / Math.max(seconds, 1e-3))}/s${left === undefined ? "" : ` · ${formatSeconds(left)} left`}`;
    }
    store.update(patch);
  };

  try {
    const summary = await merge(s.recipe, {
      models, out: open, signal: options.signal, seed: Number(s.seed.trim() || 0), onProgress,
      ...(options.workers ? { workers: options.workers } : {}), ...(options.workerUrl ? { workerUrl: options.workerUrl } : {}),
    });
    const done = `Done: ${summary.method} merged ${summary.tensors} tensors (${formatBytes(summary.inputBytes)} read, ${formatBytes(summary.outputBytes)} written) in ${formatSeconds(summary.seconds)}.`;
    store.update({ progress: 1, status: done, result: { target, name, files: summary.files, ledger: summary.ledger, seconds: summary.seconds, ...(warnings.length ? { warnings } : {}) } });
    // The announcement and "done" last: a host page reacting to data-state finds the result listed.
    store.update({ announcement: `${done} Saved as “${name}”.`, run: "done" });
  } catch (e) {
    const failure = saveFailure(e, options.signal, name, target, output.parent());
    if ("cancelled" in failure) {
      store.update({ status: failure.cancelled, announcement: failure.cancelled, run: "cancelled" });
      return;
    }
    store.update({
      status: "The merge failed; nothing was saved.", announcement: "The merge failed; nothing was saved.",
      runError: failure.problems, overwrite: failure.overwrite, run: "error",
    });
  }
}
