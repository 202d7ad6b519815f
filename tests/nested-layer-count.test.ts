// Slices that change a multimodal model's text depth: config.json states the text decoder's layer count
// in a nested section (text_config, language_config, llm_config), sometimes also at the top level, and
// may keep per-layer lists there. The output's config.json must state the new depth wherever the input
// stated the old one for the text stack, rebuild those per-layer lists, and leave the vision tower's
// section alone, even where its numbers equal the old text depth. A passthrough over one model copies
// tensors, so the expected output is worked out by hand: text layer k is the source's layer SOURCES[k],
// every other tensor is the source's own.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { inspect, merge } from "../src/node";
import type { RefModel, RefTensor } from "./reference/merge";
import { CLI, compareTensor, readOutput, removeDir, tempDir, uniform, WORKER_URL, writeCase } from "./helpers/fixtures";

/** The vision tower is as deep as the text stack, so a count matched by value alone would be changed too. */
const TEXT_LAYERS = 3, VISION_LAYERS = 3, VOCAB = 32, HIDDEN = 8;
const TEXT = "language_model.model.layers", VISION = "vision_tower.encoder.layers";
/** Output text layer k comes from the source's layer SOURCES[k] (slices [0, 2] and [1, 3]). */
const SOURCES = [0, 1, 1, 2];
const RECIPE = {
  merge_method: "passthrough",
  slices: [{ sources: [{ model: "./vlm", layer_range: [0, 2] }] }, { sources: [{ model: "./vlm", layer_range: [1, 3] }] }],
};
const TEXT_TYPES = ["full_attention", "sliding_attention", "full_attention"];
const VISION_TYPES = ["global", "local", "global"];

function tensorShapes(): [string, number[]][] {
  const shapes: [string, number[]][] = [["language_model.model.embed_tokens.weight", [VOCAB, HIDDEN]]];
  for (let i = 0; i < TEXT_LAYERS; i++) {
    shapes.push([`${TEXT}.${i}.input_layernorm.weight`, [HIDDEN]], [`${TEXT}.${i}.self_attn.q_proj.weight`, [HIDDEN, HIDDEN]], [`${TEXT}.${i}.mlp.up_proj.weight`, [12, HIDDEN]]);
  }
  shapes.push(["language_model.model.norm.weight", [HIDDEN]], ["language_model.lm_head.weight", [VOCAB, HIDDEN]]);
  shapes.push(["vision_tower.embeddings.patch_embedding.weight", [HIDDEN, 12]]);
  for (let i = 0; i < VISION_LAYERS; i++) shapes.push([`${VISION}.${i}.layer_norm1.weight`, [HIDDEN]], [`${VISION}.${i}.mlp.fc1.weight`, [16, HIDDEN]]);
  shapes.push(["vision_tower.post_layernorm.weight", [HIDDEN]], ["multi_modal_projector.linear_1.weight", [HIDDEN, HIDDEN]]);
  return shapes;
}

function vlm(config: Record<string, unknown>): RefModel {
  const tensors = new Map<string, RefTensor>();
  tensorShapes().forEach(([name, shape], k) => {
    const values = new Float32Array(shape.reduce((p, d) => p * d, 1));
    for (let i = 0; i < values.length; i++) values[i] = uniform(500 + k, i) - 0.5;
    tensors.set(name, { dtype: "F32", shape, values });
  });
  return { config, tensors };
}

/** What the passthrough writes, by hand: text layers renumbered from SOURCES, everything else as it was. */
function expectedTensors(model: RefModel): Map<string, RefTensor> {
  const out = new Map<string, RefTensor>();
  for (const [name, t] of model.tensors) {
    const layer = name.startsWith(`${TEXT}.`) ? Number(name.slice(TEXT.length + 1).split(".")[0]) : undefined;
    if (layer === undefined) out.set(name, t);
    else SOURCES.forEach((from, k) => { if (from === layer) out.set(name.replace(`${TEXT}.${from}.`, `${TEXT}.${k}.`), t); });
  }
  return out;
}

