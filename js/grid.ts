/** The layer x head grid: one focusable cell per head, coloured by its score (layer 0 at the top,
 * as in plots.heatmap); significant heads carry a dot, which leaves the cell's lightness alone.
 * When two concepts are compared (`scores_minus`), the cells show the difference of their scores on
 * a diverging scale centred on 0, and the legend names both concepts.
 * A toggle switches between what a head writes (the score) and what flipping it does (`selectivity`,
 * diverging around 0; generic heads hatched, heads measured by an edited pass marked in a corner),
 * the latter once the selection has measured it (`effects_note` says why not yet). A first grid, drawn from
 * some of a new concept's contexts while the rest are read, says so (`grid_note`) until the full one comes. */
import { decodeArray } from "./codecs";
import {
  diverging,
  fmt,
  legendGradient,
  robustScale,
  type Scale,
  scalePosition,
  symmetricScale,
  viridis,
} from "./colors";
import { SCORE_LABELS } from "./controls";
import { h } from "./dom";
import { type GridViewName, headKey, type ModelLike } from "./model";

/** The view the grid shows: "does" only once its selectivity is measured. */
export function shownView(model: ModelLike): GridViewName {
  return model.get("grid_view") === "does" && model.get("selectivity") ? "does" : "writes";
}

export class GridView {
  readonly el: HTMLElement;
  private grid: HTMLElement;
  private tooltip: HTMLElement;
  private legendLo: HTMLElement;
  private legendHi: HTMLElement;
  private legendName: HTMLElement;
  private legendZero: HTMLElement;
  private legendBar: HTMLElement;
  private legendLoName: HTMLElement;
  private legendHiName: HTMLElement;
  private legendSig: HTMLElement;
  private sigKey: HTMLElement[];
  private doesKey: HTMLElement[];
  private viewButtons: Record<GridViewName, HTMLButtonElement>;
  private viewNote: HTMLElement;
  private gridNote: HTMLElement;
  private cells: HTMLElement[] = [];
  private nLayers = 0;
  private nHeads = 0;
  private focusIndex = 0;

  constructor(private model: ModelLike) {
    this.grid = h("div", { class: "hp-grid", role: "grid", "data-testid": "grid" });
    this.tooltip = h("div", { class: "hp-tooltip", role: "tooltip", "data-testid": "grid-tooltip" });
    this.tooltip.hidden = true;
    this.legendLo = h("span");
    this.legendHi = h("span");
    this.legendName = h("span", { class: "hp-legend-name", "data-testid": "legend-name" });
    this.legendZero = h("span", { class: "hp-legend-zero", "data-testid": "legend-zero", text: "0" });
    this.legendBar = h("span", { class: "hp-legend-bar", "data-testid": "legend-bar" }, this.legendZero);
    this.legendLo.dataset.testid = "legend-lo";
    this.legendHi.dataset.testid = "legend-hi";
    this.legendLoName = h("span", { class: "hp-legend-end", "data-testid": "legend-lo-name" });
    this.legendHiName = h("span", { class: "hp-legend-end", "data-testid": "legend-hi-name" });
    this.legendSig = h("span", { "data-testid": "legend-sig" });
    this.sigKey = [h("span", { class: "hp-swatch hp-sig-swatch" }), this.legendSig];
    this.doesKey = [
      h("span", { class: "hp-swatch hp-generic-swatch" }),
      h("span", { "data-testid": "legend-generic", text: "generic (cuts other categories too)" }),
      h("span", { class: "hp-swatch hp-exact-swatch" }),
      h("span", { "data-testid": "legend-exact", text: "measured by an edited pass (else estimated)" }),
    ];
    const legend = h(
      "div",
      { class: "hp-legend", "data-testid": "legend" },
      this.legendName,
      this.legendLoName,
      this.legendLo,
      this.legendBar,
      this.legendHi,
      this.legendHiName,
      ...this.sigKey,
      ...this.doesKey,
      h("span", { class: "hp-swatch hp-edited-swatch" }),
      "edited",
    );
    this.viewButtons = {
      writes: h("button", {
        type: "button",
        "data-testid": "view-writes",
        text: "What it writes",
        title: "colour each head by its SOMP score (the score switch)",
      }),
      does: h("button", {
        type: "button",
        "data-testid": "view-does",
        text: "What it does",
        title: "colour each head by what flipping it does: cuts the concept more (orange) or the other categories",
      }),
    };
    this.viewNote = h("span", { class: "hp-hint", "data-testid": "view-note" });
    this.gridNote = h("span", { class: "hp-hint", role: "status", "data-testid": "grid-note" });
    for (const name of ["writes", "does"] as const) {
      this.viewButtons[name].addEventListener("click", () => {
        this.model.set("grid_view", name);
        this.model.save_changes();
      });
    }
    const toggle = h(
      "div",
      { class: "hp-view-toggle", role: "group", "aria-label": "what the grid shows" },
      this.viewButtons.writes,
      this.viewButtons.does,
      this.viewNote,
      this.gridNote,
    );
    this.el = h("div", { class: "hp-grid-wrap" }, toggle, legend, this.grid, this.tooltip);
    this.grid.addEventListener("click", (e) => {
      const cell = (e.target as HTMLElement).closest<HTMLElement>("[role=gridcell]");
      if (cell) this.select(cell);
    });
    this.grid.addEventListener("keydown", (e) => this.onKey(e));
    this.grid.addEventListener("mouseover", (e) => {
      const cell = (e.target as HTMLElement).closest<HTMLElement>("[role=gridcell]");
      if (cell) this.showTooltip(cell);
    });
    this.grid.addEventListener("mouseleave", () => (this.tooltip.hidden = true));
    this.render();
  }

