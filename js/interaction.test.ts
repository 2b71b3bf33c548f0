// @vitest-environment jsdom
import { afterEach, describe, expect, it, vi } from "vitest";
import { quantile, robustScale, scalePosition, viridis } from "./colors";
import { EditHistory, editRows, sameStrengths } from "./edits";
import { encode, FakeModel, mountFake } from "./fake-model";
import { tooltipPosition } from "./grid";
import { describe as describeAlpha } from "./sliders";
import { readout } from "./text";
import { nullLine } from "./tokens";

let view: ReturnType<typeof mountFake> | undefined;
function setup(model: FakeModel) {
  view = mountFake(model);
  return { model, q: view.q, el: view.el };
}
afterEach(() => {
  view?.cleanup();
  view = undefined;
  vi.useRealTimers();
});

describe("colour scale", () => {
  it("takes quantiles between order statistics", () => {
    expect(quantile([3, 1, 2, Number.NaN], 0.5)).toBe(2);
    expect(quantile([0, 10], 0.25)).toBe(2.5);
    expect(quantile([], 0.5)).toBeNaN();
  });

  it("is not flattened by one outlier: 99 spread scores keep distinct colours next to a huge one", () => {
    const data = [...Array.from({ length: 99 }, (_, i) => i / 100), 1000];
    const scale = robustScale(data);
    expect(scale.clippedHi).toBe(true);
    expect(scale.hi).toBeLessThan(1);
    // min-max would put 0.00 .. 0.98 all within 0.1% of the bottom colour; here they span the scale
    expect(scalePosition(scale, 0.98)).toBeGreaterThan(0.95);
    expect(scalePosition(scale, 0.49)).toBeGreaterThan(0.45);
    expect(viridis(scalePosition(scale, 0.1))).not.toBe(viridis(scalePosition(scale, 0.9)));
  });

  it("always holds 0, so 0 can be marked, and clips nothing when there is nothing to clip", () => {
    const pos = robustScale([0.2, 0.3, 0.5]);
    expect(pos.lo).toBe(0);
    const neg = robustScale([-0.5, -0.2]);
    expect(neg.hi).toBe(0);
    const mixed = robustScale([-1, 1]);
    expect(scalePosition(mixed, 0)).toBeCloseTo(0.5, 2);
    expect(robustScale([Number.NaN])).toEqual({ lo: 0, hi: 1, clippedLo: false, clippedHi: false });
  });

  it("puts the concept's name, the clipped range and a 0 mark in the legend", () => {
    const data = [...Array.from({ length: 5 }, (_, i) => i / 10), 50];
    const { q } = setup(
      new FakeModel({ n_layers: 2, n_heads: 3, concept: "colours", scores: encode(data, "float32", [2, 3]) }),
    );
    expect(q("legend-name").textContent).toBe("colours: SOMP specificity (EVR minus random-word null)");
    expect(q("legend-hi").textContent?.startsWith("≥")).toBe(true);
    expect(q("legend-lo").textContent).toBe("0.000");
    expect(q("legend-zero").style.left).toBe("0%");
  });
});

