// Blobs (and, in browsers, file system handles) cross a worker channel once (src/pool/shared-handles.ts):
// through comlink over a real MessageChannel, a call gets back the very Blobs it was given, nested
// anywhere in plain objects and arrays, while each Blob is posted only with the first call that names it.
import assert from "node:assert/strict";
import { test } from "node:test";
import { expose, wrap, type Endpoint } from "comlink";
import { receivingEndpoint, sharingEndpoint } from "../src/pool/shared-handles";

interface Api {
  describe(job: unknown): Promise<string>;
}

/** What the worker's side sees: every Blob's text where it stands, typed arrays by their contents. */
async function describe(value: unknown): Promise<string> {
  if (value instanceof Blob) return `blob(${await value.text()})`;
  if (value instanceof Float32Array) return `f32[${[...value].join(",")}]`;
  if (Array.isArray(value)) return `[${(await Promise.all(value.map(describe))).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const parts = await Promise.all(Object.entries(value).map(async ([k, v]) => `${k}:${await describe(v)}`));
    return `{${parts.join(",")}}`;
  }
  return JSON.stringify(value);
}

/** A channel whose page end counts the Blobs its messages carry (structured clones of them). */
function channel() {
  const { port1, port2 } = new MessageChannel();
  let blobsPosted = 0, messages = 0;
  const countBlobs = (v: unknown): number => v instanceof Blob ? 1 : typeof v === "object" && v !== null && !ArrayBuffer.isView(v) ? Object.values(v).reduce((n: number, x) => n + countBlobs(x), 0) : 0;
  const counted: Endpoint = {
    postMessage(message: unknown, transfer?: Transferable[]) {
      messages++;
      blobsPosted += countBlobs(message);
      port1.postMessage(message, transfer ?? []);
    },
    addEventListener: port1.addEventListener.bind(port1) as Endpoint["addEventListener"],
    removeEventListener: port1.removeEventListener.bind(port1) as Endpoint["removeEventListener"],
    start: () => port1.start(),
  };
  expose({ describe } satisfies Api, receivingEndpoint(port2 as unknown as Endpoint));
  const api = wrap<Api>(sharingEndpoint(counted));
  return { api, stats: () => ({ blobsPosted, messages }), close: () => { port1.close(); port2.close(); } };
}

test("Blobs reach the worker intact wherever they stand, and each is posted once", async () => {
  const { api, stats, close } = channel();
  try {
    const a = new Blob(["alpha"]), b = new Blob(["beta"]), c = new Blob(["gamma"]);
    const job = { name: "t", inputs: [{ source: { kind: "blob", blob: a, name: "a" } }, { source: { kind: "blob", blob: b, name: "b" } }], weights: new Float32Array([0.5, 2]), nested: [[a], { deep: { blob: b } }] };
    const expected = '{name:"t",inputs:[{source:{kind:"blob",blob:blob(alpha),name:"a"}},{source:{kind:"blob",blob:blob(beta),name:"b"}}],weights:f32[0.5,2],nested:[[blob(alpha)],{deep:{blob:blob(beta)}}]}';
    assert.equal(await api.describe(job), expected);
    // The first call carried a and b once each (a message of new objects before the call itself).
    assert.deepEqual(stats(), { blobsPosted: 2, messages: 2 });
    // The same objects again: tokens only, one message, the same result.
    assert.equal(await api.describe(job), expected);
    assert.deepEqual(stats(), { blobsPosted: 2, messages: 3 });
    // A new Blob beside a known one: only the new one is posted.
    assert.equal(await api.describe({ old: a, fresh: c }), "{old:blob(alpha),fresh:blob(gamma)}");
    assert.deepEqual(stats(), { blobsPosted: 3, messages: 5 });
    // The caller's job is left as it was (tokens go into copies).
    assert.equal(job.inputs[0]!.source.blob, a);
    assert.equal((job.nested[1] as { deep: { blob: Blob } }).deep.blob, b);
    // A message with no Blob passes through as it is.
    assert.equal(await api.describe({ n: 1, list: [1, "x", null] }), '{n:1,list:[1,"x",null]}');
    assert.deepEqual(stats(), { blobsPosted: 3, messages: 6 });
  } finally {
    close();
  }
});