  /** Rebuild the cells when the shape changes, then refresh colours and marks. */
  render(): void {
    const L = this.model.get("n_layers");
    const H = this.model.get("n_heads");
    if (L !== this.nLayers || H !== this.nHeads) this.build(L, H);
    this.update();
  }

  private build(L: number, H: number): void {
    this.nLayers = L;
    this.nHeads = H;
    this.cells = [];
    this.focusIndex = 0;
    const size = Math.max(8, Math.min(24, Math.floor(720 / Math.max(1, H))));
    this.grid.style.setProperty("--hp-cell", `${size}px`);
    this.grid.style.gridTemplateColumns = `auto repeat(${H}, var(--hp-cell))`;
    this.grid.setAttribute("aria-rowcount", String(L + 1));
    this.grid.setAttribute("aria-colcount", String(H + 1));
    const labelEvery = size >= 16 ? 1 : Math.ceil(16 / size);
    const rows: HTMLElement[] = [];
    const header = h(
      "div",
      { role: "row", class: "hp-row" },
      h("div", { role: "columnheader", class: "hp-corner", text: "L\\H" }),
    );
    for (let hd = 0; hd < H; hd++) {
      header.append(
        h("div", { role: "columnheader", class: "hp-colhead", text: hd % labelEvery === 0 ? String(hd) : "" }),
      );
    }
    rows.push(header);
    for (let l = 0; l < L; l++) {
      const row = h("div", { role: "row", class: "hp-row" });
      row.append(
        h("div", {
          role: "rowheader",
          class: "hp-rowhead",
          text: l % Math.ceil(labelEvery / 2) === 0 ? String(l) : "",
        }),
      );
      for (let hd = 0; hd < H; hd++) {
        const cell = h("div", {
          role: "gridcell",
          class: "hp-cell",
          "data-layer": String(l),
          "data-head": String(hd),
          tabindex: "-1",
        });
        this.cells.push(cell);
        row.append(cell);
      }
      rows.push(row);
    }
    this.grid.replaceChildren(...rows);
    if (this.cells.length) this.cells[0].tabIndex = 0;
  }

