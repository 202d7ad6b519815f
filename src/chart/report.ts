/**
 * A self-contained HTML report: inline CSS, SVGs inline, every text escaped, nothing fetched. Meant to be
 * linked from a merge's model card or opened from disk offline.
 */
import type { ReportSpec } from "./spec";
import { escapeXml } from "./text";

export type { ReportSection, ReportSpec } from "./spec";

const CSS = `body{font:15px/1.5 system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222;background:#fff}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}
p{white-space:pre-wrap}table{border-collapse:collapse;font-size:13px;margin:0.5em 0}
th,td{border:1px solid #ddd;padding:2px 8px;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f4f4f4}figure{margin:0.5em 0;overflow-x:auto}`;

/** Numbers print as JavaScript's shortest round-trip form (exact, locale-free). */
function cell(v: string | number): string {
  return typeof v === "number" ? `<td class="n">${escapeXml(String(v))}</td>` : `<td>${escapeXml(v)}</td>`;
}

/**
 * The SVG is trusted chart output (from ./svg); only the XML declaration is dropped because it is not
 * allowed inside HTML.
 */
function inlineSvg(svg: string): string {
  return svg.replace(/^\s*<\?xml[^>]*\?>\s*/, "");
}

export function htmlReport(spec: ReportSpec): string {
  const out = [
    `<!DOCTYPE html>`,
    `<html lang="en">`,
    `<head>`,
    `<meta charset="utf-8">`,
    `<meta name="viewport" content="width=device-width, initial-scale=1">`,
    `<title>${escapeXml(spec.title)}</title>`,
    `<style>${CSS}</style>`,
    `</head>`,
    `<body>`,
    `<h1>${escapeXml(spec.title)}</h1>`,
  ];
  for (const s of spec.sections) {
    out.push(`<section>`, `<h2>${escapeXml(s.heading)}</h2>`);
    if (s.text !== undefined) out.push(`<p>${escapeXml(s.text)}</p>`);
    if (s.table) {
      out.push(`<table>`, `<thead><tr>${s.table.columns.map((c) => `<th>${escapeXml(c)}</th>`).join("")}</tr></thead>`, `<tbody>`);
      for (const row of s.table.rows) out.push(`<tr>${row.map(cell).join("")}</tr>`);
      out.push(`</tbody>`, `</table>`);
    }
    if (s.svg !== undefined) out.push(`<figure>${inlineSvg(s.svg)}</figure>`);
    out.push(`</section>`);
  }
  out.push(`</body>`, `</html>`);
  return out.join("\n") + "\n";
}
