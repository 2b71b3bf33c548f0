/** Prompt box, Stop button, and the baseline and edited answers (streamed, concept words marked). */
import { h } from "./dom";
import { segments } from "./highlight";
import type { ModelLike } from "./model";
import {
  GENERATE,
  MAX_NEW_TOKENS,
  STOP,
  STREAM_END,
  STREAM_START,
  type StreamMessage,
  type StreamTarget,
  TOKEN,
} from "./protocol";

/** One answer pane. Shows streamed pieces of the newest generation, or the trait's full text. */
export class AnswerView {
  readonly el: HTMLElement;
  private body: HTMLElement;
  private text = "";
  private gen = -1;

  constructor(
    private model: ModelLike,
    private target: StreamTarget,
    title: string,
  ) {
    this.body = h("div", { class: "hp-answer-text", "data-testid": `${target}-text` });
    this.el = h("div", { class: `hp-answer hp-${target}` }, h("h4", { text: title }), this.body);
    this.setText(model.get(`${target}_text`));
  }

  /** Apply a stream message; pieces of an older generation are dropped. */
  onMessage(msg: StreamMessage): void {
    if (msg.target !== this.target) return;
    if (msg.type === STREAM_START) {
      this.gen = msg.gen;
      this.setText("");
      this.body.classList.add("hp-streaming");
    } else if (msg.type === TOKEN && msg.gen === this.gen) {
      this.setText(this.text + msg.piece);
    } else if (msg.type === STREAM_END && msg.gen === this.gen) {
      // the trait may not change (same text as before), so the end of the stream says it is over
      this.body.classList.remove("hp-streaming");
    }
  }

  /** The trait holds the last complete (or stopped) answer. */
  onTrait(): void {
    this.body.classList.remove("hp-streaming");
    this.setText(this.model.get(`${this.target}_text`));
  }

  render(): void {
    this.setText(this.text);
  }

  private setText(text: string): void {
    this.text = text;
    const words = this.model.get("concept_words") ?? [];
    const parts = segments(text, words).map((s) =>
      s.hit ? h("mark", { class: "hp-hit", text: s.text }) : document.createTextNode(s.text),
    );
    this.body.replaceChildren(...parts);
  }
}

export class PromptBox {
  readonly el: HTMLElement;
  private prompt: HTMLTextAreaElement;
  private maxTokens: HTMLInputElement;

  constructor(private model: ModelLike) {
    this.prompt = h("textarea", {
      rows: "2",
      "data-testid": "prompt-input",
      "aria-label": "prompt",
      placeholder: "Prompt to generate from",
    });
    this.maxTokens = h("input", {
      type: "number",
      min: "1",
      max: String(MAX_NEW_TOKENS),
      "data-testid": "max-new-tokens",
      "aria-label": "max new tokens",
    });
    const run = h("button", { type: "button", "data-testid": "generate", text: "Generate" });
    const stop = h("button", { type: "button", "data-testid": "stop", text: "Stop" });
    const commit = () => {
      // read both inputs before setting: each set re-renders them from the model
      const prompt = this.prompt.value;
      const maxNew = Math.min(MAX_NEW_TOKENS, Math.max(1, Math.round(Number(this.maxTokens.value) || 1)));
      this.model.set("prompt", prompt);
      this.model.set("max_new_tokens", maxNew);
      this.model.save_changes();
    };
    run.addEventListener("click", () => {
      commit();
      this.model.send({ type: GENERATE });
    });
    this.prompt.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        run.click();
      }
    });
    this.maxTokens.addEventListener("change", commit);
    stop.addEventListener("click", () => this.model.send({ type: STOP }));
    this.el = h(
      "div",
      { class: "hp-prompt" },
      this.prompt,
      h("label", { text: "max tokens " }),
      this.maxTokens,
      run,
      stop,
    );
    this.render();
  }

  render(): void {
    if (document.activeElement !== this.prompt) this.prompt.value = this.model.get("prompt");
    this.maxTokens.value = String(this.model.get("max_new_tokens"));
  }
}

/** "baseline 31.0%, edited 2.00% (0.06x)" for [baseline, edited] probabilities; "" for []. */
export function readout(probs: number[]): string {
  if (probs.length !== 2 || !probs.every(Number.isFinite)) return "";
  const [b, e] = probs;
  const pct = (p: number) => `${(100 * p).toPrecision(3)}%`;
  const ratio = b > 0 ? ` (${(e / b).toPrecision(2)}x)` : "";
  return `baseline ${pct(b)}, edited ${pct(e)}${ratio}`;
}

/** The next-token readout beside the answers: how likely the next token is one of the concept's. */
export class NextTokenReadout {
  readonly el: HTMLElement;
  private value: HTMLElement;

  constructor(private model: ModelLike) {
    this.value = h("span", { "data-testid": "next-token-readout" });
    this.el = h(
      "p",
      { class: "hp-readout", title: "probability that the next token after the prompt is one of the concept's tokens" },
      h("span", { class: "hp-readout-label", text: "Next token is a concept token: " }),
      this.value,
    );
    this.render();
  }

  render(): void {
    this.value.textContent = readout(this.model.get("concept_prob") ?? []);
    this.el.hidden = !this.value.textContent;
  }
}
