"""A VLM's processor, loadable without a usable torchvision, and the id of the image token whose
embeddings the model replaces by image features."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


def _hide_broken_torchvision() -> None:
    """Make transformers treat an installed-but-unimportable torchvision as absent.

    transformers imports torchvision at module level when it finds the package, so a torchvision
    built for another torch breaks even its PIL image processors. Marking it missing in
    sys.modules makes `find_spec` return None and transformers fall back to the PIL backend.
    """
    if sys.modules.get("torchvision", 0) is None:
        return
    try:
        import torchvision  # noqa: F401
    except Exception:
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules["torchvision"] = None  # type: ignore[assignment]  # None marks a module as absent
        from transformers.utils import import_utils

        for fn in ("is_torchvision_available", "is_torchvision_v2_available", "is_torchvision_greater_or_equal"):
            getattr(getattr(import_utils, fn, None), "cache_clear", lambda: None)()


_hide_broken_torchvision()

from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer, ProcessorMixin  # noqa: E402
from transformers.video_processing_utils import VideoProcessorMixin  # noqa: E402

from ..errors import HeadPursuitError  # noqa: E402


class NoVideoProcessor(VideoProcessorMixin):
    """Fills a processor's video slot when its video processor needs torchvision; videos raise."""

    num_frames = fps = None  # read by some processors' chat templating

    def __call__(self, videos, **kwargs):  # type: ignore[override]  # fills the video slot; never processes images
        raise RuntimeError("video inputs need torchvision, which is not usable here; pass images instead")


def images_only(processor_cls: Any) -> Any:
    """Subclass of `processor_cls` that accepts NoVideoProcessor (transformers cannot type-check
    a video processor without torchvision)."""

    def check(self, name, arg):
        if isinstance(arg, NoVideoProcessor):
            return NoVideoProcessor
        return processor_cls.check_argument_for_proper_class(self, name, arg)

    return type(processor_cls.__name__, (processor_cls,), {"check_argument_for_proper_class": check})


def _torchvision_usable() -> bool:
    from transformers.utils import is_torchvision_available

    return is_torchvision_available()


def load_processor(path: str | os.PathLike, **kwargs) -> ProcessorMixin:
    """AutoProcessor for a local folder or cached hub id. Without a usable torchvision (or when a
    video processor cannot be loaded) it is assembled from the tokenizer, the image processor
    (PIL backend without torchvision) and NoVideoProcessor."""
    from transformers import AutoProcessor

    if not _torchvision_usable():
        return _assemble_processor(path, "pil", **kwargs)
    try:
        return AutoProcessor.from_pretrained(path, **kwargs)
    except (ValueError, OSError, ImportError) as exc:
        try:
            return _assemble_processor(path, None, **kwargs)
        except Exception:
            raise exc from None


def _assemble_processor(path, backend: str | None, **kwargs) -> ProcessorMixin:
    import transformers
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    processor_dict, init_kwargs = ProcessorMixin.get_processor_dict(path, **kwargs)
    name = processor_dict.get("processor_class") or PROCESSOR_MAPPING_NAMES.get(
        AutoConfig.from_pretrained(path, **kwargs).model_type
    )
    if not name or not hasattr(transformers, name):
        raise HeadPursuitError(f"no processor class found for {path}; pass processor= explicitly")
    cls: Any = getattr(transformers, name)
    parts = {
        "tokenizer": lambda: AutoTokenizer.from_pretrained(path, **kwargs),
        "image_processor": lambda: AutoImageProcessor.from_pretrained(path, backend=backend, **kwargs),
        "video_processor": NoVideoProcessor,
    }
    attrs = cls.get_attributes()
    if any(a not in parts for a in attrs):
        raise HeadPursuitError(f"{name} needs {attrs}; only {tuple(parts)} can be built without torchvision")
    return images_only(cls).from_args_and_dict([parts[a]() for a in attrs], processor_dict, **init_kwargs)


def image_token_id(module: Any, processor) -> int:
    """Id of the placeholder token that the model replaces by image features (from the model
    config), checked against the processor; raises HeadPursuitError on a mismatch."""
    cfg = module.config
    tid = getattr(cfg, "image_token_id", None)
    tid = getattr(cfg, "image_token_index", None) if tid is None else tid
    if tid is None:
        raise HeadPursuitError(f"{type(module).__name__} has no image_token_id in its config")
    if processor is None or not hasattr(processor, "image_processor"):
        raise HeadPursuitError(
            f"{type(module).__name__} is a vision-language model: pass its processor "
            "(hp.wrap(model, processor) or hp.load_model(path, processor=...))"
        )
    proc_ids = [
        i for i in getattr(processor, "image_token_ids", [getattr(processor, "image_token_id", None)]) if i is not None
    ]
    n_embed = module.get_input_embeddings().num_embeddings
    if tid not in proc_ids or len(processor.tokenizer) > n_embed:
        raise HeadPursuitError(
            f"processor {type(processor).__name__} does not match model {type(module).__name__}: the model's "
            f"image token id is {tid}, the processor's {proc_ids}; tokenizer size {len(processor.tokenizer)} "
            f"vs {n_embed} embeddings"
        )
    return int(tid)
