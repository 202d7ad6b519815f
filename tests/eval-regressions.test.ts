// Evaluation and generation bugs the fuzz suite found (tests/fuzz.test.ts, the evaluation property),
// each pinned by the smallest case that showed it, checked against the independent reference
// (tests/reference/decoder.ts) or the rule it broke.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { evaluate } from "../src/node";
import { removeDir, tempDir, WORKER_URL } from "./helpers/fixtures";
import { decoderModel, writeDecoderModel, type DecoderVariant } from "./helpers/decoder-models";
import { referenceEvaluation } from "./reference/decoder";

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
