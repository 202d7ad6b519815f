// NaN and infinite values in a merged tensor that the method did not spread to every element: carried
// element by element from an input's own NaN or infinity (a linear merge, task arithmetic), or a finite
// value beyond the output dtype's range. They are written as mergekit writes them, and each such tensor
// is a warning naming how many values and which inputs hold some. Checked against counts taken from the
// written files themselves and a scalar classification of the bits (the kernel's scan against it too),
// for a merge in this thread, one on workers, and one in chunks across workers.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { join } from "node:path";
import { DTYPE_BF16, DTYPE_F16, DTYPE_F32, DTYPE_F64, DTYPE_NONE } from "../assembly/layout";
import { loadKernels } from "../src/kernels/kernels";
import { merge } from "../src/node";
import { baseModel, fineTune, readOutput, removeDir, tempDir, uniform, writeCase, WORKER_URL, type Shape } from "./helpers/fixtures";
import type { RefModel } from "./reference/merge";

/** A scalar reading of the format: NaN or infinite when every exponent bit is set. */
function nonFiniteBits(bits: bigint, dtype: "F32" | "F16" | "BF16" | "F64"): boolean {
  const exponent = { F32: 0x7f800000n, F16: 0x7c00n, BF16: 0x7f80n, F64: 0x7ff0000000000000n }[dtype];
  return (bits & exponent) === exponent;
}

test("the kernel's count of NaN and infinite elements matches a scalar reading of the bits, for every float dtype and length", async () => {
  const k = await loadKernels(64 * 2 ** 20);
  const codes = { F32: DTYPE_F32, F16: DTYPE_F16, BF16: DTYPE_BF16, F64: DTYPE_F64 } as const;
  const widths = { F32: 4, F16: 2, BF16: 2, F64: 8 } as const;
  for (const dtype of ["F32", "F16", "BF16", "F64"] as const) {
    const width = widths[dtype];
    for (const n of [0, 1, 3, 7, 8, 9, 15, 16, 17, 33, 4099, 70001]) {
      const ptr = k.arena.alloc(n * width + 16);
      const view = k.arena.view();
      let expected = 0;
      for (let i = 0; i < n; i++) {
        // Random bits, with every exponent bit forced on for about one element in five (NaN payloads, both
        // infinities) and, as often, all but one (the largest finite values, which must not count).
        const u = uniform(n * 31 + width, i), r = BigInt(Math.floor(uniform(n * 17 + width, i) * 2 ** 32)) | (BigInt(Math.floor(uniform(n * 13, i) * 2 ** 32)) << 32n);
        const bits = width === 8 ? r & 0xffffffffffffffffn : width === 4 ? r & 0xffffffffn : r & 0xffffn;
        const exponent = { F32: 0x7f800000n, F16: 0x7c00n, BF16: 0x7f80n, F64: 0x7ff0000000000000n }[dtype];
        const lowest = exponent & -exponent;
        const value = u < 0.2 ? bits | exponent : u < 0.4 ? (bits | exponent) & ~lowest : bits;
        if (nonFiniteBits(value, dtype)) expected++;
        if (width === 8) view.setBigUint64(ptr + 8 * i, value, true);
        else if (width === 4) view.setUint32(ptr + 4 * i, Number(value), true);
        else view.setUint16(ptr + 2 * i, Number(value), true);
      }
      assert.equal(k.exports.countNonFinite(ptr, codes[dtype], n), expected, `${dtype}, ${n} elements`);
      k.arena.reset();
    }
  }
  // Integer tensors (no dtype code) hold no NaN.
  const ptr = k.arena.alloc(64);
  k.arena.u8(ptr, 64).fill(0xff);
  assert.equal(k.exports.countNonFinite(ptr, DTYPE_NONE, 16), 0);
});

/** `model` with the given values of one tensor replaced. */
function planted(model: RefModel, tensor: string, values: Record<number, number>): RefModel {
  const tensors = new Map(model.tensors);
  const t = tensors.get(tensor)!;
  const copy = t.values!.slice();
  for (const [i, v] of Object.entries(values)) copy[Number(i)] = v;
  tensors.set(tensor, { ...t, values: copy });
  return { ...model, tensors };
}

/** The written tensors' NaN and infinite values, counted from the file. */
async function nonFiniteInOutput(out: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const [name, t] of (await readOutput(out)).tensors) {
    const width = t.dtype === "F32" ? 4 : t.dtype === "F16" || t.dtype === "BF16" ? 2 : 0;
    if (!width) continue;
    const view = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    let n = 0;
    for (let i = 0; i < t.data.byteLength / width; i++) {
      if (nonFiniteBits(BigInt(width === 4 ? view.getUint32(4 * i, true) : view.getUint16(2 * i, true)), t.dtype as "F32" | "F16" | "BF16")) n++;
    }
    if (n) counts.set(name, n);
  }
  return counts;
}

async function mergeWarnings(recipe: string, out: string, options: Record<string, unknown>): Promise<string[]> {
  const warnings: string[] = [];
  await merge(recipe, { out, workerUrl: WORKER_URL, ...options, onProgress: (e) => { if (e.type === "warning") warnings.push(e.message); } });
  return warnings;
}

