"""The shipped notebooks run top to bottom (HEADPURSUIT_QUICK=1 shrinks their budgets); the executed
quickstart exports to HTML with the widget's static snapshot in place of the live view."""

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbconvert import HTMLExporter

from headpursuit_widget.snapshot import MARKER

ABSOLUTE_PATH = re.compile(r"(/[\w.-]+){2,}\.py:\d+")  # a warning's "/path/to/file.py:123"
REPO = Path(__file__).resolve().parent.parent  # the kernels import this checkout's package
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_the_three_notebooks_are_shipped():
    assert {p.name for p in NOTEBOOKS} >= {"quickstart.ipynb", "classroom-lab.ipynb", "reproduce-paper.ipynb"}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, monkeypatch, smollm2):  # smollm2: the model is fetched and re-saved already
    monkeypatch.setenv("HEADPURSUIT_QUICK", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
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
    for term in ("Residual stream", "Unembedding", "SOMP", "Atom", "EVR", "nat", "Logit Lens"):
        assert f"* **{term}**" in markdown, term
    assert "L0H2" in markdown and "raw EVR" in markdown and "## 6. Use the widget" in markdown


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
