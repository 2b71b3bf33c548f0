/** Concept box, score switch, and the status line with progress bar and error message. */
import { h } from "./dom";
import type { ModelLike } from "./model";

/** Labels of the engine's score names in the score switch. */
export const SCORE_LABELS: Record<string, string> = {
  specificity: "SOMP specificity (EVR minus random-word null)",
  evr: "SOMP raw EVR (paper)",
  logit_lens: "Logit Lens",
};

export class ConceptBox {
  readonly el: HTMLElement;
  private input: HTMLInputElement;
  private names: HTMLDataListElement;
  private score: HTMLSelectElement;
  private rule: HTMLSelectElement;
  private compare: HTMLInputElement;
  private static seq = 0;

  constructor(private model: ModelLike) {
    const listId = `hp-concepts-${ConceptBox.seq++}`;
    this.names = h("datalist", { id: listId });
    this.input = h("input", {
      type: "text",
      list: listId,
      "data-testid": "concept-input",
      "aria-label": "concept",
      placeholder: "shipped concept, or words: red, green, blue",
    });
    const rank = h("button", { type: "button", "data-testid": "rank", text: "Rank heads" });
    const commit = () => {
      this.model.set("concept", this.input.value.trim());
      this.model.save_changes();
    };
    rank.addEventListener("click", commit);
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") commit();
    });
    this.compare = h("input", {
      type: "text",
      list: listId,
      "data-testid": "compare-input",
      "aria-label": "compare with concept",
      title: "a second concept: the grid shows the concept's score minus this one's (empty: off)",
      placeholder: "compare: another concept",
    });
    const commitCompare = () => {
      if (this.compare.value.trim() === this.model.get("compare")) return;
      this.model.set("compare", this.compare.value.trim());
      this.model.save_changes();
    };
    this.compare.addEventListener("change", commitCompare);
    this.compare.addEventListener("keydown", (e) => {
      if (e.key === "Enter") commitCompare();
    });
    this.score = h("select", { "data-testid": "score-switch", "aria-label": "score" });
    this.score.addEventListener("change", () => {
      this.model.set("score", this.score.value);
      this.model.save_changes();
    });
    this.rule = h("select", {
      "data-testid": "rule-switch",
      "aria-label": "sub-token rule",
      title: "which tokens of a word that splits into several enter the dictionary",
    });
    this.rule.addEventListener("change", () => {
      this.model.set("rule", this.rule.value);
      this.model.save_changes();
    });
    this.el = h(
      "div",
      { class: "hp-concept" },
      h("label", { text: "Concept " }),
      this.input,
      this.names,
      rank,
      h("label", { text: " minus " }),
      this.compare,
      h("label", { text: " Score " }),
      this.score,
      h("label", { text: " Sub-tokens " }),
      this.rule,
    );
    this.render();
  }

  render(): void {
    if (document.activeElement !== this.input) this.input.value = this.model.get("concept");
    if (document.activeElement !== this.compare) this.compare.value = this.model.get("compare") ?? "";
    this.names.replaceChildren(...(this.model.get("concept_names") ?? []).map((n) => h("option", { value: n })));
    const names = this.model.get("score_names") ?? [];
    this.score.replaceChildren(...names.map((n) => h("option", { value: n, text: SCORE_LABELS[n] ?? n })));
    this.score.value = this.model.get("score");
    this.rule.replaceChildren(...(this.model.get("rule_names") ?? []).map((n) => h("option", { value: n, text: n })));
    this.rule.value = this.model.get("rule");
  }
}

export class StatusBar {
  readonly el: HTMLElement;
  private text: HTMLElement;
  private bar: HTMLProgressElement;
  private error: HTMLElement;
  private verdict: HTMLElement;
  private verdictLabel: HTMLElement;
  private verdictOn: HTMLElement;
  private verdictText: HTMLElement;

  constructor(private model: ModelLike) {
    this.text = h("span", { "data-testid": "status", class: "hp-status-text" });
    this.bar = h("progress", { max: "1", "data-testid": "progress" });
    this.error = h("div", { role: "alert", class: "hp-error", "data-testid": "error" });
    this.verdictLabel = h("span", { class: "hp-verdict-label", "data-testid": "verdict-label" });
    this.verdictOn = h("span", { class: "hp-verdict-on", "data-testid": "verdict-on" });
    this.verdictText = h("span", { "data-testid": "verdict-text" });
    this.verdict = h(
      "div",
      { class: "hp-verdict", "data-testid": "verdict", "aria-live": "polite" },
      this.verdictLabel,
      this.verdictOn,
      this.verdictText,
    );
    this.el = h("div", { class: "hp-status" }, this.text, this.bar, this.error, this.verdict);
    this.render();
  }

  render(): void {
    const status = this.model.get("status");
    const progress = this.model.get("progress");
    this.text.textContent = status;
    this.bar.hidden = !(progress > 0 && progress < 1);
    this.bar.value = progress;
    const err = this.model.get("error");
    this.error.textContent = err;
    this.error.hidden = !err;
    const verdict = this.model.get("verdict") ?? "";
    const label = this.model.get("verdict_label") ?? "";
    const on = this.model.get("verdict_on") ?? "";
    this.verdictText.textContent = verdict;
    this.verdictOn.textContent = on ? `Verdict on ${on}: ` : "";
    this.verdictLabel.textContent = label;
    this.verdictLabel.hidden = !label;
    this.verdictLabel.dataset.verdict = label;
    this.verdict.hidden = !verdict;
  }
}
