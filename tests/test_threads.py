"""Importing the package asks OpenMP to sleep while its threads wait (benchmarks/bench_omp.py: a tiny pass
beside other work took 100x longer with the spinning default), before torch starts, unless the user chose."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# prints OMP_WAIT_POLICY as it was when `torch` was first imported (OpenMP reads it then)
SCRIPT = """
import os, sys
seen = []
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not seen:
            seen.append(os.environ.get("OMP_WAIT_POLICY", "unset"))
sys.meta_path.insert(0, Watch())
import headpursuit_widget
print(seen[0])
"""


def _policy_when_torch_starts(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=clean | env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.subprocess
def test_import_sets_passive_before_torch_starts_and_keeps_a_users_choice():
    assert _policy_when_torch_starts() == "PASSIVE"
    assert _policy_when_torch_starts(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
