// The model library (src/io/model-library.ts) refuses a model name or file name that cannot name an
// entry of its folder, with E_OUTPUT_NAME naming the bad name, before anything is touched: in Node, the
// browser's storage, locks and Worker are fakes that record every use (a directory handle that records
// the entries created, a Worker constructor that records the copy starting).
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, test } from "node:test";
import { OutputError } from "../src/errors";
import { addToLibrary, MAX_LIBRARY_NAME } from "../src/io/model-library";

/** What the fakes saw: storage calls, entries created (by path), workers started. */
interface Seen {
  storage: string[];
  created: string[];
  workers: number;
}

/** Thrown by the fake Worker: the copy was about to start (every check before it passed). */
class CopyStarted extends Error {}

/** A directory handle holding nothing at first, recording each entry created under `path`. */
function fakeDirectory(path: string, seen: Seen): FileSystemDirectoryHandle {
  const dirs = new Map<string, FileSystemDirectoryHandle>();
  const handle = {
    kind: "directory", name: path,
    async getDirectoryHandle(name: string, options?: { create?: boolean }) {
      const existing = dirs.get(name);
      if (existing) return existing;
      if (!options?.create) throw new DOMException(`${name} not found`, "NotFoundError");
      seen.created.push(`${path}/${name}`);
      const dir = fakeDirectory(`${path}/${name}`, seen);
      dirs.set(name, dir);
      return dir;
    },
    async getFileHandle(name: string, options?: { create?: boolean }) {
      if (options?.create) seen.created.push(`${path}/${name}`);
      throw new DOMException(`${name}: files are not faked`, "NotFoundError");
    },
    async removeEntry(name: string) { dirs.delete(name); },
    async *entries() { yield* dirs.entries(); },
  };
  return handle as unknown as FileSystemDirectoryHandle;
}

const saved: Record<string, PropertyDescriptor | undefined> = {};
let seen: Seen;

beforeEach(() => {
  seen = { storage: [], created: [], workers: 0 };
  const root = fakeDirectory("opfs", seen);
  const fakes: Record<string, unknown> = {
    navigator: {
      storage: {
        estimate: async () => { seen.storage.push("estimate"); return { quota: 2 ** 40, usage: 0 }; },
        getDirectory: async () => { seen.storage.push("getDirectory"); return root; },
      },
      locks: { request: async (_name: string, fn: () => Promise<unknown>) => fn() },
    },
    Worker: class {
      constructor() {
        seen.workers++;
        throw new CopyStarted("the copy would start here");
      }
    },
  };
  for (const [key, value] of Object.entries(fakes)) {
    saved[key] = Object.getOwnPropertyDescriptor(globalThis, key);
    Object.defineProperty(globalThis, key, { value, configurable: true, writable: true });
  }
});

afterEach(() => {
  for (const [key, descriptor] of Object.entries(saved)) {
    if (descriptor) Object.defineProperty(globalThis, key, descriptor);
    else delete (globalThis as Record<string, unknown>)[key];
  }
});

const OPTIONS = { workerUrl: "worker.js" };
const weights = (name = "model.safetensors") => new Map([[name, new Blob([new Uint8Array(16)])], ["config.json", new Blob(["{}"])]]);

/** Asserts the call is refused with E_OUTPUT_NAME naming `bad`, and that nothing was touched. */
async function assertRefused(call: Promise<unknown>, bad: string): Promise<void> {
  await assert.rejects(call, (e: unknown) => {
    assert.ok(e instanceof OutputError, `an OutputError, not ${String(e)}`);
    assert.equal(e.code, "E_OUTPUT_NAME");
    assert.equal(e.details.file, bad);
    assert.ok(e.message.includes(JSON.stringify(bad)), `the message names ${JSON.stringify(bad)}: ${e.message}`);
    return true;
  });
  assert.deepEqual(seen, { storage: [], created: [], workers: 0 }, "refused before the storage was asked about anything");
}

const BAD_NAMES: [string, string][] = [
  ["empty", ""],
  ["a dot", "."],
  ["two dots", ".."],
  ["a leading dot", ".weightsoup-library"],
  ["a slash", "org/model"],
  ["a backslash", "org\\model"],
  ["a path escaping the folder", "../../etc"],
  ["a newline", "model\nname"],
  ["a NUL", "model\u0000"],
  ["DEL", "model\u007f"],
  ["over-long", "m".repeat(MAX_LIBRARY_NAME + 1)],
];

describe("model library names", () => {
  test("a usable model name and file names pass the checks: the copy starts (the fake Worker is reached)", async () => {
    const longest = "m".repeat(MAX_LIBRARY_NAME);
    await assert.rejects(addToLibrary(longest, weights("model-00001-of-00002.safetensors"), OPTIONS), CopyStarted);
    assert.equal(seen.workers, 1);
    assert.ok(seen.storage.includes("estimate"), JSON.stringify(seen));
    assert.ok(seen.created.some((p) => p.startsWith("opfs/.weightsoup-library/m-")), JSON.stringify(seen.created));
  });

  for (const [what, bad] of BAD_NAMES) {
    test(`a model name with ${what} is refused before any copy starts`, async () => {
      await assertRefused(addToLibrary(bad, weights(), OPTIONS), bad);
    });
    test(`a file name with ${what} is refused before any copy starts`, async () => {
      await assertRefused(addToLibrary("good-model", weights(bad), OPTIONS), bad);
    });
  }
});
