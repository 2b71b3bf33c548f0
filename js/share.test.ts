// @vitest-environment jsdom
import { afterEach, describe, expect, it } from "vitest";
import { FakeModel } from "./fake-model";
import { CopyCode } from "./share";

const CODE = "import headpursuit_widget as hp\nanswer = hp.generate(model, ['<b>hi</b>'])\n";

describe("copy as code", () => {
  afterEach(() => {
    document.body.replaceChildren();
  });

  it("writes the code trait to the clipboard", async () => {
    const copied: string[] = [];
    const share = new CopyCode(new FakeModel({ code: CODE }), async (text) => {
      copied.push(text);
    });
    await share.copy();
    expect(copied).toEqual([CODE]);
    expect(share.el.querySelector("[data-testid=copy-note]")?.textContent).toContain("Copied");
  });

  it("shows the code as text, selected, when the clipboard refuses", async () => {
    const share = new CopyCode(new FakeModel({ code: CODE }), () => Promise.reject(new Error("denied")));
    document.body.append(share.el);
    await share.copy();
    const area = share.el.querySelector<HTMLTextAreaElement>("[data-testid=code-text]");
    expect(area?.hidden).toBe(false);
    expect(area?.value).toBe(CODE);
    expect(share.el.querySelector("b")).toBeNull(); // text, never HTML
  });

  it("is hidden while there is no code (image models) and follows the trait", () => {
    const model = new FakeModel({ code: "" });
    const share = new CopyCode(model);
    expect(share.el.hidden).toBe(true);
    model.state.code = CODE;
    share.render();
    expect(share.el.hidden).toBe(false);
  });
});
