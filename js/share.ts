/** "Copy as code": puts the Python that reproduces the edited answer (the `code` trait) on the clipboard. */
import { h } from "./dom";
import type { ModelLike } from "./model";

/** The clipboard call the button uses; a parameter so tests can replace it. */
export type WriteText = (text: string) => Promise<void>;

const systemClipboard: WriteText = (text) =>
  navigator.clipboard ? navigator.clipboard.writeText(text) : Promise.reject(new Error("no clipboard"));

export class CopyCode {
  readonly el: HTMLElement;
  private button: HTMLButtonElement;
  private note: HTMLElement;
  private shown: HTMLTextAreaElement;

  constructor(
    private model: ModelLike,
    private writeText: WriteText = systemClipboard,
  ) {
    this.button = h("button", { type: "button", "data-testid": "copy-code", text: "Copy as code" });
    this.note = h("span", { class: "hp-copy-note", "data-testid": "copy-note", role: "status" });
    // shown when the clipboard is unavailable (no secure context): the code, selected, to copy by hand
    this.shown = h("textarea", { readonly: "", rows: "6", cols: "80", "data-testid": "code-text" });
    this.shown.hidden = true;
    this.button.addEventListener("click", () => void this.copy());
    this.el = h("div", { class: "hp-share" }, this.button, this.note, this.shown);
    this.render();
  }

  render(): void {
    this.el.hidden = !this.model.get("code");
    this.note.textContent = "";
  }

  /** Copy the code; if the clipboard refuses, show it selected instead. */
  async copy(): Promise<void> {
    const code = this.model.get("code");
    try {
      await this.writeText(code);
      this.shown.hidden = true;
      this.note.textContent = "Copied: hp.generate(...) with the current edits";
    } catch {
      this.shown.value = code;
      this.shown.hidden = false;
      this.shown.select();
      this.note.textContent = "Clipboard unavailable: copy the selected code (Ctrl+C)";
    }
  }
}
