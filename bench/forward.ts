// Bench section: the evaluation forward pass on a SmolLM-135M-shaped Llama (30 layers, hidden 576,
// 9 heads, 3 KV heads, intermediate 1536, vocab 49152, tied embeddings, BF16):
//   - prefill: `evaluate` on 4 windows of 512 tokens with 2 workers, tokens per second;
//   - generation: a 32-token prompt and 64 new tokens, greedy, tokens per second;
//   - `weightsoup eval` as a whole process (start-up and loading included) on the same 4 × 512 tokens,
//     next to a PyTorch float32 process (2 threads) loading the same checkpoint with transformers and
//     scoring the same windows, when a Python with torch and transformers is found
//     (WEIGHTSOUP_BENCH_PYTHON, else python3).
import { spawnSync } from "node:child_process";
import { mkdir, open, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { planFile } from "../src/format/safetensors";
import { llamaTensors, type LlamaShape } from "../src/example/models";
import { evaluate, generate } from "../src/node";

export const SMOLLM_SHAPE: LlamaShape = { vocab: 49152, hidden: 576, intermediate: 1536, layers: 30, heads: 9, kvHeads: 3 };

const CLI = fileURLToPath(new URL("../../dist/cli.cjs", import.meta.url));

export async function forwardSection(dir: string, quick: boolean, line: (s?: string) => void, workerUrl: URL): Promise<void> {
  const shape = quick ? { ...SMOLLM_SHAPE, layers: 4, vocab: 8192 } : SMOLLM_SHAPE;
  const folder = join(dir, quick ? "smollm-quick" : "smollm-135m");
  await writeTiedLlama(folder, shape);
  const windows = 4, context = 512;
  const ids = Array.from({ length: windows * context }, (_, i) => (Math.imul(i + 1, 2654435761) >>> 0) % shape.vocab);
  const idsFile = join(dir, "bench-ids.json");
  await writeFile(idsFile, JSON.stringify(ids));
  line(`9. Forward pass: ${quick ? "a 4-layer" : "a SmolLM-135M-shaped"} Llama (${shape.layers} layers, hidden ${shape.hidden}, ${shape.heads}/${shape.kvHeads} heads, vocab ${shape.vocab}, BF16, tied)`);

  // Prefill: evaluation of 4 × 512 tokens on 2 workers (one warm-up run first).
  await evaluate([folder], { ids: ids.slice(0, 2 * 64), context: 64, workers: 2, workerUrl });
  const t0 = performance.now();
  await evaluate([folder], { ids, context, workers: 2, workerUrl });
  const prefill = (performance.now() - t0) / 1000;
  line(`   prefill (evaluate, ${windows} × ${context} tokens, 2 workers): ${(ids.length / prefill).toFixed(1)} tokens/s (${prefill.toFixed(2)} s)`);

  const gen = await generate(folder, { ids: ids.slice(0, 32), maxNewTokens: 64, workerUrl });
  line(`   generation (32-token prompt, 64 new tokens, greedy, 1 worker): ${gen.tokensPerSecond.toFixed(1)} tokens/s`);

  const [cli, cliSeconds] = timed(() => spawnSync(process.execPath, [CLI, "eval", folder, "--ids", idsFile, "--context", String(context), "--workers", "2", "--json", "--quiet"], { encoding: "utf8" }));
  if (cli.status !== 0) line(`   weightsoup eval failed: ${cli.stderr}`);
  else line(`   weightsoup eval as a process (start-up, loading, ${windows} × ${context} tokens): ${cliSeconds.toFixed(2)} s; perplexity ${JSON.parse(cli.stdout).results[0].perplexity.toFixed(2)}`);

  const python = process.env.WEIGHTSOUP_BENCH_PYTHON ?? "python3";
  const probe = spawnSync(python, ["-c", "import torch, transformers"], { encoding: "utf8" });
  if (probe.status !== 0) {
    line(`   PyTorch: not measured (no torch and transformers in ${python}; set WEIGHTSOUP_BENCH_PYTHON)`);
    return;
  }
  const script = join(dir, "bench-torch.py");
  await writeFile(script, TORCH_SCRIPT);
  const torchRun = spawnSync(python, [script, folder, idsFile, String(context), "phases"], { encoding: "utf8" });
  const [evalRun, torchSeconds] = timed(() => spawnSync(python, [script, folder, idsFile, String(context), "eval"], { encoding: "utf8" }));
  if (torchRun.status !== 0 || evalRun.status !== 0) {
    line(`   PyTorch run failed: ${(torchRun.stderr + evalRun.stderr).slice(-400)}`);
    return;
  }
  const t = JSON.parse(torchRun.stdout.trim().split("\n").pop()!);
  line(`   PyTorch ${t.torch} float32, 2 threads, same checkpoint: prefill ${(ids.length / t.prefill).toFixed(1)} tokens/s, generation ${(64 / t.generate).toFixed(1)} tokens/s (transformers generate), perplexity ${t.perplexity.toFixed(2)}`);
  line(`   whole process, eval vs PyTorch: ${cliSeconds.toFixed(2)} s vs ${torchSeconds.toFixed(2)} s (${(torchSeconds / cliSeconds).toFixed(2)}x)`);
  line();
}

function timed<T>(fn: () => T): [T, number] {
  const t0 = performance.now();
  const value = fn();
  return [value, (performance.now() - t0) / 1000];
}

const TORCH_SCRIPT = `
import json, sys, time, math
import torch
torch.set_num_threads(2)
from transformers import AutoModelForCausalLM
folder, ids_file, context, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ids = json.load(open(ids_file))
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
model.eval()
t0 = time.perf_counter()
nll, count = 0.0, 0
with torch.no_grad():
    for w in range(0, len(ids), context):
        window = torch.tensor([ids[w:w + context]])
        out = model(window, labels=window)
        n = window.shape[1] - 1
        nll += out.loss.item() * n
        count += n
prefill = time.perf_counter() - t0
if mode == "eval":
    print(json.dumps({"perplexity": math.exp(nll / count)}))
    sys.exit(0)
with torch.no_grad():
    t1 = time.perf_counter()
    model.generate(torch.tensor([ids[:32]]), max_new_tokens=64, min_new_tokens=64, do_sample=False, pad_token_id=0)
    gen = time.perf_counter() - t1
print(json.dumps({"torch": torch.__version__, "prefill": prefill, "generate": gen, "perplexity": math.exp(nll / count)}))
`;

/** A tied Llama checkpoint (no lm_head), BF16, with random weights of a sensible scale (`seed`: which ones). */
export async function writeTiedLlama(folder: string, s: LlamaShape, seed = 0x12345678): Promise<void> {
  const path = join(folder, "model.safetensors");
  const tensors = llamaTensors(s).filter((t) => t.name !== "lm_head.weight");
  const layout = planFile(tensors.map((t) => ({ ...t, dtype: "BF16", bytes: 2 * t.shape.reduce((a, b) => a * b, 1) })), { format: "pt" });
  try {
    if ((await stat(path)).size === layout.size) return; // kept from an earlier run
  } catch { /* not there yet */ }
  await mkdir(folder, { recursive: true });
  await writeFile(join(folder, "config.json"), JSON.stringify({
    architectures: ["LlamaForCausalLM"], model_type: "llama", vocab_size: s.vocab, hidden_size: s.hidden, intermediate_size: s.intermediate,
    num_hidden_layers: s.layers, num_attention_heads: s.heads, num_key_value_heads: s.kvHeads, max_position_embeddings: 2048,
    rms_norm_eps: 1e-5, rope_theta: 10000, hidden_act: "silu", tie_word_embeddings: true, torch_dtype: "bfloat16",
  }, null, 2));
  const fh = await open(path, "w");
  await fh.write(layout.head, 0, layout.head.length, 0);
  const f = new Float32Array(1 << 20), bits = new Uint32Array(f.buffer), out = new Uint16Array(1 << 20);
  let state = seed;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const isNorm = t.name.endsWith("norm.weight");
    const scale = isNorm ? 0.1 : 1 / Math.sqrt(t.shape[t.shape.length - 1]!);
    for (let start = 0; start < n; start += out.length) {
      const count = Math.min(out.length, n - start);
      for (let i = 0; i < count; i++) {
        state ^= state << 13; state ^= state >>> 17; state ^= state << 5;
        f[i] = (isNorm ? 1 : 0) + ((state >>> 0) / 4294967296 - 0.5) * 2 * scale;
        const b = bits[i]!;
        out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
      }
      await fh.write(new Uint8Array(out.buffer, 0, count * 2), 0, count * 2, layout.offsets.get(t.name)! + start * 2);
    }
  }
  await fh.close();
}
