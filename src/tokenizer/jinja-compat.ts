/**
 * @file Python's string methods for @huggingface/jinja, whose `strip`, `lstrip` and `rstrip` ignore
 * their argument and take JavaScript's whitespace, and whose `capitalize` leaves the rest of the string
 * as it is. transformers renders templates with jinja2, where they are Python's `str` methods:
 * `s.rstrip("\n")` removes newlines only, which Qwen3's template relies on for a multi-turn
 * conversation's reasoning. The library does not export its value classes, so they are reached through
 * a rendered value, and the string methods it builds are replaced with Python's. Its `range` global is
 * replaced by jinja2's sandboxed one (transformers renders in jinja2's sandbox), which refuses a range of
 * more than 100000 items where the library's filled the heap.
 */
import { Environment, Interpreter, parse, tokenize } from "@huggingface/jinja";

interface RuntimeValue {
  type: string;
  value: unknown;
}
type Method = (args: RuntimeValue[]) => RuntimeValue;
type ValueClass = new (value: unknown) => RuntimeValue;
type FunctionClass = new (call: Method) => RuntimeValue;

/** Python's str.isspace(): Unicode's White_Space and the four ASCII separators \x1c-\x1f (no BOM). */
const PYTHON_SPACE = /^[\t\n\v\f\r\x1c-\x1f\x85\p{Zs}\u2028\u2029]$/u;

/** Python's str.strip / lstrip / rstrip: `chars` (a string) or whitespace when None or not given. */
export function pythonStrip(text: string, chars: string | undefined, left: boolean, right: boolean): string {
  const points = [...text];
  const set = chars === undefined ? undefined : new Set(chars);
  const strips = (c: string) => (set ? set.has(c) : PYTHON_SPACE.test(c));
  let start = 0, end = points.length;
  if (left) while (start < end && strips(points[start]!)) start++;
  if (right) while (end > start && strips(points[end - 1]!)) end--;
  return points.slice(start, end).join("");
}

let installed = false;

/** Gives the library's string values Python's strip, lstrip, rstrip and capitalize, and templates the sandbox's range() (once per process). */
export function usePythonStringMethods(): void {
  if (installed) return;
  installed = true;
  // The library declares its `range` global in every template's environment through `set`.
  const set = Environment.prototype.set;
  Environment.prototype.set = function (this: Environment, name: string, value: unknown) {
    return set.call(this, name, name === "range" ? sandboxRange : value);
  };
  const sample = new Interpreter(new Environment()).run(parse(tokenize("{{ 'x' }}"))) as unknown as RuntimeValue;
  const prototype = Object.getPrototypeOf(sample) as object;
  const builtins = Object.getOwnPropertyDescriptor(prototype, "builtins")?.get;
  if (sample.type !== "StringValue" || builtins === undefined) return; // another layout: left as it is
  const StringValue = sample.constructor as ValueClass;
  const FunctionValue = (builtins.call(sample) as Map<string, RuntimeValue>).get("upper")?.constructor as FunctionClass | undefined;
  if (FunctionValue === undefined) return;
  const patched = new WeakSet<Map<string, RuntimeValue>>();
  // Python's strip takes a str or None; anything else is a TypeError, which refuses the conversation.
  const charsOf = (args: RuntimeValue[]) => {
    const arg = args[0];
    if (arg === undefined || arg.type === "NullValue") return undefined;
    if (arg.type !== "StringValue") throw new TypeError(`strip arg must be None or str, not ${arg.type}`);
    return arg.value as string;
  };
  Object.defineProperty(prototype, "builtins", {
    configurable: true,
    get(this: RuntimeValue) {
      const methods = builtins.call(this) as Map<string, RuntimeValue>;
      if (patched.has(methods)) return methods;
      patched.add(methods);
      const text = this.value as string;
      const strip = (left: boolean, right: boolean) => new FunctionValue((args) => new StringValue(pythonStrip(text, charsOf(args), left, right)));
      methods.set("strip", strip(true, true));
      methods.set("lstrip", strip(true, false));
      methods.set("rstrip", strip(false, true));
      const [first = "", ...rest] = text;
      methods.set("capitalize", new FunctionValue(() => new StringValue(first.toUpperCase() + rest.join("").toLowerCase())));
      return methods;
    },
  });
}

/**
 * jinja2's sandbox refuses a range of more than this many items; transformers renders chat templates in
 * its ImmutableSandboxedEnvironment. Without the limit, a template's range(10**8) filled the heap.
 */
export const SANDBOX_MAX_RANGE = 100_000;

/**
 * Python's range() as jinja2's sandbox gives it to a template: a list of integers, its length worked out
 * before any item is made, refused past SANDBOX_MAX_RANGE with jinja2's message. It replaces the
 * library's, which builds the whole list first.
 */
export function sandboxRange(...args: unknown[]): number[] {
  if (args.length < 1 || args.length > 3) throw new TypeError(`range expected at least 1 argument and at most 3, got ${args.length}`);
  const ints = args.map((a) => {
    const n = typeof a === "boolean" ? Number(a) : a;
    if (typeof n !== "number" || !Number.isSafeInteger(n)) throw new TypeError(`'${typeof a === "number" ? "float" : typeof a}' object cannot be interpreted as an integer`);
    return n;
  });
  const [start, stop, step] = ints.length === 1 ? [0, ints[0]!, 1] : [ints[0]!, ints[1]!, ints[2] ?? 1];
  if (step === 0) throw new RangeError("range() arg 3 must not be zero");
  const length = Math.max(0, Math.ceil((stop - start) / step));
  if (length > SANDBOX_MAX_RANGE) throw new RangeError(`Range too big. The sandbox blocks ranges larger than MAX_RANGE (${SANDBOX_MAX_RANGE}).`);
  return Array.from({ length }, (_, i) => start + i * step);
}
