"""Where a HeadModel's forward passes run, and the registry load_model and wrap dispatch through.

- "hf" (default): in this process, with torch hooks on the output projections (head_model.py,
  activations/capture.py, editing/edits.py).
- "nnsight": inside nnsight traces (nnsight_model.py, nnsight_connect.py), so the same calls run in
  this process, through nnsight's local simulation of a remote request, on NDIF, or on a self-hosted
  server (url=).

Both give the same HeadModel interface: capture, rank_heads, edit_heads, generate, the experiments
and the widget call HeadModel.forward / HeadModel.generate / HeadModel.mean_z and never care which.
"""

from importlib import import_module

# backend -> module with wrap(model, **options) and load(name_or_path, *, loader, **options); "hf" is HeadModel itself
_MODULES = {"nnsight": "nnsight_connect"}
BACKENDS = ("hf", *_MODULES)


def backend_module(name: str):
    """The module that wraps and loads models for backend `name` (one of BACKENDS but "hf"), imported on first use."""
    return import_module(f".{_MODULES[name]}", __package__)
