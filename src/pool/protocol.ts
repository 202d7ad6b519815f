/**
 * @file What crosses between the main thread and a worker besides the calls themselves: errors.
 * comlink's built-in handler rebuilds every thrown value as a plain Error and drops its fields; ours
 * sends a WeightsoupError's class name, code and details and rebuilds the same class, so `instanceof`
 * and `code` work on the calling side. Both sides install it.
 */
import { transferHandlers } from "comlink";
import { errorClasses, WeightsoupError, type ErrorCode, type ErrorDetails } from "../errors";

interface WireError {
  isError: true;
  value: { message: string; name: string; stack?: string; cls?: string; code?: ErrorCode; details?: ErrorDetails };
}

let installed = false;

export function installErrorTransfer(): void {
  if (installed) return;
  installed = true;
  const builtin = transferHandlers.get("throw")!;
  transferHandlers.set("throw", {
    canHandle: builtin.canHandle,
    serialize(thrown: unknown) {
      const value = (thrown as { value: unknown }).value;
      if (value instanceof WeightsoupError) {
        const wire: WireError = {
          isError: true,
          value: { message: value.message, name: value.name, stack: value.stack, cls: value.constructor.name, code: value.code, details: value.details },
        };
        return [wire, []];
      }
      return builtin.serialize(thrown);
    },
    deserialize(wire: unknown) {
      const w = wire as WireError;
      if (w.isError && w.value.cls && w.value.code) {
        const cls = (errorClasses as Record<string, typeof WeightsoupError>)[w.value.cls] ?? WeightsoupError;
        const error = new WeightsoupError(w.value.code, w.value.message, w.value.details ?? {});
        Object.setPrototypeOf(error, cls.prototype);
        if (w.value.stack) error.stack = w.value.stack;
        throw error;
      }
      return builtin.deserialize(wire);
    },
  });
}
