// Evaluation and generation bugs the fuzz suite found (tests/fuzz.test.ts, the evaluation property),
// each pinned by the smallest case that showed it, checked against the independent reference
// (tests/reference/decoder.ts) or the rule it broke.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { evaluate, generate, greedySoup, logits, lossPath } from "../src/node";
import { ropeFrequencies } from "../src/eval/rope";
import { statesThatFit } from "../src/eval/engine";
import { writeLlamaModel } from "../src/example/models";
import { SESSION_FIXED_BYTES } from "../src/eval/session";
import type { DecoderSource } from "../src/eval/sources";
import { evaluate as evaluateSubjects } from "../src/api/evaluate";
import type { ModelFolder } from "../src/io/folder";
import { NodeFolder } from "../src/io/node-folder";
import { WeightsoupError } from "../src/errors";
import { removeDir, tempDir, WORKER_URL } from "./helpers/fixtures";
import { decoderModel, writeDecoderModel, type DecoderVariant } from "./helpers/decoder-models";
import { referenceEvaluation } from "./reference/decoder";

const IDS = [3, 14, 15, 92, 65, 35];

/** evaluate must reject with `code`, naming every string of `mentions`. */
async function refused(dir: string, code: string, mentions: string[]): Promise<void> {
  await assert.rejects(evaluate([dir], { ids: IDS, workers: 1, workerUrl: WORKER_URL }), (e: unknown) => {
    assert.ok(e instanceof WeightsoupError, String(e));
    assert.equal(e.code, code, e.message);
    for (const m of mentions) assert.ok(e.message.includes(m), `${m} in: ${e.message}`);
    return true;
  });
}

let root: string;
before(async () => { root = await tempDir("ws-eval-reg-"); });
after(async () => { await removeDir(root); });

async function written(variant: DecoderVariant, config: Record<string, unknown> = {}, name: string = variant): Promise<string> {
  const model = decoderModel(variant);
  const dir = join(root, name);
  await writeDecoderModel(dir, { ...model, config: { ...model.config, ...config } });
  return dir;
}

describe("against models", () => {
  test("KL and agreement against a model of another hidden size (same vocabulary) are the reference's, for 1 and 2 workers", async () => {
    // mistral-sliding has hidden size 48, llama-llama3 64; both have 128 tokens. The against model's
    // hidden states were read with the evaluated model's row width.
    const evaluated = await written("mistral-sliding"), other = await written("llama-llama3"), same = await written("qwen3-qknorm");
    const ids = [5, 6, 7, 8, 9, 10, 11, 12, 13];
    const reference = referenceEvaluation(decoderModel("mistral-sliding"), ids, { context: 4, against: [decoderModel("llama-llama3"), decoderModel("qwen3-qknorm")] });
    for (const workers of [1, 2]) {
      const { results } = await evaluate([evaluated], { ids, context: 4, workers, against: [other, same], workerUrl: WORKER_URL });
      const [a, b] = results[0]!.against;
      assert.ok(Math.abs(a!.kl - reference.against[0]!.kl) < 1e-4, `${workers} workers: KL against hidden-64 model ${a!.kl}, reference ${reference.against[0]!.kl}`);
      assert.ok(Math.abs(b!.kl - reference.against[1]!.kl) < 1e-4, `${workers} workers: KL against hidden-48 model ${b!.kl}, reference ${reference.against[1]!.kl}`);
      assert.equal(a!.top1Agreement, reference.against[0]!.top1Agreement);
    }
  });
});

