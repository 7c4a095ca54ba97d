"""Video-text methods on a frozen CLIP: one module each, one interface (:class:`VideoTextModel`)."""

from __future__ import annotations

from ..errors import OptionValueError, UsageError
from .base import VideoTextModel

METHODS = ("zeroshot", "promptclip", "aim")


def build_method(method: str, backbone, **hparams) -> VideoTextModel:
    """The one way to build a method by name on a backbone (used by training and checkpoint loading)."""
    cls = method_class(method)
    try:
        return cls(backbone, **hparams)
    except (TypeError, ValueError, OptionValueError) as exc:  # named by the method's own keys: whoever passed
        raise UsageError(f"cannot build {method}: {exc}") from None     # them (a config, a file) says where


def method_class(method: str) -> type[VideoTextModel]:
    if method == "zeroshot":
        from .zeroshot import ZeroShotCLIP as cls
    elif method == "promptclip":
        from .promptclip import PromptCLIP as cls
    elif method == "aim":
        from .aim import AIM as cls
    else:
        raise UsageError(f"unknown method '{method}' (choose from: {', '.join(METHODS)})")
    return cls


def stored_hparams_problem(method: str, hparams: object, shapes: dict[str, tuple[int, ...]]) -> str | None:
    """What is wrong with hyper-parameters read from a file, checked against the shapes of the tensors the file
    holds, before anything is allocated (``None``: they fit). A file that says 100,000 layers or 10**9 frames
    must not get a model of that size built first."""
    import inspect

    if method not in METHODS:
        return f"unknown method {method!r}"
    if not isinstance(hparams, dict):
        return f"hparams must be a mapping, not {type(hparams).__name__}"
    cls = method_class(method)
    defaults = {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
                if name not in ("self", "backbone")}
    for name, value in hparams.items():
        if name not in defaults:
            return f"unknown hyper-parameter {name!r} for {method}"
        expected = defaults[name]
        if isinstance(expected, bool):
            ok = isinstance(value, bool)
        elif isinstance(expected, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(expected, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
        elif isinstance(expected, str):
            ok = isinstance(value, str)
        else:  # sequences of strings (templates)
            ok = isinstance(value, list) and len(value) <= 1000 and all(isinstance(v, str) for v in value)
        if not ok:
            return f"{name} has the wrong type ({value!r})"
    return cls.stored_shape_problem(hparams, shapes)


__all__ = ["METHODS", "VideoTextModel", "build_method", "method_class", "stored_hparams_problem"]
