/** The widget's synced traits, as the Python side (widget.py) declares them. */
import type { KernelMessage } from "./protocol";

/** A numpy array as `_serialization.array_to_json` sends it: the bytes travel as a binary buffer. */
export interface EncodedArray {
  dtype: string;
  shape: number[];
  buffer: DataView | ArrayBuffer | ArrayBufferView;
}

export type TokenWeight = [string, number];

export interface HeadStats {
  layer: number;
  head: number;
  evr: number;
  null_mean: number;
  null_sd: number;
  significant: boolean;
}

/** What flipping one head does (Python: effects_view.head_effect, from ranking.effects.head). */
export interface HeadEffect {
  layer: number;
  head: number;
  /** The concept's name. */
  concept: string;
  /** The edit measured (-1: a flip). */
  alpha: number;
  /** The concept's answer mass edited / unedited. */
  concept_ratio: number;
  /** [category, its answer mass edited / unedited], in the engine's order. */
  others: [string, number][];
  /** Mean log-probability lost on the control facts (nats). */
  control_drop: number;
  /** Median of the others' log ratios minus the concept's (> 0: cuts the concept more). */
  selectivity: number;
  /** The flip also cuts the other categories (an answer or format head). */
  generic: boolean;
  /** Measured by an edited pass at every position (else an estimate). */
  exact: boolean;
}

/** The grid's views: what a head writes (the SOMP score) or what flipping it does (selectivity). */
export type GridViewName = "writes" | "does";

export interface WidgetModel {
  n_layers: number;
  n_heads: number;
  scores: EncodedArray | null;
  /** bool (n_layers, n_heads): heads significantly above the null. */
  significant: EncodedArray | null;
  /** The score the grid shows (one of score_names). */
  score: string;
  score_names: string[];
  selected: number[];
  strengths: Record<string, number>;
  head_tokens: string[];
  tokens: TokenWeight[];
  lens_tokens: TokenWeight[];
  /** The panel head's EVR and its null (mean, sd); {} when none. The panel shows tokens once it matches selected. */
  head_stats: HeadStats | Record<string, never>;
  curve: EncodedArray | null;
  concept: string;
  /** A second concept ('' none): when ranked, scores are the concept's minus its (see scores_minus). */
  compare: string;
  /** '' when scores are the concept's own; else the compared concept whose scores they subtract. */
  scores_minus: string;
  /** '' when the grid shows the full ranking; else why not yet (a first grid from some of the contexts). */
  grid_note: string;
  /** The compared concept's stats for the panel's head; {} when none. */
  compare_stats: HeadStats | Record<string, never>;
  concept_names: string[];
  concept_words: string[];
  /** The sub-token rule typed words are ranked with (one of rule_names). */
  rule: string;
  rule_names: string[];
  /** [baseline, edited] next-token probability of the concept's tokens, or []. */
  concept_prob: number[];
  /** Which selection "Edit top heads" applied last. */
  top_note: string;
  /** One-line causal check (hp.verify) of the applied edits, else of the top heads; "" before it ran. */
  verdict: string;
  /** The verdict word ("specific", "generic", "not in every format", "not better than random", "damaging"); "" while none. */
  verdict_label: string;
  /** What the verdict judges ("the applied edits (L1H0 x-1)", "the top 4 heads ..."); "" while none. */
  verdict_on: string;
  /** What the grid shows: "writes" (scores) or "does" (selectivity, once it is measured). */
  grid_view: GridViewName;
  /** float (n_layers, n_heads): what flipping each head does, > 0 cuts the concept more; null before it is measured. */
  selectivity: EncodedArray | null;
  /** bool (n_layers, n_heads): heads whose flip cuts the other categories too. */
  generic: EncodedArray | null;
  /** bool (n_layers, n_heads): heads measured by an edited pass at every position (else an estimate). */
  exact: EncodedArray | null;
  /** Why "what it does" is not available ("" once it is). */
  effects_note: string;
  /** The panel head's flip; {} when none. */
  head_effect: HeadEffect | Record<string, never>;
  prompt: string;
  max_new_tokens: number;
  baseline_text: string;
  edited_text: string;
  top_k: number;
  top_alpha: number;
  status: string;
  progress: number;
  error: string;
  /** PNG bytes of each sample image (binary buffers); empty for text models. */
  images: ImageBytes[];
  /** Index of the picked image, the one the answers are generated on. */
  sample_index: number;
  /** Python that reproduces the edited answer ('' for image models). */
  code: string;
}

/** One image as it arrives from Python: PNG bytes as a DataView (or any buffer). */
export type ImageBytes = DataView | ArrayBuffer | ArrayBufferView;

/** A model event callback: `() => void` for trait changes, `(msg) => void` for messages. */
export type Listener = (...args: never[]) => void;

/** The part of anywidget's model the views use (kept small so tests can fake it). */
export interface ModelLike {
  get<K extends keyof WidgetModel>(key: K): WidgetModel[K];
  set<K extends keyof WidgetModel>(key: K, value: WidgetModel[K]): void;
  save_changes(): void;
  send(content: KernelMessage): void;
  on(event: string, callback: Listener): void;
  off(event?: string | null, callback?: Listener | null): void;
}

/** Key of a head in the `strengths` trait: "layer.head" (Python: engine/heads.py head_key). */
export function headKey(layer: number, head: number): string {
  return `${layer}.${head}`;
}

/** [layer, head] of a "layer.head" key (the inverse of headKey). */
export function parseHeadKey(key: string): [number, number] {
  const m = /^(\d+)\.(\d+)$/.exec(key);
  if (!m) throw new RangeError(`head key must be "layer.head" (digits '.' digits), got ${JSON.stringify(key)}`);
  return [Number(m[1]), Number(m[2])];
}
