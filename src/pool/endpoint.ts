/**
 * @file comlink speaks the browser's MessagePort interface (addEventListener, events with `data`);
 * Node's worker_threads ports are EventEmitters that deliver the data itself. This adapts one to the
 * other, for both ends of a Node worker.
 */
import type { Endpoint } from "comlink";

interface NodePort {
  postMessage(message: unknown, transfer?: readonly unknown[]): void;
  on(event: "message", listener: (data: unknown) => void): unknown;
  off(event: "message", listener: (data: unknown) => void): unknown;
  start?(): void;
}

type Listener = EventListenerOrEventListenerObject;

export function nodeEndpoint(port: NodePort): Endpoint {
  const wrapped = new WeakMap<Listener, (data: unknown) => void>();
  return {
    postMessage: (message: unknown, transfer?: Transferable[]) => port.postMessage(message, transfer),
    addEventListener(_type: string, listener: Listener) {
      const l = (data: unknown) => {
        const event = { data } as MessageEvent;
        if ("handleEvent" in listener) listener.handleEvent(event);
        else listener(event);
      };
      port.on("message", l);
      wrapped.set(listener, l);
    },
    removeEventListener(_type: string, listener: Listener) {
      const l = wrapped.get(listener);
      if (!l) return;
      port.off("message", l);
      wrapped.delete(listener);
    },
    ...(port.start ? { start: () => port.start!() } : {}),
  };
}
