/** Text helpers shared by the SVG and HTML renderers: escaping and locale-free number formatting. */

const XML_ESCAPES: Record<string, string> = Object.assign(Object.create(null) as Record<string, string>, {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
});

/**
 * Text safe in XML/HTML content and in quoted attributes. Control characters other than tab and newline
 * are not allowed in XML 1.0 at all, so they become U+FFFD rather than an invalid document.
 */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => XML_ESCAPES[c]!).replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, "\ufffd");
}

/** A coordinate with at most 2 decimals and no "-0" (stable bytes, small files). */
export function coord(x: number): string {
  const r = Math.round(x * 100) / 100;
  return Object.is(r, -0) ? "0" : String(r);
}

/**
 * A value for a label: up to `digits` significant digits, exponent form for very large/small magnitudes.
 * toPrecision is specified exactly by ECMAScript (no locale), so the text is the same everywhere.
 */
export function formatValue(x: number, digits = 4): string {
  if (Number.isNaN(x)) return "NaN";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  if (x === 0) return "0";
  const a = Math.abs(x);
  if (a >= 1e6 || a < 1e-4) return x.toExponential(Math.max(0, digits - 2)).replace(/\.?0+e/, "e");
  const s = x.toPrecision(digits);
  return s.includes(".") ? s.replace(/\.?0+$/, "") : s;
}
