// @vitest-environment jsdom
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { diverging } from "./colors";
import { encode, FakeModel, mountFake } from "./fake-model";

let el: HTMLElement;
let view: ReturnType<typeof mountFake> | undefined;

function setup(model: FakeModel) {
  view = mountFake(model);
  el = view.el;
  return model;
}
const q = (id: string) => {
  if (!view) throw new Error("the widget is not mounted");
  return view.q(id);
};
const cells = () => Array.from(el.querySelectorAll<HTMLElement>("[role=gridcell]"));

afterEach(() => {
  view?.cleanup();
  view = undefined;
  vi.useRealTimers();
});

describe("grid", () => {
  let model: FakeModel;
  beforeEach(() => {
    model = setup(
      new FakeModel({
        scores: encode([0.1, 0.5, 0.2, 0.0, 0.9, 0.3], "float32", [2, 3]),
        significant: encode([1, 1, 0, 0, 1, 1], "uint8", [2, 3]),
        head_tokens: ["a", "b", "c", "d", "red, blue", "f"],
      }),
    );
  });

  it("has one labelled gridcell per head, in layer-major order", () => {
    const cs = cells();
    expect(cs).toHaveLength(6);
    expect(cs.map((c) => `${c.dataset.layer}.${c.dataset.head}`)).toEqual(["0.0", "0.1", "0.2", "1.0", "1.1", "1.2"]);
    expect(cs[4].getAttribute("aria-label")).toBe("Layer 1, head 1, specificity 0.900, significant");
    expect(cs[2].getAttribute("aria-label")).toContain("not significant");
  });

  it("colours the highest score yellow and the lowest purple", () => {
    expect(cells()[4].style.backgroundColor).toBe("rgb(253, 231, 37)");
    expect(cells()[3].style.backgroundColor).toBe("rgb(68, 1, 84)");
  });

  it("marks significant heads with a dot that leaves the colour alone, and edited heads", () => {
    expect(cells().map((c) => c.classList.contains("hp-sig"))).toEqual([true, true, false, false, true, true]);
    expect(cells().every((c) => c.style.opacity === "")).toBe(true);
    model.set("strengths", { "0.1": -1 });
    expect(cells()[1].classList.contains("hp-edited")).toBe(true);
    expect(cells()[1].getAttribute("aria-label")).toContain("edited x-1");
    expect(q("edit-count").textContent).toBe("1 head edited");
  });

  it("recolours when the score switch changes the scores", () => {
    model.set("scores", encode([0.9, 0.5, 0.2, 0.0, 0.1, 0.3], "float32", [2, 3]));
    expect(cells()[0].style.backgroundColor).toBe("rgb(253, 231, 37)");
  });

  it("selects a head on click", () => {
    cells()[5].click();
    expect(model.state.selected).toEqual([1, 2]);
    expect(cells()[5].getAttribute("aria-selected")).toBe("true");
    expect(model.saves).toBeGreaterThan(0);
  });

  it("moves with the arrow keys and selects with Enter", () => {
    const grid = q("grid");
    const key = (k: string) => grid.dispatchEvent(new KeyboardEvent("keydown", { key: k, bubbles: true }));
    key("ArrowDown");
    key("ArrowRight");
    key("ArrowRight");
    key("ArrowRight"); // clamped at the last head
    expect(document.activeElement).toBe(cells()[5]);
    expect(cells()[5].tabIndex).toBe(0);
    expect(cells().filter((c) => c.tabIndex === 0)).toHaveLength(1);
    key("Enter");
    expect(model.state.selected).toEqual([1, 2]);
  });

  it("shows layer, head, score and first tokens on hover", () => {
    cells()[4].dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    const tip = q("grid-tooltip");
    expect(tip.hidden).toBe(false);
    expect(tip.textContent).toBe("Layer 1, head 1, specificity 0.900, significant | tokens: red, blue");
  });

  it("rebuilds for a new shape (80 x 64; its speed is checked in Chromium, tests/ui)", () => {
    const n = 80 * 64;
    model.set("n_layers", 80);
    model.set("n_heads", 64);
    model.set(
      "scores",
      encode(
        Array.from({ length: n }, (_, i) => i / n),
        "float32",
        [80, 64],
      ),
    );
    expect(cells()).toHaveLength(n);
    expect(cells()[n - 1].dataset.layer).toBe("79");
    expect(cells()[n - 1].dataset.head).toBe("63");
    expect(cells()[n - 1].style.backgroundColor).toBe("rgb(253, 231, 37)");
  }, 20_000); // 5120 cells in jsdom on a shared 2-core machine
});

