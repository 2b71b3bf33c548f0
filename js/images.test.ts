// @vitest-environment jsdom
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { FakeModel, mountFake } from "./fake-model";
import { ImageStrip, ImageUrls } from "./images";

// jsdom has no object URLs: count what is made and revoked
let made: string[];
let revoked: string[];
beforeEach(() => {
  made = [];
  revoked = [];
  let n = 0;
  URL.createObjectURL = vi.fn((blob: Blob) => {
    expect(blob.type).toBe("image/png");
    const url = `blob:fake/${n++}`;
    made.push(url);
    return url;
  });
  URL.revokeObjectURL = vi.fn((url: string) => void revoked.push(url));
});

const png = (byte: number) => new DataView(new Uint8Array([0x89, 0x50, 0x4e, 0x47, byte]).buffer);
let view: ReturnType<typeof mountFake> | undefined;
let el: HTMLElement;
afterEach(() => {
  view?.cleanup();
  view = undefined;
});

function setup(model: FakeModel) {
  view = mountFake(model);
  el = view.el;
  return model;
}
const q = (id: string) => {
  if (!view) throw new Error("the widget is not mounted");
  return view.q(id);
};
const thumbs = () => Array.from(q("image-strip").querySelectorAll<HTMLButtonElement>("button"));

describe("image strip", () => {
  it("renders one <img> per image, from Blob URLs, and marks the picked one", () => {
    setup(new FakeModel({ images: [png(1), png(2), png(3)], sample_index: 1 }));
    const strip = q("image-strip");
    expect(strip.hidden).toBe(false);
    const imgs = Array.from(strip.querySelectorAll("img"));
    expect(imgs.map((i) => i.getAttribute("src"))).toEqual(made);
    expect(made).toHaveLength(3);
    expect(thumbs().map((b) => b.getAttribute("aria-label"))).toEqual(["sample 0", "sample 1", "sample 2"]);
    expect(thumbs().map((b) => b.getAttribute("aria-pressed"))).toEqual(["false", "true", "false"]);
    expect(thumbs()[1].classList.contains("hp-picked")).toBe(true);
    const picked = q("sample-image");
    expect(picked.hidden).toBe(false);
    expect(picked.querySelector("img")?.getAttribute("src")).toBe(made[1]);
    expect(el.querySelector(".hp-answers")?.classList.contains("hp-with-image")).toBe(true);
  });

  it("sets sample_index on click and shows that image beside the answers", () => {
    const model = setup(new FakeModel({ images: [png(1), png(2)] }));
    thumbs()[1].click();
    expect(model.state.sample_index).toBe(1);
    expect(model.saves).toBeGreaterThan(0);
    expect(thumbs()[1].getAttribute("aria-pressed")).toBe("true");
    expect(thumbs()[0].getAttribute("aria-pressed")).toBe("false");
    expect(q("sample-image").querySelector("img")?.getAttribute("src")).toBe(made[1]);
    expect(q("sample-image").textContent).toBe("Sample 1");
    expect(made).toHaveLength(2); // a new pick reuses the URLs
  });

  it("labels are text, and new images revoke the old URLs", () => {
    const model = setup(new FakeModel({ images: [png(1), png(2)], sample_index: 1 }));
    expect(el.querySelectorAll("img")).toHaveLength(3); // two thumbnails and the picked image
    expect(thumbs().map((b) => b.textContent)).toEqual(["0", "1"]);
    const first = [...made];
    model.set("images", [png(9)]);
    expect(revoked).toEqual(first);
    expect(thumbs()).toHaveLength(1);
    // the Python side clamps sample_index; the views show image 0 meanwhile
    expect(q("sample-image").querySelector("img")?.getAttribute("src")).toBe(made[2]);
    view?.cleanup();
    view = undefined;
    expect(revoked).toEqual([...first, made[2]]);
  });

  it("is hidden entirely for a text model", () => {
    setup(new FakeModel());
    expect(q("image-strip").hidden).toBe(true);
    expect(q("sample-image").hidden).toBe(true);
    expect(el.querySelectorAll("img")).toHaveLength(0);
    expect(el.querySelector(".hp-answers")?.classList.contains("hp-with-image")).toBe(false);
    expect(made).toHaveLength(0);
  });

  it("makes URLs once per image list, however often it renders", () => {
    const model = new FakeModel({ images: [png(1)] });
    const urls = new ImageUrls();
    const strip = new ImageStrip(model, urls);
    strip.render();
    strip.render();
    expect(made).toHaveLength(1);
    urls.dispose();
    expect(revoked).toEqual(made);
  });
});
