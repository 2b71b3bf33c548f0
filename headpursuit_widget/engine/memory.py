"""Memory guard: estimate a large allocation's bytes and refuse it clearly before it can kill the kernel."""

from __future__ import annotations

from pathlib import Path

import torch

from .errors import HeadPursuitError


def available_bytes(device=None) -> int | None:
    """Bytes that can still be allocated on `device` (free GPU memory, or the host's MemAvailable);
    None when unknown."""
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_fits(nbytes: int, what: str, hint: str, device=None) -> None:
    """Raise HeadPursuitError when `what` needs more than the available memory; `hint` says how to shrink it."""
    free = available_bytes(device)
    if free is not None and nbytes > free:
        raise HeadPursuitError(
            f"{what} needs about {nbytes / 2**30:.2f} GiB but only {free / 2**30:.2f} GiB of memory is "
            f"available; {hint}"
        )
