/**
 * @file Every command's usage line, what it does and its options: the CLI's help texts.
 */
import { VERSION } from "../merge/card";

/** Each command's usage line, what it does, and its options: `weightsoup COMMAND --help` prints them. */
export const COMMANDS = {
  merge: {
    usage: "weightsoup merge RECIPE.yml OUT_DIR [options]",
    summary: "run a mergekit recipe and write the merged model to OUT_DIR",
    options: `  --seed N              seed of DARE's random masks (default 0)
  --workers N           worker threads (default: available cores, none for a merge small enough
                        to run faster in this thread)
  --out-shard-size SIZE largest output shard, e.g. 5B, 2GB, 500MiB (default 5B)
  --memory-budget SIZE  wasm memory per worker (default 256MiB)
  --chunk-size SIZE     largest chunk of tensor data a worker holds (default 64MiB)
  --force               replace a non-empty OUT_DIR
  --quiet               no progress bar
  --json                print the summary as JSON on stdout
  --ledger FILE         write the ledger (every input tensor: merged, copied or refused, and why) as JSON`,
  },
  plan: {
    usage: "weightsoup plan RECIPE.yml [options]",
    summary: "show what a merge would do from the models' headers alone: the ledger of every input tensor, output size, peak memory, estimated time",
    options: `  --workers N           worker threads the merge would use (default: available cores)
  --out-shard-size SIZE largest output shard (default 5B)
  --memory-budget SIZE  wasm memory per worker (default 256MiB)
  --chunk-size SIZE     largest chunk of tensor data a worker holds (default 64MiB)
  --json                print the plan (ledger entries included) as JSON on stdout`,
  },
  inspect: {
    usage: "weightsoup inspect PATH [--json]",
    summary: "list a checkpoint's (a .safetensors file's or a model folder's) tensors, dtypes and shapes",
    options: `  --json                print the report as JSON on stdout`,
  },
  align: {
    usage: "weightsoup align REFERENCE MODEL OUT_DIR [options]",
    summary: "permute MODEL's hidden units to match REFERENCE (Git Re-Basin weight matching)",
    options: `  --spec KIND|FILE      auto (from config.json), mlp, llama, gpt2, or a JSON spec file (default auto)
  --seed N              seed of the order groups are visited in (default 0)
  --max-sweeps N        stop after N sweeps over the groups (default 100)
  --workers N           worker threads computing the similarity matrices (default: available cores; the result is the same)
  --force               replace a non-empty OUT_DIR
  --quiet               no progress line
  --json                print the result as JSON on stdout`,
  },
  barrier: {
    usage: "weightsoup barrier A B --data FILE [options]",
    summary: "loss and accuracy of two MLP classifiers along the line from A to B, and the barrier",
    options: `  --data FILE           safetensors file with "inputs" [N, features] and "labels" [N] (required)
  --points N            evenly spaced points from A (0) to B (1), both included (default 25)
  --align               also measure after aligning B to A (weight matching)
  --seed N              seed of the alignment's group order (default 0)
  --json                print the paths as JSON on stdout`,
  },
  eval: {
    usage: "weightsoup eval MODEL_OR_RECIPE... [options]",
    summary: "perplexity, bits per byte, and KL divergence and top-1 agreement against other models, on a text (a recipe is merged in memory, never written)",
    options: `  --text FILE           the text to score (default: a shipped public-domain English text)
  --ids FILE            pre-tokenized input instead: a JSON list of ids, or a .safetensors with one integer tensor
  --context N           tokens per window; each window is a separate forward pass (default 512)
  --max-tokens N        cut the tokenized text to N tokens first
  --against MODEL       also score the same positions with MODEL (repeatable): KL(MODEL ‖ evaluated), top-1 agreement
  --workers N           worker threads (default: available cores)
  --memory-budget SIZE  wasm memory per worker (default 256MiB)
  --seed N              recipes: DARE's seed (default 0)
  --quiet               no progress line
  --json                print the results as JSON on stdout`,
  },
  generate: {
    usage: "weightsoup generate MODEL --prompt TEXT [options]",
    summary: "continue a prompt with a model (or a recipe merged in memory), streaming the tokens to stdout",
    options: `  --prompt TEXT         the prompt
  --ids FILE            a pre-tokenized prompt instead (JSON list or .safetensors)
  --max-new-tokens N    new tokens at most (default 64); stops earlier at an end-of-sequence token
  --chat                wrap the --prompt text in the model's chat template as a user message (not with --ids)
  --temperature T       0: greedy, deterministic (default); above 0: sampling
  --seed N              seed of sampling (default 0)
  --merge-seed N        recipes: DARE's and DELLA's seed, as merge's --seed (default 0)
  --memory-budget SIZE  wasm memory for the resident model (default 1GiB)
  --json                print the result as JSON on stdout instead of streaming`,
  },
  "extract-lora": {
    usage: "weightsoup extract-lora FINETUNED BASE OUT_DIR --rank R [options]",
    summary: "write a PEFT LoRA adapter approximating FINETUNED as BASE + B·A (truncated SVD of each linear weight's task vector)",
    options: `  --rank R              largest rank of any module (required, at least 1)
  --sv-epsilon E        drop singular values at or below E (default 0): rank = min(R, #σ > E)
  --embed-lora          also decompose input embeddings (default: reported and left out)
  --no-distribute-scale lora_A = S·Vᵀ and lora_B = U (default: √S in both, --distribute-scale)
  -i, --include-regex RE  decompose only modules matching RE (searched in the module name; repeatable)
  -e, --exclude-regex RE  do not decompose modules matching RE (repeatable)
  --save-module NAME    store module NAME (full name or last part, e.g. lm_head) whole from FINETUNED
                        as PEFT modules_to_save instead of a LoRA (repeatable)
  --dtype D             float32 (default), bfloat16 or float16: dtype of the stored factors
  --oversample N        range-finder columns beyond the rank (default 16)
  --power-iterations N  power iterations of the randomized SVD (default 4)
  --seed N              seed of the random test matrices (default 0)
  --block-size SIZE     task-vector rows held in memory at once (default 64MiB)
  --force               replace a non-empty OUT_DIR
  --quiet               no progress line
  --json                print the per-module report as JSON on stdout`,
  },
  path: {
    usage: "weightsoup path A B [options]",
    summary: "loss (mean NLL, as eval defines it) along (1 - λ)·A + λ·B for two models or recipes, and the barrier; optionally along SLERP and after aligning B to A",
    options: `  --text FILE           the text to score (default: a shipped public-domain English text)
  --ids FILE            pre-tokenized input instead: a JSON list of ids, or a .safetensors with one integer tensor
  --points N            evenly spaced points from A (λ = 0) to B (λ = 1), both included (default 11)
  --slerp               also the SLERP path (mergekit's slerp, t = λ, A as the base)
  --align               also both paths after aligning B to A (weight matching, spec from config.json)
  --max-sweeps N        --align: weight matching's sweep limit (default 100)
  --context N           tokens per window; each window is a separate forward pass (default 512)
  --max-tokens N        cut the tokenized text to N tokens first
  --workers N           worker threads (default: available cores)
  --memory-budget SIZE  wasm memory per worker (default 256MiB)
  --seed N              DARE's seed in recipe endpoints, and the alignment's group order (default 0)
  --svg FILE            write the loss chart as SVG
  --report FILE.html    write a self-contained HTML report (chart, barriers, points)
  --quiet               no progress line
  --json                print the result as JSON on stdout`,
  },
  soup: {
    usage: "weightsoup soup MODEL... [options]",
    summary: "a model soup: the uniform average of the models, or with --greedy Wortsman et al.'s greedy soup on held-out loss; reports both and writes the soup with --out",
    options: `  --text FILE           the held-out text (default: a shipped public-domain English text)
  --ids FILE            pre-tokenized held-out input instead (JSON list or .safetensors)
  --greedy              greedy soup: best ingredient first, each next one kept only if the held-out NLL does not get worse
  --out DIR             write the soup (a linear merge, weight 1 each) to DIR
  --force               replace a non-empty DIR
  --context N           tokens per window (default 512)
  --max-tokens N        cut the tokenized text to N tokens first
  --workers N           worker threads (default: available cores)
  --memory-budget SIZE  wasm memory per worker (default 256MiB)
  --svg FILE            --greedy: write the trajectory chart as SVG
  --report FILE.html    write a self-contained HTML report (ingredients, trajectory, chart, recipe)
  --quiet               no progress line
  --json                print the result as JSON on stdout`,
  },
  diagnose: {
    usage: "weightsoup diagnose RECIPE.yml [options]",
    summary: "interference diagnostics of a recipe's task vectors, per tensor and layer: norms, cosines, sign conflicts, trimmed and discarded mass (nothing is merged)",
    options: `  --json                print the diagnosis as JSON on stdout
  --svg FILE            write the sign-conflict heatmap (layer × tensor) as SVG
  --report FILE.html    write a self-contained HTML report (summary, heatmap, tables)
  --seed N              DARE's and DELLA's seed, as for merge (default 0)
  --workers N           worker threads (default: available cores)
  --memory-budget SIZE  wasm memory per worker (default 256MiB)
  --chunk-size SIZE     largest chunk of tensor data a worker holds (default 64MiB)
  --quiet               no progress line`,
  },
  sweep: {
    usage: "weightsoup sweep RECIPE.yml --vary KEY=SPEC [--vary ...] [options]",
    summary: "evaluate a recipe at every point of a grid of parameter values, without writing the merges: NLL, perplexity and KL per point",
    options: `  --vary KEY=SPEC       a recipe number to vary: KEY like parameters.t, models[1].parameters.weight, parameters.t[2];
                        SPEC a list 0.2,0.5,0.8 or a range START:STOP:COUNT (both ends included). Several: the full grid
  --text FILE           the text to score (default: the built-in sample)
  --ids FILE            pre-tokenized input instead (a JSON list, or a .safetensors file with one integer tensor)
  --against MODEL       also report KL divergence and top-1 agreement against MODEL (repeatable)
  --context N           tokens per window (default 512)
  --max-tokens N        score only the first N tokens of the text
  --json                print the points as JSON on stdout
  --csv FILE            write the points as CSV
  --svg FILE            write the chart (NLL against the first key) as SVG
  --report FILE.html    write a self-contained HTML report
  --write-best DIR      merge the lowest-NLL point (the first of equals) into DIR
  --force               replace a non-empty --write-best DIR
  --seed N              DARE's seed, as for merge (default 0)
  --workers N           worker threads (default: available cores, at most one per window)
  --memory-budget SIZE  wasm memory per worker (default 256MiB); bounds how many points run layer by layer together
  --quiet               no progress line`,
  },
  example: {
    usage: "weightsoup example [DIR]",
    summary: "write small example models to DIR (default ./example), merge them and evaluate the merge",
    options: "",
  },
} as const;

export type Command = keyof typeof COMMANDS;

export const HELP = `weightsoup ${VERSION}: merge fine-tuned models in weight space, on this machine.

Usage:
${Object.values(COMMANDS).map((c) => `  ${c.usage}\n      ${c.summary}`).join("\n")}
  weightsoup COMMAND --help   a command's options
  weightsoup --version

Every command also takes --debug (show stack traces of errors, for bug reports) and --profile
(print a timeline of where the time went on stderr; the same as WEIGHTSOUP_PROFILE=1).
Exit status: 0 success, 1 error (printed as [E_CODE] message), 2 usage error, 130 interrupted.`;

export function commandHelp(name: Command): string {
  const c = COMMANDS[name];
  return `usage: ${c.usage}\n\n${c.summary}.${c.options ? `\n\nOptions:\n${c.options}` : ""}\n  --debug               show stack traces of errors\n  --profile             print where the time went (a timeline) on stderr\n  --help                this text`;
}

