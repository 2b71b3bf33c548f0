/** anywidget entry point: composes the views and wires them to model changes. */
import type { AnyModel, RenderProps } from "@anywidget/types";
import "./widget.css";
import { ConceptBox, StatusBar } from "./controls";
import { h } from "./dom";
import { GridView } from "./grid";
import { ImageStrip, ImageUrls, SampleImage } from "./images";
import type { ModelLike, WidgetModel } from "./model";
import type { StreamMessage } from "./protocol";
import { CopyCode } from "./share";
import { HeadSlider, TopControl } from "./sliders";
import { AnswerView, PromptBox } from "./text";
import { TokenPanel } from "./tokens";

/** Build the widget inside `el`; returns a function that detaches the listeners. */
export function mount(model: ModelLike, el: HTMLElement): () => void {
  const concept = new ConceptBox(model);
  const status = new StatusBar(model);
  const grid = new GridView(model);
  const slider = new HeadSlider(model);
  const panel = new TokenPanel(model, slider.el);
  const top = new TopControl(model);
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
    h("div", { class: "hp-main" }, grid.el, h("div", { class: "hp-side" }, panel.el, top.el)),
    strip.el,
    prompt.el,
    answers,
    share.el,
  );

  const on: [string, () => void][] = [
    ["change:n_layers change:n_heads", () => grid.render()],
    ["change:scores change:above_null change:strengths change:selected change:score", () => grid.update()],
    [
      "change:selected change:tokens change:lens_tokens change:curve change:scores change:score change:above_null",
      () => panel.render(),
    ],
    ["change:selected change:strengths", () => slider.render()],
    ["change:strengths change:top_k change:top_alpha", () => top.render()],
    ["change:concept change:concept_names change:score_names change:score", () => concept.render()],
    ["change:status change:progress change:error", () => status.render()],
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
    urls.dispose();
  };
}

export default {
  render({ model, el }: RenderProps<WidgetModel>) {
    return mount(model as unknown as AnyModel<WidgetModel> & ModelLike, el);
  },
};
