/** Edit strengths: a slider for the selected head, and "top-k heads x alpha" for many. */
import { debounce, h } from "./dom";
import { headKey, type ModelLike } from "./model";
import { APPLY_TOP } from "./protocol";

/** Strengths with `key` set to `alpha`; alpha 1 means "no edit" and removes the key. */
export function withStrength(strengths: Record<string, number>, key: string, alpha: number): Record<string, number> {
  const next = { ...strengths };
  if (alpha === 1) delete next[key];
  else next[key] = alpha;
  return next;
}

/** What alpha does to a head's write: suppress (< 0), ablate (0), dampen (0..1), no edit (1), enhance (> 1). */
export function describe(alpha: number): string {
  if (alpha === 1) return "x1 (no edit)";
  if (alpha === 0) return "x0 (ablate)";
  if (alpha < 0) return `x${alpha} (suppress)`;
  return alpha < 1 ? `x${alpha} (dampen)` : `x${alpha} (enhance)`;
}

/** Slider range and the ticks marked under it. */
export const ALPHA_MIN = -4;
export const ALPHA_MAX = 8;
export const ALPHA_TICKS = [-1, 0, 1];

export class HeadSlider {
  readonly el: HTMLElement;
  private input: HTMLInputElement;
  private number: HTMLInputElement;
  private value: HTMLElement;
  private static seq = 0;

  constructor(
    private model: ModelLike,
    delayMs = 150,
  ) {
    const ticksId = `hp-alpha-ticks-${HeadSlider.seq++}`;
    this.input = h("input", {
      type: "range",
      min: String(ALPHA_MIN),
      max: String(ALPHA_MAX),
      step: "0.25",
      value: "1",
      list: ticksId,
      "data-testid": "head-slider",
      "aria-label": "edit strength of the selected head",
    });
    const ticks = h("datalist", { id: ticksId }, ...ALPHA_TICKS.map((v) => h("option", { value: String(v) })));
    const labels = h("div", { class: "hp-ticks", "aria-hidden": "true", "data-testid": "head-slider-ticks" });
    for (const v of ALPHA_TICKS) {
      const tick = h("span", { text: String(v) });
      tick.style.left = `${(100 * (v - ALPHA_MIN)) / (ALPHA_MAX - ALPHA_MIN)}%`;
      labels.append(tick);
    }
    this.number = h("input", {
      type: "number",
      step: "0.05",
      "data-testid": "head-alpha",
      "aria-label": "edit strength of the selected head (number)",
    });
    this.value = h("output", { "data-testid": "head-slider-value" });
    const commit = debounce((alpha: number) => this.commit(alpha), delayMs);
    this.input.addEventListener("input", () => {
      const alpha = Number(this.input.value);
      this.value.textContent = describe(alpha);
      this.number.value = String(alpha);
      commit(alpha);
    });
    this.input.addEventListener("change", () => commit.flush());
    this.number.addEventListener("change", () => {
      const alpha = Number(this.number.value);
      if (this.number.value.trim() === "" || !Number.isFinite(alpha)) return this.render();
      commit(alpha);
      commit.flush();
    });
    const reset = h("button", { type: "button", "data-testid": "head-reset", text: "Reset head" });
    reset.addEventListener("click", () => this.commit(1));
    this.el = h(
      "div",
      { class: "hp-head-slider" },
      h("label", { text: "Strength (alpha) " }),
      h("span", { class: "hp-range" }, this.input, ticks, labels),
      this.number,
      this.value,
      reset,
    );
    this.render();
  }

  private commit(alpha: number): void {
    const sel = this.model.get("selected") ?? [];
    if (sel.length !== 2) return;
    this.model.set("strengths", withStrength(this.model.get("strengths") ?? {}, headKey(sel[0], sel[1]), alpha));
    this.model.save_changes();
  }

  render(): void {
    const sel = this.model.get("selected") ?? [];
    const alpha = sel.length === 2 ? (this.model.get("strengths")?.[headKey(sel[0], sel[1])] ?? 1) : 1;
    this.input.value = String(alpha);
    if (document.activeElement !== this.number) this.number.value = String(alpha);
    this.value.textContent = describe(alpha);
  }
}

export class TopControl {
  readonly el: HTMLElement;
  private k: HTMLInputElement;
  private alpha: HTMLInputElement;
  private count: HTMLElement;
  private note: HTMLElement;

  constructor(private model: ModelLike) {
    this.k = h("input", {
      type: "number",
      min: "1",
      step: "1",
      "data-testid": "top-k",
      "aria-label": "number of top heads",
    });
    this.alpha = h("input", {
      type: "number",
      step: "0.5",
      "data-testid": "top-alpha",
      "aria-label": "alpha for the top heads",
    });
    const apply = h("button", {
      type: "button",
      "data-testid": "apply-top",
      text: "Edit top heads",
      title: "edits the top heads of the selective set (ranking.top: heads chosen by what flipping them does)",
    });
    const clear = h("button", { type: "button", "data-testid": "clear-edits", text: "Clear all edits" });
    this.count = h("span", { class: "hp-edit-count", "data-testid": "edit-count" });
    this.note = h("p", { class: "hp-hint", "data-testid": "top-note" });
    apply.addEventListener("click", () => {
      const k = Math.max(1, Math.round(Number(this.k.value) || 1));
      const alpha = Number(this.alpha.value);
      this.model.set("top_k", k);
      this.model.set("top_alpha", Number.isFinite(alpha) ? alpha : -1);
      this.model.save_changes();
      this.model.send({ type: APPLY_TOP });
    });
    clear.addEventListener("click", () => {
      this.model.set("strengths", {});
      this.model.save_changes();
    });
    this.el = h(
      "div",
      { class: "hp-top" },
      h("label", { text: "Top " }),
      this.k,
      h("label", { text: " heads x " }),
      this.alpha,
      apply,
      clear,
      this.count,
      this.note,
    );
    this.render();
  }

  render(): void {
    this.k.value = String(this.model.get("top_k"));
    this.alpha.value = String(this.model.get("top_alpha"));
    const n = Object.keys(this.model.get("strengths") ?? {}).length;
    this.count.textContent = n ? `${n} head${n === 1 ? "" : "s"} edited` : "no edits";
    this.note.textContent = this.model.get("top_note") ?? "";
    this.note.hidden = !this.note.textContent;
  }
}
