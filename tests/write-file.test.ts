// The CLI's atomic report writer (src/cli/write-file.ts): a complete file or a typed E_IO error naming
// the path, and never a temporary file left beside it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { lstat, mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { checkFileTargets, writeFileAtomically } from "../src/cli/write-file";
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

// Found by the stop 38 README audit: `--ledger` on a FIFO, a link or a device wrote a file over it (a
// FIFO's reader hung, a link was replaced, /dev/full became a file when run as root), and a path the
// report could not be written to was found only after the merge's output was published.
test("a FIFO or a device is refused before any work (E_NOT_REGULAR_FILE), a link to a file is written through, and an unwritable folder is refused up front", async () => {
  const dir = join(root, "targets");
  await mkdir(dir);
  const fifo = join(dir, "ledger.fifo");
  spawnSync("mkfifo", [fifo]);
  for (const path of [fifo, "/dev/null"]) {
    await assert.rejects(checkFileTargets([path]), (e: unknown) => e instanceof WeightsoupError && e.code === "E_NOT_REGULAR_FILE" && e.message.includes(path), path);
  }
  assert.ok((await lstat(fifo)).isFIFO(), "the FIFO is still one");

  await writeFile(join(dir, "real.json"), "old");
  await symlink("real.json", join(dir, "link.json"));
  await checkFileTargets([join(dir, "link.json")]);
  await writeFileAtomically(join(dir, "link.json"), "new");
  assert.ok((await lstat(join(dir, "link.json"))).isSymbolicLink(), "the link is kept");
  assert.equal(await readFile(join(dir, "real.json"), "utf8"), "new", "the file it names is written");
  assert.deepEqual((await readdir(dir)).sort(), ["ledger.fifo", "link.json", "real.json"]);

  if (process.getuid?.() !== 0) { // root writes anywhere
    const locked = join(dir, "locked");
    await mkdir(locked, { mode: 0o555 });
    await assert.rejects(checkFileTargets([join(locked, "ledger.json")]), (e: unknown) => e instanceof WeightsoupError && e.code === "E_IO");
  }
});
