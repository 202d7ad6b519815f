/**
 * @file Browsers: Blobs and file system handles cross to a worker once, not with every call. A job
 * names its inputs by Blob and (model library) FileSystemFileHandle and its output by handle, and
 * structured-cloning a handle costs a round trip to the browser process: in Chromium here 0.23 ms per
 * handle and call, 0.16 ms of it on the worker's thread; a chunk call naming four library files and
 * its output took 2.3 ms against 0.5 ms for a plain message, and a profile of a 1 GiB linear merge
 * from the library put 0.22 s per worker in it. The page's end of a
 * worker's channel replaces every Blob and handle in a message by a token, sending the object itself
 * only the first time; the worker's end puts the objects back before comlink sees the message.
 * Messages on one channel arrive in order, so an object always arrives before its first token.
 */
import type { Endpoint } from "comlink";

/** The key of a token object; the message that carries new objects has it at its top level too. */
const TOKEN = "__weightsoupShared";

/** Objects worth sending once: the ones whose structured clone calls into the browser. */
function isShared(value: object): boolean {
  return (typeof Blob !== "undefined" && value instanceof Blob)
    || (typeof FileSystemHandle !== "undefined" && value instanceof FileSystemHandle);
}

const isPlain = (value: object): boolean => {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
};

/**
 * `value` with each shared object replaced by its token, new objects appended to `fresh`. Only plain
 * objects and arrays are walked (typed arrays, modules and ports go as they are); what changes is
 * copied, the rest is the caller's own object.
 */
function tokenize(value: unknown, ids: Map<object, number>, fresh: [number, object][]): unknown {
  if (typeof value !== "object" || value === null) return value;
  if (isShared(value)) {
    let id = ids.get(value);
    if (id === undefined) {
      id = ids.size;
      ids.set(value, id);
      fresh.push([id, value]);
    }
    return { [TOKEN]: id };
  }
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const v = tokenize(value[i], ids, fresh);
      if (v !== value[i]) (out ??= value.slice())[i] = v;
    }
    return out ?? value;
  }
  if (!isPlain(value)) return value;
  let out: Record<string, unknown> | undefined;
  for (const [k, v0] of Object.entries(value)) {
    const v = tokenize(v0, ids, fresh);
    if (v !== v0) (out ??= { ...value })[k] = v;
  }
  return out ?? value;
}

/** `value` with each token replaced by the object it stands for (in place: the message is the worker's own copy). */
function restore(value: unknown, objects: Map<number, object>): unknown {
  if (typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = restore(value[i], objects);
    return value;
  }
  if (!isPlain(value)) return value;
  const record = value as Record<string, unknown>;
  const id = record[TOKEN];
  if (typeof id === "number") {
    const object = objects.get(id);
    if (!object) throw new Error(`shared object ${id} used before it was sent`);
    return object;
  }
  for (const k of Object.keys(record)) record[k] = restore(record[k], objects);
  return record;
}

/** The page's end of a worker's channel: Blobs and handles are sent once, then as tokens. */
export function sharingEndpoint(endpoint: Endpoint): Endpoint {
  const ids = new Map<object, number>();
  return {
    postMessage(message: unknown, transfer?: Transferable[]) {
      const fresh: [number, object][] = [];
      const wire = tokenize(message, ids, fresh);
      if (fresh.length > 0) endpoint.postMessage({ [TOKEN]: fresh });
      endpoint.postMessage(wire, transfer);
    },
    addEventListener: (type, listener, options) => endpoint.addEventListener(type, listener, options),
    removeEventListener: (type, listener, options) => endpoint.removeEventListener(type, listener, options),
    ...(endpoint.start ? { start: () => endpoint.start!() } : {}),
  };
}

/** The worker's end: keeps the objects the page sends and puts them back in place of their tokens. */
export function receivingEndpoint(endpoint: Endpoint): Endpoint {
  const objects = new Map<number, object>();
  const wrapped = new WeakMap<EventListenerOrEventListenerObject, EventListener>();
  return {
    postMessage: (message: unknown, transfer?: Transferable[]) => endpoint.postMessage(message, transfer),
    addEventListener(type, listener, options) {
      const l = (event: Event) => {
        const data = (event as MessageEvent).data as Record<string, unknown> | null;
        const fresh = data?.[TOKEN];
        if (Array.isArray(fresh)) {
          for (const [id, object] of fresh as [number, object][]) objects.set(id, object);
          return;
        }
        const restored = { data: restore(data, objects), origin: (event as MessageEvent).origin } as MessageEvent;
        if ("handleEvent" in listener) listener.handleEvent(restored);
        else listener(restored);
      };
      wrapped.set(listener, l);
      endpoint.addEventListener(type, l, options);
    },
    removeEventListener(type, listener, options) {
      const l = wrapped.get(listener);
      if (!l) return;
      endpoint.removeEventListener(type, l, options);
      wrapped.delete(listener);
    },
    ...(endpoint.start ? { start: () => endpoint.start!() } : {}),
  };
}