describe("config.json values transformers cannot load", () => {
  test("rope_parameters or rope_scaling that is not an object is refused, not ignored", async () => {
    // transformers calls .get on them; weightsoup used the default RoPE as if they were absent.
    for (const [key, value] of [["rope_parameters", "x"], ["rope_parameters", [3, ""]], ["rope_scaling", "linear"], ["rope_scaling", 5]] as const) {
      await refused(await written("llama-gqa-untied", { [key]: value }, `rope-${key}-${JSON.stringify(value)}`), "E_CONFIG", [key]);
    }
  });

  test("keys transformers reads without a default are required: llama3's band factors, qwen3's head_dim (null)", async () => {
    // weightsoup took 1 and 4 for missing low/high_freq_factor and 128 for qwen3's head_dim: null, where
    // transformers raises (decoder-forward.md 2 and 3.4): numbers for a config no client can load.
    const llama3 = decoderModel("llama-llama3").config.rope_scaling as Record<string, unknown>;
    for (const key of ["low_freq_factor", "high_freq_factor"]) {
      const { [key]: _, ...rest } = llama3;
      await refused(await written("llama-llama3", { rope_scaling: rest }, `llama3-without-${key}`), "E_CONFIG", [key, "llama3"]);
    }
    await refused(await written("qwen3-qknorm", { head_dim: null }, "qwen3-head-dim-null"), "E_CONFIG", ["head_dim", "qwen3"]);
  });

  test("GPT-2's alias keys (max_position_embeddings, hidden_size, ...) win over n_positions, n_embd, ...: a contradiction is refused, an alias alone is read", async () => {
    // GPT2Config's attribute_map sets n_positions from max_position_embeddings after __init__, so the
    // alias is what transformers builds the model with; weightsoup read only the GPT-2 names.
    await refused(await written("gpt2-unprefixed", { max_position_embeddings: 2 }, "alias-positions"), "E_CONFIG", ["max_position_embeddings", "n_positions"]);
    await refused(await written("gpt2-unprefixed", { hidden_size: 1 }, "alias-hidden"), "E_CONFIG", ["hidden_size", "n_embd"]);
    const model = decoderModel("gpt2-unprefixed");
    const { n_positions: positions, n_head: heads, ...config } = model.config;
    const dir = join(root, "alias-only");
    await writeDecoderModel(dir, { ...model, config: { ...config, max_position_embeddings: positions, num_attention_heads: heads } });
    const { results } = await evaluate([dir], { ids: IDS, workers: 1, workerUrl: WORKER_URL });
    const reference = referenceEvaluation({ ...model, config: { ...config, max_position_embeddings: positions, num_attention_heads: heads } }, IDS, { context: 512 });
    assert.ok(Math.abs(results[0]!.nll - reference.nllMean) < 1e-5, `${results[0]!.nll} vs ${reference.nllMean}`);
  });
});

