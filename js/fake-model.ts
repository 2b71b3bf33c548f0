/** An in-memory stand-in for anywidget's model, for the view tests. */
import { mount } from "./index";
import type { Listener, ModelLike, WidgetModel } from "./model";

/** The widget mounted on a fresh element: q(testid) finds a part, cleanup() unmounts and removes it. */
export function mountFake(model: FakeModel) {
  const el = document.createElement("div");
  document.body.append(el);
  const unmount = mount(model, el);
  const q = (id: string) => {
    const found = el.querySelector<HTMLElement>(`[data-testid="${id}"]`);
    if (!found) throw new Error(`no element with data-testid="${id}"`);
    return found;
  };
  return {
    el,
    q,
    cleanup: () => {
      unmount();
      el.remove();
    },
  };
}

export function encode(values: number[], dtype: "float32" | "uint8", shape: number[]) {
  const arr = dtype === "float32" ? new Float32Array(values) : new Uint8Array(values);
  return { dtype, shape, buffer: new DataView(arr.buffer) };
}

export function defaults(over: Partial<WidgetModel> = {}): WidgetModel {
  return {
    n_layers: 2,
    n_heads: 3,
    scores: null,
    significant: null,
    score: "specificity",
    score_names: ["specificity", "evr", "logit_lens"],
    selected: [],
    strengths: {},
    head_tokens: [],
    tokens: [],
    lens_tokens: [],
    head_stats: {},
    curve: null,
    concept: "colours",
    compare: "",
    scores_minus: "",
    grid_note: "",
    compare_stats: {},
    concept_names: ["colours", "countries"],
    concept_words: [],
    rule: "whole_word",
    rule_names: ["whole_word", "first_subtoken", "all_subtokens"],
    concept_prob: [],
    top_note: "",
    verdict: "",
    verdict_label: "",
    verdict_on: "",
    grid_view: "writes",
    selectivity: null,
    generic: null,
    exact: null,
    effects_note: "",
    head_effect: {},
    prompt: "",
    max_new_tokens: 32,
    baseline_text: "",
    edited_text: "",
    top_k: 4,
    top_alpha: -1,
    status: "ready",
    progress: 0,
    error: "",
    images: [],
    sample_index: 0,
    code: "",
    ...over,
  };
}

export class FakeModel implements ModelLike {
  state: WidgetModel;
  sent: unknown[] = [];
  saves = 0;
  private handlers = new Map<string, Set<Listener>>();

  constructor(over: Partial<WidgetModel> = {}) {
    this.state = defaults(over);
  }
  get<K extends keyof WidgetModel>(key: K): WidgetModel[K] {
    return this.state[key];
  }
  set<K extends keyof WidgetModel>(key: K, value: WidgetModel[K]): void {
    this.state[key] = value;
    this.emit(`change:${String(key)}`);
  }
  save_changes(): void {
    this.saves++;
  }
  send(content: unknown): void {
    this.sent.push(content);
  }
  on(event: string, cb: Listener): void {
    const listeners = this.handlers.get(event) ?? new Set();
    this.handlers.set(event, listeners.add(cb));
  }
  off(event?: string | null, cb?: Listener | null): void {
    if (event && cb) this.handlers.get(event)?.delete(cb);
  }
  emit(event: string, ...args: unknown[]): void {
    for (const cb of this.handlers.get(event) ?? []) (cb as (...a: unknown[]) => void)(...args);
  }
  listenerCount(): number {
    let n = 0;
    for (const s of this.handlers.values()) n += s.size;
    return n;
  }
}