describe("a first grid", () => {
  it("says it is not final until the full ranking clears the note, as text", () => {
    const note = "first grid, from 16 of 64 contexts: <b>refining</b>";
    const model = setup(new FakeModel({ concept: "colours", scores: encode([1, 2, 3, 4, 5, 6], "float32", [2, 3]) }));
    expect(q("grid-note").hidden).toBe(true);
    model.set("grid_note", note);
    expect(q("grid-note").hidden).toBe(false);
    expect(q("grid-note").textContent).toBe(note); // rendered as text, never as HTML
    expect(q("grid-note").querySelector("b")).toBeNull();
    model.set("grid_note", "");
    expect(q("grid-note").hidden).toBe(true);
  });
});

describe("comparing two concepts", () => {
  // colours minus animals: differences from -2 to 4. The scale is symmetric, -m to m, with m the larger
  // magnitude of the 2% and 98% quantiles: sorted -2, -0.5, 0, 0.5, 1, 4, the 98% one is 1 + 0.9 x 3 = 3.7
  const diffs = [-2, 0, 1, 4, 0.5, -0.5];
  const m = 3.7;
  let model: FakeModel;
  beforeEach(() => {
    model = setup(
      new FakeModel({
        concept: "colours",
        compare: "animals",
        scores_minus: "animals",
        score: "z",
        scores: encode(diffs, "float32", [2, 3]),
        significant: encode([0, 0, 0, 1, 0, 0], "uint8", [2, 3]),
      }),
    );
  });

  it("names both concepts in the legend, the lower end the compared one", () => {
    expect(q("legend-name").textContent).toBe("colours minus animals: z");
    expect(q("legend-lo-name").textContent).toBe("more animals");
    expect(q("legend-hi-name").textContent).toBe("more colours");
    expect(q("legend-lo").textContent).toBe("-3.700");
    expect(q("legend-hi").textContent).toBe("≥3.700"); // 4 lies beyond the scale: clipped
    expect(q("legend-zero").style.left).toBe("50%");
    expect(q("legend-sig").textContent).toBe("significant for colours (above its null)");
    expect(q("legend-bar").style.background).toContain("rgb(247, 247, 247)");
  });

  it("colours cells on the diverging scale: 0 white, the ends purple and orange", () => {
    expect(cells()[1].style.backgroundColor).toBe("rgb(247, 247, 247)");
    expect(cells()[0].style.backgroundColor).toBe(diverging((-2 + m) / (2 * m)));
    expect(cells()[2].style.backgroundColor).toBe(diverging((1 + m) / (2 * m)));
    expect(cells()[3].style.backgroundColor).toBe("rgb(179, 88, 6)"); // clipped to the orange end
    expect(diverging(0)).toBe("rgb(84, 39, 136)");
    expect(diverging(0.5)).toBe("rgb(247, 247, 247)");
    expect(cells()[3].getAttribute("aria-label")).toBe("Layer 1, head 0, z difference 4.000, significant");
  });

  it("goes back to viridis and one name when the comparison ends", () => {
    model.set("scores_minus", "");
    model.set("compare", "");
    expect(q("legend-name").textContent).toBe("colours: z");
    expect(q("legend-lo-name").hidden).toBe(true);
    expect(q("legend-bar").style.background).toContain("rgb(68, 1, 84)");
    expect(cells()[3].style.backgroundColor).toBe("rgb(253, 231, 37)");
    expect(q("legend-sig").textContent).toBe("significant (above the null)");
  });

  it("shows both concepts' EVR against their nulls for the selected head", () => {
    const stats = (evr: number, significant: boolean) => ({
      layer: 1,
      head: 0,
      evr,
      null_mean: 0.2,
      null_sd: 0.1,
      significant,
    });
    model.set("head_stats", stats(0.5, true));
    model.set("compare_stats", stats(0.25, false));
    model.set("selected", [1, 0]);
    expect(q("null-line").textContent).toBe("colours: EVR 0.500 vs null 0.200 ± 0.100 (z 3.0)");
    expect(q("compare-null-line").textContent).toBe(
      "animals: EVR 0.250 vs null 0.200 ± 0.100 (z 0.5), not significant",
    );
    model.set("compare_stats", {});
    expect(q("compare-null-line").hidden).toBe(true);
    expect(q("null-line").textContent).toBe("EVR 0.500 vs null 0.200 ± 0.100 (z 3.0)");
  });

  it("commits a typed comparison on Enter, and clearing it turns it off", () => {
    const input = q("compare-input") as HTMLInputElement;
    expect(input.value).toBe("animals");
    input.value = " dog, cat ";
    input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
    expect(model.state.compare).toBe("dog, cat");
    input.value = "";
    input.dispatchEvent(new Event("change"));
    expect(model.state.compare).toBe("");
  });
});

