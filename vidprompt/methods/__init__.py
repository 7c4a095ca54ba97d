"""Video-text methods on a frozen CLIP: one module each, one interface (:class:`VideoTextModel`)."""

from .base import VideoTextModel

__all__ = ["VideoTextModel"]
