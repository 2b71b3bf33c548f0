"""Where a HeadModel's forward passes run.

- "hf" (default): in this process, with torch hooks on the output projections (models.py, capture.py,
  edits.py).
- "nnsight": inside nnsight traces (nnsight_backend.py), so the same calls run in this process,
  through nnsight's local simulation of a remote request, on NDIF, or on a self-hosted server (url=).

Both give the same HeadModel interface: capture, rank_heads, edit_heads, generate, the experiments
and the widget call HeadModel.forward / HeadModel.generate / HeadModel.mean_z and never care which.
"""

BACKENDS = ("hf", "nnsight")
