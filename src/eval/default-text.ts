/**
 * @file The text `weightsoup eval` scores when no --text is given: public-domain English of a few
 * thousand tokens (source and licence in default-text.md). Bundled as a string (esbuild's text loader).
 */
import text from "./default-text.txt";

/** Name shown for the default text in results. */
export const DEFAULT_TEXT_NAME = "default text (Declaration of Independence, Gettysburg Address, Lincoln's Second Inaugural)";

export const DEFAULT_TEXT: string = text;
