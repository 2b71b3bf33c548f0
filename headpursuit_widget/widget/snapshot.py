"""A static, self-contained HTML picture of the widget: what survives an HTML export or a
notebook opened without a kernel (the grid as inline SVG, one head's tokens, the answers).

Every piece of text (tokens, prompt, answers, concept) is HTML-escaped: token strings are untrusted.
"""

from __future__ import annotations

from html import escape

import numpy as np

MARKER = "hp-snapshot"  # class of the snapshot's outer element (tests and exports look for it)
_CELL = 14  # px per grid cell
_DOT_STROKE = 'stroke="black" stroke-width="0.5"'  # a dot visible on light and dark cells
_VIRIDIS = (  # viridis at 0, 1/8, ..., 1 (matplotlib's table)
    (68, 1, 84),
    (71, 44, 122),
    (59, 81, 139),
    (44, 113, 142),
    (33, 144, 141),
    (39, 173, 129),
    (92, 200, 99),
    (170, 220, 50),
    (253, 231, 37),
)


_PUOR = (  # ColorBrewer PuOr, purple (< 0) through white (0) to orange, as js/colors.ts
    (84, 39, 136),
    (128, 115, 172),
    (178, 171, 210),
    (216, 218, 235),
    (247, 247, 247),
    (254, 224, 182),
    (253, 184, 99),
    (224, 130, 20),
    (179, 88, 6),
)


def colour(x: float, stops=_VIRIDIS) -> str:
    """Colour of ``x`` in [0, 1] (clipped) on ``stops`` (viridis by default), as "#rrggbb"."""
    x = min(max(float(x), 0.0), 1.0) * (len(stops) - 1)
    i = min(int(x), len(stops) - 2)
    f = x - i
    rgb = (round(a + (b - a) * f) for a, b in zip(stops[i], stops[i + 1], strict=True))
    return "#" + "".join(f"{c:02x}" for c in rgb)


def grid_svg(
    scores: np.ndarray, significant: np.ndarray | None, *, selected=(), edited=(), generic: np.ndarray | None = None
) -> str:
    """Inline SVG of a (n_layers, n_heads) score table, layer 0 at the top.

    Colours run over the 2nd-98th percentile (outliers clip); a white dot marks heads above the
    null, a black outline the selected head, a red outline the edited ones. With ``generic`` (bool
    (n_layers, n_heads)) the scores are selectivities: a diverging scale centred on 0, and a diagonal
    line through each generic head."""
    scores = np.asarray(scores, dtype=np.float64)
    n_layers, n_heads = scores.shape
    finite = scores[np.isfinite(scores)]
    lo, hi = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
    stops = _VIRIDIS
    if generic is not None:
        stops, m = _PUOR, max(abs(lo), abs(hi))
        lo, hi = (-m, m) if m > 0 else (-1.0, 1.0)
    span = hi - lo if hi > lo else 1.0
    left, top = 34, 4
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + n_heads * _CELL + 4}" '
        f'height="{top + n_layers * _CELL + 4}" role="img" aria-label="head scores">'
    ]
    for layer in range(n_layers):
        y = top + layer * _CELL
        if layer % 5 == 0:
            parts.append(f'<text x="0" y="{y + 11}" font-size="10" font-family="sans-serif">L{layer}</text>')
        for head in range(n_heads):
            x, v = left + head * _CELL, scores[layer, head]
            fill = colour((v - lo) / span, stops) if np.isfinite(v) else "#cccccc"
            parts.append(
                f'<rect x="{x}" y="{y}" width="{_CELL - 1}" height="{_CELL - 1}" fill="{fill}">'
                f"<title>L{layer}H{head}: {v:.3g}</title></rect>"
            )
            if significant is not None and significant[layer, head]:
                parts.append(f'<circle cx="{x + 6.5}" cy="{y + 6.5}" r="2" fill="white" {_DOT_STROKE}/>')
            if generic is not None and generic[layer, head]:
                parts.append(f'<line x1="{x}" y1="{y + _CELL - 1}" x2="{x + _CELL - 1}" y2="{y}" stroke="black"/>')
            outline = "black" if [layer, head] == list(selected) else "#d62728" if (layer, head) in edited else ""
            if outline:
                parts.append(
                    f'<rect x="{x}" y="{y}" width="{_CELL - 1}" height="{_CELL - 1}" fill="none" '
                    f'stroke="{outline}" stroke-width="2"/>'
                )
    parts.append("</svg>")
    return "".join(parts)


