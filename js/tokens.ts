/** The selected head's panel: its EVR against the null, what flipping it does (effects.ts), SOMP atoms,
 * Logit-Lens tokens and the EVR curve.
 * Tokens are shown only once `head_stats` names the selected head, so a new title never stands over
 * the previous head's tokens. */
import { decodeArray } from "./codecs";
import { finiteRange, fmt } from "./colors";
import { h } from "./dom";
import { effectSection } from "./effects";
import type { HeadStats, ModelLike, TokenWeight } from "./model";

const SVG = "http://www.w3.org/2000/svg";

/** SVG polyline points for a curve drawn in a `w` x `h` box (y range from the data and 0). */
export function curvePoints(values: ArrayLike<number>, w: number, ht: number): string {
  const n = values.length;
  if (!n) return "";
  const [lo0, hi0] = finiteRange(values);
  const lo = Math.min(0, lo0);
  const span = hi0 - lo || 1;
  const pts: string[] = [];
  for (let i = 0; i < n; i++) {
    const x = n === 1 ? w / 2 : (i / (n - 1)) * w;
    const y = ht - ((values[i] - lo) / span) * ht;
    pts.push(`${x.toFixed(1)},${y.toFixed(1)}`);
  }
  return pts.join(" ");
}

/** "EVR 0.456 vs null 0.420 ± 0.012 (z 3.0)" for a head's stats. */
export function nullLine(s: HeadStats): string {
  const z = s.null_sd > 0 ? ` (z ${((s.evr - s.null_mean) / s.null_sd).toFixed(1)})` : "";
  return `EVR ${fmt(s.evr)} vs null ${fmt(s.null_mean)} ± ${fmt(s.null_sd)}${z}`;
}

function tokenList(title: string, items: TokenWeight[], testid: string, weightName: string, dim = false): HTMLElement {
  const list = h("ol", { class: `hp-token-list${dim ? " hp-dim" : ""}`, "data-testid": `${testid}-list` });
  for (const [tok, weight] of items) {
    list.append(
      h(
        "li",
        { title: `${weightName} ${weight}` },
        h("span", { class: "hp-token", "data-testid": `${testid}-token`, text: tok }),
        h("span", { class: "hp-weight", text: fmt(weight) }),
      ),
    );
  }
  return h("div", { class: "hp-token-col" }, h("h4", { text: title }), list);
}

export class TokenPanel {
  readonly el: HTMLElement;
  private body: HTMLElement;

  constructor(
    private model: ModelLike,
    private slider: HTMLElement,
  ) {
    this.body = h("div", { class: "hp-panel-body" });
    this.el = h(
      "section",
      { class: "hp-panel", "data-testid": "token-panel", "aria-live": "polite" },
      this.body,
      slider,
    );
    this.render();
  }

  render(): void {
    const sel = this.model.get("selected") ?? [];
    if (sel.length !== 2) {
      this.body.replaceChildren(
        h("p", { class: "hp-hint", text: "Click a head (or focus the grid and press Enter) to see its tokens." }),
      );
      this.slider.hidden = true;
      return;
    }
    const [layer, head] = sel;
    this.slider.hidden = false;
    const scores = decodeArray(this.model.get("scores"))?.data;
    const idx = layer * this.model.get("n_heads") + head;
    const score = scores ? scores[idx] : NaN;
    const title = h("h3", { "data-testid": "panel-title", text: `Layer ${layer}, head ${head}` });
    const meta = h("p", { class: "hp-meta", text: `${this.model.get("score")} ${fmt(score)}` });
    const stats = this.model.get("head_stats") as Partial<HeadStats>;
    if (stats.layer !== layer || stats.head !== head) {
      this.body.replaceChildren(title, meta, h("p", { class: "hp-hint", "data-testid": "panel-loading", text: "…" }));
      return;
    }
    const full = stats as HeadStats;
    meta.append(
      h("span", {
        class: full.significant ? "hp-badge hp-badge-sig" : "hp-badge",
        "data-testid": "significance",
        text: full.significant ? "significant" : "not significant",
      }),
    );
    const other = this.model.get("compare_stats") as Partial<HeadStats>;
    const compared = this.model.get("scores_minus") ?? "";
    const both = compared !== "" && other.layer === layer && other.head === head;
    const nul = h("p", {
      class: "hp-meta",
      "data-testid": "null-line",
      text: `${both ? `${this.model.get("concept")}: ` : ""}${nullLine(full)}`,
    });
    const otherNul = h("p", {
      class: "hp-meta",
      "data-testid": "compare-null-line",
      text: both
        ? `${compared}: ${nullLine(other as HeadStats)}${(other as HeadStats).significant ? ", significant" : ", not significant"}`
        : "",
    });
    otherNul.hidden = !both;
    const note = h("p", {
      class: "hp-hint",
      "data-testid": "atoms-note",
      text:
        "Atoms always come from the concept's own word list, so every head lists concept words; " +
        "only an EVR well above the null's says the head writes them." +
        (full.significant ? "" : " This head's is not: its atoms are dimmed."),
    });
    const cols = h(
      "div",
      { class: "hp-token-cols" },
      tokenList("SOMP atoms (EVR gain)", this.model.get("tokens") ?? [], "atom", "EVR gain", !full.significant),
      tokenList("Logit Lens (logit)", this.model.get("lens_tokens") ?? [], "lens", "logit"),
    );
    const effects = effectSection(this.model, layer, head);
    this.body.replaceChildren(title, meta, nul, otherNul, effects, note, cols, this.curve());
  }

  private curve(): HTMLElement {
    const curve = decodeArray(this.model.get("curve"))?.data;
    const wrap = h("figure", { class: "hp-curve", "data-testid": "evr-curve" });
    if (!curve?.length) return wrap;
    const w = 220;
    const ht = 60;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `-2 -2 ${w + 4} ${ht + 4}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", `EVR curve over ${curve.length} atoms, final ${fmt(curve[curve.length - 1])}`);
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", curvePoints(curve, w, ht));
    svg.append(line);
    wrap.append(svg, h("figcaption", { text: `EVR after ${curve.length} atoms: ${fmt(curve[curve.length - 1])}` }));
    return wrap;
  }
}
