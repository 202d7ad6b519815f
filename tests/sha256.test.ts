// The recipe hash in a merged model's metadata (recipe_sha256): weightsoup's own SHA-256 against Node's
// (OpenSSL's) on texts of every length around the block and padding boundaries, multi-byte UTF-8
// included, and against FIPS 180-2's published examples. A merge's metadata carrying it is checked by
// tests/browser.test.ts (the page) and here for the CLI.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { sha256Hex } from "../src/format/sha256";
import { baseModel, CLI, fineTune, readOutput, removeDir, tempDir, writeCase } from "./helpers/fixtures";

const openssl = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

test("sha256Hex: FIPS 180-2 examples", () => {
  assert.equal(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  assert.equal(sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  assert.equal(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  assert.equal(sha256Hex("a".repeat(1_000_000)), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
});

test("sha256Hex equals node:crypto on every length from 0 to 300 bytes and on multi-byte UTF-8", () => {
  for (let n = 0; n <= 300; n++) {
    const ascii = Array.from({ length: n }, (_, i) => String.fromCharCode(32 + ((i * 37 + n) % 95))).join("");
    assert.equal(sha256Hex(ascii), openssl(ascii), `ascii, ${n} bytes`);
    const mixed = Array.from({ length: n }, (_, i) => (i % 5 === 0 ? "é水🙂"[i % 3]! : "x")).join("");
    assert.equal(sha256Hex(mixed), openssl(mixed), `mixed, ${n} characters`);
  }
});

test("a CLI merge's metadata carries the SHA-256 of the recipe's text, as node:crypto computes it", async () => {
  const dir = await tempDir();
  try {
    const base = baseModel(3);
    const recipe = await writeCase(dir, { base, tuned: fineTune(base, 4, 0.1) }, {
      merge_method: "linear", models: [{ model: "./base", parameters: { weight: 0.5 } }, { model: "./tuned", parameters: { weight: 0.5 } }], dtype: "float32",
    });
    const r = spawnSync(process.execPath, [CLI, "merge", recipe, join(dir, "out"), "--quiet"], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const { metadata } = await readOutput(join(dir, "out"));
    assert.equal(metadata?.recipe_sha256, openssl(await readFile(recipe, "utf8")));
  } finally {
    await removeDir(dir);
  }
});