describe("what each head does", () => {
  // selectivity from -1 to 2: symmetric scale -m..m, m = 1 + 0.9 x 1 = 1.9 (the 98% quantile of -1, -0.5, 0, 0.5, 1, 2)
  const sel = [0, 2, -1, 0.5, 1, -0.5];
  const m = 1.9;
  const effect = {
    layer: 0,
    head: 1,
    concept: "colours",
    alpha: -1,
    concept_ratio: 0.28,
    others: [
      ["<img src=x onerror=alert(1)>", 0.86],
      ["animals", 0.96],
    ] as [string, number][],
    control_drop: 0.61,
    selectivity: 1.12,
    generic: false,
    exact: true,
  };
  let model: FakeModel;
  beforeEach(() => {
    model = setup(
      new FakeModel({
        concept: "colours",
        score: "z",
        scores: encode([0.1, 0.5, 0.2, 0.0, 0.9, 0.3], "float32", [2, 3]),
        significant: encode([1, 0, 0, 0, 0, 0], "uint8", [2, 3]),
        effects_note: "measuring what each head does (the selection runs in the background)...",
      }),
    );
  });
  const measure = () => {
    model.set("selectivity", encode(sel, "float32", [2, 3]));
    model.set("generic", encode([0, 0, 1, 0, 0, 0], "uint8", [2, 3]));
    model.set("exact", encode([0, 1, 1, 0, 0, 0], "uint8", [2, 3]));
    model.set("effects_note", "");
  };

  it("disables the 'does' view with a note until the effects are measured", () => {
    expect((q("view-does") as HTMLButtonElement).disabled).toBe(true);
    expect(q("view-note").textContent).toContain("measuring what each head does");
    expect(q("view-writes").getAttribute("aria-pressed")).toBe("true");
    model.set("grid_view", "does"); // asked for before it exists: the grid keeps the scores
    expect(cells()[4].style.backgroundColor).toBe("rgb(253, 231, 37)");
    measure();
    expect((q("view-does") as HTMLButtonElement).disabled).toBe(false);
    expect(q("view-note").hidden).toBe(true);
    expect(q("view-does").getAttribute("aria-pressed")).toBe("true");
  });

  it("switches the grid to selectivity on a diverging scale, generic heads hatched, measured ones marked", () => {
    measure();
    q("view-does").click();
    expect(model.state.grid_view).toBe("does");
    expect(model.saves).toBeGreaterThan(0);
    expect(cells()[0].style.backgroundColor).toBe("rgb(247, 247, 247)"); // 0: white
    expect(cells()[1].style.backgroundColor).toBe("rgb(179, 88, 6)"); // 2 > m: clipped to orange
    expect(cells()[2].style.backgroundColor).toBe(diverging((-1 + m) / (2 * m)));
    expect(cells().map((c) => c.classList.contains("hp-generic"))).toEqual([false, false, true, false, false, false]);
    expect(cells().map((c) => c.classList.contains("hp-exact"))).toEqual([false, true, true, false, false, false]);
    expect(cells().some((c) => c.classList.contains("hp-sig"))).toBe(false);
    expect(cells()[2].getAttribute("aria-label")).toBe("Layer 0, head 2, selectivity -1.000, generic, measured");
    expect(cells()[3].getAttribute("aria-label")).toBe("Layer 1, head 0, selectivity 0.500, estimated");
    expect(q("legend-name").textContent).toBe("colours: what flipping a head does (selectivity, log ratio)");
    expect(q("legend-hi-name").textContent).toBe("cuts colours more");
    expect(q("legend-lo-name").textContent).toBe("cuts other categories more");
    expect(q("legend-sig").hidden).toBe(true);
    expect(q("legend-generic").hidden).toBe(false);
    expect(q("legend-zero").style.left).toBe("50%");
    q("view-writes").click();
    expect(cells()[4].style.backgroundColor).toBe("rgb(253, 231, 37)");
    expect(cells()[0].classList.contains("hp-sig")).toBe(true);
    expect(cells().some((c) => c.classList.contains("hp-generic") || c.classList.contains("hp-exact"))).toBe(false);
    expect(q("legend-generic").hidden).toBe(true);
  });

  it("shows the selected head's effects as bars with numbers, names as text", () => {
    measure();
    model.set("head_stats", { layer: 0, head: 1, evr: 0.5, null_mean: 0.3, null_sd: 0.05, significant: true });
    model.set("selected", [0, 1]);
    expect(q("token-panel").querySelector('[data-testid="effect-row"]')).toBeNull(); // not yet this head's
    model.set("head_effect", effect);
    const panel = q("token-panel");
    expect(panel.querySelector("img")).toBeNull();
    const rows = Array.from(panel.querySelectorAll('[data-testid="effect-row"]'));
    const text = (row: Element, id: string) => row.querySelector(`[data-testid="${id}"]`)?.textContent;
    expect(rows.map((r) => [text(r, "effect-name"), text(r, "effect-value")])).toEqual([
      ["colours", "0.28x"],
      ["<img src=x onerror=alert(1)>", "0.86x"],
      ["animals", "0.96x"],
      ["control facts", "0.61 nats"],
    ]);
    expect((rows[0].querySelector(".hp-effect-fill") as HTMLElement).style.width).toBe("14%"); // 0.28 of 2
    expect(q("effect-summary").textContent).toBe("selectivity +1.12");
    expect(panel.querySelector("h4")?.textContent).toBe("What flipping it does (x-1, measured by an edited pass)");
    model.set("head_effect", { ...effect, generic: true, exact: false });
    expect(q("effect-generic").textContent).toBe("generic");
    expect(q("effect-summary").textContent).toContain("cuts the other categories too");
    expect(panel.querySelector("h4")?.textContent).toContain("an estimate");
  });

  it("says why a head has no effects yet", () => {
    model.set("head_stats", { layer: 0, head: 1, evr: 0.5, null_mean: 0.3, null_sd: 0.05, significant: true });
    model.set("selected", [0, 1]);
    expect(q("effects-note").textContent).toBe(
      "What it does: measuring what each head does (the selection runs in the background)...",
    );
  });
});

