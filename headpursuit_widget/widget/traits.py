"""The widget's synced traits, each stating its type, default and meaning in its ``help`` (the front end's
copy of the list is js/model.ts ``WidgetModel``), and the bundle the front end runs."""

from __future__ import annotations

from pathlib import Path

import anywidget
import numpy as np
import traitlets as t

from .. import protocol
from .._serialization import ARRAY

_STATIC = Path(__file__).parent.parent / "static"
_MISSING_BUNDLE = """
export default { render({ el }) {
  el.textContent = "headpursuit_widget/static/widget.js is missing: run `npm ci && npm run build` "
    + "in the source checkout (or reinstall the package) and re-run this cell.";
} };
"""


class WidgetTraits(anywidget.AnyWidget):
    """HeadPursuit's synced state (the verdict's and the effects view's traits are in checks.py and
    effects_view.py)."""

    _esm = _STATIC / "widget.js" if (_STATIC / "widget.js").is_file() else _MISSING_BUNDLE
    _css = _STATIC / "widget.css" if (_STATIC / "widget.css").is_file() else ""

    n_layers = t.Int(0, help="int: the model's number of layers (grid rows); set from the model").tag(sync=True)
    n_heads = t.Int(0, help="int: attention heads per layer (grid columns); set from the model").tag(sync=True)
    scores = t.Instance(
        np.ndarray, allow_none=True, help="float (n_layers, n_heads) or None: the shown score of every head"
    ).tag(sync=True, **ARRAY)
    significant = t.Instance(
        np.ndarray,
        allow_none=True,
        help="bool (n_layers, n_heads) or None: heads whose EVR is significantly above the null (ranking.significant)",
    ).tag(sync=True, **ARRAY)
    score = t.Unicode("z", help="str, default 'z': the score the grid shows (see score_names)").tag(sync=True)
    score_names = t.List(t.Unicode(), help="list[str]: the accepted values of score").tag(sync=True)
    selected = t.List(t.Int(), help="[] or [layer, head], default []: the head shown in the side panel").tag(sync=True)
    strengths = t.Dict(
        value_trait=t.Float(), help="{'layer.head': alpha}, default {}: the head edits (-1 flip, 0 ablate, >1 boost)"
    ).tag(sync=True)
    head_tokens = t.List(t.Unicode(), help="list[str], one per head (row-major): its top tokens, joined").tag(sync=True)
    tokens = t.List(help="[[token, weight]]: the selected head's top SOMP tokens").tag(sync=True)
    lens_tokens = t.List(help="[[token, logit]]: the selected head's top Logit Lens tokens").tag(sync=True)
    head_stats = t.Dict(
        help="{layer, head, evr, null_mean, null_sd, significant} of the head the panel shows ({} when none): its "
        "EVR next to the null's mean and sd; the panel shows tokens only once this matches selected"
    ).tag(sync=True)
    curve = t.Instance(
        np.ndarray, allow_none=True, help="float (k,) or None: the selected head's EVR after each SOMP step"
    ).tag(sync=True, **ARRAY)
    concept = t.Unicode("", help="str: the concept as typed (a shipped name, a word file or words)").tag(sync=True)
    compare = t.Unicode(
        "",
        help="str, default '': a second concept, typed as concept is; the grid then shows the concept's score minus "
        "this one's (ranked like concept, in the background); '' compares nothing",
    ).tag(sync=True)
    grid_note = t.Unicode(
        "", help="str: '' when the grid shows the full ranking; else why it is not final yet (a first grid)"
    ).tag(sync=True)
    scores_minus = t.Unicode(
        "", help="str: '' when scores are the concept's own; else the compared concept whose scores they subtract"
    ).tag(sync=True)
    compare_stats = t.Dict(
        help="head_stats of the compared concept for the panel's head ({} when none or not compared yet)"
    ).tag(sync=True)
    concept_names = t.List(t.Unicode(), help="list[str]: the shipped concepts offered").tag(sync=True)
    rule = t.Unicode("whole_word", help="str, default 'whole_word': the sub-token rule words are ranked with").tag(
        sync=True
    )
    rule_names = t.List(t.Unicode(), help="list[str]: the accepted values of rule (concepts/dictionary.py RULES)").tag(
        sync=True
    )
    concept_words = t.List(t.Unicode(), help="list[str]: the ranked concept's words, marked in answers").tag(sync=True)
    prompt = t.Unicode("", help="str, default '': the prompt answers are generated from ('' generates none)").tag(
        sync=True
    )
    max_new_tokens = t.Int(
        32, help=f"int from 1 to {protocol.MAX_NEW_TOKENS}, default 32: the length limit of each answer"
    ).tag(sync=True)
    baseline_text = t.Unicode("", help="str: the unedited answer (complete, or as far as it got when stopped)").tag(
        sync=True
    )
    edited_text = t.Unicode("", help="str: the answer with the strengths applied").tag(sync=True)
    concept_prob = t.List(
        t.Float(),
        help="[baseline, edited] or []: probability (0-1) that the next token after the prompt is one of the "
        "concept's tokens, without and with the edits; [] with no prompt or an image prompt",
    ).tag(sync=True)
    top_k = t.Int(4, help="int, default 4: how many recommended heads 'Edit top heads' edits").tag(sync=True)
    top_alpha = t.Float(-1.0, help="float, default -1: the alpha 'Edit top heads' sets").tag(sync=True)
    top_note = t.Unicode("", help="str: which selection 'Edit top heads' applied last ('' before)").tag(sync=True)
    status = t.Unicode("ready", help="str: 'ready', 'ranking', 'generating', 'stopped' or 'error' (see error)").tag(
        sync=True
    )
    progress = t.Float(0.0, help="float in [0, 1): ranking progress; 0 when idle").tag(sync=True)
    error = t.Unicode("", help="str: 'Type: message' of the last failure, '' when none").tag(sync=True)
    images = t.List(t.Bytes(), help="list[bytes]: PNG of each sample image (binary buffers); [] for text models").tag(
        sync=True
    )
    sample_index = t.Int(0, help="int, default 0: the picked image, the one answers are generated on").tag(sync=True)
    code = t.Unicode(
        "", help="str, read-only: Python that reproduces the edited answer (to_code()); '' for image models"
    ).tag(sync=True)
