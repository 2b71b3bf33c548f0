"""The shipped notebooks run top to bottom (HEADPURSUIT_QUICK=1 shrinks their budgets)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_the_three_notebooks_are_shipped():
    assert {p.name for p in NOTEBOOKS} >= {"quickstart.ipynb", "classroom-lab.ipynb", "reproduce-paper.ipynb"}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, monkeypatch, smollm2):  # smollm2: the model is fetched and re-saved already
    monkeypatch.setenv("HEADPURSUIT_QUICK", "1")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    if path.stem == "classroom-lab":  # the lab's answers stay hidden until asked for
        answers = [c.source for c in nb.cells if c.cell_type == "markdown" and "<summary>Show answer" in c.source]
        assert len(answers) >= 3 and all(a.startswith("<details>") for a in answers)
