/** What flipping the panel's head does: its effect on the concept, on each other category and on the
 * control facts, as small horizontal bars with their numbers. Every name is set as text (category names
 * and the concept come from the user or the engine, never parsed as HTML). */
import { h } from "./dom";
import type { HeadEffect, ModelLike } from "./model";

/** Ratios are drawn from 0 to RATIO_MAX (1 = unchanged, at the bar's middle); drops up to DROP_MAX nats. */
export const RATIO_MAX = 2;
export const DROP_MAX = 2;

/** Width (percent of the track) of a bar for `value` drawn from 0 to `max` (clamped, 0 for non-finite). */
export function barWidth(value: number, max: number): number {
  if (!Number.isFinite(value)) return 0;
  return (100 * Math.min(max, Math.max(0, value))) / max;
}

/** "0.28x" for a mass ratio. */
export function ratioText(ratio: number): string {
  return Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : "n/a";
}

/** "0.61 nats" for a control drop (negative: the control answers got likelier). */
export function dropText(nats: number): string {
  return Number.isFinite(nats) ? `${nats.toFixed(2)} nats` : "n/a";
}

/** "+1.23" for a selectivity. */
export function signed(v: number): string {
  return Number.isFinite(v) ? `${v >= 0 ? "+" : ""}${v.toFixed(2)}` : "n/a";
}

function bar(kind: string, name: string, width: number, value: string, title: string, tick = true): HTMLElement {
  const fill = h("span", { class: `hp-effect-fill hp-effect-${kind}` });
  fill.style.width = `${Math.round(width * 10) / 10}%`;
  const track = h("span", { class: "hp-effect-track", "aria-hidden": "true" }, fill);
  if (tick) track.append(h("span", { class: "hp-effect-one" }));
  return h(
    "div",
    { class: "hp-effect-row", "data-testid": "effect-row", title },
    h("span", { class: "hp-effect-name", "data-testid": "effect-name", text: name }),
    track,
    h("span", { class: "hp-effect-value", "data-testid": "effect-value", text: value }),
  );
}

/** The panel section for head (layer, head): its bars once `head_effect` names it, else a note. */
export function effectSection(model: ModelLike, layer: number, head: number): HTMLElement {
  const e = model.get("head_effect") as Partial<HeadEffect>;
  const wrap = h("div", { class: "hp-effects", "data-testid": "effects" });
  if (e.layer !== layer || e.head !== head) {
    const note = model.get("effects_note") ?? "";
    if (note) wrap.append(h("p", { class: "hp-hint", "data-testid": "effects-note", text: `What it does: ${note}` }));
    wrap.hidden = !note;
    return wrap;
  }
  const full = e as HeadEffect;
  const how = full.exact ? "measured by an edited pass" : "an estimate";
  const title = `What flipping it does (x${full.alpha}, ${how})`;
  const summary = h("p", {
    class: "hp-meta",
    "data-testid": "effect-summary",
    text:
      `selectivity ${signed(full.selectivity)}` +
      (full.generic ? " · generic: it cuts the other categories too (an answer or format head)" : ""),
  });
  if (full.generic) {
    summary.prepend(
      h("span", { class: "hp-badge hp-badge-generic", "data-testid": "effect-generic", text: "generic" }),
    );
  }
  const ratioTitle = (what: string) =>
    `${what}: answer probability mass with the head flipped / without (1: unchanged)`;
  wrap.append(
    h("h4", { text: title }),
    summary,
    bar(
      "concept",
      full.concept,
      barWidth(full.concept_ratio, RATIO_MAX),
      ratioText(full.concept_ratio),
      ratioTitle(full.concept),
    ),
    ...full.others.map(([name, ratio]) =>
      bar("other", name, barWidth(ratio, RATIO_MAX), ratioText(ratio), ratioTitle(name)),
    ),
    bar(
      "control",
      "control facts",
      barWidth(full.control_drop, DROP_MAX),
      dropText(full.control_drop),
      "mean log-probability lost on unrelated facts (nats)",
      false,
    ),
  );
  return wrap;
}