describe("token panel and sliders", () => {
  it("shows the selected head's tokens as text, never as HTML", () => {
    const model = setup(
      new FakeModel({
        selected: [0, 1],
        head_stats: { layer: 0, head: 1, evr: 0.5, null_mean: 0.3, null_sd: 0.05, significant: true },
        tokens: [
          [" <img src=x onerror=alert(1)>", 0.2],
          [" red", 0.1],
        ],
        lens_tokens: [["<b>blue</b>", 7.5]],
        curve: encode([0.1, 0.3, 0.35], "float32", [3]),
        scores: encode([0, 0.4, 0, 0, 0, 0], "float32", [2, 3]),
      }),
    );
    const panel = q("token-panel");
    expect(panel.querySelector("img, b")).toBeNull();
    const atoms = Array.from(panel.querySelectorAll('[data-testid="atom-token"]')).map((e) => e.textContent);
    expect(atoms).toEqual([" <img src=x onerror=alert(1)>", " red"]);
    expect(panel.querySelector('[data-testid="lens-token"]')?.textContent).toBe("<b>blue</b>");
    expect(q("panel-title").textContent).toBe("Layer 0, head 1");
    expect(panel.querySelector("polyline")?.getAttribute("points")?.split(" ")).toHaveLength(3);
    model.set("selected", []);
    expect(panel.querySelector('[data-testid="atom-token"]')).toBeNull();
  });

  it("debounces the head slider into one strengths change", () => {
    vi.useFakeTimers();
    const model = setup(new FakeModel({ selected: [1, 0] }));
    const slider = q("head-slider") as HTMLInputElement;
    for (const v of ["0.5", "0", "-1"]) {
      slider.value = v;
      slider.dispatchEvent(new Event("input"));
    }
    expect(model.state.strengths).toEqual({});
    vi.advanceTimersByTime(200);
    expect(model.state.strengths).toEqual({ "1.0": -1 });
    expect(q("head-slider-value").textContent).toBe("x-1 (suppress)");
    q("head-reset").click();
    expect(model.state.strengths).toEqual({});
  });

  it("sends top-k x alpha and clears all edits", () => {
    const model = setup(new FakeModel({ strengths: { "0.0": 2 } }));
    (q("top-k") as HTMLInputElement).value = "8";
    (q("top-alpha") as HTMLInputElement).value = "0";
    q("apply-top").click();
    expect(model.state.top_k).toBe(8);
    expect(model.state.top_alpha).toBe(0);
    expect(model.sent).toEqual([{ type: "apply_top" }]);
    q("clear-edits").click();
    expect(model.state.strengths).toEqual({});
  });
});

