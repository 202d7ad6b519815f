// The CLI's atomic report writer (src/cli/write-file.ts): a complete file or a typed E_IO error naming
// the path, and never a temporary file left beside it.
import assert from "node:assert/strict";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { writeFileAtomically } from "../src/cli/write-file";
import { WeightsoupError } from "../src/errors";
import { removeDir, tempDir } from "./helpers/fixtures";

let root: string;
before(async () => { root = await tempDir("ws-write-file-"); });
after(async () => { await removeDir(root); });

test("a new file and an existing one are written whole, with no temporary file left", async () => {
  await writeFileAtomically(join(root, "a.svg"), "<svg></svg>\n");
  await writeFile(join(root, "b.svg"), "old");
  await writeFileAtomically(join(root, "b.svg"), "new");
  assert.equal(await readFile(join(root, "a.svg"), "utf8"), "<svg></svg>\n");
  assert.equal(await readFile(join(root, "b.svg"), "utf8"), "new");
  assert.deepEqual((await readdir(root)).sort(), ["a.svg", "b.svg"]);
});

// Found by the fuzz suite: a path inside a regular file failed with a raw ENOTDIR from the clean-up
// of the temporary file (the CLI printed [E_INTERNAL]).
for (const [what, parts] of [["inside a regular file", ["file.txt", "x.svg"]], ["in a missing folder", ["no", "such", "x.svg"]], ["that is a folder", ["folder"]]] as const) {
  test(`a path ${what} is a typed E_IO naming it, and nothing is left`, async () => {
    const dir = join(root, what.replaceAll(" ", "-"));
    await mkdir(join(dir, "folder"), { recursive: true });
    await writeFile(join(dir, "file.txt"), "old");
    const path = join(dir, ...parts);
    await assert.rejects(writeFileAtomically(path, "text"), (e: unknown) => e instanceof WeightsoupError && e.code === "E_IO" && e.message.includes(path));
    assert.deepEqual((await readdir(dir)).sort(), ["file.txt", "folder"]);
    assert.deepEqual(await readdir(join(dir, "folder")), []);
    assert.equal(await readFile(join(dir, "file.txt"), "utf8"), "old");
  });
}
