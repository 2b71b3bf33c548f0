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
  /** One-line causal check of the top heads (hp.verify), "" before it ran. */
  verdict: string;
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