const visionConfig = { model_type: "siglip_vision_model", num_hidden_layers: VISION_LAYERS, hidden_size: HIDDEN, layer_types: VISION_TYPES };

/** Llava-style: the text count only in text_config, with a per-layer list beside it. */
const LLAVA = {
  architectures: ["LlavaForConditionalGeneration"], model_type: "llava", image_token_index: 31,
  text_config: { model_type: "qwen2", num_hidden_layers: TEXT_LAYERS, hidden_size: HIDDEN, vocab_size: VOCAB, layer_types: TEXT_TYPES, max_window_layers: TEXT_LAYERS },
  vision_config: visionConfig,
};
/** InternVL-style: the count at the top level and in llm_config. */
const BOTH = {
  architectures: ["InternVLChatModel"], model_type: "internvl_chat", num_hidden_layers: TEXT_LAYERS,
  llm_config: { model_type: "qwen2", num_hidden_layers: TEXT_LAYERS, hidden_size: HIDDEN, vocab_size: VOCAB },
  vision_config: visionConfig,
};

let root: string;
let n = 0;
before(async () => { root = await tempDir("ws-nested-layers-"); });
after(async () => { await removeDir(root); });

async function checkOutput(out: string, model: RefModel): Promise<Record<string, unknown>> {
  const ours = await readOutput(out);
  const expected = expectedTensors(model);
  assert.deepEqual([...ours.tensors.keys()].sort(), [...expected.keys()].sort());
  for (const [name, t] of expected) assert.equal(compareTensor(ours.tensors.get(name)!, t).maxAbs, 0, name);
  // The output opens again, its config agreeing with its weights.
  assert.equal((await inspect(out)).layers, SOURCES.length);
  const text = await readFile(join(out, "config.json"), "utf8");
  const config = JSON.parse(text) as Record<string, unknown>;
  // The input was written with JSON.stringify(config, null, 2): edited values, nested ones too, keep its layout.
  assert.equal(text, JSON.stringify(config, null, 2) + "\n", `${out}: config.json keeps the input's indentation`);
  return config;
}

describe("slices that change a multimodal model's text depth", () => {
  test("text_config's count and per-layer list are rewritten, vision_config is left alone (library and CLI)", async () => {
    const dir = join(root, `llava-${n++}`);
    const model = vlm(LLAVA);
    const recipe = await writeCase(dir, { vlm: model }, RECIPE);
    await merge(recipe, { out: join(dir, "out-lib"), workerUrl: WORKER_URL });
    const r = spawnSync(process.execPath, [CLI, "merge", recipe, join(dir, "out-cli"), "--quiet"], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
    assert.equal(r.status, 0, r.stderr);
    for (const out of ["out-lib", "out-cli"]) {
      const config = await checkOutput(join(dir, out), model);
      const text = config.text_config as Record<string, unknown>;
      assert.equal(text.num_hidden_layers, SOURCES.length, out);
      assert.deepEqual(text.layer_types, SOURCES.map((l) => TEXT_TYPES[l]), out);
      assert.deepEqual(config.vision_config, visionConfig, out);
      assert.ok(!Object.hasOwn(config, "num_hidden_layers"), `${out}: no top-level count is added where the input had none`);
      assert.equal(text.max_window_layers, TEXT_LAYERS, `${out}: a number that only happens to equal the depth is not a layer count`);
    }
  });

  test("a count stated both at the top level and in llm_config is rewritten in both", async () => {
    const dir = join(root, `both-${n++}`);
    const model = vlm(BOTH);
    await merge(await writeCase(dir, { vlm: model }, RECIPE), { out: join(dir, "out"), workerUrl: WORKER_URL });
    const config = await checkOutput(join(dir, "out"), model);
    assert.equal(config.num_hidden_layers, SOURCES.length);
    assert.equal((config.llm_config as Record<string, unknown>).num_hidden_layers, SOURCES.length);
    assert.deepEqual(config.vision_config, visionConfig);
  });
});
