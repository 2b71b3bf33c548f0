/** Sample images of a vision-language model: the strip to pick one, and the picked image beside the answers.
 * PNG bytes become Blob URLs, revoked when the images change or the widget goes away. Hidden for text models. */
import { h } from "./dom";
import type { ImageBytes, ModelLike } from "./model";

/** Object URLs for the `images` trait; a new list revokes the URLs of the old one. */
export class ImageUrls {
  private source: ImageBytes[] | null = null;
  urls: string[] = [];

  /** URLs for `images` (made again only when the list itself changed). */
  update(images: ImageBytes[]): string[] {
    if (images === this.source) return this.urls;
    this.dispose();
    this.source = images;
    this.urls = images.map((bytes) => URL.createObjectURL(new Blob([bytes as BlobPart], { type: "image/png" })));
    return this.urls;
  }

  dispose(): void {
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls = [];
    this.source = null;
  }
}

/** The picked sample index, clamped to the images there are. */
function picked(model: ModelLike, n: number): number {
  const i = model.get("sample_index") ?? 0;
  return i >= 0 && i < n ? i : 0;
}

/** A row of thumbnail buttons, one per sample image; a click picks the sample to generate on. */
export class ImageStrip {
  readonly el: HTMLElement;
  private buttons: HTMLButtonElement[] = [];
  private shown: string[] | null = null;

  constructor(
    private model: ModelLike,
    private urls: ImageUrls,
  ) {
    this.el = h("div", {
      class: "hp-strip",
      role: "group",
      "aria-label": "sample images",
      "data-testid": "image-strip",
    });
    this.el.addEventListener("click", (e) => {
      const button = (e.target as HTMLElement).closest<HTMLButtonElement>("button[data-index]");
      if (!button) return;
      this.model.set("sample_index", Number(button.dataset.index));
      this.model.save_changes();
    });
    this.render();
  }

  render(): void {
    const urls = this.urls.update(this.model.get("images") ?? []);
    this.el.hidden = urls.length === 0;
    if (urls !== this.shown) {
      this.shown = urls;
      this.buttons = urls.map((src, i) =>
        h(
          "button",
          { type: "button", class: "hp-thumb", "data-index": String(i), "aria-label": `sample ${i}` },
          h("img", { src, alt: "" }),
          h("span", { class: "hp-thumb-index", text: String(i) }),
        ),
      );
      this.el.replaceChildren(h("span", { class: "hp-strip-label", text: "Sample " }), ...this.buttons);
    }
    const sel = picked(this.model, urls.length);
    this.buttons.forEach((b, i) => {
      b.classList.toggle("hp-picked", i === sel);
      b.setAttribute("aria-pressed", String(i === sel));
    });
  }
}

/** The picked image, shown beside the baseline and edited answers. */
export class SampleImage {
  readonly el: HTMLElement;
  private img: HTMLImageElement;
  private caption: HTMLElement;

  constructor(
    private model: ModelLike,
    private urls: ImageUrls,
  ) {
    this.img = h("img", { alt: "" });
    this.caption = h("figcaption");
    this.el = h("figure", { class: "hp-sample", "data-testid": "sample-image" });
    this.render();
  }

  render(): void {
    const urls = this.urls.update(this.model.get("images") ?? []);
    this.el.hidden = urls.length === 0;
    if (!urls.length) {
      this.el.replaceChildren();
      return;
    }
    const i = picked(this.model, urls.length);
    this.img.src = urls[i];
    this.img.alt = `sample ${i}`;
    this.caption.textContent = `Sample ${i}`;
    if (this.img.parentNode !== this.el) this.el.replaceChildren(this.img, this.caption);
  }
}