describe("keys stay in the widget", () => {
  it("arrow keys on the slider change it and never reach the notebook; Escape still does", () => {
    const { q, el } = setup(new FakeModel({ selected: [0, 0] }));
    const notebook = vi.fn();
    el.parentElement?.addEventListener("keydown", notebook);
    const slider = q("head-slider");
    for (const key of ["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "a", "Enter"]) {
      slider.dispatchEvent(new KeyboardEvent("keydown", { key, bubbles: true }));
    }
    q("grid").dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowDown", bubbles: true }));
    q("head-alpha").dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowUp", bubbles: true }));
    expect(notebook).not.toHaveBeenCalled();
    slider.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
    slider.dispatchEvent(new KeyboardEvent("keydown", { key: "s", ctrlKey: true, bubbles: true }));
    expect(notebook).toHaveBeenCalledTimes(2);
    // Lumino (JupyterLab, Notebook 7) matches no shortcut for a key on a control that carries this
    slider.focus();
    expect(slider.getAttribute("data-lm-suppress-shortcuts")).toBe("true");
    q("grid").querySelector<HTMLElement>("[role=gridcell]")?.focus();
    expect(q("grid").querySelector("[role=gridcell]")?.getAttribute("data-lm-suppress-shortcuts")).toBe("true");
    el.parentElement?.removeEventListener("keydown", notebook);
  });
});

describe("strength controls", () => {
  it("labels 0 < alpha < 1 as dampen", () => {
    expect(describeAlpha(0.5)).toBe("x0.5 (dampen)");
    expect(describeAlpha(2)).toBe("x2 (enhance)");
    expect(describeAlpha(-1)).toBe("x-1 (suppress)");
    expect(describeAlpha(0)).toBe("x0 (ablate)");
  });

  it("has a number box beside the slider, both ways, and ticks at -1, 0 and 1", () => {
    vi.useFakeTimers();
    const { model, q } = setup(new FakeModel({ selected: [1, 2] }));
    const box = q("head-alpha") as HTMLInputElement;
    box.value = "-0.3";
    box.dispatchEvent(new Event("change"));
    expect(model.state.strengths).toEqual({ "1.2": -0.3 });
    const slider = q("head-slider") as HTMLInputElement;
    slider.value = "2.5";
    slider.dispatchEvent(new Event("input"));
    expect(box.value).toBe("2.5");
    vi.advanceTimersByTime(200);
    expect(model.state.strengths).toEqual({ "1.2": 2.5 });
    expect(Array.from(q("head-slider-ticks").children).map((t) => t.textContent)).toEqual(["-1", "0", "1"]);
    const list = slider.getAttribute("list");
    expect(Array.from(document.getElementById(list ?? "")?.children ?? []).map((o) => o.getAttribute("value"))).toEqual(
      ["-1", "0", "1"],
    );
    box.value = "";
    box.dispatchEvent(new Event("change"));
    expect(model.state.strengths).toEqual({ "1.2": 2.5 });
    expect(box.value).toBe("2.5");
  });

  it("says which selection 'Edit top heads' applied", () => {
    const { model, q } = setup(new FakeModel());
    expect(q("top-note").hidden).toBe(true);
    model.set("top_note", "Edited the top 2 heads of the selective set: L1H0, L0H2 x-1");
    expect(q("top-note").textContent).toContain("selective set");
    expect(q("top-note").hidden).toBe(false);
  });
});

describe("edits list with undo and redo", () => {
  it("undoes and redoes any change of strengths; an undo's echo keeps the redo stack", () => {
    const hist = new EditHistory({});
    hist.record({ "0.1": -1 });
    hist.record({ "0.1": -1 }); // the same value again: nothing recorded
    hist.record({ "0.1": -1, "1.0": 2 });
    expect(hist.undo()).toEqual({ "0.1": -1 });
    hist.record({ "0.1": -1 }); // the trait echoes the undo
    expect(hist.canRedo).toBe(true);
    expect(hist.undo()).toEqual({});
    expect(hist.undo()).toBeNull();
    expect(hist.redo()).toEqual({ "0.1": -1 });
    expect(hist.redo()).toEqual({ "0.1": -1, "1.0": 2 });
    expect(hist.redo()).toBeNull();
    hist.undo();
    hist.record({ "2.2": 0 }); // a new edit after an undo drops the redo stack
    expect(hist.canRedo).toBe(false);
  });

  it("compares and sorts edits", () => {
    expect(sameStrengths({ a: 1, b: 2 }, { b: 2, a: 1 })).toBe(true);
    expect(sameStrengths({ a: 1 }, { a: 1, b: 2 })).toBe(false);
    expect(editRows({ "10.1": 2, "2.3": -1, "2.0": 0 })).toEqual([
      [2, 0, 0],
      [2, 3, -1],
      [10, 1, 2],
    ]);
  });

  it("lists the applied edits, removes one, and undoes and redoes from the buttons", () => {
    const { model, q, el } = setup(new FakeModel());
    const rows = () => Array.from(el.querySelectorAll('[data-testid="edit-row"]')).map((r) => r.textContent);
    expect(rows()).toEqual([]);
    expect((q("undo") as HTMLButtonElement).disabled).toBe(true);
    model.set("strengths", { "1.2": -1, "0.1": 0.5 }); // e.g. from "Edit top heads" in Python
    expect(rows()).toEqual(["L0H1 x0.5 (dampen) ×", "L1H2 x-1 (suppress) ×"]);
    (el.querySelector(".hp-edit-remove") as HTMLButtonElement).click();
    expect(model.state.strengths).toEqual({ "1.2": -1 });
    q("undo").click();
    expect(model.state.strengths).toEqual({ "1.2": -1, "0.1": 0.5 });
    q("undo").click();
    expect(model.state.strengths).toEqual({});
    expect((q("undo") as HTMLButtonElement).disabled).toBe(true);
    q("redo").click();
    q("redo").click();
    expect(model.state.strengths).toEqual({ "1.2": -1 });
    expect((q("redo") as HTMLButtonElement).disabled).toBe(true);
    expect(model.saves).toBeGreaterThanOrEqual(5);
  });
});

describe("token panel and significance", () => {
  const stats = { layer: 0, head: 2, evr: 0.456, null_mean: 0.44, null_sd: 0.02, significant: false };

  it("shows the EVR next to the null's mean ± sd", () => {
    expect(nullLine(stats)).toBe("EVR 0.456 vs null 0.440 ± 0.020 (z 0.8)");
    expect(nullLine({ ...stats, null_sd: 0 })).toBe("EVR 0.456 vs null 0.440 ± 0.000");
  });

  it("dims the atoms of a head that is not significant and says where atoms come from", () => {
    const { model, q } = setup(new FakeModel({ selected: [0, 2], head_stats: stats, tokens: [[" turquoise", 0.4]] }));
    expect(q("significance").textContent).toBe("not significant");
    expect(q("atom-list").classList.contains("hp-dim")).toBe(true);
    expect(q("atoms-note").textContent).toContain("Atoms always come from the concept's own word list");
    expect(q("null-line").textContent).toContain("vs null 0.440 ± 0.020");
    model.set("head_stats", { ...stats, significant: true });
    expect(q("atom-list").classList.contains("hp-dim")).toBe(false);
    expect(q("significance").textContent).toBe("significant");
  });

  it("never shows the previous head's tokens under a new title", () => {
    const { model, q, el } = setup(new FakeModel({ selected: [0, 2], head_stats: stats, tokens: [[" old", 0.4]] }));
    model.set("selected", [1, 1]); // the new head's tokens have not arrived yet
    expect(q("panel-title").textContent).toBe("Layer 1, head 1");
    expect(el.querySelector('[data-testid="atom-token"]')).toBeNull();
    expect(q("panel-loading")).toBeTruthy();
    model.state.tokens = [[" new", 0.3]];
    model.set("head_stats", { ...stats, layer: 1, head: 1 });
    expect(el.querySelector('[data-testid="atom-token"]')?.textContent).toBe(" new");
  });
});

describe("answers, readout and status", () => {
  it("ends the streaming border when the answer ends, even if the text did not change", () => {
    const { model, q } = setup(new FakeModel({ edited_text: "same" }));
    model.emit("msg:custom", { type: "stream_start", target: "edited", gen: 3 });
    model.emit("msg:custom", { type: "token", target: "edited", gen: 3, piece: "same" });
    expect(q("edited-text").classList.contains("hp-streaming")).toBe(true);
    model.emit("msg:custom", { type: "stream_end", target: "edited", gen: 2 }); // an older answer's end
    expect(q("edited-text").classList.contains("hp-streaming")).toBe(true);
    model.emit("msg:custom", { type: "stream_end", target: "edited", gen: 3 });
    expect(q("edited-text").classList.contains("hp-streaming")).toBe(false);
  });

  it("shows the next-token readout only with numbers", () => {
    expect(readout([0.31, 0.02])).toBe("baseline 31.0%, edited 2.00% (0.065x)");
    expect(readout([0, 0])).toBe("baseline 0.00%, edited 0.00%");
    expect(readout([])).toBe("");
    expect(readout([Number.NaN, 0.1])).toBe("");
    const { model, q } = setup(new FakeModel());
    expect(q("next-token-readout").parentElement?.hidden).toBe(true);
    model.set("concept_prob", [0.5, 0.25]);
    expect(q("next-token-readout").textContent).toBe("baseline 50.0%, edited 25.0% (0.50x)");
    expect(q("next-token-readout").parentElement?.hidden).toBe(false);
  });

  it("shows the verdict line and offers the engine's sub-token rules", () => {
    const { model, q } = setup(new FakeModel());
    expect(q("verdict").hidden).toBe(true);
    model.set("verdict", "top 4 heads: colour probability 0.29x, random heads 0.95x");
    expect(q("verdict").textContent).toContain("0.29x");
    expect(q("verdict-label").hidden).toBe(true);
    model.set("verdict_on", "the applied edits (L0H7 x-1)");
    model.set("verdict_label", "generic");
    model.set("verdict", "1 head: colours 0.40x, other categories 0.35x (countries 0.30x), ...: generic");
    expect(q("verdict-label").textContent).toBe("generic");
    expect(q("verdict-label").dataset.verdict).toBe("generic");
    expect(q("verdict-on").textContent).toBe("Verdict on the applied edits (L0H7 x-1): ");
    expect(q("verdict-text").textContent).toContain("other categories 0.35x");
    const rule = q("rule-switch") as HTMLSelectElement;
    expect(Array.from(rule.options).map((o) => o.value)).toEqual(["whole_word", "first_subtoken", "all_subtokens"]);
    rule.value = "first_subtoken";
    rule.dispatchEvent(new Event("change"));
    expect(model.state.rule).toBe("first_subtoken");
  });
});

describe("tooltip placement", () => {
  const tip = { width: 100, height: 40 };
  const area = { width: 300, height: 200 };
  it("goes right of and level with a cell where it fits", () => {
    expect(tooltipPosition({ left: 10, top: 10, width: 20, height: 20 }, tip, area)).toEqual({ left: 34, top: 10 });
  });
  it("moves above the bottom edge on the last row and left on the last column", () => {
    expect(tooltipPosition({ left: 250, top: 180, width: 20, height: 20 }, tip, area)).toEqual({
      left: 146,
      top: 160,
    });
  });
});

describe("narrow layout", () => {
  const rect = (top: number, bottom: number) => ({ top, bottom, height: bottom - top }) as DOMRect;

  it("scrolls the token panel into view on a click when it sits under the grid", () => {
    const { el } = setup(new FakeModel({ scores: encode([0, 1, 2, 3, 4, 5], "float32", [2, 3]) }));
    const grid = el.querySelector(".hp-grid-wrap") as HTMLElement;
    const panel = el.querySelector('[data-testid="token-panel"]') as HTMLElement;
    const scroll = vi.fn();
    panel.scrollIntoView = scroll;
    grid.getBoundingClientRect = () => rect(0, 700);
    panel.getBoundingClientRect = () => rect(10, 300); // beside the grid: no scroll
    (el.querySelector("[role=gridcell]") as HTMLElement).click();
    expect(scroll).not.toHaveBeenCalled();
    panel.getBoundingClientRect = () => rect(712, 1000); // stacked under it
    (el.querySelector("[role=gridcell]") as HTMLElement).click();
    expect(scroll).toHaveBeenCalledWith({ block: "nearest", behavior: "smooth" });
  });
});
