/**
 * @file `weightsoup example` (what `npm start` runs): writes a small Llama-shaped base model and three
 * fine-tunes, then merges them with the shipped TIES recipe and says what happened.
 */
import { writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { ProgressBar } from "../cli/progress";
import { interruptible } from "../cli/interrupt";
import { AbortError } from "../errors";
import { formatBytes, formatSeconds, formatWorkers } from "../units";
import { evaluate, merge } from "../node";
import { DEFAULT_TEXT, DEFAULT_TEXT_NAME } from "../eval/default-text";
import recipeText from "./recipe.yml";
import { EXAMPLE_SHAPE, EXAMPLE_SKILLS, writeExampleFolder } from "./models";
import { nowMs } from "../clock";

/** Ctrl-C (or SIGTERM, SIGHUP) stops it as it stops `merge`: what is half-written is removed, exit 130. */
export async function runExample(dirArg: string, io: { stdout: NodeJS.WriteStream; stderr: NodeJS.WriteStream }): Promise<number> {
  return interruptible((signal) => writeMergeEvaluate(resolve(dirArg), io, signal));
}

async function writeMergeEvaluate(dir: string, io: { stdout: NodeJS.WriteStream; stderr: NodeJS.WriteStream }, signal: AbortSignal): Promise<number> {
  const say = (s: string) => io.stdout.write(s + "\n");
  const s = EXAMPLE_SHAPE;
  say(`Writing a Llama-shaped base model (${s.layers} layers, hidden ${s.hidden}, vocab ${s.vocab}, BF16) and fine-tunes ${EXAMPLE_SKILLS.map((k) => k.name).join(", ")} to ${dir}`);
  const t0 = nowMs();
  const bytes = await writeExampleFolder(dir, signal);
  const recipe = join(dir, "recipe.yml");
  say(`  wrote ${formatBytes(bytes)} of checkpoints in ${formatSeconds((nowMs() - t0) / 1000)}`);

  const out = join(dir, "merged");
  say(`Merging with ${recipe}:`);
  say(recipeText.split("\n").filter((l) => l && !l.startsWith("#")).map((l) => "    " + l).join("\n"));
  const bar = new ProgressBar(io.stderr);
  const summary = await merge(recipe, { out, force: true, signal, onProgress: (e) => bar.update(e) }).finally(() => bar.finish());
  say(`Done: ${summary.method} merged ${summary.tensors} tensors (${formatBytes(summary.inputBytes)} read, ${formatBytes(summary.outputBytes)} written) ` +
    `in ${formatSeconds(summary.seconds)}, ${formatBytes(summary.inputBytes / summary.seconds)}/s with ${formatWorkers(summary.workers)}.`);
  say(`Output: ${out}`);
  say(`  ${summary.files.join("\n  ")}`);

  // A merge is a hypothesis: score the merged model next to its parents on the shipped text, and how
  // far its predictions moved from each (the example's weights are random, so the numbers only show
  // the measurement, not a good model).
  const parents = ["base", ...EXAMPLE_SKILLS.map((k) => k.name)];
  say(`Evaluating the merge and its parents on the built-in text (${DEFAULT_TEXT_NAME}):`);
  const t1 = nowMs();
  let results;
  try {
    ({ results } = await evaluate([out, ...parents.map((p) => join(dir, p))], { text: DEFAULT_TEXT, against: [join(dir, "base")], context: 256, maxTokens: 1024, signal }));
  } catch (e) {
    if (!(e instanceof AbortError)) throw e;
    // The merged model is whole by now: say so rather than the CLI's "no output was kept".
    io.stderr.write(`weightsoup: interrupted while evaluating; the merged model in ${out} is complete\n`);
    return 130;
  }
  for (const r of results) {
    const kl = r.against.find((a) => a.model === join(dir, "base"));
    say(`  ${(r.model === out ? "merged" : r.model.slice(dir.length + 1)).padEnd(7)} perplexity ${r.perplexity.toFixed(2).padStart(8)}  bits/byte ${r.bitsPerByte?.toFixed(3) ?? "-"}  KL from base ${kl ? kl.kl.toFixed(4) : "-"}  (${r.predicted} tokens predicted)`);
  }
  say(`  evaluated in ${formatSeconds((nowMs() - t1) / 1000)}`);
  say(`Try: weightsoup inspect ${join(out, "model.safetensors")}`);
  say(`     weightsoup eval ${join(dir, "recipe.yml")} --against ${join(dir, "base")}   (a recipe is evaluated without writing it)`);
  return 0;
}
