"""The model cache cannot lie: verified files, clear delete-or-re-fetch errors, collision-free writes.

A tiny random model stands in for the shipped SmolLM2 copy in a temporary HEADPURSUIT_CACHE."""

import subprocess
import sys
import threading
from pathlib import Path

import pytest

import headpursuit_widget as hp
from headpursuit_widget.engine.models import cache as model_cache
from headpursuit_widget.engine.models.cache import locked, publish_copy, temp_folder, write_manifest
from headpursuit_widget.engine.models.shipped import SHIPPED

SPEC = SHIPPED["smollm2"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("HEADPURSUIT_CACHE", str(root))
    monkeypatch.setattr(model_cache, "_VERIFIED", set())  # as in a fresh process
    return root


@pytest.fixture
def fake_copy(cache, make_tiny):
    """cache/smollm2/hf: a tiny model saved as the shipped alias's safetensors copy, with its manifest."""
    hf = cache / "smollm2" / "hf"
    tiny = make_tiny("llama")
    tiny.module.save_pretrained(hf)
    tiny.tokenizer.save_pretrained(hf)
    write_manifest(hf, SPEC.sha256)
    return hf


def _flip_byte(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_verified_copy_loads_and_its_source_hash_enters_the_fingerprint(fake_copy, make_tiny):
    m = hp.load_model("smollm2")
    tiny = make_tiny("llama")
    assert m.weights_sha256 == SPEC.sha256 and tiny.weights_sha256 == ""
    assert m.fingerprint != tiny.fingerprint  # same weights, but only one is tied to a verified file


def test_flipped_bytes_in_the_copy_are_refused(fake_copy):
    weights = fake_copy / "model.safetensors"
    _flip_byte(weights, weights.stat().st_size // 2)  # inside a weight tensor: would load silently
    with pytest.raises(
        hp.HeadPursuitError, match=rf"is corrupted or truncated .*delete or re-fetch the cache: remove {fake_copy}"
    ):
        hp.load_model("smollm2")


def test_truncated_copy_and_corrupt_header_are_refused(fake_copy):
    weights = fake_copy / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 3])
    with pytest.raises(hp.HeadPursuitError, match="corrupted or truncated"):
        hp.load_model("smollm2")
    weights.write_bytes(b"\xff" * 8 + data[8:])
    with pytest.raises(hp.HeadPursuitError, match="corrupted or truncated"):
        hp.load_model("smollm2")


def test_corrupt_safetensors_in_a_local_folder_is_named(tmp_path, make_tiny):
    folder = tmp_path / "mine"
    tiny = make_tiny("llama")
    tiny.module.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(b"\xff" * 8 + weights.read_bytes()[8:])  # header length: absurd
    with pytest.raises(hp.HeadPursuitError, match="could not load the weights .*truncated or corrupt"):
        hp.load_model(folder)


def test_truncated_gguf_is_refused_before_parsing(cache):
    gguf = cache / "smollm2" / SPEC.gguf_name
    gguf.parent.mkdir(parents=True)
    gguf.write_bytes(b"GGUF\x03\x00\x00\x00" + bytes(4096))  # a GGUF header and then nothing
    with pytest.raises(hp.HeadPursuitError, match=rf"{SPEC.gguf_name} is corrupted or truncated .*remove {gguf}"):
        hp.load_model("smollm2")


def test_copy_without_manifest_is_not_trusted(cache, make_tiny):
    """A copy made before manifests existed is rebuilt from the (verified) GGUF, never loaded unchecked."""
    hf = cache / "smollm2" / "hf"
    make_tiny("llama").module.save_pretrained(hf)
    gguf = cache / "smollm2" / SPEC.gguf_name
    gguf.write_bytes(b"not the real file")
    with pytest.raises(hp.HeadPursuitError, match=f"{SPEC.gguf_name} is corrupted"):
        hp.load_model("smollm2")


def test_cache_root_that_is_a_file_is_named(tmp_path, monkeypatch):
    root = tmp_path / "cache-file"
    root.write_text("oops")
    monkeypatch.setenv("HEADPURSUIT_CACHE", str(root))
    with pytest.raises(hp.HeadPursuitError, match=rf"{root} is a file, not a folder .*HEADPURSUIT_CACHE"):
        hp.load_model("smollm2")


def test_unwritable_cache_is_named(monkeypatch):
    """/sys refuses new folders even to root (permission bits would not stop a root test run)."""
    root = Path("/sys/headpursuit-cache")
    try:
        root.mkdir()
    except OSError:
        pass
    else:
        root.rmdir()
        pytest.skip("/sys is writable here")
    monkeypatch.setenv("HEADPURSUIT_CACHE", str(root))
    with pytest.raises(hp.HeadPursuitError, match="cannot write the model cache .*writable folder"):
        hp.load_model("smollm2")


def _other_process_gets_lock(folder: Path) -> bool:
    """Whether another process can take `folder`'s lock at once (filelock, as on every platform)."""
    probe = (
        "import filelock, sys\n"
        "lock = filelock.FileLock(sys.argv[1], timeout=0)\n"
        "try:\n"
        "    lock.acquire()\n"
        "except filelock.Timeout:\n"
        "    sys.exit(3)\n"
        "lock.release()\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe, str(folder / ".lock")], capture_output=True, text=True)
    assert proc.returncode in (0, 3), proc.stderr
    return proc.returncode == 0


def test_writers_take_a_lock_and_unique_temp_names(tmp_path):
    folder = tmp_path / "smollm2"
    with locked(folder):
        assert not _other_process_gets_lock(folder)
    assert _other_process_gets_lock(folder)  # released after the block
    target = folder / "hf"
    assert temp_folder(target) != temp_folder(target)


def test_concurrent_publishers_leave_one_complete_copy(tmp_path):
    target = tmp_path / "smollm2" / "hf"
    tmps = []
    for i in range(4):
        tmp = temp_folder(target)
        (tmp / "model.safetensors").write_bytes(bytes([i]) * 64)
        write_manifest(tmp, SPEC.sha256)
        tmps.append(tmp)
    barrier = threading.Barrier(len(tmps))
    errors = []

    def publish(tmp):
        barrier.wait()
        try:
            publish_copy(tmp, target, SPEC.sha256)
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(t,)) for t in tmps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(p.name for p in target.iterdir()) == ["headpursuit.json", "model.safetensors"]
    assert (target / "model.safetensors").read_bytes() in {bytes([i]) * 64 for i in range(4)}
    assert sorted(p.name for p in target.parent.iterdir()) == [
        ".lock",
        "hf",
    ]  # winners' temp folders remain for rmtree by their builder
