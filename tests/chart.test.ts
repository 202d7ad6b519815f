// The chart module (src/chart/): SVG line charts and heatmaps, the terminal chart and the HTML report.
// Checked with a strict XML well-formedness scanner written here, hand-worked coordinates and colours,
// byte-for-byte determinism, escaping of hostile labels, NaN cells and gaps, one and many series, and
// constant series (a zero-width range must not produce NaN coordinates).
import assert from "node:assert/strict";
import { test } from "node:test";
import { htmlReport } from "../src/chart/report";
import { heatmapSvg, lineChartSvg, type HeatmapSpec, type LineChartSpec } from "../src/chart/svg";
import { lineChartText } from "../src/chart/terminal";

const HOSTILE = `<script>alert("x")</script> & 'quotes' ]]> \u0001`;

/**
 * Throws unless `text` is one well-formed XML element (optionally preceded by a doctype when `html`):
 * balanced tags, quoted attributes without raw < or &, text without raw <, only known or numeric
 * entities, no control characters XML 1.0 forbids. Returns the element names in document order.
 */
function checkWellFormed(text: string, html = false): string[] {
  let body = text;
  if (html) {
    assert.ok(body.startsWith("<!DOCTYPE html>"), "doctype first");
    body = body.slice("<!DOCTYPE html>".length);
  }
  assert.doesNotMatch(body, /[\u0000-\u0008\u000b\u000c\u000e-\u001f]/, "no forbidden control characters");
  const checkEntities = (s: string, where: string) => {
    for (const m of s.matchAll(/&([^;\s]*);?/g)) {
      assert.match(m[0], /^&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);$/i, `bad entity ${JSON.stringify(m[0])} in ${where}`);
    }
  };
  const names: string[] = [];
  const stack: string[] = [];
  let roots = 0;
  let i = 0;
  const voidHtml = new Set(["meta", "br", "img", "link"]);
  while (i < body.length) {
    const lt = body.indexOf("<", i);
    const textPart = lt < 0 ? body.slice(i) : body.slice(i, lt);
    if (stack.length === 0) assert.match(textPart, /^\s*$/, "no text outside the root");
    checkEntities(textPart, "text");
    if (lt < 0) break;
    const gt = body.indexOf(">", lt);
    assert.ok(gt > lt, "unterminated tag");
    const tag = body.slice(lt + 1, gt);
    assert.ok(!tag.includes("<"), `raw < inside tag ${tag}`);
    if (tag.startsWith("/")) {
      const name = tag.slice(1).trim();
      assert.equal(stack.pop(), name, `closing </${name}> matches`);
    } else {
      const m = /^([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)$/.exec(tag);
      assert.ok(m, `malformed tag <${tag}>`);
      checkEntities(m[2]!, `attributes of <${m[1]}>`);
      const attrNames = [...m[2]!.matchAll(/([\w:-]+)=/g)].map((a) => a[1]);
      assert.equal(new Set(attrNames).size, attrNames.length, `duplicate attribute in <${tag}>`);
      names.push(m[1]!);
      if (stack.length === 0) roots++;
      if (m[3] !== "/" && !(html && voidHtml.has(m[1]!))) stack.push(m[1]!);
    }
    i = gt + 1;
  }
  assert.equal(stack.length, 0, `unclosed: ${stack.join(",")}`);
  assert.equal(roots, 1, "exactly one root element");
  return names;
}

const num = (attr: string, el: string) => Number(new RegExp(`\\b${attr}="([^"]+)"`).exec(el)![1]);
const circles = (svg: string) => [...svg.matchAll(/<circle [^>]*>/g)].map((m) => [num("cx", m[0]), num("cy", m[0])] as const);
const cellRects = (svg: string) => [...svg.matchAll(/<rect [^>]*><title>([^<]*)<\/title><\/rect>/g)].map((m) => ({ el: m[0], tip: m[1]! }));

const twoSeries: LineChartSpec = {
  title: "Loss along the path",
  xLabel: "λ",
  yLabel: "NLL",
  series: [
    { name: "linear", points: [[0, 2], [0.5, 3], [1, 2.5]] },
    { name: "slerp", points: [[0, 2], [0.5, 2.25], [1, 2.5]] },
  ],
  markers: [{ x: 0.5, label: "mid" }],
};

