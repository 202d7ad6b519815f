/**
 * @file Evaluation numbers as `weightsoup eval` prints them in its table (src/cli/eval-commands.ts), so
 * a number read in the page and one read in a terminal can be compared digit for digit.
 */

export const formatPerplexity = (x: number): string => x.toFixed(3);
export const formatNll = (x: number): string => x.toFixed(4);
/** null: pre-tokenized input without a tokenizer has no bytes to divide by. */
export const formatBitsPerByte = (x: number | null): string => (x === null ? "–" : x.toFixed(4));
export const formatKl = (x: number): string => x.toFixed(5);
export const formatAgreement = (x: number): string => `${(100 * x).toFixed(2)}%`;
