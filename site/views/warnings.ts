/**
 * @file A run's warnings (a token no model has, a tensor merged NaN throughout because an input is
 * NaN or infinite, ...), as the CLI prints them: at most 200 listed, then how many more.
 */
import { h, replace } from "../ui/dom";

const SHOWN = 200;

/** The list, with test ids `${prefix}-warnings` (the box) and `${prefix}-warning` (each one). */
export function warningsList(prefix: string, warnings: readonly string[]): HTMLElement {
  const shown = warnings.slice(0, SHOWN);
  return h("div", { "data-testid": `${prefix}-warnings` },
    h("p", {}, `${warnings.length === 1 ? "A warning" : `${warnings.length} warnings`}:`),
    h("ul", { class: "warnings" }, ...shown.map((w) => h("li", { class: "warning", "data-testid": `${prefix}-warning` }, `⚠ ${w}`))),
    ...(warnings.length > shown.length ? [h("p", {}, `and ${warnings.length - shown.length} more`)] : []));
}

/** A run's box of warnings: hidden while there are none, redrawn only when the run's list changed. */
export function warningsBox(prefix: string): { el: HTMLDivElement; show(warnings: readonly string[] | undefined): void } {
  const el = h("div", { class: "run-warnings", hidden: true });
  let shown: readonly string[] | undefined;
  return {
    el,
    show(warnings) {
      if (shown === warnings) return;
      shown = warnings;
      if (warnings?.length) replace(el, warningsList(prefix, warnings));
      else replace(el);
      el.hidden = !warnings?.length;
    },
  };
}
