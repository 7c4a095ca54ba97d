"""Video-text methods on a frozen CLIP: one module each, one interface (:class:`VideoTextModel`)."""

from __future__ import annotations

from ..errors import UsageError
from .base import VideoTextModel

METHODS = ("zeroshot", "promptclip", "aim")


def build_method(method: str, backbone, **hparams) -> VideoTextModel:
    """The one way to build a method by name on a backbone (used by training and checkpoint loading)."""
    if method == "zeroshot":
        from .zeroshot import ZeroShotCLIP as cls
    elif method == "promptclip":
        from .promptclip import PromptCLIP as cls
    elif method == "aim":
        from .aim import AIM as cls
    else:
        raise UsageError(f"unknown method '{method}' (choose from: {', '.join(METHODS)})")
    try:
        return cls(backbone, **hparams)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"cannot build {method}: {exc}") from None


__all__ = ["METHODS", "VideoTextModel", "build_method"]
