/** anywidget entry point: composes the views and wires them to model changes. */
import type { AnyModel, RenderProps } from "@anywidget/types";
import "./widget.css";
import { ConceptBox, StatusBar } from "./controls";
import { h } from "./dom";
import { EditsList } from "./edits";
import { GridView } from "./grid";
import { ImageStrip, ImageUrls, SampleImage } from "./images";
import type { ModelLike, WidgetModel } from "./model";
import type { StreamMessage } from "./protocol";
import { CopyCode } from "./share";
import { HeadSlider, TopControl } from "./sliders";
import { AnswerView, NextTokenReadout, PromptBox } from "./text";
import { TokenPanel } from "./tokens";

/** Keys pressed in the widget stay in the widget: the notebook's shortcuts (arrows move between or
 * collapse cells, letters run commands) must not act on a key meant for a slider, box or grid
 * cell. This stops the key reaching the notebook's bubbling handlers (JupyterLab); Escape and keys
 * held with Ctrl/Cmd/Alt still propagate. Notebook 7 matches shortcuts in the capture phase, before
 * this runs: see `suppressShortcuts`. */
export function keepKeys(e: KeyboardEvent): void {
  if (e.key === "Escape" || e.ctrlKey || e.metaKey || e.altKey) return;
  e.stopPropagation();
}

/** Lumino's shortcut matcher (JupyterLab, Notebook 7) walks from the key's target up and stops at an
 * element with `data-lm-suppress-shortcuts`, but matches selectors such as
 * `.jp-Notebook.jp-mod-commandMode :focus` on each element first, so the attribute must sit on the
 * focused control itself: every control of the widget gets it when it takes focus. */
export function suppressShortcuts(e: FocusEvent): void {
  (e.target as HTMLElement).setAttribute?.("data-lm-suppress-shortcuts", "true");
}

/** True if `panel` starts below the bottom of `grid` (the narrow, stacked layout). */
export function stackedBelow(grid: HTMLElement, panel: HTMLElement): boolean {
  const g = grid.getBoundingClientRect();
  const p = panel.getBoundingClientRect();
  return p.height > 0 && p.top >= g.bottom - 1;
}

/** Build the widget inside `el`; returns a function that detaches the listeners. */
export function mount(model: ModelLike, el: HTMLElement): () => void {
  const concept = new ConceptBox(model);
  const status = new StatusBar(model);
  const grid = new GridView(model);
  const slider = new HeadSlider(model);
  const panel = new TokenPanel(model, slider.el);
  const top = new TopControl(model);
  const edits = new EditsList(model);
  const readout = new NextTokenReadout(model);
  const prompt = new PromptBox(model);
  const baseline = new AnswerView(model, "baseline", "Baseline");
  const edited = new AnswerView(model, "edited", "Edited");
  const share = new CopyCode(model);
  const urls = new ImageUrls();
  const strip = new ImageStrip(model, urls);
  const sample = new SampleImage(model, urls);
  const answers = h("div", { class: "hp-answers" }, sample.el, baseline.el, edited.el);
  const showImages = () => {
    strip.render();
    sample.render();
    answers.classList.toggle("hp-with-image", !sample.el.hidden);
  };
  showImages();

  el.classList.add("hp-root");
  el.replaceChildren(
    h("div", { class: "hp-head" }, concept.el, status.el),
    h("div", { class: "hp-main" }, grid.el, h("div", { class: "hp-side" }, panel.el, top.el, edits.el)),
    strip.el,
    prompt.el,
    readout.el,
    answers,
    share.el,
  );
  el.addEventListener("keydown", keepKeys);
  el.addEventListener("focusin", suppressShortcuts);
  // below ~820 px the panel sits under the grid: bring it into view when a head is picked there
  const reveal = (e: Event) => {
    if ((e.target as HTMLElement).closest?.("[role=gridcell]") && stackedBelow(grid.el, panel.el)) {
      panel.el.scrollIntoView?.({ block: "nearest", behavior: "smooth" });
    }
  };
  grid.el.addEventListener("click", reveal);

  const on: [string, () => void][] = [
    ["change:n_layers change:n_heads", () => grid.render()],
    [
      "change:scores change:significant change:strengths change:selected change:score change:concept " +
        "change:scores_minus change:grid_view change:selectivity change:generic change:exact change:effects_note " +
        "change:grid_note",
      () => grid.update(),
    ],
    [
      "change:selected change:tokens change:lens_tokens change:curve change:scores change:score change:head_stats " +
        "change:compare_stats change:scores_minus change:head_effect change:effects_note",
      () => panel.render(),
    ],
    ["change:selected change:strengths", () => slider.render()],
    ["change:strengths change:top_k change:top_alpha change:top_note", () => top.render()],
    ["change:strengths", () => edits.render()],
    ["change:concept_prob", () => readout.render()],
    [
      "change:concept change:concept_names change:score_names change:score change:rule change:rule_names change:compare",
      () => concept.render(),
    ],
    [
      "change:status change:progress change:error change:verdict change:verdict_label change:verdict_on",
      () => status.render(),
    ],
    ["change:prompt change:max_new_tokens", () => prompt.render()],
    ["change:baseline_text", () => baseline.onTrait()],
    ["change:edited_text", () => edited.onTrait()],
    [
      "change:concept_words",
      () => {
        baseline.render();
        edited.render();
      },
    ],
    ["change:images change:sample_index", showImages],
    ["change:code", () => share.render()],
  ];
  const onMsg = (msg: StreamMessage) => {
    baseline.onMessage(msg);
    edited.onMessage(msg);
  };
  for (const [ev, fn] of on) for (const name of ev.split(" ")) model.on(name, fn);
  model.on("msg:custom", onMsg);
  return () => {
    for (const [ev, fn] of on) for (const name of ev.split(" ")) model.off(name, fn);
    model.off("msg:custom", onMsg);
    el.removeEventListener("keydown", keepKeys);
    el.removeEventListener("focusin", suppressShortcuts);
    grid.el.removeEventListener("click", reveal);
    urls.dispose();
  };
}

export default {
  render({ model, el }: RenderProps<WidgetModel>) {
    return mount(model as unknown as AnyModel<WidgetModel> & ModelLike, el);
  },
};