describe("text views", () => {
  it("streams the newest generation and drops older pieces", () => {
    const model = setup(new FakeModel({ concept_words: ["red"], baseline_text: "A red sun." }));
    expect(q("baseline-text").querySelector("mark")?.textContent).toBe("red");
    model.emit("msg:custom", { type: "stream_start", target: "edited", gen: 1 });
    model.emit("msg:custom", { type: "token", target: "edited", gen: 1, piece: "A" });
    model.emit("msg:custom", { type: "stream_start", target: "edited", gen: 2 });
    model.emit("msg:custom", { type: "token", target: "edited", gen: 1, piece: " stale" });
    model.emit("msg:custom", { type: "token", target: "edited", gen: 2, piece: "The" });
    model.emit("msg:custom", { type: "token", target: "edited", gen: 2, piece: " red" });
    expect(q("edited-text").textContent).toBe("The red");
    expect(q("edited-text").querySelector("mark")?.textContent).toBe("red");
    expect(q("baseline-text").textContent).toBe("A red sun.");
    model.set("edited_text", "The red sky.");
    expect(q("edited-text").textContent).toBe("The red sky.");
  });

  it("commits the prompt, asks to generate, and stops", () => {
    const model = setup(new FakeModel());
    (q("prompt-input") as HTMLTextAreaElement).value = "Describe <b>a</b> sunset.";
    (q("max-new-tokens") as HTMLInputElement).value = "12";
    q("generate").click();
    expect(model.state.prompt).toBe("Describe <b>a</b> sunset.");
    expect(model.state.max_new_tokens).toBe(12);
    q("stop").click();
    expect(model.sent).toEqual([{ type: "generate" }, { type: "stop" }]);
  });
});

describe("controls", () => {
  it("switches the score and submits a typed concept", () => {
    const model = setup(new FakeModel());
    const sw = q("score-switch") as HTMLSelectElement;
    expect(Array.from(sw.options).map((o) => o.value)).toEqual(["specificity", "evr", "logit_lens"]);
    expect(sw.options[2].textContent).toBe("Logit Lens");
    sw.value = "logit_lens";
    sw.dispatchEvent(new Event("change"));
    expect(model.state.score).toBe("logit_lens");
    const input = q("concept-input") as HTMLInputElement;
    input.value = "  red, green ";
    q("rank").click();
    expect(model.state.concept).toBe("red, green");
  });

  it("shows progress while ranking and errors as text", () => {
    const model = setup(new FakeModel());
    expect((q("progress") as HTMLProgressElement).hidden).toBe(true);
    model.set("status", "ranking");
    model.set("progress", 0.4);
    expect((q("progress") as HTMLProgressElement).hidden).toBe(false);
    expect((q("progress") as HTMLProgressElement).value).toBeCloseTo(0.4);
    model.set("error", "no word of <x> is a single token");
    expect(q("error").textContent).toBe("no word of <x> is a single token");
    expect(q("error").hidden).toBe(false);
    expect(q("status").textContent).toBe("ranking");
  });

  it("detaches every listener on unmount", () => {
    const model = setup(new FakeModel());
    expect(model.listenerCount()).toBeGreaterThan(0);
    view?.cleanup();
    view = undefined;
    expect(model.listenerCount()).toBe(0);
  });
});
