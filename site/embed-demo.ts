/**
 * @file The library-API half of embed.html: inspect() on a picked file, through the same public
 * functions an embedding site imports from "weightsoup" (its browser build).
 */
import { BlobFolder, inspect } from "../src/browser";

const input = document.querySelector<HTMLInputElement>("[data-testid=api-file]")!;
const output = document.querySelector<HTMLPreElement>("[data-testid=api-output]")!;
input.addEventListener("change", async () => {
  const file = input.files?.[0];
  if (!file) return;
  try {
    const report = await inspect(new BlobFolder("picked", new Map([[file.name, file]])));
    output.textContent = JSON.stringify({ file: file.name, tensors: report.tensors.length, parameters: report.parameters, bytes: report.bytes, dtypes: report.byDtype }, null, 2);
  } catch (e) {
    output.textContent = `Error: ${(e as Error).message}`;
  }
});
