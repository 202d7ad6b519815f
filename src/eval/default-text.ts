// TEMPORARY STUB until the tok branch lands.
export const DEFAULT_TEXT = "Four score and seven years ago our fathers brought forth on this continent, a new nation, conceived in Liberty, and dedicated to the proposition that all men are created equal.";
export const DEFAULT_TEXT_SOURCE = "placeholder";