describe("a merged tensor with NaN or infinite values is written as it is and warned of", () => {
  let root: string;
  before(async () => { root = await tempDir("ws-nonfinite-"); });
  after(async () => removeDir(root));

  const X = "model.layers.1.mlp.down_proj.weight", Y = "model.layers.0.self_attn.q_proj.weight";
  for (const [where, options] of [["in this thread", {}], ["on workers", { workers: 2 }]] as const) {
    test(`linear and task_arithmetic, ${where}: each tensor's count and the models that hold them`, async () => {
      const base = baseModel(3);
      const a = planted(fineTune(base, 4, 0.1), X, { 3: NaN, 7: Infinity }), b = planted(fineTune(base, 5, 0.1), Y, { 2: -Infinity });
      for (const method of ["linear", "task_arithmetic"]) {
        const dir = join(root, `${method}-${where.replace(/ /g, "-")}`);
        const recipe = await writeCase(dir, { base, a, b }, {
          merge_method: method, ...(method === "linear" ? {} : { base_model: "./base" }),
          models: [...(method === "linear" ? [{ model: "./base", parameters: { weight: 0.5 } }] : []), { model: "./a", parameters: { weight: 0.3 } }, { model: "./b", parameters: { weight: 0.2 } }],
        });
        const warnings = await mergeWarnings(recipe, join(dir, "out"), options);
        const written = await nonFiniteInOutput(join(dir, "out"));
        assert.deepEqual([...written].sort(), [[X, 2], [Y, 1]].sort(), "the planted values are carried to the same positions, and only there");
        assert.equal(warnings.length, 2, warnings.join("\n"));
        const numel = (name: string) => base.tensors.get(name)!.shape.reduce((p, d) => p * d, 1);
        const forX = warnings.find((w) => w.startsWith(`${X}:`)), forY = warnings.find((w) => w.startsWith(`${Y}:`));
        assert.match(forX ?? "", new RegExp(`^${X.replaceAll(".", "\\.")}: 2 of ${numel(X)} merged values are NaN or infinite, carried from NaN or infinite values in \\S*/a/model\\.safetensors \\(tensor ${X.replaceAll(".", "\\.")}\\);`));
        assert.match(forY ?? "", new RegExp(`^${Y.replaceAll(".", "\\.")}: 1 of ${numel(Y)} merged values are NaN or infinite, carried from NaN or infinite values in \\S*/b/model\\.safetensors \\(tensor ${Y.replaceAll(".", "\\.")}\\);`));
        assert.doesNotMatch(forX!, /\/b\/|\/base\//, "only the model holding them is named");
      }
    });
  }

  test("a tensor merged in chunks across workers: one warning, the chunks' counts added, every model holding some named", async () => {
    const shape: Shape = { vocab: 256, hidden: 40, intermediate: 256, layers: 1, heads: 4, kvHeads: 2 };
    const Z = "model.embed_tokens.weight"; // 10240 elements: three chunks of 4096
    const base = baseModel(7, "BF16", shape);
    const a = planted(fineTune(base, 8, 0.05), Z, { 10: NaN, 5000: -Infinity }), b = planted(fineTune(base, 9, 0.05), Z, { 9000: Infinity, 10: NaN });
    const dir = join(root, "chunked");
    const recipe = await writeCase(dir, { base, a, b }, { merge_method: "linear", models: [{ model: "./a", parameters: { weight: 1 } }, { model: "./b", parameters: { weight: 1 } }] });
    const warnings = await mergeWarnings(recipe, join(dir, "out"), { workers: 2, chunkElements: 4096 });
    assert.deepEqual([...(await nonFiniteInOutput(join(dir, "out")))], [[Z, 3]]);
    assert.equal(warnings.length, 1, warnings.join("\n"));
    assert.match(warnings[0]!, /^model\.embed_tokens\.weight: 3 of 10240 merged values are NaN or infinite, carried from NaN or infinite values in \S*\/a\/model\.safetensors \(tensor model\.embed_tokens\.weight\), \S*\/b\/model\.safetensors/);
  });

  test("finite inputs whose merge overflows the output dtype: the warning says no input holds any", async () => {
    const base = baseModel(11);
    const a = planted(fineTune(base, 12, 0.1), X, { 0: 70000, 1: -1e6, 2: 65504 }); // float16's largest finite value is 65504
    const dir = join(root, "overflow");
    const recipe = await writeCase(dir, { base, a }, { merge_method: "linear", dtype: "float16", models: [{ model: "./a", parameters: { weight: 1 } }] });
    const warnings = await mergeWarnings(recipe, join(dir, "out"), {});
    assert.deepEqual([...(await nonFiniteInOutput(join(dir, "out")))], [[X, 2]]);
    assert.equal(warnings.length, 1, warnings.join("\n"));
    assert.match(warnings[0]!, new RegExp(`^${X.replaceAll(".", "\\.")}: 2 of \\d+ merged values are NaN or infinite, and no input holds any there: the merged values overflow the output's F16`));
  });

  test("finite inputs give no warning", async () => {
    const base = baseModel(13);
    const dir = join(root, "finite");
    const recipe = await writeCase(dir, { base, a: fineTune(base, 14, 0.1), b: fineTune(base, 15, 0.1) }, { merge_method: "ties", base_model: "./base", models: [{ model: "./a", parameters: { weight: 1, density: 0.5 } }, { model: "./b", parameters: { weight: 1, density: 0.5 } }] });
    assert.deepEqual(await mergeWarnings(recipe, join(dir, "out"), { workers: 2 }), []);
  });
});
