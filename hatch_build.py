"""Hatch build hook: bundle the front end (npm run build) when the bundle is missing.

Set HEADPURSUIT_SKIP_JS=1 to skip it (for example when node is not installed and the
bundle is not needed, or was built by another step).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

BUNDLE = Path("headpursuit_widget", "static", "widget.js")


class JSBuildHook(BuildHookInterface):
    PLUGIN_NAME = "headpursuit-js"

    def initialize(self, version: str, build_data: dict) -> None:
        root = Path(self.root)
        if os.environ.get("HEADPURSUIT_SKIP_JS") == "1" or (root / BUNDLE).exists():
            return
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError(
                f"{BUNDLE} is missing and npm was not found: install node (>= 18) and npm, "
                "or build the bundle elsewhere, or set HEADPURSUIT_SKIP_JS=1 to build without it"
            )
        if not (root / "node_modules").is_dir():
            subprocess.run([npm, "ci"], cwd=root, check=True)
        subprocess.run([npm, "run", "build"], cwd=root, check=True)
