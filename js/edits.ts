/** The list of applied edits, with undo and redo over every change of `strengths`. */
import { h } from "./dom";
import { type ModelLike, parseHeadKey } from "./model";
import { describe } from "./sliders";

export type Strengths = Record<string, number>;

/** True if `a` and `b` edit the same heads by the same alphas. */
export function sameStrengths(a: Strengths, b: Strengths): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => k in b && a[k] === b[k]);
}

/** Undo/redo stacks of strengths. `record` takes every value the trait takes (from a slider, "Edit top
 * heads", Python or an undo); a value equal to the current one records nothing, so an undo's own
 * echo does not clear the redo stack. */
export class EditHistory {
  private past: Strengths[] = [];
  private future: Strengths[] = [];

  constructor(private current: Strengths = {}) {}

  record(next: Strengths): void {
    if (sameStrengths(next, this.current)) return;
    this.past.push(this.current);
    this.current = { ...next };
    this.future = [];
  }

  /** The strengths before the last change, or null when there is none. */
  undo(): Strengths | null {
    const prev = this.past.pop();
    if (!prev) return null;
    this.future.push(this.current);
    this.current = prev;
    return { ...prev };
  }

  /** The strengths an undo went back from, or null when there is none. */
  redo(): Strengths | null {
    const next = this.future.pop();
    if (!next) return null;
    this.past.push(this.current);
    this.current = next;
    return { ...next };
  }

  get canUndo(): boolean {
    return this.past.length > 0;
  }

  get canRedo(): boolean {
    return this.future.length > 0;
  }
}

/** Edits sorted by layer, then head: [[layer, head, alpha]]. */
export function editRows(strengths: Strengths): [number, number, number][] {
  return Object.entries(strengths)
    .map(([key, alpha]) => [...parseHeadKey(key), alpha] as [number, number, number])
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

export class EditsList {
  readonly el: HTMLElement;
  private list: HTMLElement;
  private undoButton: HTMLButtonElement;
  private redoButton: HTMLButtonElement;
  private history: EditHistory;

  constructor(private model: ModelLike) {
    this.history = new EditHistory({ ...(model.get("strengths") ?? {}) });
    this.list = h("ul", { class: "hp-edits", "data-testid": "edits-list", "aria-label": "applied edits" });
    this.undoButton = h("button", { type: "button", "data-testid": "undo", text: "Undo" });
    this.redoButton = h("button", { type: "button", "data-testid": "redo", text: "Redo" });
    this.undoButton.addEventListener("click", () => this.apply(this.history.undo()));
    this.redoButton.addEventListener("click", () => this.apply(this.history.redo()));
    this.el = h(
      "div",
      { class: "hp-edits-box" },
      h("div", { class: "hp-edits-head" }, h("h4", { text: "Applied edits" }), this.undoButton, this.redoButton),
      this.list,
    );
    this.render();
  }

  private apply(strengths: Strengths | null): void {
    if (!strengths) return;
    this.model.set("strengths", strengths);
    this.model.save_changes();
  }

  /** Record the trait's value and redraw (on every change of `strengths`). */
  render(): void {
    const strengths = this.model.get("strengths") ?? {};
    this.history.record(strengths);
    const rows = editRows(strengths);
    this.list.replaceChildren(
      ...(rows.length
        ? rows.map(([layer, head, alpha]) => {
            const remove = h("button", {
              type: "button",
              class: "hp-edit-remove",
              "aria-label": `remove the edit of layer ${layer}, head ${head}`,
              text: "×",
            });
            remove.addEventListener("click", () => {
              const next = { ...(this.model.get("strengths") ?? {}) };
              delete next[`${layer}.${head}`];
              this.apply(next);
            });
            return h("li", { "data-testid": "edit-row" }, `L${layer}H${head} ${describe(alpha)} `, remove);
          })
        : [h("li", { class: "hp-hint", text: "none: every head as the model has it" })]),
    );
    this.undoButton.disabled = !this.history.canUndo;
    this.redoButton.disabled = !this.history.canRedo;
  }
}
