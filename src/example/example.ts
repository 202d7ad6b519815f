/**
 * @file `weightsoup example` (what `npm start` runs): writes a small Llama-shaped base model and three
 * fine-tunes, then merges them with the shipped TIES recipe and says what happened.
 */
import { writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { ProgressBar } from "../cli/progress";
import { formatBytes, formatSeconds } from "../units";
import { merge } from "../node";
import recipeText from "./recipe.yml";
import { EXAMPLE_SHAPE, EXAMPLE_SKILLS, writeLlamaModel } from "./models";

export async function runExample(dirArg: string, io: { stdout: NodeJS.WriteStream; stderr: NodeJS.WriteStream }): Promise<number> {
  const dir = resolve(dirArg);
  const say = (s: string) => io.stdout.write(s + "\n");
  const s = EXAMPLE_SHAPE;
  say(`Writing a Llama-shaped base model (${s.layers} layers, hidden ${s.hidden}, vocab ${s.vocab}, BF16) and fine-tunes ${EXAMPLE_SKILLS.map((k) => k.name).join(", ")} to ${dir}`);
  const t0 = performance.now();
  let bytes = await writeLlamaModel(join(dir, "base"), s);
  for (const skill of EXAMPLE_SKILLS) bytes += await writeLlamaModel(join(dir, skill.name), s, skill);
  const recipe = join(dir, "recipe.yml");
  await writeFile(recipe, recipeText);
  say(`  wrote ${formatBytes(bytes)} of checkpoints in ${formatSeconds((performance.now() - t0) / 1000)}`);

  const out = join(dir, "merged");
  say(`Merging with ${recipe}:`);
  say(recipeText.split("\n").filter((l) => l && !l.startsWith("#")).map((l) => "    " + l).join("\n"));
  const bar = new ProgressBar(io.stderr);
  const summary = await merge(recipe, { out, force: true, onProgress: (e) => bar.update(e) });
  bar.finish();
  say(`Done: ${summary.method} merged ${summary.tensors} tensors (${formatBytes(summary.inputBytes)} read, ${formatBytes(summary.outputBytes)} written) ` +
    `in ${formatSeconds(summary.seconds)}, ${formatBytes(summary.inputBytes / summary.seconds)}/s with ${summary.workers} workers.`);
  say(`Output: ${out}`);
  say(`  ${summary.files.join("\n  ")}`);
  say(`Try: weightsoup inspect ${join(out, "model.safetensors")}`);
  return 0;
}