test("line chart SVG: well-formed, one <svg> root, points at hand-worked coordinates", () => {
  const svg = lineChartSvg(twoSeries);
  const names = checkWellFormed(svg);
  assert.equal(names[0], "svg");
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  // Plot box: x 72..696, y 36 (top) .. 356 (bottom); x range [0, 1], y range [2, 3].
  assert.deepEqual(circles(svg), [
    [72, 356], [384, 36], [696, 196],
    [72, 356], [384, 276], [696, 196],
  ]);
  assert.equal((svg.match(/<path /g) ?? []).length, 2, "one path per series");
  assert.match(svg, /stroke-dasharray="4 3"/, "marker drawn");
  assert.match(svg, />mid</);
  // Self-contained: no scripts, no external references, no ids to clash when inlined together.
  assert.doesNotMatch(svg, /<script|href=|url\(|@import|\sid=/i);
});

test("line chart SVG: one series has no legend, many series have one entry each", () => {
  const one = lineChartSvg({ ...twoSeries, series: [twoSeries.series[0]!], markers: [] });
  checkWellFormed(one);
  assert.equal((one.match(/<path /g) ?? []).length, 1);
  assert.doesNotMatch(one, />linear<\/text>/, "no legend text for a single series");
  const many = lineChartSvg({
    ...twoSeries,
    series: Array.from({ length: 10 }, (_, k) => ({ name: `s${k}`, points: [[0, k], [1, k + 1]] as [number, number][] })),
  });
  checkWellFormed(many);
  assert.equal((many.match(/<path /g) ?? []).length, 10);
  for (let k = 0; k < 10; k++) assert.match(many, new RegExp(`>s${k}</text>`));
});

test("line chart SVG: a constant series and a single point give finite coordinates, centred vertically", () => {
  const svg = lineChartSvg({ title: "c", xLabel: "x", yLabel: "y", series: [{ name: "flat", points: [[0, 5], [1, 5], [2, 5]] }] });
  checkWellFormed(svg);
  assert.doesNotMatch(svg, /NaN|Infinity/);
  const cs = circles(svg);
  assert.equal(cs.length, 3);
  for (const [, y] of cs) assert.equal(y, 196, "midway between 36 and 356");
  const single = lineChartSvg({ title: "p", xLabel: "x", yLabel: "y", series: [{ name: "p", points: [[3, 3]] }] });
  checkWellFormed(single);
  assert.doesNotMatch(single, /NaN|Infinity/);
  assert.deepEqual(circles(single), [[384, 196]]);
  const empty = lineChartSvg({ title: "e", xLabel: "x", yLabel: "y", series: [] });
  checkWellFormed(empty);
  assert.doesNotMatch(empty, /NaN|Infinity/);
});

test("line chart SVG: non-finite points are gaps that split the line", () => {
  const svg = lineChartSvg({
    title: "gaps",
    xLabel: "x",
    yLabel: "y",
    series: [{ name: "g", points: [[0, 0], [1, 1], [2, NaN], [3, 1], [4, Infinity], [5, 0]] }],
  });
  checkWellFormed(svg);
  assert.doesNotMatch(svg, /NaN|Infinity/);
  assert.equal(circles(svg).length, 4);
  const d = /<path d="([^"]+)"/.exec(svg)![1]!;
  assert.equal((d.match(/M/g) ?? []).length, 3, "three runs: [0,1], [3], [5]");
});