describe("found against transformers 5.18 (stop 32 audit)", () => {
  test("dynamic RoPE without a factor is refused (transformers raises); without max_position_embeddings the family's default applies", async () => {
    const scaling = { rope_type: "dynamic", factor: 2 };
    const { factor: _, ...noFactor } = scaling;
    await refused(await written("llama-gqa-untied", { rope_scaling: noFactor }, "dynamic-no-factor"), "E_CONFIG", ["factor"]);
    // transformers' config classes default max_position_embeddings to 2048 (llama), 131072 (mistral),
    // 32768 (qwen2, qwen3); dynamic scaling starts past it, llama3's bands take it as the original length.
    for (const [family, positions] of [["llama", 2048], ["mistral", 131072], ["qwen2", 32768], ["qwen3", 32768]] as const) {
      assert.equal(ropeFrequencies({ model_type: family, rope_scaling: scaling }, 8, "c").maxPositions, positions, family);
      const llama3 = ropeFrequencies({ model_type: family, rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4 } }, 8, "c");
      assert.deepEqual(llama3.scaling, { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: positions }, family);
    }
  });

  test("past max_position_embeddings under dynamic RoPE, the refusal says why: the scaling weightsoup does not compute, not positions the model lacks (stop 39 audit)", async () => {
    const dir = await written("llama-gqa-untied", { rope_scaling: { rope_type: "dynamic", factor: 2 }, max_position_embeddings: 6 }, "dynamic-past");
    const why = /its rope_scaling is "dynamic", which rescales the frequencies past max_position_embeddings, 6; weightsoup computes them up to it only/;
    const ids = [...IDS, 9, 26, 53]; // 9 ids: one window of 8 tokens
    await assert.rejects(evaluate([dir], { ids, context: 8, workers: 1, workerUrl: WORKER_URL }), (e: unknown) => {
      assert.ok(e instanceof WeightsoupError && e.code === "E_DATA", String(e));
      assert.match(e.message, /a sequence of 8 tokens is longer than the 6 positions weightsoup evaluates this model at \(/);
      assert.match(e.message, why);
      return true;
    });
    await assert.rejects(generate(dir, { ids: [3, 14, 15, 9, 2], maxNewTokens: 4, workerUrl: WORKER_URL }), (e: unknown) => {
      assert.ok(e instanceof WeightsoupError && e.code === "E_DATA", String(e));
      assert.match(e.message, /need 8 positions; weightsoup generates with at most 6 for this model \(/);
      assert.match(e.message, why);
      return true;
    });
    // Within it, the default frequencies: runs.
    await evaluate([dir], { ids, context: 6, workers: 1, workerUrl: WORKER_URL });
  });

  test("generation without a tokenizer stops at config.json's or generation_config.json's eos id", async () => {
    const model = decoderModel("llama-gqa-untied");
    const dir = join(root, "eos-no-tokenizer");
    await writeDecoderModel(dir, model);
    const prompt = [3, 14, 15];
    const free = (await generate(dir, { ids: prompt, maxNewTokens: 10, workerUrl: WORKER_URL })).ids;
    assert.equal(free.length, 10, "no eos id anywhere: all 10");
    // An id generated at step k >= 1 that did not come earlier: stopping there leaves k + 1 tokens.
    const k = free.findIndex((id, i) => i >= 1 && !free.slice(0, i).includes(id));
    assert.ok(k >= 1, `a fresh id among ${free}`);
    await writeDecoderModel(dir, { ...model, config: { ...model.config, eos_token_id: free[k] } });
    assert.deepEqual((await generate(dir, { ids: prompt, maxNewTokens: 10, workerUrl: WORKER_URL })).ids, free.slice(0, k + 1));
    await writeDecoderModel(dir, { ...model, config: { ...model.config, eos_token_id: null } });
    await writeFile(join(dir, "generation_config.json"), JSON.stringify({ eos_token_id: [free[k], 100_000] }));
    assert.deepEqual((await generate(dir, { ids: prompt, maxNewTokens: 10, workerUrl: WORKER_URL })).ids, free.slice(0, k + 1));
  });

  test("generation may fill the last position: the last new token is never fed back, so it needs none", async () => {
    const model = decoderModel("gpt2-unprefixed");
    const dir = await written("gpt2-unprefixed", {}, "positions-limit");
    const positions = model.config.n_positions as number;
    const prompt = Array.from({ length: positions - 3 }, (_, i) => (i * 7) % 50);
    assert.equal((await generate(dir, { ids: prompt, maxNewTokens: 4, workerUrl: WORKER_URL })).ids.length, 4);
    await assert.rejects(generate(dir, { ids: prompt, maxNewTokens: 5, workerUrl: WORKER_URL }), (e: unknown) => {
      assert.ok(e instanceof WeightsoupError, String(e));
      assert.equal(e.code, "E_DATA");
      assert.match(e.message, new RegExp(`need ${positions + 1} positions; the model has ${positions}`));
      return true;
    });
  });
});

describe("Qwen2's max_window_layers", () => {
  test("0 slides every layer, as transformers' layer_types (i >= 0) has it: the same numbers as layer_types stating it (found by the stop 37 audit: refused)", async () => {
    const m = decoderModel("qwen2-sliding");
    const ids = Array.from({ length: 40 }, (_, i) => (i * 37 + 5) % 128);
    const run = async (name: string, config: Record<string, unknown>) => {
      const dir = join(root, name);
      await writeDecoderModel(dir, { ...m, config: { ...m.config, ...config } });
      const { nll, against } = (await evaluate([dir], { ids, context: 20, workers: 1, workerUrl: WORKER_URL })).results[0]!;
      return { nll, against };
    };
    const zero = await run("qwen2-mwl0", { max_window_layers: 0 });
    assert.deepEqual(zero, await run("qwen2-all-sliding", { layer_types: ["sliding_attention", "sliding_attention"] }));
    assert.notDeepEqual(zero, await run("qwen2-mwl1", { max_window_layers: 1 }), "layer 0 full instead: other numbers");
  });
});

describe("options", () => {
  test("a memoryBudget too small to split between the merge kernels and the forward pass is E_MEMORY_BUDGET naming the option, not a worker failure with a negative budget", async () => {
    const dir = await written("llama-gqa-untied", {}, "budget");
    const small = (e: unknown) => {
      assert.ok(e instanceof WeightsoupError, String(e));
      assert.equal(e.code, "E_MEMORY_BUDGET", e.message);
      assert.match(e.message, /memoryBudget/);
      assert.doesNotMatch(e.message, /-\d/, "no negative sizes");
      return true;
    };
    await assert.rejects(evaluate([dir], { ids: IDS, memoryBudget: 2 ** 20, workerUrl: WORKER_URL }), small);
    await assert.rejects(logits({ model: await NodeFolder.open(dir) }, IDS, { memoryBudget: 2 ** 20, workerUrl: WORKER_URL }), small);
  });

  test("a memoryBudget that leaves the forward pass less than its kernels need is E_MEMORY_BUDGET, not a worker that stopped", async () => {
    const dir = await written("llama-gqa-untied", {}, "budget-kernels");
    // 16 MiB go to the merge kernels; the 1 MiB left cannot hold the forward pass's kernels.
    await assert.rejects(evaluate([dir], { ids: IDS, memoryBudget: 17 * 2 ** 20, workers: 2, workerUrl: WORKER_URL }), (e: unknown) => {
      assert.ok(e instanceof WeightsoupError, String(e));
      assert.equal(e.code, "E_MEMORY_BUDGET", e.message);
      return true;
    });
  });

  test("a layer that does not fit the forward pass's share is E_MEMORY_BUDGET naming the model, the layer and its weights' size (found by the stop 37 audit: 'a kernel needs ...; lower the chunk size')", async () => {
    const dir = join(root, "wide-layer");
    const shape = { vocab: 256, hidden: 1024, intermediate: 1024, layers: 1, heads: 8, kvHeads: 8 };
    await writeLlamaModel(dir, shape);
    // BF16 as stored: q, k, v, o (hidden × hidden each, kvHeads = heads), gate, up, down, two norms.
    const stored = 2 * (4 * 1024 * 1024 + 3 * 1024 * 1024 + 2 * 1024);
    const named = (e: unknown) => {
      assert.ok(e instanceof WeightsoupError, String(e));
      assert.equal(e.code, "E_MEMORY_BUDGET", e.message);
      assert.equal(e.details.model, dir);
      assert.ok(e.message.startsWith(`${dir}: layer 0 (its weights, ${(stored / 2 ** 20).toFixed(1)} MiB as stored`), e.message);
      assert.match(e.message, /--memory-budget/);
      assert.doesNotMatch(e.message, /chunk size/, "a forward pass has no chunk size to lower");
      return true;
    };
    // 16 MiB go to the merge kernels, 8 MiB to the forward pass: the layer's 14 MiB do not fit.
    await assert.rejects(evaluate([dir], { ids: IDS, memoryBudget: 24 * 2 ** 20, workers: 1, workerUrl: WORKER_URL }), named);
    await assert.rejects(logits({ model: await NodeFolder.open(dir) }, IDS, { memoryBudget: 24 * 2 ** 20, workerUrl: WORKER_URL }), named);
  });
});

describe("memory", () => {
  test("more models than the workers' budget holds hidden states for are scored in passes, every number the same as with room for all", async () => {
    const dirs: string[] = [];
    for (const seed of [1, 2, 3, 4]) {
      const dir = join(root, `passes-${seed}`);
      await writeDecoderModel(dir, decoderModel("llama-llama3", { seed }));
      dirs.push(dir);
    }
    const [against, ...evaluated] = dirs as [string, ...string[]];
    // llama-llama3 has hidden size 64 and 128 tokens: a model's states for 16000 rows (80 windows of
    // 200, plus one window of room) take 3.96 MiB; 36 MiB per worker leaves the forward pass 20 MiB,
    // half of which holds the against model's states and one evaluated model's, not two.
    const ids = Array.from({ length: 16000 }, (_, i) => (i * 37 + 11) % 128);
    const run = async (memoryBudget: number | undefined) => {
      const starts: string[] = [];
      const { results } = await evaluate(evaluated, {
        ids, context: 200, workers: 1, workerUrl: WORKER_URL, against: [against], ...(memoryBudget ? { memoryBudget } : {}),
        onProgress: (e) => { if (e.type === "model-start") starts.push(e.model); },
      });
      return { results, againstRuns: starts.filter((m) => m === against).length };
    };
    const roomy = await run(undefined), tight = await run(36 * 2 ** 20);
    assert.equal(roomy.againstRuns, 1, "with room for every model, the against model runs once");
    assert.equal(tight.againstRuns, 3, "one pass per evaluated model, each running the against model again");
    assert.deepEqual(tight.results, roomy.results);
    for (const r of tight.results) assert.ok(Number.isFinite(r.nll) && Number.isFinite(r.against[0]!.kl), JSON.stringify(r));
  });
});

describe("passes sized by every model and by scoring's memory", () => {
  // Hand-worked: one worker with two sequences of 1000 tokens (2000 rows, 1998 predicted), no against
  // models. A model's states take (rows + longest) x hidden x 4 bytes; scoring takes its records
  // (64 bytes per predicted position), targets, one vocabulary chunk of the output projection and two
  // chunks of logits per sequence, 16 bytes of rounding each.
  const dealt = [[new Int32Array(1000), new Int32Array(1000)]];
  // A layer of these small specs needs far less than half a budget: only the states and scoring size the passes.
  const model = (hidden: number, vocab: number) => ({ spec: { hidden, vocab, heads: 1, kvHeads: 1, headDim: 4, intermediate: 8, mlp: "gated-silu" } }) as unknown as DecoderSource;
  const scoring = (vocab: number, hidden: number, longest: number) => {
    const chunk = Math.min(2048, vocab);
    return (1998 * 64 + 16) + (1998 * 4 + 16) + (chunk * hidden * 4 + 16) + 2 * (longest * chunk * 4 + 16);
  };

  test("the largest model's states size a pass, whatever the order (found by the stop 37 audit: the first model's did)", () => {
    const small = model(32, 100), big = model(128, 100);
    // Half of 16 MiB less the instance's fixed bytes holds floor((8388608 - fixed) / (3000 x 128 x 4)) of
    // the big model's states (4 here).
    assert.ok(16 * 2 ** 20 - scoring(100, 128, 1000) > 8 * 2 ** 20, "scoring leaves more than half");
    const big4 = Math.floor((8 * 2 ** 20 - SESSION_FIXED_BYTES) / (3000 * 128 * 4));
    assert.equal(big4, 4);
    assert.equal(statesThatFit(16 * 2 ** 20, dealt, [small, big], []), big4);
    assert.equal(statesThatFit(16 * 2 ** 20, dealt, [big, small], []), big4);
    assert.equal(statesThatFit(16 * 2 ** 20, dealt, [small], []), Math.floor((8 * 2 ** 20 - SESSION_FIXED_BYTES) / (3000 * 32 * 4)));
  });

  test("end to end: models whose states and scoring fill a tight budget run in passes, with the numbers of a roomy one", async () => {
    // Vocabulary 4096 at context 512: scoring's two logit chunks take 8 MiB of the forward pass's 12 MiB
    // (a 28 MiB budget); the audit's five models failed E_MEMORY_BUDGET with states in half of it.
    const dirs: string[] = [];
    for (const seed of [1, 2, 3]) {
      const dir = join(root, `scoring-${seed}`);
      await writeLlamaModel(dir, { vocab: 4096, hidden: 32, intermediate: 48, layers: 2, heads: 4, kvHeads: 2 });
      dirs.push(dir);
    }
    const ids = Array.from({ length: 8000 }, (_, i) => (i * 2654435761) % 4093);
    const run = (memoryBudget?: number) => evaluate(dirs, { ids, context: 512, workers: 1, workerUrl: WORKER_URL, ...(memoryBudget ? { memoryBudget } : {}) });
    assert.deepEqual((await run(28 * 2 ** 20)).results, (await run()).results);
  });

  test("a layer that needs more than half the budget leaves the states what it does not take (found by the stop 37 audit: a hidden-1024 model failed at every pass size)", () => {
    // The audit's model: hidden 1024, 4 heads of 256 (2 KV heads), intermediate 512, gated MLP. Its layer,
    // with weights taken as float32: q, k, v, o and three MLP matrices 1024·(1024 + 2·512) + 1024·1024 +
    // 3·1024·512 = 4,718,592 elements; norms, q/k norms and biases 9,728, each read and decoded (twice);
    // activations for a 1000-token sequence: x-norm 1000·1024, q/k/v 1000·3072, attention 1000·1024,
    // scores 1000·260 + 40, o 1000·1024, up and gate 1000·512 each = 7,428,040; 55 allocations of 16 bytes.
    const layer = 4 * (4_718_592 + 2 * 9_728 + 7_428_040) + 16 * 55;
    const wide = { spec: { hidden: 1024, vocab: 300, heads: 4, kvHeads: 2, headDim: 256, intermediate: 512, mlp: "gated-silu" } } as unknown as DecoderSource;
    const budget = 64 * 2 ** 20, state = 3000 * 1024 * 4;
    assert.ok(budget - layer < budget / 2, "the layer needs more than half");
    assert.equal(statesThatFit(budget, dealt, [wide, wide], []), Math.floor((budget - layer - SESSION_FIXED_BYTES) / state));
    assert.equal(Math.floor((budget - layer - SESSION_FIXED_BYTES) / state), 1, "one model's states per pass, where half the budget would have held two");
  });

  test("scoring's logit chunks of a long context leave less than half the budget to the states (found by the stop 37 audit)", () => {
    // Vocabulary 8192: chunks of 2048 rows; two chunks of logits for a 1000-token sequence are 16 MB.
    const m = model(64, 8192), budget = 24 * 2 ** 20, score = scoring(8192, 64, 1000);
    assert.ok(budget - score < budget / 2, "scoring needs more than half");
    assert.equal(statesThatFit(budget, dealt, [m], []), Math.floor((budget - score - SESSION_FIXED_BYTES) / (3000 * 64 * 4)));
  });
});

describe("measurements between models that must be told apart", () => {
  // Found by reading the measurement layer against rebasin-and-evaluation.md: a path's points (λ = 1
  // included) and a soup run with one model's config.json, and evaluate told folders apart by name.
  test("a loss path or soup between models whose configs compute differently is E_CONFIG naming what differs; alike configs run", async () => {
    const a = await written("llama-gqa-untied", {}, "path-a");
    const theta = await written("llama-gqa-untied", { rope_parameters: { rope_type: "default", rope_theta: 10000.0 } }, "path-b-theta");
    const eps = await written("llama-gqa-untied", { rms_norm_eps: 0.5 }, "path-b-eps");
    const same = join(root, "path-b-same");
    await writeDecoderModel(same, decoderModel("llama-gqa-untied", { seed: 2 }));
    for (const [b, what] of [[theta, "rotary embedding"], [eps, "norm epsilon"]] as const) {
      await assert.rejects(lossPath(a, b, { ids: IDS, points: 3, workers: 1, workerUrl: WORKER_URL }), (e: unknown) => {
        assert.ok(e instanceof WeightsoupError && e.code === "E_CONFIG", String(e));
        assert.ok(e.message.includes(what) && e.message.includes("λ = 1 would not be B"), e.message);
        assert.equal(e.details.model, b);
        // The values that differ, not the keys of two mappings alike (found by the stop 39 audit).
        assert.doesNotMatch(e.message, /a mapping with keys/);
        if (b === theta) assert.match(e.message, /rotary embedding \(rope_theta, rope_scaling\), its theta is \d+ in \S+ and 10000 in \S*path-b-theta/);
        return true;
      });
      await assert.rejects(greedySoup([a, same, b], { ids: IDS, workers: 1, workerUrl: WORKER_URL }), (e: unknown) => {
        assert.ok(e instanceof WeightsoupError && e.code === "E_CONFIG" && e.message.includes(what), String(e));
        return true;
      });
    }
    const path = await lossPath(a, same, { ids: IDS, points: 3, workers: 1, workerUrl: WORKER_URL });
    const reference = (model: ReturnType<typeof decoderModel>) => referenceEvaluation(model, IDS, { context: 512 }).nllMean;
    assert.ok(Math.abs(path.points[2]!.nll - reference(decoderModel("llama-gqa-untied", { seed: 2 }))) < 1e-5, "λ = 1 is B");
  });

  test("two folders with one name are two models: evaluated apart (named), refused unnamed (E_DATA)", async () => {
    // Library callers (the browser's picked folders) can hand over two folders both called "model".
    const first = await written("mistral-sliding", {}, "same-name-1"), second = await written("llama-llama3", {}, "same-name-2");
    const named = async (dir: string): Promise<ModelFolder> => {
      const inner = await NodeFolder.open(dir);
      return { name: "model", list: () => inner.list(), readText: (f) => inner.readText(f), source: (f) => inner.source(f) };
    };
    const [x, y] = [await named(first), await named(second)];
    const ids = [5, 6, 7, 8, 9, 10, 11, 12, 13];
    const { results } = await evaluateSubjects([{ name: "x", model: x }, { name: "y", model: y }], { ids, context: 4, workers: 1, workerUrl: WORKER_URL });
    for (const [r, variant] of [[results[0]!, "mistral-sliding"], [results[1]!, "llama-llama3"]] as const) {
      const expected = referenceEvaluation(decoderModel(variant), ids, { context: 4 }).nllMean;
      assert.ok(Math.abs(r.nll - expected) < 1e-5, `${r.model}: ${r.nll} against the reference's ${expected} for ${variant}`);
    }
    const kl = (await evaluateSubjects([{ name: "x", model: x }], { ids, context: 4, workers: 1, workerUrl: WORKER_URL, against: [{ name: "y", model: y }] })).results[0]!.against[0]!;
    const expectedKl = referenceEvaluation(decoderModel("mistral-sliding"), ids, { context: 4, against: [decoderModel("llama-llama3")] }).against[0]!.kl;
    assert.ok(Math.abs(kl.kl - expectedKl) < 1e-4 && kl.kl > 0.01, `KL ${kl.kl}, reference ${expectedKl}`);
    await assert.rejects(evaluateSubjects([{ model: x }, { model: y }], { ids, workers: 1, workerUrl: WORKER_URL }), (e: unknown) => {
      assert.ok(e instanceof WeightsoupError && e.code === "E_DATA" && e.message.includes('both named "model"'), String(e));
      return true;
    });
  });
});
