"""The shipped notebooks run top to bottom (HEADPURSUIT_QUICK=1 shrinks their budgets); what their text
claims about the outputs holds (CLAIMS, checked in the notebook's own kernel after its last cell); the
executed quickstart exports to HTML with the widget's static snapshot in place of the live view."""

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbconvert import HTMLExporter

from headpursuit_widget.widget.snapshot import MARKER

ABSOLUTE_PATH = re.compile(r"(/[\w.-]+){2,}\.py:\d+")  # a warning's "/path/to/file.py:123"
REPO = Path(__file__).resolve().parent.parent  # the kernels import this checkout's package
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
SAYS = "def says(x, text):  # a number as the text quotes it\n    return f'{x:.2f}' == text\n"
# Per notebook: assertions, run in its kernel after its last cell, one per claim its markdown makes about
# the outputs (the claim quoted above each). Numbers are quoted to two decimals, as the cells print them.
CLAIMS = {
    "quickstart": """
# "alpha = -1 flips the head's output (suppresses the concept)"; "the model may keep its words while the
# concept's probability falls": the banana question's colour probability falls with the top 4 heads flipped
assert after < before, (before, after)
assert r.top(len(r.recommended) or 1)[: len(r.recommended)] == list(r.recommended)  # "the selective set first"
""",
    "classroom-lab": SAYS
    + """
# 2: "Most of them sit in the second half of the model (layer 15 or later)"
assert sum(layer >= 15 for layer, _ in somp.top(6)) >= 4, somp.top(6)
# 3: "The two lists share some heads"; "The raw EVR list is mostly layer-0 heads, and neither the SOMP list
# nor the Logit Lens list holds a single layer-0 head"
assert shared, (somp.top(8), lens.top(8))
assert sum(layer == 0 for layer, _ in raw.top(8)) >= 5, raw.top(8)
assert not [h for h in somp.top(8) + lens.top(8) if h[0] == 0], (somp.top(8), lens.top(8))
# 4: "for L0H2 random lists explain as much or more"
assert not r.above_null[0, 2] and r.null_evr[:, 0, 2].max() >= r.score_table["evr"][0, 2]
# 5: "5 sets of random heads"; "flipped every head at the answer position only ... then flipped a dozen candidates"
a, b, c = checks["L22H8"], checks["L17H7"], checks["L0H7"]
assert len(a.random_mass_ratios) == 5 and e.exact.any() and not e.exact.all() and e.method == "answer"
assert len(r.options["selection"]["candidates"]) == 12
# "L22H8 is colour-selective": 0.25x, random 0.86x, others' median 0.95x, 0.35 nats within 0.06 + 0.3, numbers 0.44x;
# "Asked as requests ... colours only fall to 0.41x, and in sentences and lists ... (0.96x): not in every format"
assert a.verdict == "not in every format" and says(a.format_ratios["requests"], "0.41"), a.summary()
assert says(a.format_ratios["sentences"], "0.96"), a.summary()
assert says(a.mass_ratio, "0.25") and says(a.random_median, "0.86") and says(a.others_median, "0.95"), a.summary()
assert says(a.control_drop, "0.35") and says(a.random_control_drop, "0.06"), a.summary()
assert a.control_drop <= a.random_control_drop + 0.3, a.summary()
assert says(a.other_ratios["numbers"], "0.44") and says(a.other_ratios["countries"], "1.09"), a.summary()
# "L17H7 cuts colours hardest (0.05x)": food 0.18x, animals 0.69x, numbers rise 1.51x; generic, lower median 0.69x
assert b.mass_ratio < min(a.mass_ratio, c.mass_ratio) and b.verdict == "generic", b.summary()
assert says(b.mass_ratio, "0.05") and says(b.other_ratios["food"], "0.18") and says(b.other_ratios["animals"], "0.69")
assert says(b.other_ratios["numbers"], "1.51") and says(b.others_median, "0.69"), b.summary()
assert sum(x < 0.8 for x in b.other_ratios.values()) * 2 >= len(b.other_ratios), b.summary()
# "L0H7 ... colours 0.11x and the other categories' median 0.08x: generic"; random layer-0 heads 0.48x, 2.03 nats
assert c.verdict == "generic" and says(c.mass_ratio, "0.11") and says(c.others_median, "0.08"), c.summary()
assert says(c.random_median, "0.48") and says(c.random_control_drop, "2.03"), c.summary()
# "SOMP would not have found L22H8 (not among its top 20), but ... the answer position put it first, and the
# ranking then flipped it for real (0.43x on the ranking's own questions)"
assert (22, 8) not in somp.top(20) and e.exact[22, 8] and says(e.mass_ratio[22, 8], "0.43")
from headpursuit_widget.engine.judging.selection import N_SOMP

assert r.options["selection"]["candidates"][N_SOMP] == [22, 8]  # the screen's first after SOMP's 4
# "L17H7 breaks every answer above"; "L22H8 turns the colour answer into None and keeps cold, but it changes
# the country answer as well"
colour, opposite, country = "Q: Name a colour.\\nA:", "Q: What is the opposite of hot?\\nA:", "Q: Name a country.\\nA:"
assert all(answers[p, "L17H7 flipped"] != answers[p, "unedited"] for p in (colour, opposite, country)), answers
assert answers[colour, "L22H8 flipped"].strip().startswith("None") and "cold" in answers[opposite, "L22H8 flipped"]
assert answers[country, "L22H8 flipped"] != answers[country, "unedited"], answers
# 6: "chose L22H8 first ... and added L16H1, which alone cuts colours only a little (0.85x)"; "the pair cuts
# colours to 0.20x and the requests to 0.31x, random 0.76x, others 0.86x, 0.35 nats within 0.11 + 0.3"; "in
# sentences and lists colours stay at 0.97x: the verdict is not in every format"
assert list(r.recommended) == [(22, 8), (16, 1)] and says(e.mass_ratio[16, 1], "0.85"), r.recommended
assert v.verdict == "not in every format" and says(v.mass_ratio, "0.20") and says(v.format_ratios["requests"], "0.31")
assert says(v.format_ratios["sentences"], "0.97"), v.summary()
assert says(v.random_median, "0.76") and says(v.others_median, "0.86"), v.summary()
assert says(v.control_drop, "0.35") and says(v.random_control_drop, "0.11"), v.summary()
""",
}