def snapshot_html(
    *,
    concept: str,
    score_name: str,
    scores: np.ndarray | None,
    significant: np.ndarray | None,
    head: tuple[int, int] | None,
    tokens: list[tuple[str, float]],
    edits: dict[tuple[int, int], float],
    prompt: str,
    baseline: str,
    edited: str,
    status: str,
    error: str,
    does: tuple[np.ndarray, np.ndarray] | None = None,
    head_effect: dict | None = None,
    verdict: str = "",
) -> str:
    """The snapshot as one HTML fragment (no scripts, no external resources).

    ``head``: the head whose ``tokens`` (SOMP atoms, weights) are listed; ``edits``: {(layer, head): alpha}.
    ``does``: (selectivity, generic) arrays to show instead of ``scores`` (the grid's "what it does" view);
    ``head_effect``: that head's flip (HeadEffects.head); ``verdict``: the verdict line."""
    e = escape
    rows = [f'<div class="{MARKER}" style="font-family:sans-serif;font-size:13px;max-width:760px">']
    rows.append(f"<div><b>HeadPursuit</b> &middot; concept <b>{e(concept)}</b> &middot; score {e(score_name)}</div>")
    if error:
        rows.append(f'<div style="color:#b00020">{e(error)}</div>')
    if scores is None:
        rows.append(f"<div>(no ranking yet: status {e(status)})</div>")
    else:
        if does is None:
            grid = grid_svg(scores, significant, selected=head or (), edited=set(edits))
            legend = "Dot: above the random-word null."
        else:
            grid = grid_svg(does[0], None, selected=head or (), edited=set(edits), generic=does[1])
            legend = "What flipping each head does: selectivity (orange: cuts the concept more than other "
            legend += "categories). Line: generic (cuts other categories too)."
        panel = ""
        if head is not None:
            items = "".join(f"<li>{e(tok)} <small>{w:.3f}</small></li>" for tok, w in tokens)
            panel = f"<div><b>L{head[0]}H{head[1]}</b> tokens (from the concept's words):<ol>{items}</ol>"
            panel += _effect_list(head_effect, concept) + "</div>"
        rows.append(f'<div style="display:flex;gap:16px;align-items:flex-start">{grid}{panel}</div>')
        rows.append(f"<div><small>{legend} Layer 0 at the top.</small></div>")
    if verdict:
        rows.append(f"<div>Verdict: {e(verdict)}</div>")
    if edits:
        listed = ", ".join(f"L{layer}H{h} &times; {a:g}" for (layer, h), a in sorted(edits.items()))
        rows.append(f"<div>Edits: {listed}</div>")
    if prompt:
        rows.append(f"<div>Prompt: <q>{e(prompt)}</q></div>")
        for label, text in (("Baseline", baseline), ("Edited", edited)):
            rows.append(f'<div><b>{label}:</b> <span style="white-space:pre-wrap">{e(text)}</span></div>')
    rows.append("<div><small>Static snapshot; run the notebook to interact.</small></div></div>")
    return "".join(rows)


def _effect_list(effect: dict | None, concept: str) -> str:
    """The head's flip (HeadEffects.head) as an HTML list; '' for None."""
    if effect is None:
        return ""
    e = escape
    how = "an edited pass" if effect["exact"] else "an estimate"
    items = [f"<li>{e(concept)} {effect['concept']:.2f}x</li>"]
    items += [f"<li>{e(name)} {ratio:.2f}x</li>" for name, ratio in effect["others"].items()]
    items.append(f"<li>control {effect['control_drop']:.2f} nats lost</li>")
    generic = ", generic" if effect["generic"] else ""
    return f"<div>Flipped ({how}): selectivity {effect['selectivity']:+.2f}{generic}<ul>{''.join(items)}</ul></div>"
