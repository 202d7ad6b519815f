/**
 * @file One line per method parameter saying what it does, for the page's form. A ParameterSpec's own
 * `description` wins; these lines cover the entries that carry none. Most parameters mean the same in
 * every method that takes them; the ones that do not are described per method.
 */
import { table } from "../table";
import type { ParameterSpec } from "./methods";

const COMMON = table<string>({
  weight: "Scales this model's task vector (its difference from the base).",
  density: "Fraction of the task vector's entries kept; 1 keeps them all.",
  gamma: "Fraction of the largest task-vector entries dropped as outliers.",
  epsilon: "Keep probabilities run from density - epsilon (smallest entries) to density + epsilon (largest).",
  lambda: "Scales the merged task vector before it is added to the base.",
  normalize: "Divide the merged task vector by the sum of the weights (with sign consensus: of those that agree, per entry).",
  rescale: "Scale what pruning kept so each task vector keeps its L1 norm.",
  int8_mask: "How mergekit stores masks (int8 instead of float); no effect on the result.",
  consensus_method: "Sign election: the sum of the values (sum) or the count of their signs (count).",
  vote_weighted: "Elect signs from the weighted task vectors; off, from the unweighted ones (PEFT's way).",
  t: "0 gives the base, 1 the other model; a list is a gradient over the layers.",
});

const BY_METHOD = table<Readonly<Record<string, string>>>({
  linear: table({
    weight: "This model's share of the average.",
    normalize: "Divide by the sum of the weights, so they need not add up to 1.",
  }),
  task_arithmetic: table({ density: "Unused: task arithmetic prunes nothing (accepted, as mergekit does)." }),
  passthrough: table({ scale: "Multiplies the copied tensor; unset copies it as it is." }),
  nuslerp: table({
    weight: "Relative weight of the two models: t = w2 / (w1 + w2).",
    nuslerp_flatten: "Interpolate each tensor as one vector; off, row by row (or column by column).",
    nuslerp_row_wise: "With flatten off: vectors along the first axis (a matrix's columns) instead of rows.",
  }),
  multislerp: table({
    weight: "This model's weight in the spherical mean.",
    normalize_weights: "Divide the weights by their sum.",
    eps: "Small constant that keeps divisions by a norm finite.",
  }),
  karcher: table({
    weight: "Ignored: every input counts the same (accepted, as mergekit does).",
    max_iter: "Most iterations of the mean's refinement.",
    tol: "Stop refining once a step is smaller than this.",
  }),
  model_stock: table({ filter_wise: "One interpolation ratio per row instead of one per tensor." }),
  nearswap: table({ t: "Entries that differ by at most t take the other model's value; farther ones move t/|a-b| of the way." }),
  sce: table({ select_topk: "Fraction of positions kept: those where the task vectors vary most; 1 keeps all." }),
  ram: table({ epsilon: "A task-vector entry counts as changed when its magnitude exceeds this." }),
  ramplus_tl: table({
    epsilon: "A task-vector entry counts as changed when its magnitude exceeds this.",
    r: "Boost of a model's unique changes: 1 + r * min(shared/unique, alpha).",
    alpha: "Cap on the shared/unique ratio in the boost.",
  }),
});

/** What `key` does in `method`; undefined when nothing describes it (the form shows no line then). */
export function describeParameter(method: string, key: string, spec: ParameterSpec): string | undefined {
  return spec.description ?? BY_METHOD[method]?.[key] ?? COMMON[key];
}