def test_the_three_notebooks_are_shipped():
    assert {p.name for p in NOTEBOOKS} >= {"quickstart.ipynb", "classroom-lab.ipynb", "reproduce-paper.ipynb"}


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.timeout(1800)  # the classroom lab ranks once and runs 4 verifications (24 min on 2 busy cores)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, monkeypatch, smollm2):  # smollm2: the model is fetched and re-saved already
    monkeypatch.setenv("HEADPURSUIT_QUICK", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(path, as_version=4)
    if path.stem in CLAIMS:
        nb.cells.append(nbformat.v4.new_code_cell(CLAIMS[path.stem]))
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, [(o.ename, o.evalue) for o in errors]
    if path.stem == "quickstart":
        _check_html_export(nb)
    if path.stem == "reproduce-paper":  # two plots, one copy of BokehJS
        kinds = [set(o.get("data", {})) for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert sum("application/vnd.bokehjs_exec.v0+json" in k for k in kinds) >= 2
        assert sum("application/vnd.bokehjs_load.v0+json" in k for k in kinds) == 1
    if path.stem != "quickstart":  # the student-facing notebooks print warnings without file paths
        printed = [o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert not [t for t in printed if ABSOLUTE_PATH.search(t)]
    if path.stem == "classroom-lab":  # the lab's answers stay hidden until asked for
        answers = [c.source for c in nb.cells if c.cell_type == "markdown" and "<summary>Show answer" in c.source]
        assert len(answers) >= 3 and all(a.startswith("<details>") for a in answers)


def _notebook(stem: str):
    return nbformat.read(next(p for p in NOTEBOOKS if p.stem == stem), as_version=4)


def test_classroom_lab_is_written_for_students():
    nb = _notebook("classroom-lab")
    code = [c for c in nb.cells if c.cell_type == "code"]
    scaffolding = [c for c in code if "HEADPURSUIT_QUICK" in c.source]
    assert scaffolding and all(c.metadata.get("jupyter", {}).get("source_hidden") for c in scaffolding)
    guess = next(c for c in code if c.source.startswith("my_guess"))
    namespace: dict = {}
    exec(guess.source, namespace)  # the prediction cell, as a student first runs it
    assert namespace["my_guess"] == []
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    terms = (
        "Residual stream",
        "Unembedding",
        "SOMP",
        "Atom",
        "EVR",
        "nat",
        "Logit Lens",
        "Concept head",
        "Answer head",
    )
    for term in (*terms, "Selectivity"):
        assert f"* **{term}**" in markdown, term
    assert "L0H2" in markdown and "raw EVR" in markdown and "## 7. Use the widget" in markdown
    # students find a colour-selective head and answer heads and tell them apart by what flipping each does
    assert "## 5. A colour head or an answer head?" in markdown and "**L22H8 is colour-selective" in markdown
    source = "\n".join(c.source for c in code)
    assert source.count("hp.rank_heads(") == 1 and "hp.effects(" not in source  # rank once; no all-head flips
    for head in ("flip(22, 8)", "flip(17, 7)", "flip(0, 7)"):
        assert head in source, head


def test_quickstart_cites_the_repo_and_reuses_the_ranking():
    source = "\n".join(c.source for c in _notebook("quickstart").cells)
    assert "METHOD.md" not in source and "docs/method.md" in source
    assert "rank_heads(" not in source and "w.ranking" in source
    assert "number box" in source and "probe_mass" in source


def _check_html_export(nb) -> None:
    """The HTML export of the executed quickstart shows the widget's snapshot, brought up to date by
    w.wait(): the grid, the edited answer; never the bare object repr.

    JupyterLab and Notebook 7 save notebooks without widget state by default, and so does this copy;
    with saved state (nbclient's default) nbconvert embeds the live view for the widget manager instead."""
    with_state = HTMLExporter().from_notebook_node(nb)[0]
    assert "application/vnd.jupyter.widget-view+json" in with_state
    nb.metadata.pop("widgets", None)
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert f'class="{MARKER}"' in html and "<svg" in html
    assert "<HeadPursuit object at" not in html
    assert "Edits: L" in html  # the snapshot after the strengths cell's w.wait(), not the empty first one
