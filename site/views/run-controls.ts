/**
 * @file The controls every measuring panel (Evaluate, Diagnose, Loss path, Sweep, Greedy soup) shares:
 * its Run and Cancel buttons, the line saying why Run is blocked, a progress bar, a status line, a
 * screen-reader announcement, the problem box and the run's warnings, with test ids `${prefix}-run`,
 * `${prefix}-cancel`, ...
 */
import type { Problem } from "../ui/recipe-check";
import { h, replace } from "../ui/dom";
import { renderProblems } from "./problems";
import { warningsBox } from "./warnings";

export interface RunControls {
  run: HTMLButtonElement;
  cancel: HTMLButtonElement;
  blocked: HTMLParagraphElement;
  progress: HTMLProgressElement;
  status: HTMLParagraphElement;
  announce: HTMLParagraphElement;
  error: HTMLDivElement;
  /** What the run warned about (a recipe's tensor merged NaN throughout, ...), listed as it is heard. */
  warnings: HTMLDivElement;
  /** Run is enabled only when nothing blocks it (`why` is "") and nothing runs; Cancel only while running. */
  gate(why: string, running: boolean, cancellable?: boolean): void;
  /** Shows a run's progress, status and announcement, and its problems and warnings when they changed. */
  show(run: { progress: number; status: string; announcement: string; problems: readonly Problem[]; warnings?: readonly string[] }): void;
}

export function runControls(prefix: string, labels: { run: string; progress: string }, actions: { run(): void; cancel(): void }): RunControls {
  const run = h("button", { type: "button", class: "primary", "data-testid": `${prefix}-run`, "aria-describedby": `${prefix}-blocked` }, labels.run);
  run.addEventListener("click", () => actions.run());
  const cancel = h("button", { type: "button", "data-testid": `${prefix}-cancel`, disabled: true }, "Cancel");
  cancel.addEventListener("click", () => actions.cancel());
  const blocked = h("p", { class: "blocked", id: `${prefix}-blocked`, "data-testid": `${prefix}-blocked`, hidden: true });
  const progress = h("progress", { "data-testid": `${prefix}-progress`, max: 1, value: 0, "aria-label": labels.progress });
  const status = h("p", { class: "status", "data-testid": `${prefix}-status` });
  const announce = h("p", { class: "visually-hidden", role: "status", "data-testid": `${prefix}-announce` });
  const error = h("div", { class: "problem-box", "data-testid": `${prefix}-error`, role: "alert", hidden: true });
  const warnings = warningsBox(prefix);
  let shownProblems: readonly Problem[] = [];
  return {
    run, cancel, blocked, progress, status, announce, error, warnings: warnings.el,
    gate(why, running, cancellable = running) {
      run.disabled = why !== "" || running;
      cancel.disabled = !cancellable;
      if (blocked.textContent !== why) blocked.textContent = why;
      blocked.hidden = why === "";
    },
    show(r) {
      progress.value = r.progress;
      if (status.textContent !== r.status) status.textContent = r.status;
      if (announce.textContent !== r.announcement) announce.textContent = r.announcement;
      if (shownProblems !== r.problems) {
        if (r.problems.length) replace(error, renderProblems(r.problems));
        else replace(error);
        error.hidden = r.problems.length === 0;
        shownProblems = r.problems;
      }
      warnings.show(r.warnings);
    },
  };
}
