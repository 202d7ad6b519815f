/**
 * @file How recipe YAML is read and written: as mergekit reads it. mergekit-yaml loads a recipe with
 * PyYAML's `safe_load`, a YAML 1.1 loader, so a pasted recipe's plain scalars must resolve as they do
 * there, not by YAML 1.2's core schema: `yes`/`no`/`on`/`off` are booleans (`normalize: off` turns
 * normalisation off), `010` is octal (8), `1_000` is 1000, `1:30` is sexagesimal (90), and `<<: *anchor`
 * merges a mapping. Two departures from the yaml package's own 1.1 schema, both toward PyYAML:
 *   - booleans are PyYAML's words only; `y`, `Y`, `n` and `N` stay text (the yaml package reads them as
 *     booleans, which would turn a token or model named `n` into `false`);
 *   - dates stay text: PyYAML makes `2024-01-01` a date that no recipe field accepts (mergekit then fails
 *     validation), and text is the reading that cannot change a number.
 * Every reader and writer of recipe text uses these options, so a document edited in the page or by a
 * sweep and written back reads the same (the stringifier quotes any text these rules would resolve).
 */
import type { DocumentOptions, ParseOptions, ScalarTag, SchemaOptions, Tags } from "yaml";

const BOOL = "tag:yaml.org,2002:bool";
const TIMESTAMP = "tag:yaml.org,2002:timestamp";
// PyYAML's resolver (resolver.py, `tag:yaml.org,2002:bool`).
const PYYAML_TRUE = /^(?:yes|Yes|YES|true|True|TRUE|on|On|ON)$/;
const PYYAML_FALSE = /^(?:no|No|NO|false|False|FALSE|off|Off|OFF)$/;

// Read only where a recipe writes the tag (`!!omap`, as PyYAML reads it): the yaml package would also
// pick them for a JavaScript Map or Set when building a node, and the page's edits build Maps.
const EXPLICIT_ONLY = new Set(["tag:yaml.org,2002:omap", "tag:yaml.org,2002:pairs", "tag:yaml.org,2002:set"]);

function pyyamlTags(tags: Tags): Tags {
  return tags
    .filter((t) => typeof t === "string" || t.tag !== TIMESTAMP)
    .map((t) => {
      if (typeof t === "string") return t;
      if (EXPLICIT_ONLY.has(t.tag)) return { ...t, identify: undefined };
      if (t.tag !== BOOL) return t;
      const bool = t as ScalarTag;
      return { ...bool, test: bool.identify?.(true) ? PYYAML_TRUE : PYYAML_FALSE };
    });
}

/** Options for every parse and stringify of recipe text. */
export const RECIPE_YAML: ParseOptions & DocumentOptions & SchemaOptions = Object.freeze({
  version: "1.1",
  // Named as well as implied by the version: a `%YAML 1.2` directive would otherwise switch a document
  // to the 1.2 core schema, where PyYAML reads every document by its 1.1 rules.
  schema: "yaml-1.1",
  merge: true,
  customTags: pyyamlTags,
});
