import { describe, expect, it } from "vitest";
import { finiteRange, viridis } from "./colors";
import { segments } from "./highlight";
import { withStrength } from "./sliders";

describe("segments", () => {
  it("marks whole concept words, case-insensitively", () => {
    const s = segments("Red sky, redder sea and a GREEN-blue shore.", ["red", "green", "blue"]);
    expect(s.filter((x) => x.hit).map((x) => x.text)).toEqual(["Red", "GREEN", "blue"]);
    expect(s.map((x) => x.text).join("")).toBe("Red sky, redder sea and a GREEN-blue shore.");
  });

  it("treats words as text, not as patterns", () => {
    const s = segments("a+b and a.b", ["a+b"]);
    expect(s.filter((x) => x.hit).map((x) => x.text)).toEqual(["a+b"]);
  });

  it("returns the text unmarked without words", () => {
    expect(segments("plain", [])).toEqual([{ text: "plain", hit: false }]);
    expect(segments("", ["x"])).toEqual([]);
  });
});

describe("helpers", () => {
  it("viridis runs from dark purple to yellow and clamps", () => {
    expect(viridis(0)).toBe("rgb(68, 1, 84)");
    expect(viridis(1)).toBe("rgb(253, 231, 37)");
    expect(viridis(2)).toBe(viridis(1));
    expect(viridis(NaN)).toBe(viridis(0));
  });

  it("finiteRange ignores NaN", () => {
    expect(finiteRange([NaN, 2, -1, Infinity])).toEqual([-1, 2]);
    expect(finiteRange([NaN])).toEqual([0, 0]);
  });

  it("withStrength removes alpha 1 and keeps the input unchanged", () => {
    const s = { "1.2": -1 };
    expect(withStrength(s, "0.1", 5)).toEqual({ "1.2": -1, "0.1": 5 });
    expect(withStrength(s, "1.2", 1)).toEqual({});
    expect(s).toEqual({ "1.2": -1 });
  });
});
