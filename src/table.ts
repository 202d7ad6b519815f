/**
 * @file Fixed lookup tables keyed by names that arrive from outside (dtypes from headers, methods and
 * parameters from recipes). A plain object literal inherits "constructor", "toString" and a
 * "__proto__" accessor, so looking up such a name would find something; these tables have no
 * prototype, so every name not listed finds nothing. Tables built at run time from outside names are
 * Maps.
 */
export function table<T>(entries: Record<string, T>): Readonly<Record<string, T>> {
  return Object.freeze(Object.assign(Object.create(null) as Record<string, T>, entries));
}