  /** Recolour cells and refresh null, edit and selection marks and labels. */
  update(): void {
    const does = shownView(this.model) === "does";
    const scores = decodeArray(this.model.get(does ? "selectivity" : "scores"))?.data;
    const sig = does ? undefined : decodeArray(this.model.get("significant"))?.data;
    const generic = does ? decodeArray(this.model.get("generic"))?.data : undefined;
    const exact = does ? decodeArray(this.model.get("exact"))?.data : undefined;
    const strengths = this.model.get("strengths") ?? {};
    const selected = this.model.get("selected") ?? [];
    const score = this.model.get("score");
    const minus = does ? "" : (this.model.get("scores_minus") ?? "");
    const scale = minus || does ? symmetricScale(scores ?? []) : robustScale(scores ?? []);
    const colour = minus || does ? diverging : viridis;
    this.legend(scale, score, minus, does);
    this.toggle(does);
    const note = this.model.get("grid_note") ?? "";
    this.gridNote.textContent = does ? "" : note;
    this.gridNote.hidden = does || !note;
    const H = this.nHeads;
    this.cells.forEach((cell, i) => {
      const l = Math.floor(i / H);
      const hd = i % H;
      const s = scores ? scores[i] : NaN;
      const isSig = sig ? sig[i] === 1 : false;
      const isGeneric = generic ? generic[i] === 1 : false;
      const isExact = exact ? exact[i] === 1 : false;
      const alpha = strengths[headKey(l, hd)];
      const isSel = selected.length === 2 && selected[0] === l && selected[1] === hd;
      cell.style.backgroundColor = Number.isFinite(s) ? colour(scalePosition(scale, s)) : "";
      cell.classList.toggle("hp-sig", isSig);
      cell.classList.toggle("hp-generic", isGeneric);
      cell.classList.toggle("hp-exact", isExact);
      cell.classList.toggle("hp-edited", alpha !== undefined);
      cell.setAttribute("aria-selected", String(isSel));
      let label: string;
      if (does) {
        label = `Layer ${l}, head ${hd}, selectivity ${fmt(s)}${isGeneric ? ", generic" : ""}`;
        label += isExact ? ", measured" : ", estimated";
      } else {
        label = `Layer ${l}, head ${hd}, ${score}${minus ? " difference" : ""} ${fmt(s)}`;
        label += isSig ? ", significant" : ", not significant";
      }
      if (alpha !== undefined) label += `, edited x${alpha}`;
      cell.setAttribute("aria-label", label);
      if (isSel) this.setFocusIndex(i);
    });
  }

  /** The view buttons: the shown one pressed; "does" disabled, with the note, until it is measured. */
  private toggle(does: boolean): void {
    const ready = Boolean(this.model.get("selectivity"));
    this.viewButtons.writes.setAttribute("aria-pressed", String(!does));
    this.viewButtons.does.setAttribute("aria-pressed", String(does));
    this.viewButtons.does.disabled = !ready;
    const note = this.model.get("effects_note") ?? "";
    this.viewNote.textContent = ready ? "" : `What it does: ${note || "not measured yet"}`;
    this.viewNote.hidden = ready;
  }

  /** The legend: whose score, the bar's ends, and for a comparison (or what heads do) what each end means. */
  private legend(scale: Scale, score: string, minus: string, does = false): void {
    const concept = short(this.model.get("concept"));
    const label = SCORE_LABELS[score] ?? score;
    const diverge = Boolean(minus) || does;
    if (does) {
      this.legendName.textContent = `${concept ? `${concept}: ` : ""}what flipping a head does (selectivity, log ratio)`;
      this.legendLoName.textContent = "cuts other categories more";
      this.legendHiName.textContent = `cuts ${concept || "the concept"} more`;
    } else {
      this.legendName.textContent = minus
        ? `${concept} minus ${short(minus)}: ${label}`
        : `${concept ? `${concept}: ` : ""}${label}`;
      this.legendLoName.textContent = minus ? `more ${short(minus)}` : "";
      this.legendHiName.textContent = minus ? `more ${concept}` : "";
    }
    this.legendLoName.hidden = this.legendHiName.hidden = !diverge;
    for (const part of this.sigKey) part.hidden = does;
    for (const part of this.doesKey) part.hidden = !does;
    this.legendBar.style.background = legendGradient(diverge);
    this.legendLo.textContent = `${scale.clippedLo ? "≤" : ""}${fmt(scale.lo)}`;
    this.legendHi.textContent = `${scale.clippedHi ? "≥" : ""}${fmt(scale.hi)}`;
    this.legendZero.style.left = `${100 * scalePosition(scale, 0)}%`;
    this.legendSig.textContent = minus ? `significant for ${concept} (above its null)` : "significant (above the null)";
  }

