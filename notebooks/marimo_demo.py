"""Head Pursuit in marimo: `marimo edit notebooks/marimo_demo.py` (or `marimo run`)."""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="full")


@app.cell
def _():
    import marimo as mo

    import headpursuit_widget as hp

    return hp, mo


@app.cell
def _(mo):
    mo.md(
        """
        # Head Pursuit in marimo

        The grid has one cell per attention head (rows: layers, columns: heads), coloured by how
        much more of the head's output the colour words explain than random words do.
        Click a head to read its tokens; move its strength slider to edit it and compare the
        edited answer with the baseline. The first run fetches the default model (about 93 MB).
        """
    )
    return


@app.cell
def _(hp):
    model = hp.load_model("smollm2")
    return (model,)


@app.cell
def _(hp, mo, model):
    widget = mo.ui.anywidget(hp.HeadPursuit(model, concept="colours", max_new_tokens=24))
    widget
    return (widget,)


@app.cell
def _(mo, widget):
    strengths = widget.value.get("strengths", {})
    mo.md(f"**Edits:** {strengths or 'none'}. Copy them as code with the widget's *Copy as code* button.")
    return


if __name__ == "__main__":
    app.run()