test("SVG and HTML escape every label; forbidden control characters never reach the output", () => {
  const line = lineChartSvg({
    title: HOSTILE,
    xLabel: HOSTILE,
    yLabel: HOSTILE,
    series: [{ name: HOSTILE, points: [[0, 1]] }, { name: "b", points: [[1, 2]] }],
    markers: [{ x: 0, label: HOSTILE }],
  });
  const heat = heatmapSvg({ title: HOSTILE, rowLabels: [HOSTILE], colLabels: [HOSTILE], values: [[1]], valueLabel: HOSTILE });
  const html = htmlReport({
    title: HOSTILE,
    sections: [{ heading: HOSTILE, text: HOSTILE, table: { columns: [HOSTILE], rows: [[HOSTILE], [1.5]] }, svg: heat }],
  });
  for (const [text, isHtml] of [[line, false], [heat, false], [html, true]] as const) {
    checkWellFormed(text, isHtml);
    assert.doesNotMatch(text, /<script/);
    assert.match(text, /&lt;script&gt;alert\(&quot;x&quot;\)&lt;\/script&gt; &amp; &#39;quotes&#39; \]\]&gt; \ufffd/);
  }
});

test("charts are deterministic: equal specs give identical bytes", () => {
  const copy = JSON.parse(JSON.stringify(twoSeries)) as LineChartSpec;
  assert.equal(lineChartSvg(twoSeries), lineChartSvg(copy));
  const heat: HeatmapSpec = { title: "h", rowLabels: ["0", "1"], colLabels: ["a", "b"], values: [[0.1, NaN], [0.3, 0.7]], valueLabel: "v" };
  assert.equal(heatmapSvg(heat), heatmapSvg({ ...heat, values: heat.values.map((r) => [...r]) }));
  assert.equal(lineChartText(twoSeries), lineChartText(copy));
  const rep = { title: "r", sections: [{ heading: "h", svg: heatmapSvg(heat), table: { columns: ["a"], rows: [[1]] } }] };
  assert.equal(htmlReport(rep), htmlReport(structuredClone(rep)));
});

test("heatmap SVG: one cell per finite value, NaN and missing entries are no cell, colours at the scale ends", () => {
  const spec: HeatmapSpec = {
    title: "Sign conflict",
    rowLabels: ["layer 0", "layer 1", "layer 2"],
    colLabels: ["q_proj", "k_proj"],
    values: [[0, NaN], [0.25, 1], [NaN]],
    valueLabel: "fraction of mass",
  };
  const svg = heatmapSvg(spec);
  checkWellFormed(svg);
  const cells = cellRects(svg);
  assert.deepEqual(cells.map((c) => c.tip), ["layer 0 · q_proj: 0", "layer 1 · q_proj: 0.25", "layer 1 · k_proj: 1"]);
  // Range [0, 1] from the data: 0 is the ramp's light end (viridis yellow), 1 its dark end (viridis purple).
  assert.match(cells[0]!.el, /fill="#fde725"/);
  assert.match(cells[2]!.el, /fill="#440154"/);
  // 0.25 lies 1.25 stops into the 6-stop ramp: a quarter of the way from #7ad151 to #22a884.
  const mix = (a: number, b: number) => Math.round(a + (b - a) * 0.25).toString(16).padStart(2, "0");
  assert.match(cells[1]!.el, new RegExp(`fill="#${mix(0x7a, 0x22)}${mix(0xd1, 0xa8)}${mix(0x51, 0x84)}"`));
  // Cells are laid out on the grid: same row → same y, next column → x + cell size.
  assert.equal(num("y", cells[1]!.el), num("y", cells[2]!.el));
  assert.equal(num("x", cells[2]!.el) - num("x", cells[1]!.el), num("width", cells[1]!.el));
  assert.equal(num("x", cells[0]!.el), num("x", cells[1]!.el));
});

test("heatmap SVG: explicit min/max clamp the scale; a constant or all-NaN grid stays finite", () => {
  const clamped = heatmapSvg({ title: "t", rowLabels: ["r"], colLabels: ["a", "b"], values: [[-5, 5]], valueLabel: "v", min: 0, max: 1 });
  const [lo, hi] = cellRects(clamped);
  assert.match(lo!.el, /fill="#fde725"/);
  assert.match(hi!.el, /fill="#440154"/);
  const constant = heatmapSvg({ title: "t", rowLabels: ["r"], colLabels: ["a", "b"], values: [[0.4, 0.4]], valueLabel: "v" });
  checkWellFormed(constant);
  assert.doesNotMatch(constant, /NaN|Infinity/);
  assert.equal(cellRects(constant).length, 2);
  const none = heatmapSvg({ title: "t", rowLabels: ["r"], colLabels: ["a"], values: [[NaN]], valueLabel: "v" });
  checkWellFormed(none);
  assert.equal(cellRects(none).length, 0);
  assert.doesNotMatch(none.replace(/>NaN</g, ""), /NaN|Infinity/);
});

test("terminal chart: fixed size grid, glyphs at hand-worked cells, gaps, constant series, legend", () => {
  const spec: LineChartSpec = { title: "T", xLabel: "x", yLabel: "y", series: [{ name: "up", points: [[0, 0], [1, 1]] }] };
  const lines = lineChartText(spec, 11, 5).split("\n");
  assert.equal(lines[0], "T");
  const grid = lines.slice(1, 6);
  assert.equal(grid.length, 5);
  const body = (r: number) => grid[r]!.slice(grid[r]!.indexOf("|") + 1);
  // From cell (col 0, row 4) to (10, 0): the join visits every column k at row round(4 - 0.4k).
  assert.equal(body(0), " ".repeat(9) + ".*", "top-right: (1, 1)");
  assert.equal(body(1), "       ..");
  assert.equal(body(2), "    ...", "the join passes through the middle cells");
  assert.equal(body(3), "  ..");
  assert.equal(body(4), "*.", "bottom-left: (0, 0)");
  assert.match(lines[6]!, /\+-{11}$/);
  assert.doesNotMatch(lineChartText(spec, 11, 5), /NaN|Infinity|up/, "no legend for one series");

  const flat = lineChartText({ ...spec, series: [{ name: "f", points: [[0, 3], [1, 3], [2, NaN], [3, 3]] }] }, 16, 7);
  assert.doesNotMatch(flat, /NaN|Infinity/);
  const rows = flat.split("\n").slice(1, 8);
  assert.equal(rows.filter((r) => r.includes("*")).length, 1, "a constant series sits on one row");
  assert.equal((rows[3]!.match(/\*/g) ?? []).length, 3, "on the middle row, one glyph per finite point");

  const two = lineChartText(twoSeries);
  assert.match(two, /\* linear {3}o slerp/);
  assert.match(two, /: mid at x = 0\.5/);
  for (const l of two.split("\n").slice(1, 17)) assert.ok(l.length <= 64 + 8, "rows stay within width + gutter");
});

test("HTML report: self-contained, sections in order, table cells typed, SVG inline", () => {
  const svg = lineChartSvg(twoSeries);
  const html = htmlReport({
    title: "Diagnosis",
    sections: [
      { heading: "Summary", text: "layers 1-2 conflict most" },
      { heading: "Table", table: { columns: ["tensor", "cosine"], rows: [["a.weight", 0.5], ["b.weight", -1e-7]] } },
      { heading: "Chart", svg },
    ],
  });
  const names = checkWellFormed(html, true);
  assert.equal(names[0], "html");
  assert.doesNotMatch(html, /<script|<link|src=|href=|@import|url\(/i);
  assert.ok(html.indexOf(">Summary<") < html.indexOf(">Table<") && html.indexOf(">Table<") < html.indexOf(">Chart<"));
  assert.match(html, /<td>a\.weight<\/td><td class="n">0\.5<\/td>/);
  assert.match(html, /<td class="n">-1e-7<\/td>/);
  assert.ok(html.includes(svg.trim()), "the SVG text appears verbatim");
  assert.match(html, /<meta charset="utf-8">/);
});

test("the well-formedness scanner used above rejects broken XML", () => {
  for (const bad of [`<svg><g></svg>`, `<svg>a & b</svg>`, `<svg a="<"/>`, `<svg a=1/>`, `<svg/><svg/>`, `<svg>\u0001</svg>`, `<svg a="1" a="2"/>`]) {
    assert.throws(() => checkWellFormed(bad), assert.AssertionError, bad);
  }
  assert.deepEqual(checkWellFormed(`<svg><g a="&amp;"/>x &lt; y</svg>`), ["svg", "g"]);
});