  private setFocusIndex(i: number): void {
    if (!this.cells.length) return;
    this.cells[this.focusIndex].tabIndex = -1;
    this.focusIndex = i;
    this.cells[i].tabIndex = 0;
  }

  private select(cell: HTMLElement): void {
    const layer = Number(cell.dataset.layer);
    const head = Number(cell.dataset.head);
    this.setFocusIndex(layer * this.nHeads + head);
    this.model.set("selected", [layer, head]);
    this.model.save_changes();
  }

  private onKey(e: KeyboardEvent): void {
    const moves: Record<string, [number, number]> = {
      ArrowUp: [-1, 0],
      ArrowDown: [1, 0],
      ArrowLeft: [0, -1],
      ArrowRight: [0, 1],
    };
    const current = this.cells[this.focusIndex];
    if (!current) return;
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      this.select(current);
      return;
    }
    const mv = moves[e.key];
    if (!mv) return;
    e.preventDefault();
    const l = Math.min(this.nLayers - 1, Math.max(0, Math.floor(this.focusIndex / this.nHeads) + mv[0]));
    const hd = Math.min(this.nHeads - 1, Math.max(0, (this.focusIndex % this.nHeads) + mv[1]));
    this.setFocusIndex(l * this.nHeads + hd);
    const next = this.cells[this.focusIndex];
    next.focus();
    this.showTooltip(next);
  }

  private showTooltip(cell: HTMLElement): void {
    const l = Number(cell.dataset.layer);
    const hd = Number(cell.dataset.head);
    const first = this.model.get("head_tokens")?.[l * this.nHeads + hd] ?? "";
    this.tooltip.textContent = `${cell.getAttribute("aria-label")}${first ? ` | tokens: ${first}` : ""}`;
    this.tooltip.hidden = false;
    const pos = tooltipPosition(
      { left: cell.offsetLeft, top: cell.offsetTop, width: cell.offsetWidth, height: cell.offsetHeight },
      { width: this.tooltip.offsetWidth, height: this.tooltip.offsetHeight },
      { width: this.el.scrollWidth, height: this.el.scrollHeight },
    );
    this.tooltip.style.left = `${pos.left}px`;
    this.tooltip.style.top = `${pos.top}px`;
  }
}

/** A concept name cut to 40 characters for the legend. */
function short(name: string): string {
  return name.length > 40 ? `${name.slice(0, 39)}…` : name;
}

type Box = { left: number; top: number; width: number; height: number };

/** Where a `tip` goes next to `cell` inside a scrolling `area` (all in the area's pixels): right of
 * the cell, else left of it; level with it, else above its bottom edge, so it is never clipped at
 * the last row or column. */
export function tooltipPosition(
  cell: Box,
  tip: { width: number; height: number },
  area: { width: number; height: number },
): { left: number; top: number } {
  const gap = 4;
  let left = cell.left + cell.width + gap;
  if (left + tip.width > area.width) left = Math.max(0, cell.left - gap - tip.width);
  let top = cell.top;
  if (top + tip.height > area.height) top = Math.max(0, cell.top + cell.height - tip.height);
  return { left, top };
}
