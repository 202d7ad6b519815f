// How long the fuzz suite runs. In `npm test`: a fixed seed and a fixed number of runs per property
// (about a minute in all on a 2-core machine). `npm run fuzz` (FUZZ_LONG=1): a random seed, printed,
// and ten times the runs. Environment knobs, for both:
//   FUZZ_SEED=n        the seed (replays a run together with FUZZ_PATH)
//   FUZZ_PATH=p        fast-check's counterexample path, to replay one shrunk failure (run one property,
//                      e.g. node --test --test-name-pattern="recipe mutations" .build/tests/fuzz.test.js)
//   FUZZ_RUNS=n        runs per property
//   FUZZ_MINUTES=m     stop each property after m minutes (counts as passing if nothing failed)
//   FUZZ_CASE_TIMEOUT_MS=t   a case without an outcome after t ms is a hang (default 30000)
//   FUZZ_SURVEY=1      do not stop at the first failure: collect one example of every distinct
//                      failure (unshrunk) and list them all at the end
//   FUZZ_ONLY=text     only failures whose outcome or problem contains `text` count (to shrink one
//                      kind of failure found by a survey to a minimal case)
//   FUZZ_EXAMPLES=0    skip the fixed examples each property starts with

export interface FuzzSettings {
  long: boolean;
  seed: number;
  path: string | undefined;
  survey: boolean;
  only: string | undefined;
  examples: boolean;
  caseTimeoutMs: number;
  /** Runs for a property that does `quick` runs in npm test. */
  runs(quick: number): number;
  /** Wall-clock cap per property: a safety net against slow shrinking, not a speed assertion. */
  timeLimitMs(quick: number): number | undefined;
}

/** The seed `npm test` uses. */
export const FIXED_SEED = 20250808;

function integerEnv(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const text = env[name];
  if (text === undefined || text === "") return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new Error(`${name}=${text} is not an integer`);
  return n;
}

export function fuzzSettings(env: NodeJS.ProcessEnv = process.env): FuzzSettings {
  const long = env.FUZZ_LONG === "1";
  const seed = integerEnv(env, "FUZZ_SEED") ?? (long ? crypto.getRandomValues(new Int32Array(1))[0]! : FIXED_SEED);
  const runs = integerEnv(env, "FUZZ_RUNS");
  const minutes = integerEnv(env, "FUZZ_MINUTES");
  return {
    long, seed, path: env.FUZZ_PATH || undefined, survey: env.FUZZ_SURVEY === "1", only: env.FUZZ_ONLY || undefined, examples: env.FUZZ_EXAMPLES !== "0",
    caseTimeoutMs: integerEnv(env, "FUZZ_CASE_TIMEOUT_MS") ?? 30_000,
    runs: (quick) => runs ?? (long ? 10 * quick : quick),
    // In npm test a property that finds a failure may shrink it for a while, but not for ever.
    timeLimitMs: (quick) => (minutes !== undefined ? minutes * 60_000 : long ? undefined : Math.max(60_000, quick * 1_000)),
  };
}
